// Eltwise MAX on the GPU: the running maximum and which bottom holds it (the other operations
// are gpu:: primitives).
#include <cuda_runtime.h>

#include "core/errors.hpp"
#include "math/cuda_kernel.cuh"

namespace engine {
namespace {

// Bottom 1 wins a tie with bottom 0, as on the CPU.
__global__ void max_first_kernel(int64_t n, const float* a, const float* b, float* out,
                                 int* winner) {
  ENGINE_CUDA_KERNEL_LOOP(j, n) {
    const bool second = !(a[j] > b[j]);
    out[j] = second ? b[j] : a[j];
    winner[j] = second ? 1 : 0;
  }
}

// A later bottom must be strictly greater to win.
__global__ void max_next_kernel(int64_t n, const float* c, int index, float* out, int* winner) {
  ENGINE_CUDA_KERNEL_LOOP(j, n) {
    if (c[j] > out[j]) {
      out[j] = c[j];
      winner[j] = index;
    }
  }
}

__global__ void max_backward_kernel(int64_t n, const float* top_diff, const int* winner,
                                    int index, float* diff) {
  ENGINE_CUDA_KERNEL_LOOP(j, n) { diff[j] = winner[j] == index ? top_diff[j] : 0.0f; }
}

}  // namespace

void eltwise_max_forward_gpu(int64_t n, const float* const* bottoms, int count, float* out,
                             int* winner) {
  if (n == 0) return;
  max_first_kernel<<<cuda_blocks(n), kCudaThreads>>>(n, bottoms[0], bottoms[1], out, winner);
  ENGINE_CUDA_CHECK(cudaPeekAtLastError());
  for (int i = 2; i < count; ++i) {
    max_next_kernel<<<cuda_blocks(n), kCudaThreads>>>(n, bottoms[i], i, out, winner);
    ENGINE_CUDA_CHECK(cudaPeekAtLastError());
  }
}

void eltwise_max_backward_gpu(int64_t n, const float* top_diff, const int* winner, int index,
                              float* diff) {
  if (n == 0) return;
  max_backward_kernel<<<cuda_blocks(n), kCudaThreads>>>(n, top_diff, winner, index, diff);
  ENGINE_CUDA_CHECK(cudaPeekAtLastError());
}

}  // namespace engine
