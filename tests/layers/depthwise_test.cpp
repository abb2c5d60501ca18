// Depthwise convolution (group == channels): the reference path's direct kernel against hand
// values, against the lowered path (as a dense convolution whose weights are zero off the
// diagonal blocks), against oneDNN, and by finite differences.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "core/context.hpp"
#include "core/layer_registry.hpp"
#include "gradient_checker.hpp"
#include "math/onednn.hpp"

namespace engine {
namespace {

using namespace testing;

using Values = std::vector<float>;
using Shape = std::vector<int>;

LayerPtr make_conv(const std::string& engine, const std::string& fields,
                   const std::string& name = "dw") {
  return create_layer(layer_param("name: '" + name + "' type: 'Convolution' convolution_param { " +
                                  fields + " engine: " + engine + " }"));
}

// Two channels, each with its own 2x2 kernel: channel 0 sums windows ([1,1],[1,1]), channel 1
// takes the top-left tap times 10; bias 1 and -1.
// Every engine: DEFAULT runs the direct kernel too, ONEDNN oneDNN's grouped convolution.
TEST(DepthwiseConvolution, EachChannelItsOwnKernelByHand) {
  for (const std::string engine : {"CAFFE", "DEFAULT", "ONEDNN"}) {
    if (engine == "ONEDNN" && !onednn_available()) continue;
    Blob bottom, top;
    set_blob(bottom, {1, 2, 3, 3}, {1, 2, 3, 4, 5, 6, 7, 8, 9,  //
                                    9, 8, 7, 6, 5, 4, 3, 2, 1});
    LayerPtr layer = make_conv(engine, "num_output: 2 group: 2 kernel_size: 2");
    layer->setup({&bottom}, {&top});
    ASSERT_EQ(layer->blobs()[0]->shape(), (Shape{2, 1, 2, 2}));
    set_blob(*layer->blobs()[0], {1, 1, 1, 1, 10, 0, 0, 0});
    set_blob(*layer->blobs()[1], {1, -1});
    layer->forward({&bottom}, {&top});
    EXPECT_EQ(data_of(top), (Values{13, 17, 25, 29, 89, 79, 59, 49})) << engine;
  }
}

// A channel multiplier of 2: output channels 2c and 2c + 1 both read input channel c. Stride 2,
// pad 1, 3x3 kernels holding one tap each: the centre (output 0 and 2) or the bottom-right corner
// (output 1 and 3), weighted 1, 2, 3, 4. On a 3x3 input, output (oh, ow) centres on (2oh, 2ow).
TEST(DepthwiseConvolution, ChannelMultiplierByHand) {
  Blob bottom, top;
  set_blob(bottom, {1, 2, 3, 3}, {1, 2, 3, 4, 5, 6, 7, 8, 9,  //
                                  10, 20, 30, 40, 50, 60, 70, 80, 90});
  LayerPtr layer = make_conv("CAFFE", "num_output: 4 group: 2 kernel_size: 3 stride: 2 pad: 1 "
                                      "bias_term: false");
  layer->setup({&bottom}, {&top});
  ASSERT_EQ(top.shape(), (Shape{1, 4, 2, 2}));
  const Values centre = {0, 0, 0, 0, 1, 0, 0, 0, 0}, corner = {0, 0, 0, 0, 0, 0, 0, 0, 1};
  Values weights;
  for (int o = 0; o < 4; ++o) {
    for (float v : o % 2 == 0 ? centre : corner) weights.push_back(v * (o + 1));
  }
  set_blob(*layer->blobs()[0], weights);
  layer->forward({&bottom}, {&top});
  EXPECT_EQ(data_of(top), (Values{1, 3, 7, 9,                  // centre of channel 0
                                  2 * 5, 0, 0, 0,              // corner x(2oh+1, 2ow+1)
                                  3 * 10, 3 * 30, 3 * 70, 3 * 90,
                                  4 * 50, 0, 0, 0}));
}

// The dense equivalent: num_output x channels weights, zero except output o's kernel at input
// channel o / multiplier.
Values dense_weights(const Blob& depthwise, int channels) {
  const int outputs = depthwise.shape(0), kernel = depthwise.count(2);
  const int multiplier = outputs / channels;
  Values dense(static_cast<size_t>(outputs) * channels * kernel, 0.0f);
  for (int o = 0; o < outputs; ++o) {
    for (int t = 0; t < kernel; ++t) {
      dense[(static_cast<size_t>(o) * channels + o / multiplier) * kernel + t] =
          depthwise.cpu_data()[o * kernel + t];
    }
  }
  return dense;
}

// The direct kernel against the lowered path computing the same function as a dense convolution,
// forward and all three gradients (weights compared on the diagonal blocks).
void expect_matches_lowered(const Shape& shape, const std::string& fields, int multiplier) {
  SCOPED_TRACE(fields);
  Context::set_seed(5);
  const int channels = shape[1];
  const std::string common = fields + " weight_filler { type: 'gaussian' } "
                                      "bias_filler { type: 'gaussian' }";
  Blob bottom(shape), dense_bottom(shape), top, dense_top;
  fill_gaussian(bottom);
  dense_bottom.share_data(bottom);
  const std::string outputs = "num_output: " + std::to_string(channels * multiplier) + " ";
  LayerPtr direct =
      make_conv("CAFFE", outputs + "group: " + std::to_string(channels) + " " + common);
  LayerPtr dense = make_conv("CAFFE", outputs + common);
  direct->setup({&bottom}, {&top});
  dense->setup({&dense_bottom}, {&dense_top});
  set_blob(*dense->blobs()[0], dense_weights(*direct->blobs()[0], channels));
  std::copy(direct->blobs()[1]->cpu_data(), direct->blobs()[1]->cpu_data() + channels * multiplier,
            dense->blobs()[1]->mutable_cpu_data());
  direct->forward({&bottom}, {&top});
  dense->forward({&dense_bottom}, {&dense_top});
  ASSERT_EQ(top.shape(), dense_top.shape());
  expect_agree(data_of(dense_top), data_of(top), "forward", 1e-6f);

  same_random_diff(dense_top, top);
  for (auto* layer : {direct.get(), dense.get()}) {
    for (const auto& blob : layer->blobs()) blob->set_diff(0.25f);  // accumulates onto this
  }
  direct->backward({&top}, {true}, {&bottom});
  dense->backward({&dense_top}, {true}, {&dense_bottom});
  expect_agree(diff_of(dense_bottom), diff_of(bottom), "bottom gradient", 1e-6f);
  const Values full = diff_of(*dense->blobs()[0]);
  const int kernel = direct->blobs()[0]->count(2);
  Values diagonal;
  for (int o = 0; o < channels * multiplier; ++o) {
    for (int t = 0; t < kernel; ++t) {
      diagonal.push_back(full[(static_cast<size_t>(o) * channels + o / multiplier) * kernel + t]);
    }
  }
  expect_agree(diagonal, diff_of(*direct->blobs()[0]), "weight gradient", 1e-6f);
  expect_agree(diff_of(*dense->blobs()[1]), diff_of(*direct->blobs()[1]), "bias gradient", 1e-6f);
}

TEST(DepthwiseConvolution, MatchesLoweredMobileNetStride1) {
  expect_matches_lowered({2, 8, 13, 11}, "kernel_size: 3 pad: 1", 1);
}
TEST(DepthwiseConvolution, MatchesLoweredMobileNetStride2) {
  expect_matches_lowered({2, 6, 12, 13}, "kernel_size: 3 pad: 1 stride: 2", 1);
}
TEST(DepthwiseConvolution, MatchesLoweredMultiplierDilationRectangular) {
  expect_matches_lowered({3, 3, 9, 10},
                         "kernel_h: 3 kernel_w: 2 pad_h: 2 pad_w: 0 stride_h: 1 stride_w: 3 "
                         "dilation: 2",
                         3);
}
TEST(DepthwiseConvolution, MatchesLoweredLargePaddedKernel) {
  expect_matches_lowered({1, 4, 6, 5}, "kernel_size: 5 pad: 3 stride: 2", 2);
}

class DepthwisePaths : public EngineTest {};

TEST(DepthwiseConvolution, DefaultEngineGradient) {
  Blob bottom({2, 2, 4, 5}), top;
  fill_gaussian(bottom);
  LayerPtr layer = make_conv("DEFAULT", "num_output: 4 group: 2 kernel_size: 3 pad: 1 stride: 2 "
                                        "weight_filler { type: 'gaussian' } "
                                        "bias_filler { type: 'gaussian' }");
  check_gradient(*layer, {&bottom}, {&top});
}

TEST_P(DepthwisePaths, GradientStride1) {
  Blob bottom({2, 3, 5, 4}), top;
  fill_gaussian(bottom);
  LayerPtr layer = make_conv(engine(), "num_output: 3 group: 3 kernel_size: 3 pad: 1 "
                                       "weight_filler { type: 'gaussian' } "
                                       "bias_filler { type: 'gaussian' }");
  check_gradient(*layer, {&bottom}, {&top});
}

TEST_P(DepthwisePaths, GradientStride2MultiplierNoBias) {
  Blob bottom({1, 2, 7, 6}), top;
  fill_gaussian(bottom);
  LayerPtr layer = make_conv(engine(), "num_output: 4 group: 2 kernel_size: 3 pad: 1 stride: 2 "
                                       "bias_term: false weight_filler { type: 'gaussian' }");
  check_gradient(*layer, {&bottom}, {&top});
}

TEST_P(DepthwisePaths, GradientDilatedRectangular) {
  Blob bottom({2, 2, 6, 5}), top;
  fill_gaussian(bottom);
  LayerPtr layer = make_conv(engine(), "num_output: 2 group: 2 kernel_h: 2 kernel_w: 3 "
                                       "dilation: 2 pad_w: 2 stride_h: 2 stride_w: 1 "
                                       "weight_filler { type: 'gaussian' } "
                                       "bias_filler { type: 'gaussian' }");
  check_gradient(*layer, {&bottom}, {&top});
}

INSTANTIATE_TEST_SUITE_P(Engines, DepthwisePaths, ::testing::Values("CAFFE", "ONEDNN"));

TEST(DepthwiseConvolution, AgreesWithOnednn) {
  if (!onednn_available()) GTEST_SKIP() << "no oneDNN in this build";
  for (const std::string fields : {"num_output: 16 group: 16 kernel_size: 3 pad: 1",
                                   "num_output: 16 group: 16 kernel_size: 3 pad: 1 stride: 2",
                                   "num_output: 32 group: 16 kernel_size: 3 stride: 2"}) {
    SCOPED_TRACE(fields);
    Blob bottom({2, 16, 14, 14}), top_ref, top_fast;
    fill_gaussian(bottom);
    const std::string all = fields + " weight_filler { type: 'gaussian' } "
                                     "bias_filler { type: 'gaussian' }";
    LayerPtr reference = make_conv("CAFFE", all), fast = make_conv("ONEDNN", all);
    reference->setup({&bottom}, {&top_ref});
    share_parameters(*reference, *fast);
    fast->setup({&bottom}, {&top_fast});
    reference->forward({&bottom}, {&top_ref});
    fast->forward({&bottom}, {&top_fast});
    expect_agree(data_of(top_ref), data_of(top_fast), "forward");
    same_random_diff(top_ref, top_fast);
    Blob bottom_fast(bottom.shape());
    bottom_fast.share_data(bottom);
    for (auto* layer : {reference.get(), fast.get()}) {
      for (const auto& blob : layer->blobs()) blob->set_diff(0);
    }
    reference->backward({&top_ref}, {true}, {&bottom});
    fast->backward({&top_fast}, {true}, {&bottom_fast});
    expect_agree(diff_of(bottom), diff_of(bottom_fast), "bottom gradient");
    expect_agree(diff_of(*reference->blobs()[0]), diff_of(*fast->blobs()[0]), "weight gradient");
    expect_agree(diff_of(*reference->blobs()[1]), diff_of(*fast->blobs()[1]), "bias gradient");
  }
}

}  // namespace
}  // namespace engine
