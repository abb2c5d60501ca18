#include "core/layer.hpp"

#include <optional>

#include "core/context.hpp"
#include "core/rounded_operands.hpp"
#include "math/blas.hpp"
#include "math/precision.hpp"

namespace engine {
namespace {

// A pass on rounded operands lets cuBLAS use tensor cores on the GPU: their products are exact.
struct TensorCoresOnGpu {
#ifdef ENGINE_USE_CUDA
  TensorCoresOnGpu() {
    if (Context::mode() == Mode::GPU) gemms.emplace();
  }
  std::optional<gpu::TensorCoreGemms> gemms;
#endif
};

}  // namespace

Layer::Layer(const LayerParameter& param) : param_(param) {
  // Parameters handed in by the net (loaded weights) become the layer's blobs.
  for (const BlobProto& proto : param_.blobs()) {
    auto blob = std::make_shared<Blob>();
    blob->from_proto(proto);
    blobs_.push_back(blob);
  }
  param_.clear_blobs();  // the blobs hold the values now; keep one copy only
}

Layer::~Layer() = default;

void Layer::to_proto(LayerParameter* param, bool write_diff) const {
  *param = param_;
  param->clear_blobs();
  for (const auto& blob : blobs_) blob->to_proto(param->add_blobs(), write_diff);
}

void Layer::restore_state(const std::string& state) {
  ENGINE_FAIL(describe() << ": the saved state has an entry for this layer, but a layer of this "
                            "type keeps no state (was the net changed since the snapshot?)");
}

std::string Layer::describe() const { return "layer " + name() + " (" + type() + ")"; }

int Layer::canonical_axis(const Blob& blob, int axis, const char* parameter) const {
  LAYER_REQUIRE(axis >= -blob.num_axes() && axis < blob.num_axes(),
                parameter << " " << axis << " is out of range for a bottom of shape "
                          << blob.shape_string());
  return axis < 0 ? axis + blob.num_axes() : axis;
}

void Layer::check_blob_counts(const Blobs& bottom, const Blobs& top) const {
  const int bottoms = static_cast<int>(bottom.size());
  const int tops = static_cast<int>(top.size());
  LAYER_REQUIRE(exact_bottoms() < 0 || bottoms == exact_bottoms(),
                "takes " << exact_bottoms() << " bottom blob(s), got " << bottoms);
  LAYER_REQUIRE(min_bottoms() < 0 || bottoms >= min_bottoms(),
                "takes at least " << min_bottoms() << " bottom blob(s), got " << bottoms);
  LAYER_REQUIRE(max_bottoms() < 0 || bottoms <= max_bottoms(),
                "takes at most " << max_bottoms() << " bottom blob(s), got " << bottoms);
  LAYER_REQUIRE(exact_tops() < 0 || tops == exact_tops(),
                "produces " << exact_tops() << " top blob(s), got " << tops);
  LAYER_REQUIRE(min_tops() < 0 || tops >= min_tops(),
                "produces at least " << min_tops() << " top blob(s), got " << tops);
  LAYER_REQUIRE(max_tops() < 0 || tops <= max_tops(),
                "produces at most " << max_tops() << " top blob(s), got " << tops);
}

void Layer::setup(const Blobs& bottom, const Blobs& top) {
  check_blob_counts(bottom, top);
  layer_setup(bottom, top);
  reshape(bottom, top);
  const int tops = static_cast<int>(top.size());
  LAYER_REQUIRE(param_.loss_weight_size() == 0 || param_.loss_weight_size() == tops,
                "has " << param_.loss_weight_size() << " loss_weight values for " << tops
                       << " tops; give one per top or none");
  loss_.assign(top.size(), 0.0f);
  for (int i = 0; i < tops; ++i) {
    float weight = 0;
    if (param_.loss_weight_size() > 0) {
      weight = param_.loss_weight(i);
    } else if (is_loss() && i == 0) {
      weight = 1;
    }
    set_loss(i, weight);
  }
  param_propagate_down_.resize(blobs_.size(), true);
}

void Layer::set_loss(int top_index, float weight) {
  if (static_cast<int>(loss_.size()) <= top_index) loss_.resize(top_index + 1, 0.0f);
  loss_[top_index] = weight;
}

void Layer::set_param_propagate_down(int i, bool value) {
  if (static_cast<int>(param_propagate_down_.size()) <= i) param_propagate_down_.resize(i + 1, true);
  param_propagate_down_[i] = value;
}

float Layer::forward(const Blobs& bottom, const Blobs& top) {
  reshape(bottom, top);
  [[maybe_unused]] const bool gpu = Context::mode() == Mode::GPU;
  if (rounds_operands()) {
    if (!rounded_) rounded_ = std::make_unique<RoundedOperands>();
    const Blobs& rounded_bottom =
        rounded_->forward_bottoms(precision_, bottom, blobs_.empty() ? nullptr : blobs_[0].get());
    RoundedOperands::WeightsSwapped weights(*rounded_, blobs_);
    [[maybe_unused]] TensorCoresOnGpu tensor_cores;
    run_forward(rounded_bottom, top);
  } else {
    run_forward(bottom, top);
  }
  // A top with a loss weight contributes weight * sum(top); its diff is set to the weight so
  // that backward starts from d(loss)/d(top).
  float total = 0;
  for (size_t i = 0; i < top.size(); ++i) {
    const float weight = loss(static_cast<int>(i));
    if (weight == 0) continue;
    Blob& blob = *top[i];
#ifdef ENGINE_USE_CUDA
    if (gpu) {
      // On the device, so that a GPU loss layer's top never travels to the host and back.
      gpu::set(blob.count(), weight, blob.mutable_gpu_diff());
      total += static_cast<float>(gpu::dot(blob.count(), blob.gpu_data(), blob.gpu_diff()));
      continue;
    }
#endif
    total += weight * static_cast<float>(cpu::sum(blob.count(), blob.cpu_data()));
    cpu::set(blob.count(), weight, blob.mutable_cpu_diff());
  }
  return total;
}

void Layer::backward(const Blobs& top, const std::vector<bool>& propagate_down,
                     const Blobs& bottom) {
  if (rounds_operands() && rounded_) {
    const Blobs& rounded_top = rounded_->backward_tops(precision_, top);
    const Blobs& rounded_bottom = rounded_->backward_bottoms(bottom);
    RoundedOperands::WeightsSwapped weights(*rounded_, blobs_);
    [[maybe_unused]] TensorCoresOnGpu tensor_cores;
    run_backward(rounded_top, propagate_down, rounded_bottom);
  } else {
    run_backward(top, propagate_down, bottom);
  }
}

void Layer::run_forward(const Blobs& bottom, const Blobs& top) {
  if (Context::mode() == Mode::GPU) {
    forward_gpu(bottom, top);
  } else {
    forward_cpu(bottom, top);
  }
}

void Layer::run_backward(const Blobs& top, const std::vector<bool>& propagate_down,
                         const Blobs& bottom) {
  if (Context::mode() == Mode::GPU) {
    backward_gpu(top, propagate_down, bottom);
  } else {
    backward_cpu(top, propagate_down, bottom);
  }
}

}  // namespace engine
