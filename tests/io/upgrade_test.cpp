// Legacy net and solver upgrades: hand-written V0 and V1 nets against the V2 text they become.
#include "io/upgrade.hpp"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>

#include "core/net.hpp"
#include "gradient_checker.hpp"
#include "io/prototxt.hpp"
#include "solvers/solver.hpp"

namespace engine {
namespace {

using namespace engine::testing;

NetParameter parse_net(const std::string& text) {
  NetParameter param;
  parse_text(text, "<test net>", &param);
  return param;
}

// Parsing both through the schema makes the comparison independent of layout and field order.
void expect_same_net(const NetParameter& actual, const std::string& expected_text) {
  EXPECT_EQ(actual.DebugString(), parse_net(expected_text).DebugString());
}

const char* kV1Net = R"(
name: "v1net"
input: "data"
input_dim: 2 input_dim: 3 input_dim: 8 input_dim: 8
input: "label"
input_dim: 2 input_dim: 1 input_dim: 1 input_dim: 1
layers {
  name: "conv1" type: CONVOLUTION bottom: "data" top: "conv1"
  blobs_lr: 1 blobs_lr: 2 weight_decay: 1 weight_decay: 0
  convolution_param { num_output: 4 kernel_size: 3 weight_filler { type: "xavier" } }
}
layers { name: "relu1" type: RELU bottom: "conv1" top: "conv1" }
layers {
  name: "pool1" type: POOLING bottom: "conv1" top: "pool1"
  pooling_param { pool: MAX kernel_size: 2 stride: 2 }
}
layers {
  name: "ip1" type: INNER_PRODUCT bottom: "pool1" top: "ip1"
  param: "shared_w" blob_share_mode: PERMISSIVE
  inner_product_param { num_output: 5 weight_filler { type: "gaussian" std: 0.1 } }
}
layers {
  name: "loss" type: SOFTMAX_LOSS bottom: "ip1" bottom: "label" top: "loss"
  loss_weight: 2 include { phase: TRAIN }
}
)";

const char* kV1NetUpgraded = R"(
name: "v1net"
layer {
  name: "input" type: "Input" top: "data" top: "label"
  input_param { shape { dim: 2 dim: 3 dim: 8 dim: 8 } shape { dim: 2 dim: 1 dim: 1 dim: 1 } }
}
layer {
  name: "conv1" type: "Convolution" bottom: "data" top: "conv1"
  param { lr_mult: 1 decay_mult: 1 } param { lr_mult: 2 decay_mult: 0 }
  convolution_param { num_output: 4 kernel_size: 3 weight_filler { type: "xavier" } }
}
layer { name: "relu1" type: "ReLU" bottom: "conv1" top: "conv1" }
layer {
  name: "pool1" type: "Pooling" bottom: "conv1" top: "pool1"
  pooling_param { pool: MAX kernel_size: 2 stride: 2 }
}
layer {
  name: "ip1" type: "InnerProduct" bottom: "pool1" top: "ip1"
  param { name: "shared_w" share_mode: PERMISSIVE }
  inner_product_param { num_output: 5 weight_filler { type: "gaussian" std: 0.1 } }
}
layer {
  name: "loss" type: "SoftmaxWithLoss" bottom: "ip1" bottom: "label" top: "loss"
  loss_weight: 2 include { phase: TRAIN }
}
)";

TEST(Upgrade, V1NetBecomesV2) {
  NetParameter net = parse_net(kV1Net);
  EXPECT_TRUE(net_needs_upgrade(net));
  EXPECT_TRUE(upgrade_net(&net, "v1.prototxt"));
  expect_same_net(net, kV1NetUpgraded);
  // Upgrading is idempotent: an up-to-date net is left alone.
  EXPECT_FALSE(net_needs_upgrade(net));
  EXPECT_FALSE(upgrade_net(&net, "v1.prototxt"));
  expect_same_net(net, kV1NetUpgraded);
}

