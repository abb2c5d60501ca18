#include "math/random.hpp"

#include <cmath>
#include <random>

#include "core/context.hpp"
#include "core/errors.hpp"

namespace engine {

void rng_uniform(int64_t n, float low, float high, float* out) {
  CHECK_LE(low, high);
  // nextafter makes the range closed, as Caffe's boost::uniform_real over [a, b] is meant to be.
  std::uniform_real_distribution<float> distribution(low, std::nextafter(high, HUGE_VALF));
  auto& rng = Context::rng();
  for (int64_t i = 0; i < n; ++i) out[i] = distribution(rng);
}

void rng_gaussian(int64_t n, float mean, float stddev, float* out) {
  CHECK_GT(stddev, 0);
  std::normal_distribution<float> distribution(mean, stddev);
  auto& rng = Context::rng();
  for (int64_t i = 0; i < n; ++i) out[i] = distribution(rng);
}

void rng_bernoulli(int64_t n, float p, unsigned* out) {
  CHECK_GE(p, 0);
  CHECK_LE(p, 1);
  std::bernoulli_distribution distribution(p);
  auto& rng = Context::rng();
  for (int64_t i = 0; i < n; ++i) out[i] = distribution(rng) ? 1u : 0u;
}

uint64_t rng_seed() {
  auto& rng = Context::rng();
  const uint64_t high = rng();
  return (high << 32) | rng();
}

}  // namespace engine
