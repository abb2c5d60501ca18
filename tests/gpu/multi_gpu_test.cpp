// Several GPUs in one process (NCCL): `engine train --gpu=all`, data parallel and model
// parallel, against one GPU. Every GPU sees the same constant DummyData batch, so averaged
// gradients are one GPU's and the weights must agree. Skips with fewer than two GPUs.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "core/context.hpp"
#include "io/caffemodel.hpp"
#include "io/prototxt.hpp"

namespace engine {
namespace {

namespace fs = std::filesystem;

const std::string kEngine = std::string(ENGINE_BINARY_DIR) + "/bin/engine";

const char* kNet = R"(
name: "multi"
layer { name: "data" type: "DummyData" top: "data" top: "label"
  dummy_data_param { shape { dim: 16 dim: 3 dim: 12 dim: 12 } shape { dim: 16 }
    data_filler { type: "constant" value: 0.5 } data_filler { type: "constant" value: 1 } } }
layer { name: "conv" type: "Convolution" bottom: "data" top: "conv"
  convolution_param { num_output: 8 kernel_size: 3 weight_filler { type: "xavier" } } }
layer { name: "relu" type: "ReLU" bottom: "conv" top: "conv" }
layer { name: "ip" type: "InnerProduct" bottom: "conv" top: "ip"
  inner_product_param { num_output: 8 weight_filler { type: "xavier" } } }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "ip" bottom: "label" top: "loss" }
)";

class MultiGpu : public ::testing::Test {
 protected:
  void SetUp() override {
    if (Context::device_count() < 2) GTEST_SKIP() << "fewer than two CUDA devices here";
    dir_ = fs::temp_directory_path() / ("engine_multi_gpu_" + std::to_string(::getpid()));
    fs::create_directories(dir_);
    std::ofstream(dir_ / "net.prototxt") << kNet;
  }
  void TearDown() override { fs::remove_all(dir_); }

  // Trains 20 iterations from the same weights with the flags; returns the final weights file.
  std::string train(const std::string& name, const std::string& flags) {
    std::ofstream(dir_ / (name + ".solver"))
        << "net: '" << (dir_ / "net.prototxt").string() << "'\nbase_lr: 0.01 momentum: 0.9 "
        << "weight_decay: 0.0005 lr_policy: 'fixed' max_iter: 20 snapshot_after_train: true "
        << "random_seed: 3 snapshot_prefix: '" << (dir_ / name).string() << "'\n";
    const std::string command = kEngine + " train --solver=" + (dir_ / (name + ".solver")).string() +
                                " " + flags + " >" + (dir_ / (name + ".log")).string() + " 2>&1";
    EXPECT_EQ(std::system(command.c_str()), 0) << read_file((dir_ / (name + ".log")).string());
    return (dir_ / (name + "_iter_20.caffemodel")).string();
  }

  // Largest relative difference over the parameter blobs of two weight files.
  static double difference(const std::string& a_file, const std::string& b_file) {
    const NetParameter a = read_caffemodel(a_file), b = read_caffemodel(b_file);
    double worst = 0;
    for (const LayerParameter& x : a.layer()) {
      for (const LayerParameter& y : b.layer()) {
        if (x.name() != y.name() || x.blobs_size() != y.blobs_size()) continue;
        for (int j = 0; j < x.blobs_size(); ++j) {
          double diff = 0, scale = 1e-12;
          for (int k = 0; k < std::min(x.blobs(j).data_size(), y.blobs(j).data_size()); ++k) {
            diff = std::max(diff, double(std::abs(x.blobs(j).data(k) - y.blobs(j).data(k))));
            scale = std::max(scale, double(std::abs(y.blobs(j).data(k))));
          }
          worst = std::max(worst, diff / scale);
        }
      }
    }
    return worst;
  }

  fs::path dir_;
};

TEST_F(MultiGpu, DataParallelOnEveryGpuTrainsLikeOne) {
  const std::string one = train("one", "--gpu=0 --deterministic");
  const std::string all = train("all", "--gpu=all --deterministic");
  EXPECT_LE(difference(all, one), 1e-5);
}

TEST_F(MultiGpu, ModelParallelOverTwoGpusTrainsLikeOne) {
  const std::string one = train("one", "--gpu=0 --deterministic");
  const std::string split = train("split", "--gpu=0,1 --model_parallel=2 --deterministic");
  EXPECT_LE(difference(split, one), 1e-5);
}

}  // namespace
}  // namespace engine
