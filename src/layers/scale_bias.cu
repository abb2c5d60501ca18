// Scale and Bias on the GPU: the broadcast kernels over the [outer][dim][inner] view and the
// operand gradients through the shared per-channel reduction.
#include <cuda_runtime.h>

#include "core/errors.hpp"
#include "math/cuda_kernel.cuh"
#include "math/cuda_reduce.cuh"

namespace engine {
namespace {

// y[k] = x[k] * scale[d], d = (k / inner) % dim; y may be x.
__global__ void broadcast_multiply_kernel(int64_t n, int64_t dim, int64_t inner, const float* x,
                                          const float* scale, float* y) {
  ENGINE_CUDA_KERNEL_LOOP(k, n) { y[k] = x[k] * scale[(k / inner) % dim]; }
}

// y[k] = x[k] + bias[d]; y may be x.
__global__ void broadcast_add_kernel(int64_t n, int64_t dim, int64_t inner, const float* x,
                                     const float* bias, float* y) {
  ENGINE_CUDA_KERNEL_LOOP(k, n) { y[k] = x[k] + bias[(k / inner) % dim]; }
}

}  // namespace

void broadcast_multiply_gpu(int64_t outer, int64_t dim, int64_t inner, const float* x,
                            const float* scale, float* y) {
  const int64_t n = outer * dim * inner;
  if (n == 0) return;
  broadcast_multiply_kernel<<<cuda_blocks(n), kCudaThreads>>>(n, dim, inner, x, scale, y);
  ENGINE_CUDA_CHECK(cudaPeekAtLastError());
}

void broadcast_add_gpu(int64_t outer, int64_t dim, int64_t inner, const float* x,
                       const float* bias, float* y) {
  const int64_t n = outer * dim * inner;
  if (n == 0) return;
  broadcast_add_kernel<<<cuda_blocks(n), kCudaThreads>>>(n, dim, inner, x, bias, y);
  ENGINE_CUDA_CHECK(cudaPeekAtLastError());
}

void reduce_to_operand_gpu(int64_t outer, int64_t dim, int64_t inner, const float* a,
                           const float* b, bool accumulate, float* out) {
  const float beta = accumulate ? 1.0f : 0.0f;
  if (b) {
    reduce_planes(outer, dim, inner, TermProduct{a, b}, 1.0f, beta, out);
  } else {
    reduce_planes(outer, dim, inner, TermOf{a}, 1.0f, beta, out);
  }
}

}  // namespace engine
