// Scale (y = x * s, optionally + b) and Bias (y = x + b), where s and b span the axes
// [axis, axis + k) of bottom 0 and are broadcast over the others. The operand is a learned blob
// (one bottom) or the second bottom. Both layers view bottom 0 as [outer][dim][inner], dim being
// the operand's count; one helper computes that view and the kernels below use it.
#include "core/filler.hpp"
#include "core/layer.hpp"
#include "core/layer_registry.hpp"
#include "layers/elementwise.hpp"
#include "layers/gpu_kernels.hpp"
#include "math/blas.hpp"

namespace engine {

namespace {

struct Broadcast {
  int64_t outer = 0, dim = 0, inner = 0;
};

// Each helper runs on the side the mode computes on: the loops here, or the kernels of
// scale_bias.cu (declared in gpu_kernels.hpp: Convolution's bias uses them too).

// y[o][d][i] = x[o][d][i] * scale[d]  (y may be x)
void broadcast_multiply(const Broadcast& g, const float* x, const float* scale, float* y) {
#ifdef ENGINE_USE_CUDA
  if (math::on_gpu()) return broadcast_multiply_gpu(g.outer, g.dim, g.inner, x, scale, y);
#endif
  for (int64_t o = 0; o < g.outer; ++o) {
    const int64_t base = o * g.dim * g.inner;
    if (g.inner == 1) {
      cpu::mul(g.dim, x + base, scale, y + base);
      continue;
    }
    for (int64_t d = 0; d < g.dim; ++d) {
      cpu::scale(g.inner, scale[d], x + base + d * g.inner, y + base + d * g.inner);
    }
  }
}

// y[o][d][i] = x[o][d][i] + bias[d]  (y may be x)
void broadcast_add(const Broadcast& g, const float* x, const float* bias, float* y) {
#ifdef ENGINE_USE_CUDA
  if (math::on_gpu()) return broadcast_add_gpu(g.outer, g.dim, g.inner, x, bias, y);
#endif
  cpu::copy(g.outer * g.dim * g.inner, x, y);
  for (int64_t o = 0; o < g.outer; ++o) {
    float* rows = y + o * g.dim * g.inner;
    if (g.inner == 1) {
      cpu::add(g.dim, rows, bias, rows);
      continue;
    }
    for (int64_t d = 0; d < g.dim; ++d) cpu::add_scalar(g.inner, bias[d], rows + d * g.inner);
  }
}

// out[d] (+)= sum over o and i of a[o][d][i] (times b[o][d][i] when b is given): the gradient of
// the broadcast operand.
void reduce_to_operand(const Broadcast& g, const float* a, const float* b, bool accumulate,
                       float* out) {
#ifdef ENGINE_USE_CUDA
  if (math::on_gpu()) return reduce_to_operand_gpu(g.outer, g.dim, g.inner, a, b, accumulate, out);
#endif
  if (!accumulate) cpu::set(g.dim, 0.0f, out);
  for (int64_t o = 0; o < g.outer; ++o) {
    const int64_t base = o * g.dim * g.inner;
    if (g.inner == 1) {
      const float* row_a = a + base;
      if (b) {
        const float* row_b = b + base;
        for (int64_t d = 0; d < g.dim; ++d) out[d] += row_a[d] * row_b[d];
      } else {
        for (int64_t d = 0; d < g.dim; ++d) out[d] += row_a[d];
      }
      continue;
    }
    for (int64_t d = 0; d < g.dim; ++d) {
      const int64_t offset = base + d * g.inner;
      out[d] += static_cast<float>(b ? cpu::dot(g.inner, a + offset, b + offset)
                                     : cpu::sum(g.inner, a + offset));
    }
  }
}

class BroadcastLayer : public Layer {
 public:
  using Layer::Layer;
  int min_bottoms() const override { return 1; }
  int max_bottoms() const override { return 2; }
  int exact_tops() const override { return 1; }

 protected:
  // The shape of a learned operand spanning num_axes axes (-1: to the end) of bottom from axis.
  std::vector<int> learned_shape(const Blob& bottom, int axis, int num_axes,
                                 const char* operand) const {
    const int start = canonical_axis(bottom, axis, "axis");
    LAYER_REQUIRE(num_axes >= -1, "num_axes must be non-negative, or -1 to reach the end of "
                                      << "bottom 0, got " << num_axes);
    const int end = num_axes == -1 ? bottom.num_axes() : start + num_axes;
    LAYER_REQUIRE(end <= bottom.num_axes(),
                  "a " << operand << " of " << num_axes << " axes from axis " << start
                       << " reaches past the end of bottom 0 " << bottom.shape_string());
    return std::vector<int>(bottom.shape().begin() + start, bottom.shape().begin() + end);
  }

