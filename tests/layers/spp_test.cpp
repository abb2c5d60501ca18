#include <gtest/gtest.h>

#include <algorithm>
#include <random>

#include "core/layer_registry.hpp"
#include "gradient_checker.hpp"

namespace engine {
namespace {

using namespace testing;

using Values = std::vector<float>;
using Shape = std::vector<int>;

Values iota(int n) {
  Values v(n);
  for (int i = 0; i < n; ++i) v[i] = static_cast<float>(i);
  return v;
}

// Distinct values at least 0.05 apart, shuffled: no near-ties for MAX's finite differences.
void fill_distinct(Blob& blob) {
  Values v(blob.count());
  for (size_t i = 0; i < v.size(); ++i) v[i] = 0.05f * static_cast<float>(i) - 1;
  std::shuffle(v.begin(), v.end(), std::mt19937(42));
  set_blob(blob, v);
}

class SppPaths : public EngineTest {
 protected:
  LayerPtr spp(const std::string& fields, const std::string& name = "spp") {
    return create_layer(layer_param("name: '" + name + "' type: 'SPP' spp_param { " + fields +
                                    " engine: " + engine() + " }"));
  }
};

// 4x4 of 0..15: level 0 pools everything, level 1 four 2x2 quarters.
TEST_P(SppPaths, TwoLevelsByHand) {
  Blob in, out;
  set_blob(in, {1, 1, 4, 4}, iota(16));
  LayerPtr max = spp("pyramid_height: 2");
  max->setup({&in}, {&out});
  max->forward({&in}, {&out});
  EXPECT_EQ(out.shape(), (Shape{1, 5}));
  EXPECT_EQ(data_of(out), (Values{15, 5, 7, 13, 15}));
  LayerPtr ave = spp("pyramid_height: 2 pool: AVE");
  ave->setup({&in}, {&out});
  ave->forward({&in}, {&out});
  EXPECT_EQ(data_of(out), (Values{7.5f, 2.5f, 4.5f, 10.5f, 12.5f}));
}

// Two images of two channels: each image's levels in order, each level channel by channel.
TEST_P(SppPaths, LevelsConcatenatePerImage) {
  Blob in, out;
  set_blob(in, {2, 2, 2, 2}, iota(16));
  LayerPtr layer = spp("pyramid_height: 2");
  layer->setup({&in}, {&out});
  layer->forward({&in}, {&out});
  ASSERT_EQ(out.shape(), (Shape{2, 10}));
  EXPECT_EQ(data_of(out), (Values{3, 7, 0, 1, 2, 3, 4, 5, 6, 7,  //
                                  11, 15, 8, 9, 10, 11, 12, 13, 14, 15}));
}

// Height 5 with 2 bins: kernel ceil(5 / 2) = 3, pad (3 * 2 - 5 + 1) / 2 = 1, stride 3: rows
// [-1, 2) and [2, 5). Width 3 with 2 bins: kernel 2, pad 1: columns [-1, 1) and [1, 3).
// AVE divides by the window inside the padded extent: 3 x 2 = 6 for all four bins.
TEST_P(SppPaths, OddSizesUseCaffesPadding) {
  Blob in, out;
  set_blob(in, {1, 1, 5, 3}, iota(15));
  LayerPtr layer = spp("pyramid_height: 2 pool: AVE");
  layer->setup({&in}, {&out});
  layer->forward({&in}, {&out});
  ASSERT_EQ(out.shape(), (Shape{1, 5}));
  // Level 0: kernel 5 x 3, no pad: mean 7. Bin (0,0): rows 0-1, column 0: (0 + 3) / 6.
  // (0,1): rows 0-1, columns 1-2: (1 + 2 + 4 + 5) / 6. (1,0): rows 2-4, column 0: (6 + 9 + 12) / 6.
  // (1,1): rows 2-4, columns 1-2: (7 + 8 + 10 + 11 + 13 + 14) / 6.
  expect_near(data_of(out), {7, 0.5f, 2, 4.5f, 10.5f}, 1e-6f);
}

TEST_P(SppPaths, OneLevelIsGlobalPooling) {
  Blob in, out;
  set_blob(in, {2, 1, 2, 3}, {1, 5, 2, 0, 3, 4, -1, -2, -3, -4, -5, -6});
  LayerPtr layer = spp("pyramid_height: 1");
  layer->setup({&in}, {&out});
  layer->forward({&in}, {&out});
  EXPECT_EQ(out.shape(), (Shape{2, 1, 1, 1}));
  EXPECT_EQ(data_of(out), (Values{5, -1}));
}

TEST_P(SppPaths, Gradients) {
  struct Case {
    Shape shape;
    std::string fields;
  };
  const std::vector<Case> cases = {
      {{2, 2, 6, 7}, "pyramid_height: 3"},
      {{1, 3, 7, 4}, "pyramid_height: 2 pool: AVE"},
      {{2, 1, 6, 7}, "pyramid_height: 3 pool: AVE"},
      {{2, 2, 3, 3}, "pyramid_height: 1"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.fields);
    Blob in(c.shape), out;
    fill_distinct(in);
    LayerPtr layer = spp(c.fields);
    check_gradient(*layer, {&in}, {&out});
  }
}

TEST_P(SppPaths, ReshapeRebuildsTheLevels) {
  Blob in({1, 1, 4, 4}), out;
  fill_gaussian(in);
  LayerPtr layer = spp("pyramid_height: 2");
  layer->setup({&in}, {&out});
  set_blob(in, {1, 1, 2, 6}, iota(12));
  layer->forward({&in}, {&out});
  // Level 1 on 2 x 6: kernel 1 x 3, no pad: bins (0..2), (3..5) of each row.
  EXPECT_EQ(data_of(out), (Values{11, 2, 5, 8, 11}));
}

TEST_P(SppPaths, Errors) {
  Blob in({1, 1, 5, 5}), flat({2, 3}), out;
  // Level 2 on 5 rows: kernel 2 with pad 2, which pooling refuses (Caffe aborts there).
  expect_error([&] { spp("pyramid_height: 3", "s1")->setup({&in}, {&out}); },
               {"layer s1 (SPP)", "pyramid level 2 (4 x 4 bins) cannot pool a 5 x 5 bottom"});
  expect_error([&] { spp("pyramid_height: 0", "s2")->setup({&in}, {&out}); },
               {"layer s2 (SPP)", "pyramid_height >= 1"});
  expect_error([&] { spp("pyramid_height: 2", "s3")->setup({&flat}, {&out}); },
               {"layer s3 (SPP)", "4-axis bottom"});
}

INSTANTIATE_TEST_SUITE_P(Engines, SppPaths, ::testing::Values("CAFFE", "ONEDNN"));

}  // namespace
}  // namespace engine
