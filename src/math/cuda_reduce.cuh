// The one per-channel reduction of the CUDA code: for an array viewed as [outer][dim][inner],
//   out[d] = alpha * sum over o, i of term(flat index of (o, d, i)) + beta * out[d]
// (beta 0 overwrites, never reading out). Used for parameter gradients of broadcast operands
// (Scale, Bias, PReLU slopes) and BatchNorm's statistics. One block per d, each thread summing a
// fixed stride in double and a fixed tree combining them: the result does not depend on timing,
// so GPU runs repeat exactly.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "core/errors.hpp"

namespace engine {

constexpr int kReduceThreads = 256;

template <class Term>
__global__ void reduce_planes_kernel(int64_t outer, int64_t dim, int64_t inner, Term term,
                                     float alpha, float beta, float* out) {
  __shared__ double partial[kReduceThreads];
  const int64_t terms = outer * inner;
  for (int64_t d = blockIdx.x; d < dim; d += gridDim.x) {
    double sum = 0;
    for (int64_t j = threadIdx.x; j < terms; j += blockDim.x) {
      const int64_t o = j / inner;
      sum += term((o * dim + d) * inner + (j - o * inner));
    }
    partial[threadIdx.x] = sum;
    __syncthreads();
    for (int half = kReduceThreads / 2; half > 0; half /= 2) {
      if (threadIdx.x < half) partial[threadIdx.x] += partial[threadIdx.x + half];
      __syncthreads();
    }
    if (threadIdx.x == 0) {
      const float total = static_cast<float>(alpha * partial[0]);
      out[d] = beta == 0 ? total : total + beta * out[d];
    }
    __syncthreads();  // partial is reused by the next d
  }
}

// Launches on the default stream. Term is a device-callable functor: double term(int64_t index).
template <class Term>
void reduce_planes(int64_t outer, int64_t dim, int64_t inner, Term term, float alpha, float beta,
                   float* out) {
  if (dim == 0) return;
  const int blocks = static_cast<int>(dim < 65535 ? dim : 65535);
  reduce_planes_kernel<<<blocks, kReduceThreads>>>(outer, dim, inner, term, alpha, beta, out);
  ENGINE_CUDA_CHECK(cudaPeekAtLastError());
}

// Common terms.
struct TermOf {  // a[k]
  const float* a;
  __device__ double operator()(int64_t k) const { return a[k]; }
};
struct TermProduct {  // a[k] * b[k]
  const float* a;
  const float* b;
  __device__ double operator()(int64_t k) const { return double(a[k]) * b[k]; }
};

}  // namespace engine
