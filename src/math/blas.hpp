// The BLAS front and the elementwise primitives every layer builds on, on the CPU (namespace
// cpu, OpenBLAS and plain loops the compiler vectorizes) and on the GPU (namespace gpu, cuBLAS
// and CUDA kernels in blas_gpu.cu), and namespace math, which calls one or the other according
// to Context::mode(). Matrices are row-major, as blobs are laid out.
//
// Code whose algorithm is the same on both devices is written once with math:: and the
// mode-aware Blob accessors (data(), mutable_diff(), ...); code that holds cpu_data() pointers
// calls cpu::, code that holds gpu_data() pointers calls gpu::. Hot CPU loops and kernels keep
// calling their own side directly.
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
// Copies `rows` rows of `width` floats from x (rows x_stride floats apart) to y (y_stride apart).
void copy_rows(int64_t rows, int64_t width, const float* x, int64_t x_stride, float* y,
               int64_t y_stride);
void add_scalar(int64_t n, float alpha, float* y);             // y += alpha
void clamp(int64_t n, float low, float high, float* y);        // y = min(max(y, low), high)
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
void copy_rows(int64_t rows, int64_t width, const float* x, int64_t x_stride, float* y,
               int64_t y_stride);
// Sets *flag (device memory) to 1 if any of x[0, n) is NaN or infinite; leaves it otherwise.
void flag_non_finite(int64_t n, const float* x, float* flag);

}  // namespace gpu
#endif

namespace math {

// Whether the current Context mode computes on the GPU.
bool on_gpu();

// ENGINE_ON_DEVICE(f(args)) calls gpu::f(args) in GPU mode and cpu::f(args) otherwise (always
// cpu::f in a build without CUDA); f must exist in both namespaces with the same signature. The
// arguments are evaluated after the choice, so they may call the mode-aware Blob accessors.
#ifdef ENGINE_USE_CUDA
#define ENGINE_ON_DEVICE(call) \
  (::engine::math::on_gpu() ? ::engine::gpu::call : ::engine::cpu::call)
#else
#define ENGINE_ON_DEVICE(call) (::engine::cpu::call)
#endif

// The primitives both namespaces have, on the mode's side: pointers from the mode-aware
// accessors.
inline void gemm(bool transpose_a, bool transpose_b, int M, int N, int K, float alpha,
                 const float* A, const float* B, float beta, float* C) {
  ENGINE_ON_DEVICE(gemm(transpose_a, transpose_b, M, N, K, alpha, A, B, beta, C));
}
inline void gemv(bool transpose_a, int M, int N, float alpha, const float* A, const float* x,
                 float beta, float* y) {
  ENGINE_ON_DEVICE(gemv(transpose_a, M, N, alpha, A, x, beta, y));
}
inline void axpy(int64_t n, float alpha, const float* x, float* y) {
  ENGINE_ON_DEVICE(axpy(n, alpha, x, y));
}
inline void axpby(int64_t n, float alpha, const float* x, float beta, float* y) {
  ENGINE_ON_DEVICE(axpby(n, alpha, x, beta, y));
}
inline void scale(int64_t n, float alpha, float* x) { ENGINE_ON_DEVICE(scale(n, alpha, x)); }
inline void scale(int64_t n, float alpha, const float* x, float* y) {
  ENGINE_ON_DEVICE(scale(n, alpha, x, y));
}
inline void copy(int64_t n, const float* x, float* y) { ENGINE_ON_DEVICE(copy(n, x, y)); }
inline void set(int64_t n, float value, float* x) { ENGINE_ON_DEVICE(set(n, value, x)); }
inline double dot(int64_t n, const float* x, const float* y) {
  return ENGINE_ON_DEVICE(dot(n, x, y));
}
inline double asum(int64_t n, const float* x) { return ENGINE_ON_DEVICE(asum(n, x)); }
inline void add(int64_t n, const float* a, const float* b, float* y) {
  ENGINE_ON_DEVICE(add(n, a, b, y));
}
inline void sub(int64_t n, const float* a, const float* b, float* y) {
  ENGINE_ON_DEVICE(sub(n, a, b, y));
}
inline void mul(int64_t n, const float* a, const float* b, float* y) {
  ENGINE_ON_DEVICE(mul(n, a, b, y));
}
inline void div(int64_t n, const float* a, const float* b, float* y) {
  ENGINE_ON_DEVICE(div(n, a, b, y));
}
inline void copy_rows(int64_t rows, int64_t width, const float* x, int64_t x_stride, float* y,
                      int64_t y_stride) {
  ENGINE_ON_DEVICE(copy_rows(rows, width, x, x_stride, y, y_stride));
}

}  // namespace math
}  // namespace engine
