// BatchNorm on the GPU, every step on the device (the running statistics and the normaliser
// included, so no value crosses to the host). `statistics` holds five rows of `channels` floats:
// mean, variance, stddev (all three from forward, for backward), then backward's mean(dy) and
// mean(dy * y).
#include <cuda_runtime.h>

#include <cmath>

#include "core/errors.hpp"
#include "math/cuda_kernel.cuh"
#include "math/cuda_reduce.cuh"

namespace engine {
namespace {

__global__ void global_statistics_kernel(int channels, const float* mean_sum,
                                         const float* variance_sum, const float* normaliser,
                                         float eps, float* statistics) {
  const float factor = normaliser[0] == 0 ? 0.0f : 1 / normaliser[0];
  ENGINE_CUDA_KERNEL_LOOP(c, channels) {
    const float variance = factor * variance_sum[c];
    statistics[c] = factor * mean_sum[c];
    statistics[channels + c] = variance;
    statistics[2 * channels + c] = sqrtf(variance + eps);
  }
}

// The running sums (Caffe's axpby: alpha x + beta y), the normaliser, and the stddev.
__global__ void update_statistics_kernel(int channels, float fraction, float correction,
                                         float eps, float* mean_sum, float* variance_sum,
                                         float* normaliser, float* statistics) {
  ENGINE_CUDA_KERNEL_LOOP(c, channels) {
    const float mean = statistics[c];
    const float variance = statistics[channels + c];
    mean_sum[c] = 1.0f * mean + fraction * mean_sum[c];
    variance_sum[c] = correction * variance + fraction * variance_sum[c];
    statistics[2 * channels + c] = sqrtf(variance + eps);
    if (c == 0) normaliser[0] = normaliser[0] * fraction + 1;
  }
}

__global__ void center_kernel(int64_t n, int channels, int64_t spatial, const float* x,
                              const float* mean, float* y) {
  ENGINE_CUDA_KERNEL_LOOP(k, n) { y[k] = x[k] - mean[(k / spatial) % channels]; }
}

// y /= stddev, keeping a copy for backward when `kept` is given.
__global__ void divide_kernel(int64_t n, int channels, int64_t spatial, const float* stddev,
                              float* y, float* kept) {
  ENGINE_CUDA_KERNEL_LOOP(k, n) {
    const float v = y[k] / stddev[(k / spatial) % channels];
    y[k] = v;
    if (kept) kept[k] = v;
  }
}

__global__ void global_backward_kernel(int64_t n, int channels, int64_t spatial,
                                       const float* dy, const float* stddev, float* dx) {
  ENGINE_CUDA_KERNEL_LOOP(k, n) { dx[k] = dy[k] / stddev[(k / spatial) % channels]; }
}

__global__ void batch_backward_kernel(int64_t n, int channels, int64_t spatial, const float* dy,
                                      const float* y, const float* statistics, float* dx) {
  ENGINE_CUDA_KERNEL_LOOP(k, n) {
    const int64_t c = (k / spatial) % channels;
    const float mean_dy = statistics[3 * channels + c];
    const float mean_dy_y = statistics[4 * channels + c];
    dx[k] = (dy[k] - mean_dy - mean_dy_y * y[k]) / statistics[2 * channels + c];
  }
}

void check_launch() { ENGINE_CUDA_CHECK(cudaPeekAtLastError()); }

}  // namespace

void batch_norm_forward_gpu(int num, int channels, int64_t spatial, const float* x, float* y,
                            float* normalized, bool use_global_stats, float fraction, float eps,
                            float* mean_sum, float* variance_sum, float* normaliser,
                            float* statistics) {
  const int64_t n = int64_t(num) * channels * spatial;
  const int64_t per_channel = int64_t(num) * spatial;
  const int channel_blocks = cuda_blocks(channels);
  if (use_global_stats) {
    global_statistics_kernel<<<channel_blocks, kCudaThreads>>>(channels, mean_sum, variance_sum,
                                                               normaliser, eps, statistics);
    check_launch();
  } else {
    const float inverse = per_channel == 0 ? 0.0f : static_cast<float>(1.0 / per_channel);
    reduce_planes(num, channels, spatial, TermOf{x}, inverse, 0.0f, statistics);
  }
  if (n > 0) {
    center_kernel<<<cuda_blocks(n), kCudaThreads>>>(n, channels, spatial, x, statistics, y);
    check_launch();
  }
  if (!use_global_stats) {
    const float inverse = per_channel == 0 ? 0.0f : static_cast<float>(1.0 / per_channel);
    reduce_planes(num, channels, spatial, TermProduct{y, y}, inverse, 0.0f,
                  statistics + channels);
    // The stored variance is the unbiased estimate over the m values of each channel.
    const float correction = per_channel > 1
                                 ? static_cast<float>(double(per_channel) / (per_channel - 1))
                                 : 1.0f;
    update_statistics_kernel<<<channel_blocks, kCudaThreads>>>(
        channels, fraction, correction, eps, mean_sum, variance_sum, normaliser, statistics);
    check_launch();
  }
  if (n > 0) {
    divide_kernel<<<cuda_blocks(n), kCudaThreads>>>(n, channels, spatial,
                                                    statistics + 2 * channels, y, normalized);
    check_launch();
  }
}

void batch_norm_backward_gpu(int num, int channels, int64_t spatial, const float* dy,
                             const float* normalized, bool use_global_stats, float* statistics,
                             float* dx) {
  const int64_t n = int64_t(num) * channels * spatial;
  if (n == 0) return;
  if (use_global_stats) {
    global_backward_kernel<<<cuda_blocks(n), kCudaThreads>>>(n, channels, spatial, dy,
                                                             statistics + 2 * channels, dx);
    check_launch();
    return;
  }
  const int64_t per_channel = int64_t(num) * spatial;
  const float inverse = static_cast<float>(1.0 / per_channel);
  reduce_planes(num, channels, spatial, TermOf{dy}, inverse, 0.0f, statistics + 3 * channels);
  reduce_planes(num, channels, spatial, TermProduct{dy, normalized}, inverse, 0.0f,
                statistics + 4 * channels);
  batch_backward_kernel<<<cuda_blocks(n), kCudaThreads>>>(n, channels, spatial, dy, normalized,
                                                          statistics, dx);
  check_launch();
}

}  // namespace engine
