#include <gtest/gtest.h>

#include <cmath>

#include "core/layer_registry.hpp"
#include "gradient_checker.hpp"

namespace engine {
namespace {

using namespace testing;

using Values = std::vector<float>;

// N = 2, C = 2, two spatial values. Channel 0 holds 1, 3, 5, 7 (mean 4, variance 5); channel 1
// holds 2, 2, 4, 4 (mean 3, variance 1).
void known_input(Blob& blob) { set_blob(blob, {2, 2, 2}, {1, 3, 2, 2, 5, 7, 4, 4}); }

TEST(BatchNormLayer, TrainingNormalisesWithBatchStatistics) {
  Blob in, top;
  known_input(in);
  LayerPtr layer = create_layer(layer_param(
      "name: 'bn' type: 'BatchNorm' batch_norm_param { moving_average_fraction: 0.5 }"));
  layer->setup({&in}, {&top});
  layer->forward({&in}, {&top});
  const float s0 = std::sqrt(5 + 1e-5f), s1 = std::sqrt(1 + 1e-5f);  // default eps 1e-5
  expect_near(data_of(top), {-3 / s0, -1 / s0, -1 / s1, -1 / s1, 1 / s0, 3 / s0, 1 / s1, 1 / s1});

  // The running sums: blob2 = 0 * 0.5 + 1; blob0 = mean; blob1 = variance * m / (m - 1), m = 4.
  auto& blobs = layer->blobs();
  ASSERT_EQ(blobs.size(), 3u);
  EXPECT_EQ(blobs[0]->shape(), (std::vector<int>{2}));
  EXPECT_EQ(blobs[2]->shape(), (std::vector<int>{1}));
  expect_near(data_of(*blobs[2]), {1});
  expect_near(data_of(*blobs[0]), {4, 3});
  expect_near(data_of(*blobs[1]), {20.0f / 3, 4.0f / 3}, 1e-5f);
  layer->forward({&in}, {&top});
  expect_near(data_of(*blobs[2]), {1.5f});
  expect_near(data_of(*blobs[0]), {6, 4.5f});
  expect_near(data_of(*blobs[1]), {10, 2}, 1e-5f);
}

TEST(BatchNormLayer, TrainingBackwardByHand) {
  Blob in, top;
  known_input(in);
  LayerPtr layer =
      create_layer(layer_param("name: 'bn' type: 'BatchNorm' batch_norm_param { eps: 0 }"));
  layer->setup({&in}, {&top});
  layer->forward({&in}, {&top});
  // Channel 0: a constant gradient has no effect on normalised outputs. Channel 1 (y = -1, -1,
  // 1, 1; stddev 1): dx = dy - mean(dy) - mean(dy * y) * y = dy - 2.5 - y.
  const Values grad = {1, 1, 1, 2, 1, 1, 3, 4};
  std::copy(grad.begin(), grad.end(), top.mutable_cpu_diff());
  layer->backward({&top}, {true}, {&in});
  expect_near(diff_of(in), {0, 0, -0.5f, 0.5f, 0, 0, -0.5f, 0.5f});
}

TEST(BatchNormLayer, TestPhaseUsesStoredStatistics) {
  Blob in, top;
  known_input(in);
  LayerPtr layer = create_layer(
      layer_param("name: 'bn' type: 'BatchNorm' phase: TEST batch_norm_param { eps: 0 }"));
  layer->setup({&in}, {&top});
  // Stored mean = blob0 / blob2 = (4, 1); variance = blob1 / blob2 = (9, 0.25).
  set_blob(*layer->blobs()[0], {2}, {8, 2});
  set_blob(*layer->blobs()[1], {2}, {18, 0.5f});
  set_blob(*layer->blobs()[2], {1}, {2});
  layer->forward({&in}, {&top});
  expect_near(data_of(top), {-1, -1.0f / 3, 2, 2, 1.0f / 3, 1, 6, 6});
  // Stored statistics are not updated.
  expect_near(data_of(*layer->blobs()[0]), {8, 2});
  expect_near(data_of(*layer->blobs()[2]), {2});

  top.set_diff(1);
  layer->backward({&top}, {true}, {&in});
  expect_near(diff_of(in), {1.0f / 3, 1.0f / 3, 2, 2, 1.0f / 3, 1.0f / 3, 2, 2});
}

TEST(BatchNormLayer, UseGlobalStatsOverridesThePhase) {
  Blob in, top;
  known_input(in);
  // TEST phase, but batch statistics asked for.
  LayerPtr batch = create_layer(layer_param(
      "name: 'bn' type: 'BatchNorm' phase: TEST batch_norm_param { use_global_stats: false }"));
  batch->setup({&in}, {&top});
  batch->forward({&in}, {&top});
  EXPECT_NEAR(data_of(top)[2], -1, 1e-5f);
  EXPECT_EQ(data_of(*batch->blobs()[2])[0], 1);

  // TRAIN phase with stored statistics: an empty normaliser means mean 0 and variance 0.
  LayerPtr global = create_layer(layer_param(
      "name: 'bn' type: 'BatchNorm' batch_norm_param { use_global_stats: true eps: 0.25 }"));
  global->setup({&in}, {&top});
  global->forward({&in}, {&top});
  expect_near(data_of(top), {2, 6, 4, 4, 10, 14, 8, 8});
}

TEST(BatchNormLayer, StatisticsAreNotLearned) {
  Blob in({2, 3, 2}), top;
  LayerPtr layer = create_layer(layer_param("name: 'bn' type: 'BatchNorm'"));
  layer->setup({&in}, {&top});
  ASSERT_EQ(layer->param().param_size(), 3);
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(layer->param().param(i).lr_mult(), 0);
    EXPECT_FALSE(layer->param_propagate_down(i));
  }

