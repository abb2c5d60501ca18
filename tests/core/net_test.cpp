#include <gtest/gtest.h>

#include <cmath>

#include "core/context.hpp"
#include "core/net.hpp"
#include "core/synced_memory.hpp"
#include "gradient_checker.hpp"
#include "io/prototxt.hpp"

namespace engine {
namespace {

NetParameter net_param(const std::string& text, Phase phase = TRAIN) {
  NetParameter param;
  parse_text(text, "<test net>", &param);
  param.mutable_state()->set_phase(phase);
  return param;
}

std::string error_of(const std::function<void()>& action) {
  try {
    action();
  } catch (const Error& error) {
    return error.what();
  }
  return "(no error)";
}

#define EXPECT_CONTAINS(text, part) \
  EXPECT_NE(std::string(text).find(part), std::string::npos) << "message: " << (text)

void fill_inputs(Net& net, unsigned seed = 3) {
  Context::set_seed(seed);
  for (Blob* blob : net.input_blobs()) testing::fill_gaussian(*blob);
}

// Checks the net's gradient with respect to `blob_name` (an input) by central differences of
// the net's total loss.
void check_net_input_gradient(Net& net, const std::string& blob_name, float tolerance = 2e-3f) {
  Blob& blob = *net.blob_by_name(blob_name);
  net.clear_param_diffs();
  net.forward_backward();
  const std::vector<float> analytic(blob.cpu_diff(), blob.cpu_diff() + blob.count());
  const float h = 1e-2f;
  for (int64_t i = 0; i < blob.count(); ++i) {
    const float original = blob.cpu_data()[i];
    blob.mutable_cpu_data()[i] = original + h;
    const double plus = net.forward();
    blob.mutable_cpu_data()[i] = original - h;
    const double minus = net.forward();
    blob.mutable_cpu_data()[i] = original;
    const double numeric = (plus - minus) / (2 * h);
    EXPECT_NEAR(analytic[i], numeric, tolerance * std::max(1.0, std::fabs(numeric)))
        << blob_name << "[" << i << "]";
  }
}

// ---- state rules -------------------------------------------------------------------------

TEST(NetStateRules, PhaseLevelAndStages) {
  NetState state;
  state.set_phase(TEST);
  state.set_level(2);
  state.add_stage("deploy");
  auto meets = [&](const std::string& rules) {
    LayerParameter layer;
    parse_text("name: 'l' type: 'ReLU' " + rules, "<rule>", &layer);
    return state_meets_rules(state, layer);
  };
  EXPECT_TRUE(meets(""));
  EXPECT_TRUE(meets("include { phase: TEST }"));
  EXPECT_FALSE(meets("include { phase: TRAIN }"));
  EXPECT_TRUE(meets("include { phase: TRAIN } include { phase: TEST }"));
  EXPECT_TRUE(meets("include { min_level: 2 max_level: 2 }"));
  EXPECT_FALSE(meets("include { min_level: 3 }"));
  EXPECT_FALSE(meets("include { max_level: 1 }"));
  EXPECT_TRUE(meets("include { stage: 'deploy' }"));
  EXPECT_FALSE(meets("include { stage: 'deploy' stage: 'other' }"));
  EXPECT_FALSE(meets("include { not_stage: 'deploy' }"));
  EXPECT_FALSE(meets("exclude { phase: TEST }"));
  EXPECT_TRUE(meets("exclude { stage: 'other' }"));
  EXPECT_CONTAINS(error_of([&] { meets("include { phase: TEST } exclude { phase: TRAIN }"); }),
                  "not both");
}

TEST(Net, FiltersLayersByPhase) {
  const std::string text = R"(
    name: 'phases'
    layer { name: 'data' type: 'Input' top: 'x' input_param { shape { dim: 2 dim: 3 } } }
    layer { name: 'train_only' type: 'ReLU' bottom: 'x' top: 'y' include { phase: TRAIN } }
    layer { name: 'test_only' type: 'Sigmoid' bottom: 'x' top: 'y' include { phase: TEST } }
  )";
  Net train(net_param(text, TRAIN));
  Net test(net_param(text, TEST));
  EXPECT_TRUE(train.has_layer("train_only"));
  EXPECT_FALSE(train.has_layer("test_only"));
  EXPECT_TRUE(test.has_layer("test_only"));
  EXPECT_FALSE(test.has_layer("train_only"));
  EXPECT_EQ(train.layers()[1]->param().phase(), TRAIN);
  EXPECT_EQ(test.layers()[1]->param().phase(), TEST);
}

// ---- splits, in place, losses ----------------------------------------------------------------

const char* kTwoHeads = R"(
  name: 'two_heads'
  force_backward: true
  layer { name: 'data' type: 'Input' top: 'x' top: 'label'
          input_param { shape { dim: 3 dim: 4 } shape { dim: 3 } } }
  layer { name: 'a' type: 'InnerProduct' bottom: 'x' top: 'a'
          inner_product_param { num_output: 5 weight_filler { type: 'gaussian' std: 0.5 }
                                bias_filler { type: 'gaussian' std: 0.5 } } }
  layer { name: 'b' type: 'InnerProduct' bottom: 'x' top: 'b'
          inner_product_param { num_output: 5 weight_filler { type: 'gaussian' std: 0.5 } } }
  layer { name: 'relu' type: 'ReLU' bottom: 'b' top: 'b' }
  layer { name: 'sum' type: 'Eltwise' bottom: 'a' bottom: 'b' top: 'sum' }
  layer { name: 'loss' type: 'SoftmaxWithLoss' bottom: 'sum' bottom: 'label' top: 'loss' }
)";

