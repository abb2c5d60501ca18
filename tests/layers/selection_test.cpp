#include <gtest/gtest.h>

#include "core/layer_registry.hpp"
#include "gradient_checker.hpp"

namespace engine {
namespace {

using namespace testing;

using Values = std::vector<float>;
using Shape = std::vector<int>;

LayerPtr make(const std::string& type, const std::string& fields = "",
              const std::string& name = "l") {
  return create_layer(layer_param("name: '" + name + "' type: '" + type + "' " + fields));
}

Values iota(int n, float start = 0) {
  Values v(n);
  for (int i = 0; i < n; ++i) v[i] = start + i;
  return v;
}

// ---- Crop -----------------------------------------------------------------------------------

// 1 x 2 x 3 x 4 values 0..23; crop to 1 x 1 x 2 x 2 from axis 1 with offsets (1, 1, 2):
// channel 1 (12..23), rows 1..2, columns 2..3.
TEST(CropLayer, PerAxisOffsetsByHand) {
  Blob in, like({1, 1, 2, 2}), out;
  set_blob(in, {1, 2, 3, 4}, iota(24));
  LayerPtr layer = make("Crop", "crop_param { axis: 1 offset: 1 offset: 1 offset: 2 }");
  layer->setup({&in, &like}, {&out});
  layer->forward({&in, &like}, {&out});
  EXPECT_EQ(out.shape(), (Shape{1, 1, 2, 2}));
  EXPECT_EQ(data_of(out), (Values{18, 19, 22, 23}));
}

// The default: axis 2, offset 0 for both spatial axes; one offset applies to every cropped axis.
TEST(CropLayer, DefaultsAndOneOffsetByHand) {
  Blob in, like({5, 5, 2, 3}), out;
  set_blob(in, {1, 2, 3, 4}, iota(24));
  LayerPtr corner = make("Crop");
  corner->setup({&in, &like}, {&out});
  corner->forward({&in, &like}, {&out});
  EXPECT_EQ(out.shape(), (Shape{1, 2, 2, 3})) << "axes before `axis` keep bottom 0's sizes";
  EXPECT_EQ(data_of(out), (Values{0, 1, 2, 4, 5, 6, 12, 13, 14, 16, 17, 18}));
  LayerPtr shifted = make("Crop", "crop_param { offset: 1 }");
  shifted->setup({&in, &like}, {&out});
  shifted->forward({&in, &like}, {&out});
  EXPECT_EQ(data_of(out), (Values{5, 6, 7, 9, 10, 11, 17, 18, 19, 21, 22, 23}));
}

TEST(CropLayer, BackwardZeroOutsideTheWindow) {
  Blob in, like({1, 1, 2, 2}), out;
  set_blob(in, {1, 1, 3, 3}, iota(9));
  LayerPtr layer = make("Crop", "crop_param { offset: 1 offset: 0 }");
  layer->setup({&in, &like}, {&out});
  layer->forward({&in, &like}, {&out});
  set_blob(out, data_of(out));
  std::copy(out.cpu_data(), out.cpu_data() + 4, out.mutable_cpu_diff());
  in.set_diff(-1);
  layer->backward({&out}, {true, false}, {&in, &like});
  EXPECT_EQ(diff_of(in), (Values{0, 0, 0, 3, 4, 0, 6, 7, 0}));
}

TEST(CropLayer, Gradients) {
  struct Case {
    Shape in, like;
    std::string fields;
  };
  const std::vector<Case> cases = {
      {{2, 3, 5, 4}, {1, 1, 3, 2}, "crop_param { offset: 1 }"},
      {{2, 3, 5, 4}, {1, 2, 2, 3}, "crop_param { axis: 1 offset: 1 offset: 2 offset: 0 }"},
      {{3, 7}, {2, 4}, "crop_param { axis: 0 offset: 1 offset: 3 }"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.fields);
    Blob in(c.in), like(c.like), out;
    fill_gaussian(in);
    GradientCheckOptions options;
    options.bottoms = {0};
    LayerPtr layer = make("Crop", c.fields);
    check_gradient(*layer, {&in, &like}, {&out}, options);
  }
}

TEST(CropLayer, Errors) {
  Blob in({1, 2, 4, 4}), like({1, 2, 3, 3}), flat({4, 4}), out;
  expect_error([&] { make("Crop", "crop_param { offset: 2 }", "c1")->setup({&in, &like}, {&out}); },
               {"layer c1 (Crop)", "crop of axis 2 (offset 2, size 3) does not fit",
                "1 x 2 x 4 x 4"});
  LayerPtr three = make("Crop", "crop_param { offset: 0 offset: 1 offset: 0 }", "c2");
  expect_error([&] { three->setup({&in, &like}, {&out}); },
               {"layer c2 (Crop)", "one per cropped axis (2 from axis 2), got 3"});
  expect_error([&] { make("Crop", "", "c3")->setup({&in, &flat}, {&out}); },
               {"layer c3 (Crop)", "as many axes"});
  expect_error([&] { make("Crop", "crop_param { axis: 4 }", "c4")->setup({&in, &like}, {&out}); },
               {"layer c4 (Crop)", "axis 4 is out of range"});
}

// ---- Tile -----------------------------------------------------------------------------------

TEST(TileLayer, CopiesAlongTheAxisByHand) {
  Blob in, out;
  set_blob(in, {2, 2, 1}, {1, 2, 3, 4});
  LayerPtr layer = make("Tile", "tile_param { axis: 1 tiles: 3 }");
  layer->setup({&in}, {&out});
  layer->forward({&in}, {&out});
  EXPECT_EQ(out.shape(), (Shape{2, 6, 1}));
  EXPECT_EQ(data_of(out), (Values{1, 2, 1, 2, 1, 2, 3, 4, 3, 4, 3, 4}));
  set_blob(out, iota(12, 1));
  std::copy(out.cpu_data(), out.cpu_data() + 12, out.mutable_cpu_diff());
  layer->backward({&out}, {true}, {&in});
  EXPECT_EQ(diff_of(in), (Values{1 + 3 + 5, 2 + 4 + 6, 7 + 9 + 11, 8 + 10 + 12}));
}

TEST(TileLayer, Gradients) {
  for (const std::string fields : {"tile_param { tiles: 3 }", "tile_param { axis: 0 tiles: 2 }",
                                   "tile_param { axis: -1 tiles: 4 }"}) {
    SCOPED_TRACE(fields);
    Blob in({2, 3, 2}), out;
    fill_gaussian(in);
    LayerPtr layer = make("Tile", fields);
    check_gradient(*layer, {&in}, {&out});
  }
}

TEST(TileLayer, Errors) {
  Blob in({2, 3}), out;
  expect_error([&] { make("Tile", "tile_param { axis: 1 }", "t1")->setup({&in}, {&out}); },
               {"layer t1 (Tile)", "needs tiles"});
  expect_error([&] { make("Tile", "tile_param { tiles: 0 }", "t2")->setup({&in}, {&out}); },
               {"layer t2 (Tile)", "tiles must be positive, got 0"});
  expect_error([&] { make("Tile", "tile_param { axis: 2 tiles: 2 }", "t3")->setup({&in}, {&out}); },
               {"layer t3 (Tile)", "axis 2 is out of range"});
}

// ---- BatchReindex ---------------------------------------------------------------------------

TEST(BatchReindexLayer, GatherAndScatterAddByHand) {
  Blob in, index, out;
  set_blob(in, {3, 2}, {1, 2, 3, 4, 5, 6});
  set_blob(index, {4}, {2, 0, 2, 1});
  LayerPtr layer = make("BatchReindex");
  layer->setup({&in, &index}, {&out});
  layer->forward({&in, &index}, {&out});
  EXPECT_EQ(out.shape(), (Shape{4, 2}));
  EXPECT_EQ(data_of(out), (Values{5, 6, 1, 2, 5, 6, 3, 4}));
  set_blob(out, {10, 20, 1, 2, 30, 40, 3, 4});
  std::copy(out.cpu_data(), out.cpu_data() + 8, out.mutable_cpu_diff());
  in.set_diff(-1);
  layer->backward({&out}, {true, false}, {&in, &index});
  EXPECT_EQ(diff_of(in), (Values{1, 2, 3, 4, 40, 60}));
}

TEST(BatchReindexLayer, Gradients) {
  for (const Values& order : {Values{1, 0, 2}, Values{2, 2, 0, 2, 1}, Values{0}}) {
    Blob in({3, 2, 3}), index, out;
    fill_gaussian(in);
    set_blob(index, {static_cast<int>(order.size())}, order);
    GradientCheckOptions options;
    options.bottoms = {0};
    LayerPtr layer = make("BatchReindex");
    check_gradient(*layer, {&in, &index}, {&out}, options);
  }
}

TEST(BatchReindexLayer, Errors) {
  Blob in({3, 2}), index, out;
  set_blob(index, {2}, {0, 3});
  LayerPtr layer = make("BatchReindex", "", "b1");
  layer->setup({&in, &index}, {&out});
  expect_error([&] { layer->forward({&in, &index}, {&out}); },
               {"layer b1 (BatchReindex)", "index 3 (at position 1 of bottom 1)", "[0, 3)"});
  set_blob(index, {2}, {-1, 0});
  expect_error([&] { layer->forward({&in, &index}, {&out}); }, {"index -1"});
  Blob matrix({2, 1});
  expect_error([&] { make("BatchReindex", "", "b2")->setup({&in, &matrix}, {&out}); },
               {"layer b2 (BatchReindex)", "must be 1-D, got 2 x 1"});
  set_blob(index, {2}, {0, 1});
  layer->forward({&in, &index}, {&out});
  expect_error([&] { layer->backward({&out}, {true, true}, {&in, &index}); },
               {"layer b1 (BatchReindex)", "no gradient for bottom 1"});
}

// ---- Filter ---------------------------------------------------------------------------------

TEST(FilterLayer, KeepsTheSelectedItemsByHand) {
  Blob a, b, selector, top_a, top_b;
  set_blob(a, {4, 2}, iota(8));
  set_blob(b, {4}, {10, 11, 12, 13});
  set_blob(selector, {4, 1}, {0, 1, 0, 0.5f});
  LayerPtr layer = make("Filter");
  layer->setup({&a, &b, &selector}, {&top_a, &top_b});
  EXPECT_EQ(top_a.shape(), (Shape{4, 2})) << "all items at setup, as in Caffe";
  layer->forward({&a, &b, &selector}, {&top_a, &top_b});
  EXPECT_EQ(top_a.shape(), (Shape{2, 2}));
  EXPECT_EQ(data_of(top_a), (Values{2, 3, 6, 7}));
  EXPECT_EQ(data_of(top_b), (Values{11, 13}));

  set_blob(top_a, {1, 2, 3, 4});
  std::copy(top_a.cpu_data(), top_a.cpu_data() + 4, top_a.mutable_cpu_diff());
  a.set_diff(-1);
  layer->backward({&top_a, &top_b}, {true, false, false}, {&a, &b, &selector});
  EXPECT_EQ(diff_of(a), (Values{0, 0, 1, 2, 0, 0, 3, 4}));
}

TEST(FilterLayer, Gradients) {
  for (const Values& select :
       {Values{1, 0, 1, 1, 0}, Values{0, 0, 0, 0, 1}, Values{1, 1, 1, 1, 1}}) {
    Blob a({5, 3}), b({5, 2, 2}), selector, top_a, top_b;
    fill_gaussian(a);
    fill_gaussian(b);
    set_blob(selector, {5}, select);
    GradientCheckOptions options;
    options.bottoms = {0, 1};
    LayerPtr layer = make("Filter");
    check_gradient(*layer, {&a, &b, &selector}, {&top_a, &top_b}, options);
  }
}

TEST(FilterLayer, Errors) {
  Blob a({4, 2}), selector({4, 2}), short_selector({3}), out, extra;
  expect_error([&] { make("Filter", "", "f1")->setup({&a, &selector}, {&out}); },
               {"layer f1 (Filter)", "axes after the first must be 1", "4 x 2"});
  expect_error([&] { make("Filter", "", "f2")->setup({&a, &short_selector}, {&out}); },
               {"layer f2 (Filter)", "bottom 0 4 x 2", "as many items as the selector 3"});
  expect_error([&] { make("Filter", "", "f3")->setup({&a, &short_selector}, {&out, &extra}); },
               {"layer f3 (Filter)", "one top per filtered bottom", "2 bottoms and 2 tops"});
  Blob ok({4});
  ok.set_data(1);
  LayerPtr layer = make("Filter", "", "f4");
  layer->setup({&a, &ok}, {&out});
  layer->forward({&a, &ok}, {&out});
  expect_error([&] { layer->backward({&out}, {true, true}, {&a, &ok}); },
               {"layer f4 (Filter)", "no gradient for the selector"});
}

}  // namespace
}  // namespace engine
