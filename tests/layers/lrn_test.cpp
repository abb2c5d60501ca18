#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <string>
#include <vector>

#include "core/layer_registry.hpp"
#include "gradient_checker.hpp"
#include "math/onednn.hpp"

namespace engine {

// Defined in layers/lrn.cpp for tests.
bool lrn_runs_onednn(const Layer& layer);

namespace {

using namespace testing;

LayerPtr lrn(const std::string& fields, const std::string& engine) {
  return create_layer(
      layer_param("name: 'norm' type: 'LRN' lrn_param { " + fields + " engine: " + engine + " }"));
}

TEST(LRNLayer, AcrossChannelsOfAKnownVector) {
  // x = 1..5 over 5 channels, n = 3, alpha = 3 (alpha / n = 1): the window sums of squares are
  // 0+1+4, 1+4+9, 4+9+16, 9+16+25, 16+25+0 = 5, 14, 29, 50, 41.
  const std::vector<float> sums = {5, 14, 29, 50, 41};
  for (const std::string& engine : engines()) {
    for (float beta : {1.0f, 0.75f, 0.6f}) {
      for (float k : {1.0f, 2.0f}) {
        Blob bottom({1, 5, 1, 1}), top;
        set_blob(bottom, {1, 2, 3, 4, 5});
        LayerPtr layer = lrn("local_size: 3 alpha: 3 beta: " + std::to_string(beta) +
                                 " k: " + std::to_string(k),
                             engine);
        layer->setup({&bottom}, {&top});
        layer->forward({&bottom}, {&top});
        std::vector<float> expected;
        for (int c = 0; c < 5; ++c) expected.push_back((c + 1) * std::pow(k + sums[c], -beta));
        expect_close(data_of(top), expected,
                     engine + " beta " + std::to_string(beta) + " k " + std::to_string(k), 2e-6f);
      }
    }
  }
  // With beta 1 and k 1 the values are plain fractions: 1/6, 2/15, 3/30, 4/51, 5/42.
  Blob bottom({1, 5, 1, 1}), top;
  set_blob(bottom, {1, 2, 3, 4, 5});
  LayerPtr layer = lrn("local_size: 3 alpha: 3 beta: 1", "CAFFE");
  layer->setup({&bottom}, {&top});
  layer->forward({&bottom}, {&top});
  expect_close(data_of(top), {1.f / 6, 2.f / 15, 3.f / 30, 4.f / 51, 5.f / 42}, "fractions");
}

TEST(LRNLayer, AcrossChannelsBackwardOfAKnownVector) {
  // alpha 3, n 3, beta 1, k 1: s = 6, 15, 30, 51, 42, y = x / s. With dy = 1 everywhere
  // dx_c = 1/s_c - 2 x_c * sum over the window around c of y / s.
  const std::vector<float> s = {6, 15, 30, 51, 42};
  std::vector<float> ratio;
  for (int c = 0; c < 5; ++c) ratio.push_back((c + 1) / (s[c] * s[c]));
  std::vector<float> expected;
  for (int c = 0; c < 5; ++c) {
    float window = 0;
    for (int j = std::max(0, c - 1); j <= std::min(4, c + 1); ++j) window += ratio[j];
    expected.push_back(1 / s[c] - 2.0f * (c + 1) * window);
  }
  for (const std::string& engine : engines()) {
    Blob bottom({1, 5, 1, 1}), top;
    set_blob(bottom, {1, 2, 3, 4, 5});
    LayerPtr layer = lrn("local_size: 3 alpha: 3 beta: 1", engine);
    layer->setup({&bottom}, {&top});
    layer->forward({&bottom}, {&top});
    top.set_diff(1);
    layer->backward({&top}, {true}, {&bottom});
    expect_close(diff_of(bottom), expected, engine, 1e-5f);
  }
}

TEST(LRNLayer, WithinChannelOfAKnownPlane) {
  // 3 x 3 plane 1..9, n = 3, alpha = 9 (alpha / n^2 = 1), beta = 1: s = 1 + the sum of squares
  // over the window clipped to the plane (Caffe's average pooling divides by n^2 at the borders
  // too, and its shift is 1 whatever k says).
  const std::vector<float> sums = {46, 91, 74, 159, 285, 219, 154, 271, 206};
  std::vector<float> expected;
  for (int i = 0; i < 9; ++i) expected.push_back((i + 1) / (1 + sums[i]));
  for (const std::string& engine : engines()) {
    for (const std::string k : {"", " k: 5"}) {
      Blob bottom({1, 1, 3, 3}), top;
      std::vector<float> ramp(9);
      std::iota(ramp.begin(), ramp.end(), 1.0f);
      set_blob(bottom, ramp);
      LayerPtr layer = lrn("norm_region: WITHIN_CHANNEL local_size: 3 alpha: 9 beta: 1" + k, engine);
      layer->setup({&bottom}, {&top});
      layer->forward({&bottom}, {&top});
      expect_close(data_of(top), expected, engine + k);
    }
  }
}

TEST(LRNLayer, OnlyEngineOneDnnRunsOnOneDnn) {
  if (!onednn_available()) GTEST_SKIP() << "built without oneDNN";
  Blob bottom({1, 96, 5, 5}), top;
  for (const std::string engine : {"ONEDNN", "CAFFE", "DEFAULT"}) {
    LayerPtr layer = lrn("local_size: 5 alpha: 0.0001 beta: 0.75", engine);
    layer->setup({&bottom}, {&top});
    // DEFAULT takes the sliding-window code here: as fast as oneDNN's NCHW forward, and
    // oneDNN's NCHW backward is a slow reference loop.
    EXPECT_EQ(lrn_runs_onednn(*layer), engine == "ONEDNN") << engine;
  }
}

struct GradientCase {
  std::vector<int> shape;
  std::string fields;
};

TEST(LRNLayer, Gradient) {
  const std::vector<GradientCase> cases = {
      {{2, 7, 3, 4}, "local_size: 5 alpha: 0.8 beta: 0.75"},
      {{2, 6, 2, 3}, "local_size: 3 alpha: 1.5 beta: 0.6 k: 2"},
      {{1, 3, 3, 3}, "local_size: 7 alpha: 1 beta: 1"},  // window wider than the channels
      {{2, 2, 5, 6}, "norm_region: WITHIN_CHANNEL local_size: 3 alpha: 2 beta: 0.75"},
      {{1, 2, 4, 5}, "norm_region: WITHIN_CHANNEL local_size: 5 alpha: 3 beta: 0.5"},
  };
  for (const std::string& engine : engines()) {
    for (const GradientCase& c : cases) {
      Blob bottom(c.shape), top;
      fill_gaussian(bottom);
      LayerPtr layer = lrn(c.fields, engine);
      SCOPED_TRACE(engine + " " + c.fields);
      check_gradient(*layer, {&bottom}, {&top});
    }
  }
}

#ifdef ENGINE_USE_ONEDNN
// Leaves the blob's values (or its gradient) arranged in a oneDNN format, as a oneDNN layer
// before it would.
void arrange(Blob& blob, dnnl::memory::format_tag format, bool gradient = false) {
  const std::vector<float> values = gradient ? diff_of(blob) : data_of(blob);
  const onednn::LayoutPtr layout = onednn::make_layout(
      dnnl::memory::desc(onednn::dims(blob.shape()), dnnl::memory::data_type::f32, format));
  SyncedMemory& memory = gradient ? *blob.diff_memory() : *blob.data_memory();
  layout->from_plain(values.data(), memory.mutable_arranged_data(layout));
}
void arrange_blocked(Blob& blob) { arrange(blob, dnnl::memory::format_tag::nChw8c); }
#endif

// Without `backward_planned`, the oneDNN layer is told that no backward pass will run (as a net
// tells its TEST-phase layers), and its bottom arrives blocked, where oneDNN's backward pass
// would run: its forward pass keeps nothing for one, and a backward pass asked for anyway must
// still be right.
void expect_paths_agree(const std::string& fields, const std::vector<int>& shape,
                        bool backward_planned = true) {
  SCOPED_TRACE(fields + (backward_planned ? "" : ", no backward planned"));
  Blob bottom(shape), ref_bottom(shape), top, ref_top;
  fill_gaussian(bottom, 2.0f);
#ifdef ENGINE_USE_ONEDNN
  if (!backward_planned) arrange_blocked(bottom);
#endif
  ref_bottom.share_data(bottom);
  LayerPtr fast = lrn(fields, "ONEDNN");
  LayerPtr reference = lrn(fields, "CAFFE");
  fast->setup({&bottom}, {&top});
  reference->setup({&ref_bottom}, {&ref_top});
  if (!backward_planned) fast->set_backward_plan(false, {false});
  EXPECT_TRUE(lrn_runs_onednn(*fast));
  fast->forward({&bottom}, {&top});
  reference->forward({&ref_bottom}, {&ref_top});
  expect_close(data_of(top), data_of(ref_top), "forward", 1e-5f);
  same_random_diff(ref_top, top);
  fast->backward({&top}, {true}, {&bottom});
  reference->backward({&ref_top}, {true}, {&ref_bottom});
  expect_close(diff_of(bottom), diff_of(ref_bottom), "backward", 1e-5f);
}

TEST(LRNLayer, OneDnnAgreesWithReference) {
  if (!onednn_available()) GTEST_SKIP() << "built without oneDNN";
  expect_paths_agree("local_size: 5 alpha: 0.5 beta: 0.75", {2, 16, 9, 11});
  expect_paths_agree("local_size: 5 alpha: 0.0001 beta: 0.75 k: 2", {2, 16, 9, 11});
  expect_paths_agree("local_size: 3 alpha: 2 beta: 0.6 k: 1.5", {3, 5, 4, 7});
  expect_paths_agree("norm_region: WITHIN_CHANNEL local_size: 3 alpha: 2 beta: 0.75",
                     {2, 3, 9, 11});
  expect_paths_agree("norm_region: WITHIN_CHANNEL local_size: 5 alpha: 1 beta: 0.6", {2, 3, 7, 6});
  expect_paths_agree("local_size: 5 alpha: 0.5 beta: 0.75", {2, 16, 9, 11}, false);
}

#ifdef ENGINE_USE_ONEDNN
// Across channels on a bottom a oneDNN layer left channels-last, and a top gradient handed back
// so: our code computes in that format what it computes plane by plane on plain blobs, and
// leaves its top and the bottom's gradient channels-last.
void expect_channels_last_agrees(const std::string& fields, const std::vector<int>& shape) {
  SCOPED_TRACE(fields);
  Blob bottom(shape), ref_bottom(shape), top, ref_top;
  fill_gaussian(bottom, 2.0f);
  set_blob(ref_bottom, data_of(bottom));
  LayerPtr layer = lrn(fields, "CAFFE"), reference = lrn(fields, "CAFFE");
  layer->setup({&bottom}, {&top});
  reference->setup({&ref_bottom}, {&ref_top});
  arrange(bottom, dnnl::memory::format_tag::nhwc);
  layer->forward({&bottom}, {&top});
  reference->forward({&ref_bottom}, {&ref_top});
  EXPECT_TRUE(top.data_memory()->plain_stale()) << "the top is channels-last only";
  expect_close(data_of(top), data_of(ref_top), "forward", 1e-5f);
  same_random_diff(ref_top, top);
  arrange(top, dnnl::memory::format_tag::nhwc, /*gradient=*/true);
  layer->backward({&top}, {true}, {&bottom});
  reference->backward({&ref_top}, {true}, {&ref_bottom});
  EXPECT_TRUE(bottom.diff_memory()->plain_stale()) << "the gradient is channels-last only";
  expect_close(diff_of(bottom), diff_of(ref_bottom), "backward", 1e-5f);
}

TEST(LRNLayer, ChannelsLastAgreesWithThePlanes) {
  if (!onednn_available()) GTEST_SKIP() << "built without oneDNN";
  // AlexNet's beta (square roots) and another (pow); windows of 5 and 3 (unrolled), 9 (tap by
  // tap); fewer channels than the window, where every channel is at an edge.
  expect_channels_last_agrees("local_size: 5 alpha: 0.0001 beta: 0.75 k: 2", {2, 24, 5, 7});
  expect_channels_last_agrees("local_size: 5 alpha: 0.5 beta: 0.75", {3, 20, 4, 3});
  expect_channels_last_agrees("local_size: 3 alpha: 2 beta: 0.6 k: 1.5", {2, 7, 3, 5});
  expect_channels_last_agrees("local_size: 9 alpha: 1 beta: 0.75", {2, 13, 3, 3});
  expect_channels_last_agrees("local_size: 5 alpha: 1 beta: 0.75", {40, 3, 3, 3});
}
#endif

TEST(LRNLayer, BadParametersNameTheLayerAndTheProblem) {
  Blob bottom({1, 4, 3, 3}), top;
  LayerPtr even = lrn("local_size: 4", "CAFFE");
  const std::string message = setup_error(*even, {&bottom}, {&top});
  EXPECT_TRUE(contains(message, "layer norm (LRN)"));
  EXPECT_TRUE(contains(message, "local_size must be odd, got 4"));
  Blob flat({4, 3, 3});
  LayerPtr layer = lrn("local_size: 3", "CAFFE");
  EXPECT_TRUE(contains(setup_error(*layer, {&flat}, {&top}), "needs a 4-axis bottom"));
  LayerPtr in_place = lrn("local_size: 3", "CAFFE");
  EXPECT_TRUE(contains(setup_error(*in_place, {&bottom}, {&bottom}), "cannot run in place"));
}

}  // namespace
}  // namespace engine
