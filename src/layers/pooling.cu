// CUDA kernels of Pooling (pooling.cpp) for what cuDNN does not compute as Caffe does: MAX with
// its argmax mask, AVE with Caffe's divisor, STOCHASTIC. One thread per output forward;
// backward gathers, one thread per input element summing over the windows that cover it, so no
// atomics and the result repeats exactly.
#include <cfloat>

#include <cuda_runtime.h>

#include "core/errors.hpp"
#include "layers/gpu_kernels.hpp"
#include "math/cuda_kernel.cuh"
#include "math/cuda_random.cuh"

namespace engine {
namespace gpu {
namespace {

// The window of output (ph, pw), clipped to the input, and Caffe's AVE divisor.
struct Window {
  int h0, h1, w0, w1;
  int divisor;
};

__device__ Window window_of(const PoolShape& s, int ph, int pw) {
  Window win;
  int h0 = ph * s.stride_h - s.pad_h;
  int w0 = pw * s.stride_w - s.pad_w;
  const int h1 = min(h0 + s.kernel_h, s.height + s.pad_h);
  const int w1 = min(w0 + s.kernel_w, s.width + s.pad_w);
  win.divisor = (h1 - h0) * (w1 - w0);
  win.h0 = max(h0, 0);
  win.w0 = max(w0, 0);
  win.h1 = min(h1, s.height);
  win.w1 = min(w1, s.width);
  return win;
}

// The window of output `index` of the whole top, and the plane (image x channel) it is in.
__device__ Window output_window(const PoolShape& s, int64_t index, int64_t* plane) {
  const int pw = static_cast<int>(index % s.pooled_w);
  const int ph = static_cast<int>((index / s.pooled_w) % s.pooled_h);
  *plane = index / (int64_t(s.pooled_w) * s.pooled_h);
  return window_of(s, ph, pw);
}

// The outputs whose windows cover input row h: [first, last).
__device__ void covering(int h, int kernel, int stride, int pad, int pooled, int* first,
                         int* last) {
  *first = (h + pad < kernel) ? 0 : (h + pad - kernel) / stride + 1;
  *last = min((h + pad) / stride + 1, pooled);
}

// Input element `index` of the whole bottom: its plane and place, and the outputs
// [ph0, ph1) x [pw0, pw1) whose windows cover it.
struct Covered {
  int64_t plane;
  int h, w, ph0, ph1, pw0, pw1;
};
__device__ Covered covered_by(const PoolShape& s, int64_t index) {
  Covered c;
  c.w = static_cast<int>(index % s.width);
  c.h = static_cast<int>((index / s.width) % s.height);
  c.plane = index / (int64_t(s.width) * s.height);
  covering(c.h, s.kernel_h, s.stride_h, s.pad_h, s.pooled_h, &c.ph0, &c.ph1);
  covering(c.w, s.kernel_w, s.stride_w, s.pad_w, s.pooled_w, &c.pw0, &c.pw1);
  return c;
}

__global__ void max_forward_kernel(int64_t n, PoolShape s, const float* x, float* y, int* argmax,
                                   float* mask_top) {
  ENGINE_CUDA_KERNEL_LOOP(index, n) {
    int64_t plane;
    const Window win = output_window(s, index, &plane);
    const float* src = x + plane * s.height * s.width;
    float best = -FLT_MAX;
    int best_index = -1;
    for (int h = win.h0; h < win.h1; ++h) {
      for (int w = win.w0; w < win.w1; ++w) {
        const float v = src[h * s.width + w];
        if (v > best) {
          best = v;
          best_index = h * s.width + w;
        }
      }
    }
    y[index] = best;
    argmax[index] = best_index;
    if (mask_top) mask_top[index] = static_cast<float>(best_index);
  }
}

__global__ void max_backward_kernel(int64_t n, PoolShape s, const float* dy, const int* argmax,
                                    float* dx) {
  ENGINE_CUDA_KERNEL_LOOP(index, n) {
    const Covered c = covered_by(s, index);
    const int64_t offset = c.plane * s.pooled_h * s.pooled_w;
    const int self = c.h * s.width + c.w;
    float sum = 0;
    for (int ph = c.ph0; ph < c.ph1; ++ph) {
      for (int pw = c.pw0; pw < c.pw1; ++pw) {
        const int64_t out = offset + ph * s.pooled_w + pw;
        if (argmax[out] == self) sum += dy[out];
      }
    }
    dx[index] = sum;
  }
}

// `start` plus the sum over a window of one plane, in row order (the CPU's). STOCHASTIC starts
// from FLT_MIN, as Caffe does, so that an all-zero window gives 0, not 0 / 0.
__device__ float window_sum(const float* plane, int width, const Window& win, float start = 0) {
  float sum = start;
  for (int h = win.h0; h < win.h1; ++h) {
    for (int w = win.w0; w < win.w1; ++w) sum += plane[h * width + w];
  }
  return sum;
}

__global__ void ave_forward_kernel(int64_t n, PoolShape s, const float* x, float* y) {
  ENGINE_CUDA_KERNEL_LOOP(index, n) {
    int64_t plane;
    const Window win = output_window(s, index, &plane);
    y[index] = window_sum(x + plane * s.height * s.width, s.width, win) /
               static_cast<float>(win.divisor);
  }
}

__global__ void ave_backward_kernel(int64_t n, PoolShape s, const float* dy, float* dx) {
  ENGINE_CUDA_KERNEL_LOOP(index, n) {
    const Covered c = covered_by(s, index);
    const float* grad = dy + c.plane * s.pooled_h * s.pooled_w;
    float sum = 0;
    for (int ph = c.ph0; ph < c.ph1; ++ph) {
      for (int pw = c.pw0; pw < c.pw1; ++pw) {
        sum += grad[ph * s.pooled_w + pw] / static_cast<float>(window_of(s, ph, pw).divisor);
      }
    }
    dx[index] = sum;
  }
}

// The CPU code's sampling (stochastic_forward_train in pooling.cpp) with the output's own
// uniform: the window's float sum scaled by the draw is a threshold that the running sum must
// reach. The draw is never 0, so an element of value 0 is not picked unless the whole window is
// 0 (then the first element is).
__global__ void stochastic_train_forward_kernel(int64_t n, PoolShape s, const float* x, float* y,
                                                int* chosen, uint64_t seed) {
  ENGINE_CUDA_KERNEL_LOOP(index, n) {
    int64_t plane;
    const Window win = output_window(s, index, &plane);
    const float* src = x + plane * s.height * s.width;
    const float threshold =
        hash_uniform_open(seed, static_cast<uint64_t>(index)) * window_sum(src, s.width, win);
    // Rounding may leave the running sum a hair short of the threshold: the last element then.
    int pick = (win.h1 - 1) * s.width + win.w1 - 1;
    float running = 0;
    bool found = false;
    for (int h = win.h0; h < win.h1 && !found; ++h) {
      for (int w = win.w0; w < win.w1; ++w) {
        running += src[h * s.width + w];
        if (running >= threshold) {
          pick = h * s.width + w;
          found = true;
          break;
        }
      }
    }
    chosen[index] = pick;
    y[index] = src[pick];
  }
}

__global__ void stochastic_test_forward_kernel(int64_t n, PoolShape s, const float* x, float* y) {
  ENGINE_CUDA_KERNEL_LOOP(index, n) {
    int64_t plane;
    const Window win = output_window(s, index, &plane);
    const float* src = x + plane * s.height * s.width;
    float total = FLT_MIN, weighted = 0;
    for (int h = win.h0; h < win.h1; ++h) {
      for (int w = win.w0; w < win.w1; ++w) {
        const float v = src[h * s.width + w];
        total += v;
        weighted += v * v;
      }
    }
    y[index] = weighted / total;
  }
}

// d/dx of sum(x^2) / sum(x) over each covering window: (2 x - y) / sum(x).
__global__ void stochastic_test_backward_kernel(int64_t n, PoolShape s, const float* dy,
                                                const float* x, const float* y, float* dx) {
  ENGINE_CUDA_KERNEL_LOOP(index, n) {
    const Covered c = covered_by(s, index);
    const float* src = x + c.plane * s.height * s.width;
    const int64_t offset = c.plane * s.pooled_h * s.pooled_w;
    const float v = src[c.h * s.width + c.w];
    float sum = 0;
    for (int ph = c.ph0; ph < c.ph1; ++ph) {
      for (int pw = c.pw0; pw < c.pw1; ++pw) {
        const int64_t out = offset + ph * s.pooled_w + pw;
        const float total = window_sum(src, s.width, window_of(s, ph, pw), FLT_MIN);
        sum += dy[out] * (2 * v - y[out]) / total;
      }
    }
    dx[index] = sum;
  }
}

int64_t outputs(const PoolShape& s) {
  return int64_t(s.num) * s.channels * s.pooled_h * s.pooled_w;
}
int64_t inputs(const PoolShape& s) { return int64_t(s.num) * s.channels * s.height * s.width; }

}  // namespace

void max_pool_forward(const PoolShape& s, const float* x, float* y, int* argmax, float* mask_top) {
  ENGINE_CUDA_LAUNCH(max_forward_kernel, outputs(s), s, x, y, argmax, mask_top);
}
void max_pool_backward(const PoolShape& s, const float* dy, const int* argmax, float* dx) {
  ENGINE_CUDA_LAUNCH(max_backward_kernel, inputs(s), s, dy, argmax, dx);
}
void ave_pool_forward(const PoolShape& s, const float* x, float* y) {
  ENGINE_CUDA_LAUNCH(ave_forward_kernel, outputs(s), s, x, y);
}
void ave_pool_backward(const PoolShape& s, const float* dy, float* dx) {
  ENGINE_CUDA_LAUNCH(ave_backward_kernel, inputs(s), s, dy, dx);
}
void stochastic_pool_train_forward(const PoolShape& s, const float* x, float* y, int* chosen,
                                   uint64_t seed) {
  ENGINE_CUDA_LAUNCH(stochastic_train_forward_kernel, outputs(s), s, x, y, chosen, seed);
}
void stochastic_pool_test_forward(const PoolShape& s, const float* x, float* y) {
  ENGINE_CUDA_LAUNCH(stochastic_test_forward_kernel, outputs(s), s, x, y);
}
void stochastic_pool_test_backward(const PoolShape& s, const float* dy, const float* x,
                                   const float* y, float* dx) {
  ENGINE_CUDA_LAUNCH(stochastic_test_backward_kernel, inputs(s), s, dy, x, y, dx);
}

}  // namespace gpu
}  // namespace engine
