// `engine forward` on LeNet with constant weights and inputs, whose every blob is a known sum;
// and the upgrade commands on legacy files.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "core/net.hpp"
#include "gradient_checker.hpp"
#include "io/caffemodel.hpp"
#include "io/npy.hpp"
#include "io/prototxt.hpp"

namespace engine {
namespace {

using namespace engine::testing;

namespace fs = std::filesystem;

const std::string kEngine = std::string(ENGINE_BINARY_DIR) + "/bin/engine";
const std::string kLenet = std::string(ENGINE_CAFFE_MODELS_DIR) + "/examples/mnist/lenet.prototxt";

class ForwardCli : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!fs::exists(kLenet)) GTEST_SKIP() << "Caffe's model files are not at " << kLenet;
    dir_ = fs::temp_directory_path() /
           ("engine_forward_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override {
    if (!dir_.empty()) fs::remove_all(dir_);
  }
  std::string path(const std::string& name) const { return (dir_ / name).string(); }

  int run(const std::string& arguments, std::string* output) {
    const std::string log = path("log.txt");
    const int status = std::system((kEngine + " " + arguments + " >" + log + " 2>&1").c_str());
    *output = read_file(log);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  }

  fs::path dir_;
};

#define EXPECT_CONTAINS(text, part) \
  EXPECT_NE((text).find(part), std::string::npos) << "expected '" << (part) << "' in:\n" << (text)

// LeNet's weights, every one a constant per blob, and the biases of ip2 0.1 * class.
void write_constant_lenet_weights(const std::string& file) {
  Net net(kLenet, TEST);
  auto set = [&](const std::string& layer, float weight, float bias) {
    net.layer_by_name(layer).blobs()[0]->set_data(weight);
    net.layer_by_name(layer).blobs()[1]->set_data(bias);
  };
  set("conv1", 0.01f, 0.1f);
  set("conv2", 0.002f, -0.1f);
  set("ip1", 0.001f, 0.05f);
  set("ip2", 0.004f, 0.0f);
  float* ip2_bias = net.layer_by_name("ip2").blobs()[1]->mutable_cpu_data();
  for (int k = 0; k < 10; ++k) ip2_bias[k] = 0.1f * k;
  write_caffemodel(net, file);
}

// Every value of the .npy file is `expected` (to float rounding of the sums).
void expect_all(const std::string& file, const std::vector<int64_t>& shape, int64_t from,
                int64_t to, float expected) {
  const NpyArray array = read_npy(file);
  ASSERT_EQ(array.shape, shape) << file;
  for (int64_t i = from; i < to; ++i) {
    ASSERT_NEAR(array.data[i], expected, 1e-5f * std::max(1.0f, std::fabs(expected)))
        << file << " [" << i << "]";
  }
}

