// CUDA kernels of Softmax and SoftmaxWithLoss (softmax.cpp): the softmax itself for engine: CAFFE
// (cuDNN's serves the default), and the loss and its gradient. One thread per location of
// [outer, inner] loops over the channels, so neighbouring threads read neighbouring addresses
// when inner > 1.
#include <cfloat>

#include <cuda_runtime.h>

#include "core/errors.hpp"
#include "layers/gpu_kernels.hpp"
#include "math/cuda_kernel.cuh"

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
      loss[location] = __int_as_float(0x7fc00000);  // NaN: the host reports the bad label
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

#define ENGINE_LAUNCH(kernel, n, ...)                                    \
  do {                                                                   \
    const int64_t count_ = (n);                                          \
    if (count_ <= 0) return;                                             \
    kernel<<<cuda_blocks(count_), kCudaThreads>>>(count_, __VA_ARGS__);  \
    ENGINE_CUDA_CHECK(cudaPeekAtLastError());                            \
  } while (0)

void softmax_forward(int64_t outer, int channels, int64_t inner, const float* x, float* y) {
  if (channels <= 0) return;
  ENGINE_LAUNCH(softmax_forward_kernel, outer * inner, channels, inner, x, y);
}
void softmax_backward(int64_t outer, int channels, int64_t inner, const float* y,
                      const float* dy, float* dx) {
  ENGINE_LAUNCH(softmax_backward_kernel, outer * inner, channels, inner, y, dy, dx);
}
void softmax_loss_forward(int64_t outer, int channels, int64_t inner, const float* prob,
                          const float* labels, bool has_ignore_label, int ignore_label,
                          float* loss, float* valid) {
  ENGINE_LAUNCH(softmax_loss_forward_kernel, outer * inner, channels, inner, prob, labels,
                has_ignore_label, ignore_label, loss, valid);
}
void softmax_loss_backward(int64_t outer, int channels, int64_t inner, const float* prob,
                           const float* labels, bool has_ignore_label, int ignore_label,
                           const float* loss_weight, float scale, float* dx) {
  ENGINE_LAUNCH(softmax_loss_backward_kernel, outer * inner, channels, inner, prob, labels,
                has_ignore_label, ignore_label, loss_weight, scale, dx);
}

#undef ENGINE_LAUNCH

}  // namespace gpu
}  // namespace engine
