// The selection layers on the GPU: Crop's window, Tile's gradient, and rows gathered or scattered
// by index (BatchReindex, Filter, and Embed of embed.cpp). Tile's forward is gpu::copy_rows.
#include <cuda_runtime.h>
#include <math_constants.h>

#include <cstdint>
#include <vector>

#include "core/errors.hpp"
#include "layers/gpu_kernels.hpp"
#include "math/cuda_kernel.cuh"

namespace engine {
namespace {

// Passed by value, so that no shape travels to the device through memory of its own.
constexpr int kCropMaxAxes = 32;  // Caffe's limit on a blob's axes
struct CropWindow {
  int axes;
  int64_t top_shape[kCropMaxAxes];
  int64_t whole_stride[kCropMaxAxes];
  int64_t start;  // the window's first element in the whole blob
};

// One thread per element of the top: its coordinates in the top, shifted by the offsets, give
// its place in the whole blob. Every place is written by one thread only.
__global__ void crop_kernel(int64_t n, CropWindow window, const float* from, float* to,
                            bool into_top) {
  ENGINE_CUDA_KERNEL_LOOP(i, n) {
    int64_t rest = i;
    int64_t at = window.start;
    for (int a = window.axes - 1; a >= 0; --a) {
      const int64_t coordinate = rest % window.top_shape[a];
      rest /= window.top_shape[a];
      at += coordinate * window.whole_stride[a];
    }
    if (into_top) {
      to[i] = from[at];
    } else {
      to[at] = from[i];
    }
  }
}

// Each bottom element sums its copies in order t = 0, 1, ...: the CPU's copy-then-axpy order.
__global__ void tile_backward_kernel(int64_t n, int tiles, int64_t inner, const float* top_diff,
                                     float* bottom_diff) {
  ENGINE_CUDA_KERNEL_LOOP(k, n) {
    const int64_t i = k / inner;
    const float* copies = top_diff + i * tiles * inner + (k - i * inner);
    float sum = copies[0];
    for (int t = 1; t < tiles; ++t) sum += copies[t * inner];
    bottom_diff[k] = sum;
  }
}

// Row indices held as floats (a bottom's values), checked as the CPU checks them: valid in
// [0, limit), whole numbers only with whole_only, else truncated; -1 for an invalid one.
struct ValueIndex {
  const float* value;
  float limit;  // compared as a float, as the CPU compares
  bool whole_only;
  __device__ int64_t operator()(int64_t r) const {
    const float x = value[r];
    if (!(x >= 0 && x < limit)) return -1;
    if (whole_only && x != floorf(x)) return -1;
    return static_cast<int64_t>(x);
  }
};

// Row indices the host has listed (Filter's kept items): valid by construction.
struct ListedIndex {
  const int* value;
  __device__ int64_t operator()(int64_t r) const { return value[r]; }
};

// dst row r = src row index(r) (+ bias), NaN for an invalid index.
template <class Index>
__global__ void gather_rows_kernel(int64_t n, int64_t width, Index index, const float* src,
                                   const float* bias, float* dst) {
  ENGINE_CUDA_KERNEL_LOOP(k, n) {
    const int64_t r = k / width;
    const int64_t c = k - r * width;
    const int64_t from = index(r);
    float value = from < 0 ? CUDART_NAN_F : src[from * width + c];
    if (bias) value += bias[c];
    dst[k] = value;
  }
}

// dst row index(r) = src row r, for indices that never repeat.
template <class Index>
__global__ void scatter_rows_kernel(int64_t n, int64_t width, Index index, const float* src,
                                    float* dst) {
  ENGINE_CUDA_KERNEL_LOOP(k, n) {
    const int64_t r = k / width;
    const int64_t to = index(r);
    if (to >= 0) dst[to * width + (k - r * width)] = src[k];
  }
}

// dst row index(r) += src row r. Indices may repeat, so a thread owns whole destination
// elements: column c of the rows whose index is `part` modulo `parts`, and adds their sources
// in increasing r, the CPU's order: no atomics, the same sums on every run.
template <class Index>
__global__ void scatter_add_rows_kernel(int64_t rows, int64_t width, int64_t parts, Index index,
                                        const float* src, float* dst) {
  ENGINE_CUDA_KERNEL_LOOP(t, parts * width) {
    const int64_t part = t / width;
    const int64_t c = t - part * width;
    for (int64_t r = 0; r < rows; ++r) {
      const int64_t to = index(r);
      if (to < 0 || to % parts != part) continue;
      dst[to * width + c] += src[r * width + c];
    }
  }
}

}  // namespace

// selection.cpp's own launchers.
void crop_window_gpu(const std::vector<int>& whole, const std::vector<int>& top_shape,
                     const std::vector<int>& offsets, const float* from, float* to,
                     bool into_top) {
  const int axes = static_cast<int>(whole.size());
  ENGINE_REQUIRE(axes <= kCropMaxAxes,
                 "Crop on the GPU handles at most " << kCropMaxAxes << " axes, got " << axes);
  CropWindow window{};
  window.axes = axes;
  int64_t count = 1, stride = 1;
  for (int a = axes - 1; a >= 0; --a) {
    window.top_shape[a] = top_shape[a];
    window.whole_stride[a] = stride;
    window.start += offsets[a] * stride;
    stride *= whole[a];
    count *= top_shape[a];
  }
  if (count == 0) return;
  crop_kernel<<<cuda_blocks(count), kCudaThreads>>>(count, window, from, to, into_top);
  ENGINE_CUDA_CHECK(cudaPeekAtLastError());
}

void tile_backward_gpu(int64_t outer, int tiles, int64_t inner, const float* top_diff,
                       float* bottom_diff) {
  const int64_t n = outer * inner;
  if (n == 0) return;
  tile_backward_kernel<<<cuda_blocks(n), kCudaThreads>>>(n, tiles, inner, top_diff, bottom_diff);
  ENGINE_CUDA_CHECK(cudaPeekAtLastError());
}

void filter_move_rows_gpu(int64_t rows, int64_t width, const int* kept, const float* from,
                          float* to, bool into_top) {
  const int64_t n = rows * width;
  if (n == 0) return;
  if (into_top) {
    gather_rows_kernel<<<cuda_blocks(n), kCudaThreads>>>(n, width, ListedIndex{kept}, from,
                                                         nullptr, to);
  } else {
    scatter_rows_kernel<<<cuda_blocks(n), kCudaThreads>>>(n, width, ListedIndex{kept}, from, to);
  }
  ENGINE_CUDA_CHECK(cudaPeekAtLastError());
}

namespace gpu {

void gather_rows(int64_t rows, int64_t width, const float* index, int64_t limit, bool whole_only,
                 const float* src, const float* bias, float* dst) {
  const int64_t n = rows * width;
  if (n == 0) return;
  const ValueIndex rule{index, static_cast<float>(limit), whole_only};
  gather_rows_kernel<<<cuda_blocks(n), kCudaThreads>>>(n, width, rule, src, bias, dst);
  ENGINE_CUDA_CHECK(cudaPeekAtLastError());
}

void scatter_add_rows(int64_t rows, int64_t width, const float* index, int64_t limit,
                      bool whole_only, const float* src, float* dst) {
  if (rows == 0 || width == 0 || limit == 0) return;
  // Enough destination parts that some 64K threads work, each scanning all the indices (a
  // broadcast read within a warp); never more parts than destination rows.
  constexpr int64_t kThreads = 1 << 16;
  int64_t parts = (kThreads + width - 1) / width;
  if (parts > limit) parts = limit;
  const ValueIndex rule{index, static_cast<float>(limit), whole_only};
  scatter_add_rows_kernel<<<cuda_blocks(parts * width), kCudaThreads>>>(rows, width, parts, rule,
                                                                        src, dst);
  ENGINE_CUDA_CHECK(cudaPeekAtLastError());
}

}  // namespace gpu
}  // namespace engine
