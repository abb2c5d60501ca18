// SigmoidCrossEntropyLoss on the GPU (EuclideanLoss uses gpu:: primitives; the other losses of
// losses.cpp run their CPU code).
#include <cuda_runtime.h>

#include <cmath>

#include "core/errors.hpp"
#include "layers/elementwise_ops.hpp"
#include "math/cuda_kernel.cuh"
#include "math/cuda_reduce.cuh"

namespace engine {
namespace {

struct Ignore {
  bool active;
  int label;
  __device__ bool operator()(float target) const {
    return active && static_cast<int>(target) == label;
  }
};

// The loss term of element k, as the CPU computes it (in double, no exp overflow).
struct CrossEntropyTerm {
  const float* x;
  const float* target;
  Ignore ignored;
  __device__ double operator()(int64_t k) const {
    if (ignored(target[k])) return 0;
    const float positive = x[k] >= 0;
    const float linear = x[k] * (target[k] - positive);
    return -(linear - log(1 + exp(double(x[k] - 2 * x[k] * positive))));
  }
};

struct ValidTerm {
  const float* target;
  Ignore ignored;
  __device__ double operator()(int64_t k) const { return ignored(target[k]) ? 0 : 1; }
};

__global__ void cross_entropy_backward_kernel(int64_t n, const float* x, const float* target,
                                              Ignore ignored, float scale, float* dx) {
  ENGINE_CUDA_KERNEL_LOOP(k, n) {
    dx[k] = ignored(target[k]) ? 0.0f : (sigmoid(x[k]) - target[k]) * scale;
  }
}

}  // namespace

void sigmoid_cross_entropy_forward_gpu(int64_t n, const float* x, const float* target,
                                       bool has_ignore_label, int ignore_label, float* sums) {
  const Ignore ignored{has_ignore_label, ignore_label};
  reduce_planes(1, 1, n, CrossEntropyTerm{x, target, ignored}, 1.0f, 0.0f, sums);
  reduce_planes(1, 1, n, ValidTerm{target, ignored}, 1.0f, 0.0f, sums + 1);
}

void sigmoid_cross_entropy_backward_gpu(int64_t n, const float* x, const float* target,
                                        bool has_ignore_label, int ignore_label, float scale,
                                        float* dx) {
  if (n == 0) return;
  cross_entropy_backward_kernel<<<cuda_blocks(n), kCudaThreads>>>(
      n, x, target, Ignore{has_ignore_label, ignore_label}, scale, dx);
  ENGINE_CUDA_CHECK(cudaPeekAtLastError());
}

}  // namespace engine
