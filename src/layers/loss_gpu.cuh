// What the loss layers' kernels share (losses.cu, softmax.cu).
#pragma once

namespace engine {

// loss_normalizer on the device: for VALID (by_valid) from the count of labelled locations the
// device holds, else the fixed divisor the host computed, so no count comes back to the host.
__device__ inline float normalizer_of(bool by_valid, const float* valid, float fixed) {
  return by_valid ? fmaxf(1.0f, *valid) : fixed;
}

// *loss = sums[0] / normalizer_of(by_valid, sums + 1, fixed_normalizer): a summed loss and its
// label count (device memory) to the top, without a trip to the host (losses.cu).
void normalized_loss_gpu(const float* sums, bool by_valid, float fixed_normalizer, float* loss);

}  // namespace engine
