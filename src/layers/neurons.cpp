// Elementwise layers beyond the common activations (Caffe's "neuron" layers): ELU, AbsVal, BNLL,
// Power, Exp, Log, Threshold, Clip, Swish, each an ElementwiseLayer Op (elementwise.hpp), and
// PReLU, whose learned slopes make it a layer of its own built on the same loops.
//
// Caffe's float code calls the C library's double exp/log/pow and rounds the result; these Ops
// do the same (near x = 0, exp(x) - 1 in float would lose digits that Caffe's output keeps).
// Ops whose gradient reads x keep a copy of the input when they run in place; Caffe's (except
// PReLU's) read the overwritten bottom then, which gives wrong gradients.
#include <algorithm>
#include <cmath>
#include <memory>
#include <vector>

#include "core/filler.hpp"
#include "core/layer.hpp"
#include "core/layer_registry.hpp"
#include "layers/elementwise.hpp"
#include "math/blas.hpp"

namespace engine {
namespace {

// y = max(x, 0) + alpha (exp(min(x, 0)) - 1).
struct ELUOp : ElementwiseOp {
  static constexpr bool kKeepsInputInPlace = true;
  ELUOp() = default;
  explicit ELUOp(const Layer& layer) : alpha(layer.param().elu_param().alpha()) {}
  float forward(float x) const {
    return static_cast<float>(std::max(x, 0.0f) + alpha * (std::exp(double(std::min(x, 0.0f))) - 1));
  }
  // For x <= 0, dy/dx = alpha exp(x) = alpha + y.
  float gradient(float dy, float x, float y) const {
    return dy * ((x > 0) + (alpha + y) * (x <= 0));
  }
  float alpha = 1;
};

// |x|; the gradient is sign(x), 0 at 0. Caffe refuses to run it in place.
struct AbsValOp : ElementwiseOp {
  static constexpr bool kAllowsInPlace = false;
  AbsValOp() = default;
  explicit AbsValOp(const Layer&) {}
  float forward(float x) const { return std::fabs(x); }
  float gradient(float dy, float x, float) const {
    return static_cast<float>((0 < x) - (x < 0)) * dy;
  }
};

// log(1 + exp(x)), written so that exp cannot overflow.
struct BNLLOp : ElementwiseOp {
  static constexpr bool kKeepsInputInPlace = true;
  // Caffe caps x here so that exp(x) stays finite; the gradient is 1 to float precision anyway.
  static constexpr float kThreshold = 50;
  BNLLOp() = default;
  explicit BNLLOp(const Layer&) {}
  float forward(float x) const {
    return static_cast<float>(x > 0 ? x + std::log(1.0 + std::exp(double(-x)))
                                    : std::log(1.0 + std::exp(double(x))));
  }
  float gradient(float dy, float x, float) const {
    const float e = static_cast<float>(std::exp(double(std::min(x, kThreshold))));
    return static_cast<float>(double(dy * e) / (double(e) + 1));
  }
};

// y = (shift + scale x)^power, with Caffe's shortcuts: a constant when power or scale is 0, and
// simpler derivative forms for power 1, power 2 and shift 0 (so that x = 0 gives what Caffe's
// gives, NaN included).
struct PowerOp : ElementwiseOp {
  static constexpr bool kKeepsInputInPlace = true;
  PowerOp() = default;
  explicit PowerOp(const Layer& layer) {
    const PowerParameter& p = layer.param().power_param();
    power = p.power();
    scale = p.scale();
    shift = p.shift();
    diff_scale = power * scale;
    constant = power == 0 ? 1.0f : static_cast<float>(std::pow(double(shift), double(power)));
  }
  float affine(float x) const {
    float v = scale != 1 ? scale * x : x;
    return shift != 0 ? rounded(v) + shift : v;
  }
  float forward(float x) const {
    if (diff_scale == 0) return constant;
    const float v = affine(x);
    return power != 1 ? static_cast<float>(std::pow(double(v), double(power))) : v;
  }
  float gradient(float dy, float x, float y) const {
    if (diff_scale == 0) return 0;
    if (power == 1) return dy * diff_scale;
    float d;
    if (power == 2) {
      d = diff_scale * scale * x;
      if (shift != 0) d = rounded(d) + diff_scale * shift;
    } else if (shift == 0) {
      d = y / x * power;
    } else {
      d = y / affine(x);
      if (diff_scale != 1) d *= diff_scale;
    }
    return dy * d;
  }
  float power = 1, scale = 1, shift = 0, diff_scale = 1, constant = 1;
};

// log(base) for the Exp and Log layers: base -1 means e (exactly 1); anything else must be
// positive with a finite logarithm.
float log_of_base(const Layer& layer, float base) {
  ENGINE_REQUIRE(base == -1 || base > 0, layer.describe() << ": base must be positive (or -1 "
                                                                "for e), got " << base);
  const float log_base = base == -1 ? 1.0f : static_cast<float>(std::log(double(base)));
  ENGINE_REQUIRE(std::isfinite(log_base),
                 layer.describe() << ": base " << base << " gives log(base) = " << log_base);
  return log_base;
}

// y = base^(shift + scale x) = base^shift * exp(log(base) scale x).
struct ExpOp : ElementwiseOp {
  ExpOp() = default;
  explicit ExpOp(const Layer& layer) {
    const ExpParameter& p = layer.param().exp_param();
    inner_scale = log_of_base(layer, p.base()) * p.scale();
    if (p.shift() != 0) {
      outer_scale = static_cast<float>(p.base() == -1 ? std::exp(double(p.shift()))
                                                      : std::pow(double(p.base()), double(p.shift())));
    }
  }
  float forward(float x) const {
    const float y = static_cast<float>(std::exp(double(inner_scale != 1 ? inner_scale * x : x)));
    return outer_scale != 1 ? y * outer_scale : y;
  }
  float gradient(float dy, float, float y) const {
    const float d = y * dy;
    return inner_scale != 1 ? d * inner_scale : d;
  }
  float inner_scale = 1, outer_scale = 1;
};

// y = log_base(shift + scale x) = ln(shift + scale x) / ln(base).
struct LogOp : ElementwiseOp {
  static constexpr bool kKeepsInputInPlace = true;
  LogOp() = default;
  explicit LogOp(const Layer& layer) {
    const LogParameter& p = layer.param().log_param();
    const float log_base = log_of_base(layer, p.base());
    ENGINE_REQUIRE(log_base != 0, layer.describe() << ": base 1 has no logarithm");
    base_scale = 1 / log_base;
    scale = p.scale();
    shift = p.shift();
    backward_scale = scale / log_base;
  }
  float affine(float x) const {
    float v = scale != 1 ? scale * x : x;
    return shift != 0 ? rounded(v) + shift : v;
  }
  float forward(float x) const {
    const float y = static_cast<float>(std::log(double(affine(x))));
    return base_scale != 1 ? y * base_scale : y;
  }
  float gradient(float dy, float x, float) const {
    float d = static_cast<float>(std::pow(double(affine(x)), -1.0));
    if (backward_scale != 1) d *= backward_scale;
    return dy * d;
  }
  float base_scale = 1, scale = 1, shift = 0, backward_scale = 1;
};

// 1 where x > threshold, else 0; not differentiable (Caffe has no backward either).
struct ThresholdOp : ElementwiseOp {
  static constexpr bool kDifferentiable = false;
  ThresholdOp() = default;
  explicit ThresholdOp(const Layer& layer)
      : threshold(layer.param().threshold_param().threshold()) {}
  float forward(float x) const { return x > threshold ? 1.0f : 0.0f; }
  float gradient(float, float, float) const { return 0; }
  float threshold = 0;
};

// max(min, min(x, max)); the gradient passes where min <= x <= max, both ends included.
struct ClipOp : ElementwiseOp {
  static constexpr bool kKeepsInputInPlace = true;
  ClipOp() = default;
  explicit ClipOp(const Layer& layer)
      : min(layer.param().clip_param().min()), max(layer.param().clip_param().max()) {
    ENGINE_REQUIRE(min <= max, layer.describe() << ": clip_param min " << min
                                                << " is greater than max " << max);
  }
  float forward(float x) const { return std::max(min, std::min(x, max)); }
  float gradient(float dy, float x, float) const {
    return dy * static_cast<float>(x >= min && x <= max);
  }
  float min = 0, max = 0;
};

// y = x sigmoid(beta x). dy/dx = beta y + s (1 - beta y) with s = sigmoid(beta x), which Caffe
// evaluates in double.
struct SwishOp : ElementwiseOp {
  static constexpr bool kKeepsInputInPlace = true;
  SwishOp() = default;
  explicit SwishOp(const Layer& layer) : beta(layer.param().swish_param().beta()) {}
  float forward(float x) const { return x * sigmoid(beta * x); }
  float gradient(float dy, float x, float y) const {
    const double by = beta * y;
    return static_cast<float>(dy * (by + sigmoid(beta * x) * (1.0 - by)));
  }
  float beta = 1;
};

using ELULayer = ElementwiseLayer<ELUOp>;
using AbsValLayer = ElementwiseLayer<AbsValOp>;
using BNLLLayer = ElementwiseLayer<BNLLOp>;
using PowerLayer = ElementwiseLayer<PowerOp>;
using ExpLayer = ElementwiseLayer<ExpOp>;
using LogLayer = ElementwiseLayer<LogOp>;
using ThresholdLayer = ElementwiseLayer<ThresholdOp>;
using ClipLayer = ElementwiseLayer<ClipOp>;
using SwishLayer = ElementwiseLayer<SwishOp>;

// PReLU: y = max(x, 0) + a_c min(x, 0) with a learned slope a_c per channel (axis 1), or one
// slope for all channels when channel_shared. Runs in place, keeping a copy of the input.
class PReLULayer : public Layer {
 public:
  using Layer::Layer;
  int exact_bottoms() const override { return 1; }
  int exact_tops() const override { return 1; }

