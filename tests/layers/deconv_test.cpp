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

LayerPtr make_layer(const std::string& type, const std::string& engine, const std::string& fields,
                    const std::string& name = "deconv") {
  return create_layer(layer_param("name: '" + name + "' type: '" + type +
                                  "' convolution_param { " + fields + " engine: " + engine + " }"));
}

class DeconvPaths : public EngineTest {
 protected:
  LayerPtr deconv(const std::string& fields, const std::string& name = "deconv") {
    return make_layer("Deconvolution", engine(), fields, name);
  }
};

// Stride 2 with a 2x2 kernel: every input pixel stamps x * W on its own 2x2 block of the 4x4 top.
TEST_P(DeconvPaths, StridedStampsByHand) {
  Blob bottom, top;
  set_blob(bottom, {1, 1, 2, 2}, {1, 2, 3, 4});
  LayerPtr layer = deconv("num_output: 1 kernel_size: 2 stride: 2");
  layer->setup({&bottom}, {&top});
  ASSERT_EQ(top.shape(), (Shape{1, 1, 4, 4}));
  set_blob(*layer->blobs()[0], {1, 2, 3, 4});
  set_blob(*layer->blobs()[1], {0.5f});
  layer->forward({&bottom}, {&top});
  EXPECT_EQ(data_of(top), (Values{1.5f, 2.5f, 2.5f, 4.5f,     //
                                  3.5f, 4.5f, 6.5f, 8.5f,     //
                                  3.5f, 6.5f, 4.5f, 8.5f,     //
                                  9.5f, 12.5f, 12.5f, 16.5f}));
}

// Stride 1, pad 1, 3x3 kernel W(a, b) = 3a + b + 1 on x = [[1, 2], [3, 4]]: the full 4x4 stamp
// sum F(y, x) = sum x(i, j) W(y - i, x - j), cropped by the pad to F(1..2, 1..2):
//   F(1,1) = 1*5 + 2*4 + 3*2 + 4*1 = 23     F(1,2) = 1*6 + 2*5 + 3*3 + 4*2 = 33
//   F(2,1) = 1*8 + 2*7 + 3*5 + 4*4 = 53     F(2,2) = 1*9 + 2*8 + 3*6 + 4*5 = 63
TEST_P(DeconvPaths, PaddedByHand) {
  Blob bottom, top;
  set_blob(bottom, {1, 1, 2, 2}, {1, 2, 3, 4});
  LayerPtr layer = deconv("num_output: 1 kernel_size: 3 pad: 1 bias_term: false");
  layer->setup({&bottom}, {&top});
  ASSERT_EQ(layer->blobs().size(), 1u);
  set_blob(*layer->blobs()[0], {1, 2, 3, 4, 5, 6, 7, 8, 9});
  layer->forward({&bottom}, {&top});
  EXPECT_EQ(top.shape(), (Shape{1, 1, 2, 2}));
  EXPECT_EQ(data_of(top), (Values{23, 33, 53, 63}));
}

// Weights are Caffe's [C_in, C_out / group, kh, kw]: with group 2, input channel 0 writes output
// channels 0-1 only, input channel 1 output channels 2-3. 1x1 kernel.
TEST_P(DeconvPaths, GroupedWeightsByHand) {
  Blob bottom, top;
  set_blob(bottom, {1, 2, 1, 2}, {1, 2, 10, 20});
  LayerPtr layer = deconv("num_output: 4 kernel_size: 1 group: 2 bias_term: false");
  layer->setup({&bottom}, {&top});
  ASSERT_EQ(layer->blobs()[0]->shape(), (Shape{2, 2, 1, 1}));
  set_blob(*layer->blobs()[0], {1, 2, 3, 4});
  layer->forward({&bottom}, {&top});
  EXPECT_EQ(data_of(top), (Values{1, 2, 2, 4, 30, 60, 40, 80}));
}

TEST_P(DeconvPaths, WeightShapeIsInputChannelsFirst) {
  Blob bottom({2, 4, 3, 3}), top;
  LayerPtr layer = deconv("num_output: 6 kernel_h: 3 kernel_w: 2 group: 2");
  layer->setup({&bottom}, {&top});
  EXPECT_EQ(layer->blobs()[0]->shape(), (Shape{4, 3, 3, 2}));
  EXPECT_EQ(layer->blobs()[1]->shape(), (Shape{6}));
}

