// engine: DEFAULT chooses among a layer's CPU implementations by timing them
// (core/fastest_layer.cpp). The choice must leave no trace in the results beyond which
// implementation computes them: the same initial weights, the same random stream, no gradient
// added by the measurement, and the outputs of the implementation it names.
#include <gtest/gtest.h>

#include <cstdlib>
#include <random>

#include "core/context.hpp"
#include "core/fastest_layer.hpp"
#include "core/layer_registry.hpp"
#include "core/net.hpp"
#include "gradient_checker.hpp"
#include "io/prototxt.hpp"
#include "math/onednn.hpp"

namespace engine {
namespace {

using testing::data_of;
using testing::diff_of;
using testing::expect_close;
using testing::fill_gaussian;
using testing::layer_param;

// A net whose conv and pooling layers are large enough to be timed (> 32K values), and an
// InnerProduct and a small conv that are not.
NetParameter net_param(const std::string& engine) {
  const std::string text =
      "layer { name: 'in' type: 'Input' top: 'data' top: 'label' "
      "  input_param { shape { dim: 8 dim: 3 dim: 32 dim: 32 } shape { dim: 8 } } }\n"
      "layer { name: 'conv' type: 'Convolution' bottom: 'data' top: 'conv' "
      "  convolution_param { num_output: 16 kernel_size: 3 engine: " + engine +
      "  weight_filler { type: 'gaussian' std: 0.1 } bias_filler { type: 'gaussian' } } }\n"
      "layer { name: 'pool' type: 'Pooling' bottom: 'conv' top: 'pool' "
      "  pooling_param { pool: MAX kernel_size: 3 stride: 2 engine: " + engine + " } }\n"
      "layer { name: 'small' type: 'Convolution' bottom: 'pool' top: 'small' "
      "  convolution_param { num_output: 4 kernel_size: 3 stride: 2 engine: " + engine +
      "  weight_filler { type: 'gaussian' std: 0.1 } } }\n"
      "layer { name: 'ip' type: 'InnerProduct' bottom: 'small' top: 'ip' "
      "  inner_product_param { num_output: 5 engine: " + engine +
      "  weight_filler { type: 'gaussian' std: 0.1 } } }\n"
      "layer { name: 'loss' type: 'SoftmaxWithLoss' bottom: 'ip' bottom: 'label' top: 'loss' }\n";
  NetParameter param;
  parse_text(text, "<fastest test net>", &param);
  param.mutable_state()->set_phase(TRAIN);
  return param;
}

void fill_inputs(Net& net) {
  fill_gaussian(*net.blob_by_name("data"));
  float* label = net.blob_by_name("label")->mutable_cpu_data();
  for (int i = 0; i < 8; ++i) label[i] = static_cast<float>(i % 5);
}

class FastestLayerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!onednn_available()) GTEST_SKIP() << "a build without oneDNN has one implementation";
  }
};

TEST_F(FastestLayerTest, OnlyDefaultLayersWithSeveralImplementationsChoose) {
  // A convolution: oneDNN in its own formats and channels-last, and Caffe's code; Winograd's
  // too where its geometry is (3x3 at unit stride).
  std::vector<std::string> names;
  for (const Implementation& candidate : implementations_to_measure(layer_param(
           "name: 'c' type: 'Convolution' convolution_param { num_output: 2 kernel_size: 1 }"))) {
    names.push_back(candidate.name);
  }
  EXPECT_EQ(names, (std::vector<std::string>{"oneDNN", "Caffe", "oneDNN NHWC"}));
  EXPECT_EQ(implementations_to_measure(
                layer_param("name: 'c' type: 'Convolution' "
                            "convolution_param { num_output: 2 kernel_size: 3 }"))
                .size(),
            4u);
  EXPECT_EQ(implementations_to_measure(
                layer_param("name: 'c' type: 'Convolution' "
                            "convolution_param { num_output: 2 kernel_size: 1 engine: CAFFE }"))
                .size(),
            0u);
  EXPECT_EQ(implementations_to_measure(layer_param("name: 'p' type: 'Pooling' pooling_param { "
                                                   "pool: STOCHASTIC kernel_size: 2 }"))
                .size(),
            0u);
  EXPECT_EQ(implementations_to_measure(layer_param("name: 'r' type: 'ReLU'")).size(), 0u);
  // LRN prefers its own code; the others oneDNN.
  EXPECT_EQ(implementations_to_measure(layer_param("name: 'n' type: 'LRN'"))[0].name, "Caffe");
  EXPECT_EQ(implementations_to_measure(layer_param(
                "name: 'i' type: 'InnerProduct' inner_product_param { num_output: 2 }"))[0].name,
            "oneDNN");
}

