#include <gtest/gtest.h>

#include "core/layer_registry.hpp"
#include "gradient_checker.hpp"

namespace engine {
namespace {

using namespace testing;

using Values = std::vector<float>;

// ---- Split ----------------------------------------------------------------------------------

TEST(SplitLayer, TopsAliasTheBottomData) {
  Blob in, a, b;
  set_blob(in, {2, 3}, {1, 2, 3, 4, 5, 6});
  LayerPtr layer = create_layer(layer_param("name: 's' type: 'Split'"));
  layer->setup({&in}, {&a, &b});
  layer->forward({&in}, {&a, &b});
  EXPECT_EQ(a.shape(), in.shape());
  EXPECT_EQ(a.cpu_data(), in.cpu_data()) << "no copy: the tops share the bottom's memory";
  EXPECT_EQ(b.cpu_data(), in.cpu_data());
  EXPECT_NE(a.cpu_diff(), in.cpu_diff()) << "each consumer writes its own gradient";
  EXPECT_NE(a.cpu_diff(), b.cpu_diff());
}

TEST(SplitLayer, BackwardSumsTheTopsGradients) {
  Blob in, a, b, c;
  set_blob(in, {3}, {0, 0, 0});
  LayerPtr layer = create_layer(layer_param("name: 's' type: 'Split'"));
  layer->setup({&in}, {&a, &b, &c});
  layer->forward({&in}, {&a, &b, &c});
  const Values da = {1, 2, 3}, db = {10, 20, 30}, dc = {100, 200, 300};
  std::copy(da.begin(), da.end(), a.mutable_cpu_diff());
  std::copy(db.begin(), db.end(), b.mutable_cpu_diff());
  std::copy(dc.begin(), dc.end(), c.mutable_cpu_diff());
  layer->backward({&a, &b, &c}, {true}, {&in});
  EXPECT_EQ(diff_of(in), (Values{111, 222, 333}));
}

TEST(SplitLayer, SumsLargeBlobsAcrossBlocks) {
  // Longer than the summation block, and not a multiple of it.
  Blob in, a, b, c, d;
  in.reshape({20001});
  LayerPtr layer = create_layer(layer_param("name: 's' type: 'Split'"));
  layer->setup({&in}, {&a, &b, &c, &d});
  a.set_diff(1);
  b.set_diff(2);
  c.set_diff(4);
  d.set_diff(8);
  layer->backward({&a, &b, &c, &d}, {true}, {&in});
  for (float v : diff_of(in)) ASSERT_EQ(v, 15);
}

TEST(SplitLayer, Gradient) {
  for (const auto& shape : std::vector<std::vector<int>>{{2, 3, 4}, {7}, {1, 5, 1, 3}}) {
    for (int tops = 1; tops <= 3; ++tops) {
      Blob in;
      std::vector<Blob> outs(tops);
      Blobs top;
      for (Blob& blob : outs) top.push_back(&blob);
      in.reshape(shape);
      fill_gaussian(in);
      LayerPtr layer = create_layer(layer_param("name: 's' type: 'Split'"));
      check_gradient(*layer, {&in}, top);
    }
  }
}

TEST(SplitLayer, RefusesInPlace) {
  Blob in({2});
  LayerPtr layer = create_layer(layer_param("name: 'fork' type: 'Split'"));
  const std::string message = setup_error(*layer, {&in}, {&in});
  EXPECT_TRUE(contains(message, "layer fork (Split)"));
  EXPECT_TRUE(contains(message, "in-place"));
}

// ---- Concat ---------------------------------------------------------------------------------

TEST(ConcatLayer, JoinsAlongAxisZeroAndOne) {
  Blob a, b, top;
  set_blob(a, {1, 2}, {1, 2});
  set_blob(b, {2, 2}, {3, 4, 5, 6});
  LayerPtr rows = create_layer(layer_param("name: 'c' type: 'Concat' concat_param { axis: 0 }"));
  rows->setup({&a, &b}, {&top});
  rows->forward({&a, &b}, {&top});
  EXPECT_EQ(top.shape(), (std::vector<int>{3, 2}));
  EXPECT_EQ(data_of(top), (Values{1, 2, 3, 4, 5, 6}));

  set_blob(a, {2, 1}, {1, 2});
  set_blob(b, {2, 2}, {3, 4, 5, 6});
  LayerPtr columns = create_layer(layer_param("name: 'c' type: 'Concat'"));  // axis 1
  columns->setup({&a, &b}, {&top});
  columns->forward({&a, &b}, {&top});
  EXPECT_EQ(top.shape(), (std::vector<int>{2, 3}));
  EXPECT_EQ(data_of(top), (Values{1, 3, 4, 2, 5, 6}));
}

TEST(ConcatLayer, LegacyConcatDimAndNegativeAxis) {
  Blob a, b, top;
  set_blob(a, {2, 1, 2}, {1, 2, 3, 4});
  set_blob(b, {2, 1, 1}, {9, 8});
  LayerPtr last = create_layer(layer_param("name: 'c' type: 'Concat' concat_param { axis: -1 }"));
  last->setup({&a, &b}, {&top});
  last->forward({&a, &b}, {&top});
  EXPECT_EQ(top.shape(), (std::vector<int>{2, 1, 3}));
  EXPECT_EQ(data_of(top), (Values{1, 2, 9, 3, 4, 8}));

  set_blob(b, {1, 1, 2}, {9, 8});
  LayerPtr legacy =
      create_layer(layer_param("name: 'c' type: 'Concat' concat_param { concat_dim: 0 }"));
  legacy->setup({&a, &b}, {&top});
  legacy->forward({&a, &b}, {&top});
  EXPECT_EQ(top.shape(), (std::vector<int>{3, 1, 2}));
  EXPECT_EQ(data_of(top), (Values{1, 2, 3, 4, 9, 8}));
}

TEST(ConcatLayer, BackwardCutsTheGradientAndHonoursPropagateDown) {
  Blob a, b, top;
  set_blob(a, {2, 1}, {0, 0});
  set_blob(b, {2, 2}, {0, 0, 0, 0});
  LayerPtr layer = create_layer(layer_param("name: 'c' type: 'Concat'"));
  layer->setup({&a, &b}, {&top});
  layer->forward({&a, &b}, {&top});
  const Values grad = {1, 2, 3, 4, 5, 6};
  std::copy(grad.begin(), grad.end(), top.mutable_cpu_diff());
  a.set_diff(-7);
  layer->backward({&top}, {false, true}, {&a, &b});
  EXPECT_EQ(diff_of(a), (Values{-7, -7})) << "not asked for: untouched";
  EXPECT_EQ(diff_of(b), (Values{2, 3, 5, 6}));
  layer->backward({&top}, {true, true}, {&a, &b});
  EXPECT_EQ(diff_of(a), (Values{1, 4}));
}

TEST(ConcatLayer, OneBottomIsAnAlias) {
  Blob a({2, 3}), top;
  LayerPtr layer = create_layer(layer_param("name: 'c' type: 'Concat'"));
  layer->setup({&a}, {&top});
  EXPECT_EQ(top.shape(), a.shape());
  EXPECT_EQ(top.cpu_data(), a.cpu_data());
  EXPECT_EQ(top.cpu_diff(), a.cpu_diff());
}

TEST(ConcatLayer, Gradient) {
  struct Case {
    const char* param;
    std::vector<std::vector<int>> shapes;
  };
  const std::vector<Case> cases = {
      {"", {{2, 3, 3, 2}, {2, 5, 3, 2}}},
      {"concat_param { axis: 0 }", {{1, 3, 2}, {2, 3, 2}, {3, 3, 2}}},
      {"concat_param { axis: -1 }", {{3, 2, 1}, {3, 2, 4}}},
      {"concat_param { concat_dim: 2 }", {{2, 1, 3}, {2, 1, 1}}},
  };
  for (const Case& c : cases) {
    std::vector<Blob> ins(c.shapes.size());
    Blobs bottom;
    for (size_t i = 0; i < ins.size(); ++i) {
      ins[i].reshape(c.shapes[i]);
      fill_gaussian(ins[i]);
      bottom.push_back(&ins[i]);
    }
    Blob top;
    LayerPtr layer = create_layer(layer_param(std::string("name: 'c' type: 'Concat' ") + c.param));
    check_gradient(*layer, bottom, {&top});
  }
}

TEST(ConcatLayer, BadParametersAndShapes) {
  Blob a({2, 3, 4}), b({2, 5, 3}), top;
  LayerPtr mismatch = create_layer(layer_param("name: 'cat' type: 'Concat'"));
  std::string message = setup_error(*mismatch, {&a, &b}, {&top});
  EXPECT_TRUE(contains(message, "layer cat (Concat)"));
  EXPECT_TRUE(contains(message, "except along axis 1"));
  EXPECT_TRUE(contains(message, "2 x 3 x 4 (24)"));
  EXPECT_TRUE(contains(message, "2 x 5 x 3 (30)"));

  Blob flat({2, 3});
  LayerPtr axes = create_layer(layer_param("name: 'cat' type: 'Concat'"));
  EXPECT_TRUE(contains(setup_error(*axes, {&a, &flat}, {&top}), "bottom 1 is 2 x 3 (6)"));

  LayerPtr both = create_layer(
      layer_param("name: 'cat' type: 'Concat' concat_param { axis: 1 concat_dim: 1 }"));
  EXPECT_TRUE(contains(setup_error(*both, {&a, &a}, {&top}), "either axis or concat_dim"));

  LayerPtr far = create_layer(layer_param("name: 'cat' type: 'Concat' concat_param { axis: 3 }"));
  message = setup_error(*far, {&a, &a}, {&top});
  EXPECT_TRUE(contains(message, "layer cat (Concat): axis 3 is out of range"));

  LayerPtr legacy =
      create_layer(layer_param("name: 'cat' type: 'Concat' concat_param { concat_dim: 3 }"));
  EXPECT_TRUE(contains(setup_error(*legacy, {&a, &a}, {&top}), "concat_dim 3 is out of range"));
}

// ---- Slice ----------------------------------------------------------------------------------

TEST(SliceLayer, CutsAtSlicePointsAlongAxisZero) {
  Blob in, a, b, c;
  set_blob(in, {4, 2}, {1, 2, 3, 4, 5, 6, 7, 8});
  LayerPtr layer = create_layer(layer_param(
      "name: 's' type: 'Slice' slice_param { axis: 0 slice_point: 1 slice_point: 3 }"));
  layer->setup({&in}, {&a, &b, &c});
  layer->forward({&in}, {&a, &b, &c});
  EXPECT_EQ(a.shape(), (std::vector<int>{1, 2}));
  EXPECT_EQ(b.shape(), (std::vector<int>{2, 2}));
  EXPECT_EQ(c.shape(), (std::vector<int>{1, 2}));
  EXPECT_EQ(data_of(a), (Values{1, 2}));
  EXPECT_EQ(data_of(b), (Values{3, 4, 5, 6}));
  EXPECT_EQ(data_of(c), (Values{7, 8}));
}

TEST(SliceLayer, EqualPartsAlongAxisOneAndLegacySliceDim) {
  Blob in, a, b;
  set_blob(in, {2, 4}, {1, 2, 3, 4, 5, 6, 7, 8});
  LayerPtr layer = create_layer(layer_param("name: 's' type: 'Slice'"));  // axis 1
  layer->setup({&in}, {&a, &b});
  layer->forward({&in}, {&a, &b});
  EXPECT_EQ(data_of(a), (Values{1, 2, 5, 6}));
  EXPECT_EQ(data_of(b), (Values{3, 4, 7, 8}));

  LayerPtr legacy = create_layer(
      layer_param("name: 's' type: 'Slice' slice_param { slice_dim: 1 slice_point: 3 }"));
  legacy->setup({&in}, {&a, &b});
  legacy->forward({&in}, {&a, &b});
  EXPECT_EQ(data_of(a), (Values{1, 2, 3, 5, 6, 7}));
  EXPECT_EQ(data_of(b), (Values{4, 8}));
}

TEST(SliceLayer, BackwardReassemblesTheGradient) {
  Blob in, a, b;
  set_blob(in, {2, 3}, {0, 0, 0, 0, 0, 0});
  LayerPtr layer =
      create_layer(layer_param("name: 's' type: 'Slice' slice_param { slice_point: 1 }"));
  layer->setup({&in}, {&a, &b});
  layer->forward({&in}, {&a, &b});
  set_blob(a, {2, 1}, {0, 0});
  const Values da = {1, 4}, db = {2, 3, 5, 6};
  std::copy(da.begin(), da.end(), a.mutable_cpu_diff());
  std::copy(db.begin(), db.end(), b.mutable_cpu_diff());
  in.set_diff(-1);
  layer->backward({&a, &b}, {false}, {&in});
  EXPECT_EQ(diff_of(in), (Values{-1, -1, -1, -1, -1, -1}));
  layer->backward({&a, &b}, {true}, {&in});
  EXPECT_EQ(diff_of(in), (Values{1, 2, 3, 4, 5, 6}));
}

TEST(SliceLayer, OneTopIsAnAlias) {
  Blob in({3, 2}), top;
  LayerPtr layer = create_layer(layer_param("name: 's' type: 'Slice'"));
  layer->setup({&in}, {&top});
  EXPECT_EQ(top.shape(), in.shape());
  EXPECT_EQ(top.cpu_data(), in.cpu_data());
  EXPECT_EQ(top.cpu_diff(), in.cpu_diff());
}

TEST(SliceLayer, Gradient) {
  struct Case {
    const char* param;
    std::vector<int> shape;
    int tops;
  };
  const std::vector<Case> cases = {
      {"", {2, 6, 3}, 3},
      {"slice_param { axis: 0 slice_point: 1 slice_point: 4 }", {5, 3, 2}, 3},
      {"slice_param { axis: -1 slice_point: 2 }", {3, 2, 5}, 2},
      {"slice_param { slice_dim: 2 }", {2, 1, 4, 3}, 2},
  };
  for (const Case& c : cases) {
    Blob in(c.shape);
    fill_gaussian(in);
    std::vector<Blob> outs(c.tops);
    Blobs top;
    for (Blob& blob : outs) top.push_back(&blob);
    LayerPtr layer = create_layer(layer_param(std::string("name: 's' type: 'Slice' ") + c.param));
    check_gradient(*layer, {&in}, top);
  }
}

TEST(SliceLayer, BadParameters) {
  Blob in({2, 5, 3}), a, b, c;
  LayerPtr uneven = create_layer(layer_param("name: 'cut' type: 'Slice'"));
  std::string message = setup_error(*uneven, {&in}, {&a, &b});
  EXPECT_TRUE(contains(message, "layer cut (Slice)"));
  EXPECT_TRUE(contains(message, "(length 5) into 2 equal parts"));

  LayerPtr count = create_layer(
      layer_param("name: 'cut' type: 'Slice' slice_param { slice_point: 1 slice_point: 2 }"));
  EXPECT_TRUE(contains(setup_error(*count, {&in}, {&a, &b}),
                       "one slice_point fewer than its 2 tops, got 2"));

  LayerPtr order = create_layer(
      layer_param("name: 'cut' type: 'Slice' slice_param { slice_point: 3 slice_point: 2 }"));
  EXPECT_TRUE(contains(setup_error(*order, {&in}, {&a, &b, &c}), "got 2 after 3"));

  LayerPtr beyond =
      create_layer(layer_param("name: 'cut' type: 'Slice' slice_param { slice_point: 6 }"));
  EXPECT_TRUE(contains(setup_error(*beyond, {&in}, {&a, &b}), "within (0, 5]"));

  LayerPtr both =
      create_layer(layer_param("name: 'cut' type: 'Slice' slice_param { axis: 1 slice_dim: 1 }"));
  EXPECT_TRUE(contains(setup_error(*both, {&in}, {&a, &b}), "either axis or slice_dim"));

  LayerPtr far =
      create_layer(layer_param("name: 'cut' type: 'Slice' slice_param { slice_dim: 4 }"));
  EXPECT_TRUE(contains(setup_error(*far, {&in}, {&a, &b}), "slice_dim 4 is out of range"));
}

// ---- Silence --------------------------------------------------------------------------------

TEST(SilenceLayer, NoTopsAndZeroGradientWhenAsked) {
  Blob a({2, 2}), b({3});
  a.set_diff(5);
  b.set_diff(5);
  LayerPtr layer = create_layer(layer_param("name: 'quiet' type: 'Silence'"));
  layer->setup({&a, &b}, {});
  layer->forward({&a, &b}, {});
  layer->backward({}, {true, false}, {&a, &b});
  EXPECT_EQ(diff_of(a), (Values{0, 0, 0, 0}));
  EXPECT_EQ(diff_of(b), (Values{5, 5, 5}));

  Blob top;
  EXPECT_TRUE(contains(setup_error(*layer, {&a}, {&top}), "produces 0 top blob(s), got 1"));
}

}  // namespace
}  // namespace engine
