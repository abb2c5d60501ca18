// What Caffe's loss layers share: predictions and labels as bottoms 0 and 1 with the same first
// dimension, one scalar top whose loss weight defaults to 1, no gradient to the labels, and the
// normalization of the summed loss.
#pragma once

#include <cstdint>
#include <vector>

#include "core/layer.hpp"

namespace engine {

// Caffe's floor under a probability before its logarithm (MultinomialLogisticLoss, InfogainLoss).
constexpr float kLogThreshold = 1e-20f;

// The normalization a LossParameter asks for: `normalization` when set, else the legacy
// `normalize` (true: VALID, false: BATCH_SIZE), else `unset` (VALID for most layers, BATCH_SIZE
// for SigmoidCrossEntropyLoss).
LossParameter::NormalizationMode normalization_mode(const LossParameter& param,
                                                    LossParameter::NormalizationMode unset);

// The divisor of a summed loss over `outer` x `inner` locations of which `valid` were not
// ignored; at least 1, so that a batch whose labels are all ignored gives 0, not NaN.
float loss_normalizer(LossParameter::NormalizationMode mode, int64_t outer, int64_t inner,
                      int64_t valid);

class LossLayer : public Layer {
 public:
  using Layer::Layer;
  int exact_bottoms() const override { return 2; }
  int exact_tops() const override { return 1; }
  bool is_loss() const override { return true; }
  bool allow_force_backward(int bottom_index) const override { return bottom_index != 1; }

  // Checks the first dimensions and makes top 0 a scalar.
  void reshape(const Blobs& bottom, const Blobs& top) override;

 protected:
  // Throws if backward is asked for the gradient of bottom `index` (labels, weights).
  void require_no_gradient(const std::vector<bool>& propagate_down, int index,
                           const char* what) const;
  // The loss weight backward starts from: d(loss)/d(top 0).
  static float loss_weight(const Blobs& top) { return top[0]->cpu_diff()[0]; }
};

}  // namespace engine
