#include <gtest/gtest.h>

#include "core/layer_registry.hpp"
#include "gradient_checker.hpp"

namespace engine {
namespace {

using namespace testing;

using Shape = std::vector<int>;

// Flatten and Reshape have no backward pass of their own: the top's gradient is the bottom's
// memory. The tests check that aliasing, and the gradient checker sees through it.
void expect_alias(const Blob& top, const Blob& bottom) {
  EXPECT_EQ(top.count(), bottom.count());
  EXPECT_EQ(top.cpu_data(), bottom.cpu_data());
  EXPECT_EQ(top.cpu_diff(), bottom.cpu_diff());
}

Shape output_shape(const std::string& param, const Shape& input) {
  Blob in(input), top;
  LayerPtr layer = create_layer(layer_param(param));
  layer->setup({&in}, {&top});
  layer->forward({&in}, {&top});
  expect_alias(top, in);
  return top.shape();
}

TEST(FlattenAndReshape, GradientPassesThrough) {
  for (const std::string param :
       {"name: 'f' type: 'Flatten' flatten_param { axis: 1 end_axis: 2 }",
        "name: 'r' type: 'Reshape' reshape_param { shape { dim: 0 dim: -1 } }"}) {
    SCOPED_TRACE(param);
    Blob bottom({2, 3, 2, 5}), top;
    fill_gaussian(bottom);
    LayerPtr layer = create_layer(layer_param(param));
    check_gradient(*layer, {&bottom}, {&top});
  }
}

TEST(FlattenLayer, MergesTheAxesFromAxisToEndAxis) {
  const Shape in = {2, 3, 4, 5};
  EXPECT_EQ(output_shape("name: 'f' type: 'Flatten'", in), (Shape{2, 60}));
  EXPECT_EQ(output_shape("name: 'f' type: 'Flatten' flatten_param { axis: 2 }", in),
            (Shape{2, 3, 20}));
  EXPECT_EQ(output_shape("name: 'f' type: 'Flatten' flatten_param { axis: 1 end_axis: 2 }", in),
            (Shape{2, 12, 5}));
  EXPECT_EQ(output_shape("name: 'f' type: 'Flatten' flatten_param { axis: 0 end_axis: -2 }", in),
            (Shape{24, 5}));
  EXPECT_EQ(output_shape("name: 'f' type: 'Flatten' flatten_param { axis: -1 }", in),
            (Shape{2, 3, 4, 5}));
}

TEST(FlattenLayer, FollowsANewBottomShape) {
  Blob in({2, 3, 4}), top;
  LayerPtr layer = create_layer(layer_param("name: 'f' type: 'Flatten'"));
  layer->setup({&in}, {&top});
  in.reshape({5, 2, 2});
  layer->forward({&in}, {&top});
  EXPECT_EQ(top.shape(), (Shape{5, 4}));
  expect_alias(top, in);
}

TEST(FlattenLayer, BadParameters) {
  Blob in({2, 3, 4}), top;
  LayerPtr layer = create_layer(layer_param("name: 'flat' type: 'Flatten'"));
  std::string message = setup_error(*layer, {&in}, {&in});
  EXPECT_TRUE(contains(message, "layer flat (Flatten)"));
  EXPECT_TRUE(contains(message, "in-place"));

  LayerPtr far = create_layer(
      layer_param("name: 'flat' type: 'Flatten' flatten_param { end_axis: 3 }"));
  message = setup_error(*far, {&in}, {&top});
  EXPECT_TRUE(contains(message, "end_axis 3 is out of range for a bottom of shape 2 x 3 x 4"));

  LayerPtr backwards = create_layer(
      layer_param("name: 'flat' type: 'Flatten' flatten_param { axis: 2 end_axis: 1 }"));
  EXPECT_TRUE(contains(setup_error(*backwards, {&in}, {&top}), "comes after end_axis"));
}

TEST(ReshapeLayer, ZeroCopiesAndMinusOneInfers) {
  const Shape in = {2, 3, 4};
  EXPECT_EQ(output_shape("name: 'r' type: 'Reshape' reshape_param { shape { dim: 0 dim: -1 } }",
                         in),
            (Shape{2, 12}));
  EXPECT_EQ(output_shape("name: 'r' type: 'Reshape' reshape_param { shape { dim: -1 } }", in),
            (Shape{24}));
  EXPECT_EQ(output_shape("name: 'r' type: 'Reshape' "
                         "reshape_param { shape { dim: 0 dim: 0 dim: 2 dim: 2 } }",
                         in),
            (Shape{2, 3, 2, 2}));
  EXPECT_EQ(output_shape("name: 'r' type: 'Reshape' "
                         "reshape_param { shape { dim: 3 dim: -1 dim: 0 } }",
                         in),
            (Shape{3, 2, 4}));
  EXPECT_EQ(output_shape("name: 'r' type: 'Reshape' reshape_param { shape { dim: 6 dim: 4 } }",
                         in),
            (Shape{6, 4}));
}

TEST(ReshapeLayer, AxisAndNumAxesReplaceARange) {
  const Shape in = {2, 3, 4};
  // Replace axis 1 by 3 x 1.
  EXPECT_EQ(output_shape("name: 'r' type: 'Reshape' "
                         "reshape_param { axis: 1 num_axes: 1 shape { dim: 3 dim: 1 } }",
                         in),
            (Shape{2, 3, 1, 4}));
  // Insert a leading axis.
  EXPECT_EQ(output_shape("name: 'r' type: 'Reshape' "
                         "reshape_param { axis: 0 num_axes: 0 shape { dim: 1 } }",
                         in),
            (Shape{1, 2, 3, 4}));
  // axis -1 is the gap after the last axis.
  EXPECT_EQ(output_shape("name: 'r' type: 'Reshape' "
                         "reshape_param { axis: -1 num_axes: 0 shape { dim: 1 } }",
                         in),
            (Shape{2, 3, 4, 1}));
  // Merge the last two axes, inferring the size.
  EXPECT_EQ(output_shape("name: 'r' type: 'Reshape' "
                         "reshape_param { axis: -3 shape { dim: -1 } }",
                         in),
            (Shape{2, 12}));
  EXPECT_EQ(output_shape("name: 'r' type: 'Reshape' "
                         "reshape_param { axis: 1 num_axes: 2 shape { dim: 0 dim: -1 dim: 2 } }",
                         in),
            (Shape{2, 3, 2, 2}));
}

TEST(ReshapeLayer, FollowsANewBottomShape) {
  Blob in({2, 3, 4}), top;
  LayerPtr layer = create_layer(
      layer_param("name: 'r' type: 'Reshape' reshape_param { shape { dim: 0 dim: -1 } }"));
  layer->setup({&in}, {&top});
  in.reshape({6, 5, 1});
  layer->forward({&in}, {&top});
  EXPECT_EQ(top.shape(), (Shape{6, 5}));
  expect_alias(top, in);
}

TEST(ReshapeLayer, ImpossibleShapesNameTheLayerAndBothShapes) {
  Blob in({2, 3, 4}), top;
  LayerPtr mismatch = create_layer(
      layer_param("name: 'view' type: 'Reshape' reshape_param { shape { dim: 2 dim: 5 } }"));
  std::string message = setup_error(*mismatch, {&in}, {&top});
  EXPECT_TRUE(contains(message, "layer view (Reshape)"));
  EXPECT_TRUE(contains(message, "cannot reshape bottom 2 x 3 x 4 (24) to 2 x 5 (10)"));

  LayerPtr indivisible = create_layer(
      layer_param("name: 'view' type: 'Reshape' reshape_param { shape { dim: 5 dim: -1 } }"));
  message = setup_error(*indivisible, {&in}, {&top});
  EXPECT_TRUE(contains(message, "layer view (Reshape)"));
  EXPECT_TRUE(contains(message, "shape 5 x -1"));
  EXPECT_TRUE(contains(message, "bottom 2 x 3 x 4 (24) does not divide into parts of 5"));

  LayerPtr two = create_layer(layer_param(
      "name: 'view' type: 'Reshape' reshape_param { shape { dim: -1 dim: -1 } }"));
  EXPECT_TRUE(contains(setup_error(*two, {&in}, {&top}), "at most one -1"));

  LayerPtr negative = create_layer(
      layer_param("name: 'view' type: 'Reshape' reshape_param { shape { dim: -2 } }"));
  EXPECT_TRUE(contains(setup_error(*negative, {&in}, {&top}), "dimension 0 is -2"));

  LayerPtr nothing_to_copy = create_layer(layer_param(
      "name: 'view' type: 'Reshape' reshape_param { axis: 2 shape { dim: 0 dim: 0 } }"));
  EXPECT_TRUE(contains(setup_error(*nothing_to_copy, {&in}, {&top}),
                       "has 0 at dimension 1 but bottom 2 x 3 x 4 (24) has no axis 3 to copy"));

  LayerPtr far = create_layer(layer_param(
      "name: 'view' type: 'Reshape' reshape_param { axis: 4 shape { dim: 1 } }"));
  EXPECT_TRUE(contains(setup_error(*far, {&in}, {&top}), "axis 4 is out of range"));

  LayerPtr past_end = create_layer(layer_param(
      "name: 'view' type: 'Reshape' reshape_param { axis: 1 num_axes: 3 shape { dim: -1 } }"));
  EXPECT_TRUE(contains(setup_error(*past_end, {&in}, {&top}), "reaches past the end"));

  LayerPtr in_place = create_layer(
      layer_param("name: 'view' type: 'Reshape' reshape_param { shape { dim: -1 } }"));
  EXPECT_TRUE(contains(setup_error(*in_place, {&in}, {&in}), "in-place"));
}

}  // namespace
}  // namespace engine
