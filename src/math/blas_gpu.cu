#include "math/blas.hpp"

#include <cublas_v2.h>
#include <cuda_runtime.h>

#include "core/context.hpp"
#include "core/errors.hpp"
#include "math/cuda_kernel.cuh"

namespace engine {
namespace gpu {

// cuBLAS is column-major: a row-major C = op(A) op(B) is the column-major C^T = op(B)^T op(A)^T.
void gemm(bool transpose_a, bool transpose_b, int M, int N, int K, float alpha, const float* A,
          const float* B, float beta, float* C) {
  if (M == 0 || N == 0) return;
  // cuBLAS rejects the zero leading dimensions of an empty product (OpenBLAS accepts them).
  if (K == 0) return beta == 0 ? set(int64_t(M) * N, 0.0f, C) : scale(int64_t(M) * N, beta, C);
  const int lda = transpose_a ? M : K;
  const int ldb = transpose_b ? K : N;
  ENGINE_CUBLAS_CHECK(cublasSgemm(Context::cublas(), transpose_b ? CUBLAS_OP_T : CUBLAS_OP_N,
                                  transpose_a ? CUBLAS_OP_T : CUBLAS_OP_N, N, M, K, &alpha, B,
                                  ldb, A, lda, &beta, C, N));
}

void gemv(bool transpose_a, int M, int N, float alpha, const float* A, const float* x, float beta,
          float* y) {
  const int outputs = transpose_a ? N : M;
  if (outputs == 0) return;
  if (M == 0 || N == 0) return beta == 0 ? set(outputs, 0.0f, y) : scale(outputs, beta, y);
  ENGINE_CUBLAS_CHECK(cublasSgemv(Context::cublas(), transpose_a ? CUBLAS_OP_N : CUBLAS_OP_T, N, M,
                                  &alpha, A, N, x, 1, &beta, y, 1));
}

void axpy(int64_t n, float alpha, const float* x, float* y) {
  ENGINE_CUBLAS_CHECK(cublasSaxpy_64(Context::cublas(), n, &alpha, x, 1, y, 1));
}

void scale(int64_t n, float alpha, float* x) {
  ENGINE_CUBLAS_CHECK(cublasSscal_64(Context::cublas(), n, &alpha, x, 1));
}

void axpby(int64_t n, float alpha, const float* x, float beta, float* y) {
  scale(n, beta, y);
  axpy(n, alpha, x, y);
}

void copy(int64_t n, const float* x, float* y) {
  if (x != y) ENGINE_CUDA_CHECK(cudaMemcpyAsync(y, x, sizeof(float) * n, cudaMemcpyDeviceToDevice));
}

__global__ void set_kernel(int64_t n, float value, float* x) {
  ENGINE_CUDA_KERNEL_LOOP(i, n) { x[i] = value; }
}

void set(int64_t n, float value, float* x) {
  if (value == 0.0f) {
    ENGINE_CUDA_CHECK(cudaMemsetAsync(x, 0, sizeof(float) * n));
    return;
  }
  set_kernel<<<cuda_blocks(n), kCudaThreads>>>(n, value, x);
  ENGINE_CUDA_CHECK(cudaPeekAtLastError());
}

double dot(int64_t n, const float* x, const float* y) {
  float result = 0;
  ENGINE_CUBLAS_CHECK(cublasSdot_64(Context::cublas(), n, x, 1, y, 1, &result));
  return result;
}

double asum(int64_t n, const float* x) {
  float result = 0;
  ENGINE_CUBLAS_CHECK(cublasSasum_64(Context::cublas(), n, x, 1, &result));
  return result;
}

}  // namespace gpu
}  // namespace engine
