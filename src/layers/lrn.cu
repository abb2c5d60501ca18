// CUDA kernels of LRN (lrn.cpp) for what cuDNN does not do: WITHIN_CHANNEL, and ACROSS_CHANNELS
// outside cuDNN's parameter range or with engine: CAFFE. One thread per element sums its window
// directly: at most local_size (across) or local_size^2 (within) terms.
#include <cuda_runtime.h>

#include "core/errors.hpp"
#include "layers/gpu_kernels.hpp"
#include "math/cuda_kernel.cuh"

namespace engine {
namespace gpu {
namespace {

struct LrnShape {
  int channels, height, width, size;
};

// The window sum around element `index` of f(i) over the channel window (across) or the plane
// box (within), zero outside the blob.
template <class F>
__device__ float window_sum(bool across, const LrnShape& s, int64_t index, F f) {
  const int pad = (s.size - 1) / 2;
  const int64_t plane = int64_t(s.height) * s.width;
  const int64_t in_plane = index % plane;
  const int c = static_cast<int>((index / plane) % s.channels);
  float sum = 0;
  if (across) {
    const int64_t base = index - c * plane;  // channel 0 of this sample, same pixel
    const int c0 = max(c - pad, 0), c1 = min(c + pad, s.channels - 1);
    for (int cc = c0; cc <= c1; ++cc) sum += f(base + cc * plane);
  } else {
    const int h = static_cast<int>(in_plane / s.width), w = static_cast<int>(in_plane % s.width);
    const int64_t base = index - in_plane;
    const int h0 = max(h - pad, 0), h1 = min(h + pad, s.height - 1);
    const int w0 = max(w - pad, 0), w1 = min(w + pad, s.width - 1);
    for (int hh = h0; hh <= h1; ++hh) {
      for (int ww = w0; ww <= w1; ++ww) sum += f(base + int64_t(hh) * s.width + ww);
    }
  }
  return sum;
}

__global__ void lrn_forward_kernel(int64_t n, bool across, LrnShape s, float coefficient, float k,
                                   float beta, const float* x, float* scale, float* y) {
  ENGINE_CUDA_KERNEL_LOOP(i, n) {
    const float squares = window_sum(across, s, i, [x](int64_t j) { return x[j] * x[j]; });
    const float bracket = k + coefficient * squares;
    scale[i] = bracket;
    y[i] = x[i] * powf(bracket, -beta);
  }
}

__global__ void lrn_ratio_kernel(int64_t n, const float* dy, const float* y, const float* scale,
                                 float* ratio) {
  ENGINE_CUDA_KERNEL_LOOP(i, n) { ratio[i] = dy[i] * y[i] / scale[i]; }
}

__global__ void lrn_backward_kernel(int64_t n, bool across, LrnShape s, float beta, float cross,
                                    const float* x, const float* dy, const float* scale,
                                    const float* ratio, float* dx) {
  ENGINE_CUDA_KERNEL_LOOP(i, n) {
    const float sum = window_sum(across, s, i, [ratio](int64_t j) { return ratio[j]; });
    dx[i] = dy[i] * powf(scale[i], -beta) - cross * x[i] * sum;
  }
}

}  // namespace

void lrn_forward(bool across, int num, int channels, int height, int width, int size,
                 float coefficient, float k, float beta, const float* x, float* scale, float* y) {
  const int64_t n = int64_t(num) * channels * height * width;
  if (n <= 0) return;
  lrn_forward_kernel<<<cuda_blocks(n), kCudaThreads>>>(
      n, across, LrnShape{channels, height, width, size}, coefficient, k, beta, x, scale, y);
  ENGINE_CUDA_CHECK(cudaPeekAtLastError());
}

void lrn_backward(bool across, int num, int channels, int height, int width, int size, float beta,
                  float cross, const float* x, const float* y, const float* dy,
                  const float* scale, float* ratio, float* dx) {
  const int64_t n = int64_t(num) * channels * height * width;
  if (n <= 0) return;
  lrn_ratio_kernel<<<cuda_blocks(n), kCudaThreads>>>(n, dy, y, scale, ratio);
  ENGINE_CUDA_CHECK(cudaPeekAtLastError());
  lrn_backward_kernel<<<cuda_blocks(n), kCudaThreads>>>(
      n, across, LrnShape{channels, height, width, size}, beta, cross, x, dy, scale, ratio, dx);
  ENGINE_CUDA_CHECK(cudaPeekAtLastError());
}

}  // namespace gpu
}  // namespace engine
