// What every CUDA kernel file shares: the launch shape and the grid-stride loop.
#pragma once

#include <cstdint>

namespace engine {

constexpr int kCudaThreads = 256;

inline int cuda_blocks(int64_t n) {
  const int64_t blocks = (n + kCudaThreads - 1) / kCudaThreads;
  return static_cast<int>(blocks < 65535 ? (blocks > 0 ? blocks : 1) : 65535);
}

}  // namespace engine

#define ENGINE_CUDA_KERNEL_LOOP(i, n)                                             \
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < (n);        \
       i += int64_t(blockDim.x) * gridDim.x)

// In a void launcher: returns when there is nothing to do (n <= 0), else launches
// kernel(n, args...) over n elements and checks the launch. Needs <cuda_runtime.h> and
// core/errors.hpp where it is used.
#define ENGINE_CUDA_LAUNCH(kernel, n, ...)                                 \
  do {                                                                     \
    const int64_t count_ = (n);                                            \
    if (count_ <= 0) return;                                               \
    kernel<<<cuda_blocks(count_), kCudaThreads>>>(count_, __VA_ARGS__);    \
    ENGINE_CUDA_CHECK(cudaPeekAtLastError());                              \
  } while (0)
