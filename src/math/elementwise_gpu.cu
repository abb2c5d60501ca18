// The elementwise primitives of blas.hpp's namespace gpu that cuBLAS lacks.
#include <cuda_runtime.h>

#include <cmath>

#include "core/errors.hpp"
#include "math/blas.hpp"
#include "math/cuda_kernel.cuh"

namespace engine {
namespace gpu {
namespace {

struct Add {
  __device__ float operator()(float a, float b) const { return a + b; }
};
struct Sub {
  __device__ float operator()(float a, float b) const { return a - b; }
};
struct Mul {
  __device__ float operator()(float a, float b) const { return a * b; }
};
struct Div {
  __device__ float operator()(float a, float b) const { return a / b; }
};

template <class F>
__global__ void binary_kernel(int64_t n, const float* a, const float* b, float* y, F f) {
  ENGINE_CUDA_KERNEL_LOOP(i, n) { y[i] = f(a[i], b[i]); }
}

template <class F>
void binary(int64_t n, const float* a, const float* b, float* y, F f) {
  if (n == 0) return;
  binary_kernel<<<cuda_blocks(n), kCudaThreads>>>(n, a, b, y, f);
  ENGINE_CUDA_CHECK(cudaPeekAtLastError());
}

__global__ void scale_kernel(int64_t n, float alpha, const float* x, float* y) {
  ENGINE_CUDA_KERNEL_LOOP(i, n) { y[i] = alpha * x[i]; }
}

__global__ void flag_non_finite_kernel(int64_t n, const float* x, float* flag) {
  ENGINE_CUDA_KERNEL_LOOP(i, n) {
    if (!isfinite(x[i])) *flag = 1;  // every writer writes the same value
  }
}

}  // namespace

void scale(int64_t n, float alpha, const float* x, float* y) {
  if (n == 0) return;
  scale_kernel<<<cuda_blocks(n), kCudaThreads>>>(n, alpha, x, y);
  ENGINE_CUDA_CHECK(cudaPeekAtLastError());
}

void add(int64_t n, const float* a, const float* b, float* y) { binary(n, a, b, y, Add()); }
void sub(int64_t n, const float* a, const float* b, float* y) { binary(n, a, b, y, Sub()); }
void mul(int64_t n, const float* a, const float* b, float* y) { binary(n, a, b, y, Mul()); }
void div(int64_t n, const float* a, const float* b, float* y) { binary(n, a, b, y, Div()); }

void copy_rows(int64_t rows, int64_t width, const float* x, int64_t x_stride, float* y,
               int64_t y_stride) {
  if (rows == 0 || width == 0) return;
  ENGINE_CUDA_CHECK(cudaMemcpy2DAsync(y, sizeof(float) * y_stride, x, sizeof(float) * x_stride,
                                      sizeof(float) * width, rows, cudaMemcpyDeviceToDevice));
}

void flag_non_finite(int64_t n, const float* x, float* flag) {
  if (n == 0) return;
  flag_non_finite_kernel<<<cuda_blocks(n), kCudaThreads>>>(n, x, flag);
  ENGINE_CUDA_CHECK(cudaPeekAtLastError());
}

}  // namespace gpu
}  // namespace engine