  // The [outer][dim][inner] view of bottom for an operand applied from axis.
  Broadcast geometry(const Blob& bottom, const Blob& operand, int axis,
                     const char* name) const {
    // A scalar broadcasts the same from any axis; 0 keeps the kernels' loops flattest.
    const int start = operand.num_axes() == 0 ? 0 : canonical_axis(bottom, axis, "axis");
    bool fits = start + operand.num_axes() <= bottom.num_axes();
    for (int i = 0; fits && i < operand.num_axes(); ++i) {
      fits = bottom.shape(start + i) == operand.shape(i);
    }
    LAYER_REQUIRE(fits, name << " of shape " << operand.shape_string()
                             << " does not match bottom 0 " << bottom.shape_string()
                             << " from axis " << start);
    Broadcast g;
    g.outer = bottom.count(0, start);
    g.dim = operand.count();
    g.inner = bottom.count(start + operand.num_axes());
    return g;
  }

  void add_learned_blob(const std::vector<int>& shape, const FillerParameter& filler) {
    blobs_.push_back(std::make_shared<Blob>(shape));
    fill(filler, blobs_.back().get());
  }

  void require_stored_blob(size_t index, const std::vector<int>& shape, const char* what) const {
    LAYER_REQUIRE(blobs_[index]->shape() == shape,
                  "stored " << what << " blob has shape " << blobs_[index]->shape_string()
                            << ", expected " << shape_string(shape));
  }
};

class BiasLayer : public BroadcastLayer {
 public:
  using BroadcastLayer::BroadcastLayer;

  void layer_setup(const Blobs& bottom, const Blobs& top) override {
    if (bottom.size() > 1) {
      LAYER_REQUIRE(blobs_.empty(), "takes its bias from bottom 1 but has "
                                        << blobs_.size() << " stored blobs");
      return;
    }
    const BiasParameter& p = param_.bias_param();
    const std::vector<int> shape = learned_shape(*bottom[0], p.axis(), p.num_axes(), "bias");
    if (blobs_.empty()) {
      add_learned_blob(shape, p.filler());  // the default filler is constant 0
    } else {
      LAYER_REQUIRE(blobs_.size() == 1, "has " << blobs_.size() << " stored blobs, expected 1");
      require_stored_blob(0, shape, "bias");
    }
  }

  void reshape(const Blobs& bottom, const Blobs& top) override {
    const Blob& bias = bottom.size() > 1 ? *bottom[1] : *blobs_[0];
    geometry_ = geometry(*bottom[0], bias, param_.bias_param().axis(), "bias");
    if (top[0] != bottom[0]) top[0]->reshape_like(*bottom[0]);
  }

 protected:
  void forward_cpu(const Blobs& bottom, const Blobs& top) override {
    const Blob& bias = bottom.size() > 1 ? *bottom[1] : *blobs_[0];
    broadcast_add(geometry_, bottom[0]->data(), bias.data(), top[0]->mutable_data());
  }

  void backward_cpu(const Blobs& top, const std::vector<bool>& propagate_down,
                    const Blobs& bottom) override {
    const float* top_diff = top[0]->diff();
    if (propagate_down[0] && top[0] != bottom[0]) {
      math::copy(top[0]->count(), top_diff, bottom[0]->mutable_diff());
    }
    const bool learned = bottom.size() == 1;
    if (learned ? param_propagate_down(0) : propagate_down[1]) {
      Blob& bias = learned ? *blobs_[0] : *bottom[1];
      reduce_to_operand(geometry_, top_diff, nullptr, learned, bias.mutable_diff());
    }
  }

 private:
  Broadcast geometry_;
};

class ScaleLayer : public BroadcastLayer {
 public:
  using BroadcastLayer::BroadcastLayer;

