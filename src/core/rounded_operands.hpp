// A layer pass with its operands in reduced precision, for an implementation that multiplies in
// fp32 (math/precision.hpp says why that computes what bf16 or fp16 hardware computes). The
// bottoms' data, the weights (parameter blob 0; biases stay fp32, as they do in hardware
// kernels) and in backward the tops' gradients are rounded into shadow blobs, which share
// everything else with the originals: a shadow bottom's diff is the bottom's, a shadow weight's
// diff the weight's, a shadow top's data the top's. So the layer's code runs unchanged, its
// gradients land where the net expects them, and the net's blobs keep their fp32 values.
#pragma once

#include <memory>
#include <vector>

#include "core/layer.hpp"

namespace engine {

class RoundedOperands {
 public:
  // Rounds `bottom`'s data and the weights blobs[0]; returns the shadow bottoms.
  const Blobs& forward_bottoms(Precision precision, const Blobs& bottom, const Blob* weights);
  // The forward pass's shadow bottoms, now sharing `bottom`'s diffs (which may have moved).
  const Blobs& backward_bottoms(const Blobs& bottom);
  // Rounds `top`'s diffs; returns the shadow tops.
  const Blobs& backward_tops(Precision precision, const Blobs& top);

  // While alive, blobs[0] is the rounded weights of the last forward_bottoms, sharing the
  // original's diff; the original is back when it ends.
  class WeightsSwapped {
   public:
    WeightsSwapped(RoundedOperands& operands, std::vector<std::shared_ptr<Blob>>& blobs);
    ~WeightsSwapped();
    WeightsSwapped(const WeightsSwapped&) = delete;
    WeightsSwapped& operator=(const WeightsSwapped&) = delete;

   private:
    std::vector<std::shared_ptr<Blob>>& blobs_;
    std::shared_ptr<Blob>& shadow_;
    bool swapped_ = false;
  };

 private:
  // The shadows, one per blob, kept from pass to pass so their memory is reused.
  static void shadows_of(std::vector<std::unique_ptr<Blob>>& owned, size_t count, Blobs* views);

  std::vector<std::unique_ptr<Blob>> bottoms_, tops_;
  Blobs bottom_views_, top_views_;
  std::shared_ptr<Blob> weights_ = std::make_shared<Blob>();
  bool have_weights_ = false;
};

}  // namespace engine