TEST(Net, InsertsSplitsForBlobsWithSeveralReaders) {
  const NetParameter split = insert_splits(net_param(kTwoHeads));
  ASSERT_EQ(split.layer_size(), 7);
  // x feeds a and b, so a Split follows data with one top per reader.
  const LayerParameter& splitter = split.layer(1);
  EXPECT_EQ(splitter.type(), "Split");
  EXPECT_EQ(splitter.name(), "x_data_0_split");
  ASSERT_EQ(splitter.top_size(), 2);
  EXPECT_EQ(splitter.top(0), "x_data_0_split_0");
  EXPECT_EQ(split.layer(2).bottom(0), "x_data_0_split_0");
  EXPECT_EQ(split.layer(3).bottom(0), "x_data_0_split_1");
  // b is read in place by relu, then relu's b by sum: one reader each, no split.
  for (const LayerParameter& layer : split.layer()) {
    if (layer.type() == "Split") {
      EXPECT_EQ(layer.bottom(0), "x");
    }
  }
}

TEST(Net, GradientsOfASplitBlobAreSummed) {
  Net net(net_param(kTwoHeads));
  fill_inputs(net);
  Blob& label = *net.blob_by_name("label");
  for (int i = 0; i < 3; ++i) label.mutable_cpu_data()[i] = i;
  check_net_input_gradient(net, "x");
}

TEST(Net, InPlaceLayerReusesItsBottomBlob) {
  Net net(net_param(kTwoHeads));
  const Layer& relu = net.layer_by_name("relu");
  (void)relu;
  const int relu_index = 4;  // data, split, a, b, relu
  ASSERT_EQ(net.layer_names()[relu_index], "relu");
  EXPECT_EQ(net.bottom_vecs()[relu_index][0], net.top_vecs()[relu_index][0]);
  EXPECT_EQ(net.blob_by_name("b").get(), net.top_vecs()[relu_index][0]);
}

TEST(Net, LossWeightScalesTheLoss) {
  std::string weighted = kTwoHeads;
  weighted.replace(weighted.find("top: 'loss' }"), 13, "top: 'loss' loss_weight: 2.5 }");
  Net plain(net_param(kTwoHeads));
  Net scaled(net_param(weighted));
  fill_inputs(plain);
  fill_inputs(scaled);
  Context::set_seed(5);
  Net* nets[] = {&plain, &scaled};
  // Same weights in both nets.
  NetParameter weights;
  plain.to_proto(&weights);
  scaled.copy_trained_layers_from(weights);
  for (Net* net : nets) {
    Blob& label = *net->blob_by_name("label");
    for (int i = 0; i < 3; ++i) label.mutable_cpu_data()[i] = i;
  }
  EXPECT_NEAR(scaled.forward(), 2.5f * plain.forward(), 1e-5);
}

