// The CUDA kernel of Dropout (activations.cpp). ReLU, Sigmoid and TanH run on the shared
// elementwise kernel template (elementwise_ops.cu).
#include <cuda_runtime.h>

#include "core/errors.hpp"
#include "layers/gpu_kernels.hpp"
#include "math/cuda_kernel.cuh"

namespace engine {
namespace gpu {
namespace {

// SplitMix64's output function at position `index` of the stream `seed`: a counter-based
// generator, so any element's draw is computed without the others'.
__device__ uint32_t hash_draw(uint64_t seed, uint64_t index) {
  uint64_t z = seed + (index + 1) * 0x9E3779B97F4A7C15ull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  z ^= z >> 31;
  return static_cast<uint32_t>(z >> 32);
}

__global__ void dropout_kernel(int64_t n, const float* x, float* y, uint64_t seed,
                               uint32_t threshold, float scale) {
  ENGINE_CUDA_KERNEL_LOOP(i, n) {
    y[i] = hash_draw(seed, static_cast<uint64_t>(i)) >= threshold ? x[i] * scale : 0.0f;
  }
}

}  // namespace

#define ENGINE_LAUNCH(kernel, n, ...)                                   \
  do {                                                                  \
    if ((n) <= 0) return;                                               \
    kernel<<<cuda_blocks(n), kCudaThreads>>>((n), __VA_ARGS__);         \
    ENGINE_CUDA_CHECK(cudaPeekAtLastError());                           \
  } while (0)

void dropout(int64_t n, const float* x, float* y, uint64_t seed, uint32_t threshold, float scale) {
  ENGINE_LAUNCH(dropout_kernel, n, x, y, seed, threshold, scale);
}

#undef ENGINE_LAUNCH

}  // namespace gpu
}  // namespace engine