  void layer_setup(const Blobs& bottom, const Blobs& top) override {
    const ScaleParameter& p = param_.scale_param();
    const bool learned = bottom.size() == 1;
    const size_t expected = (learned ? 1 : 0) + (p.bias_term() ? 1 : 0);
    std::vector<int> scale_shape, bias_shape;
    if (learned) scale_shape = learned_shape(*bottom[0], p.axis(), p.num_axes(), "scale");
    if (p.bias_term()) {
      // As Caffe: the bias spans what the scale spans (bottom 1's axes when it is the scale).
      bias_shape = learned ? scale_shape
                           : learned_shape(*bottom[0], p.axis(), bottom[1]->num_axes(), "bias");
    }
    if (blobs_.empty()) {
      if (learned) {
        FillerParameter identity;
        identity.set_type("constant");
        identity.set_value(1);
        add_learned_blob(scale_shape, p.has_filler() ? p.filler() : identity);
      }
      if (p.bias_term()) add_learned_blob(bias_shape, p.bias_filler());
    } else {
      LAYER_REQUIRE(blobs_.size() == expected,
                    "has " << blobs_.size() << " stored blobs, expected " << expected);
      if (learned) require_stored_blob(0, scale_shape, "scale");
      if (p.bias_term()) require_stored_blob(blobs_.size() - 1, bias_shape, "bias");
    }
    bias_index_ = p.bias_term() ? static_cast<int>(blobs_.size()) - 1 : -1;
  }

  // A learned factor (and bias) per channel of axis 1: x -> gamma[c] * x + beta[c].
  bool compose_channel_affine(int channels, float* scale, float* shift) const override {
    const ScaleParameter& p = param_.scale_param();
    const std::vector<int> per_channel = {channels};
    if (param_.bottom_size() != 1 || p.axis() != 1 || blobs_.empty() ||
        blobs_[0]->shape() != per_channel) {
      return false;
    }
    if (bias_index_ != -1 && (bias_index_ != 1 || blobs_[1]->shape() != per_channel)) return false;
    if (bias_index_ == -1 && blobs_.size() != 1) return false;
    const float* gamma = blobs_[0]->cpu_data();
    const float* beta = bias_index_ == 1 ? blobs_[1]->cpu_data() : nullptr;
    for (int c = 0; c < channels; ++c) {
      scale[c] *= gamma[c];
      shift[c] = gamma[c] * shift[c] + (beta ? beta[c] : 0.0f);
    }
    return true;
  }

  void reshape(const Blobs& bottom, const Blobs& top) override {
    const ScaleParameter& p = param_.scale_param();
    const Blob& scale = bottom.size() > 1 ? *bottom[1] : *blobs_[0];
    geometry_ = geometry(*bottom[0], scale, p.axis(), "scale");
    if (bias_index_ >= 0) {
      bias_geometry_ = geometry(*bottom[0], *blobs_[bias_index_], p.axis(), "bias");
    }
    if (top[0] != bottom[0]) top[0]->reshape_like(*bottom[0]);
  }

 protected:
  void forward_cpu(const Blobs& bottom, const Blobs& top) override {
    const Blob& scale = bottom.size() > 1 ? *bottom[1] : *blobs_[0];
    input_.save(*bottom[0], *top[0]);  // backward needs x after y overwrote it
    float* y = top[0]->mutable_data();
    broadcast_multiply(geometry_, bottom[0]->data(), scale.data(), y);
    if (bias_index_ >= 0) broadcast_add(bias_geometry_, y, blobs_[bias_index_]->data(), y);
  }

  void backward_cpu(const Blobs& top, const std::vector<bool>& propagate_down,
                    const Blobs& bottom) override {
    const float* top_diff = top[0]->diff();
    if (bias_index_ >= 0 && param_propagate_down(bias_index_)) {
      reduce_to_operand(bias_geometry_, top_diff, nullptr, true,
                        blobs_[bias_index_]->mutable_diff());
    }
    const bool learned = bottom.size() == 1;
    Blob& scale = learned ? *blobs_[0] : *bottom[1];
    if (learned ? param_propagate_down(0) : propagate_down[1]) {
      const float* x = input_.data(*bottom[0], *top[0]);
      reduce_to_operand(geometry_, top_diff, x, learned, scale.mutable_diff());
    }
    // Last: in place, the bottom's diff is the top's.
    if (propagate_down[0]) {
      broadcast_multiply(geometry_, top_diff, scale.data(), bottom[0]->mutable_diff());
    }
  }

 private:
  Broadcast geometry_, bias_geometry_;
  int bias_index_ = -1;
  InPlaceInput input_;
};

}  // namespace
}  // namespace engine

ENGINE_LAYER_FACTORY(Scale, ScaleLayer)
ENGINE_LAYER_FACTORY(Bias, BiasLayer)
