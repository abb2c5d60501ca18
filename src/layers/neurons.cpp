// Elementwise layers beyond the common activations (Caffe's "neuron" layers): ELU, AbsVal, BNLL,
// Power, Exp, Log, Threshold, Clip, Swish, each an ElementwiseLayer of an Op (the functions in
// elementwise_ops.hpp, their parameters read here), and PReLU, whose learned slopes make it a
// layer of its own built on the same loops (its CUDA kernels in neurons.cu).
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
#ifdef ENGINE_USE_CUDA
// neurons.cu: PReLU on an [N][channels][dim] blob (channels 1 for a shared slope); the slope
// gradient accumulates.
void prelu_forward_gpu(int64_t count, int64_t channels, int64_t dim, const float* x,
                       const float* slopes, float* y);
void prelu_backward_gpu(int64_t count, int64_t channels, int64_t dim, const float* x,
                        const float* dy, const float* slopes, float* dx);
void prelu_slope_gradient_gpu(int64_t num, int64_t channels, int64_t dim, const float* x,
                              const float* dy, float* slope_diff);
#endif

namespace {

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

}  // namespace

// The Ops' parameters (their functions are in elementwise_ops.hpp).

ELUOp::ELUOp(const Layer& layer) : alpha(layer.param().elu_param().alpha()) {}

PowerOp::PowerOp(const Layer& layer) {
  const PowerParameter& p = layer.param().power_param();
  power = p.power();
  scale = p.scale();
  shift = p.shift();
  diff_scale = power * scale;
  constant = power == 0 ? 1.0f : static_cast<float>(std::pow(double(shift), double(power)));
}

ExpOp::ExpOp(const Layer& layer) {
  const ExpParameter& p = layer.param().exp_param();
  inner_scale = log_of_base(layer, p.base()) * p.scale();
  if (p.shift() != 0) {
    outer_scale = static_cast<float>(p.base() == -1 ? std::exp(double(p.shift()))
                                                    : std::pow(double(p.base()), double(p.shift())));
  }
}

LogOp::LogOp(const Layer& layer) {
  const LogParameter& p = layer.param().log_param();
  const float log_base = log_of_base(layer, p.base());
  ENGINE_REQUIRE(log_base != 0, layer.describe() << ": base 1 has no logarithm");
  base_scale = 1 / log_base;
  scale = p.scale();
  shift = p.shift();
  backward_scale = scale / log_base;
}

ThresholdOp::ThresholdOp(const Layer& layer)
    : threshold(layer.param().threshold_param().threshold()) {}

ClipOp::ClipOp(const Layer& layer)
    : min(layer.param().clip_param().min()), max(layer.param().clip_param().max()) {
  ENGINE_REQUIRE(min <= max, layer.describe() << ": clip_param min " << min
                                              << " is greater than max " << max);
}

SwishOp::SwishOp(const Layer& layer) : beta(layer.param().swish_param().beta()) {}

namespace {

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
  // Both devices: each step below is a loop here or a kernel of neurons.cu.
  void forward_cpu(const Blobs& bottom, const Blobs& top) override {
    input_.save(*bottom[0], *top[0]);
    const Blob& in = *bottom[0];
    const float* x = in.data();
    float* y = top[0]->mutable_data();
    const float* slopes = blobs_[0]->data();
#ifdef ENGINE_USE_CUDA
    if (math::on_gpu()) {
      return prelu_forward_gpu(in.count(), slope_channels(in), in.count(2), x, slopes, y);
    }
#endif
    for_each_plane(in, [&](int64_t offset, int64_t dim, int c) {
      const float a = slopes[c];
      map_unary(dim, x + offset, y + offset,
                [a](float v) { return std::max(v, 0.0f) + a * std::min(v, 0.0f); });
    });
  }

  void backward_cpu(const Blobs& top, const std::vector<bool>& propagate_down,
                    const Blobs& bottom) override {
    const Blob& in = *bottom[0];
    const float* x = input_.data(in, *top[0]);
    const float* dy = top[0]->diff();
    // The slopes first: in place, the bottom's gradient overwrites the top's.
    if (param_propagate_down(0)) slope_gradient(in, x, dy, blobs_[0]->mutable_diff());
    if (propagate_down[0]) {
      input_gradient(in, x, dy, blobs_[0]->data(), bottom[0]->mutable_diff());
    }
  }

 private:
  int64_t slope_channels(const Blob& blob) const { return channel_shared_ ? 1 : blob.shape(1); }

  // slope_grad[c] += sum over the planes of slope c of dy * x where x <= 0.
  void slope_gradient(const Blob& in, const float* x, const float* dy, float* slope_grad) const {
#ifdef ENGINE_USE_CUDA
    if (math::on_gpu()) {
      if (channel_shared_) return prelu_slope_gradient_gpu(1, 1, in.count(), x, dy, slope_grad);
      return prelu_slope_gradient_gpu(in.shape(0), in.shape(1), in.count(2), x, dy, slope_grad);
    }
#endif
    for_each_plane(in, [&](int64_t offset, int64_t dim, int c) {
      const float* xs = x + offset;
      const float* dys = dy + offset;
      float sum = 0;
      for (int64_t i = 0; i < dim; ++i) sum += dys[i] * xs[i] * (xs[i] <= 0);
      slope_grad[c] += sum;
    });
  }

  // dx = dy where x > 0, slope * dy elsewhere.
  void input_gradient(const Blob& in, const float* x, const float* dy, const float* slopes,
                      float* dx) const {
#ifdef ENGINE_USE_CUDA
    if (math::on_gpu()) {
      return prelu_backward_gpu(in.count(), slope_channels(in), in.count(2), x, dy, slopes, dx);
    }
#endif
    for_each_plane(in, [&](int64_t offset, int64_t dim, int c) {
      const float a = slopes[c];
      map_gradient(dim, dy + offset, x + offset, x + offset, dx + offset,
                   [a](float g, float v, float) { return g * ((v > 0) + a * (v <= 0)); });
    });
  }

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
