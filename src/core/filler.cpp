#include "core/filler.hpp"

#include <cmath>
#include <vector>

#include "core/errors.hpp"
#include "math/blas.hpp"
#include "math/random.hpp"

namespace engine {

namespace {

// The fan-in/fan-out count that xavier and msra scale by.
float fan(const FillerParameter& filler, const Blob& blob) {
  const float fan_in = static_cast<float>(blob.count()) / blob.shape(0);
  const float fan_out =
      blob.num_axes() > 1 ? static_cast<float>(blob.count()) / blob.shape(1) : blob.count();
  switch (filler.variance_norm()) {
    case FillerParameter::FAN_OUT:
      return fan_out;
    case FillerParameter::AVERAGE:
      return (fan_in + fan_out) / 2;
    default:
      return fan_in;
  }
}

}  // namespace

void fill(const FillerParameter& filler, Blob* blob) {
  const int64_t count = blob->count();
  if (count == 0) return;
  float* data = blob->mutable_cpu_data();
  const std::string& type = filler.type();
  if (type == "constant") {
    cpu::set(count, filler.value(), data);
  } else if (type == "uniform") {
    ENGINE_REQUIRE(filler.min() <= filler.max(), "uniform filler: min " << filler.min()
                                                                        << " exceeds max "
                                                                        << filler.max());
    rng_uniform(count, filler.min(), filler.max(), data);
  } else if (type == "gaussian") {
    ENGINE_REQUIRE(filler.std() > 0, "gaussian filler: std must be positive, got " << filler.std());
    rng_gaussian(count, filler.mean(), filler.std(), data);
    if (filler.sparse() >= 0) {
      // Keep each weight with probability sparse / outputs, so each output has about `sparse`
      // non-zero inputs.
      ENGINE_REQUIRE(blob->num_axes() >= 1, "gaussian filler: sparse needs a blob with an axis");
      const float keep = static_cast<float>(filler.sparse()) / blob->shape(0);
      ENGINE_REQUIRE(keep <= 1, "gaussian filler: sparse " << filler.sparse()
                                                           << " exceeds the number of outputs "
                                                           << blob->shape(0));
      std::vector<unsigned> mask(count);
      rng_bernoulli(count, keep, mask.data());
      for (int64_t i = 0; i < count; ++i) data[i] *= mask[i];
    }
  } else if (type == "positive_unitball") {
    rng_uniform(count, 0, 1, data);
    const int64_t rows = blob->shape(0);
    const int64_t row_size = count / rows;
    for (int64_t r = 0; r < rows; ++r) {
      float* row = data + r * row_size;
      const double total = cpu::sum(row_size, row);
      cpu::scale(row_size, static_cast<float>(1.0 / total), row);
    }
  } else if (type == "xavier") {
    const float limit = std::sqrt(3.0f / fan(filler, *blob));
    rng_uniform(count, -limit, limit, data);
  } else if (type == "msra") {
    rng_gaussian(count, 0, std::sqrt(2.0f / fan(filler, *blob)), data);
  } else if (type == "bilinear") {
    // Weights of a deconvolution that upsamples by bilinear interpolation.
    ENGINE_REQUIRE(blob->num_axes() == 4 && blob->shape(2) == blob->shape(3),
                   "bilinear filler needs a 4-D blob with square kernels, got "
                       << blob->shape_string());
    const int width = blob->shape(3);
    const int height = blob->shape(2);
    const float f = std::ceil(width / 2.0f);
    const float center = (width - 1) / (2.0f * f);
    for (int64_t i = 0; i < count; ++i) {
      const float x = i % width;
      const float y = (i / width) % height;
      data[i] = (1 - std::fabs(x / f - center)) * (1 - std::fabs(y / f - center));
    }
  } else {
    ENGINE_FAIL("unknown filler type '"
                << type
                << "'; known: constant, uniform, gaussian, positive_unitball, xavier, msra, "
                   "bilinear");
  }
}

}  // namespace engine
