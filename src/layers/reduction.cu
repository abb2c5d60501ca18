// ArgMax and Reduction on the GPU.
#include <cuda_runtime.h>

#include <cmath>
#include <cstdint>

#include "core/errors.hpp"
#include "math/cuda_kernel.cuh"
#include "math/cuda_reduce.cuh"

namespace engine {
namespace {

// Whether (a_value, a_index) ranks before (b_value, b_index): std::greater on the pairs, the
// order of the CPU's partial_sort (equal values: the larger index first).
__device__ bool ranks_before(float a_value, int a_index, float b_value, int b_index) {
  return b_value < a_value || (!(a_value < b_value) && b_index < a_index);
}

// One thread per search. Pick j is the first-ranked pair among those ranked after pick j - 1:
// the CPU's sorted prefix, without scratch memory, in top_k passes over the values.
__global__ void argmax_kernel(int64_t searches, int dim, int64_t inner, int top_k,
                              bool along_axis, bool out_max_val, const float* data, float* out) {
  ENGINE_CUDA_KERNEL_LOOP(i, searches) {
    const int64_t outer = i / inner;
    const int64_t position = i - outer * inner;
    const float* x = data + outer * dim * inner + position;
    float last_value = 0;
    int last_index = -1;
    for (int j = 0; j < top_k; ++j) {
      float best_value = 0;
      int best_index = -1;
      for (int m = 0; m < dim; ++m) {
        const float value = x[m * inner];
        if (last_index >= 0 && !ranks_before(last_value, last_index, value, m)) continue;
        if (best_index < 0 || ranks_before(value, m, best_value, best_index)) {
          best_value = value;
          best_index = m;
        }
      }
      if (along_axis) {
        out[(outer * top_k + j) * inner + position] =
            out_max_val ? best_value : static_cast<float>(best_index);
      } else if (out_max_val) {
        out[2 * i * top_k + j] = static_cast<float>(best_index);
        out[2 * i * top_k + top_k + j] = best_value;
      } else {
        out[i * top_k + j] = static_cast<float>(best_index);
      }
      last_value = best_value;
      last_index = best_index;
    }
  }
}

struct TermAbs {  // |a[k]|
  const float* a;
  __device__ double operator()(int64_t k) const { return fabsf(a[k]); }
};

// The CPU's expressions: scale = top_diff * coeff, then the derivative of the summed term.
__global__ void reduction_backward_kernel(int64_t n, int64_t dim, bool absolute, bool squares,
                                          float coeff, const float* x, const float* top_diff,
                                          float* diff) {
  ENGINE_CUDA_KERNEL_LOOP(k, n) {
    const float scale = top_diff[k / dim] * coeff;
    if (absolute) {
      diff[k] = static_cast<float>((x[k] > 0) - (x[k] < 0)) * scale;
    } else if (squares) {
      diff[k] = (2 * scale) * x[k];
    } else {
      diff[k] = scale;
    }
  }
}

}  // namespace

void argmax_gpu(int64_t searches, int dim, int64_t inner, int top_k, bool along_axis,
                bool out_max_val, const float* data, float* out) {
  if (searches == 0) return;
  argmax_kernel<<<cuda_blocks(searches), kCudaThreads>>>(searches, dim, inner, top_k, along_axis,
                                                         out_max_val, data, out);
  ENGINE_CUDA_CHECK(cudaPeekAtLastError());
}

void reduction_sums_gpu(int64_t num, int64_t dim, bool absolute, bool squares, const float* x,
                        float* out) {
  if (absolute) {
    reduce_planes(1, num, dim, TermAbs{x}, 1.0f, 0.0f, out);
  } else if (squares) {
    reduce_planes(1, num, dim, TermProduct{x, x}, 1.0f, 0.0f, out);
  } else {
    reduce_planes(1, num, dim, TermOf{x}, 1.0f, 0.0f, out);
  }
}

void reduction_backward_gpu(int64_t num, int64_t dim, bool absolute, bool squares, float coeff,
                            const float* x, const float* top_diff, float* diff) {
  const int64_t n = num * dim;
  if (n == 0) return;
  reduction_backward_kernel<<<cuda_blocks(n), kCudaThreads>>>(n, dim, absolute, squares, coeff,
                                                              x, top_diff, diff);
  ENGINE_CUDA_CHECK(cudaPeekAtLastError());
}

}  // namespace engine
