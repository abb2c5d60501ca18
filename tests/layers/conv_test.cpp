#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "core/context.hpp"
#include "core/layer_registry.hpp"
#include "gradient_checker.hpp"
#include "math/im2col.hpp"
#include "math/onednn.hpp"
#include "math/random.hpp"

namespace engine {
namespace {

using namespace testing;

LayerPtr make_conv(const std::string& engine, const std::string& conv_fields,
                   const std::string& name = "conv") {
  return create_layer(layer_param("name: '" + name + "' type: 'Convolution' convolution_param { " +
                                  conv_fields + " engine: " + engine + " }"));
}

std::vector<float> iota(int n, float start = 1) {
  std::vector<float> v(n);
  for (int i = 0; i < n; ++i) v[i] = start + i;
  return v;
}

// Runs both paths of the engine: CAFFE (reference) and ONEDNN where the build has it.
class ConvPaths : public EngineTest {
 protected:
  LayerPtr conv(const std::string& fields, const std::string& name = "conv") {
    return make_conv(engine(), fields, name);
  }
};

// 1 x 1 x 4 x 4 input 1..16, 3x3 kernel with taps (0,0) = 1, (0,2) = 100, (2,2) = 10, pad 1,
// stride 2: output (oh, ow) reads rows 2oh-1.., columns 2ow-1.. (zero outside):
//   (0,0): 10 * x(1,1) = 60           (0,1): 10 * x(1,3) = 80
//   (1,0): 100 * x(1,1) + 10 * x(3,1) = 600 + 140
//   (1,1): x(1,1) + 100 * x(1,3) + 10 * x(3,3) = 6 + 800 + 160;   plus bias 0.5.
TEST_P(ConvPaths, PaddedStridedForwardByHand) {
  Blob bottom({1, 1, 4, 4}), top;
  set_blob(bottom, iota(16));
  LayerPtr layer = conv("num_output: 1 kernel_size: 3 pad: 1 stride: 2");
  layer->setup({&bottom}, {&top});
  set_blob(*layer->blobs()[0], {1, 0, 100, 0, 0, 0, 0, 0, 10});
  set_blob(*layer->blobs()[1], {0.5f});
  layer->forward({&bottom}, {&top});
  EXPECT_EQ(top.shape(), (std::vector<int>{1, 1, 2, 2}));
  EXPECT_EQ(data_of(top), (std::vector<float>{60.5f, 80.5f, 740.5f, 966.5f}));
}

// The same taps at stride 1 (Winograd's geometry): output (oh, ow) = x(oh-1, ow-1)
// + 100 x(oh-1, ow+1) + 10 x(oh+1, ow+1), x(r, c) = 1 + 4r + c, zero outside. Row 0 reads only
// x(1, ow+1): 10 * (6, 7, 8, 0); (1, 1) = x(0,0) + 100 x(0,2) + 10 x(2,2) = 1 + 300 + 110.
TEST_P(ConvPaths, UnitStrideForwardByHand) {
  Blob bottom({1, 1, 4, 4}), top;
  set_blob(bottom, iota(16));
  LayerPtr layer = conv("num_output: 1 kernel_size: 3 pad: 1 bias_term: false");
  layer->setup({&bottom}, {&top});
  set_blob(*layer->blobs()[0], {1, 0, 100, 0, 0, 0, 0, 0, 10});
  layer->forward({&bottom}, {&top});
  // Exact but for Winograd's transforms, whose 1/6, 1/12 and 1/24 binary floats cannot hold.
  expect_near(data_of(top),
              {60, 70, 80, 0, 300, 411, 522, 3, 740, 855, 966, 7, 1000, 1109, 1210, 11},
              engine() == "WINOGRAD" ? 1e-3f : 0.0f);
}

// 2x2 kernel [[1, 2], [3, 4]] with dilation 2 on the same input reads x(oh + 2a, ow + 2b):
//   (0,0): 1 + 2*3 + 3*9 + 4*11 = 78, and each step right adds 10, each step down 40.
TEST_P(ConvPaths, DilatedForwardByHand) {
  Blob bottom({1, 1, 4, 4}), top;
  set_blob(bottom, iota(16));
  LayerPtr layer = conv("num_output: 1 kernel_size: 2 dilation: 2 bias_term: false");
  layer->setup({&bottom}, {&top});
  ASSERT_EQ(layer->blobs().size(), 1u);
  set_blob(*layer->blobs()[0], {1, 2, 3, 4});
  layer->forward({&bottom}, {&top});
  EXPECT_EQ(data_of(top), (std::vector<float>{78, 88, 118, 128}));
}

// Groups: output channels 0-1 see only input channel 0, channels 2-3 only input channel 1.
TEST_P(ConvPaths, GroupsSeeTheirOwnChannels) {
  Blob bottom({1, 2, 2, 2}), top;
  set_blob(bottom, {1, 2, 3, 4, 10, 20, 30, 40});
  LayerPtr layer = conv("num_output: 4 kernel_size: 1 group: 2 bias_term: false");
  layer->setup({&bottom}, {&top});
  EXPECT_EQ(layer->blobs()[0]->shape(), (std::vector<int>{4, 1, 1, 1}));
  set_blob(*layer->blobs()[0], {1, 2, 3, 4});
  layer->forward({&bottom}, {&top});
  EXPECT_EQ(data_of(top),
            (std::vector<float>{1, 2, 3, 4, 2, 4, 6, 8, 30, 60, 90, 120, 40, 80, 120, 160}));
}

// A 3x3 kernel on 2 channels of a 3x3 input, with every weight 1: each output sums a window
// over both channels; bias 1 per output. With pad 1 the corner (0,0) sees x(0..1, 0..1).
TEST_P(ConvPaths, ChannelsSumWithBias) {
  Blob bottom({1, 2, 3, 3}), top;
  set_blob(bottom, iota(18));  // channel 0: 1..9, channel 1: 10..18
  LayerPtr layer = conv(
      "num_output: 2 kernel_size: 3 pad: 1 weight_filler { type: 'constant' value: 1 } "
      "bias_filler { type: 'constant' value: 1 }");
  layer->setup({&bottom}, {&top});
  layer->forward({&bottom}, {&top});
  ASSERT_EQ(top.shape(), (std::vector<int>{1, 2, 3, 3}));
  // corner: (1+2+4+5) + (10+11+13+14) + 1 = 61; centre: 45 + 126 + 1 = 172.
  EXPECT_EQ(top.cpu_data()[0], 61);
  EXPECT_EQ(top.cpu_data()[4], 172);
  EXPECT_EQ(top.cpu_data()[9 + 4], 172);
}

TEST_P(ConvPaths, OutputSizesFollowCaffesFloor) {
  struct Case {
    std::vector<int> bottom;
    std::string fields;
    std::vector<int> top;
  };
  const std::vector<Case> cases = {
      {{1, 3, 35, 35}, "num_output: 4 kernel_size: 11 stride: 4", {1, 4, 7, 7}},
      {{1, 1, 6, 6}, "num_output: 1 kernel_size: 3 stride: 2", {1, 1, 2, 2}},  // 1.5 -> 1
      {{2, 1, 7, 5},
       "num_output: 2 kernel_h: 3 kernel_w: 2 pad_h: 1 stride_h: 1 stride_w: 2",
       {2, 2, 7, 2}},
      {{1, 2, 7, 9}, "num_output: 2 kernel_size: 3 dilation: 3 pad: 1 stride: 3", {1, 2, 1, 2}},
      {{1, 1, 1, 1}, "num_output: 1 kernel_size: 1 pad: 2 stride: 5", {1, 1, 1, 1}},
  };
  for (const Case& c : cases) {
    Blob bottom(c.bottom), top;
    fill_gaussian(bottom);
    LayerPtr layer = conv(c.fields);
    layer->setup({&bottom}, {&top});
    EXPECT_EQ(top.shape(), c.top) << c.fields;
    layer->forward({&bottom}, {&top});  // must run at every one of these geometries
  }
}

TEST_P(ConvPaths, ReshapeFollowsTheBottom) {
  Blob bottom({2, 3, 9, 9}), top;
  fill_gaussian(bottom);
  LayerPtr layer = conv("num_output: 4 kernel_size: 3 stride: 2 weight_filler { type: 'gaussian' }");
  layer->setup({&bottom}, {&top});
  layer->forward({&bottom}, {&top});
  EXPECT_EQ(top.shape(), (std::vector<int>{2, 4, 4, 4}));
  bottom.reshape({3, 3, 11, 7});
  fill_gaussian(bottom);
  layer->forward({&bottom}, {&top});
  EXPECT_EQ(top.shape(), (std::vector<int>{3, 4, 5, 3}));
}

const char* kFillers =
    " weight_filler { type: 'gaussian' std: 0.5 } bias_filler { type: 'gaussian' std: 0.5 }";

TEST_P(ConvPaths, GradientGroupsPaddingStride) {
  Blob bottom({2, 4, 5, 6}), top;
  fill_gaussian(bottom);
  LayerPtr layer = conv(std::string("num_output: 4 kernel_size: 3 pad: 1 stride: 2 group: 2") +
                        kFillers);
  check_gradient(*layer, {&bottom}, {&top});
}

TEST_P(ConvPaths, GradientDilationRectangularNoBias) {
  Blob bottom({1, 3, 7, 5}), top;
  fill_gaussian(bottom);
  LayerPtr layer = conv(
      std::string("num_output: 2 kernel_h: 3 kernel_w: 2 pad_h: 1 stride_h: 1 stride_w: 2 "
                  "dilation: 2 bias_term: false") +
      kFillers);
  check_gradient(*layer, {&bottom}, {&top});
}

TEST_P(ConvPaths, GradientFlooredOutputTwoBottoms) {
  // 6x6 with kernel 3, stride 2: the last input row and column are never read.
  Blob a({2, 2, 6, 6}), b({2, 2, 6, 6}), top_a, top_b;
  fill_gaussian(a);
  fill_gaussian(b);
  LayerPtr layer = conv(std::string("num_output: 3 kernel_size: 3 stride: 2") + kFillers);
  check_gradient(*layer, {&a, &b}, {&top_a, &top_b});
}

// 3x3 at stride 1 (Winograd's geometry) with odd output sizes, groups, no padding, two
// bottoms and a padding of 2.
TEST_P(ConvPaths, GradientUnitStrideOddSizesGroups) {
  Blob bottom({2, 4, 5, 7}), top;
  fill_gaussian(bottom);
  LayerPtr layer = conv(std::string("num_output: 6 kernel_size: 3 pad: 1 group: 2") + kFillers);
  check_gradient(*layer, {&bottom}, {&top});
}

TEST_P(ConvPaths, GradientUnitStrideUnpaddedTwoBottoms) {
  Blob a({1, 3, 6, 5}), b({1, 3, 6, 5}), top_a, top_b;
  fill_gaussian(a);
  fill_gaussian(b);
  LayerPtr layer = conv(std::string("num_output: 2 kernel_size: 3 bias_term: false") + kFillers);
  check_gradient(*layer, {&a, &b}, {&top_a, &top_b});
}

TEST_P(ConvPaths, GradientUnitStrideFiveByFive) {
  Blob bottom({2, 4, 6, 7}), top;
  fill_gaussian(bottom);
  LayerPtr layer = conv(std::string("num_output: 4 kernel_size: 5 pad: 2 group: 2") + kFillers);
  check_gradient(*layer, {&bottom}, {&top});
}

TEST_P(ConvPaths, GradientUnitStrideWidePadding) {
  Blob bottom({2, 2, 4, 3}), top;
  fill_gaussian(bottom);
  LayerPtr layer = conv(std::string("num_output: 3 kernel_size: 3 pad_h: 2 pad_w: 1") + kFillers);
  check_gradient(*layer, {&bottom}, {&top});
}

TEST_P(ConvPaths, GradientPointwise) {
  Blob bottom({3, 4, 3, 3}), top;
  fill_gaussian(bottom);
  LayerPtr layer = conv(std::string("num_output: 6 kernel_size: 1 group: 2") + kFillers);
  check_gradient(*layer, {&bottom}, {&top});
}

TEST_P(ConvPaths, WeightAndBiasGradientsAccumulate) {
  Blob bottom({2, 2, 5, 5}), top;
  fill_gaussian(bottom);
  LayerPtr layer = conv(std::string("num_output: 3 kernel_size: 3 pad: 1") + kFillers);
  layer->setup({&bottom}, {&top});
  layer->forward({&bottom}, {&top});
  fill_gaussian(top);
  std::copy(top.cpu_data(), top.cpu_data() + top.count(), top.mutable_cpu_diff());
  for (auto& blob : layer->blobs()) blob->set_diff(0);
  layer->backward({&top}, {true}, {&bottom});
  const std::vector<float> weights_once = diff_of(*layer->blobs()[0]);
  const std::vector<float> bias_once = diff_of(*layer->blobs()[1]);
  const std::vector<float> bottom_once = diff_of(bottom);
  layer->backward({&top}, {true}, {&bottom});
  for (size_t i = 0; i < weights_once.size(); ++i) {
    EXPECT_NEAR(layer->blobs()[0]->cpu_diff()[i], 2 * weights_once[i], 1e-4f * (1 + std::fabs(weights_once[i])));
  }
  for (size_t i = 0; i < bias_once.size(); ++i) {
    EXPECT_NEAR(layer->blobs()[1]->cpu_diff()[i], 2 * bias_once[i], 1e-4f * (1 + std::fabs(bias_once[i])));
  }
  EXPECT_EQ(diff_of(bottom), bottom_once) << "the bottom diff is overwritten, not accumulated";
}

TEST_P(ConvPaths, LoadedWeightsOfTheRightShapeAreKept) {
  Blob bottom({1, 4, 5, 5}), top;
  LayerPtr layer = conv("num_output: 2 kernel_size: 3 group: 2 weight_filler { type: 'gaussian' }");
  layer->blobs().push_back(std::make_shared<Blob>(std::vector<int>{2, 2, 3, 3}));
  layer->blobs().push_back(std::make_shared<Blob>(std::vector<int>{2}));
  layer->blobs()[0]->set_data(0.25f);
  layer->blobs()[1]->set_data(-1);
  layer->setup({&bottom}, {&top});
  EXPECT_EQ(layer->blobs()[0]->cpu_data()[5], 0.25f) << "loaded weights must not be refilled";
  EXPECT_EQ(layer->blobs()[1]->cpu_data()[1], -1);
}

TEST_P(ConvPaths, LoadedWeightsOfTheWrongShapeAreRejected) {
  Blob bottom({1, 4, 5, 5}), top;
  LayerPtr layer = conv("num_output: 2 kernel_size: 3 group: 2", "conv7");
  layer->blobs().push_back(std::make_shared<Blob>(std::vector<int>{2, 4, 3, 3}));
  layer->blobs().push_back(std::make_shared<Blob>(std::vector<int>{2}));
  expect_error([&] { layer->setup({&bottom}, {&top}); },
               {"layer conv7 (Convolution)", "weights should have shape 2 x 2 x 3 x 3", "got 2 x 4 x 3 x 3"});

  LayerPtr missing_bias = conv("num_output: 2 kernel_size: 3", "conv8");
  missing_bias->blobs().push_back(std::make_shared<Blob>(std::vector<int>{2, 4, 3, 3}));
  expect_error([&] { missing_bias->setup({&bottom}, {&top}); },
               {"layer conv8 (Convolution)", "expects 2 parameter blob(s)"});
}

TEST_P(ConvPaths, BadParametersNameTheLayerAndTheProblem) {
  Blob bottom({1, 3, 5, 5}), top;
  struct Case {
    std::string fields;
    std::string expected;
  };
  const std::vector<Case> cases = {
      {"num_output: 4 kernel_size: 3 group: 2", "group (2) must divide the input channels (3)"},
      {"num_output: 4 kernel_size: 3 group: 3", "group (3) must divide num_output (4)"},
      {"num_output: 3 kernel_size: 0", "kernel size must be nonzero"},
      {"num_output: 3 kernel_size: 7", "larger than the padded input (5 x 5)"},
      {"num_output: 3 kernel_size: 3 dilation: 3", "larger than the padded input"},
      {"num_output: 3", "needs kernel_size"},
      {"kernel_size: 3", "num_output > 0"},
      {"num_output: 3 kernel_size: 3 kernel_h: 3 kernel_w: 3", "not both"},
      {"num_output: 3 kernel_size: 3 stride: 0", "stride must be nonzero"},
      {"num_output: 3 kernel_size: 3 axis: 2", "only 2-D convolution"},
      {"num_output: 3 kernel_size: 3 pad: 1 pad: 1 pad: 1", "one per spatial axis"},
  };
  for (const Case& c : cases) {
    LayerPtr layer = conv(c.fields, "bad");
    expect_error([&] { layer->setup({&bottom}, {&top}); }, {c.expected, "layer bad (Convolution)"});
  }
  Blob flat({3, 5});
  LayerPtr layer = conv("num_output: 3 kernel_size: 1", "bad");
  expect_error([&] { layer->setup({&flat}, {&top}); }, {"layer bad (Convolution)", "N x C x H x W"});

  LayerPtr channels = conv("num_output: 3 kernel_size: 1", "bad");
  channels->setup({&bottom}, {&top});
  Blob other({1, 4, 5, 5});
  expect_error([&] { channels->forward({&other}, {&top}); },
               {"layer bad (Convolution)", "bottom has 4 channels", "made for 3"});
}

INSTANTIATE_TEST_SUITE_P(Engines, ConvPaths,
                         ::testing::Values("CAFFE", "ONEDNN", "ONEDNN_NHWC", "WINOGRAD"));

// ---- the two paths against each other -------------------------------------------------

// `backward_planned` false: the fast layer is told that no backward pass will run (it keeps
// nothing for one), and is then asked for one anyway. Engine ONEDNN: both of oneDNN's formats
// for the activations, its own and channels-last.
void expect_paths_agree(const std::vector<int>& shape, const std::string& fields,
                        const std::string& engine = "ONEDNN", bool backward_planned = true) {
  if (engine == "ONEDNN") expect_paths_agree(shape, fields, "ONEDNN_NHWC", backward_planned);
  if (engine.rfind("ONEDNN", 0) == 0 && !onednn_available()) {
    GTEST_SKIP() << "no oneDNN in this build";
  }
  SCOPED_TRACE(fields + " engine " + engine);
  Context::set_seed(7);
  Blob bottom_ref(shape), bottom_fast(shape), top_ref, top_fast;
  fill_gaussian(bottom_ref);
  bottom_fast.share_data(bottom_ref);
  const std::string all = fields + kFillers;
  LayerPtr reference = make_conv("CAFFE", all), fast = make_conv(engine, all);
  reference->setup({&bottom_ref}, {&top_ref});
  share_parameters(*reference, *fast);
  fast->setup({&bottom_fast}, {&top_fast});
  if (!backward_planned) fast->set_backward_plan(false, {false});
  reference->forward({&bottom_ref}, {&top_ref});
  fast->forward({&bottom_fast}, {&top_fast});
  ASSERT_EQ(top_ref.shape(), top_fast.shape());
  expect_agree(data_of(top_ref), data_of(top_fast), "forward");

  same_random_diff(top_ref, top_fast);
  // The second round checks the cached primitives; the third starts from gradients cleared
  // as a net clears them (lazily: the fast paths write them instead of adding).
  for (int round = 0; round < 3; ++round) {
    for (auto* layer : {reference.get(), fast.get()}) {
      for (const auto& blob : layer->blobs()) {
        if (round < 2) {
          blob->set_diff(0.5f);
        } else {
          blob->clear_diff();
        }
      }
    }
    reference->backward({&top_ref}, {true}, {&bottom_ref});
    fast->backward({&top_fast}, {true}, {&bottom_fast});
    expect_agree(diff_of(bottom_ref), diff_of(bottom_fast), "bottom gradient");
    expect_agree(diff_of(*reference->blobs()[0]), diff_of(*fast->blobs()[0]), "weight gradient");
    if (reference->blobs().size() > 1) {
      expect_agree(diff_of(*reference->blobs()[1]), diff_of(*fast->blobs()[1]), "bias gradient");
    }
  }
}

TEST(ConvPathsAgree, AlexNetConv1Like) {
  expect_paths_agree({1, 3, 35, 35}, "num_output: 8 kernel_size: 11 stride: 4");
}
TEST(ConvPathsAgree, AlexNetConv2LikeGrouped) {
  expect_paths_agree({2, 8, 9, 9}, "num_output: 6 kernel_size: 5 pad: 2 group: 2");
}
TEST(ConvPathsAgree, AlexNetConv4LikeGrouped) {
  expect_paths_agree({2, 32, 6, 6}, "num_output: 32 kernel_size: 3 pad: 1 group: 2");
}
TEST(ConvPathsAgree, FlooredOutputNegativeRightPadding) {
  expect_paths_agree({3, 5, 10, 8}, "num_output: 7 kernel_size: 3 stride: 2 bias_term: false");
}
TEST(ConvPathsAgree, DilatedRectangular) {
  expect_paths_agree({2, 6, 11, 9},
                     "num_output: 4 kernel_h: 3 kernel_w: 2 pad_h: 2 pad_w: 1 stride_h: 2 "
                     "stride_w: 1 dilation: 2 group: 2");
}
TEST(ConvPathsAgree, PointwiseManyImages) {
  // Enough images that the reference lowers them in several chunks.
  expect_paths_agree({5, 16, 7, 7}, "num_output: 8 kernel_size: 1");
}

// Winograd against Caffe's code on the shapes of AlexNet's and ResNet's 3x3 layers (smaller),
// odd and even output sizes, pads 0 to 2, and enough images for several chunks of tiles.
TEST(ConvPathsAgree, WinogradAlexNetConv3Like) {
  expect_paths_agree({3, 24, 13, 13}, "num_output: 36 kernel_size: 3 pad: 1", "WINOGRAD");
}
TEST(ConvPathsAgree, WinogradGroupedEvenSizes) {
  expect_paths_agree({2, 16, 8, 10}, "num_output: 12 kernel_size: 3 pad: 1 group: 2", "WINOGRAD");
}
TEST(ConvPathsAgree, WinogradUnpaddedAndWidePadding) {
  expect_paths_agree({2, 5, 9, 6}, "num_output: 4 kernel_size: 3 bias_term: false", "WINOGRAD");
  expect_paths_agree({2, 5, 3, 4}, "num_output: 4 kernel_size: 3 pad: 2", "WINOGRAD");
}
TEST(ConvPathsAgree, WinogradFiveByFive) {
  // AlexNet's conv2 (grouped) and GoogLeNet's 5x5 branches, smaller; odd and even sizes.
  expect_paths_agree({2, 16, 13, 13}, "num_output: 24 kernel_size: 5 pad: 2 group: 2", "WINOGRAD");
  expect_paths_agree({3, 6, 8, 7}, "num_output: 5 kernel_size: 5 pad: 2", "WINOGRAD");
  expect_paths_agree({1, 3, 7, 9}, "num_output: 2 kernel_size: 5 bias_term: false", "WINOGRAD");
}
TEST(ConvPathsAgree, WinogradWithoutABackwardPassPlanned) {
  expect_paths_agree({3, 8, 10, 9}, "num_output: 6 kernel_size: 3 pad: 1", "WINOGRAD", false);
}
TEST(ConvPathsAgree, WinogradManyChunks) {
  // 36 * (64 + 64) values per tile and 16 tiles per image: 64 MB hold 227 images, 300 two chunks.
  expect_paths_agree({300, 64, 16, 16}, "num_output: 64 kernel_size: 3 pad: 1", "WINOGRAD");
}
TEST(ConvPathsAgree, WinogradEngineOnOtherGeometriesAgreesWithCaffesCode) {
  expect_paths_agree({2, 4, 9, 9}, "num_output: 4 kernel_size: 3 stride: 2", "WINOGRAD");
  expect_paths_agree({2, 4, 9, 9}, "num_output: 4 kernel_size: 7 pad: 3", "WINOGRAD");
  expect_paths_agree({2, 4, 9, 9}, "num_output: 4 kernel_size: 3 pad: 2 dilation: 2", "WINOGRAD");
  expect_paths_agree({2, 4, 9, 9}, "num_output: 4 kernel_h: 3 kernel_w: 5 pad: 1", "WINOGRAD");
  expect_paths_agree({2, 4, 9, 9}, "num_output: 8 kernel_size: 3 pad: 1 group: 4", "WINOGRAD");
}

// Winograd keeps its transformed weights while they are unchanged, and the forward pass's tiles
// for the backward pass while the bottom is: new weights, and a bottom rewritten between the
// passes (Caffe's backward reads the bottom as it is then), must be seen.
TEST(ConvPathsAgree, WinogradFollowsNewWeightsAndBottoms) {
  Context::set_seed(11);
  const std::string fields = std::string("num_output: 6 kernel_size: 3 pad: 1") + kFillers;
  Blob bottom_ref({2, 5, 8, 8}), bottom_fast, top_ref, top_fast;
  fill_gaussian(bottom_ref);
  bottom_fast.reshape(bottom_ref.shape());
  LayerPtr reference = make_conv("CAFFE", fields), fast = make_conv("WINOGRAD", fields);
  reference->setup({&bottom_ref}, {&top_ref});
  share_parameters(*reference, *fast);
  fast->setup({&bottom_fast}, {&top_fast});
  const auto copy_bottom = [&] {
    std::copy(bottom_ref.cpu_data(), bottom_ref.cpu_data() + bottom_ref.count(),
              bottom_fast.mutable_cpu_data());
  };
  const auto scale = [](Blob& blob, float factor) {
    float* x = blob.mutable_cpu_data();
    for (int i = 0; i < blob.count(); ++i) x[i] = factor * x[i] + 0.125f;
  };
  copy_bottom();
  for (const char* when : {"at first", "after new weights"}) {
    SCOPED_TRACE(when);
    reference->forward({&bottom_ref}, {&top_ref});
    fast->forward({&bottom_fast}, {&top_fast});
    expect_agree(data_of(top_ref), data_of(top_fast), "forward");
    same_random_diff(top_ref, top_fast);
    // The bottom changes after the forward pass, before the backward pass.
    scale(bottom_ref, -0.5f);
    copy_bottom();
    for (auto* layer : {reference.get(), fast.get()}) {
      for (const auto& blob : layer->blobs()) blob->set_diff(0);
    }
    reference->backward({&top_ref}, {true}, {&bottom_ref});
    fast->backward({&top_fast}, {true}, {&bottom_fast});
    expect_agree(diff_of(*reference->blobs()[0]), diff_of(*fast->blobs()[0]), "weight gradient");
    expect_agree(diff_of(bottom_ref), diff_of(bottom_fast), "bottom gradient");
    scale(*reference->blobs()[0], 2.0f);  // shared: the new weights of both
  }
}

// ---- im2col / col2im ---------------------------------------------------------------------

// col2im is the adjoint of im2col: <im2col(x), c> == <x, col2im(c)> for any x and c.
TEST(Im2col, Col2imIsTheAdjoint) {
  ConvGeometry2d g;
  g.channels = 2;
  g.height = 7;
  g.width = 6;
  g.kernel_h = 3;
  g.kernel_w = 2;
  g.pad_h = 2;
  g.pad_w = 1;
  g.stride_h = 2;
  g.stride_w = 3;
  g.dilation_h = 2;
  g.dilation_w = 1;
  const long plane = g.out_h() * g.out_w();
  const long stride = plane + 3;  // a wider row stride than one image needs
  std::vector<float> x(g.channels * g.height * g.width), c(g.col_rows() * stride), col(c.size(), 0),
      back(x.size());
  rng_gaussian(x.size(), 0, 1, x.data());
  rng_gaussian(c.size(), 0, 1, c.data());
  for (int r = 0; r < g.col_rows(); ++r) std::fill(c.begin() + r * stride + plane, c.begin() + (r + 1) * stride, 0.0f);
  im2col(g, x.data(), col.data(), stride);
  col2im(g, c.data(), stride, back.data());
  double lhs = 0, rhs = 0;
  for (size_t i = 0; i < c.size(); ++i) lhs += double(col[i]) * c[i];
  for (size_t i = 0; i < x.size(); ++i) rhs += double(x[i]) * back[i];
  EXPECT_NEAR(lhs, rhs, 1e-4 * std::max(1.0, std::fabs(lhs)));
}

TEST(Im2col, PaddedStridedColumnsByHand) {
  // 1 x 3 x 3 image 1..9, 2x2 kernel, pad 1, stride 2: out 2 x 2.
  ConvGeometry2d g;
  g.channels = 1;
  g.height = g.width = 3;
  g.kernel_h = g.kernel_w = 2;
  g.pad_h = g.pad_w = 1;
  g.stride_h = g.stride_w = 2;
  ASSERT_EQ(g.out_h(), 2);
  const std::vector<float> x = iota(9);
  std::vector<float> col(4 * 4, -1);
  im2col(g, x.data(), col.data(), 4);
  // Row (ki, kj) holds x(2oh - 1 + ki, 2ow - 1 + kj) for the four outputs.
  EXPECT_EQ(col, (std::vector<float>{0, 0, 0, 5,    //
                                     0, 0, 4, 6,    //
                                     0, 2, 0, 8,    //
                                     1, 3, 7, 9}));
}

}  // namespace
}  // namespace engine
