// ContrastiveLoss's per-pair gradient factor, shared by the CPU loop (losses.cpp) and the
// kernel (losses.cu) so that both devices compute the same floats.
#pragma once

#include <cmath>

#include "core/host_device.hpp"

namespace engine {

// The factor that multiplies (a - b) in a pair's gradient, alpha = sign * loss weight / N:
// similar pairs alpha; dissimilar pairs inside the margin -alpha (legacy: margin - d^2) or
// -alpha (margin - d) / (d + 1e-4) (Caffe's 1e-4 keeps d = 0 from dividing by zero); pairs
// outside the margin 0.
ENGINE_HOST_DEVICE inline float contrastive_pair_factor(float alpha, float distance_sq,
                                                        bool similar, float margin, bool legacy) {
  if (similar) return alpha;
  float gap, factor;
  if (legacy) {
    gap = margin - distance_sq;
    factor = -alpha;
  } else {
    const float distance = static_cast<float>(sqrt(double(distance_sq)));
    gap = margin - distance;
    factor = -alpha * gap / (distance + 1e-4f);
  }
  return gap > 0 ? factor : 0.0f;
}

}  // namespace engine
