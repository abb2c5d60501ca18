#include <gtest/gtest.h>

#include "core/layer_registry.hpp"
#include "gradient_checker.hpp"

namespace engine {
namespace {

using namespace testing;

using Values = std::vector<float>;
using Shape = std::vector<int>;

// 2 x 3 x 2 holding 1..12: [n][c][s].
void counting_input(Blob& blob) {
  set_blob(blob, {2, 3, 2}, {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12});
}

// Sets the layer up on x, sets its blobs to the values given, runs forward, returns the top.
Values learned_forward(const std::string& param, const std::vector<Values>& blobs,
                       Shape* blob0_shape = nullptr) {
  Blob x, top;
  counting_input(x);
  LayerPtr layer = create_layer(layer_param(param));
  layer->setup({&x}, {&top});
  EXPECT_EQ(layer->blobs().size(), blobs.size());
  for (size_t i = 0; i < blobs.size(); ++i) {
    set_blob(*layer->blobs()[i], layer->blobs()[i]->shape(), blobs[i]);
  }
  if (blob0_shape) *blob0_shape = layer->blobs()[0]->shape();
  layer->forward({&x}, {&top});
  EXPECT_EQ(top.shape(), x.shape());
  return data_of(top);
}

TEST(ScaleLayer, LearnedScaleBroadcastsFromAxis) {
  Shape shape;
  EXPECT_EQ(learned_forward("name: 's' type: 'Scale'", {{1, 2, 3}}, &shape),
            (Values{1, 2, 6, 8, 15, 18, 7, 8, 18, 20, 33, 36}));
  EXPECT_EQ(shape, (Shape{3}));
  EXPECT_EQ(learned_forward("name: 's' type: 'Scale' scale_param { bias_term: true }",
                            {{1, 2, 3}, {10, 20, 30}}),
            (Values{11, 12, 26, 28, 45, 48, 17, 18, 38, 40, 63, 66}));
  EXPECT_EQ(learned_forward("name: 's' type: 'Scale' scale_param { num_axes: 2 }",
                            {{1, -1, 2, 0, 0.5f, 1}}, &shape),
            (Values{1, -2, 6, 0, 2.5f, 6, 7, -8, 18, 0, 5.5f, 12}));
  EXPECT_EQ(shape, (Shape{3, 2}));
  EXPECT_EQ(learned_forward("name: 's' type: 'Scale' scale_param { num_axes: 0 }", {{2}}, &shape),
            (Values{2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24}));
  EXPECT_EQ(shape, Shape{});
  EXPECT_EQ(learned_forward("name: 's' type: 'Scale' scale_param { axis: -1 }", {{1, 10}}, &shape),
            (Values{1, 20, 3, 40, 5, 60, 7, 80, 9, 100, 11, 120}));
  EXPECT_EQ(shape, (Shape{2}));
  EXPECT_EQ(learned_forward("name: 's' type: 'Scale' scale_param { axis: 0 num_axes: -1 }",
                            {{1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, -1}}, &shape),
            (Values{1, 2, 3, 4, 5, 6, 0, 0, 0, 0, 0, -12}));
  EXPECT_EQ(shape, (Shape{2, 3, 2}));
}

TEST(ScaleLayer, DefaultFillersAreIdentity) {
  Blob x, top;
  counting_input(x);
  LayerPtr layer =
      create_layer(layer_param("name: 's' type: 'Scale' scale_param { bias_term: true }"));
  layer->setup({&x}, {&top});
  EXPECT_EQ(data_of(*layer->blobs()[0]), (Values{1, 1, 1}));
  EXPECT_EQ(data_of(*layer->blobs()[1]), (Values{0, 0, 0}));
  layer->forward({&x}, {&top});
  EXPECT_EQ(data_of(top), data_of(x));
}

TEST(ScaleLayer, ScaleFromSecondBottom) {
  Blob x, scale, top;
  counting_input(x);
  set_blob(scale, {2, 3}, {1, 0, -1, 2, 0.5f, 1});
  LayerPtr layer =
      create_layer(layer_param("name: 's' type: 'Scale' scale_param { axis: 0 }"));
  layer->setup({&x, &scale}, {&top});
  EXPECT_TRUE(layer->blobs().empty());
  layer->forward({&x, &scale}, {&top});
  EXPECT_EQ(data_of(top), (Values{1, 2, 0, 0, -5, -6, 14, 16, 4.5f, 5, 11, 12}));
}

TEST(ScaleLayer, BackwardByHandAccumulatesParameterGradients) {
  Blob x, top;
  set_blob(x, {2, 2}, {1, 2, 3, 4});
  LayerPtr layer = create_layer(layer_param("name: 's' type: 'Scale'"));
  layer->setup({&x}, {&top});
  set_blob(*layer->blobs()[0], {2}, {2, 3});
  layer->forward({&x}, {&top});
  top.set_diff(1);
  layer->blobs()[0]->set_diff(0);
  layer->backward({&top}, {true}, {&x});
  EXPECT_EQ(diff_of(x), (Values{2, 3, 2, 3}));
  EXPECT_EQ(diff_of(*layer->blobs()[0]), (Values{4, 6}));
  layer->backward({&top}, {true}, {&x});
  EXPECT_EQ(diff_of(*layer->blobs()[0]), (Values{8, 12})) << "parameter gradients add up";

  // Spatial axes after the scale: sums over them.
  set_blob(x, {1, 2, 2}, {1, 2, 3, 4});
  LayerPtr spatial = create_layer(layer_param("name: 's' type: 'Scale'"));
  spatial->setup({&x}, {&top});
  set_blob(*spatial->blobs()[0], {2}, {2, 3});
  spatial->forward({&x}, {&top});
  top.set_diff(1);
  spatial->blobs()[0]->set_diff(0);
  spatial->backward({&top}, {true}, {&x});
  EXPECT_EQ(diff_of(x), (Values{2, 2, 3, 3}));
  EXPECT_EQ(diff_of(*spatial->blobs()[0]), (Values{3, 7}));
}

TEST(ScaleLayer, GradientLearnedScale) {
  struct Case {
    const char* param;
    Shape shape;
  };
  const std::vector<Case> cases = {
      {"", {2, 3, 4}},
      {"num_axes: 2", {2, 3, 2, 2}},
      {"num_axes: 0", {3, 4}},
      {"axis: 0 num_axes: -1", {2, 3}},
      {"", {4, 3}},
      {"axis: -1", {3, 2, 5}},
      {"bias_term: true bias_filler { type: 'gaussian' }", {2, 3, 3}},
      {"bias_term: true num_axes: 0 bias_filler { type: 'gaussian' }", {2, 5}},
  };
  for (const Case& c : cases) {
    Blob x(c.shape), top;
    fill_gaussian(x);
    LayerPtr layer = create_layer(layer_param(
        std::string("name: 's' type: 'Scale' scale_param { filler { type: 'gaussian' } ") +
        c.param + " }"));
    SCOPED_TRACE(std::string(c.param) + " on " + shape_string(c.shape));
    check_gradient(*layer, {&x}, {&top});
  }
}

TEST(ScaleLayer, GradientScaleFromBottom) {
  struct Case {
    const char* param;
    Shape shape, scale;
  };
  const std::vector<Case> cases = {
      {"axis: 0", {2, 3, 4}, {2, 3}},
      {"", {2, 3, 4}, {3}},
      {"", {3, 2}, {}},
      {"axis: 0", {3, 2}, {3, 2}},
      {"bias_term: true bias_filler { type: 'gaussian' }", {2, 3, 2}, {3, 2}},
  };
  for (const Case& c : cases) {
    Blob x(c.shape), scale(c.scale), top;
    fill_gaussian(x);
    fill_gaussian(scale);
    LayerPtr layer = create_layer(
        layer_param(std::string("name: 's' type: 'Scale' scale_param { ") + c.param + " }"));
    SCOPED_TRACE(std::string(c.param) + " on " + shape_string(c.shape) + " by " +
                 shape_string(c.scale));
    check_gradient(*layer, {&x, &scale}, {&top});
  }
}

TEST(ScaleLayer, GradientInPlace) {
  Blob x({2, 3, 2});
  fill_gaussian(x);
  LayerPtr layer = create_layer(layer_param(
      "name: 's' type: 'Scale' scale_param { filler { type: 'gaussian' } bias_term: true "
      "bias_filler { type: 'gaussian' } }"));
  check_gradient(*layer, {&x}, {&x});

  Blob y({2, 3, 2}), scale({3});
  fill_gaussian(y);
  fill_gaussian(scale);
  LayerPtr two = create_layer(layer_param("name: 's' type: 'Scale'"));
  check_gradient(*two, {&y, &scale}, {&y});
}

TEST(ScaleLayer, BadShapesAndParameters) {
  Blob x({2, 3, 2}), scale({4}), top;
  LayerPtr mismatch = create_layer(layer_param("name: 'gain' type: 'Scale'"));
  std::string message = setup_error(*mismatch, {&x, &scale}, {&top});
  EXPECT_TRUE(contains(message, "layer gain (Scale)"));
  EXPECT_TRUE(contains(message, "scale of shape 4 (4) does not match bottom 0 2 x 3 x 2 (12)"));

  LayerPtr far =
      create_layer(layer_param("name: 'gain' type: 'Scale' scale_param { num_axes: 3 }"));
  message = setup_error(*far, {&x}, {&top});
  EXPECT_TRUE(contains(message, "a scale of 3 axes from axis 1 reaches past the end"));

  LayerPtr negative =
      create_layer(layer_param("name: 'gain' type: 'Scale' scale_param { num_axes: -2 }"));
  EXPECT_TRUE(contains(setup_error(*negative, {&x}, {&top}), "num_axes must be non-negative"));

  LayerPtr axis = create_layer(layer_param("name: 'gain' type: 'Scale' scale_param { axis: 3 }"));
  EXPECT_TRUE(contains(setup_error(*axis, {&x}, {&top}), "gain (Scale): axis 3 is out of range"));

  LayerPtr stored = create_layer(layer_param(
      "name: 'gain' type: 'Scale' blobs { shape { dim: 4 } data: 1 data: 1 data: 1 data: 1 }"));
  EXPECT_TRUE(contains(setup_error(*stored, {&x}, {&top}),
                       "stored scale blob has shape 4 (4), expected 3"));

  LayerPtr count = create_layer(layer_param(
      "name: 'gain' type: 'Scale' scale_param { bias_term: true } "
      "blobs { shape { dim: 3 } data: 1 data: 1 data: 1 }"));
  EXPECT_TRUE(contains(setup_error(*count, {&x}, {&top}), "has 1 stored blobs, expected 2"));
}

// ---- Bias -----------------------------------------------------------------------------------

TEST(BiasLayer, LearnedAndBottomBias) {
  Blob x, bias, top;
  set_blob(x, {2, 3}, {1, 2, 3, 4, 5, 6});
  LayerPtr learned = create_layer(layer_param("name: 'b' type: 'Bias'"));
  learned->setup({&x}, {&top});
  ASSERT_EQ(learned->blobs().size(), 1u);
  EXPECT_EQ(data_of(*learned->blobs()[0]), (Values{0, 0, 0})) << "the default bias is zero";
  set_blob(*learned->blobs()[0], {3}, {10, 20, 30});
  learned->forward({&x}, {&top});
  EXPECT_EQ(data_of(top), (Values{11, 22, 33, 14, 25, 36}));

  set_blob(bias, {2}, {100, 200});
  LayerPtr from_bottom =
      create_layer(layer_param("name: 'b' type: 'Bias' bias_param { axis: 0 }"));
  from_bottom->setup({&x, &bias}, {&top});
  from_bottom->forward({&x, &bias}, {&top});
  EXPECT_EQ(data_of(top), (Values{101, 102, 103, 204, 205, 206}));

  // Backward: the bias gradient sums the top's over the broadcast axes.
  const Values grad = {1, 2, 3, 4, 5, 6};
  std::copy(grad.begin(), grad.end(), top.mutable_cpu_diff());
  from_bottom->backward({&top}, {true, true}, {&x, &bias});
  EXPECT_EQ(diff_of(x), grad);
  EXPECT_EQ(diff_of(bias), (Values{6, 15}));

  learned->forward({&x}, {&top});
  std::copy(grad.begin(), grad.end(), top.mutable_cpu_diff());
  learned->blobs()[0]->set_diff(1);
  learned->backward({&top}, {false}, {&x});
  EXPECT_EQ(diff_of(*learned->blobs()[0]), (Values{6, 8, 10})) << "parameter gradients add up";
}

TEST(BiasLayer, Gradient) {
  struct Case {
    const char* param;
    Shape shape, bias;  // bias empty and learned unless `bottom`
    bool bottom;
  };
  const std::vector<Case> cases = {
      {"", {2, 3, 4}, {}, false},
      {"num_axes: -1", {2, 3, 2}, {}, false},
      {"num_axes: 0", {4, 3}, {}, false},
      {"", {5, 3}, {}, false},
      {"axis: 0", {2, 3, 4}, {2, 3}, true},
      {"axis: -1", {2, 3, 4}, {4}, true},
  };
  for (const Case& c : cases) {
    Blob x(c.shape), bias(c.bias), top;
    fill_gaussian(x);
    fill_gaussian(bias);
    LayerPtr layer = create_layer(layer_param(
        std::string("name: 'b' type: 'Bias' bias_param { filler { type: 'gaussian' } ") +
        c.param + " }"));
    SCOPED_TRACE(std::string(c.param) + " on " + shape_string(c.shape));
    Blobs bottom = {&x};
    if (c.bottom) bottom.push_back(&bias);
    check_gradient(*layer, bottom, {&top});
  }
  Blob x({3, 2, 2});
  fill_gaussian(x);
  LayerPtr in_place = create_layer(
      layer_param("name: 'b' type: 'Bias' bias_param { filler { type: 'gaussian' } }"));
  check_gradient(*in_place, {&x}, {&x});
}

TEST(BiasLayer, BadShapes) {
  Blob x({2, 3, 2}), bias({2, 2}), top;
  LayerPtr layer = create_layer(layer_param("name: 'shift' type: 'Bias'"));
  const std::string message = setup_error(*layer, {&x, &bias}, {&top});
  EXPECT_TRUE(contains(message, "layer shift (Bias)"));
  EXPECT_TRUE(contains(message, "bias of shape 2 x 2 (4) does not match bottom 0 2 x 3 x 2 (12)"));

  LayerPtr far =
      create_layer(layer_param("name: 'shift' type: 'Bias' bias_param { axis: 2 num_axes: 2 }"));
  EXPECT_TRUE(contains(setup_error(*far, {&x}, {&top}), "a bias of 2 axes from axis 2 reaches"));
}

}  // namespace
}  // namespace engine