  void layer_setup(const Blobs& bottom, const Blobs& top) override {
    LAYER_REQUIRE(bottom[0]->num_axes() >= 2,
                  "needs a bottom with at least 2 axes (N, C, ...), got " << bottom[0]->shape_string());
    const PReLUParameter& p = param_.prelu_param();
    channel_shared_ = p.channel_shared();
    const int channels = bottom[0]->shape(1);
    const int slopes = channel_shared_ ? 1 : channels;
    if (blobs_.empty()) {
      // A shared slope is a scalar blob (no axes), as in Caffe's .caffemodel files.
      blobs_.push_back(std::make_shared<Blob>(channel_shared_ ? std::vector<int>{}
                                                              : std::vector<int>{channels}));
      FillerParameter filler = p.filler();
      if (!p.has_filler()) {
        filler.set_type("constant");
        filler.set_value(0.25f);
      }
      fill(filler, blobs_[0].get());
    }
    LAYER_REQUIRE(blobs_.size() == 1, "has " << blobs_.size() << " parameter blobs, expected 1");
    LAYER_REQUIRE(blobs_[0]->count() == slopes,
                  "has " << blobs_[0]->count() << " slopes, but "
                         << (channel_shared_ ? "channel_shared needs 1"
                                             : "the bottom has " + std::to_string(channels) +
                                                   " channels")
                         << " (slope blob " << blobs_[0]->shape_string() << ")");
  }