TEST(Net, LossWeightOnAnyTopAddsItsSum) {
  Net net(net_param(R"(
    layer { name: 'data' type: 'Input' top: 'x' input_param { shape { dim: 2 dim: 3 } } }
    layer { name: 'relu' type: 'ReLU' bottom: 'x' top: 'y' loss_weight: 0.5 }
    layer { name: 'sig' type: 'Sigmoid' bottom: 'y' top: 'z' loss_weight: 1 }
  )"));
  fill_inputs(net);
  const Blob& x = *net.blob_by_name("x");
  double expected = 0;
  for (int i = 0; i < x.count(); ++i) {
    const double y = std::max(0.0f, x.cpu_data()[i]);
    expected += 0.5 * y + 1 / (1 + std::exp(-y));
  }
  EXPECT_NEAR(net.forward(), expected, 1e-5);
  // y has a loss weight and a reader: a Split carries its loss.
  EXPECT_TRUE(net.has_layer("y_relu_0_split"));
  net.blob_by_name("x");
}

// ---- parameters ----------------------------------------------------------------------------

const char* kShared = R"(
  force_backward: true
  layer { name: 'data' type: 'Input' top: 'x' top: 'y'
          input_param { shape { dim: 2 dim: 3 } } }
  layer { name: 'ip1' type: 'InnerProduct' bottom: 'x' top: 'p'
          param { name: 'w' lr_mult: 2 decay_mult: 0.5 } param { name: 'bias' }
          inner_product_param { num_output: 4 weight_filler { type: 'gaussian' std: 1 } } }
  layer { name: 'ip2' type: 'InnerProduct' bottom: 'y' top: 'q'
          param { name: 'w' } param { name: 'bias' }
          inner_product_param { num_output: 4 weight_filler { type: 'gaussian' std: 1 } } }
  layer { name: 'sum' type: 'Eltwise' bottom: 'p' bottom: 'q' top: 's' }
  layer { name: 'out' type: 'Sigmoid' bottom: 's' top: 'o' loss_weight: 1 }
)";

TEST(Net, SharedParametersUseOneBlobAndSumGradients) {
  Net net(net_param(kShared));
  EXPECT_EQ(net.params().size(), 4u);
  EXPECT_EQ(net.learnable_params().size(), 2u);
  EXPECT_EQ(net.param_owners(), (std::vector<int>{-1, -1, 0, 1}));
  EXPECT_EQ(net.params_lr(), (std::vector<float>{2, 1}));
  EXPECT_EQ(net.params_weight_decay(), (std::vector<float>{0.5f, 1}));
  Layer& ip1 = net.layer_by_name("ip1");
  Layer& ip2 = net.layer_by_name("ip2");
  EXPECT_EQ(ip1.blobs()[0]->cpu_data(), ip2.blobs()[0]->cpu_data());
  EXPECT_EQ(ip1.blobs()[0]->cpu_diff(), ip2.blobs()[0]->cpu_diff());

  // The shared weight's gradient is the sum over both uses: check it by finite differences.
  fill_inputs(net);
  net.clear_param_diffs();
  net.forward_backward();
  Blob& w = *net.learnable_params()[0];
  const std::vector<float> analytic(w.cpu_diff(), w.cpu_diff() + w.count());
  const float h = 1e-2f;
  for (int64_t i = 0; i < w.count(); ++i) {
    const float original = w.cpu_data()[i];
    w.mutable_cpu_data()[i] = original + h;
    const double plus = net.forward();
    w.mutable_cpu_data()[i] = original - h;
    const double minus = net.forward();
    w.mutable_cpu_data()[i] = original;
    EXPECT_NEAR(analytic[i], (plus - minus) / (2 * h), 2e-3) << "w[" << i << "]";
  }
}

TEST(Net, SharedParameterShapeMismatchIsAnError) {
  std::string text = kShared;
  text.replace(text.find("num_output: 4 weight_filler { type: 'gaussian' std: 1 } } }\n  layer { name: 'sum'"),
               13, "num_output: 6");
  EXPECT_CONTAINS(error_of([&] { Net net(net_param(text)); }), "shared parameter 'w'");
}

