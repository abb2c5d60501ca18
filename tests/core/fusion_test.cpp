// Fusion of in-place layers into the convolution before them (core/channel_epilogue.hpp): which
// chains fuse, and that a fused net computes what the unfused one does, forward and backward, on
// every engine, for partial passes, and after its parameters change.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <functional>

#include "core/context.hpp"
#include "core/net.hpp"
#include "gradient_checker.hpp"
#include "io/prototxt.hpp"

namespace engine {
namespace {

using testing::data_of;
using testing::diff_of;
using testing::expect_agree;
using testing::fill_gaussian;

// conv -> BatchNorm -> Scale -> ReLU, all in place on 'conv', then a second conv with a ReLU, and
// a pooling layer reading the result.
NetParameter chain_net(Phase phase, const std::string& engine, const std::string& group = "1",
                       const std::string& batch_norm_extra = "",
                       const std::string& conv_type = "Convolution") {
  NetParameter param;
  parse_text(
      "layer { name: 'in' type: 'Input' top: 'data' top: 'label' "
      "  input_param { shape { dim: 2 dim: 4 dim: 10 dim: 10 } shape { dim: 2 } } }\n"
      "layer { name: 'conv' type: '" + conv_type + "' bottom: 'data' top: 'conv' "
      "  convolution_param { num_output: 4 kernel_size: 3 pad: 1 group: " + group +
          " engine: " + engine +
          "  weight_filler { type: 'gaussian' std: 0.3 } bias_filler { type: 'gaussian' } } }\n"
          "layer { name: 'bn' type: 'BatchNorm' bottom: 'conv' top: 'conv' "
          "  batch_norm_param { " + batch_norm_extra + " } }\n"
          "layer { name: 'scale' type: 'Scale' bottom: 'conv' top: 'conv' "
          "  scale_param { bias_term: true filler { type: 'gaussian' } "
          "  bias_filler { type: 'gaussian' } } }\n"
          "layer { name: 'relu' type: 'ReLU' bottom: 'conv' top: 'conv' }\n"
          "layer { name: 'conv2' type: 'Convolution' bottom: 'conv' top: 'conv2' "
          "  convolution_param { num_output: 6 kernel_size: 3 engine: " + engine +
          "  weight_filler { type: 'gaussian' std: 0.3 } } }\n"
          "layer { name: 'relu2' type: 'ReLU' bottom: 'conv2' top: 'conv2' }\n"
          "layer { name: 'ip' type: 'InnerProduct' bottom: 'conv2' top: 'ip' "
          "  inner_product_param { num_output: 3 weight_filler { type: 'gaussian' std: 0.1 } } }\n"
          "layer { name: 'loss' type: 'SoftmaxWithLoss' bottom: 'ip' bottom: 'label' top: 'loss' }\n",
      "<fusion test net>", &param);
  param.mutable_state()->set_phase(phase);
  return param;
}

// Stored statistics that are not the identity: mean sums, variance sums, normaliser 2.
void set_statistics(Net& net) {
  Layer& bn = net.layer_by_name("bn");
  testing::set_blob(*bn.blobs()[0], {0.4f, -1.0f, 0.2f, 3.0f});
  testing::set_blob(*bn.blobs()[1], {2.0f, 0.5f, 8.0f, 1.0f});
  testing::set_blob(*bn.blobs()[2], {2.0f});
}

// Two nets of the same weights and inputs, one with fusion planned and one without.
struct NetPair {
  NetPair(const NetParameter& param) {
    Context::set_seed(11);
    fused = std::make_unique<Net>(param);
    setenv("ENGINE_FUSION", "off", 1);
    Context::set_seed(11);
    plain = std::make_unique<Net>(param);
    unsetenv("ENGINE_FUSION");
    for (Net* net : {fused.get(), plain.get()}) {
      Context::set_seed(5);
      fill_gaussian(*net->blob_by_name("data"));
      float* label = net->blob_by_name("label")->mutable_cpu_data();
      label[0] = 0;
      label[1] = 2;
    }
  }
  std::unique_ptr<Net> fused, plain;
};

void scale_values(Blob& blob, float factor) {
  float* values = blob.mutable_cpu_data();
  for (int i = 0; i < blob.count(); ++i) values[i] *= factor;
}

int index_of(const Net& net, const std::string& name) {
  for (size_t i = 0; i < net.layer_names().size(); ++i) {
    if (net.layer_names()[i] == name) return static_cast<int>(i);
  }
  return -1;
}

class Fusion : public testing::EngineTest {};

TEST_P(Fusion, InferenceFusesBatchNormScaleAndReluIntoTheConvolution) {
  NetPair nets(chain_net(TEST, engine()));
  const Net& fused = *nets.fused;
  EXPECT_EQ(fused.fused_until(index_of(fused, "conv")), index_of(fused, "relu"));
  EXPECT_EQ(fused.fused_until(index_of(fused, "conv2")), index_of(fused, "relu2"));
  EXPECT_EQ(nets.plain->fused_until(index_of(fused, "conv")), index_of(fused, "conv"));
  for (Net* net : {nets.fused.get(), nets.plain.get()}) set_statistics(*net);
  nets.fused->forward();
  nets.plain->forward();
  const std::vector<float> conv = data_of(*nets.plain->blob_by_name("conv"));
  expect_agree(conv, data_of(*nets.fused->blob_by_name("conv")), "conv after relu", 1e-5f);
  expect_agree(data_of(*nets.plain->blob_by_name("ip")), data_of(*nets.fused->blob_by_name("ip")),
               "ip", 1e-5f);
  int zeros = 0;
  for (float v : conv) zeros += v == 0;
  EXPECT_GT(zeros, 0) << "the ReLU must have cut something";
  EXPECT_LT(zeros, static_cast<int>(conv.size()));

  // Parameters changed after setup are read at the next pass.
  for (Net* net : {nets.fused.get(), nets.plain.get()}) {
    testing::set_blob(*net->layer_by_name("scale").blobs()[0], {2.0f, -1.0f, 0.5f, 3.0f});
    net->forward();
  }
  expect_agree(data_of(*nets.plain->blob_by_name("conv")),
               data_of(*nets.fused->blob_by_name("conv")), "conv after a new scale", 1e-5f);
}

// MobileNet's conv -> BatchNorm -> Scale -> ReLU6 (a Clip) in inference: the Clip fuses last.
TEST_P(Fusion, InferenceFusesAClipLast) {
  NetParameter param;
  parse_text(
      "layer { name: 'in' type: 'Input' top: 'data' top: 'label' "
      "  input_param { shape { dim: 2 dim: 4 dim: 10 dim: 10 } shape { dim: 2 } } }\n"
      "layer { name: 'conv' type: 'Convolution' bottom: 'data' top: 'conv' "
      "  convolution_param { num_output: 4 kernel_size: 3 pad: 1 engine: " + engine() +
          "  weight_filler { type: 'gaussian' std: 2 } bias_filler { type: 'gaussian' } } }\n"
          "layer { name: 'bn' type: 'BatchNorm' bottom: 'conv' top: 'conv' }\n"
          "layer { name: 'scale' type: 'Scale' bottom: 'conv' top: 'conv' "
          "  scale_param { bias_term: true filler { type: 'gaussian' } "
          "  bias_filler { type: 'gaussian' } } }\n"
          "layer { name: 'relu6' type: 'Clip' bottom: 'conv' top: 'conv' "
          "  clip_param { min: 0 max: 6 } }\n"
          "layer { name: 'ip' type: 'InnerProduct' bottom: 'conv' top: 'ip' "
          "  inner_product_param { num_output: 3 weight_filler { type: 'gaussian' std: 0.1 } } }\n"
          "layer { name: 'loss' type: 'SoftmaxWithLoss' bottom: 'ip' bottom: 'label' top: 'loss' }\n",
      "<clip fusion net>", &param);
  param.mutable_state()->set_phase(TEST);
  NetPair nets(param);
  EXPECT_EQ(nets.fused->fused_until(index_of(*nets.fused, "conv")),
            index_of(*nets.fused, "relu6"));
  for (Net* net : {nets.fused.get(), nets.plain.get()}) {
    set_statistics(*net);
    net->forward();
  }
  const std::vector<float> conv = data_of(*nets.plain->blob_by_name("conv"));
  // Scaled by the clip's 6, where the sums before it reach about 50: Winograd's transforms
  // round at a few 1e-6 of the latter.
  expect_agree(conv, data_of(*nets.fused->blob_by_name("conv")), "conv after the clip",
               engine() == "WINOGRAD" ? 1e-4f : 1e-5f);
  int low = 0, high = 0;
  for (float v : conv) {
    low += v == 0;
    high += v == 6;
  }
  EXPECT_GT(low, 0);
  EXPECT_GT(high, 0);
}

TEST_P(Fusion, PartialPassesRunTheLayersThemselves) {
  NetPair nets(chain_net(TEST, engine()));
  Net& fused = *nets.fused;
  Net& plain = *nets.plain;
  for (Net* net : {&fused, &plain}) set_statistics(*net);
  // Up to the BatchNorm: the chain is cut, so nothing fuses and 'conv' holds BatchNorm's output
  // (which may be negative).
  const int bn = index_of(fused, "bn");
  fused.forward_from_to(0, bn);
  plain.forward_from_to(0, bn);
  const std::vector<float> normalized = data_of(*plain.blob_by_name("conv"));
  expect_agree(normalized, data_of(*fused.blob_by_name("conv")), "conv after bn", 1e-6f);
  bool negative = false;
  for (float v : normalized) negative = negative || v < 0;
  EXPECT_TRUE(negative);
  // From the ReLU on, from values the user put there: the ReLU runs.
  const int relu = index_of(fused, "relu");
  fused.forward_from_to(relu, relu);
  for (float v : data_of(*fused.blob_by_name("conv"))) ASSERT_GE(v, 0.0f);
}

TEST_P(Fusion, TrainingFusesOnlyTheReluAndKeepsEveryGradient) {
  NetPair nets(chain_net(TRAIN, engine()));
  Net& fused = *nets.fused;
  // The batch-statistics BatchNorm and the Scale run backward: only conv2's ReLU fuses.
  EXPECT_EQ(fused.fused_until(index_of(fused, "conv")), index_of(fused, "conv"));
  EXPECT_EQ(fused.fused_until(index_of(fused, "conv2")), index_of(fused, "relu2"));
  const float fused_loss = nets.fused->forward_backward();
  const float plain_loss = nets.plain->forward_backward();
  EXPECT_NEAR(fused_loss, plain_loss, 1e-5f * std::abs(plain_loss));
  for (const std::string layer : {"conv", "conv2", "scale"}) {
    expect_agree(diff_of(*nets.plain->layer_by_name(layer).blobs()[0]),
                 diff_of(*nets.fused->layer_by_name(layer).blobs()[0]), layer + " gradient",
                 1e-5f);
  }
  expect_agree(diff_of(*nets.plain->blob_by_name("data")), diff_of(*nets.fused->blob_by_name("data")),
               "data gradient", 1e-5f);
}

TEST_P(Fusion, DepthwiseConvolutionFusesToo) {
  NetPair nets(chain_net(TEST, engine(), "4"));
  for (Net* net : {nets.fused.get(), nets.plain.get()}) set_statistics(*net);
  EXPECT_EQ(nets.fused->fused_until(index_of(*nets.fused, "conv")), index_of(*nets.fused, "relu"));
  nets.fused->forward();
  nets.plain->forward();
  expect_agree(data_of(*nets.plain->blob_by_name("ip")), data_of(*nets.fused->blob_by_name("ip")),
               "ip", 1e-5f);
}

// The fused BatchNorm and Scale are folded into the convolution's weights and bias, a copy made
// once and remade when any of them changes: new weights, a new bias, new statistics, and values
// written through memory handed out (as a numpy view is) are all seen at the next pass. For
// plain, grouped and depthwise convolutions, and a grouped Deconvolution, whose weights hold the
// output channels in their second axis.
TEST_P(Fusion, FoldedParametersFollowEveryChange) {
  struct Geometry {
    std::string type, group;
  };
  for (const Geometry& geometry : {Geometry{"Convolution", "1"}, Geometry{"Convolution", "2"},
                                   Geometry{"Convolution", "4"}, Geometry{"Deconvolution", "2"}}) {
    SCOPED_TRACE(geometry.type + " group " + geometry.group);
    NetPair nets(chain_net(TEST, engine(), geometry.group, "", geometry.type));
    ASSERT_EQ(nets.fused->fused_until(index_of(*nets.fused, "conv")),
              index_of(*nets.fused, "relu"));
    for (Net* net : {nets.fused.get(), nets.plain.get()}) set_statistics(*net);
    const auto expect_same = [&](const std::string& what) {
      nets.fused->forward();
      nets.plain->forward();
      expect_agree(data_of(*nets.plain->blob_by_name("conv")),
                   data_of(*nets.fused->blob_by_name("conv")), "conv " + what, 1e-5f);
    };
    expect_same("at first");
    expect_same("again");
    const auto change = [&](const std::function<void(Net&)>& edit, const std::string& what) {
      for (Net* net : {nets.fused.get(), nets.plain.get()}) edit(*net);
      expect_same(what);
    };
    change([](Net& net) { scale_values(*net.layer_by_name("conv").blobs()[0], -0.5f); },
           "after new weights");
    change([](Net& net) { scale_values(*net.layer_by_name("conv").blobs()[1], 3.0f); },
           "after a new bias");
    change([](Net& net) { scale_values(*net.layer_by_name("bn").blobs()[0], -2.0f); },
           "after new statistics");
    // Memory handed out: written behind the memory's back, between passes.
    std::vector<float*> handed_out;
    for (Net* net : {nets.fused.get(), nets.plain.get()}) {
      Blob& weights = *net->layer_by_name("conv").blobs()[0];
      weights.data_memory()->expose_host();
      handed_out.push_back(weights.mutable_cpu_data());
    }
    expect_same("with its weights handed out");
    const int count = nets.fused->layer_by_name("conv").blobs()[0]->count();
    for (float* weights : handed_out) {
      for (int i = 0; i < count; ++i) weights[i] = 0.25f - weights[i];
    }
    expect_same("after weights written through memory handed out");
  }
}

// A residual block's sum, then `activation` in place on it ('act' on 'sum'); 12 channels, so
// that blocks of 8 or 16 channels have padding.
NetParameter residual_net(Phase phase, const std::string& engine, const std::string& activation) {
  NetParameter param;
  parse_text(
      "layer { name: 'in' type: 'Input' top: 'data' top: 'label' "
      "  input_param { shape { dim: 2 dim: 8 dim: 6 dim: 6 } shape { dim: 2 } } }\n"
      "layer { name: 'a' type: 'Convolution' bottom: 'data' top: 'a' "
      "  convolution_param { num_output: 12 kernel_size: 3 pad: 1 engine: " + engine +
          "  weight_filler { type: 'gaussian' std: 0.3 } } }\n"
          "layer { name: 'b' type: 'Convolution' bottom: 'data' top: 'b' "
          "  convolution_param { num_output: 12 kernel_size: 1 engine: " + engine +
          "  weight_filler { type: 'gaussian' std: 0.3 } } }\n"
          "layer { name: 'sum' type: 'Eltwise' bottom: 'a' bottom: 'b' top: 'sum' }\n" +
          activation +
          "layer { name: 'ip' type: 'InnerProduct' bottom: 'sum' top: 'ip' "
          "  inner_product_param { num_output: 3 weight_filler { type: 'gaussian' std: 0.1 } } }\n"
          "layer { name: 'loss' type: 'SoftmaxWithLoss' bottom: 'ip' bottom: 'label' top: 'loss' }\n",
      "<residual fusion net>", &param);
  param.mutable_state()->set_phase(phase);
  return param;
}

// The sum computes the ReLU after it in its own pass; training keeps every gradient (the ReLU's
// backward still runs, on the output the sum left).
TEST_P(Fusion, ResidualSumFusesTheReluAfterIt) {
  NetPair nets(residual_net(
      TRAIN, engine(), "layer { name: 'act' type: 'ReLU' bottom: 'sum' top: 'sum' }\n"));
  Net& fused = *nets.fused;
  EXPECT_EQ(fused.fused_until(index_of(fused, "sum")), index_of(fused, "act"));
  const float fused_loss = fused.forward_backward();
  const float plain_loss = nets.plain->forward_backward();
  EXPECT_NEAR(fused_loss, plain_loss, 1e-5f * std::abs(plain_loss));
  const std::vector<float> sum = data_of(*nets.plain->blob_by_name("sum"));
  expect_agree(sum, data_of(*fused.blob_by_name("sum")), "sum after the relu", 1e-5f);
  EXPECT_GT(std::count(sum.begin(), sum.end(), 0.0f), 0) << "the ReLU must have cut something";
  for (const std::string layer : {"a", "b"}) {
    expect_agree(diff_of(*nets.plain->layer_by_name(layer).blobs()[0]),
                 diff_of(*fused.layer_by_name(layer).blobs()[0]), layer + " gradient", 1e-5f);
  }
  expect_agree(diff_of(*nets.plain->blob_by_name("data")), diff_of(*fused.blob_by_name("data")),
               "data gradient", 1e-5f);
}

// A Clip after the sum, in inference: one whose range holds 0 (it may run on oneDNN's blocks,
// whose padding stays 0) and one whose range does not (the sum then runs on plain values).
TEST_P(Fusion, ResidualSumFusesAClip) {
  for (const std::string range : {"min: -0.2 max: 0.3", "min: 0.1 max: 0.4"}) {
    SCOPED_TRACE(range);
    NetPair nets(residual_net(TEST, engine(),
                              "layer { name: 'act' type: 'Clip' bottom: 'sum' top: 'sum' "
                              "  clip_param { " + range + " } }\n"));
    EXPECT_EQ(nets.fused->fused_until(index_of(*nets.fused, "sum")),
              index_of(*nets.fused, "act"));
    nets.fused->forward();
    nets.plain->forward();
    const std::vector<float> sum = data_of(*nets.plain->blob_by_name("sum"));
    expect_agree(sum, data_of(*nets.fused->blob_by_name("sum")), "sum after the clip", 1e-5f);
    const auto [low, high] = std::minmax_element(sum.begin(), sum.end());
    EXPECT_GT(std::count(sum.begin(), sum.end(), *low), 1) << "the clip must cut below";
    EXPECT_GT(std::count(sum.begin(), sum.end(), *high), 1) << "the clip must cut above";
  }
}

TEST(FusionBackward, ATestNetSaysHowToTakeGradientsThroughFusedLayers) {
  NetPair nets(chain_net(TEST, "DEFAULT"));
  nets.fused->forward();
  testing::expect_error([&] { nets.fused->backward(); },
                        {"layer scale (Scale)", "fusion", "force_backward: true"});
  NetParameter forced = chain_net(TEST, "DEFAULT");
  forced.set_force_backward(true);
  NetPair forced_nets(forced);
  Net& net = *forced_nets.fused;
  EXPECT_EQ(net.fused_until(index_of(net, "conv")), index_of(net, "conv"));
  EXPECT_EQ(net.fused_until(index_of(net, "relu")), index_of(net, "relu"));
  net.forward();
  net.backward();
}

INSTANTIATE_TEST_SUITE_P(Engines, Fusion,
                         ::testing::Values("CAFFE", "ONEDNN", "DEFAULT", "WINOGRAD"));

}  // namespace
}  // namespace engine
