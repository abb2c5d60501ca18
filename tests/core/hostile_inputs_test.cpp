// Hostile inputs: files a user may hand the engine that are wrong in ways a parser alone does
// not see. Each gets an error that names what is wrong and where, never a crash or garbage.
// The table of these cases in docs/reliability.md lists what the engine says for each.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>

#include "core/net.hpp"
#include "gradient_checker.hpp"
#include "io/caffemodel.hpp"
#include "io/prototxt.hpp"
#include "solvers/solver.hpp"

namespace engine {
namespace {

namespace fs = std::filesystem;
using testing::expect_error;

NetParameter net_param(const std::string& text) {
  NetParameter param;
  parse_text(text, "<hostile net>", &param);
  param.mutable_state()->set_phase(TRAIN);
  return param;
}

void build(const std::string& text) { Net net(net_param(text)); }

const std::string kInput =
    "layer { name: 'in' type: 'Input' top: 'data' "
    "        input_param { shape { dim: 1 dim: 3 dim: 8 dim: 8 } } }\n";

class ScratchFolder : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("engine_hostile_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string path(const std::string& name) const { return (dir_ / name).string(); }

  fs::path dir_;
};

TEST(HostileNet, CycleIsRefused) {
  expect_error([] {
    build(kInput +
          "layer { name: 'a' type: 'ReLU' bottom: 'b' top: 'a' }\n"
          "layer { name: 'b' type: 'ReLU' bottom: 'a' top: 'b' }\n");
  }, {"layer a (ReLU)", "bottom blob 'b'", "not produced by any earlier layer"});
}

TEST(HostileNet, BlobUsedBeforeItIsProducedIsRefused) {
  expect_error([] {
    build(kInput +
          "layer { name: 'late' type: 'ReLU' bottom: 'relu1' top: 'late' }\n"
          "layer { name: 'relu1' type: 'ReLU' bottom: 'data' top: 'relu1' }\n");
  }, {"layer late (ReLU)", "'relu1'", "not produced by any earlier layer"});
}

TEST(HostileNet, KernelLargerThanTheInputIsRefused) {
  expect_error([] {
    build(kInput +
          "layer { name: 'conv' type: 'Convolution' bottom: 'data' top: 'conv' "
          "        convolution_param { num_output: 4 kernel_size: 11 } }\n");
  }, {"layer conv (Convolution)", "kernel (extent 11 x 11", "than the padded input (8 x 8)"});
  expect_error([] {
    build(kInput +
          "layer { name: 'pool' type: 'Pooling' bottom: 'data' top: 'pool' "
          "        pooling_param { pool: MAX kernel_size: 9 } }\n");
  }, {"layer pool (Pooling)", "9"});
}

TEST(HostileNet, ZeroDimensionsAreRefusedWhereALayerNeedsThem) {
  expect_error([] {
    build("layer { name: 'in' type: 'Input' top: 'data' "
          "        input_param { shape { dim: 1 dim: 0 dim: 8 dim: 8 } } }\n"
          "layer { name: 'conv' type: 'Convolution' bottom: 'data' top: 'conv' "
          "        convolution_param { num_output: 4 kernel_size: 3 } }\n");
  }, {"layer conv (Convolution)", "1 x 0 x 8 x 8", "channels, height and width must be positive"});
  expect_error([] {
    build(kInput +
          "layer { name: 'conv' type: 'Convolution' bottom: 'data' top: 'conv' "
          "        convolution_param { num_output: 0 kernel_size: 3 } }\n");
  }, {"layer conv", "num_output > 0, got 0"});
}

TEST(HostileNet, NegativeDimensionsAreRefused) {
  expect_error([] {
    build("layer { name: 'in' type: 'Input' top: 'data' "
          "        input_param { shape { dim: 1 dim: -3 dim: 8 dim: 8 } } }\n");
  }, {"layer in (Input): setup", "dimension -3 is out of range"});
}

// 2^31 values (8 GB) is refused before any memory is taken: kernels, BLAS and CUDA index
// blobs with 32-bit integers, as in Caffe.
TEST(HostileNet, BlobOf2To31ValuesIsRefused) {
  expect_error([] {
    build("layer { name: 'in' type: 'Input' top: 'data' "
          "        input_param { shape { dim: 2 dim: 1024 dim: 1024 dim: 1024 } } }\n");
  }, {"layer in (Input): setup", "2 x 1024 x 1024 x 1024", "more than 2^31 - 1 values"});
  // One value fewer is a legal shape (not allocated until used).
  build("layer { name: 'in' type: 'Input' top: 'data' "
        "        input_param { shape { dim: 2147483647 } } }\n");
  expect_error([] {
    build(kInput +
          "layer { name: 'ip' type: 'InnerProduct' bottom: 'data' top: 'ip' "
          "        inner_product_param { num_output: 2147483647 } }\n");
  }, {"layer ip (InnerProduct): setup", "more than 2^31 - 1 values"});
}

// An empty batch (dim 0) runs forward and backward through the layers that use oneDNN, which
// refuses empty shapes (its inner product divided by zero: a fuzz finding); they take the
// reference path for it.
TEST(HostileNet, EmptyBatchRunsThroughEveryLayerFamily) {
  Net net(net_param(
      "force_backward: true\n"
      "layer { name: 'in' type: 'Input' top: 'data' "
      "        input_param { shape { dim: 0 dim: 3 dim: 8 dim: 8 } } }\n"
      "layer { name: 'conv' type: 'Convolution' bottom: 'data' top: 'conv' "
      "        convolution_param { num_output: 4 kernel_size: 3 } }\n"
      "layer { name: 'relu' type: 'ReLU' bottom: 'conv' top: 'conv' }\n"
      "layer { name: 'norm' type: 'LRN' bottom: 'conv' top: 'norm' lrn_param { local_size: 3 } }\n"
      "layer { name: 'pool' type: 'Pooling' bottom: 'norm' top: 'pool' "
      "        pooling_param { pool: MAX kernel_size: 2 stride: 2 } }\n"
      "layer { name: 'ip' type: 'InnerProduct' bottom: 'pool' top: 'ip' "
      "        inner_product_param { num_output: 3 } }\n"
      "layer { name: 'prob' type: 'Softmax' bottom: 'ip' top: 'prob' }\n"));
  net.forward_backward();
  EXPECT_EQ(net.blob_by_name("prob")->shape(), (std::vector<int>{0, 3}));
}

// A chain of 10,000 layers builds, runs forward and backward, and gives the values a hand
// computation gives: tanh(relu(x)) repeated 5,000 times.
TEST(HostileNet, TenThousandLayersBuildAndRun) {
  std::string text =
      "force_backward: true\n"
      "layer { name: 'in' type: 'Input' top: 'x0' input_param { shape { dim: 2 dim: 3 } } }\n";
  constexpr int kLayers = 10000;
  for (int i = 1; i <= kLayers; ++i) {
    text += "layer { name: 'l" + std::to_string(i) + "' type: '" + (i % 2 ? "ReLU" : "TanH") +
            "' bottom: 'x" + std::to_string(i - 1) + "' top: 'x" + std::to_string(i) + "'" +
            (i == kLayers ? " loss_weight: 1" : "") + " }\n";
  }
  Net net(net_param(text));
  EXPECT_EQ(net.layers().size(), size_t(kLayers + 1));
  const std::vector<float> inputs = {-1.0f, -0.25f, 0.0f, 0.1f, 0.5f, 2.0f};
  std::copy(inputs.begin(), inputs.end(), net.input_blobs()[0]->mutable_cpu_data());
  net.forward_backward();
  const Blob& out = *net.blob_by_name("x" + std::to_string(kLayers));
  const Blob& in = *net.blob_by_name("x0");
  for (size_t i = 0; i < inputs.size(); ++i) {
    double value = inputs[i], slope = 1;
    for (int layer = 0; layer < kLayers / 2; ++layer) {
      value = std::tanh(std::max(value, 0.0));
      slope *= value > 0 ? 1 - value * value : 0;
    }
    EXPECT_NEAR(out.cpu_data()[i], value, 1e-5) << i;
    EXPECT_NEAR(in.cpu_diff()[i], inputs[i] > 0 ? slope : 0, 1e-5) << i;
  }
}

const std::string kSmallNet =
    "name: 'small'\n"
    "layer { name: 'in' type: 'Input' top: 'data' input_param { shape { dim: 2 dim: 4 } } }\n"
    "layer { name: 'ip' type: 'InnerProduct' bottom: 'data' top: 'ip' "
    "        inner_product_param { num_output: 3 weight_filler { type: 'gaussian' } } }\n";

TEST_F(ScratchFolder, WeightsOfAnotherShapeAreRefused) {
  Net small(net_param(kSmallNet));
  write_caffemodel(small, path("small.caffemodel"));
  std::string wider = kSmallNet;
  wider.replace(wider.find("num_output: 3"), 13, "num_output: 5");
  Net net(net_param(wider));
  expect_error([&] { copy_weights_from_file(path("small.caffemodel"), &net); },
               {"layer ip (InnerProduct)", "parameter blob 0 has shape 5 x 4 in the net",
                "3 x 4 in the trained weights"});
}

TEST_F(ScratchFolder, NanInTheWeightsIsRefused) {
  Net small(net_param(kSmallNet));
  NetParameter weights;
  small.to_proto(&weights);
  weights.mutable_layer(1)->mutable_blobs(0)->set_data(7, std::nanf(""));
  write_caffemodel(weights, path("nan.caffemodel"));
  Net net(net_param(kSmallNet));
  expect_error([&] { copy_weights_from_file(path("nan.caffemodel"), &net); },
               {"layer ip (InnerProduct)", "parameter blob 0", "NaN or infinite"});
  weights.mutable_layer(1)->mutable_blobs(1)->set_data(0, INFINITY);
  weights.mutable_layer(1)->mutable_blobs(0)->set_data(7, 0.5f);
  write_caffemodel(weights, path("inf.caffemodel"));
  expect_error([&] { copy_weights_from_file(path("inf.caffemodel"), &net); },
               {"layer ip (InnerProduct)", "parameter blob 1", "NaN or infinite"});
}

// A file past protobuf's 2 GB is refused before it is read (a sparse file: no disk used).
TEST_F(ScratchFolder, WeightsFileOver2GbIsRefusedBeforeReading) {
  const std::string file = path("huge.caffemodel");
  std::ofstream(file).put('\n');
  fs::resize_file(file, (uintmax_t(1) << 31) + 4096);
  Net net(net_param(kSmallNet));
  expect_error([&] { copy_weights_from_file(file, &net); },
               {file, "2147487744 bytes", "cannot exceed 2 GB"});
  expect_error([&] { NetParameter param; read_text_file(file, &param); },
               {file, "cannot exceed 2 GB"});
}

SolverParameter solver_param(const std::string& settings, const std::string& prefix) {
  SolverParameter param;
  parse_text("net_param { " + kSmallNet +
                 " layer { name: 'loss' type: 'Reduction' bottom: 'ip' top: 'loss' "
                 "         loss_weight: 1 } }\n"
                 "lr_policy: 'fixed' snapshot_prefix: '" + prefix + "' " + settings,
             "<hostile solver>", &param);
  return param;
}

TEST_F(ScratchFolder, SolverWithMaxIter0WritesTheInitialWeights) {
  // As Caffe: max_iter 0 trains nothing and snapshots the filled net at iteration 0.
  auto solver = make_solver(solver_param("base_lr: 0.1 max_iter: 0", path("s")));
  solver->solve();
  EXPECT_EQ(solver->iter(), 0);
  Net net(net_param(kSmallNet));
  copy_weights_from_file(path("s_iter_0.caffemodel"), &net);
  const Blob& saved = *net.layer_by_name("ip").blobs()[0];
  const Blob& trained = *solver->net().layer_by_name("ip").blobs()[0];
  EXPECT_TRUE(std::equal(saved.cpu_data(), saved.cpu_data() + saved.count(), trained.cpu_data()));
}

TEST_F(ScratchFolder, SolverSettingsThatClimbTheLossAreRefused) {
  const std::string prefix = path("s");
  expect_error([&] { make_solver(solver_param("base_lr: -0.1 max_iter: 10", prefix)); },
               {"base_lr must be a finite number >= 0, got -0.1"});
  expect_error([&] { make_solver(solver_param("base_lr: nan max_iter: 10", prefix)); },
               {"base_lr must be a finite number >= 0, got nan"});
  expect_error([&] { make_solver(solver_param("base_lr: 0.1 max_iter: -5", prefix)); },
               {"max_iter must be 0 or more, got -5"});
  expect_error([&] { make_solver(solver_param("base_lr: 0.1 momentum: -0.9", prefix)); },
               {"momentum must be a finite number >= 0, got -0.9"});
  expect_error([&] { make_solver(solver_param("base_lr: 0.1 weight_decay: -1", prefix)); },
               {"weight_decay must be a finite number >= 0, got -1"});
}

}  // namespace
}  // namespace engine