TEST_F(ForwardCli, DumpsEveryBlobOfLenet) {
  write_constant_lenet_weights(path("lenet.caffemodel"));
  // Two images, not the prototxt's 64: the first all ones, the second all twos.
  std::vector<float> images(2 * 28 * 28, 1.0f);
  std::fill(images.begin() + 28 * 28, images.end(), 2.0f);
  write_npy(path("x.npy"), {2, 1, 28, 28}, images.data());

  std::string output;
  ASSERT_EQ(run("forward --model=" + kLenet + " --weights=" + path("lenet.caffemodel") +
                    " --input=data:" + path("x.npy") + " --dump=" + path("dump"),
                &output),
            0)
      << output;
  EXPECT_CONTAINS(output, "prob: 2 x 10 (20)");
  EXPECT_EQ(read_file(path("dump/index.txt")),
            "data data.npy 2 1 28 28\n"
            "conv1 conv1.npy 2 20 24 24\n"
            "pool1 pool1.npy 2 20 12 12\n"
            "conv2 conv2.npy 2 50 8 8\n"
            "pool2 pool2.npy 2 50 4 4\n"
            "ip1 ip1.npy 2 500\n"
            "ip2 ip2.npy 2 10\n"
            "prob prob.npy 2 10\n");

  // Image 0 (ones) then image 1 (twos):
  //   conv1 = 25 taps * x * 0.01 + 0.1             = 0.35 | 0.6
  //   pool1 = conv1 (max of equal values)
  //   conv2 = 20 channels * 25 taps * pool1 * 0.002 - 0.1 = 0.25 | 0.5
  //   pool2 = conv2
  //   ip1   = 50 * 4 * 4 inputs * pool2 * 0.001 + 0.05 = 0.25 | 0.45 (ReLU keeps them; in place)
  //   ip2   = 500 * ip1 * 0.004 + 0.1 k              = 0.5 + 0.1 k | 0.9 + 0.1 k
  const std::string d = path("dump/");
  expect_all(d + "data.npy", {2, 1, 28, 28}, 0, 784, 1.0f);
  expect_all(d + "data.npy", {2, 1, 28, 28}, 784, 2 * 784, 2.0f);
  expect_all(d + "conv1.npy", {2, 20, 24, 24}, 0, 20 * 576, 0.35f);
  expect_all(d + "conv1.npy", {2, 20, 24, 24}, 20 * 576, 2 * 20 * 576, 0.6f);
  expect_all(d + "pool1.npy", {2, 20, 12, 12}, 0, 20 * 144, 0.35f);
  expect_all(d + "conv2.npy", {2, 50, 8, 8}, 0, 50 * 64, 0.25f);
  expect_all(d + "conv2.npy", {2, 50, 8, 8}, 50 * 64, 2 * 50 * 64, 0.5f);
  expect_all(d + "pool2.npy", {2, 50, 4, 4}, 50 * 16, 2 * 50 * 16, 0.5f);
  expect_all(d + "ip1.npy", {2, 500}, 0, 500, 0.25f);
  expect_all(d + "ip1.npy", {2, 500}, 500, 1000, 0.45f);
  const NpyArray ip2 = read_npy(d + "ip2.npy");
  const NpyArray prob = read_npy(d + "prob.npy");
  double normaliser = 0;
  for (int k = 0; k < 10; ++k) normaliser += std::exp(0.1 * k);
  for (int k = 0; k < 10; ++k) {
    EXPECT_NEAR(ip2.data[k], 0.5f + 0.1f * k, 1e-5f);
    EXPECT_NEAR(ip2.data[10 + k], 0.9f + 0.1f * k, 1e-5f);
    // Softmax ignores the shift between the two images.
    EXPECT_NEAR(prob.data[k], std::exp(0.1 * k) / normaliser, 1e-6);
    EXPECT_NEAR(prob.data[10 + k], std::exp(0.1 * k) / normaliser, 1e-6);
  }
}

TEST_F(ForwardCli, InputFlagForms) {
  write_constant_lenet_weights(path("lenet.caffemodel"));
  std::vector<float> image(28 * 28, 1.0f);
  write_npy(path("one.npy"), {1, 1, 28, 28}, image.data());
  std::string output;
  // A net with one Input blob takes the bare file name; without --dump nothing is written.
  ASSERT_EQ(run("forward --model=" + kLenet + " --weights=" + path("lenet.caffemodel") +
                    " --input=" + path("one.npy"),
                &output),
            0)
      << output;
  EXPECT_CONTAINS(output, "prob: 1 x 10 (10)");

  EXPECT_EQ(run("forward --model=" + kLenet + " --input=label:" + path("one.npy"), &output), 1);
  EXPECT_CONTAINS(output, "'label' is not an Input blob of net LeNet");
  EXPECT_CONTAINS(output, "data");

  const double values[] = {1, 2};
  std::string f8 = npy_bytes({2}, reinterpret_cast<const float*>(values));
  f8.replace(f8.find("<f4"), 3, "<f8");
  write_file_atomic(path("f8.npy"), f8);
  EXPECT_EQ(run("forward --model=" + kLenet + " --input=" + path("f8.npy"), &output), 1);
  EXPECT_CONTAINS(output, path("f8.npy"));
  EXPECT_CONTAINS(output, "dtype is '<f8'");
}

// A V1 net, as Caffe's examples were written before 2015.
const char* kV1Net = R"(
name: "old"
input: "data" input_dim: 1 input_dim: 2 input_dim: 3 input_dim: 3
layers { name: "ip" type: INNER_PRODUCT bottom: "data" top: "ip" blobs_lr: 1 blobs_lr: 2
         weight_decay: 1 weight_decay: 0 inner_product_param { num_output: 2 } }
layers { name: "prob" type: SOFTMAX bottom: "ip" top: "prob" }
)";

