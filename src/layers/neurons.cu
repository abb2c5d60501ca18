// PReLU's CUDA kernels (the other layers of neurons.cpp run the generic elementwise kernel).
#include <cuda_runtime.h>

#include "core/errors.hpp"
#include "layers/elementwise_ops.hpp"
#include "math/cuda_kernel.cuh"
#include "math/cuda_reduce.cuh"

namespace engine {
namespace {

// Element i of an [N][channels][dim] blob uses slope (i / dim) % channels, or slope 0 when the
// slope is shared (channels passed as 1).
__global__ void prelu_forward_kernel(int64_t count, int64_t channels, int64_t dim,
                                     const float* x, const float* slopes, float* y) {
  ENGINE_CUDA_KERNEL_LOOP(i, count) {
    const float a = slopes[(i / dim) % channels];
    const float v = x[i];
    y[i] = max_of(v, 0.0f) + a * min_of(v, 0.0f);
  }
}

__global__ void prelu_backward_kernel(int64_t count, int64_t channels, int64_t dim,
                                      const float* x, const float* dy, const float* slopes,
                                      float* dx) {
  ENGINE_CUDA_KERNEL_LOOP(i, count) {
    const float a = slopes[(i / dim) % channels];
    const float v = x[i];
    dx[i] = dy[i] * ((v > 0) + a * (v <= 0));
  }
}

struct SlopeTerm {  // dy x where x <= 0
  const float* x;
  const float* dy;
  __device__ double operator()(int64_t k) const { return x[k] <= 0 ? double(dy[k]) * x[k] : 0.0; }
};

}  // namespace

void prelu_forward_gpu(int64_t count, int64_t channels, int64_t dim, const float* x,
                       const float* slopes, float* y) {
  if (count == 0) return;
  prelu_forward_kernel<<<cuda_blocks(count), kCudaThreads>>>(count, channels, dim, x, slopes, y);
  ENGINE_CUDA_CHECK(cudaPeekAtLastError());
}

void prelu_backward_gpu(int64_t count, int64_t channels, int64_t dim, const float* x,
                        const float* dy, const float* slopes, float* dx) {
  if (count == 0) return;
  prelu_backward_kernel<<<cuda_blocks(count), kCudaThreads>>>(count, channels, dim, x, dy, slopes,
                                                              dx);
  ENGINE_CUDA_CHECK(cudaPeekAtLastError());
}

void prelu_slope_gradient_gpu(int64_t num, int64_t channels, int64_t dim, const float* x,
                              const float* dy, float* slope_diff) {
  reduce_planes(num, channels, dim, SlopeTerm{x, dy}, 1.0f, 1.0f, slope_diff);
}

}  // namespace engine