  void reshape(const Blobs& bottom, const Blobs& top) override {
    LAYER_REQUIRE(bottom[0]->num_axes() >= 2,
                  "needs a bottom with at least 2 axes (N, C, ...), got " << bottom[0]->shape_string());
    LAYER_REQUIRE(channel_shared_ || bottom[0]->shape(1) == blobs_[0]->count(),
                  "has " << blobs_[0]->count() << " slopes, but the bottom has "
                         << bottom[0]->shape(1) << " channels");
    if (top[0] != bottom[0]) top[0]->reshape_like(*bottom[0]);
  }

 protected:
  void forward_cpu(const Blobs& bottom, const Blobs& top) override {
    input_.save(*bottom[0], *top[0]);
    const float* x = bottom[0]->cpu_data();
    float* y = top[0]->mutable_cpu_data();
    const float* slopes = blobs_[0]->cpu_data();
    for_each_plane(*bottom[0], [&](int64_t offset, int64_t dim, int c) {
      const float a = slopes[c];
      map_unary(dim, x + offset, y + offset,
                [a](float v) { return std::max(v, 0.0f) + a * std::min(v, 0.0f); });
    });
  }

  void backward_cpu(const Blobs& top, const std::vector<bool>& propagate_down,
                    const Blobs& bottom) override {
    const float* x = input_.data(*bottom[0], *top[0]);
    const float* dy = top[0]->cpu_diff();
    // The slopes first: in place, the bottom's gradient overwrites the top's.
    if (param_propagate_down(0)) {
      float* slope_grad = blobs_[0]->mutable_cpu_diff();
      for_each_plane(*bottom[0], [&](int64_t offset, int64_t dim, int c) {
        const float* xs = x + offset;
        const float* dys = dy + offset;
        float sum = 0;
        for (int64_t i = 0; i < dim; ++i) sum += dys[i] * xs[i] * (xs[i] <= 0);
        slope_grad[c] += sum;
      });
    }
    if (propagate_down[0]) {
      float* dx = bottom[0]->mutable_cpu_diff();
      const float* slopes = blobs_[0]->cpu_data();
      for_each_plane(*bottom[0], [&](int64_t offset, int64_t dim, int c) {
        const float a = slopes[c];
        map_gradient(dim, dy + offset, x + offset, x + offset, dx + offset,
                     [a](float g, float v, float) { return g * ((v > 0) + a * (v <= 0)); });
      });
    }
  }

 private:
  // Calls f(offset, length, slope index) for each (sample, channel) plane of the blob.
  template <class F>
  void for_each_plane(const Blob& blob, F f) const {
    const int64_t num = blob.shape(0);
    const int channels = blob.shape(1);
    const int64_t dim = blob.count(2);
    for (int64_t n = 0; n < num; ++n) {
      for (int c = 0; c < channels; ++c) f((n * channels + c) * dim, dim, channel_shared_ ? 0 : c);
    }
  }

  bool channel_shared_ = false;
  InPlaceInput input_;
};

}  // namespace
}  // namespace engine

ENGINE_LAYER_FACTORY(ELU, ELULayer)
ENGINE_LAYER_FACTORY(AbsVal, AbsValLayer)
ENGINE_LAYER_FACTORY(BNLL, BNLLLayer)
ENGINE_LAYER_FACTORY(Power, PowerLayer)
ENGINE_LAYER_FACTORY(Exp, ExpLayer)
ENGINE_LAYER_FACTORY(Log, LogLayer)
ENGINE_LAYER_FACTORY(Threshold, ThresholdLayer)
ENGINE_LAYER_FACTORY(Clip, ClipLayer)
ENGINE_LAYER_FACTORY(Swish, SwishLayer)
ENGINE_LAYER_FACTORY(PReLU, PReLULayer)
