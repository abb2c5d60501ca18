// The CUDA kernel of Dropout (activations.cpp). ReLU, Sigmoid and TanH run on the shared
// elementwise kernel template (elementwise_ops.cu).
#include <cuda_runtime.h>

#include "core/errors.hpp"
#include "layers/gpu_kernels.hpp"
#include "math/cuda_kernel.cuh"
#include "math/cuda_random.cuh"

namespace engine {
namespace gpu {
namespace {

__global__ void dropout_kernel(int64_t n, const float* x, float* y, uint64_t seed,
                               uint32_t threshold, float scale) {
  ENGINE_CUDA_KERNEL_LOOP(i, n) {
    y[i] = hash_draw(seed, static_cast<uint64_t>(i)) >= threshold ? x[i] * scale : 0.0f;
  }
}

}  // namespace

void dropout(int64_t n, const float* x, float* y, uint64_t seed, uint32_t threshold, float scale) {
  ENGINE_CUDA_LAUNCH(dropout_kernel, n, x, y, seed, threshold, scale);
}

}  // namespace gpu
}  // namespace engine
