#include "core/rounded_operands.hpp"

#include "math/precision.hpp"

namespace engine {

void RoundedOperands::shadows_of(std::vector<std::unique_ptr<Blob>>& owned, size_t count,
                                 Blobs* views) {
  if (views->size() == count) return;  // the same blobs as the last pass: nothing to allocate
  while (owned.size() < count) owned.push_back(std::make_unique<Blob>());
  views->clear();
  for (size_t i = 0; i < count; ++i) views->push_back(owned[i].get());
}

const Blobs& RoundedOperands::forward_bottoms(Precision precision, const Blobs& bottom,
                                              const Blob* weights) {
  shadows_of(bottoms_, bottom.size(), &bottom_views_);
  for (size_t i = 0; i < bottom.size(); ++i) {
    Blob& shadow = *bottom_views_[i];
    shadow.reshape_like(*bottom[i]);
    math::round_to(precision, bottom[i]->count(), bottom[i]->data(), shadow.mutable_data());
    shadow.share_diff(*bottom[i]);
  }
  have_weights_ = weights != nullptr;
  if (have_weights_) {
    weights_->reshape_like(*weights);
    math::round_to(precision, weights->count(), weights->data(), weights_->mutable_data());
  }
  return bottom_views_;
}

const Blobs& RoundedOperands::backward_bottoms(const Blobs& bottom) {
  ENGINE_REQUIRE(bottom.size() == bottom_views_.size(),
                 "backward with " << bottom.size() << " bottoms after a forward pass with "
                                  << bottom_views_.size());
  for (size_t i = 0; i < bottom.size(); ++i) bottom_views_[i]->share_diff(*bottom[i]);
  return bottom_views_;
}

const Blobs& RoundedOperands::backward_tops(Precision precision, const Blobs& top) {
  shadows_of(tops_, top.size(), &top_views_);
  for (size_t i = 0; i < top.size(); ++i) {
    Blob& shadow = *top_views_[i];
    shadow.reshape_like(*top[i]);
    shadow.share_data(*top[i]);
    math::round_to(precision, top[i]->count(), top[i]->diff(), shadow.mutable_diff());
  }
  return top_views_;
}

RoundedOperands::WeightsSwapped::WeightsSwapped(RoundedOperands& operands,
                                                std::vector<std::shared_ptr<Blob>>& blobs)
    : blobs_(blobs), shadow_(operands.weights_) {
  if (!operands.have_weights_ || blobs_.empty()) return;
  shadow_->share_diff(*blobs_[0]);
  std::swap(blobs_[0], shadow_);
  swapped_ = true;
}

RoundedOperands::WeightsSwapped::~WeightsSwapped() {
  if (swapped_) std::swap(blobs_[0], shadow_);
}

}  // namespace engine