  LayerPtr explicit_zero = create_layer(
      layer_param("name: 'bn' type: 'BatchNorm' param { lr_mult: 0 } param { lr_mult: 0 }"));
  explicit_zero->setup({&in}, {&top});
  EXPECT_EQ(explicit_zero->param().param_size(), 3);

  LayerPtr learned = create_layer(
      layer_param("name: 'bn' type: 'BatchNorm' param { lr_mult: 0 } param { lr_mult: 1 }"));
  const std::string message = setup_error(*learned, {&in}, {&top});
  EXPECT_TRUE(contains(message, "layer bn (BatchNorm)"));
  EXPECT_TRUE(contains(message, "param 1 has lr_mult 1"));
}

TEST(BatchNormLayer, BadShapes) {
  Blob in({2, 3, 2}), top;
  LayerPtr stored = create_layer(layer_param(
      "name: 'norm' type: 'BatchNorm' "
      "blobs { shape { dim: 2 } data: 0 data: 0 } blobs { shape { dim: 2 } data: 0 data: 0 } "
      "blobs { shape { dim: 1 } data: 1 }"));
  std::string message = setup_error(*stored, {&in}, {&top});
  EXPECT_TRUE(contains(message, "layer norm (BatchNorm)"));
  EXPECT_TRUE(contains(message, "stored blob 0 has shape 2 (2), expected 3 for 3 channels"));

  LayerPtr layer = create_layer(layer_param("name: 'norm' type: 'BatchNorm'"));
  layer->setup({&in}, {&top});
  Blob wider({2, 4, 2});
  EXPECT_TRUE(contains(error_of([&] { layer->reshape({&wider}, {&top}); }),
                       "was set up for 3 channels, bottom 2 x 4 x 2 (16) has 4"));
}

TEST(BatchNormLayer, InPlaceMatchesOutOfPlace) {
  Blob in({3, 2, 4}), top;
  fill_gaussian(in);
  Blob copy({3, 2, 4});
  std::copy(in.cpu_data(), in.cpu_data() + in.count(), copy.mutable_cpu_data());
  LayerPtr apart = create_layer(layer_param("name: 'bn' type: 'BatchNorm'"));
  LayerPtr same = create_layer(layer_param("name: 'bn' type: 'BatchNorm'"));
  apart->setup({&in}, {&top});
  same->setup({&copy}, {&copy});
  apart->forward({&in}, {&top});
  same->forward({&copy}, {&copy});
  expect_near(data_of(copy), data_of(top));
  fill_gaussian(top);  // data unused by backward; fills the diff below
  std::copy(top.cpu_data(), top.cpu_data() + top.count(), top.mutable_cpu_diff());
  std::copy(top.cpu_data(), top.cpu_data() + top.count(), copy.mutable_cpu_diff());
  apart->backward({&top}, {true}, {&in});
  same->backward({&copy}, {true}, {&copy});
  expect_near(diff_of(copy), diff_of(in), 1e-5f);
}

TEST(BatchNormLayer, Gradient) {
  for (const auto& shape : std::vector<std::vector<int>>{{2, 3, 2, 2}, {4, 3}, {3, 2, 5}}) {
    Blob in(shape), top;
    fill_gaussian(in);
    LayerPtr layer = create_layer(layer_param("name: 'bn' type: 'BatchNorm'"));
    SCOPED_TRACE(shape_string(shape));
    check_gradient(*layer, {&in}, {&top});
  }
  // In place.
  Blob in({2, 3, 3});
  fill_gaussian(in);
  LayerPtr layer = create_layer(layer_param("name: 'bn' type: 'BatchNorm'"));
  check_gradient(*layer, {&in}, {&in});
}

TEST(BatchNormLayer, GradientWithStoredStatistics) {
  Blob in({2, 3, 2}), top;
  fill_gaussian(in);
  LayerPtr layer = create_layer(layer_param("name: 'bn' type: 'BatchNorm' phase: TEST"));
  layer->setup({&in}, {&top});
  set_blob(*layer->blobs()[0], {3}, {0.5f, -1, 2});
  set_blob(*layer->blobs()[1], {3}, {1, 4, 0.25f});
  set_blob(*layer->blobs()[2], {1}, {1});
  check_gradient(*layer, {&in}, {&top});
}

}  // namespace
}  // namespace engine
