#include "math/blas.hpp"

#include <cblas.h>

#include <algorithm>
#include <cmath>
#include <cstring>

#include "core/context.hpp"

namespace engine {

bool math::on_gpu() { return Context::mode() == Mode::GPU; }

namespace cpu {

void gemm(bool transpose_a, bool transpose_b, int M, int N, int K, float alpha, const float* A,
          const float* B, float beta, float* C) {
  const int lda = transpose_a ? M : K;
  const int ldb = transpose_b ? K : N;
  cblas_sgemm(CblasRowMajor, transpose_a ? CblasTrans : CblasNoTrans,
              transpose_b ? CblasTrans : CblasNoTrans, M, N, K, alpha, A, lda, B, ldb, beta, C, N);
}

void gemv(bool transpose_a, int M, int N, float alpha, const float* A, const float* x, float beta,
          float* y) {
  cblas_sgemv(CblasRowMajor, transpose_a ? CblasTrans : CblasNoTrans, M, N, alpha, A, N, x, 1,
              beta, y, 1);
}

void axpy(int64_t n, float alpha, const float* x, float* y) {
  for (int64_t i = 0; i < n; ++i) y[i] += alpha * x[i];
}

void axpby(int64_t n, float alpha, const float* x, float beta, float* y) {
  for (int64_t i = 0; i < n; ++i) y[i] = alpha * x[i] + beta * y[i];
}

void scale(int64_t n, float alpha, float* x) {
  for (int64_t i = 0; i < n; ++i) x[i] *= alpha;
}

void scale(int64_t n, float alpha, const float* x, float* y) {
  for (int64_t i = 0; i < n; ++i) y[i] = alpha * x[i];
}

void copy(int64_t n, const float* x, float* y) {
  if (x != y) std::memcpy(y, x, sizeof(float) * n);
}

void set(int64_t n, float value, float* x) {
  if (value == 0.0f) {
    std::memset(x, 0, sizeof(float) * n);
    return;
  }
  for (int64_t i = 0; i < n; ++i) x[i] = value;
}

namespace {

// A double-precision sum in independent lanes: the compiler vectorizes it, where one running
// total would be a chain of dependent additions (about 4x slower for the long per-channel
// reductions of BatchNorm, Scale and Bias).
template <typename Term>
double lane_sum(int64_t n, Term term) {
  constexpr int kLanes = 16;
  double lanes[kLanes] = {};
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes) {
    for (int k = 0; k < kLanes; ++k) lanes[k] += term(i + k);
  }
  double total = 0;
  for (; i < n; ++i) total += term(i);
  for (int k = 0; k < kLanes; ++k) total += lanes[k];
  return total;
}

}  // namespace

double dot(int64_t n, const float* x, const float* y) {
  return lane_sum(n, [=](int64_t i) { return double(x[i]) * y[i]; });
}

double asum(int64_t n, const float* x) {
  return lane_sum(n, [=](int64_t i) { return double(std::fabs(x[i])); });
}

double sum(int64_t n, const float* x) {
  return lane_sum(n, [=](int64_t i) { return double(x[i]); });
}

bool all_finite(int64_t n, const float* x) {
  // x * 0 is 0 for every finite x and NaN otherwise; the sum stays 0 unless one is not finite.
  // Lanes keep the loop vectorized.
  constexpr int kLanes = 16;
  float lanes[kLanes] = {};
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes) {
    for (int l = 0; l < kLanes; ++l) lanes[l] += x[i + l] * 0.0f;
  }
  float total = 0;
  for (; i < n; ++i) total += x[i] * 0.0f;
  for (float lane : lanes) total += lane;
  return total == 0.0f;
}

void add(int64_t n, const float* a, const float* b, float* y) {
  for (int64_t i = 0; i < n; ++i) y[i] = a[i] + b[i];
}
void sub(int64_t n, const float* a, const float* b, float* y) {
  for (int64_t i = 0; i < n; ++i) y[i] = a[i] - b[i];
}
void mul(int64_t n, const float* a, const float* b, float* y) {
  for (int64_t i = 0; i < n; ++i) y[i] = a[i] * b[i];
}
void div(int64_t n, const float* a, const float* b, float* y) {
  for (int64_t i = 0; i < n; ++i) y[i] = a[i] / b[i];
}
void copy_rows(int64_t rows, int64_t width, const float* x, int64_t x_stride, float* y,
               int64_t y_stride) {
  for (int64_t r = 0; r < rows; ++r) {
    std::memcpy(y + r * y_stride, x + r * x_stride, sizeof(float) * width);
  }
}
void add_scalar(int64_t n, float alpha, float* y) {
  for (int64_t i = 0; i < n; ++i) y[i] += alpha;
}

void clamp(int64_t n, float low, float high, float* y) {
  for (int64_t i = 0; i < n; ++i) y[i] = std::min(std::max(y[i], low), high);
}

void sqr(int64_t n, const float* a, float* y) {
  for (int64_t i = 0; i < n; ++i) y[i] = a[i] * a[i];
}
void powx(int64_t n, const float* a, float exponent, float* y) {
  for (int64_t i = 0; i < n; ++i) y[i] = std::pow(a[i], exponent);
}
void exp(int64_t n, const float* a, float* y) {
  for (int64_t i = 0; i < n; ++i) y[i] = std::exp(a[i]);
}

}  // namespace cpu
}  // namespace engine