TEST(Upgrade, EveryV1TypeHasAV2Name) {
  const auto* types = V1LayerParameter::LayerType_descriptor();
  for (int i = 0; i < types->value_count(); ++i) {
    NetParameter net;
    V1LayerParameter* layer = net.add_layers();
    layer->set_name("l");
    layer->set_type(static_cast<V1LayerParameter::LayerType>(types->value(i)->number()));
    ASSERT_TRUE(upgrade_net(&net, "types")) << types->value(i)->name();
    if (types->value(i)->number() != V1LayerParameter::NONE) {
      EXPECT_FALSE(net.layer(0).type().empty()) << types->value(i)->name();
    }
  }
  NetParameter net = parse_net("layers { type: SOFTMAX_LOSS } layers { type: TANH } "
                               "layers { type: IMAGE_DATA } layers { type: HDF5_OUTPUT }");
  upgrade_net(&net, "types");
  EXPECT_EQ(net.layer(0).type(), "SoftmaxWithLoss");
  EXPECT_EQ(net.layer(1).type(), "TanH");
  EXPECT_EQ(net.layer(2).type(), "ImageData");
  EXPECT_EQ(net.layer(3).type(), "HDF5Output");
}

TEST(Upgrade, V1NetBuildsAndRuns) {
  const std::string path = ::testing::TempDir() + "v1net_" + std::to_string(::getpid()) +
                           ".prototxt";
  std::ofstream(path) << kV1Net;
  Net net(path, TRAIN);
  std::remove(path.c_str());
  EXPECT_EQ(net.layer_names()[0], "input");
  EXPECT_EQ(net.blob_by_name("data")->shape(), (std::vector<int>{2, 3, 8, 8}));
  ASSERT_EQ(net.params_lr().size(), 4u);
  EXPECT_EQ(net.params_lr()[1], 2.0f);
  EXPECT_EQ(net.params_weight_decay()[1], 0.0f);
  fill_gaussian(*net.blob_by_name("data"));
  net.blob_by_name("label")->set_data(1);
  EXPECT_GT(net.forward(), 0.0f);
  // Net(NetParameter) upgrades too.
  NetParameter param = parse_net(kV1Net);
  param.mutable_state()->set_phase(TEST);
  Net test(param);
  EXPECT_FALSE(test.has_layer("loss"));
}

const char* kV0Net = R"(
name: "v0net"
layers {
  layer { name: "data" type: "data" source: "train_db" batchsize: 64 rand_skip: 10
          scale: 0.00390625 meanfile: "mean.binaryproto" cropsize: 227 mirror: true }
  top: "data" top: "label"
}
layers { layer { name: "pad1" type: "padding" pad: 2 } bottom: "data" top: "pad1" }
layers {
  layer { name: "conv1" type: "conv" num_output: 8 kernelsize: 5 stride: 1 group: 2
          biasterm: false weight_filler { type: "gaussian" std: 0.01 }
          blobs_lr: 1 blobs_lr: 2 weight_decay: 1 weight_decay: 0 }
  bottom: "pad1" top: "conv1"
}
layers { layer { name: "relu1" type: "relu" } bottom: "conv1" top: "conv1" }
layers { layer { name: "pad2" type: "padding" pad: 1 } bottom: "conv1" top: "pad2" }
layers {
  layer { name: "pool1" type: "pool" pool: AVE kernelsize: 3 stride: 2 }
  bottom: "pad2" top: "pool1"
}
layers {
  layer { name: "norm1" type: "lrn" local_size: 3 alpha: 0.0001 beta: 0.75 k: 2 }
  bottom: "pool1" top: "norm1"
}
layers { layer { name: "drop" type: "dropout" dropout_ratio: 0.4 } bottom: "norm1" top: "norm1" }
layers {
  layer { name: "fc" type: "innerproduct" num_output: 4
          bias_filler { type: "constant" value: 0.1 } }
  bottom: "norm1" top: "fc"
}
layers { layer { name: "loss" type: "softmax_loss" } bottom: "fc" bottom: "label" top: "loss" }
)";

