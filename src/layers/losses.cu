// The losses of losses.cpp on the GPU (EuclideanLoss uses the math:: primitives only). Every sum is a
// reduce_planes over one plane, so it repeats exactly; the loss goes to the top on the device and
// the loss weight is read from the top's diff there. A label the CPU would reject (it throws)
// gives NaN here instead, in the loss and in that sample's gradient, without a host round trip.
#include <cuda_runtime.h>
#include <math_constants.h>

#include <cmath>

#include "core/errors.hpp"
#include "layers/contrastive_terms.hpp"
#include "layers/elementwise_ops.hpp"
#include "layers/loss_gpu.cuh"
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
                                              Ignore ignored, const float* loss_weight,
                                              bool by_valid, const float* valid, float fixed,
                                              float* dx) {
  const float scale = *loss_weight / normalizer_of(by_valid, valid, fixed);
  ENGINE_CUDA_KERNEL_LOOP(k, n) {
    dx[k] = ignored(target[k]) ? 0.0f : (sigmoid(x[k]) - target[k]) * scale;
  }
}

__global__ void scale_by_loss_weight_kernel(int64_t n, const float* x, const float* loss_weight,
                                            float divisor, float* y) {
  const float alpha = *loss_weight / divisor;
  ENGINE_CUDA_KERNEL_LOOP(k, n) { y[k] = alpha * x[k]; }
}

__global__ void normalized_loss_kernel(const float* sums, bool by_valid, float fixed,
                                       float* loss) {
  *loss = sums[0] / normalizer_of(by_valid, sums + 1, fixed);
}

// ---- HingeLoss ----------------------------------------------------------------------------

__device__ bool label_in_range(int label, int64_t classes) { return label >= 0 && label < classes; }

// margin = max(0, 1 - t x), t = +1 at the label and -1 elsewhere; NaN across a bad label's row.
__global__ void hinge_margins_kernel(int64_t n, int64_t dim, const float* x, const float* labels,
                                     float* margin) {
  ENGINE_CUDA_KERNEL_LOOP(k, n) {
    const int64_t i = k / dim;
    const int label = static_cast<int>(labels[i]);
    if (!label_in_range(label, dim)) {
      margin[k] = CUDART_NAN_F;
      continue;
    }
    const float t_x = k - i * dim == label ? -x[k] : x[k];
    margin[k] = max_of(0.0f, 1 + t_x);
  }
}

__global__ void hinge_backward_kernel(int64_t n, int64_t dim, const float* labels,
                                      const float* margin, bool l2, const float* loss_weight,
                                      float num, float* dx) {
  const float scale = l2 ? *loss_weight * 2 / num : *loss_weight / num;
  ENGINE_CUDA_KERNEL_LOOP(k, n) {
    const int64_t i = k / dim;
    const int label = static_cast<int>(labels[i]);
    if (!label_in_range(label, dim)) {
      dx[k] = CUDART_NAN_F;
      continue;
    }
    const float m = margin[k];
    const float d = l2 ? m : static_cast<float>(m > 0);
    dx[k] = (k - i * dim == label ? -d : d) * scale;
  }
}

// ---- MultinomialLogisticLoss --------------------------------------------------------------

struct LogLossTerm {  // -log(max(p[label], floor)) of sample i
  const float* prob;
  const float* labels;
  int64_t dim;
  float floor;
  __device__ double operator()(int64_t i) const {
    const int label = static_cast<int>(labels[i]);
    if (!label_in_range(label, dim)) return CUDART_NAN_F;
    return -log(double(max_of(prob[i * dim + label], floor)));
  }
};

__global__ void log_loss_backward_kernel(int64_t n, int64_t dim, const float* prob,
                                         const float* labels, float floor,
                                         const float* loss_weight, float num, float* dx) {
  const float scale = -*loss_weight / num;
  ENGINE_CUDA_KERNEL_LOOP(k, n) {
    const int64_t i = k / dim;
    const int label = static_cast<int>(labels[i]);
    if (!label_in_range(label, dim)) {
      dx[k] = CUDART_NAN_F;
    } else {
      dx[k] = k - i * dim == label ? scale / max_of(prob[k], floor) : 0.0f;
    }
  }
}

// ---- ContrastiveLoss ----------------------------------------------------------------------

__global__ void squared_row_norms_kernel(int64_t rows, int channels, const float* x,
                                         float* norms) {
  ENGINE_CUDA_KERNEL_LOOP(i, rows) {
    const float* row = x + i * channels;
    double sum = 0;
    for (int c = 0; c < channels; ++c) sum += double(row[c]) * row[c];
    norms[i] = static_cast<float>(sum);
  }
}

struct ContrastiveTerm {  // the loss of pair i, before the division by 2N
  const float* distance_sq;
  const float* similar;
  float margin;
  bool legacy;
  __device__ double operator()(int64_t i) const {
    const float d2 = distance_sq[i];
    if (static_cast<int>(similar[i]) != 0) return d2;
    if (legacy) return max_of(margin - d2, 0.0f);
    const float gap = max_of(static_cast<float>(margin - sqrt(double(d2))), 0.0f);
    return gap * gap;
  }
};

// Overwrites the gradient of one bottom: sign +1 for a, -1 for b.
__global__ void contrastive_backward_kernel(int64_t n, int channels, const float* difference,
                                            const float* distance_sq, const float* similar,
                                            float margin, bool legacy, float sign,
                                            const float* loss_weight, float num, float* dx) {
  const float alpha = sign * *loss_weight / num;
  ENGINE_CUDA_KERNEL_LOOP(k, n) {
    const int64_t i = k / channels;
    dx[k] = contrastive_pair_factor(alpha, distance_sq[i], static_cast<int>(similar[i]) != 0,
                                    margin, legacy) *
            difference[k];
  }
}

}  // namespace

