// Fusion of in-place layers into the convolution before them: a Net finds a Convolution (or
// Deconvolution) whose top is then rewritten in place by per-channel affine layers (BatchNorm
// with stored statistics, Scale with a learned factor) that run no backward, and/or by a ReLU,
// and has the convolution compute them at the end of its CPU forward pass, in one pass over its
// output instead of one or more per layer; those layers' forward passes are then skipped. The
// result is the same blob the layers would have left (in place, nobody sees the values between
// them). The affine coefficients are read from the layers at every pass, so loaded or edited
// parameters take effect. A ReLU's backward still runs as its own layer: it needs only the
// output, which the fused pass leaves.
#pragma once

#include <cstdint>
#include <vector>

namespace engine {

class Layer;

class ChannelEpilogue {
 public:
  // `affine`: the layers in net order, each whose channel_affine() is true; `relu`: a ReLU with
  // negative_slope 0 comes last.
  ChannelEpilogue(std::vector<const Layer*> affine, bool relu)
      : affine_(std::move(affine)), relu_(relu) {}

  // data [num, channels, plane] = relu(scale_c * data + shift_c), the maps of the affine layers
  // composed, then the ReLU where there is one.
  void apply(int num, int channels, int64_t plane, float* data) const;

  // The composed per-channel map x -> scale[c] * x + shift[c] (identity without affine layers).
  void coefficients(int channels, std::vector<float>* scale, std::vector<float>* shift) const;
  bool has_affine() const { return !affine_.empty(); }
  bool relu() const { return relu_; }

 private:
  std::vector<const Layer*> affine_;
  bool relu_ = false;
  // apply()'s coefficients, kept so that a pass allocates nothing (a net runs on one thread).
  mutable std::vector<float> scale_, shift_;
};

}  // namespace engine
