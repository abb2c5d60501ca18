// Random draws inside CUDA kernels, from a counter-based generator: element `index` of the
// stream `seed` is a hash of the pair, so any element's draw is computed without the others'
// and no generator state lives on the device. Layers draw a fresh seed per pass from the
// Context generator (rng_seed, math/random.hpp), so a fixed seed repeats their draws.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

namespace engine {

// SplitMix64's output function at position `index` of the stream `seed`: a uniform 32-bit
// integer.
__device__ inline uint32_t hash_draw(uint64_t seed, uint64_t index) {
  uint64_t z = seed + (index + 1) * 0x9E3779B97F4A7C15ull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  z ^= z >> 31;
  return static_cast<uint32_t>(z >> 32);
}

// A uniform float in the open interval (0, 1): the draw's top 23 bits, centred in their step
// (23, so that the centre is exact in a float and the largest value stays below 1).
__device__ inline float hash_uniform_open(uint64_t seed, uint64_t index) {
  return (static_cast<float>(hash_draw(seed, index) >> 9) + 0.5f) * (1.0f / 8388608.0f);
}

}  // namespace engine