// stride * (in - 1) + dilation * (kernel - 1) + 1 - 2 * pad, per axis.
TEST_P(DeconvPaths, OutputSizes) {
  struct Case {
    Shape bottom;
    std::string fields;
    Shape top;
  };
  const std::vector<Case> cases = {
      {{1, 2, 5, 5}, "num_output: 3 kernel_size: 4 stride: 2 pad: 1", {1, 3, 10, 10}},
      {{2, 1, 3, 4}, "num_output: 2 kernel_size: 3", {2, 2, 5, 6}},
      {{1, 2, 3, 2},
       "num_output: 2 kernel_h: 3 kernel_w: 1 stride_h: 3 stride_w: 2 pad_h: 2",
       {1, 2, 5, 3}},
      {{1, 1, 4, 4}, "num_output: 1 kernel_size: 3 dilation: 2 stride: 2", {1, 1, 11, 11}},
      {{1, 1, 1, 1}, "num_output: 1 kernel_size: 1", {1, 1, 1, 1}},
  };
  for (const Case& c : cases) {
    Blob bottom(c.bottom), top;
    fill_gaussian(bottom);
    LayerPtr layer = deconv(c.fields + " weight_filler { type: 'gaussian' }");
    layer->setup({&bottom}, {&top});
    EXPECT_EQ(top.shape(), c.top) << c.fields;
    layer->forward({&bottom}, {&top});
  }
}

// Deconvolution forward is Convolution's backward-data pass with the same weights: a Convolution
// from the deconvolution's top shape back to its bottom's channels has weights of the same shape.
TEST_P(DeconvPaths, ForwardIsTheConvolutionsBackwardData) {
  const std::string fields =
      "kernel_h: 3 kernel_w: 2 stride_h: 2 stride_w: 1 pad_h: 1 dilation: 2 group: 2 "
      "bias_term: false weight_filler { type: 'gaussian' }";
  Blob bottom({2, 4, 4, 3}), top;
  fill_gaussian(bottom);
  LayerPtr layer = deconv("num_output: 6 " + fields);
  layer->setup({&bottom}, {&top});
  layer->forward({&bottom}, {&top});

  Blob conv_bottom(top.shape()), conv_top;
  LayerPtr conv = make_layer("Convolution", engine(), "num_output: 4 " + fields, "conv");
  share_parameters(*layer, *conv);
  conv->setup({&conv_bottom}, {&conv_top});
  ASSERT_EQ(conv_top.shape(), bottom.shape());
  std::copy(bottom.cpu_data(), bottom.cpu_data() + bottom.count(), conv_top.mutable_cpu_diff());
  conv->set_param_propagate_down(0, false);
  conv->backward({&conv_top}, {true}, {&conv_bottom});
  expect_agree(diff_of(conv_bottom), data_of(top), "deconvolution forward", 1e-5f);
}

const char* kFillers =
    " weight_filler { type: 'gaussian' std: 0.5 } bias_filler { type: 'gaussian' std: 0.5 }";

TEST_P(DeconvPaths, GradientStridePad) {
  Blob bottom({2, 3, 3, 4}), top;
  fill_gaussian(bottom);
  LayerPtr layer = deconv(std::string("num_output: 2 kernel_size: 3 stride: 2 pad: 1") + kFillers);
  check_gradient(*layer, {&bottom}, {&top});
}

TEST_P(DeconvPaths, GradientGroupsDilationRectangularNoBias) {
  Blob bottom({1, 4, 3, 2}), top;
  fill_gaussian(bottom);
  LayerPtr layer = deconv(
      std::string("num_output: 2 kernel_h: 2 kernel_w: 3 stride_h: 1 stride_w: 2 pad_w: 1 "
                  "dilation: 2 group: 2 bias_term: false") +
      kFillers);
  check_gradient(*layer, {&bottom}, {&top});
}

TEST_P(DeconvPaths, GradientTwoBottomsPointwise) {
  Blob a({3, 4, 2, 3}), b({3, 4, 2, 3}), top_a, top_b;
  fill_gaussian(a);
  fill_gaussian(b);
  LayerPtr layer = deconv(std::string("num_output: 3 kernel_size: 1") + kFillers);
  check_gradient(*layer, {&a, &b}, {&top_a, &top_b});
}

TEST_P(DeconvPaths, GradientsAccumulateInTheParameters) {
  Blob bottom({2, 2, 3, 3}), top;
  fill_gaussian(bottom);
  LayerPtr layer = deconv(std::string("num_output: 3 kernel_size: 3 stride: 2") + kFillers);
  layer->setup({&bottom}, {&top});
  layer->forward({&bottom}, {&top});
  fill_gaussian(top);
  std::copy(top.cpu_data(), top.cpu_data() + top.count(), top.mutable_cpu_diff());
  for (auto& blob : layer->blobs()) blob->set_diff(0);
  layer->backward({&top}, {true}, {&bottom});
  const Values weights_once = diff_of(*layer->blobs()[0]), bias_once = diff_of(*layer->blobs()[1]);
  const Values bottom_once = diff_of(bottom);
  layer->backward({&top}, {true}, {&bottom});
  Values weights_twice = weights_once, bias_twice = bias_once;
  for (float& v : weights_twice) v *= 2;
  for (float& v : bias_twice) v *= 2;
  expect_agree(weights_twice, diff_of(*layer->blobs()[0]), "weights", 1e-5f);
  expect_agree(bias_twice, diff_of(*layer->blobs()[1]), "bias", 1e-5f);
  EXPECT_EQ(diff_of(bottom), bottom_once) << "the bottom diff is overwritten, not accumulated";
}

