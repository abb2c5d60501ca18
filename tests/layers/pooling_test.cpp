#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "core/context.hpp"
#include "core/layer_registry.hpp"
#include "gradient_checker.hpp"
#include "math/onednn.hpp"

namespace engine {

// Defined in layers/pooling.cpp for tests.
bool pooling_runs_onednn(const Layer& layer);

namespace {

using namespace testing;

LayerPtr pooling(const std::string& pooling_fields, const std::string& engine,
                 const std::string& extra = "") {
  return create_layer(layer_param("name: 'pool' type: 'Pooling' " + extra + " pooling_param { " +
                                  pooling_fields + " engine: " + engine + " }"));
}

// Distinct values (a shuffled ramp), so that a max never ties and a finite-difference step
// never changes which element wins.
void fill_distinct(Blob& blob, unsigned seed, float spacing = 0.1f) {
  std::vector<float> values(static_cast<size_t>(blob.count()));
  std::iota(values.begin(), values.end(), 0.0f);
  std::mt19937 rng(seed);
  std::shuffle(values.begin(), values.end(), rng);
  const float middle = values.size() / 2.0f;
  for (float& v : values) v = (v - middle) * spacing;
  set_blob(blob, values);
}

// A 4 x 6 plane whose 3 x 3, stride 2 pooling needs the ceil rule: 2 x 3 windows, the last row
// and column of windows clipped (rows 2..3, columns 4..5).
const std::vector<float> kPlane = {1, 9, 2,  7, 3,  0,   //
                                   4, 5, 6,  8, 11, 2,   //
                                   3, 10, 1, 2, 12, 13,  //
                                   0, 6, 14, 5, 4,  1};

TEST(PoolingLayer, MaxUsesCeilRuleClipsLastWindowAndWritesMask) {
  for (const std::string& engine : engines()) {
    Blob bottom({1, 2, 4, 6}), top, mask;
    std::vector<float> values = kPlane;
    for (float v : kPlane) values.push_back(v + 100);  // a second plane: offsets per plane
    set_blob(bottom, values);
    LayerPtr layer = pooling("pool: MAX kernel_size: 3 stride: 2", engine);
    layer->setup({&bottom}, {&top, &mask});
    EXPECT_FALSE(pooling_runs_onednn(*layer)) << "the mask top needs the reference code";
    layer->forward({&bottom}, {&top, &mask});
    ASSERT_EQ(top.shape(), (std::vector<int>{1, 2, 2, 3}));
    ASSERT_EQ(mask.shape(), top.shape());
    expect_close(data_of(top), {10, 12, 13, 14, 14, 13, 110, 112, 113, 114, 114, 113}, engine);
    // Indices into the H*W plane, as Caffe stores them; 14 at (3, 2) wins two windows.
    expect_close(data_of(mask), {13, 16, 17, 20, 20, 17, 13, 16, 17, 20, 20, 17}, engine);

    float* top_diff = top.mutable_cpu_diff();
    for (int i = 0; i < 12; ++i) top_diff[i] = static_cast<float>(i + 1);
    layer->backward({&top, &mask}, {true}, {&bottom});
    std::vector<float> expected(48, 0.0f);
    expected[13] = 1, expected[16] = 2, expected[17] = 3 + 6, expected[20] = 4 + 5;
    expected[24 + 13] = 7, expected[24 + 16] = 8, expected[24 + 17] = 9 + 12,
                expected[24 + 20] = 10 + 11;
    expect_close(diff_of(bottom), expected, engine + " backward");
  }
}

TEST(PoolingLayer, MaxWithoutMaskMatchesHandValuesOnBothPaths) {
  for (const std::string& engine : engines()) {
    Blob bottom({1, 1, 4, 6}), top;
    set_blob(bottom, kPlane);
    LayerPtr layer = pooling("pool: MAX kernel_size: 3 stride: 2", engine);
    layer->setup({&bottom}, {&top});
    EXPECT_EQ(pooling_runs_onednn(*layer), engine == "ONEDNN");
    layer->forward({&bottom}, {&top});
    expect_close(data_of(top), {10, 12, 13, 14, 14, 13}, engine);
    float* top_diff = top.mutable_cpu_diff();
    for (int i = 0; i < 6; ++i) top_diff[i] = static_cast<float>(i + 1);
    layer->backward({&top}, {true}, {&bottom});
    std::vector<float> expected(24, 0.0f);
    expected[13] = 1, expected[16] = 2, expected[17] = 9, expected[20] = 9;
    expect_close(diff_of(bottom), expected, engine + " backward");
  }
}

TEST(PoolingLayer, OutputSizeRules) {
  struct Case {
    std::string fields;
    int in, expected;
  };
  const std::vector<Case> cases = {
      {"kernel_size: 3 stride: 2", 6, 3},                    // ceil(1.5) + 1
      {"kernel_size: 3 stride: 2 round_mode: FLOOR", 6, 2},  // floor(1.5) + 1
      {"kernel_size: 3 stride: 2", 55, 27},                  // AlexNet pool1
      {"kernel_size: 3 stride: 2", 13, 6},                   // AlexNet pool5
      // ceil((5 + 2 - 2) / 2) + 1 = 4, but window 3 would start at 6 - 1 = 5, in the padding.
      {"kernel_size: 2 stride: 2 pad: 1", 5, 3},
      {"kernel_size: 3 stride: 1 pad: 1", 7, 7},
      // A kernel wider than the input by one: ceil(-1 / 2) + 1 = 1 clipped window.
      {"kernel_size: 4 stride: 2", 3, 1},
  };
  for (const Case& c : cases) {
    Blob bottom({1, 1, c.in, c.in}), top;
    LayerPtr layer = pooling("pool: MAX " + c.fields, "CAFFE");
    layer->setup({&bottom}, {&top});
    EXPECT_EQ(top.shape(), (std::vector<int>{1, 1, c.expected, c.expected})) << c.fields;
  }
}

TEST(PoolingLayer, AverageDivisorsWithPadAndOverflowPastPad) {
  // 4 x 4 ramp 1..16, kernel 3, stride 2, pad 1: windows start at -1, 1, 3. Caffe's divisor
  // counts padding but not the overflow past in + pad = 5: extents 3, 3, 2 along each axis.
  std::vector<float> ramp(16);
  std::iota(ramp.begin(), ramp.end(), 1.0f);
  const std::vector<float> expected = {14.f / 9, 30.f / 9, 12.f / 6,  //
                                       57.f / 9, 99.f / 9, 36.f / 6,  //
                                       27.f / 6, 45.f / 6, 16.f / 4};
  for (const std::string& engine : engines()) {
    Blob bottom({1, 1, 4, 4}), top;
    set_blob(bottom, ramp);
    LayerPtr layer = pooling("pool: AVE kernel_size: 3 stride: 2 pad: 1", engine);
    layer->setup({&bottom}, {&top});
    // Neither oneDNN averaging divides the last windows by 6 and 4: the reference runs.
    EXPECT_FALSE(pooling_runs_onednn(*layer)) << engine;
    layer->forward({&bottom}, {&top});
    expect_close(data_of(top), expected, engine);
    // Backward spreads each output's diff evenly over its divisor: with unit diffs, element
    // (3, 3) receives 1/4 from window (2, 2) and 1/6 from each of (1, 2), (2, 1), 1/9 from (1, 1).
    top.set_diff(1.0f);
    layer->backward({&top}, {true}, {&bottom});
    EXPECT_NEAR(bottom.cpu_diff()[15], 1.f / 4 + 2.f / 6 + 1.f / 9, 1e-6) << engine;
    EXPECT_NEAR(bottom.cpu_diff()[0], 1.f / 9, 1e-6) << engine;
  }
}

TEST(PoolingLayer, AverageWithPadWhereOneDnnIncludePaddingIsCaffes) {
  // 5 x 5 ramp, kernel 3, stride 2, pad 1: the last window ends exactly at in + pad, so every
  // divisor is 9, padding included: oneDNN's pooling_avg_include_padding.
  std::vector<float> ramp(25);
  std::iota(ramp.begin(), ramp.end(), 1.0f);
  const std::vector<float> expected = {16.f / 9, 33.f / 9, 28.f / 9,  //
                                       69.f / 9, 13.f,     87.f / 9,  //
                                       76.f / 9, 123.f / 9, 88.f / 9};
  for (const std::string& engine : engines()) {
    Blob bottom({1, 1, 5, 5}), top;
    set_blob(bottom, ramp);
    LayerPtr layer = pooling("pool: AVE kernel_size: 3 stride: 2 pad: 1", engine);
    layer->setup({&bottom}, {&top});
    EXPECT_EQ(pooling_runs_onednn(*layer), engine == "ONEDNN");
    layer->forward({&bottom}, {&top});
    expect_close(data_of(top), expected, engine);
  }
}

TEST(PoolingLayer, AverageWithoutPadWhereOneDnnExcludePaddingIsCaffes) {
  // No padding: Caffe divides a clipped last window by its real elements, as oneDNN's
  // exclude_padding does: divisors 9, 9, 6 / 6, 6, 4.
  for (const std::string& engine : engines()) {
    Blob bottom({1, 1, 4, 6}), top;
    set_blob(bottom, kPlane);
    LayerPtr layer = pooling("pool: AVE kernel_size: 3 stride: 2", engine);
    layer->setup({&bottom}, {&top});
    EXPECT_EQ(pooling_runs_onednn(*layer), engine == "ONEDNN");
    layer->forward({&bottom}, {&top});
    expect_close(data_of(top), {41.f / 9, 52.f / 9, 41.f / 6, 34.f / 6, 38.f / 6, 30.f / 4},
                 engine);
  }
}

TEST(PoolingLayer, GlobalPooling) {
  for (const std::string& engine : engines()) {
    Blob bottom({2, 1, 3, 3}), max_top, ave_top;
    set_blob(bottom, {1, 2, 3, 4, 9, 6, 7, 8, 5,  //
                      -1, -2, -3, -4, -5, -6, -7, -8, -9});
    LayerPtr max_layer = pooling("pool: MAX global_pooling: true", engine);
    max_layer->setup({&bottom}, {&max_top});
    max_layer->forward({&bottom}, {&max_top});
    EXPECT_EQ(max_top.shape(), (std::vector<int>{2, 1, 1, 1}));
    expect_close(data_of(max_top), {9, -1}, engine);
    LayerPtr ave_layer = pooling("pool: AVE global_pooling: true", engine);
    ave_layer->setup({&bottom}, {&ave_top});
    ave_layer->forward({&bottom}, {&ave_top});
    expect_close(data_of(ave_top), {5, -5}, engine);
    // The kernel follows the bottom when it is reshaped.
    bottom.reshape({1, 1, 2, 4});
    set_blob(bottom, {1, 2, 3, 4, 5, 6, 7, 8});
    ave_layer->forward({&bottom}, {&ave_top});
    EXPECT_EQ(ave_top.shape(), (std::vector<int>{1, 1, 1, 1}));
    expect_close(data_of(ave_top), {4.5f}, engine + " reshaped");
  }
}

TEST(PoolingLayer, StochasticTestPhaseIsTheWeightedAverage) {
  Blob bottom({1, 1, 3, 3}), top;
  set_blob(bottom, {1, 2, 3, 4, 5, 6, 7, 8, 9});
  LayerPtr layer = create_layer(layer_param(
      "name: 'pool' type: 'Pooling' phase: TEST "
      "pooling_param { pool: STOCHASTIC kernel_size: 2 stride: 1 }"));
  layer->setup({&bottom}, {&top});
  layer->forward({&bottom}, {&top});
  // sum(x^2) / sum(x) per window: {1,2,4,5} 46/12, {2,3,5,6} 74/16, {4,5,7,8} 154/24,
  // {5,6,8,9} 206/28.
  expect_close(data_of(top), {46.f / 12, 74.f / 16, 154.f / 24, 206.f / 28}, "stochastic test");
}

TEST(PoolingLayer, StochasticTrainPhasePicksWindowValuesInProportion) {
  Blob bottom({1, 1, 3, 3}), top;
  set_blob(bottom, {1, 2, 3, 4, 5, 6, 7, 8, 9});
  LayerPtr layer = create_layer(layer_param(
      "name: 'pool' type: 'Pooling' phase: TRAIN "
      "pooling_param { pool: STOCHASTIC kernel_size: 2 stride: 1 }"));
  layer->setup({&bottom}, {&top});
  const std::vector<std::vector<float>> windows = {{1, 2, 4, 5}, {2, 3, 5, 6}, {4, 5, 7, 8},
                                                   {5, 6, 8, 9}};
  Context::set_seed(7);
  std::vector<int> first_window_counts(10, 0);
  const int draws = 4000;
  for (int draw = 0; draw < draws; ++draw) {
    layer->forward({&bottom}, {&top});
    for (int i = 0; i < 4; ++i) {
      const float v = top.cpu_data()[i];
      ASSERT_NE(std::find(windows[i].begin(), windows[i].end(), v), windows[i].end())
          << "output " << i << " = " << v << " is not one of its window's values";
    }
    ++first_window_counts[static_cast<int>(top.cpu_data()[0])];
  }
  // Window {1, 2, 4, 5} (sum 12): each value drawn with probability value / 12.
  for (int v : {1, 2, 4, 5}) {
    EXPECT_NEAR(first_window_counts[v], draws * v / 12.0, 120) << "value " << v;
  }
  // Backward routes each diff to the element drawn.
  top.set_diff(0);
  top.mutable_cpu_diff()[3] = 1;
  layer->backward({&top}, {true}, {&bottom});
  const float picked = top.cpu_data()[3];
  for (int i = 0; i < 9; ++i) {
    EXPECT_EQ(bottom.cpu_diff()[i], bottom.cpu_data()[i] == picked ? 1.0f : 0.0f) << i;
  }
}

struct GradientCase {
  std::vector<int> shape;
  std::string fields;
};

const std::vector<GradientCase> kGradientCases = {
    {{2, 2, 5, 7}, "kernel_size: 3 stride: 2"},                         // ceil overflow
    {{1, 2, 6, 6}, "kernel_size: 3 stride: 2 pad: 1"},                  // pad, overflow past pad
    {{1, 2, 5, 5}, "kernel_size: 3 stride: 2 pad: 1"},                  // pad, no overflow
    {{2, 1, 7, 5}, "kernel_h: 3 kernel_w: 2 stride_h: 2 stride_w: 1 pad_h: 1 pad_w: 1"},
    {{1, 3, 6, 7}, "kernel_size: 3 stride: 2 round_mode: FLOOR"},       // unused last row
    {{2, 2, 4, 3}, "global_pooling: true"},
};

TEST(PoolingLayer, MaxGradient) {
  for (const std::string& engine : engines()) {
    for (const GradientCase& c : kGradientCases) {
      Blob bottom(c.shape), top;
      fill_distinct(bottom, 11);
      LayerPtr layer = pooling("pool: MAX " + c.fields, engine);
      SCOPED_TRACE(engine + " " + c.fields);
      check_gradient(*layer, {&bottom}, {&top});
    }
  }
}

TEST(PoolingLayer, AverageGradient) {
  for (const std::string& engine : engines()) {
    for (const GradientCase& c : kGradientCases) {
      Blob bottom(c.shape), top;
      fill_gaussian(bottom);
      LayerPtr layer = pooling("pool: AVE " + c.fields, engine);
      SCOPED_TRACE(engine + " " + c.fields);
      check_gradient(*layer, {&bottom}, {&top});
    }
  }
}

TEST(PoolingLayer, StochasticGradient) {
  const std::vector<GradientCase> cases = {{{2, 2, 5, 7}, "kernel_size: 3 stride: 2"},
                                           {{1, 2, 4, 4}, "kernel_size: 2 stride: 1"},
                                           {{1, 2, 3, 5}, "global_pooling: true"}};
  for (const std::string phase : {"TRAIN", "TEST"}) {
    for (const GradientCase& c : cases) {
      Blob bottom(c.shape), top;
      // Positive inputs, as after a ReLU; the gradient checker redraws the same samples on
      // every pass.
      fill_uniform(bottom, 1.0f, 3.0f);
      LayerPtr layer = create_layer(layer_param("name: 'pool' type: 'Pooling' phase: " + phase +
                                                " pooling_param { pool: STOCHASTIC " + c.fields +
                                                " }"));
      SCOPED_TRACE(std::string(phase) + " " + c.fields);
      // In TRAIN a perturbation that moves the running sum across the drawn threshold picks
      // another element; a small step makes that unlikely (the output is x itself, so float
      // rounding stays small).
      GradientCheckOptions options;
      if (std::string(phase) == "TRAIN") options.step = 1e-4f;
      check_gradient(*layer, {&bottom}, {&top}, options);
    }
  }
}

// Reference and oneDNN on the same random data, forward and backward. Without
// `backward_planned`, the oneDNN layer is told that no backward pass will run (as a net tells
// its TEST-phase layers): its forward pass keeps nothing for one, and the backward pass asked
// for anyway must still be right.
void expect_paths_agree(const std::string& fields, const std::vector<int>& shape, bool ties,
                        bool expect_onednn, bool backward_planned = true) {
  SCOPED_TRACE(fields + (backward_planned ? "" : ", no backward planned"));
  Blob bottom(shape), ref_bottom(shape), top, ref_top;
  fill_gaussian(bottom);
  if (ties) {  // ReLU-like: many windows all zero, where the first element must take the diff
    float* x = bottom.mutable_cpu_data();
    for (int64_t i = 0; i < bottom.count(); ++i) x[i] = std::max(x[i] - 1.0f, 0.0f);
  }
  ref_bottom.share_data(bottom);
  LayerPtr fast = pooling(fields, "ONEDNN");
  LayerPtr reference = pooling(fields, "CAFFE");
  fast->setup({&bottom}, {&top});
  reference->setup({&ref_bottom}, {&ref_top});
  if (!backward_planned) fast->set_backward_plan(false, {false});
  EXPECT_EQ(pooling_runs_onednn(*fast), expect_onednn);
  Context::set_seed(5);  // the same draws for STOCHASTIC
  fast->forward({&bottom}, {&top});
  Context::set_seed(5);
  reference->forward({&ref_bottom}, {&ref_top});
  expect_close(data_of(top), data_of(ref_top), "forward", 1e-5f);
  same_random_diff(ref_top, top);
  fast->backward({&top}, {true}, {&bottom});
  reference->backward({&ref_top}, {true}, {&ref_bottom});
  expect_close(diff_of(bottom), diff_of(ref_bottom), "backward", 1e-5f);
}

TEST(PoolingLayer, OneDnnAgreesWithReference) {
  if (!onednn_available()) GTEST_SKIP() << "built without oneDNN";
  const std::vector<int> shape = {3, 5, 13, 15};
  expect_paths_agree("pool: MAX kernel_size: 3 stride: 2", shape, false, true);
  expect_paths_agree("pool: MAX kernel_size: 3 stride: 2", shape, true, true);
  expect_paths_agree("pool: MAX kernel_size: 2 stride: 2 pad: 1", shape, true, true);
  expect_paths_agree("pool: MAX kernel_size: 3 stride: 2 pad: 1 round_mode: FLOOR", shape, false,
                     true);
  expect_paths_agree("pool: MAX kernel_size: 3 stride: 3 round_mode: FLOOR", {2, 3, 11, 11},
                     false, true);
  expect_paths_agree("pool: MAX kernel_h: 3 kernel_w: 2 stride_h: 2 stride_w: 1 pad_h: 1 pad_w: 0",
                     shape, true, true);
  expect_paths_agree("pool: MAX global_pooling: true", shape, false, true);
  expect_paths_agree("pool: AVE kernel_size: 3 stride: 2", shape, false, true);
  expect_paths_agree("pool: AVE kernel_size: 3 stride: 2 pad: 1", {2, 3, 13, 13}, false, true);
  expect_paths_agree("pool: AVE kernel_size: 3 stride: 2 pad: 1", {2, 3, 12, 12}, false, false);
  expect_paths_agree("pool: AVE kernel_size: 3 stride: 2 pad: 1 round_mode: FLOOR",
                     {2, 3, 12, 12}, false, true);
  expect_paths_agree("pool: AVE global_pooling: true", shape, false, true);
  expect_paths_agree("pool: STOCHASTIC kernel_size: 3 stride: 2", shape, false, false);
  for (const bool ties : {false, true}) {
    expect_paths_agree("pool: MAX kernel_size: 3 stride: 1 pad: 1", shape, ties, true, false);
  }
  expect_paths_agree("pool: AVE kernel_size: 3 stride: 2", shape, false, true, false);
}

// A layer told that no backward pass follows (as a net tells its TEST-phase layers) computes
// the maxima alone, with Caffe's values (ties; on Caffe's path NaN skipped, and -FLT_MAX with
// no gradient for a window of -inf); a backward pass asked for anyway finds the argmax again
// from the bottom, leaving the top as it is.
TEST(PoolingLayer, MaxWithoutABackwardPassPlannedKeepsCaffesValues) {
  for (const std::string& engine : engines()) {
    for (const GradientCase& c : kGradientCases) {
      SCOPED_TRACE(engine + " " + c.fields);
      Blob bottom(c.shape), planned_top, top;
      fill_distinct(bottom, 3);
      float* x = bottom.mutable_cpu_data();
      for (int64_t i = 0; i < bottom.count(); i += 3) x[i] = std::max(x[i], 0.0f);  // ties
      // oneDNN's kernels may treat these otherwise (Caffe's code is what this is about).
      if (engine == "CAFFE") {
        x[1] = std::nanf("");
        const int plane = c.shape[2] * c.shape[3];
        std::fill(x + bottom.count() - plane, x + bottom.count(), -INFINITY);
      }
      LayerPtr planned = pooling("pool: MAX " + c.fields, engine);
      LayerPtr alone = pooling("pool: MAX " + c.fields, engine);
      planned->setup({&bottom}, {&planned_top});
      alone->setup({&bottom}, {&top});
      alone->set_backward_plan(false, {false});
      planned->forward({&bottom}, {&planned_top});
      alone->forward({&bottom}, {&top});
      EXPECT_EQ(data_of(top), data_of(planned_top));
      same_random_diff(planned_top, top);
      set_blob(top, std::vector<float>(top.count(), 7.0f));  // a later in-place layer's work
      planned->backward({&planned_top}, {true}, {&bottom});
      const std::vector<float> expected = diff_of(bottom);
      alone->backward({&top}, {true}, {&bottom});
      EXPECT_EQ(diff_of(bottom), expected);
      EXPECT_EQ(data_of(top), std::vector<float>(top.count(), 7.0f));
    }
  }
}

TEST(PoolingLayer, BadParametersNameTheLayerAndTheProblem) {
  struct Case {
    std::string fields, expected;
  };
  const std::vector<Case> cases = {
      {"pool: MAX kernel_size: 3 pad: 3", "must be smaller than the kernel"},
      {"pool: AVE kernel_h: 2 kernel_w: 4 pad_h: 2 pad_w: 1", "must be smaller than the kernel"},
      {"pool: MAX stride: 2", "needs kernel_size"},
      {"pool: MAX kernel_size: 3 kernel_h: 3 kernel_w: 3", "not both"},
      {"pool: MAX kernel_h: 3", "both kernel_h and kernel_w"},
      {"pool: MAX kernel_size: 0", "kernel must be positive"},
      {"pool: MAX kernel_size: 2 pad: 1 pad_h: 1 pad_w: 1", "pad or pad_h and pad_w"},
      {"pool: MAX kernel_size: 2 stride: 0", "stride must be positive"},
      {"pool: STOCHASTIC kernel_size: 3 pad: 1", "padding is implemented only for AVE and MAX"},
      {"pool: MAX global_pooling: true kernel_size: 3", "do not give kernel_size"},
      {"pool: AVE global_pooling: true stride: 2", "only pad 0 and stride 1"},
      {"pool: MAX kernel_size: 1 stride: 4", "wholly outside the bottom"},
      {"pool: MAX kernel_size: 9", "does not fit the padded bottom"},
  };
  for (const Case& c : cases) {
    Blob bottom({1, 1, 7, 7}), top;
    LayerPtr layer = pooling(c.fields, "CAFFE");
    const std::string message = setup_error(*layer, {&bottom}, {&top});
    EXPECT_TRUE(contains(message, "layer pool (Pooling)")) << c.fields;
    EXPECT_TRUE(contains(message, c.expected)) << c.fields;
  }
  Blob flat({2, 3, 4}), top, mask;
  LayerPtr layer = pooling("pool: MAX kernel_size: 2", "CAFFE");
  EXPECT_TRUE(contains(setup_error(*layer, {&flat}, {&top}), "needs a 4-axis bottom"));
  Blob bottom({1, 1, 4, 4});
  LayerPtr average = pooling("pool: AVE kernel_size: 2", "CAFFE");
  EXPECT_TRUE(contains(setup_error(*average, {&bottom}, {&top, &mask}), "at most 1 top"));
}

}  // namespace
}  // namespace engine
