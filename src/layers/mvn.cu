// MVN on the GPU: the per-group sums of the CPU path (in double, rounded to float) by
// reduce_planes, and elementwise kernels that evaluate the CPU's float expressions.
#include <cuda_runtime.h>

#include <cmath>
#include <cstdint>

#include "core/errors.hpp"
#include "math/cuda_kernel.cuh"
#include "math/cuda_reduce.cuh"

namespace engine {
namespace {

// y = x - sum * inverse_dim; in place allowed.
__global__ void subtract_mean_kernel(int64_t n, int64_t dim, float inverse_dim, const float* x,
                                     const float* sums, float* y) {
  ENGINE_CUDA_KERNEL_LOOP(k, n) { y[k] = x[k] - sums[k / dim] * inverse_dim; }
}

__global__ void deviation_kernel(int64_t groups, float inverse_dim, float eps,
                                 const float* squares, float* deviation) {
  ENGINE_CUDA_KERNEL_LOOP(g, groups) { deviation[g] = sqrtf(squares[g] * inverse_dim) + eps; }
}

__global__ void divide_kernel(int64_t n, int64_t dim, const float* deviation, float* y) {
  ENGINE_CUDA_KERNEL_LOOP(k, n) { y[k] /= deviation[k / dim]; }
}

// dx = (dy + scale * (y * y_dy + sum_dy)) / deviation; dx may be dy.
__global__ void normalized_backward_kernel(int64_t n, int64_t dim, float scale, const float* y,
                                           const float* dy, const float* y_dy,
                                           const float* sum_dy, const float* deviation,
                                           float* dx) {
  ENGINE_CUDA_KERNEL_LOOP(k, n) {
    const int64_t g = k / dim;
    dx[k] = (dy[k] + scale * (y[k] * y_dy[g] + sum_dy[g])) / deviation[g];
  }
}

}  // namespace

void mvn_forward_gpu(int64_t groups, int64_t dim, bool normalize, float eps, const float* x,
                     float* y, float* sums, float* deviation) {
  const int64_t n = groups * dim;
  if (n == 0) return;
  const float inverse_dim = static_cast<float>(1.0 / dim);
  reduce_planes(1, groups, dim, TermOf{x}, 1.0f, 0.0f, sums);
  subtract_mean_kernel<<<cuda_blocks(n), kCudaThreads>>>(n, dim, inverse_dim, x, sums, y);
  ENGINE_CUDA_CHECK(cudaPeekAtLastError());
  if (!normalize) return;
  reduce_planes(1, groups, dim, TermProduct{y, y}, 1.0f, 0.0f, sums);
  deviation_kernel<<<cuda_blocks(groups), kCudaThreads>>>(groups, inverse_dim, eps, sums,
                                                          deviation);
  ENGINE_CUDA_CHECK(cudaPeekAtLastError());
  divide_kernel<<<cuda_blocks(n), kCudaThreads>>>(n, dim, deviation, y);
  ENGINE_CUDA_CHECK(cudaPeekAtLastError());
}

void mvn_backward_gpu(int64_t groups, int64_t dim, bool normalize, const float* y,
                      const float* dy, const float* deviation, float* sums, float* dx) {
  const int64_t n = groups * dim;
  if (n == 0) return;
  if (!normalize) {
    reduce_planes(1, groups, dim, TermOf{dy}, 1.0f, 0.0f, sums);
    subtract_mean_kernel<<<cuda_blocks(n), kCudaThreads>>>(n, dim, static_cast<float>(1.0 / dim),
                                                           dy, sums, dx);
    ENGINE_CUDA_CHECK(cudaPeekAtLastError());
    return;
  }
  float* y_dy = sums;
  float* sum_dy = sums + groups;
  reduce_planes(1, groups, dim, TermProduct{y, dy}, 1.0f, 0.0f, y_dy);
  reduce_planes(1, groups, dim, TermOf{dy}, 1.0f, 0.0f, sum_dy);
  const float scale = -1.0f / static_cast<float>(dim);
  normalized_backward_kernel<<<cuda_blocks(n), kCudaThreads>>>(n, dim, scale, y, dy, y_dy, sum_dy,
                                                               deviation, dx);
  ENGINE_CUDA_CHECK(cudaPeekAtLastError());
}

}  // namespace engine
