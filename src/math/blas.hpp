// The BLAS front and the elementwise primitives every layer builds on, on the CPU (namespace
// cpu, OpenBLAS and plain loops the compiler vectorizes) and on the GPU (namespace gpu, cuBLAS
// and CUDA kernels in blas_gpu.cu). Matrices are row-major, as blobs are laid out.
#pragma once

#include <cstdint>

namespace engine {
namespace cpu {

// C = alpha * op(A) * op(B) + beta * C, where op(A) is M x K and op(B) is K x N.
void gemm(bool transpose_a, bool transpose_b, int M, int N, int K, float alpha, const float* A,
          const float* B, float beta, float* C);
// y = alpha * op(A) * x + beta * y, where A is M x N.
void gemv(bool transpose_a, int M, int N, float alpha, const float* A, const float* x, float beta,
          float* y);

void axpy(int64_t n, float alpha, const float* x, float* y);           // y += alpha x
void axpby(int64_t n, float alpha, const float* x, float beta, float* y);  // y = alpha x + beta y
void scale(int64_t n, float alpha, float* x);                          // x *= alpha
void scale(int64_t n, float alpha, const float* x, float* y);          // y = alpha x
void copy(int64_t n, const float* x, float* y);
void set(int64_t n, float value, float* x);
double dot(int64_t n, const float* x, const float* y);
double asum(int64_t n, const float* x);
double sum(int64_t n, const float* x);
// Whether no element is NaN or infinite.
bool all_finite(int64_t n, const float* x);

void add(int64_t n, const float* a, const float* b, float* y);  // y = a + b
void sub(int64_t n, const float* a, const float* b, float* y);  // y = a - b
void mul(int64_t n, const float* a, const float* b, float* y);  // y = a * b
void div(int64_t n, const float* a, const float* b, float* y);  // y = a / b
void add_scalar(int64_t n, float alpha, float* y);             // y += alpha
void sqr(int64_t n, const float* a, float* y);
void powx(int64_t n, const float* a, float exponent, float* y);
void exp(int64_t n, const float* a, float* y);

}  // namespace cpu

#ifdef ENGINE_USE_CUDA
namespace gpu {

void gemm(bool transpose_a, bool transpose_b, int M, int N, int K, float alpha, const float* A,
          const float* B, float beta, float* C);
void gemv(bool transpose_a, int M, int N, float alpha, const float* A, const float* x, float beta,
          float* y);
void axpy(int64_t n, float alpha, const float* x, float* y);
void axpby(int64_t n, float alpha, const float* x, float beta, float* y);
void scale(int64_t n, float alpha, float* x);
void copy(int64_t n, const float* x, float* y);
void set(int64_t n, float value, float* x);
double dot(int64_t n, const float* x, const float* y);
double asum(int64_t n, const float* x);

// elementwise_gpu.cu: the elementwise primitives of namespace cpu, as kernels.
void scale(int64_t n, float alpha, const float* x, float* y);  // y = alpha x
void add(int64_t n, const float* a, const float* b, float* y);
void sub(int64_t n, const float* a, const float* b, float* y);
void mul(int64_t n, const float* a, const float* b, float* y);
void div(int64_t n, const float* a, const float* b, float* y);
// Copies `rows` rows of `width` floats from x (rows x_stride floats apart) to y (y_stride apart).
void copy_rows(int64_t rows, int64_t width, const float* x, int64_t x_stride, float* y,
               int64_t y_stride);
// Sets *flag (device memory) to 1 if any of x[0, n) is NaN or infinite; leaves it otherwise.
void flag_non_finite(int64_t n, const float* x, float* flag);

}  // namespace gpu
#endif

}  // namespace engine
