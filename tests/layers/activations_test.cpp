#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "core/context.hpp"
#include "core/layer_registry.hpp"
#include "gradient_checker.hpp"
#include "math/onednn.hpp"

namespace engine {
namespace {

using namespace testing;

const std::vector<std::vector<int>> kShapes = {{2, 3, 4, 5}, {3, 7}, {1, 1, 5, 3}, {13}};

// ---- ReLU -------------------------------------------------------------------------------

LayerPtr relu(const std::string& engine, const std::string& slope = "0") {
  return create_layer(layer_param("name: 'r' type: 'ReLU' relu_param { negative_slope: " + slope +
                                  " engine: " + engine + " }"));
}

TEST(ReLULayer, ForwardAndBackwardByHand) {
  for (const std::string& engine : engines()) {
    SCOPED_TRACE(engine);
    Blob bottom, top;
    set_blob(bottom, {5}, {-2.0f, -0.5f, 0.0f, 1.5f, 3.0f});
    LayerPtr plain = relu(engine);
    plain->setup({&bottom}, {&top});
    plain->forward({&bottom}, {&top});
    expect_near(data_of(top), {0, 0, 0, 1.5f, 3});

    LayerPtr leaky = relu(engine, "0.1");
    leaky->setup({&bottom}, {&top});
    leaky->forward({&bottom}, {&top});
    expect_near(data_of(top), {-0.2f, -0.05f, 0, 1.5f, 3});
    std::fill(top.mutable_cpu_diff(), top.mutable_cpu_diff() + 5, 2.0f);
    leaky->backward({&top}, {true}, {&bottom});
    // At x == 0 Caffe takes the negative side's slope.
    expect_near(diff_of(bottom), {0.2f, 0.2f, 0.2f, 2, 2});
  }
}

TEST(ReLULayer, InPlaceForwardAndBackward) {
  for (const std::string& engine : engines()) {
    SCOPED_TRACE(engine);
    Blob blob;
    set_blob(blob, {4}, {-1.0f, 2.0f, -3.0f, 0.5f});
    LayerPtr layer = relu(engine, "0.5");
    layer->setup({&blob}, {&blob});
    layer->forward({&blob}, {&blob});
    expect_near(data_of(blob), {-0.5f, 2, -1.5f, 0.5f});
    std::fill(blob.mutable_cpu_diff(), blob.mutable_cpu_diff() + 4, 1.0f);
    layer->backward({&blob}, {true}, {&blob});
    expect_near(diff_of(blob), {0.5f, 1, 0.5f, 1});
  }
}

TEST(ReLULayer, GradientAtSeveralShapesAndInPlace) {
  GradientCheckOptions options;
  options.kink = 0;
  options.kink_range = 0.05f;  // more than the step: no difference straddles the kink
  for (const std::string& engine : engines()) {
    for (const char* slope : {"0", "0.3"}) {
      for (const auto& shape : kShapes) {
        for (bool in_place : {false, true}) {
          SCOPED_TRACE(engine + " slope " + slope + (in_place ? " in place" : ""));
          Blob bottom(shape), top;
          fill_gaussian(bottom);
          LayerPtr layer = relu(engine, slope);
          check_gradient(*layer, {&bottom}, {in_place ? &bottom : &top}, options);
        }
      }
    }
  }
}

TEST(ReLULayer, OnednnAgreesWithTheLoop) {
  if (!onednn_available()) GTEST_SKIP() << "built without oneDNN";
  for (const char* slope : {"0", "0.01"}) {
    SCOPED_TRACE(std::string("slope ") + slope);
    Blob bottom({4, 96, 13, 13}), reference, fast;
    fill_gaussian(bottom);
    LayerPtr loop = relu("CAFFE", slope), onednn = relu("ONEDNN", slope);
    loop->setup({&bottom}, {&reference});
    onednn->setup({&bottom}, {&fast});
    loop->forward({&bottom}, {&reference});
    onednn->forward({&bottom}, {&fast});
    EXPECT_EQ(data_of(reference), data_of(fast));
    fill_gaussian(reference);
    std::copy(reference.cpu_data(), reference.cpu_data() + reference.count(),
              reference.mutable_cpu_diff());
    std::copy(reference.cpu_data(), reference.cpu_data() + reference.count(),
              fast.mutable_cpu_diff());
    loop->backward({&reference}, {true}, {&bottom});
    const std::vector<float> loop_grad = diff_of(bottom);
    onednn->backward({&fast}, {true}, {&bottom});
    EXPECT_EQ(loop_grad, diff_of(bottom));
  }
}

// ---- Sigmoid and TanH -------------------------------------------------------------------

TEST(SigmoidLayer, ForwardAndBackwardByHand) {
  Blob bottom, top;
  const float ln3 = std::log(3.0f);
  set_blob(bottom, {5}, {0.0f, ln3, -ln3, -200.0f, 200.0f});
  LayerPtr layer = create_layer(layer_param("name: 's' type: 'Sigmoid'"));
  layer->setup({&bottom}, {&top});
  layer->forward({&bottom}, {&top});
  expect_near(data_of(top), {0.5f, 0.75f, 0.25f, 0, 1});
  std::fill(top.mutable_cpu_diff(), top.mutable_cpu_diff() + 5, 4.0f);
  layer->backward({&top}, {true}, {&bottom});
  // y (1 - y) * 4: 1, 0.75, 0.75, 0, 0.
  expect_near(diff_of(bottom), {1, 0.75f, 0.75f, 0, 0});
}

TEST(TanHLayer, ForwardAndBackwardByHand) {
  Blob bottom, top;
  const float ln2 = std::log(2.0f);
  set_blob(bottom, {4}, {0.0f, ln2, -ln2, 50.0f});
  LayerPtr layer = create_layer(layer_param("name: 't' type: 'TanH'"));
  layer->setup({&bottom}, {&top});
  layer->forward({&bottom}, {&top});
  // tanh(ln 2) = (4 - 1) / (4 + 1).
  expect_near(data_of(top), {0, 0.6f, -0.6f, 1});
  std::fill(top.mutable_cpu_diff(), top.mutable_cpu_diff() + 4, 1.0f);
  layer->backward({&top}, {true}, {&bottom});
  expect_near(diff_of(bottom), {1, 0.64f, 0.64f, 0});
}

TEST(SigmoidAndTanHLayers, GradientAtSeveralShapesAndInPlace) {
  for (const char* type : {"Sigmoid", "TanH"}) {
    for (const auto& shape : kShapes) {
      for (bool in_place : {false, true}) {
        SCOPED_TRACE(std::string(type) + (in_place ? " in place" : ""));
        Blob bottom(shape), top;
        fill_gaussian(bottom, 2.0f);
        LayerPtr layer = create_layer(layer_param(std::string("name: 'a' type: '") + type + "'"));
        check_gradient(*layer, {&bottom}, {in_place ? &bottom : &top});
      }
    }
  }
}

TEST(SigmoidLayer, InPlaceMatchesSeparateTop) {
  Blob bottom({3, 11}), top, in_place({3, 11});
  fill_gaussian(bottom, 3.0f);
  std::copy(bottom.cpu_data(), bottom.cpu_data() + bottom.count(), in_place.mutable_cpu_data());
  LayerPtr separate = create_layer(layer_param("name: 's' type: 'Sigmoid'"));
  LayerPtr same = create_layer(layer_param("name: 's' type: 'Sigmoid'"));
  separate->setup({&bottom}, {&top});
  same->setup({&in_place}, {&in_place});
  separate->forward({&bottom}, {&top});
  same->forward({&in_place}, {&in_place});
  EXPECT_EQ(data_of(top), data_of(in_place));
}

// ---- Dropout ----------------------------------------------------------------------------

TEST(DropoutLayer, TestPhaseIsTheIdentity) {
  Blob bottom({4, 5}), top;
  fill_gaussian(bottom);
  LayerPtr layer = create_layer(
      layer_param("name: 'd' type: 'Dropout' phase: TEST dropout_param { dropout_ratio: 0.7 }"));
  layer->setup({&bottom}, {&top});
  layer->forward({&bottom}, {&top});
  EXPECT_EQ(data_of(top), data_of(bottom));
  fill_gaussian(top);
  std::copy(top.cpu_data(), top.cpu_data() + top.count(), top.mutable_cpu_diff());
  layer->backward({&top}, {true}, {&bottom});
  EXPECT_EQ(diff_of(bottom), data_of(top));
}

TEST(DropoutLayer, TrainKeepsAboutOneMinusRatioScaled) {
  const int n = 20000;
  Blob bottom({n}), top;
  std::fill(bottom.mutable_cpu_data(), bottom.mutable_cpu_data() + n, 3.0f);
  LayerPtr layer = create_layer(
      layer_param("name: 'd' type: 'Dropout' phase: TRAIN dropout_param { dropout_ratio: 0.4 }"));
  layer->setup({&bottom}, {&top});
  Context::set_seed(5);
  layer->forward({&bottom}, {&top});
  int kept = 0;
  for (float y : data_of(top)) {
    if (y != 0) {
      ++kept;
      EXPECT_FLOAT_EQ(y, 3.0f / 0.6f);
    }
  }
  // Binomial(20000, 0.6): standard deviation about 69, so 0.6 +- 0.02 is about 6 sigma.
  EXPECT_NEAR(kept / double(n), 0.6, 0.02);

  // Backward uses the same mask and scale.
  std::fill(top.mutable_cpu_diff(), top.mutable_cpu_diff() + n, 1.0f);
  layer->backward({&top}, {true}, {&bottom});
  for (int i = 0; i < n; ++i) {
    EXPECT_FLOAT_EQ(bottom.cpu_diff()[i], top.cpu_data()[i] == 0 ? 0.0f : 1.0f / 0.6f);
  }
}

TEST(DropoutLayer, SameSeedGivesTheSameMask) {
  Blob bottom({50, 10}), first, second;
  std::fill(bottom.mutable_cpu_data(), bottom.mutable_cpu_data() + bottom.count(), 1.0f);
  LayerPtr layer = create_layer(layer_param("name: 'd' type: 'Dropout'"));
  layer->setup({&bottom}, {&first});
  Context::set_seed(42);
  layer->forward({&bottom}, {&first});
  LayerPtr other = create_layer(layer_param("name: 'd' type: 'Dropout'"));
  other->setup({&bottom}, {&second});
  Context::set_seed(42);
  other->forward({&bottom}, {&second});
  EXPECT_EQ(data_of(first), data_of(second));
  Context::set_seed(43);
  other->forward({&bottom}, {&second});
  EXPECT_NE(data_of(first), data_of(second));
}

TEST(DropoutLayer, GradientWithFixedSeed) {
  for (const auto& shape : kShapes) {
    for (bool in_place : {false, true}) {
      SCOPED_TRACE(in_place ? "in place" : "separate top");
      Blob bottom(shape), top;
      fill_gaussian(bottom);
      LayerPtr layer = create_layer(
          layer_param("name: 'd' type: 'Dropout' dropout_param { dropout_ratio: 0.3 }"));
      check_gradient(*layer, {&bottom}, {in_place ? &bottom : &top});
    }
  }
}

TEST(DropoutLayer, RatioOutsideRangeNamesTheLayer) {
  Blob bottom({3}), top;
  for (const char* ratio : {"1", "-0.1", "1.5"}) {
    LayerPtr layer = create_layer(
        layer_param(std::string("name: 'drop6' type: 'Dropout' dropout_param { dropout_ratio: ") +
                    ratio + " }"));
    SCOPED_TRACE(std::string("ratio ") + ratio);
    const std::string message = setup_error(*layer, {&bottom}, {&top});
    EXPECT_TRUE(contains(message, "layer drop6 (Dropout)"));
    EXPECT_TRUE(contains(message, "dropout_ratio must be in [0, 1)"));
  }
}

TEST(ActivationLayers, WrongBlobCountsNameTheLayer) {
  Blob a({2}), b({2}), c;
  LayerPtr layer = create_layer(layer_param("name: 'relu1' type: 'ReLU'"));
  EXPECT_TRUE(contains(setup_error(*layer, {&a, &b}, {&c}), "layer relu1 (ReLU)"));
}

}  // namespace
}  // namespace engine