const char* kV0NetUpgraded = R"(
name: "v0net"
layer {
  name: "data" type: "Data" top: "data" top: "label"
  transform_param { scale: 0.00390625 mirror: true crop_size: 227 mean_file: "mean.binaryproto" }
  data_param { source: "train_db" batch_size: 64 rand_skip: 10 }
}
layer {
  name: "conv1" type: "Convolution" bottom: "data" top: "conv1"
  param { lr_mult: 1 decay_mult: 1 } param { lr_mult: 2 decay_mult: 0 }
  convolution_param { num_output: 8 bias_term: false pad: 2 kernel_size: 5 stride: 1 group: 2
                      weight_filler { type: "gaussian" std: 0.01 } }
}
layer { name: "relu1" type: "ReLU" bottom: "conv1" top: "conv1" }
layer {
  name: "pool1" type: "Pooling" bottom: "conv1" top: "pool1"
  pooling_param { pool: AVE pad: 1 kernel_size: 3 stride: 2 }
}
layer {
  name: "norm1" type: "LRN" bottom: "pool1" top: "norm1"
  lrn_param { local_size: 3 alpha: 0.0001 beta: 0.75 k: 2 }
}
layer {
  name: "drop" type: "Dropout" bottom: "norm1" top: "norm1" dropout_param { dropout_ratio: 0.4 }
}
layer {
  name: "fc" type: "InnerProduct" bottom: "norm1" top: "fc"
  inner_product_param { num_output: 4 bias_filler { type: "constant" value: 0.1 } }
}
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "fc" bottom: "label" top: "loss" }
)";

TEST(Upgrade, V0NetBecomesV2WithPaddingFolded) {
  NetParameter net = parse_net(kV0Net);
  EXPECT_TRUE(upgrade_net(&net, "v0.prototxt"));
  expect_same_net(net, kV0NetUpgraded);
}

TEST(Upgrade, V0StepsAlone) {
  NetParameter net = parse_net(kV0Net);
  EXPECT_TRUE(upgrade_v0_net(&net, "v0"));
  ASSERT_EQ(net.layers_size(), 8);  // two padding layers folded away
  EXPECT_EQ(net.layers(1).type(), V1LayerParameter::CONVOLUTION);
  EXPECT_EQ(net.layers(1).bottom(0), "data");
  EXPECT_FALSE(net.layers(1).has_layer());
  EXPECT_FALSE(upgrade_v0_net(&net, "v0"));
}

TEST(Upgrade, V0Errors) {
  expect_error(
      [] {
        NetParameter net = parse_net("layers { layer { name: 'x' type: 'warp' } top: 'x' }");
        upgrade_net(&net, "old.prototxt");
      },
      {"old.prototxt", "V0 layer x", "unknown type 'warp'"});
  expect_error(
      [] {
        NetParameter net = parse_net(R"(
          input: "data"
          layers { layer { name: "pad" type: "padding" pad: 1 } bottom: "data" top: "p" }
          layers { layer { name: "act" type: "relu" } bottom: "p" top: "r" })");
        upgrade_net(&net, "old.prototxt");
      },
      {"old.prototxt", "padding layer pad", "layer act", "only conv and pool"});
  expect_error(
      [] {
        NetParameter net = parse_net(
            "layers { layer { name: 'c' type: 'conv' } bottom: 'nowhere' top: 'c' }");
        upgrade_net(&net, "old.prototxt");
      },
      {"old.prototxt", "V0 layer c", "'nowhere'"});
}

TEST(Upgrade, BothLayerAndLayersIsAnError) {
  expect_error(
      [] {
        NetParameter net = parse_net(R"(
          layer { name: "a" type: "ReLU" bottom: "x" top: "x" }
          layers { name: "b" type: RELU bottom: "x" top: "x" })");
        upgrade_net(&net, "mixed.prototxt");
      },
      {"mixed.prototxt", "both 'layer' (1) and legacy 'layers' (1)"});
}

