// Random fills drawn from the calling thread's Context generator, so a fixed seed repeats them.
#pragma once

#include <cstdint>

namespace engine {

void rng_uniform(int64_t n, float low, float high, float* out);
void rng_gaussian(int64_t n, float mean, float stddev, float* out);
// out[i] = 1 with probability p, else 0.
void rng_bernoulli(int64_t n, float p, unsigned* out);
// A 64-bit seed for a counter-based device generator (math/cuda_random.cuh), from two draws
// of the Context generator in a fixed order.
uint64_t rng_seed();

}  // namespace engine
