#include <gtest/gtest.h>

#include <algorithm>
#include <numeric>
#include <random>

#include "core/layer_registry.hpp"
#include "gradient_checker.hpp"

namespace engine {
namespace {

using namespace testing;

using Values = std::vector<float>;

struct Inputs {
  Blob a, b, c, top;
  Inputs() {
    set_blob(a, {3}, {1, 2, -3});
    set_blob(b, {3}, {4, -5, 6});
    set_blob(c, {3}, {0.5f, 2, -1});
  }
  Blobs bottoms() { return {&a, &b, &c}; }
};

Values forward(const std::string& eltwise_param, Inputs& in) {
  LayerPtr layer = create_layer(layer_param("name: 'e' type: 'Eltwise' " + eltwise_param));
  layer->setup(in.bottoms(), {&in.top});
  layer->forward(in.bottoms(), {&in.top});
  return data_of(in.top);
}

TEST(EltwiseLayer, ForwardByHand) {
  Inputs in;
  EXPECT_EQ(forward("eltwise_param { operation: PROD }", in), (Values{2, -20, 18}));
  EXPECT_EQ(forward("", in), (Values{5.5f, -1, 2})) << "SUM is the default";
  EXPECT_EQ(forward("eltwise_param { operation: SUM coeff: 1 coeff: -2 coeff: 0.5 }", in),
            (Values{-6.75f, 13, -15.5f}));
  EXPECT_EQ(forward("eltwise_param { operation: MAX }", in), (Values{4, 2, 6}));
}

TEST(EltwiseLayer, BackwardByHand) {
  Inputs in;
  LayerPtr layer = create_layer(layer_param(
      "name: 'e' type: 'Eltwise' eltwise_param { operation: SUM coeff: 1 coeff: -2 coeff: 0.5 }"));
  layer->setup(in.bottoms(), {&in.top});
  layer->forward(in.bottoms(), {&in.top});
  set_blob(in.top, {3}, {0, 0, 0});
  const Values grad = {1, 10, 100};
  std::copy(grad.begin(), grad.end(), in.top.mutable_cpu_diff());
  layer->backward({&in.top}, {true, true, true}, in.bottoms());
  EXPECT_EQ(diff_of(in.a), (Values{1, 10, 100}));
  EXPECT_EQ(diff_of(in.b), (Values{-2, -20, -200}));
  EXPECT_EQ(diff_of(in.c), (Values{0.5f, 5, 50}));

  // MAX sends each gradient to the bottom that won: b, a, b.
  LayerPtr max = create_layer(
      layer_param("name: 'e' type: 'Eltwise' eltwise_param { operation: MAX }"));
  max->setup(in.bottoms(), {&in.top});
  max->forward(in.bottoms(), {&in.top});
  std::copy(grad.begin(), grad.end(), in.top.mutable_cpu_diff());
  in.c.set_diff(7);
  max->backward({&in.top}, {true, true, false}, in.bottoms());
  EXPECT_EQ(diff_of(in.a), (Values{0, 10, 0}));
  EXPECT_EQ(diff_of(in.b), (Values{1, 0, 100}));
  EXPECT_EQ(diff_of(in.c), (Values{7, 7, 7})) << "not asked for: untouched";

  // PROD: the product of the other bottoms, also where a bottom is zero.
  set_blob(in.c, {3}, {0, 2, -1});
  for (const char* stable : {"true", "false"}) {
    LayerPtr prod = create_layer(layer_param(
        std::string("name: 'e' type: 'Eltwise' eltwise_param { operation: PROD "
                    "stable_prod_grad: ") + stable + " }"));
    prod->setup(in.bottoms(), {&in.top});
    prod->forward(in.bottoms(), {&in.top});
    std::copy(grad.begin(), grad.end(), in.top.mutable_cpu_diff());
    prod->backward({&in.top}, {true, true, true}, in.bottoms());
    EXPECT_EQ(diff_of(in.a)[1], -100) << stable;
    EXPECT_EQ(diff_of(in.b)[2], 300) << stable;
    if (std::string(stable) == "true") {
      EXPECT_EQ(diff_of(in.c)[0], 4);
    }
  }
}

TEST(EltwiseLayer, MaxTiesFollowCaffe) {
  Blob a, b, c, top;
  set_blob(a, {2}, {1, 1});
  set_blob(b, {2}, {1, 0});
  set_blob(c, {2}, {0, 1});
  LayerPtr layer = create_layer(
      layer_param("name: 'e' type: 'Eltwise' eltwise_param { operation: MAX }"));
  layer->setup({&a, &b, &c}, {&top});
  layer->forward({&a, &b, &c}, {&top});
  top.set_diff(1);
  layer->backward({&top}, {true, true, true}, {&a, &b, &c});
  // Element 0: bottom 1 takes a tie with bottom 0. Element 1: bottom 2 only ties with the
  // current maximum, which keeps it.
  EXPECT_EQ(diff_of(a), (Values{0, 1}));
  EXPECT_EQ(diff_of(b), (Values{1, 0}));
  EXPECT_EQ(diff_of(c), (Values{0, 0}));
}

// Bottoms whose values differ by at least 0.1 at every position, so that the finite differences
// of MAX never cross a tie.
void fill_separated(std::vector<Blob>& blobs, unsigned seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> base(-1, 1);
  std::vector<int> order(blobs.size());
  for (int64_t j = 0; j < blobs[0].count(); ++j) {
    std::iota(order.begin(), order.end(), 0);
    std::shuffle(order.begin(), order.end(), rng);
    const float offset = base(rng);
    for (size_t k = 0; k < blobs.size(); ++k) {
      blobs[k].mutable_cpu_data()[j] = offset + 0.1f * order[k];
    }
  }
}

TEST(EltwiseLayer, Gradient) {
  const std::vector<std::string> params = {
      "eltwise_param { operation: PROD }",
      "eltwise_param { operation: PROD stable_prod_grad: false }",
      "eltwise_param { operation: SUM }",
      "eltwise_param { operation: MAX }",
  };
  const std::vector<std::vector<int>> shapes = {{2, 3, 4}, {5, 3}, {1, 7, 1, 3}};
  for (const std::string& param : params) {
    for (size_t s = 0; s < shapes.size(); ++s) {
      const int bottoms = 2 + static_cast<int>(s % 2);
      std::vector<Blob> ins(bottoms);
      Blobs bottom;
      for (Blob& blob : ins) {
        blob.reshape(shapes[s]);
        fill_gaussian(blob);
        bottom.push_back(&blob);
      }
      if (param.find("MAX") != std::string::npos) fill_separated(ins, 17 + s);
      // Unstable PROD divides by the bottom: keep it away from zero.
      if (param.find("false") != std::string::npos) {
        for (Blob& blob : ins) {
          float* data = blob.mutable_cpu_data();
          for (int64_t j = 0; j < blob.count(); ++j) data[j] += data[j] < 0 ? -0.5f : 0.5f;
        }
      }
      Blob top;
      LayerPtr layer = create_layer(layer_param("name: 'e' type: 'Eltwise' " + param));
      SCOPED_TRACE(param + " shape " + shape_string(shapes[s]));
      check_gradient(*layer, bottom, {&top});
    }
  }
  // SUM with coefficients, three bottoms.
  std::vector<Blob> ins(3);
  for (Blob& blob : ins) {
    blob.reshape({3, 2, 5});
    fill_gaussian(blob);
  }
  Blob top;
  LayerPtr layer = create_layer(layer_param(
      "name: 'e' type: 'Eltwise' eltwise_param { coeff: 0.5 coeff: -1.5 coeff: 2 }"));
  check_gradient(*layer, {&ins[0], &ins[1], &ins[2]}, {&top});
}

TEST(EltwiseLayer, BadShapesAndParameters) {
  Blob a({2, 3}), b({3, 2}), top;
  LayerPtr layer = create_layer(layer_param("name: 'mix' type: 'Eltwise'"));
  const std::string message = setup_error(*layer, {&a, &b}, {&top});
  EXPECT_TRUE(contains(message, "layer mix (Eltwise)"));
  EXPECT_TRUE(contains(message, "bottom 0 is 2 x 3 (6), bottom 1 is 3 x 2 (6)"));

  LayerPtr coeffs = create_layer(
      layer_param("name: 'mix' type: 'Eltwise' eltwise_param { coeff: 1 coeff: 2 coeff: 3 }"));
  EXPECT_TRUE(contains(setup_error(*coeffs, {&a, &a}, {&top}), "one coeff per bottom (2), got 3"));

  LayerPtr prod = create_layer(layer_param(
      "name: 'mix' type: 'Eltwise' eltwise_param { operation: PROD coeff: 1 coeff: 2 }"));
  EXPECT_TRUE(contains(setup_error(*prod, {&a, &a}, {&top}), "SUM only, not PROD"));

  LayerPtr one = create_layer(layer_param("name: 'mix' type: 'Eltwise'"));
  EXPECT_TRUE(contains(setup_error(*one, {&a}, {&top}), "at least 2 bottom blob(s), got 1"));
}

}  // namespace
}  // namespace engine
