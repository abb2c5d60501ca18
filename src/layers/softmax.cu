// CUDA kernels of Softmax, SoftmaxWithLoss and InfogainLoss (softmax.cpp): the softmax itself for
// engine: CAFFE (cuDNN's serves the default), and the losses and their gradients. The softmax
// kernels run one thread per location of [outer, inner], looping over the channels, so
// neighbouring threads read neighbouring addresses when inner > 1. InfogainLoss sums its loss
// and its label count with reduce_planes, so the loss and its normalizer stay on the device.
#include <cfloat>

#include <cuda_runtime.h>
#include <math_constants.h>

#include "core/errors.hpp"
#include "layers/elementwise_ops.hpp"
#include "layers/gpu_kernels.hpp"
#include "layers/loss_gpu.cuh"
#include "math/cuda_kernel.cuh"
#include "math/cuda_reduce.cuh"

namespace engine {
namespace gpu {
namespace {

__global__ void softmax_forward_kernel(int64_t n, int channels, int64_t inner, const float* x,
                                       float* y) {
  ENGINE_CUDA_KERNEL_LOOP(location, n) {
    const int64_t base = (location / inner) * channels * inner + location % inner;
    float largest = x[base];
    for (int c = 1; c < channels; ++c) largest = fmaxf(largest, x[base + c * inner]);
    float sum = 0;
    for (int c = 0; c < channels; ++c) {
      const float e = expf(x[base + c * inner] - largest);
      y[base + c * inner] = e;
      sum += e;
    }
    for (int c = 0; c < channels; ++c) y[base + c * inner] /= sum;
  }
}

__global__ void softmax_backward_kernel(int64_t n, int channels, int64_t inner, const float* y,
                                        const float* dy, float* dx) {
  ENGINE_CUDA_KERNEL_LOOP(location, n) {
    const int64_t base = (location / inner) * channels * inner + location % inner;
    float dot = 0;
    for (int c = 0; c < channels; ++c) dot += dy[base + c * inner] * y[base + c * inner];
    for (int c = 0; c < channels; ++c) {
      const int64_t at = base + c * inner;
      dx[at] = (dy[at] - dot) * y[at];
    }
  }
}

__global__ void softmax_loss_forward_kernel(int64_t n, int channels, int64_t inner,
                                            const float* prob, const float* labels,
                                            bool has_ignore_label, int ignore_label, float* loss,
                                            float* valid) {
  ENGINE_CUDA_KERNEL_LOOP(location, n) {
    const int label = static_cast<int>(labels[location]);
    if (has_ignore_label && label == ignore_label) {
      loss[location] = 0;
      valid[location] = 0;
    } else if (label < 0 || label >= channels) {
      loss[location] = CUDART_NAN_F;  // NaN: the host reports the bad label
      valid[location] = 1;
    } else {
      const int64_t base = (location / inner) * channels * inner + location % inner;
      loss[location] = -logf(fmaxf(prob[base + label * inner], FLT_MIN));
      valid[location] = 1;
    }
  }
}

__global__ void softmax_loss_backward_kernel(int64_t n, int channels, int64_t inner,
                                             const float* prob, const float* labels,
                                             bool has_ignore_label, int ignore_label,
                                             const float* loss_weight, float scale, float* dx) {
  ENGINE_CUDA_KERNEL_LOOP(location, n) {
    const int64_t base = (location / inner) * channels * inner + location % inner;
    const int label = static_cast<int>(labels[location]);
    if (has_ignore_label && label == ignore_label) {
      for (int c = 0; c < channels; ++c) dx[base + c * inner] = 0;
    } else {
      const float factor = *loss_weight * scale;
      for (int c = 0; c < channels; ++c) {
        const int64_t at = base + c * inner;
        dx[at] = (prob[at] - (c == label ? 1.0f : 0.0f)) * factor;
      }
    }
  }
}

}  // namespace

void softmax_forward(int64_t outer, int channels, int64_t inner, const float* x, float* y) {
  if (channels <= 0) return;
  ENGINE_CUDA_LAUNCH(softmax_forward_kernel, outer * inner, channels, inner, x, y);
}
void softmax_backward(int64_t outer, int channels, int64_t inner, const float* y,
                      const float* dy, float* dx) {
  ENGINE_CUDA_LAUNCH(softmax_backward_kernel, outer * inner, channels, inner, y, dy, dx);
}
void softmax_loss_forward(int64_t outer, int channels, int64_t inner, const float* prob,
                          const float* labels, bool has_ignore_label, int ignore_label,
                          float* loss, float* valid) {
  ENGINE_CUDA_LAUNCH(softmax_loss_forward_kernel, outer * inner, channels, inner, prob, labels,
                has_ignore_label, ignore_label, loss, valid);
}
void softmax_loss_backward(int64_t outer, int channels, int64_t inner, const float* prob,
                           const float* labels, bool has_ignore_label, int ignore_label,
                           const float* loss_weight, float scale, float* dx) {
  ENGINE_CUDA_LAUNCH(softmax_loss_backward_kernel, outer * inner, channels, inner, prob, labels,
                has_ignore_label, ignore_label, loss_weight, scale, dx);
}

}  // namespace gpu

// ---- InfogainLoss --------------------------------------------------------------------------
namespace {

struct Labelled {  // whether a location's label counts (is not the ignore_label)
  bool has_ignore_label;
  int ignore_label;
  __device__ bool operator()(int label) const {
    return !(has_ignore_label && label == ignore_label);
  }
};

struct ValidTerm {
  const float* labels;
  Labelled labelled;
  __device__ double operator()(int64_t location) const {
    return labelled(static_cast<int>(labels[location])) ? 1 : 0;
  }
};

// -sum_k H[label, k] log(max(p_k, floor)) of one location; 0 where ignored, NaN for a label the
// CPU would reject.
struct InfogainTerm {
  int classes;
  int64_t inner;
  const float* prob;
  const float* labels;
  const float* h;
  Labelled labelled;
  float floor;
  __device__ double operator()(int64_t location) const {
    const int label = static_cast<int>(labels[location]);
    if (!labelled(label)) return 0;
    if (label < 0 || label >= classes) return CUDART_NAN_F;
    const float* p = prob + (location / inner) * classes * inner + location % inner;
    const float* h_row = h + int64_t(label) * classes;
    double loss = 0;
    for (int k = 0; k < classes; ++k) {
      loss -= h_row[k] * log(double(max_of(p[k * inner], floor)));
    }
    return loss;
  }
};

// Row sums of H, in the CPU's order.
__global__ void row_sums_kernel(int classes, const float* h, float* sums) {
  ENGINE_CUDA_KERNEL_LOOP(r, classes) {
    float sum = 0;
    for (int k = 0; k < classes; ++k) sum += h[r * int64_t(classes) + k];
    sums[r] = sum;
  }
}

__global__ void infogain_backward_kernel(int64_t n, int classes, int64_t inner, const float* prob,
                                         const float* labels, const float* h,
                                         const float* row_sums, Labelled labelled,
                                         bool by_valid, const float* valid, float fixed,
                                         const float* loss_weight, float* dx) {
  const float scale = *loss_weight / normalizer_of(by_valid, valid, fixed);
  const int64_t plane = classes * inner;
  ENGINE_CUDA_KERNEL_LOOP(e, n) {
    const int64_t i = e / plane;
    const int64_t k = (e - i * plane) / inner;
    const int label = static_cast<int>(labels[i * inner + e % inner]);
    if (!labelled(label)) {
      dx[e] = 0;
    } else if (label < 0 || label >= classes) {
      dx[e] = CUDART_NAN_F;
    } else {
      // __fmul_rn: the product rounded before the subtraction, as on the CPU (no FMA).
      dx[e] = (__fmul_rn(prob[e], row_sums[label]) - h[int64_t(label) * classes + k]) * scale;
    }
  }
}

}  // namespace

void infogain_loss_forward_gpu(int64_t outer, int classes, int64_t inner, const float* prob,
                               const float* labels, const float* h, bool has_ignore_label,
                               int ignore_label, float floor, bool by_valid,
                               float fixed_normalizer, float* sums, float* loss) {
  const Labelled labelled{has_ignore_label, ignore_label};
  const int64_t locations = outer * inner;
  reduce_planes(1, 1, locations,
                InfogainTerm{classes, inner, prob, labels, h, labelled, floor}, 1.0f, 0.0f,
                sums);
  if (by_valid) reduce_planes(1, 1, locations, ValidTerm{labels, labelled}, 1.0f, 0.0f, sums + 1);
  normalized_loss_gpu(sums, by_valid, fixed_normalizer, loss);
}

void infogain_loss_backward_gpu(int64_t outer, int classes, int64_t inner, const float* prob,
                                const float* labels, const float* h, bool has_ignore_label,
                                int ignore_label, bool by_valid, float fixed_normalizer,
                                const float* loss_weight, float* scratch, float* dx) {
  const int64_t n = outer * classes * inner;
  if (n == 0) return;
  const Labelled labelled{has_ignore_label, ignore_label};
  float* row_sums = scratch;
  float* valid = scratch + classes;
  row_sums_kernel<<<cuda_blocks(classes), kCudaThreads>>>(classes, h, row_sums);
  ENGINE_CUDA_CHECK(cudaPeekAtLastError());
  if (by_valid) reduce_planes(1, 1, outer * inner, ValidTerm{labels, labelled}, 1.0f, 0.0f, valid);
  infogain_backward_kernel<<<cuda_blocks(n), kCudaThreads>>>(n, classes, inner, prob, labels, h,
                                                             row_sums, labelled, by_valid, valid,
                                                             fixed_normalizer, loss_weight, dx);
  ENGINE_CUDA_CHECK(cudaPeekAtLastError());
}

}  // namespace engine