TEST_P(DeconvPaths, Errors) {
  Blob bottom({1, 3, 2, 2}), top;
  LayerPtr no_output = deconv("num_output: 2 kernel_size: 1 pad: 1", "d1");
  expect_error([&] { no_output->setup({&bottom}, {&top}); },
               {"layer d1 (Deconvolution)", "leaves no output", "0 x 0"});
  LayerPtr groups = deconv("num_output: 4 kernel_size: 3 group: 2", "d2");
  expect_error([&] { groups->setup({&bottom}, {&top}); },
               {"layer d2 (Deconvolution)", "group (2) must divide the input channels (3)"});
  LayerPtr outputs = deconv("num_output: 3 kernel_size: 3 group: 2", "d3");
  Blob six({1, 6, 2, 2});
  expect_error([&] { outputs->setup({&six}, {&top}); },
               {"layer d3 (Deconvolution)", "group (2) must divide num_output (3)"});
}

INSTANTIATE_TEST_SUITE_P(Engines, DeconvPaths,
                         ::testing::Values("CAFFE", "ONEDNN", "ONEDNN_NHWC"));

TEST(DeconvolutionLayer, LoadedWeightsOfTheWrongShapeAreRejected) {
  Blob bottom({1, 4, 3, 3}), top;
  LayerPtr layer =
      make_layer("Deconvolution", "CAFFE", "num_output: 6 kernel_size: 2 group: 2", "up");
  layer->blobs().push_back(std::make_shared<Blob>(Shape{6, 2, 2, 2}));
  layer->blobs().push_back(std::make_shared<Blob>(Shape{6}));
  expect_error([&] { layer->setup({&bottom}, {&top}); },
               {"layer up (Deconvolution)", "weights should have shape 4 x 3 x 2 x 2",
                "got 6 x 2 x 2 x 2"});
}

// oneDNN in both formats of the activations, its own and channels-last, against Caffe's code.
void expect_paths_agree(const Shape& shape, const std::string& fields,
                        const std::string& engine = "ONEDNN") {
  if (!onednn_available()) GTEST_SKIP() << "no oneDNN in this build";
  if (engine == "ONEDNN") expect_paths_agree(shape, fields, "ONEDNN_NHWC");
  SCOPED_TRACE(fields + " engine " + engine);
  Context::set_seed(11);
  Blob bottom_ref(shape), bottom_fast(shape), top_ref, top_fast;
  fill_gaussian(bottom_ref);
  bottom_fast.share_data(bottom_ref);
  const std::string all = fields + kFillers;
  LayerPtr reference = make_layer("Deconvolution", "CAFFE", all);
  LayerPtr fast = make_layer("Deconvolution", engine, all);
  reference->setup({&bottom_ref}, {&top_ref});
  share_parameters(*reference, *fast);
  fast->setup({&bottom_fast}, {&top_fast});
  reference->forward({&bottom_ref}, {&top_ref});
  fast->forward({&bottom_fast}, {&top_fast});
  ASSERT_EQ(top_ref.shape(), top_fast.shape());
  expect_agree(data_of(top_ref), data_of(top_fast), "forward");
  same_random_diff(top_ref, top_fast);
  for (int round = 0; round < 2; ++round) {
    for (auto* layer : {reference.get(), fast.get()}) {
      for (const auto& blob : layer->blobs()) blob->set_diff(0.5f);
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

TEST(DeconvPathsAgree, FcnUpsampling) {
  expect_paths_agree({2, 5, 7, 6}, "num_output: 5 kernel_size: 4 stride: 2 pad: 1");
}
TEST(DeconvPathsAgree, GroupedDilatedRectangular) {
  expect_paths_agree({3, 6, 5, 4},
                     "num_output: 4 kernel_h: 3 kernel_w: 2 stride_h: 2 stride_w: 3 pad_h: 2 "
                     "dilation: 2 group: 2");
}
TEST(DeconvPathsAgree, PointwiseNoBias) {
  expect_paths_agree({4, 8, 3, 3}, "num_output: 6 kernel_size: 1 bias_term: false");
}

}  // namespace
}  // namespace engine