TEST(Upgrade, LegacyDataTransformationFields) {
  NetParameter v1 = parse_net(R"(
    layers { name: "d" type: DATA top: "data"
             data_param { source: "db" batch_size: 4 scale: 0.5 mean_file: "m.binaryproto"
                          crop_size: 3 mirror: true } }
    layers { name: "w" type: WINDOW_DATA top: "w" window_data_param { source: "w.txt" mirror: true }
             transform_param { scale: 2 } })");
  EXPECT_TRUE(upgrade_net(&v1, "transform.prototxt"));
  expect_same_net(v1, R"(
    layer { name: "d" type: "Data" top: "data"
            transform_param { scale: 0.5 mirror: true crop_size: 3 mean_file: "m.binaryproto" }
            data_param { source: "db" batch_size: 4 } }
    layer { name: "w" type: "WindowData" top: "w"
            transform_param { scale: 2 mirror: true } window_data_param { source: "w.txt" } })");

  // The old fields in an otherwise current file move too.
  NetParameter v2 = parse_net(R"(
    layer { name: "i" type: "ImageData" top: "data" top: "label"
            image_data_param { source: "list.txt" crop_size: 5 } })");
  EXPECT_TRUE(upgrade_net(&v2, "transform.prototxt"));
  expect_same_net(v2, R"(
    layer { name: "i" type: "ImageData" top: "data" top: "label"
            transform_param { crop_size: 5 } image_data_param { source: "list.txt" } })");
}

TEST(Upgrade, BatchNormParamSpecsGetZeroRates) {
  NetParameter net = parse_net(R"(
    input: "x" input_shape { dim: 2 dim: 3 }
    layer { name: "bn" type: "BatchNorm" bottom: "x" top: "y"
            param { lr_mult: 1 } param { lr_mult: 1 } param { lr_mult: 1 decay_mult: 5 } })");
  EXPECT_TRUE(upgrade_net(&net, "bn.prototxt"));
  expect_same_net(net, R"(
    layer { name: "input" type: "Input" top: "x" input_param { shape { dim: 2 dim: 3 } } }
    layer { name: "bn" type: "BatchNorm" bottom: "x" top: "y"
            param { lr_mult: 0 decay_mult: 0 } param { lr_mult: 0 decay_mult: 0 }
            param { lr_mult: 0 decay_mult: 0 } })");
  Net built(net);
  EXPECT_EQ(built.params_lr(), (std::vector<float>{0, 0, 0}));

  // Specs already at lr_mult 0 (what Caffe writes into weights files) need nothing.
  NetParameter current = parse_net(R"(
    layer { name: "bn" type: "BatchNorm" bottom: "x" top: "y"
            param { lr_mult: 0 } param { lr_mult: 0 } param { lr_mult: 0 } })");
  EXPECT_FALSE(upgrade_net(&current, "bn.prototxt"));

  // Without specs the layer freezes its statistics itself.
  Net bare(parse_net(R"(
    layer { name: "in" type: "Input" top: "x" input_param { shape { dim: 2 dim: 3 } } }
    layer { name: "bn" type: "BatchNorm" bottom: "x" top: "y" })"));
  EXPECT_EQ(bare.params_lr(), (std::vector<float>{0, 0, 0}));
}

TEST(Upgrade, InputNamesWithoutShapesAreDropped) {
  // Caffe's weights files list the inputs' names only.
  NetParameter net = parse_net("input: 'data' layer { name: 'a' type: 'ReLU' }");
  EXPECT_TRUE(upgrade_net(&net, "w.caffemodel"));
  expect_same_net(net, "layer { name: 'a' type: 'ReLU' }");
}

TEST(Upgrade, SolverType) {
  SolverParameter solver;
  parse_text("solver_type: ADAM base_lr: 0.1", "<solver>", &solver);
  EXPECT_TRUE(upgrade_solver(&solver, "s.prototxt"));
  EXPECT_EQ(solver.type(), "Adam");
  EXPECT_FALSE(solver.has_solver_type());
  EXPECT_FALSE(upgrade_solver(&solver, "s.prototxt"));

  SolverParameter conflict;
  parse_text("solver_type: NESTEROV type: 'SGD'", "<solver>", &conflict);
  expect_error([&] { upgrade_solver(&conflict, "s.prototxt"); },
               {"s.prototxt", "solver_type NESTEROV", "disagree"});
}

}  // namespace
}  // namespace engine
