#include <gtest/gtest.h>

#include "core/layer_registry.hpp"
#include "gradient_checker.hpp"

namespace engine {
namespace {

using namespace testing;

TEST(InputLayer, ShapesTopsFromOneShapeOrOnePerTop) {
  Blob a, b;
  LayerPtr one = create_layer(layer_param(
      "name: 'in' type: 'Input' top: 'a' top: 'b' input_param { shape { dim: 2 dim: 3 } }"));
  one->setup({}, {&a, &b});
  EXPECT_EQ(a.shape(), (std::vector<int>{2, 3}));
  EXPECT_EQ(b.shape(), (std::vector<int>{2, 3}));

  LayerPtr each = create_layer(layer_param(
      "name: 'in' type: 'Input' top: 'a' top: 'b' "
      "input_param { shape { dim: 4 } shape { dim: 1 dim: 5 } }"));
  each->setup({}, {&a, &b});
  EXPECT_EQ(a.shape(), (std::vector<int>{4}));
  EXPECT_EQ(b.shape(), (std::vector<int>{1, 5}));
}

TEST(InputLayer, WrongNumberOfShapesNamesTheLayer) {
  Blob a, b, c;
  LayerPtr layer = create_layer(layer_param(
      "name: 'feed' type: 'Input' top: 'a' top: 'b' top: 'c' "
      "input_param { shape { dim: 4 } shape { dim: 5 } }"));
  const std::string message = setup_error(*layer, {}, {&a, &b, &c});
  EXPECT_TRUE(contains(message, "layer feed (Input)"));
  EXPECT_TRUE(contains(message, "one per top (3)"));
}

TEST(DummyDataLayer, ConstantAndRandomFillers) {
  Blob a, b;
  LayerPtr layer = create_layer(layer_param(
      "name: 'd' type: 'DummyData' top: 'a' top: 'b' dummy_data_param { "
      "shape { dim: 2 dim: 3 } shape { dim: 10 } "
      "data_filler { type: 'constant' value: 7 } data_filler { type: 'uniform' min: 2 max: 3 } }"));
  layer->setup({}, {&a, &b});
  layer->forward({}, {&a, &b});
  for (int i = 0; i < a.count(); ++i) EXPECT_EQ(a.cpu_data()[i], 7);
  const std::vector<float> first = data_of(b);
  for (float v : first) {
    EXPECT_GE(v, 2);
    EXPECT_LE(v, 3);
  }
  layer->forward({}, {&a, &b});
  EXPECT_NE(first, data_of(b)) << "a random filler is drawn again on every forward pass";
}

TEST(DummyDataLayer, LegacyFourDimensionalShape) {
  Blob a;
  LayerPtr layer = create_layer(layer_param(
      "name: 'd' type: 'DummyData' top: 'a' "
      "dummy_data_param { num: 2 channels: 3 height: 4 width: 5 }"));
  layer->setup({}, {&a});
  EXPECT_EQ(a.shape(), (std::vector<int>{2, 3, 4, 5}));
  EXPECT_EQ(a.cpu_data()[0], 0);
}

TEST(LayerRegistry, UnknownTypeListsRegisteredTypes) {
  expect_error([] { create_layer(layer_param("name: 'mystery' type: 'Convolutoin'")); },
               {"mystery", "'Convolutoin'", "Input"});
}

}  // namespace
}  // namespace engine
