// Fusion of in-place layers into the layer before them: a Net finds a Convolution (or
// Deconvolution) whose top is then rewritten in place by per-channel affine layers (BatchNorm
// with stored statistics, Scale with a learned factor) that run no backward, and/or by a ReLU
// (or a Clip, MobileNet's ReLU6, that runs no backward), and has the convolution compute them in
// its CPU forward pass (the affine part folded into its weights and bias, or one pass over its
// output), instead of one or more passes per layer; those layers' forward passes are then
// skipped. A residual sum (Eltwise SUM) takes the ReLU or Clip alone
// (Layer::epilogue_takes_affine). The result is the same blob the layers would have left (in
// place, nobody sees the values between them). The affine coefficients are read from the layers
// at every pass, so loaded or edited parameters take effect. A ReLU's backward still runs as its
// own layer: it needs only the output, which the fused pass leaves.
#pragma once

#include <cstdint>
#include <limits>
#include <vector>

namespace engine {

class Layer;

// Values clamped to [low, high] last: a ReLU with negative_slope 0 is [0, infinity).
struct ChannelClamp {
  float low = 0;
  float high = std::numeric_limits<float>::infinity();
  bool is_relu() const { return low == 0 && high == std::numeric_limits<float>::infinity(); }
  // Whether 0 stays 0 (so blocked layouts' zero padding stays zero).
  bool keeps_zero() const { return low <= 0 && high >= 0; }
};

class ChannelEpilogue {
 public:
  using Clamp = ChannelClamp;

  // `affine`: the layers in net order, each whose channel_affine() is true; `clamp`: the
  // ReLU or Clip that comes last, if any.
  ChannelEpilogue(std::vector<const Layer*> affine, bool clamps, Clamp clamp = Clamp())
      : affine_(std::move(affine)), clamps_(clamps), clamp_(clamp) {}

  // data [num, channels, plane] = clamp(scale_c * data + shift_c), the maps of the affine
  // layers composed, then the clamp where there is one; with `affine` false, only the clamp
  // (the convolution computed the affine part with its parameters folded).
  void apply(int num, int channels, int64_t plane, float* data, bool affine = true) const;

  // The composed per-channel map x -> scale[c] * x + shift[c] (identity without affine layers).
  void coefficients(int channels, std::vector<float>* scale, std::vector<float>* shift) const;
  bool has_affine() const { return !affine_.empty(); }
  bool clamps() const { return clamps_; }
  const Clamp& clamp() const { return clamp_; }

 private:
  std::vector<const Layer*> affine_;
  bool clamps_ = false;
  Clamp clamp_;
  // apply()'s coefficients, kept so that a pass allocates nothing (a net runs on one thread).
  mutable std::vector<float> scale_, shift_;
};

}  // namespace engine