void normalized_loss_gpu(const float* sums, bool by_valid, float fixed_normalizer, float* loss) {
  normalized_loss_kernel<<<1, 1>>>(sums, by_valid, fixed_normalizer, loss);
  ENGINE_CUDA_CHECK(cudaPeekAtLastError());
}

void scale_by_loss_weight_gpu(int64_t n, const float* x, const float* loss_weight, float divisor,
                              float* y) {
  if (n == 0) return;
  scale_by_loss_weight_kernel<<<cuda_blocks(n), kCudaThreads>>>(n, x, loss_weight, divisor, y);
  ENGINE_CUDA_CHECK(cudaPeekAtLastError());
}

void sigmoid_cross_entropy_forward_gpu(int64_t n, const float* x, const float* target,
                                       bool has_ignore_label, int ignore_label, bool by_valid,
                                       float fixed_normalizer, float* sums, float* loss) {
  const Ignore ignored{has_ignore_label, ignore_label};
  reduce_planes(1, 1, n, CrossEntropyTerm{x, target, ignored}, 1.0f, 0.0f, sums);
  reduce_planes(1, 1, n, ValidTerm{target, ignored}, 1.0f, 0.0f, sums + 1);
  normalized_loss_gpu(sums, by_valid, fixed_normalizer, loss);
}

void sigmoid_cross_entropy_backward_gpu(int64_t n, const float* x, const float* target,
                                        bool has_ignore_label, int ignore_label, bool by_valid,
                                        const float* sums, float fixed_normalizer,
                                        const float* loss_weight, float* dx) {
  if (n == 0) return;
  cross_entropy_backward_kernel<<<cuda_blocks(n), kCudaThreads>>>(
      n, x, target, Ignore{has_ignore_label, ignore_label}, loss_weight, by_valid, sums + 1,
      fixed_normalizer, dx);
  ENGINE_CUDA_CHECK(cudaPeekAtLastError());
}

void hinge_loss_forward_gpu(int64_t num, int64_t dim, const float* x, const float* labels,
                           bool l2, float* margin, float* loss) {
  const int64_t n = num * dim;
  if (n > 0) {
    hinge_margins_kernel<<<cuda_blocks(n), kCudaThreads>>>(n, dim, x, labels, margin);
    ENGINE_CUDA_CHECK(cudaPeekAtLastError());
  }
  const float alpha = 1.0f / static_cast<float>(num);
  if (l2) {
    reduce_planes(1, 1, n, TermProduct{margin, margin}, alpha, 0.0f, loss);
  } else {
    reduce_planes(1, 1, n, TermOf{margin}, alpha, 0.0f, loss);  // margins are >= 0: sum = asum
  }
}

void hinge_loss_backward_gpu(int64_t num, int64_t dim, const float* labels, const float* margin,
                            bool l2, const float* loss_weight, float* dx) {
  const int64_t n = num * dim;
  if (n == 0) return;
  hinge_backward_kernel<<<cuda_blocks(n), kCudaThreads>>>(n, dim, labels, margin, l2, loss_weight,
                                                          static_cast<float>(num), dx);
  ENGINE_CUDA_CHECK(cudaPeekAtLastError());
}

void multinomial_logistic_loss_forward_gpu(int64_t num, int64_t dim, const float* prob,
                                           const float* labels, float floor, float* loss) {
  reduce_planes(1, 1, num, LogLossTerm{prob, labels, dim, floor}, 1.0f / static_cast<float>(num),
                0.0f, loss);
}

void multinomial_logistic_loss_backward_gpu(int64_t num, int64_t dim, const float* prob,
                                            const float* labels, float floor,
                                            const float* loss_weight, float* dx) {
  const int64_t n = num * dim;
  if (n == 0) return;
  log_loss_backward_kernel<<<cuda_blocks(n), kCudaThreads>>>(n, dim, prob, labels, floor,
                                                             loss_weight, static_cast<float>(num),
                                                             dx);
  ENGINE_CUDA_CHECK(cudaPeekAtLastError());
}

void contrastive_loss_forward_gpu(int64_t num, int channels, const float* difference,
                                  const float* similar, float margin, bool legacy,
                                  float* distance_sq, float* loss) {
  if (num > 0) {
    squared_row_norms_kernel<<<cuda_blocks(num), kCudaThreads>>>(num, channels, difference,
                                                                  distance_sq);
    ENGINE_CUDA_CHECK(cudaPeekAtLastError());
  }
  reduce_planes(1, 1, num, ContrastiveTerm{distance_sq, similar, margin, legacy},
                0.5f / static_cast<float>(num), 0.0f, loss);
}

void contrastive_loss_backward_gpu(int64_t num, int channels, const float* difference,
                                   const float* distance_sq, const float* similar, float margin,
                                   bool legacy, float sign, const float* loss_weight, float* dx) {
  const int64_t n = num * channels;
  if (n == 0) return;
  contrastive_backward_kernel<<<cuda_blocks(n), kCudaThreads>>>(
      n, channels, difference, distance_sq, similar, margin, legacy, sign, loss_weight,
      static_cast<float>(num), dx);
  ENGINE_CUDA_CHECK(cudaPeekAtLastError());
}

}  // namespace engine
