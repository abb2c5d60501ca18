// Whole nets on both devices: Caffe's own LeNet, CaffeNet and AlexNet train/val files (their Data
// layers swapped for Input layers) and our models/alexnet start from the same weights and inputs
// on the CPU and on the GPU; the forward outputs, the loss and what two SGD steps (momentum,
// weight decay) do to every parameter must agree. Dropout runs at ratio 0 here, because the two
// devices draw their masks from different generators. Without a device only the CPU half runs.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <fstream>

#include "core/context.hpp"
#include "core/net.hpp"
#include "gradient_checker.hpp"
#include "io/prototxt.hpp"
#include "solvers/solver.hpp"

namespace engine {
namespace {

struct NetCase {
  std::string name;
  std::string file;              // absolute
  std::vector<int> data_shape;   // N x C x H x W
  int classes;
  std::string output;            // the last InnerProduct's top
};

const std::string kModels = ENGINE_CAFFE_MODELS_DIR;
const std::string kSource = ENGINE_SOURCE_DIR;

const std::vector<NetCase>& net_cases() {
  static const std::vector<NetCase> cases = {
      {"LeNet", kModels + "/examples/mnist/lenet_train_test.prototxt", {8, 1, 28, 28}, 10, "ip2"},
      {"CaffeNet", kModels + "/models/bvlc_reference_caffenet/train_val.prototxt",
       {2, 3, 227, 227}, 1000, "fc8"},
      {"AlexNet", kModels + "/models/bvlc_alexnet/train_val.prototxt", {2, 3, 227, 227}, 1000,
       "fc8"},
      {"OurAlexNet", kSource + "/models/alexnet/train_val.prototxt", {2, 3, 227, 227}, 1000,
       "fc8"},
  };
  return cases;
}

struct DeviceResult {
  std::vector<float> output;
  float loss = 0;
  std::vector<std::vector<float>> updates;  // per parameter: after two steps minus before
};

std::vector<float> data_of(const Blob& blob) {
  return {blob.cpu_data(), blob.cpu_data() + blob.count()};
}

DeviceResult run_on(const NetCase& c, Mode mode) {
  NetParameter net;
  read_text_file(c.file, &net);
  testing::replace_data_layers(c.data_shape, c.data_shape[0], &net);
  for (LayerParameter& layer : *net.mutable_layer()) {
    if (layer.type() == "Dropout") layer.mutable_dropout_param()->set_dropout_ratio(0);
  }
  SolverParameter solver_param;
  *solver_param.mutable_net_param() = net;
  solver_param.set_base_lr(0.01f);
  solver_param.set_lr_policy("fixed");
  solver_param.set_momentum(0.9f);
  solver_param.set_weight_decay(0.0005f);
  solver_param.set_max_iter(2);
  solver_param.set_display(0);
  solver_param.set_snapshot_after_train(false);

  // Weights and inputs are drawn on the CPU from one seed, so both devices start alike.
  Context::set_mode(Mode::CPU);
  Context::set_seed(17);
  std::unique_ptr<Solver> solver = make_solver(solver_param);
  Net& train = solver->net();
  testing::fill_gaussian(*train.input_blobs()[0]);
  float* labels = train.input_blobs()[1]->mutable_cpu_data();
  for (int i = 0; i < c.data_shape[0]; ++i) labels[i] = static_cast<float>((7 * i) % c.classes);
  std::vector<std::vector<float>> before;
  for (Blob* param : train.learnable_params()) before.push_back(data_of(*param));

  Context::set_mode(mode);
  DeviceResult result;
  result.loss = train.forward();
  result.output = data_of(*train.blob_by_name(c.output));
  solver->step(2);
  for (size_t i = 0; i < before.size(); ++i) {
    std::vector<float> after = data_of(*train.learnable_params()[i]);
    for (size_t k = 0; k < after.size(); ++k) after[k] -= before[i][k];
    result.updates.push_back(std::move(after));
  }
  Context::set_mode(Mode::CPU);
  return result;
}

// Every element within `tolerance` of the largest magnitude in the CPU's values: sums of
// thousands of products (cuDNN's and cuBLAS's orders against ours) differ in the last bits,
// and through a whole net those differences scale with the blob, not with each element.
void expect_close(const std::vector<float>& cpu, const std::vector<float>& gpu, double tolerance,
                  const std::string& what) {
  ASSERT_EQ(cpu.size(), gpu.size()) << what;
  double largest = 1e-12;
  for (float v : cpu) largest = std::max(largest, double(std::fabs(v)));
  double worst = 0;
  size_t worst_at = 0;
  for (size_t k = 0; k < cpu.size(); ++k) {
    const double error = std::fabs(double(cpu[k]) - gpu[k]) / largest;
    if (!(error <= worst)) {
      worst = error;
      worst_at = k;
    }
  }
  EXPECT_LE(worst, tolerance) << what << ": element " << worst_at << " CPU " << cpu[worst_at]
                              << " GPU " << gpu[worst_at] << " (largest |CPU| " << largest << ")";
}

class NetParity : public ::testing::TestWithParam<size_t> {
 protected:
  void SetUp() override {
    if (!std::ifstream(net_cases()[GetParam()].file)) {
      GTEST_SKIP() << net_cases()[GetParam()].file << " is not there";
    }
  }
};

// The harness itself: on the CPU a run repeats exactly and training moves every parameter.
TEST(NetParityHarness, LeNetRepeatsOnTheCpu) {
  const NetCase& lenet = net_cases()[0];
  if (!std::ifstream(lenet.file)) GTEST_SKIP() << lenet.file << " is not there";
  const DeviceResult first = run_on(lenet, Mode::CPU);
  const DeviceResult second = run_on(lenet, Mode::CPU);
  EXPECT_EQ(first.output, second.output);
  EXPECT_EQ(first.updates, second.updates);
  EXPECT_TRUE(std::isfinite(first.loss));
  for (const auto& update : first.updates) {
    EXPECT_TRUE(std::any_of(update.begin(), update.end(), [](float v) { return v != 0; }));
  }
}

TEST_P(NetParity, CpuAndGpuAgreeOnOutputsAndTrainingSteps) {
  if (Context::device_count() == 0) GTEST_SKIP() << "no CUDA device on this machine";
  Context::set_device(0);
  const NetCase& c = net_cases()[GetParam()];
  const DeviceResult cpu = run_on(c, Mode::CPU);
  const DeviceResult gpu = run_on(c, Mode::GPU);
  expect_close(cpu.output, gpu.output, 1e-4, c.output);
  EXPECT_NEAR(cpu.loss, gpu.loss, 1e-4 * std::max(1.0f, std::fabs(cpu.loss)));
  ASSERT_EQ(cpu.updates.size(), gpu.updates.size());
  for (size_t i = 0; i < cpu.updates.size(); ++i) {
    expect_close(cpu.updates[i], gpu.updates[i], 1e-3, "update of parameter " + std::to_string(i));
  }
}

INSTANTIATE_TEST_SUITE_P(Nets, NetParity, ::testing::Range<size_t>(0, net_cases().size()),
                         [](const ::testing::TestParamInfo<size_t>& info) {
                           return net_cases()[info.param].name;
                         });

}  // namespace
}  // namespace engine