TEST_F(ForwardCli, UpgradeCommands) {
  std::ofstream(path("v1.prototxt")) << kV1Net;
  std::string output;
  ASSERT_EQ(run("upgrade_net_proto_text " + path("v1.prototxt") + " " + path("v2.prototxt"),
                &output),
            0)
      << output;
  EXPECT_CONTAINS(output, "upgraded 2 V1 'layers' entries to V2 'layer'");
  NetParameter v2;
  read_text_file(path("v2.prototxt"), &v2);
  NetParameter expected;
  parse_text(R"(
    name: "old"
    layer { name: "input" type: "Input" top: "data"
            input_param { shape { dim: 1 dim: 2 dim: 3 dim: 3 } } }
    layer { name: "ip" type: "InnerProduct" bottom: "data" top: "ip"
            param { lr_mult: 1 decay_mult: 1 } param { lr_mult: 2 decay_mult: 0 }
            inner_product_param { num_output: 2 } }
    layer { name: "prob" type: "Softmax" bottom: "ip" top: "prob" })",
             "<expected>", &expected);
  EXPECT_EQ(v2.DebugString(), expected.DebugString());
  // The V1 file itself runs.
  ASSERT_EQ(run("forward --model=" + path("v1.prototxt"), &output), 0) << output;
  EXPECT_CONTAINS(output, "prob: 1 x 2 (2) 0.5 0.5");

  // A V1 weights file with legacy 4-D blobs.
  NetParameter weights;
  parse_text(R"(
    name: "old" input: "data"
    layers { name: "ip" type: INNER_PRODUCT
             blobs { num: 1 channels: 1 height: 2 width: 18 data: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10,
                     11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29,
                     30, 31, 32, 33, 34, 35, 36] }
             blobs { num: 1 channels: 1 height: 1 width: 2 data: [0.5, 1.5] } })",
             "<weights>", &weights);
  write_binary_file(weights, path("v1.caffemodel"));
  ASSERT_EQ(run("upgrade_net_proto_binary " + path("v1.caffemodel") + " " +
                    path("v2.caffemodel"),
                &output),
            0)
      << output;
  NetParameter upgraded;
  read_binary_file(path("v2.caffemodel"), &upgraded);
  EXPECT_EQ(upgraded.layers_size(), 0);
  ASSERT_EQ(upgraded.layer_size(), 1);
  EXPECT_EQ(upgraded.layer(0).type(), "InnerProduct");
  EXPECT_EQ(upgraded.layer(0).blobs(1).data(1), 1.5f);
  EXPECT_EQ(upgraded.input_size(), 0);
  // Both weights files load into the V1 net: the upgraded one and the original.
  for (const char* file : {"v1.caffemodel", "v2.caffemodel"}) {
    ASSERT_EQ(run("forward --model=" + path("v1.prototxt") + " --weights=" + path(file) +
                      " --dump=" + path("dump"),
                  &output),
              0)
        << output;
    EXPECT_EQ(read_npy(path("dump/ip.npy")).data, (std::vector<float>{0.5f, 1.5f})) << file;
  }

  std::ofstream(path("solver.prototxt")) << "net: 'x.prototxt' solver_type: NESTEROV base_lr: 0.1";
  ASSERT_EQ(run("upgrade_solver_proto_text " + path("solver.prototxt") + " " +
                    path("solver2.prototxt"),
                &output),
            0)
      << output;
  SolverParameter solver;
  read_text_file(path("solver2.prototxt"), &solver);
  EXPECT_EQ(solver.type(), "Nesterov");
  EXPECT_FALSE(solver.has_solver_type());
  EXPECT_EQ(solver.base_lr(), 0.1f);

  // Both forms in one file fail, naming it.
  std::ofstream(path("mixed.prototxt"))
      << "layer { name: 'a' type: 'ReLU' } layers { name: 'b' type: RELU }";
  EXPECT_EQ(run("upgrade_net_proto_text " + path("mixed.prototxt") + " " + path("out.prototxt"),
                &output),
            1);
  EXPECT_CONTAINS(output, path("mixed.prototxt"));
  EXPECT_CONTAINS(output, "both 'layer'");
  EXPECT_EQ(run("upgrade_net_proto_text " + path("mixed.prototxt"), &output), 1);
  EXPECT_CONTAINS(output, "takes 2 argument(s), got 1");
}

}  // namespace
}  // namespace engine