TEST_F(FastestLayerTest, ChoosingLeavesWeightsRandomStreamAndGradientsAsOneImplementationDoes) {
  // The same seed gives the same initial weights whatever the engine: the second candidate's
  // fillers must not draw from the generator.
  Context::set_seed(11);
  Net chosen(net_param("DEFAULT"));
  Context::set_seed(11);
  Net caffe(net_param("CAFFE"));
  for (size_t i = 0; i < chosen.learnable_params().size(); ++i) {
    EXPECT_EQ(data_of(*chosen.learnable_params()[i]), data_of(*caffe.learnable_params()[i]))
        << "parameter " << i;
  }
  // The first forward pass measures; afterwards the generator is where a single
  // implementation's pass leaves it, and no gradient was left behind.
  fill_inputs(chosen);
  caffe.blob_by_name("data")->share_data(*chosen.blob_by_name("data"));
  caffe.blob_by_name("label")->share_data(*chosen.blob_by_name("label"));
  Context::set_seed(12);
  chosen.forward();
  const unsigned after_chosen = Context::rng()();
  Context::set_seed(12);
  caffe.forward();
  const unsigned after_caffe = Context::rng()();
  EXPECT_EQ(after_chosen, after_caffe);
  for (Blob* param : chosen.learnable_params()) {
    for (float value : diff_of(*param)) ASSERT_EQ(value, 0.0f);
  }
  // Both nets compute the same function.
  chosen.backward();
  caffe.backward();
  expect_close(data_of(*chosen.blob_by_name("ip")), data_of(*caffe.blob_by_name("ip")), "ip",
               1e-4f);
  for (size_t i = 0; i < chosen.learnable_params().size(); ++i) {
    expect_close(diff_of(*chosen.learnable_params()[i]), diff_of(*caffe.learnable_params()[i]),
                 "gradient " + std::to_string(i), 1e-3f);
  }

  const auto layer = [&](const std::string& name) -> const Layer& {
    for (size_t i = 0; i < chosen.layers().size(); ++i) {
      if (chosen.layer_names()[i] == name) return *chosen.layers()[i];
    }
    throw std::runtime_error("no layer " + name);
  };
  // The measured layers name their choice and each candidate's timing; the small ones were not
  // timed. A 3x3 unit-stride convolution has oneDNN on channels-last activations and
  // Winograd's as candidates too.
  for (const char* name : {"conv", "pool"}) {
    const std::string choice = implementation_choice(layer(name));
    SCOPED_TRACE(name + (": " + choice));
    EXPECT_TRUE(choice.rfind("oneDNN (", 0) == 0 || choice.rfind("Caffe (", 0) == 0 ||
                choice.rfind("oneDNN NHWC (", 0) == 0 || choice.rfind("Winograd (", 0) == 0);
    EXPECT_NE(choice.find("ms"), std::string::npos);
  }
  EXPECT_EQ(implementation_choice(layer("small")), "oneDNN (small: not measured)");
  EXPECT_EQ(implementation_choice(layer("ip")), "oneDNN (small: not measured)");
  EXPECT_EQ(implementation_choice(layer("loss")), "");
  EXPECT_EQ(&working_layer(layer("loss")), &layer("loss"));
  EXPECT_NE(&working_layer(layer("conv")), &layer("conv"));
}

TEST_F(FastestLayerTest, AStandaloneLayerMeasuresEveryGradientAndStillChecksOut) {
  LayerPtr layer = create_layer(layer_param(
      "name: 'c' type: 'Convolution' phase: TRAIN convolution_param { num_output: 8 "
      "kernel_size: 3 pad: 1 weight_filler { type: 'gaussian' std: 0.1 } }"));
  Blob bottom({2, 4, 64, 64}), top;
  fill_gaussian(bottom);
  layer->setup({&bottom}, {&top});
  layer->forward({&bottom}, {&top});
  EXPECT_NE(implementation_choice(*layer).find("ms"), std::string::npos)
      << implementation_choice(*layer);
  // The chosen implementation with the wrapper around it still has exact gradients.
  Blob small({1, 4, 6, 6});
  fill_gaussian(small);
  testing::check_gradient(*layer, {&small}, {&top});
}

}  // namespace
}  // namespace engine