TEST(Net, ZeroLearningRateFreezesALayer) {
  Net net(net_param(R"(
    layer { name: 'data' type: 'Input' top: 'x' input_param { shape { dim: 2 dim: 3 } } }
    layer { name: 'ip' type: 'InnerProduct' bottom: 'x' top: 'p'
            param { lr_mult: 0 } param { lr_mult: 0 }
            inner_product_param { num_output: 2 } }
    layer { name: 'ip2' type: 'InnerProduct' bottom: 'p' top: 'q'
            inner_product_param { num_output: 2 } }
    layer { name: 'out' type: 'Sigmoid' bottom: 'q' top: 'o' loss_weight: 1 }
  )"));
  EXPECT_FALSE(net.layer_need_backward(1));  // ip: frozen, and its input needs no gradient
  EXPECT_TRUE(net.layer_need_backward(2));
  EXPECT_FALSE(net.bottom_need_backward()[2][0]) << "nothing below ip2 learns";
}

TEST(Net, PropagateDownFalseStopsTheGradient) {
  Net net(net_param(R"(
    force_backward: false
    layer { name: 'data' type: 'Input' top: 'x' input_param { shape { dim: 2 dim: 3 } } }
    layer { name: 'ip' type: 'InnerProduct' bottom: 'x' top: 'p' inner_product_param { num_output: 2 } }
    layer { name: 'ip2' type: 'InnerProduct' bottom: 'p' top: 'q' propagate_down: false
            inner_product_param { num_output: 2 } }
    layer { name: 'out' type: 'Sigmoid' bottom: 'q' top: 'o' loss_weight: 1 }
  )"));
  EXPECT_FALSE(net.bottom_need_backward()[2][0]);
  EXPECT_FALSE(net.layer_need_backward(1)) << "ip's output receives no gradient";
  EXPECT_TRUE(net.layer_need_backward(2));
}

TEST(Net, LayersWithoutALossNeedNoBackwardUnlessForced) {
  const std::string text = R"(
    layer { name: 'data' type: 'Input' top: 'x' input_param { shape { dim: 2 dim: 3 } } }
    layer { name: 'ip' type: 'InnerProduct' bottom: 'x' top: 'p' inner_product_param { num_output: 2 } }
  )";
  Net plain(net_param(text));
  EXPECT_FALSE(plain.layer_need_backward(1));
  Net forced(net_param("force_backward: true " + text));
  EXPECT_TRUE(forced.layer_need_backward(1));
  EXPECT_TRUE(forced.bottom_need_backward()[1][0]);
}

TEST(Net, LabelsGetNoGradientEvenWhenForced) {
  Net net(net_param(kTwoHeads));
  const int loss = static_cast<int>(net.layers().size()) - 1;
  EXPECT_TRUE(net.bottom_need_backward()[loss][0]);
  EXPECT_FALSE(net.bottom_need_backward()[loss][1]);
}

// ---- weights -------------------------------------------------------------------------------

TEST(Net, CopiesTrainedLayersByName) {
  Context::set_seed(1);
  Net source(net_param(kTwoHeads));
  Context::set_seed(2);
  Net target(net_param(kTwoHeads));
  NetParameter trained;
  source.to_proto(&trained);
  // A layer the target lacks is ignored.
  LayerParameter* extra = trained.add_layer();
  extra->set_name("not_in_target");
  extra->set_type("InnerProduct");
  target.copy_trained_layers_from(trained);
  for (const std::string name : {"a", "b"}) {
    const Blob& from = *source.layer_by_name(name).blobs()[0];
    const Blob& to = *target.layer_by_name(name).blobs()[0];
    EXPECT_EQ(std::vector<float>(from.cpu_data(), from.cpu_data() + from.count()),
              std::vector<float>(to.cpu_data(), to.cpu_data() + to.count()));
  }
}

TEST(Net, CopyWithWrongShapeNamesLayerAndShapes) {
  Net source(net_param(kTwoHeads));
  std::string other = kTwoHeads;
  for (int head = 0; head < 2; ++head) other.replace(other.find("num_output: 5"), 13, "num_output: 7");
  NetParameter trained;
  Net(net_param(other)).to_proto(&trained);
  const std::string message = error_of([&] { source.copy_trained_layers_from(trained); });
  EXPECT_CONTAINS(message, "layer a (InnerProduct)");
  EXPECT_CONTAINS(message, "5 x 4");
  EXPECT_CONTAINS(message, "7 x 4");
}

TEST(Net, LegacyInputFieldsBecomeAnInputLayer) {
  Net dims(net_param(R"(
    input: 'data' input_dim: 2 input_dim: 3 input_dim: 4 input_dim: 5
    input: 'extra' input_dim: 1 input_dim: 1 input_dim: 1 input_dim: 7
    layer { name: 'relu' type: 'ReLU' bottom: 'data' top: 'data' }
  )"));
  ASSERT_EQ(dims.input_blobs().size(), 2u);
  EXPECT_EQ(dims.layer_names()[0], "input");
  EXPECT_EQ(dims.blob_by_name("data")->shape(), (std::vector<int>{2, 3, 4, 5}));
  EXPECT_EQ(dims.blob_by_name("extra")->shape(), (std::vector<int>{1, 1, 1, 7}));

  Net shapes(net_param("input: 'x' input_shape { dim: 7 dim: 2 }"));
  EXPECT_EQ(shapes.blob_by_name("x")->shape(), (std::vector<int>{7, 2}));

  EXPECT_CONTAINS(error_of([] {
    Net net(net_param("input: 'x' input_dim: 1 input_dim: 2 input_shape { dim: 7 }"));
  }), "not both");
  EXPECT_CONTAINS(error_of([] { Net net(net_param("input: 'x' input_dim: 1 input_dim: 2")); }),
                  "need 4 input_dim values, found 2");
}

// ---- bad nets --------------------------------------------------------------------------------

TEST(NetErrors, BottomThatNothingProduces) {
  const std::string message = error_of([] {
    Net net(net_param(R"(
      layer { name: 'data' type: 'Input' top: 'x' input_param { shape { dim: 2 } } }
      layer { name: 'relu' type: 'ReLU' bottom: 'y' top: 'z' }
    )"));
  });
  EXPECT_CONTAINS(message, "layer relu (ReLU)");
  EXPECT_CONTAINS(message, "bottom blob 'y'");
}

TEST(NetErrors, TopProducedTwice) {
  const std::string message = error_of([] {
    Net net(net_param(R"(
      layer { name: 'data' type: 'Input' top: 'x' input_param { shape { dim: 2 } } }
      layer { name: 'r1' type: 'ReLU' bottom: 'x' top: 'y' }
      layer { name: 'r2' type: 'ReLU' bottom: 'x' top: 'y' }
    )"));
  });
  EXPECT_CONTAINS(message, "layer r2 (ReLU)");
  EXPECT_CONTAINS(message, "top blob 'y' is already produced");
}

TEST(NetErrors, UnknownLayerTypeAndDuplicateNames) {
  EXPECT_CONTAINS(error_of([] {
    Net net(net_param("layer { name: 'odd' type: 'Frobnicate' top: 'x' }"));
  }), "unknown layer type 'Frobnicate'");
  EXPECT_CONTAINS(error_of([] {
    Net net(net_param(R"(
      layer { name: 'data' type: 'Input' top: 'x' input_param { shape { dim: 2 } } }
      layer { name: 'data' type: 'Input' top: 'y' input_param { shape { dim: 2 } } }
    )"));
  }), "two layers are named 'data'");
}

TEST(NetErrors, MalformedPrototxtNamesLineAndColumn) {
  NetParameter param;
  const std::string message = error_of([&] {
    parse_text("name: 'x'\nlayer {\n  name: 'a'\n  typo_field: 3\n}\n", "net.prototxt", &param);
  });
  EXPECT_CONTAINS(message, "net.prototxt:4:");
  EXPECT_CONTAINS(message, "typo_field");
  EXPECT_CONTAINS(error_of([&] { parse_text("layer { name: 'a' ", "broken.prototxt", &param); }),
                  "broken.prototxt:1:");
  EXPECT_CONTAINS(error_of([&] { read_text_file("/nonexistent/net.prototxt", &param); }),
                  "/nonexistent/net.prototxt");
}

TEST(NetErrors, IncompatibleShapesNameTheLayer) {
  const std::string message = error_of([] {
    Net net(net_param(R"(
      layer { name: 'data' type: 'Input' top: 'x' top: 'y'
              input_param { shape { dim: 2 dim: 3 } shape { dim: 2 dim: 4 } } }
      layer { name: 'sum' type: 'Eltwise' bottom: 'x' bottom: 'y' top: 'z' }
    )"));
  });
  EXPECT_CONTAINS(message, "layer sum (Eltwise)");
}

// ---- memory ------------------------------------------------------------------------------

// Sets the host memory limit for one test and puts it back.
class HostMemoryLimit {
 public:
  explicit HostMemoryLimit(size_t bytes) { set_host_memory_limit(bytes); }
  ~HostMemoryLimit() { set_host_memory_limit(0); }
};

TEST(Net, MemoryRefusedNamesTheLayer) {
  const std::string text = R"(
    layer { name: 'x' type: 'Input' top: 'x' input_param { shape { dim: 2 dim: 1000 } } }
    layer { name: 'wide' type: 'InnerProduct' bottom: 'x' top: 'y'
            inner_product_param { num_output: 1000 weight_filler { type: 'gaussian' } } })";
  {
    const HostMemoryLimit limit(host_memory_in_use() + (1 << 20));
    const std::string message = error_of([&] { Net net(net_param(text)); });
    EXPECT_CONTAINS(message, "layer wide (InnerProduct): setup: out of host memory: cannot "
                             "allocate 4 MB");
    EXPECT_CONTAINS(message, "limit");
  }
  Net net(net_param(text));
  fill_inputs(net);
  const HostMemoryLimit limit(host_memory_in_use() + 1000);
  EXPECT_CONTAINS(error_of([&] { net.forward(); }),
                  "layer wide (InnerProduct): forward: out of host memory: cannot allocate 8000 "
                  "bytes");
}

}  // namespace
}  // namespace engine
