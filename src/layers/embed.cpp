// Layers whose output is a learned blob: Embed (rows of a [input_dim, num_output] table looked
// up by integer indices, plus a bias) and Parameter (the blob itself as the top).
#include <cmath>
#include <vector>

#include "core/filler.hpp"
#include "core/layer.hpp"
#include "core/layer_registry.hpp"
#include "layers/gpu_kernels.hpp"
#include "math/blas.hpp"

namespace engine {
namespace {

// The top is the bottom's shape plus an axis of num_output: each bottom value, an index in
// [0, input_dim), selects a row of the weights. No gradient flows to the indices.
class EmbedLayer : public Layer {
 public:
  using Layer::Layer;
  int exact_bottoms() const override { return 1; }
  int exact_tops() const override { return 1; }
  bool allow_force_backward(int) const override { return false; }

  void layer_setup(const Blobs& bottom, const Blobs& top) override {
    const EmbedParameter& p = param_.embed_param();
    LAYER_REQUIRE(p.num_output() > 0, "embed_param needs num_output > 0, got " << p.num_output());
    LAYER_REQUIRE(p.input_dim() > 0,
                  "embed_param needs input_dim > 0 (the number of indices), got " << p.input_dim());
    outputs_ = static_cast<int>(p.num_output());
    inputs_ = static_cast<int>(p.input_dim());
    const std::vector<int> weight_shape = {inputs_, outputs_};
    const std::vector<int> bias_shape = {outputs_};
    const size_t expected = p.bias_term() ? 2 : 1;
    if (!blobs_.empty()) {
      LAYER_REQUIRE(blobs_.size() == expected,
                    "expects " << expected << " parameter blob(s) (weights"
                               << (p.bias_term() ? " and bias" : "") << "), got " << blobs_.size());
      LAYER_REQUIRE(blobs_[0]->shape() == weight_shape,
                    "weights should have shape " << shape_string(weight_shape) << ", got "
                                                 << blobs_[0]->shape_string());
      LAYER_REQUIRE(!p.bias_term() || blobs_[1]->shape() == bias_shape,
                    "bias should have shape " << shape_string(bias_shape) << ", got "
                                              << blobs_[1]->shape_string());
      return;
    }
    blobs_.push_back(std::make_shared<Blob>(weight_shape));
    fill(p.weight_filler(), blobs_[0].get());
    if (p.bias_term()) {
      blobs_.push_back(std::make_shared<Blob>(bias_shape));
      fill(p.bias_filler(), blobs_[1].get());
    }
  }

  void reshape(const Blobs& bottom, const Blobs& top) override {
    std::vector<int> shape = bottom[0]->shape();
    shape.push_back(outputs_);
    top[0]->reshape(shape);
  }

 protected:
  void forward_cpu(const Blobs& bottom, const Blobs& top) override {
#ifdef ENGINE_USE_CUDA
    if (math::on_gpu()) {
      // Checking the indices here would bring them to the host every pass: an invalid one
      // gives a row of NaN instead (gather_rows).
      gpu::gather_rows(bottom[0]->count(), outputs_, bottom[0]->gpu_data(), inputs_, true,
                       blobs_[0]->gpu_data(),
                       param_.embed_param().bias_term() ? blobs_[1]->gpu_data() : nullptr,
                       top[0]->mutable_gpu_data());
      return;
    }
#endif
    const float* index = bottom[0]->cpu_data();
    const float* weights = blobs_[0]->cpu_data();
    const float* bias = param_.embed_param().bias_term() ? blobs_[1]->cpu_data() : nullptr;
    float* out = top[0]->mutable_cpu_data();
    for (int64_t n = 0; n < bottom[0]->count(); ++n) {
      const int64_t row = checked_index(index, n, bottom[0]->count());
      float* o = out + n * outputs_;
      cpu::copy(outputs_, weights + row * outputs_, o);
      if (bias) cpu::axpy(outputs_, 1.0f, bias, o);
    }
  }

  void backward_cpu(const Blobs& top, const std::vector<bool>& propagate_down,
                    const Blobs& bottom) override {
    LAYER_REQUIRE(!propagate_down[0], "has no gradient for its bottom (the indices)");
    const float* top_diff = top[0]->diff();
    const int64_t count = bottom[0]->count();
    if (param_propagate_down(0)) add_weight_diff(bottom[0]->data(), top_diff, count);
    if (param_.embed_param().bias_term() && param_propagate_down(1) && count > 0) {
      // The column sums of the top's gradient, as one product with a vector of ones.
      if (ones_.count() < count) {
        ones_.reshape({static_cast<int>(count)});
        ones_.set_data(1.0f);
      }
      math::gemv(true, static_cast<int>(count), outputs_, 1.0f, top_diff, ones_.data(), 1.0f,
                 blobs_[1]->mutable_diff());
    }
  }

 private:
  // Adds each top row's gradient to the weight row it came from, in the order of the rows.
  void add_weight_diff(const float* index, const float* top_diff, int64_t count) {
#ifdef ENGINE_USE_CUDA
    if (math::on_gpu()) {
      gpu::scatter_add_rows(count, outputs_, index, inputs_, true, top_diff,
                            blobs_[0]->mutable_gpu_diff());
      return;
    }
#endif
    float* weight_diff = blobs_[0]->mutable_cpu_diff();
    for (int64_t n = 0; n < count; ++n) {
      const int64_t row = checked_index(index, n, count);
      cpu::axpy(outputs_, 1.0f, top_diff + n * outputs_, weight_diff + row * outputs_);
    }
  }

  int64_t checked_index(const float* index, int64_t n, int64_t count) const {
    const float value = index[n];
    LAYER_REQUIRE(value >= 0 && value < inputs_ && value == std::floor(value),
                  "bottom value " << value << " (element " << n << " of " << count
                                  << ") is not an index in [0, " << inputs_
                                  << "), the input_dim");
    return static_cast<int64_t>(value);
  }

  int outputs_ = 0, inputs_ = 0;
  Blob ones_;  // at least as many ones as the bottom has indices
};

// One learned blob of parameter_param's shape, initialised to zero (weights loaded from a model,
// or shared with another layer, replace it). The top shares its data and diff, so whatever
// consumes the top writes the parameter's gradient directly.
class ParameterLayer : public Layer {
 public:
  using Layer::Layer;
  int exact_bottoms() const override { return 0; }
  int exact_tops() const override { return 1; }

  void layer_setup(const Blobs& bottom, const Blobs& top) override {
    const ParameterParameter& p = param_.parameter_param();
    LAYER_REQUIRE(p.has_shape(), "parameter_param needs a shape");
    Blob wanted;
    wanted.reshape(p.shape());
    if (!blobs_.empty()) {
      LAYER_REQUIRE(blobs_.size() == 1, "expects 1 parameter blob, got " << blobs_.size());
      LAYER_REQUIRE(blobs_[0]->shape() == wanted.shape(),
                    "the parameter should have shape " << wanted.shape_string() << ", got "
                                                       << blobs_[0]->shape_string());
      return;
    }
    blobs_.push_back(std::make_shared<Blob>(wanted.shape()));
  }

  void reshape(const Blobs& bottom, const Blobs& top) override {
    top[0]->reshape_like(*blobs_[0]);
    top[0]->share_data(*blobs_[0]);
    top[0]->share_diff(*blobs_[0]);
  }

 protected:
  void forward_cpu(const Blobs& bottom, const Blobs& top) override {}
};

}  // namespace
}  // namespace engine

ENGINE_LAYER_FACTORY(Embed, EmbedLayer)
ENGINE_LAYER_FACTORY(Parameter, ParameterLayer)
