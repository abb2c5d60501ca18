#include <gtest/gtest.h>

#include "core/layer_registry.hpp"
#include "gradient_checker.hpp"

namespace engine {
namespace {

using namespace testing;

using Values = std::vector<float>;
using Shape = std::vector<int>;

LayerPtr argmax(const std::string& fields, const std::string& name = "am") {
  return create_layer(
      layer_param("name: '" + name + "' type: 'ArgMax' argmax_param { " + fields + " }"));
}

// ---- ArgMax ---------------------------------------------------------------------------------

TEST(ArgMaxLayer, IndicesPerItemByHand) {
  Blob in, out;
  set_blob(in, {2, 5}, {3, 9, 1, 9, 4,  //
                        -1, -7, 0, -2, 5});
  LayerPtr layer = argmax("");
  layer->setup({&in}, {&out});
  layer->forward({&in}, {&out});
  EXPECT_EQ(out.shape(), (Shape{2, 1, 1}));
  // A tie ranks the larger index first, as Caffe's sort of (value, index) pairs does.
  EXPECT_EQ(data_of(out), (Values{3, 4}));
}

TEST(ArgMaxLayer, TopKWithValuesByHand) {
  Blob in, out;
  set_blob(in, {2, 1, 2, 2}, {3, 9, 1, 9,  //
                              -1, -7, 0, -2});
  LayerPtr layer = argmax("top_k: 3 out_max_val: true");
  layer->setup({&in}, {&out});
  layer->forward({&in}, {&out});
  EXPECT_EQ(out.shape(), (Shape{2, 2, 3, 1}));
  EXPECT_EQ(data_of(out), (Values{3, 1, 0, 9, 9, 3,  //
                                  2, 0, 3, 0, -1, -2}));
}

TEST(ArgMaxLayer, AlongAnAxisByHand) {
  Blob in, out;
  // [1, 3, 2]: along axis 1, position 0 sees (1, 5, 3), position 1 sees (8, 2, 8).
  set_blob(in, {1, 3, 2}, {1, 8, 5, 2, 3, 8});
  LayerPtr indices = argmax("axis: 1 top_k: 2");
  indices->setup({&in}, {&out});
  indices->forward({&in}, {&out});
  EXPECT_EQ(out.shape(), (Shape{1, 2, 2}));
  EXPECT_EQ(data_of(out), (Values{1, 2, 2, 0}));
  LayerPtr values = argmax("axis: -2 top_k: 2 out_max_val: true");
  values->setup({&in}, {&out});
  values->forward({&in}, {&out});
  EXPECT_EQ(data_of(out), (Values{5, 8, 3, 8}));
}

TEST(ArgMaxLayer, Errors) {
  Blob in({2, 3, 4}), out;
  expect_error([&] { argmax("top_k: 0", "a1")->setup({&in}, {&out}); },
               {"layer a1 (ArgMax)", "top_k must be at least 1"});
  expect_error([&] { argmax("top_k: 13", "a2")->setup({&in}, {&out}); },
               {"layer a2 (ArgMax)", "top_k (13) must not exceed the values per item (12)"});
  expect_error([&] { argmax("axis: 1 top_k: 4", "a3")->setup({&in}, {&out}); },
               {"layer a3 (ArgMax)", "must not exceed the length of axis 1"});
  expect_error([&] { argmax("axis: 3", "a4")->setup({&in}, {&out}); },
               {"layer a4 (ArgMax)", "axis 3 is out of range"});
  LayerPtr layer = argmax("", "a5");
  layer->setup({&in}, {&out});
  expect_error([&] { layer->backward({&out}, {true}, {&in}); },
               {"layer a5 (ArgMax)", "no gradient"});
}

// ---- Reduction ------------------------------------------------------------------------------

LayerPtr reduction(const std::string& fields, const std::string& name = "r") {
  return create_layer(
      layer_param("name: '" + name + "' type: 'Reduction' reduction_param { " + fields + " }"));
}

TEST(ReductionLayer, OperationsByHand) {
  Blob in, out;
  set_blob(in, {2, 3}, {1, -2, 3, -4, 5, 6});
  struct Case {
    std::string fields;
    Shape shape;
    Values expected;
  };
  const std::vector<Case> cases = {
      {"", {}, {9}},
      {"axis: 1", {2}, {2, 7}},
      {"axis: 1 operation: ASUM", {2}, {6, 15}},
      {"axis: 1 operation: SUMSQ coeff: 0.5", {2}, {7, 38.5f}},
      {"axis: -1 operation: MEAN coeff: 3", {2}, {2, 7}},
      {"operation: MEAN", {}, {1.5f}},
  };
  for (const Case& c : cases) {
    LayerPtr layer = reduction(c.fields);
    layer->setup({&in}, {&out});
    layer->forward({&in}, {&out});
    EXPECT_EQ(out.shape(), c.shape) << c.fields;
    EXPECT_EQ(data_of(out), c.expected) << c.fields;
  }
}

TEST(ReductionLayer, BackwardByHand) {
  Blob in, out;
  set_blob(in, {2, 2}, {1, -2, 0, 4});
  LayerPtr layer = reduction("axis: 1 operation: ASUM coeff: 2");
  layer->setup({&in}, {&out});
  layer->forward({&in}, {&out});
  out.mutable_cpu_diff()[0] = 1;
  out.mutable_cpu_diff()[1] = 10;
  layer->backward({&out}, {true}, {&in});
  EXPECT_EQ(diff_of(in), (Values{2, -2, 0, 20})) << "sign(x) * coeff * top diff, 0 at 0";
}

TEST(ReductionLayer, Gradients) {
  for (const std::string op : {"SUM", "ASUM", "SUMSQ", "MEAN"}) {
    for (const std::string axis : {"0", "1", "2", "-1"}) {
      SCOPED_TRACE(op + " axis " + axis);
      Blob in({2, 3, 4}), out;
      fill_gaussian(in);
      LayerPtr layer = reduction("operation: " + op + " axis: " + axis + " coeff: -1.5");
      GradientCheckOptions options;
      if (op == "ASUM") options.kink_range = 0.02f;  // |x| bends at 0
      check_gradient(*layer, {&in}, {&out}, options);
    }
  }
}

TEST(ReductionLayer, Errors) {
  Blob in({2, 3}), out;
  expect_error([&] { reduction("axis: 2", "r1")->setup({&in}, {&out}); },
               {"layer r1 (Reduction)", "axis 2 is out of range", "2 x 3"});
}

}  // namespace
}  // namespace engine
