#include "core/channel_epilogue.hpp"

#include <algorithm>

#include "core/layer.hpp"
#include "math/blas.hpp"
#include "math/parallel.hpp"
#include "math/simd.hpp"

namespace engine {
namespace {

ENGINE_VECTORIZED void affine_plane(int64_t plane, float scale, float shift, bool clamps,
                                    float low, float high, float* data) {
  if (clamps) {
    for (int64_t i = 0; i < plane; ++i) {
      data[i] = std::min(std::max(scale * data[i] + shift, low), high);
    }
  } else {
    for (int64_t i = 0; i < plane; ++i) data[i] = scale * data[i] + shift;
  }
}

}  // namespace

void ChannelEpilogue::coefficients(int channels, std::vector<float>* scale,
                                   std::vector<float>* shift) const {
  scale->assign(channels, 1.0f);
  shift->assign(channels, 0.0f);
  for (const Layer* layer : affine_) {
    ENGINE_REQUIRE(layer->compose_channel_affine(channels, scale->data(), shift->data()),
                   layer->describe() << ": is no longer a per-channel map of " << channels
                                     << " channels, so it cannot be fused into the convolution "
                                        "before it");
  }
}

void ChannelEpilogue::apply(int num, int channels, int64_t plane, float* data,
                            bool affine) const {
  if (!affine) {
    if (!clamps_) return;
    cpu::parallel_chunks(int64_t(num) * channels * plane, [&](int64_t begin, int64_t end) {
      cpu::clamp(end - begin, clamp_.low, clamp_.high, data + begin);
    });
    return;
  }
  coefficients(channels, &scale_, &shift_);
  const int64_t planes = int64_t(num) * channels;
  cpu::parallel_for(planes, plane, [&](int64_t p, int) {
    const int c = static_cast<int>(p % channels);
    affine_plane(plane, scale_[c], shift_[c], clamps_, clamp_.low, clamp_.high, data + p * plane);
  });
}

}  // namespace engine
