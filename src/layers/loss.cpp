#include "layers/loss.hpp"

#include <algorithm>

namespace engine {

LossParameter::NormalizationMode normalization_mode(const LossParameter& param,
                                                    LossParameter::NormalizationMode unset) {
  if (param.has_normalization()) return param.normalization();
  if (param.has_normalize()) return param.normalize() ? LossParameter::VALID : LossParameter::BATCH_SIZE;
  return unset;
}

float loss_normalizer(LossParameter::NormalizationMode mode, int64_t outer, int64_t inner,
                      int64_t valid) {
  double value = 1;
  switch (mode) {
    case LossParameter::FULL:
      value = double(outer * inner);
      break;
    case LossParameter::VALID:
      value = double(valid);
      break;
    case LossParameter::BATCH_SIZE:
      value = double(outer);
      break;
    case LossParameter::NONE:
      value = 1;
      break;
  }
  return static_cast<float>(std::max(1.0, value));
}

void LossLayer::reshape(const Blobs& bottom, const Blobs& top) {
  const Blob& predictions = *bottom[0];
  const Blob& labels = *bottom[1];
  LAYER_REQUIRE(predictions.num_axes() > 0 && labels.num_axes() > 0 &&
                    predictions.shape(0) == labels.shape(0),
                "bottoms 0 and 1 must have the same first dimension, got "
                    << predictions.shape_string() << " and " << labels.shape_string());
  top[0]->reshape(std::vector<int>{});
}

void LossLayer::require_no_gradient(const std::vector<bool>& propagate_down, int index,
                                    const char* what) const {
  LAYER_REQUIRE(!(static_cast<int>(propagate_down.size()) > index && propagate_down[index]),
                "cannot backpropagate to the " << what << " (bottom " << index << ")");
}

}  // namespace engine
