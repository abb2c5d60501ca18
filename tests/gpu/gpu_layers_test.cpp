// GPU-only checks beyond the parity table (tests/gpu/parity_test.cpp): cuDNN convolution at
// AlexNet's shapes and deconvolution at FCN's with one layer object switching modes, engine:
// CAFFE (our im2col kernels and cuBLAS) at those shapes, the algorithm fallback under a tiny
// workspace limit or scarce memory, deterministic mode, the Dropout hash mask, STOCHASTIC
// pooling's draws, the recurrent layers' state carried over on the device, and that a net on
// the GPU makes no host<->device copies once warmed up. Each test skips without a CUDA device.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <thread>

#include "core/context.hpp"
#include "core/fastest_layer.hpp"
#include "core/layer_registry.hpp"
#include "core/net.hpp"
#include "gradient_checker.hpp"
#include "io/prototxt.hpp"
#include "layers/conv.hpp"
#include "math/blas.hpp"
#include "math/cudnn.hpp"
#include "math/precision.hpp"
#include "math/random.hpp"

namespace engine {
namespace {

TEST(CudnnChoice, CaffeEngineRunsOurKernels) {
  EXPECT_FALSE(use_cudnn(1, "layer x (Convolution)"));  // CAFFE
#ifdef ENGINE_USE_CUDA
  EXPECT_TRUE(use_cudnn(0, "layer x (Convolution)"));  // DEFAULT
  EXPECT_TRUE(use_cudnn(2, "layer x (Convolution)"));  // CUDNN
#endif
}

#ifdef ENGINE_USE_CUDA
class Gpu : public ::testing::Test {
 protected:
  void SetUp() override {
    if (Context::device_count() == 0) GTEST_SKIP() << "no CUDA device on this machine";
    Context::set_device(0);
  }
  void TearDown() override {
    Context::set_mode(Mode::CPU);
    Context::set_deterministic(false);
  }
};

// |a - b| <= tolerance * max |a|: sums of thousands of products round differently on the two
// devices, so elements near zero are judged against the tensor's scale.
void expect_close_scaled(const std::vector<float>& cpu, const std::vector<float>& gpu,
                         const std::string& what, double tolerance = 1e-4) {
  ASSERT_EQ(cpu.size(), gpu.size()) << what;
  double scale = 1e-6;
  for (float v : cpu) scale = std::max(scale, std::fabs(double(v)));
  double worst = 0;
  size_t worst_at = 0;
  for (size_t i = 0; i < cpu.size(); ++i) {
    const double error = std::fabs(double(cpu[i]) - gpu[i]);
    if (error > worst) {
      worst = error;
      worst_at = i;
    }
  }
  EXPECT_LE(worst / scale, tolerance) << what << ": element " << worst_at << " CPU "
                                      << cpu[worst_at] << " GPU " << gpu[worst_at];
}

struct Pass {
  std::vector<float> top, bottom_diff, weight_diff, bias_diff;
};

// Forward and backward of `layer` in `mode`, from the same bottom and top gradient each time.
Pass run_pass(Layer& layer, Blob& bottom, Blob& top, const std::vector<float>& top_diff,
              Mode mode) {
  Context::set_mode(mode);
  for (auto& blob : layer.blobs()) blob->set_diff(0);
  layer.forward({&bottom}, {&top});
  Context::set_mode(Mode::CPU);
  std::copy(top_diff.begin(), top_diff.end(), top.mutable_cpu_diff());
  Context::set_mode(mode);
  layer.backward({&top}, {true}, {&bottom});
  Context::set_mode(Mode::CPU);
  Pass pass;
  pass.top = testing::data_of(top);
  pass.bottom_diff = testing::diff_of(bottom);
  pass.weight_diff = testing::diff_of(*layer.blobs()[0]);
  if (layer.blobs().size() > 1) pass.bias_diff = testing::diff_of(*layer.blobs()[1]);
  return pass;
}

// One Convolution (or Deconvolution) layer object, run on the CPU and then on the GPU; in a
// reduced precision, both devices round the same operands, and the GPU multiplies them on
// tensor cores (exactly), so only the summation order differs.
void check_conv_parity(const std::string& conv_param, const std::vector<int>& bottom_shape,
                       const std::string& type = "Convolution", Precision precision = FP32,
                       double tolerance = 1e-4) {
  SCOPED_TRACE(type + ": " + conv_param + " in " + precision_name(precision));
  Context::set_mode(Mode::CPU);
  Context::set_seed(3);
  Blob bottom(bottom_shape), top;
  testing::fill_gaussian(bottom);
  LayerPtr layer = create_layer(testing::layer_param(
      "name: 'conv' type: '" + type + "' convolution_param { " + conv_param +
      " weight_filler { type: 'gaussian' std: 0.1 } bias_filler { type: 'gaussian' std: 0.1 } }"));
  layer->set_precision(precision);
  layer->setup({&bottom}, {&top});
  std::vector<float> top_diff(top.count());
  rng_gaussian(top.count(), 0, 1, top_diff.data());
  const Pass cpu = run_pass(*layer, bottom, top, top_diff, Mode::CPU);
  const Pass gpu = run_pass(*layer, bottom, top, top_diff, Mode::GPU);
  expect_close_scaled(cpu.top, gpu.top, "top", tolerance);
  expect_close_scaled(cpu.bottom_diff, gpu.bottom_diff, "bottom gradient", tolerance);
  expect_close_scaled(cpu.weight_diff, gpu.weight_diff, "weight gradient", tolerance);
  expect_close_scaled(cpu.bias_diff, gpu.bias_diff, "bias gradient", tolerance);
  // The implementation that ran on the GPU (engine: DEFAULT may run another on the CPU).
  Context::set_mode(Mode::GPU);
  const auto* conv = dynamic_cast<const ConvolutionLayerBase*>(&working_layer(*layer));
  Context::set_mode(Mode::CPU);
  ASSERT_NE(conv, nullptr);
  // engine: CAFFE runs our im2col kernels and cuBLAS, never cuDNN.
  const bool caffe = conv_param.find("engine: CAFFE") != std::string::npos;
  for (int algorithm : conv->cudnn_algorithms()) {
    if (caffe) {
      EXPECT_EQ(algorithm, -1);
    } else {
      EXPECT_GE(algorithm, 0);
    }
  }
}

TEST_F(Gpu, ConvolutionMatchesCpuAtAlexNetShapes) {
  check_conv_parity("num_output: 96 kernel_size: 11 stride: 4", {2, 3, 227, 227});
  check_conv_parity("num_output: 256 kernel_size: 5 pad: 2 group: 2", {2, 96, 27, 27});
  check_conv_parity("num_output: 384 kernel_size: 3 pad: 1", {2, 256, 13, 13});
  check_conv_parity("num_output: 256 kernel_size: 3 pad: 1 group: 2", {2, 384, 13, 13});
}

// bf16 and fp16: tensor-core math in cuDNN and cuBLAS on the rounded operands (precision.hpp).
TEST_F(Gpu, ReducedPrecisionMatchesCpuOnTensorCores) {
  for (Precision precision : {BF16, FP16}) {
    check_conv_parity("num_output: 96 kernel_size: 11 stride: 4", {2, 3, 227, 227},
                      "Convolution", precision, 1e-3);
    check_conv_parity("num_output: 256 kernel_size: 5 pad: 2 group: 2", {2, 96, 27, 27},
                      "Convolution", precision, 1e-3);
    check_conv_parity("num_output: 256 kernel_size: 5 pad: 2 group: 2 engine: CAFFE",
                      {2, 96, 27, 27}, "Convolution", precision, 1e-3);
    SCOPED_TRACE(precision_name(precision));
    Context::set_mode(Mode::CPU);
    Blob bottom({64, 9216}), top;
    testing::fill_gaussian(bottom);
    LayerPtr ip = create_layer(testing::layer_param(
        "name: 'fc' type: 'InnerProduct' inner_product_param { num_output: 512 "
        "weight_filler { type: 'gaussian' std: 0.01 } bias_filler { type: 'constant' value: 1 } }"));
    ip->set_precision(precision);
    ip->setup({&bottom}, {&top});
    std::vector<float> top_diff(top.count());
    rng_gaussian(top.count(), 0, 1, top_diff.data());
    const Pass cpu = run_pass(*ip, bottom, top, top_diff, Mode::CPU);
    const Pass gpu = run_pass(*ip, bottom, top, top_diff, Mode::GPU);
    expect_close_scaled(cpu.top, gpu.top, "inner product top", 1e-3);
    expect_close_scaled(cpu.bottom_diff, gpu.bottom_diff, "inner product bottom gradient", 1e-3);
    expect_close_scaled(cpu.weight_diff, gpu.weight_diff, "inner product weight gradient", 1e-3);
  }
}

TEST_F(Gpu, ConvolutionMatchesCpuWithDilationAndDepthwiseGroups) {
  check_conv_parity("num_output: 6 kernel_size: 3 dilation: 2 pad: 1 stride: 2", {3, 4, 11, 9});
  check_conv_parity("num_output: 8 kernel_size: 3 pad: 1 group: 8", {2, 8, 10, 10});
  check_conv_parity("num_output: 5 kernel_h: 1 kernel_w: 3 pad_h: 0 pad_w: 1 stride_h: 2 "
                    "stride_w: 1",
                    {2, 3, 7, 6});
}

// Deconvolution on cuDNN: FCN's bilinear upsampling (one group per channel) and a decoder step.
TEST_F(Gpu, DeconvolutionMatchesCpuAtFcnShapes) {
  check_conv_parity("num_output: 21 kernel_size: 4 stride: 2 group: 21 bias_term: false",
                    {2, 21, 16, 16}, "Deconvolution");
  check_conv_parity("num_output: 64 kernel_size: 4 stride: 2 pad: 1", {2, 128, 14, 14},
                    "Deconvolution");
  check_conv_parity("num_output: 6 kernel_h: 3 kernel_w: 2 dilation: 2 stride: 3 pad: 1 "
                    "group: 2",
                    {3, 4, 5, 7}, "Deconvolution");
}

// engine: CAFFE on the GPU: batches larger than one chunk of columns (AlexNet's conv1 lowers 15
// images at a time, so 20 make a full chunk and a short one), groups, and Deconvolution.
TEST_F(Gpu, CaffeEngineMatchesCpuAtAlexNetShapes) {
  check_conv_parity("num_output: 96 kernel_size: 11 stride: 4 engine: CAFFE", {20, 3, 227, 227});
  check_conv_parity("num_output: 256 kernel_size: 5 pad: 2 group: 2 engine: CAFFE",
                    {2, 96, 27, 27});
  check_conv_parity("num_output: 32 kernel_size: 3 pad: 1 group: 32 engine: CAFFE",
                    {2, 32, 20, 20});
  check_conv_parity("num_output: 64 kernel_size: 4 stride: 2 pad: 1 engine: CAFFE",
                    {4, 128, 14, 14}, "Deconvolution");
  check_conv_parity("num_output: 21 kernel_size: 4 stride: 2 group: 21 engine: CAFFE",
                    {2, 21, 16, 16}, "Deconvolution");
}

// A fresh thread has its own (empty) workspace, so the limits below bite from the start.
template <class F>
void in_fresh_thread(F body) {
  std::thread thread([&] {
    Context::set_device(0);
    body();
    Context::set_mode(Mode::CPU);
  });
  thread.join();
}

TEST_F(Gpu, ConvolutionFallsBackUnderATinyWorkspaceLimit) {
  const size_t limit = cudnn::workspace_limit();
  cudnn::set_workspace_limit(0);
  in_fresh_thread([] {
    check_conv_parity("num_output: 64 kernel_size: 5 pad: 2", {2, 32, 27, 27});
  });
  cudnn::set_workspace_limit(limit);
}

TEST_F(Gpu, ConvolutionFallsBackWhenTheWorkspaceCannotBeAllocated) {
  cudnn::set_simulated_memory_limit(0);
  in_fresh_thread([] {
    check_conv_parity("num_output: 64 kernel_size: 5 pad: 2", {2, 32, 27, 27});
  });
  cudnn::set_simulated_memory_limit(SIZE_MAX);
}

TEST_F(Gpu, DeterministicModeRepeatsBitForBit) {
  Context::set_deterministic(true);
  for (const std::string type : {"Convolution", "Deconvolution"}) {
    for (const std::string engine : {"CUDNN", "CAFFE"}) {
      SCOPED_TRACE(type + " " + engine);
      Context::set_seed(4);
      Blob bottom({4, 16, 15, 15}), top;
      testing::fill_gaussian(bottom);
      LayerPtr layer = create_layer(testing::layer_param(
          "name: 'conv' type: '" + type + "' convolution_param { num_output: 32 kernel_size: 3 "
          "pad: 1 stride: 2 engine: " + engine + " weight_filler { type: 'gaussian' std: 0.1 } "
          "bias_filler { type: 'gaussian' std: 0.1 } }"));
      layer->setup({&bottom}, {&top});
      std::vector<float> top_diff(top.count());
      rng_gaussian(top.count(), 0, 1, top_diff.data());
      const Pass first = run_pass(*layer, bottom, top, top_diff, Mode::GPU);
      const Pass second = run_pass(*layer, bottom, top, top_diff, Mode::GPU);
      EXPECT_EQ(first.top, second.top);
      EXPECT_EQ(first.bottom_diff, second.bottom_diff);
      EXPECT_EQ(first.weight_diff, second.weight_diff);
      EXPECT_EQ(first.bias_diff, second.bias_diff);
    }
  }
}

TEST_F(Gpu, DropoutMaskRepeatsWithTheSeedAndKeepsTheRatio) {
  const int n = 100000;
  LayerPtr layer = create_layer(testing::layer_param(
      "name: 'd' type: 'Dropout' phase: TRAIN dropout_param { dropout_ratio: 0.3 }"));
  Blob bottom({n}), top;
  bottom.set_data(1.0f);
  layer->setup({&bottom}, {&top});
  auto run = [&](uint64_t seed) {
    Context::set_seed(seed);
    Context::set_mode(Mode::GPU);
    layer->forward({&bottom}, {&top});
    top.set_diff(1.0f);
    layer->backward({&top}, {true}, {&bottom});
    Context::set_mode(Mode::CPU);
    return std::make_pair(testing::data_of(top), testing::diff_of(bottom));
  };
  const auto first = run(7);
  const auto again = run(7);
  const auto other = run(8);
  EXPECT_EQ(first.first, again.first);
  EXPECT_NE(first.first, other.first);
  int dropped = 0;
  for (int i = 0; i < n; ++i) {
    const float y = first.first[i];
    ASSERT_TRUE(y == 0.0f || std::fabs(y - 1.0f / 0.7f) < 1e-6f) << y;
    EXPECT_EQ(first.second[i], y) << "backward's mask differs from forward's at " << i;
    dropped += y == 0.0f;
  }
  EXPECT_NEAR(dropped / double(n), 0.3, 0.01);
}

// STOCHASTIC pooling at TRAIN draws other numbers on the GPU than on the CPU, so instead of
// parity: each output is one of its window's inputs, never one of value 0 (probability 0) while
// the window has others, and backward routes each top gradient to exactly that input.
TEST_F(Gpu, StochasticPoolingPicksAnInputOfItsWindowAndRoutesItsGradientThere) {
  const int num = 2, channels = 3, height = 9, width = 8, kernel = 3, stride = 2;
  LayerPtr layer = create_layer(testing::layer_param(
      "name: 'p' type: 'Pooling' phase: TRAIN pooling_param { pool: STOCHASTIC kernel_size: 3 "
      "stride: 2 }"));
  Blob bottom({num, channels, height, width}), top;
  // Distinct values (37 is prime to the count), so that a value names its input; every fifth
  // is 0, and no window is all zeros.
  const int64_t count = bottom.count();
  float* x = bottom.mutable_cpu_data();
  for (int64_t k = 0; k < count; ++k) {
    x[k] = k % 5 == 0 ? 0.0f : static_cast<float>((k * 37) % count + 1) / count;
  }
  Context::set_mode(Mode::CPU);
  layer->setup({&bottom}, {&top});
  const int pooled_h = top.height(), pooled_w = top.width();
  ASSERT_EQ(pooled_h, 4);
  ASSERT_EQ(pooled_w, 4);
  // Small integers: the routed sums are exact.
  float* dy = top.mutable_cpu_diff();
  for (int64_t i = 0; i < top.count(); ++i) dy[i] = static_cast<float>(i % 7 + 1);
  auto run = [&](uint64_t seed) {
    Context::set_seed(seed);
    Context::set_mode(Mode::GPU);
    layer->forward({&bottom}, {&top});
    layer->backward({&top}, {true}, {&bottom});
    Context::set_mode(Mode::CPU);
    return std::make_pair(testing::data_of(top), testing::diff_of(bottom));
  };
  const auto first = run(3);
  const auto again = run(3);
  EXPECT_EQ(first.first, again.first);
  EXPECT_EQ(first.second, again.second);
  EXPECT_NE(first.first, run(4).first);

  const std::vector<float>& y = first.first;
  std::vector<float> expected_dx(count, 0.0f);
  for (int plane = 0; plane < num * channels; ++plane) {
    const float* in = x + int64_t(plane) * height * width;
    for (int ph = 0; ph < pooled_h; ++ph) {
      for (int pw = 0; pw < pooled_w; ++pw) {
        const int64_t out = (int64_t(plane) * pooled_h + ph) * pooled_w + pw;
        int matches = 0, pick = -1;
        for (int h = ph * stride; h < std::min(ph * stride + kernel, height); ++h) {
          for (int w = pw * stride; w < std::min(pw * stride + kernel, width); ++w) {
            if (in[h * width + w] == y[out]) {
              ++matches;
              pick = h * width + w;
            }
          }
        }
        ASSERT_EQ(matches, 1) << "output " << out << " = " << y[out]
                              << " is no single input of its window";
        EXPECT_NE(y[out], 0.0f) << "output " << out << " picked an input of probability 0";
        expected_dx[int64_t(plane) * height * width + pick] += dy[out];
      }
    }
  }
  EXPECT_EQ(first.second, expected_dx);
}

// The picks follow the values: of windows holding 1 and 3, three in four take the 3.
TEST_F(Gpu, StochasticPoolingPicksInProportionToTheValues) {
  const int planes = 20000;
  LayerPtr layer = create_layer(testing::layer_param(
      "name: 'p' type: 'Pooling' phase: TRAIN pooling_param { pool: STOCHASTIC kernel_h: 1 "
      "kernel_w: 2 stride: 1 }"));
  Blob bottom({1, planes, 1, 2}), top;
  float* x = bottom.mutable_cpu_data();
  for (int i = 0; i < planes; ++i) {
    x[2 * i] = 1.0f;
    x[2 * i + 1] = 3.0f;
  }
  Context::set_mode(Mode::CPU);
  layer->setup({&bottom}, {&top});
  ASSERT_EQ(top.count(), planes);
  Context::set_seed(12);
  Context::set_mode(Mode::GPU);
  layer->forward({&bottom}, {&top});
  Context::set_mode(Mode::CPU);
  const std::vector<float> y = testing::data_of(top);
  const int64_t threes = std::count(y.begin(), y.end(), 3.0f);
  EXPECT_EQ(threes + std::count(y.begin(), y.end(), 1.0f), planes);
  EXPECT_NEAR(threes / double(planes), 0.75, 0.015);
}

// Host<->device copies made so far by these blobs' data and diff.
size_t blob_transfers(const std::vector<const Blob*>& blobs) {
  size_t total = 0;
  for (const Blob* blob : blobs) {
    total += blob->data_memory()->transfers() + blob->diff_memory()->transfers();
  }
  return total;
}

// Without expose_hidden a pass starts from the state the previous one left; on the GPU that
// state stays on the device. Two passes on each device from the same parameters agree (stream 0
// restarts at each pass's first step, stream 1 carries over), and the second GPU pass copies no
// bottom, top or parameter between host and device.
TEST_F(Gpu, RecurrentStateCarriesOverOnTheDevice) {
  for (const char* type : {"RNN", "LSTM"}) {
    SCOPED_TRACE(type);
    Context::set_mode(Mode::CPU);
    Context::set_seed(6);
    Blob x({3, 2, 4}), cont({3, 2}), out;
    testing::fill_gaussian(x);
    const std::vector<float> conts = {0, 1, 1, 1, 1, 1};
    std::copy(conts.begin(), conts.end(), cont.mutable_cpu_data());
    const std::string text = std::string("name: 'r' type: '") + type +
                             "' recurrent_param { num_output: 3 weight_filler { type: 'gaussian' "
                             "std: 0.5 } bias_filler { type: 'gaussian' std: 0.5 } }";
    LayerPtr on_cpu = create_layer(testing::layer_param(text));
    LayerPtr on_gpu = create_layer(testing::layer_param(text));
    on_cpu->setup({&x, &cont}, {&out});
    on_gpu->setup({&x, &cont}, {&out});
    for (size_t i = 0; i < on_cpu->blobs().size(); ++i) {
      Blob& to = *on_gpu->blobs()[i];
      cpu::copy(to.count(), on_cpu->blobs()[i]->cpu_data(), to.mutable_cpu_data());
    }
    rng_gaussian(out.count(), 0, 1, out.mutable_cpu_diff());  // kept by both passes
    auto passes = [&](Layer& layer, Mode mode, size_t* second_pass_transfers) {
      std::vector<const Blob*> watched = {&x, &cont, &out};
      for (const auto& blob : layer.blobs()) watched.push_back(blob.get());
      std::vector<std::vector<float>> results;
      for (int pass = 0; pass < 2; ++pass) {
        const size_t before = blob_transfers(watched);
        Context::set_mode(mode);
        for (auto& blob : layer.blobs()) blob->set_diff(0);
        layer.forward({&x, &cont}, {&out});
        layer.backward({&out}, {true, false}, {&x, &cont});
        Context::set_mode(Mode::CPU);
        *second_pass_transfers = blob_transfers(watched) - before;
        results.push_back(testing::data_of(out));
        results.push_back(testing::diff_of(x));
        for (const auto& blob : layer.blobs()) results.push_back(testing::diff_of(*blob));
      }
      return results;
    };
    size_t cpu_transfers = 0, gpu_transfers = 0;
    const auto cpu = passes(*on_cpu, Mode::CPU, &cpu_transfers);
    const auto gpu = passes(*on_gpu, Mode::GPU, &gpu_transfers);
    ASSERT_EQ(cpu.size(), gpu.size());
    for (size_t i = 0; i < cpu.size(); ++i) {
      expect_close_scaled(cpu[i], gpu[i], "result " + std::to_string(i));
    }
    EXPECT_EQ(gpu_transfers, 0u) << "the second GPU pass copied blobs between host and device";
  }
}

// All host<->device copies made so far by a net's activations and parameters (data and diff).
size_t net_transfers(const Net& net) {
  size_t total = 0;
  for (const auto& blob : net.blobs()) {
    total += blob->data_memory()->transfers() + blob->diff_memory()->transfers();
  }
  for (const auto& blob : net.params()) {
    total += blob->data_memory()->transfers() + blob->diff_memory()->transfers();
  }
  return total;
}

TEST_F(Gpu, NetMakesNoHostRoundTripsAfterWarmUp) {
  NetParameter param;
  parse_text(R"(
    layer { name: 'data' type: 'Input' top: 'data' top: 'label'
            input_param { shape { dim: 4 dim: 3 dim: 20 dim: 20 } shape { dim: 4 } } }
    layer { name: 'conv1' type: 'Convolution' bottom: 'data' top: 'conv1'
            convolution_param { num_output: 8 kernel_size: 5 pad: 2 stride: 1
                                weight_filler { type: 'gaussian' std: 0.1 } } }
    layer { name: 'relu1' type: 'ReLU' bottom: 'conv1' top: 'conv1' }
    layer { name: 'pool1' type: 'Pooling' bottom: 'conv1' top: 'pool1'
            pooling_param { pool: MAX kernel_size: 3 stride: 2 } }
    layer { name: 'norm1' type: 'LRN' bottom: 'pool1' top: 'norm1'
            lrn_param { local_size: 5 alpha: 0.0001 beta: 0.75 } }
    layer { name: 'conv2' type: 'Convolution' bottom: 'norm1' top: 'conv2'
            convolution_param { num_output: 8 kernel_size: 3 pad: 1 group: 2 engine: CAFFE
                                weight_filler { type: 'gaussian' std: 0.1 } } }
    layer { name: 'sig' type: 'Sigmoid' bottom: 'conv2' top: 'conv2' }
    layer { name: 'up' type: 'Deconvolution' bottom: 'conv2' top: 'up'
            convolution_param { num_output: 4 kernel_size: 2 stride: 2
                                weight_filler { type: 'gaussian' std: 0.1 } } }
    layer { name: 'pool2' type: 'Pooling' bottom: 'up' top: 'pool2'
            pooling_param { pool: AVE kernel_size: 3 stride: 2 } }
    layer { name: 'fc1' type: 'InnerProduct' bottom: 'pool2' top: 'fc1'
            inner_product_param { num_output: 16 weight_filler { type: 'gaussian' std: 0.1 } } }
    layer { name: 'tanh' type: 'TanH' bottom: 'fc1' top: 'fc1' }
    layer { name: 'drop' type: 'Dropout' bottom: 'fc1' top: 'fc1' }
    layer { name: 'fc2' type: 'InnerProduct' bottom: 'fc1' top: 'fc2'
            inner_product_param { num_output: 5 weight_filler { type: 'gaussian' std: 0.1 } } }
    layer { name: 'loss' type: 'SoftmaxWithLoss' bottom: 'fc2' bottom: 'label' top: 'loss' }
  )", "<gpu net>", &param);
  param.mutable_state()->set_phase(TRAIN);
  Context::set_mode(Mode::CPU);
  Context::set_seed(9);
  Net net(param);
  testing::fill_gaussian(*net.input_blobs()[0]);
  float* labels = net.input_blobs()[1]->mutable_cpu_data();
  for (int i = 0; i < 4; ++i) labels[i] = static_cast<float>(i % 5);

  Context::set_mode(Mode::GPU);
  net.clear_param_diffs();
  const float warm_loss = net.forward_backward();
  const size_t after_warm_up = net_transfers(net);
  net.clear_param_diffs();
  const float loss = net.forward_backward();
  EXPECT_EQ(net_transfers(net), after_warm_up)
      << "a forward+backward pass on the GPU copied blobs between host and device";
  EXPECT_TRUE(std::isfinite(warm_loss));
  EXPECT_TRUE(std::isfinite(loss));
}

#endif  // ENGINE_USE_CUDA

}  // namespace
}  // namespace engine
