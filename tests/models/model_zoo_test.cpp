// Popular model-zoo deploy files (tests/models/*/deploy.prototxt, written by generate.py from the
// papers in the zoo's Caffe conventions) build unchanged, run forward and backward on the CPU with
// filled weights, have Caffe's blob shapes, and hold the published number of parameters.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>

#include "core/context.hpp"
#include "core/filler.hpp"
#include "core/net.hpp"
#include "gradient_checker.hpp"
#include "io/prototxt.hpp"
#include "math/random.hpp"

namespace engine {
namespace {

NetParameter read_model(const std::string& name) {
  NetParameter param;
  read_text_file(std::string(ENGINE_SOURCE_DIR) + "/tests/models/" + name + "/deploy.prototxt",
                 &param);
  return param;
}

// Stores in a BatchNorm layer the statistics of what it is about to normalise (per channel over
// the batch and the positions, factor 1), as a net calibrated on this data would hold them.
void store_batch_statistics(const Blob& input, Layer* batch_norm) {
  const int num = input.shape(0), channels = input.shape(1);
  const int64_t spatial = input.count() / num / channels;
  float* mean = batch_norm->blobs()[0]->mutable_cpu_data();
  float* variance = batch_norm->blobs()[1]->mutable_cpu_data();
  for (int c = 0; c < channels; ++c) {
    double sum = 0, square = 0;
    for (int n = 0; n < num; ++n) {
      const float* x = input.cpu_data() + (static_cast<int64_t>(n) * channels + c) * spatial;
      for (int64_t i = 0; i < spatial; ++i) {
        sum += x[i];
        square += static_cast<double>(x[i]) * x[i];
      }
    }
    const double count = static_cast<double>(num) * spatial;
    mean[c] = static_cast<float>(sum / count);
    variance[c] = static_cast<float>(std::max(square / count - (sum / count) * (sum / count), 0.0));
  }
  batch_norm->blobs()[2]->set_data(1);
}

// Builds the file for TEST at `batch` with backward forced; fills every learnable blob (msra, as
// caffe_models_test does) and runs forward, giving each BatchNorm layer, just before it runs, the
// statistics of its input (mean 0, variance 1 everywhere lets the residual sums of ResNet-50 and
// MobileNet v2 grow to logits of ~1e3 and saturates the softmax: its gradient is then exactly 0);
// then runs backward from a random output gradient.
std::unique_ptr<Net> run_deploy(NetParameter param, int batch) {
  const auto start = std::chrono::steady_clock::now();
  param.mutable_state()->set_phase(TEST);
  set_input_batch(batch, &param);
  param.set_force_backward(true);
  Context::set_seed(11);
  auto net = std::make_unique<Net>(param);
  FillerParameter msra;
  msra.set_type("msra");
  for (Blob* weights : net->learnable_params()) fill(msra, weights);
  for (Blob* input : net->input_blobs()) testing::fill_gaussian(*input);
  for (int i = 0; i < static_cast<int>(net->layers().size()); ++i) {
    Layer* layer = net->layers()[i].get();
    if (layer->type() == "BatchNorm") store_batch_statistics(*net->bottom_vecs()[i][0], layer);
    net->forward_from_to(i, i);
  }
  for (Blob* output : net->output_blobs()) {
    rng_gaussian(output->count(), 0, 1, output->mutable_cpu_diff());
  }
  net->backward();
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::printf("[ timing   ] %s batch %d: build, fill, forward, backward %.2f s\n",
              net->name().c_str(), batch, seconds);
  return net;
}

// Every parameter blob the net owns (shared ones once), BatchNorm's statistics included.
int64_t parameter_count(const Net& net) {
  int64_t total = 0;
  for (size_t i = 0; i < net.params().size(); ++i) {
    if (net.param_owners()[i] < 0) total += net.params()[i]->count();
  }
  return total;
}

// The part of parameter_count that BatchNorm's stored statistics take (mean, variance, factor).
int64_t batch_norm_statistics_count(const Net& net) {
  int64_t total = 0;
  for (const auto& layer : net.layers()) {
    if (layer->type() != "BatchNorm") continue;
    for (const auto& blob : layer->blobs()) total += blob->count();
  }
  return total;
}

void expect_shape(const Net& net, const std::string& blob, const std::vector<int>& shape) {
  EXPECT_EQ(net.blob_by_name(blob)->shape(), shape) << blob;
}

// Each image's class probabilities (axis 1 of `prob`, any trailing 1x1) sum to 1.
void expect_probabilities(const Net& net, int batch, int classes) {
  const Blob& prob = *net.blob_by_name("prob");
  ASSERT_EQ(prob.count(), static_cast<int64_t>(batch) * classes);
  for (int n = 0; n < batch; ++n) {
    double sum = 0;
    for (int c = 0; c < classes; ++c) {
      const float p = prob.cpu_data()[n * classes + c];
      EXPECT_TRUE(p >= 0 && p <= 1);
      sum += p;
    }
    EXPECT_NEAR(sum, 1.0, 1e-4) << "image " << n;
  }
}

void expect_input_gradient(const Net& net) {
  const Blob& data = *net.blob_by_name("data");
  double total = 0;
  for (int64_t i = 0; i < data.count(); ++i) total += std::fabs(data.cpu_diff()[i]);
  EXPECT_TRUE(std::isfinite(total));
  EXPECT_GT(total, 0) << "backward reached the input";
}

// ResNet-50 (He et al.): published 25.6M parameters = 25,557,032 (conv weights without biases,
// BatchNorm's gamma and beta, fc1000); the Caffe release keeps conv1's bias (+64) and stores
// the BatchNorm statistics as blobs: mean and variance over 26,560 channels plus one factor per
// each of the 53 BatchNorm layers (+53,173): 25,610,269 in all.
TEST(ModelZoo, ResNet50) {
  auto net = run_deploy(read_model("resnet50"), 1);
  expect_shape(*net, "conv1", {1, 64, 112, 112});
  expect_shape(*net, "pool1", {1, 64, 56, 56});
  expect_shape(*net, "res2c", {1, 256, 56, 56});
  expect_shape(*net, "res3d", {1, 512, 28, 28});
  expect_shape(*net, "res4f", {1, 1024, 14, 14});
  expect_shape(*net, "res5c", {1, 2048, 7, 7});
  expect_shape(*net, "pool5", {1, 2048, 1, 1});
  expect_shape(*net, "fc1000", {1, 1000});
  expect_shape(*net, "prob", {1, 1000});
  expect_probabilities(*net, 1, 1000);
  expect_input_gradient(*net);
  const int64_t statistics = batch_norm_statistics_count(*net);
  EXPECT_EQ(statistics, 2 * 26560 + 53);
  EXPECT_EQ(parameter_count(*net) - statistics - 64, 25557032);
  EXPECT_EQ(parameter_count(*net), 25610269);
}

// SqueezeNet v1.1 (Iandola et al.): 1,235,496 parameters (no BatchNorm).
TEST(ModelZoo, SqueezeNet11) {
  auto net = run_deploy(read_model("squeezenet1.1"), 2);
  expect_shape(*net, "conv1", {2, 64, 113, 113});
  expect_shape(*net, "pool1", {2, 64, 56, 56});
  expect_shape(*net, "fire2/concat", {2, 128, 56, 56});
  expect_shape(*net, "pool3", {2, 128, 28, 28});
  expect_shape(*net, "pool5", {2, 256, 14, 14});
  expect_shape(*net, "fire9/concat", {2, 512, 14, 14});
  expect_shape(*net, "conv10", {2, 1000, 14, 14});
  expect_shape(*net, "pool10", {2, 1000, 1, 1});
  expect_shape(*net, "prob", {2, 1000, 1, 1});
  expect_probabilities(*net, 2, 1000);
  expect_input_gradient(*net);
  EXPECT_EQ(parameter_count(*net), 1235496);
}

// MobileNet v1 1.0-224 (Howard et al.): published 4.2M = 4,231,976 (convolutions without biases,
// BatchNorm's gamma and beta, the 1x1 classifier with its bias); Caffe's BatchNorm blobs add
// mean and variance over 10,944 channels and 27 factors: 4,253,891 in all.
TEST(ModelZoo, MobileNetV1) {
  auto net = run_deploy(read_model("mobilenet_v1"), 2);
  expect_shape(*net, "conv1", {2, 32, 112, 112});
  expect_shape(*net, "conv2_1/dw", {2, 32, 112, 112});
  expect_shape(*net, "conv2_2/dw", {2, 64, 56, 56});
  expect_shape(*net, "conv5_6/sep", {2, 1024, 7, 7});
  expect_shape(*net, "conv6/sep", {2, 1024, 7, 7});
  expect_shape(*net, "pool6", {2, 1024, 1, 1});
  expect_shape(*net, "fc7", {2, 1000, 1, 1});
  expect_probabilities(*net, 2, 1000);
  expect_input_gradient(*net);
  EXPECT_EQ(net->layer_by_name("conv6/dw").blobs()[0]->shape(), (std::vector<int>{1024, 1, 3, 3}))
      << "depthwise: one 3x3 filter per channel";
  const int64_t statistics = batch_norm_statistics_count(*net);
  EXPECT_EQ(statistics, 2 * 10944 + 27);
  EXPECT_EQ(parameter_count(*net) - statistics, 4231976);

  // These BatchNorm layers name no use_global_stats: in TEST they normalise with the stored
  // statistics, not the batch's (a mean far above every input leaves nothing after the positive
  // Scale and the ReLU).
  net->layer_by_name("conv1/bn").blobs()[0]->set_data(1000);
  net->layer_by_name("conv1/scale").blobs()[0]->set_data(1);
  net->layer_by_name("conv1/scale").blobs()[1]->set_data(0);
  net->forward();
  const Blob& conv1 = *net->blob_by_name("conv1");
  EXPECT_EQ(*std::max_element(conv1.cpu_data(), conv1.cpu_data() + conv1.count()), 0);
}

// MobileNet v2 1.0-224 (Sandler et al.): published 3.5M = 3,504,872 (torchvision's count); the
// popular Caffe port adds a 1x1 expansion of 32 channels in the first bottleneck (t = 1):
// 32 x 32 weights + 64 for its BatchNorm's gamma and beta, 3,505,960; Caffe's BatchNorm blobs add
// mean and variance over 17,088 channels and 53 factors: 3,540,189 in all.
TEST(ModelZoo, MobileNetV2) {
  auto net = run_deploy(read_model("mobilenet_v2"), 2);
  expect_shape(*net, "conv1", {2, 32, 112, 112});
  expect_shape(*net, "conv2_1/linear", {2, 16, 112, 112});
  expect_shape(*net, "block_3_1", {2, 24, 56, 56});
  expect_shape(*net, "block_4_2", {2, 32, 28, 28});
  expect_shape(*net, "block_4_6", {2, 64, 14, 14});
  expect_shape(*net, "block_5_2", {2, 96, 14, 14});
  expect_shape(*net, "block_6_2", {2, 160, 7, 7});
  expect_shape(*net, "conv6_3/linear", {2, 320, 7, 7});
  expect_shape(*net, "conv6_4", {2, 1280, 7, 7});
  expect_shape(*net, "pool6", {2, 1280, 1, 1});
  expect_shape(*net, "fc7", {2, 1000, 1, 1});
  expect_probabilities(*net, 2, 1000);
  expect_input_gradient(*net);
  const int64_t statistics = batch_norm_statistics_count(*net);
  EXPECT_EQ(statistics, 2 * 17088 + 53);
  EXPECT_EQ(parameter_count(*net) - statistics - 32 * 32 - 64, 3504872);
  EXPECT_EQ(parameter_count(*net), 3540189);
}

// The ports that keep the paper's ReLU6 write it as Clip { min: 0 max: 6 }.
TEST(ModelZoo, MobileNetV2WithClipAsReLU6) {
  NetParameter param = read_model("mobilenet_v2");
  int replaced = 0;
  for (LayerParameter& layer : *param.mutable_layer()) {
    if (layer.type() != "ReLU") continue;
    layer.set_type("Clip");
    layer.mutable_clip_param()->set_min(0);
    layer.mutable_clip_param()->set_max(6);
    ++replaced;
  }
  EXPECT_EQ(replaced, 36);
  auto net = run_deploy(param, 1);
  const Blob& last = *net->blob_by_name("conv6_4");
  float largest = 0;
  for (int64_t i = 0; i < last.count(); ++i) largest = std::max(largest, last.cpu_data()[i]);
  EXPECT_LE(largest, 6);
  EXPECT_GT(largest, 0);
  expect_probabilities(*net, 1, 1000);
  expect_input_gradient(*net);
}

// VGG-16 (Simonyan & Zisserman, configuration D), in the zoo's legacy V1 format: 138,357,544.
TEST(ModelZoo, VGG16) {
  auto net = run_deploy(read_model("vgg16"), 1);
  expect_shape(*net, "conv1_2", {1, 64, 224, 224});
  expect_shape(*net, "pool1", {1, 64, 112, 112});
  expect_shape(*net, "conv5_3", {1, 512, 14, 14});
  expect_shape(*net, "pool5", {1, 512, 7, 7});
  expect_shape(*net, "fc6", {1, 4096});
  expect_shape(*net, "fc7", {1, 4096});
  expect_shape(*net, "fc8", {1, 1000});
  expect_probabilities(*net, 1, 1000);
  expect_input_gradient(*net);
  EXPECT_EQ(net->layer_by_name("fc6").blobs()[0]->shape(), (std::vector<int>{4096, 25088}));
  EXPECT_EQ(parameter_count(*net), 138357544);
}

// NiN for ImageNet (Lin et al.): four mlpconv blocks, the last one's 1000 maps of 6x6 averaged
// into the class scores; 7,595,176 parameters (the paper gives no figure; the zoo's file is 29 MB).
TEST(ModelZoo, NetworkInNetwork) {
  auto net = run_deploy(read_model("nin_imagenet"), 2);
  expect_shape(*net, "conv1", {2, 96, 54, 54});
  expect_shape(*net, "cccp2", {2, 96, 54, 54});
  expect_shape(*net, "pool1", {2, 96, 27, 27});
  expect_shape(*net, "pool2", {2, 256, 13, 13});
  expect_shape(*net, "pool3", {2, 384, 6, 6});
  expect_shape(*net, "cccp8-1024", {2, 1000, 6, 6});
  expect_shape(*net, "pool4", {2, 1000, 1, 1});
  expect_probabilities(*net, 2, 1000);
  expect_input_gradient(*net);
  EXPECT_EQ(parameter_count(*net), 7595176);
}

}  // namespace
}  // namespace engine
