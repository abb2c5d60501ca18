// CUDA kernels of the elementwise activations (activations.cpp): ReLU, Sigmoid, TanH, Dropout.
#include <cuda_runtime.h>

#include "core/errors.hpp"
#include "layers/gpu_kernels.hpp"
#include "math/cuda_kernel.cuh"

namespace engine {
namespace gpu {
namespace {

__global__ void relu_forward_kernel(int64_t n, const float* x, float* y, float slope) {
  ENGINE_CUDA_KERNEL_LOOP(i, n) {
    const float v = x[i];
    y[i] = v > 0 ? v : slope * v;
  }
}

// As on the CPU, the slope at x == 0 is the negative side's.
__global__ void relu_backward_kernel(int64_t n, const float* dy, const float* x, float* dx,
                                     float slope) {
  ENGINE_CUDA_KERNEL_LOOP(i, n) { dx[i] = x[i] > 0 ? dy[i] : slope * dy[i]; }
}

__global__ void sigmoid_forward_kernel(int64_t n, const float* x, float* y) {
  ENGINE_CUDA_KERNEL_LOOP(i, n) { y[i] = 1.0f / (1.0f + expf(-x[i])); }
}

__global__ void sigmoid_backward_kernel(int64_t n, const float* dy, const float* y, float* dx) {
  ENGINE_CUDA_KERNEL_LOOP(i, n) {
    const float v = y[i];
    dx[i] = dy[i] * v * (1.0f - v);
  }
}

__global__ void tanh_forward_kernel(int64_t n, const float* x, float* y) {
  ENGINE_CUDA_KERNEL_LOOP(i, n) { y[i] = tanhf(x[i]); }
}

__global__ void tanh_backward_kernel(int64_t n, const float* dy, const float* y, float* dx) {
  ENGINE_CUDA_KERNEL_LOOP(i, n) {
    const float v = y[i];
    dx[i] = dy[i] * (1.0f - v * v);
  }
}

// SplitMix64's output function at position `index` of the stream `seed`: a counter-based
// generator, so any element's draw is computed without the others'.
__device__ uint32_t hash_draw(uint64_t seed, uint64_t index) {
  uint64_t z = seed + (index + 1) * 0x9E3779B97F4A7C15ull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  z ^= z >> 31;
  return static_cast<uint32_t>(z >> 32);
}

__global__ void dropout_kernel(int64_t n, const float* x, float* y, uint64_t seed,
                               uint32_t threshold, float scale) {
  ENGINE_CUDA_KERNEL_LOOP(i, n) {
    y[i] = hash_draw(seed, static_cast<uint64_t>(i)) >= threshold ? x[i] * scale : 0.0f;
  }
}

}  // namespace

#define ENGINE_LAUNCH(kernel, n, ...)                                   \
  do {                                                                  \
    if ((n) <= 0) return;                                               \
    kernel<<<cuda_blocks(n), kCudaThreads>>>((n), __VA_ARGS__);         \
    ENGINE_CUDA_CHECK(cudaPeekAtLastError());                           \
  } while (0)

void relu_forward(int64_t n, const float* x, float* y, float negative_slope) {
  ENGINE_LAUNCH(relu_forward_kernel, n, x, y, negative_slope);
}
void relu_backward(int64_t n, const float* dy, const float* x, float* dx, float negative_slope) {
  ENGINE_LAUNCH(relu_backward_kernel, n, dy, x, dx, negative_slope);
}
void sigmoid_forward(int64_t n, const float* x, float* y) {
  ENGINE_LAUNCH(sigmoid_forward_kernel, n, x, y);
}
void sigmoid_backward(int64_t n, const float* dy, const float* y, float* dx) {
  ENGINE_LAUNCH(sigmoid_backward_kernel, n, dy, y, dx);
}
void tanh_forward(int64_t n, const float* x, float* y) { ENGINE_LAUNCH(tanh_forward_kernel, n, x, y); }
void tanh_backward(int64_t n, const float* dy, const float* y, float* dx) {
  ENGINE_LAUNCH(tanh_backward_kernel, n, dy, y, dx);
}
void dropout(int64_t n, const float* x, float* y, uint64_t seed, uint32_t threshold, float scale) {
  ENGINE_LAUNCH(dropout_kernel, n, x, y, seed, threshold, scale);
}

#undef ENGINE_LAUNCH

}  // namespace gpu
}  // namespace engine
