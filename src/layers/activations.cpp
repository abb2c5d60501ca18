// Elementwise activations: ReLU (leaky with negative_slope), Sigmoid, TanH, and Dropout.
// All may run in place (top == bottom). The unary ones are ElementwiseLayers (elementwise.hpp):
// each supplies only its scalar function and derivative, so the loops are written once and
// vectorize. The other elementwise layers live in neurons.cpp.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <memory>
#include <vector>

#include "core/layer.hpp"
#include "core/layer_registry.hpp"
#include "core/context.hpp"
#include "layers/elementwise.hpp"
#include "layers/gpu_kernels.hpp"
#include "math/blas.hpp"
#include "math/onednn.hpp"
#include "math/random.hpp"

namespace engine {

// The Ops are in elementwise_ops.hpp, shared with the GPU kernel.
ReLUOp::ReLUOp(const Layer& layer) : negative_slope(layer.param().relu_param().negative_slope()) {}

namespace {

// ReLU has a oneDNN path as well: on a 32x96x55x55 blob oneDNN's eltwise (both cores) beat the
// single-threaded loop, in place and out of place, forward and backward. Elementwise, so the
// primitives see the blob as one flat array whatever its shape.
class ReLULayer : public ElementwiseLayer<ReLUOp> {
 public:
  using ElementwiseLayer::ElementwiseLayer;

  void layer_setup(const Blobs& bottom, const Blobs& top) override {
    ElementwiseLayer::layer_setup(bottom, top);
    onednn_ = use_onednn(param_.relu_param().engine(), describe());
  }

 protected:
  // Values that arrive arranged are computed on as they are (ElementwiseLayer::Arranged).
  void forward_cpu(const Blobs& bottom, const Blobs& top) override {
    Arranged values;
    if (arranged_forward(*bottom[0], *top[0], &values)) {
      return relu_forward(values.count, values.x, values.out);
    }
    relu_forward(bottom[0]->count(), bottom[0]->cpu_data(), top[0]->mutable_cpu_data());
  }

  void backward_cpu(const Blobs& top, const std::vector<bool>& propagate_down,
                    const Blobs& bottom) override {
    if (!propagate_down[0]) return;
    // In place the bottom data is the output, whose sign is the input's: the same gradient.
    Arranged values;
    if (arranged_backward(*top[0], *bottom[0], &values)) {
      return relu_backward(values.count, values.x, values.dy, values.dx);
    }
    relu_backward(bottom[0]->count(), bottom[0]->cpu_data(), top[0]->cpu_diff(),
                  bottom[0]->mutable_cpu_diff());
  }

 private:
  void relu_forward(int64_t count, const float* x, float* y) {
#ifdef ENGINE_USE_ONEDNN
    if (onednn_ && count > 0) {
      prepare(count);
      onednn::run(*forward_, {{DNNL_ARG_SRC, onednn::bind(source_, x)},
                              {DNNL_ARG_DST, onednn::bind(output_, y)}});
      return;
    }
#endif
    elementwise_forward(count, x, y, op_);
  }

  void relu_backward(int64_t count, const float* x, const float* dy, float* dx) {
#ifdef ENGINE_USE_ONEDNN
    if (onednn_ && count > 0) {
      prepare(count);
      onednn::run(*backward_, {{DNNL_ARG_SRC, onednn::bind(source_, x)},
                               {DNNL_ARG_DIFF_DST, onednn::bind(top_grad_, dy)},
                               {DNNL_ARG_DIFF_SRC, onednn::bind(bottom_grad_, dx)}});
      return;
    }
#endif
    elementwise_gradient(count, dy, x, x, dx, op_);
  }

  bool onednn_ = false;
#ifdef ENGINE_USE_ONEDNN
  // Builds the primitives for `count` elements, once per size.
  void prepare(int64_t count) {
    if (count == prepared_count_) return;
    using namespace dnnl;
    const float slope = param_.relu_param().negative_slope();
    const memory::desc flat({count}, memory::data_type::f32, memory::format_tag::a);
    const eltwise_forward::primitive_desc forward_pd(
        eltwise_forward::desc(prop_kind::forward_training, algorithm::eltwise_relu, flat, slope),
        onednn::cpu_engine());
    const eltwise_backward::primitive_desc backward_pd(
        eltwise_backward::desc(algorithm::eltwise_relu, flat, flat, slope), onednn::cpu_engine(),
        forward_pd);
    forward_ = std::make_unique<eltwise_forward>(forward_pd);
    backward_ = std::make_unique<eltwise_backward>(backward_pd);
    source_ = memory(flat, onednn::cpu_engine(), DNNL_MEMORY_NONE);
    output_ = memory(flat, onednn::cpu_engine(), DNNL_MEMORY_NONE);
    top_grad_ = memory(flat, onednn::cpu_engine(), DNNL_MEMORY_NONE);
    bottom_grad_ = memory(flat, onednn::cpu_engine(), DNNL_MEMORY_NONE);
    prepared_count_ = count;
  }

  int64_t prepared_count_ = -1;
  std::unique_ptr<dnnl::eltwise_forward> forward_;
  std::unique_ptr<dnnl::eltwise_backward> backward_;
  dnnl::memory source_, output_, top_grad_, bottom_grad_;
#endif
};

using SigmoidLayer = ElementwiseLayer<SigmoidOp>;
using TanHLayer = ElementwiseLayer<TanHOp>;

// Dropout: in TRAIN each element is kept with probability 1 - ratio and scaled by
// 1 / (1 - ratio), so the expected value is unchanged and TEST is the identity.
class DropoutLayer : public Layer {
 public:
  using Layer::Layer;
  int exact_bottoms() const override { return 1; }
  int exact_tops() const override { return 1; }

  void layer_setup(const Blobs& bottom, const Blobs& top) override {
    ratio_ = param_.dropout_param().dropout_ratio();
    LAYER_REQUIRE(ratio_ >= 0 && ratio_ < 1, "dropout_ratio must be in [0, 1), got " << ratio_);
    scale_ = 1.0f / (1.0f - ratio_);
  }

  void reshape(const Blobs& bottom, const Blobs& top) override {
    if (top[0] != bottom[0]) top[0]->reshape_like(*bottom[0]);
    mask_.resize(bottom[0]->count());
  }

 protected:
  bool training() const { return param_.phase() == TRAIN; }

  void forward_cpu(const Blobs& bottom, const Blobs& top) override {
    const int64_t n = bottom[0]->count();
    const float* x = bottom[0]->cpu_data();
    float* y = top[0]->mutable_cpu_data();
    if (!training()) {
      if (x != y) cpu::copy(n, x, y);
      return;
    }
    rng_bernoulli(n, 1.0f - ratio_, mask_.data());
    const unsigned* mask = mask_.data();
    const float scale = scale_;
    for (int64_t i = 0; i < n; ++i) y[i] = x[i] * (static_cast<float>(mask[i]) * scale);
  }

  void backward_cpu(const Blobs& top, const std::vector<bool>& propagate_down,
                    const Blobs& bottom) override {
    if (!propagate_down[0]) return;
    const int64_t n = bottom[0]->count();
    const float* dy = top[0]->cpu_diff();
    float* dx = bottom[0]->mutable_cpu_diff();
    if (!training()) {
      if (dx != dy) cpu::copy(n, dy, dx);
      return;
    }
    const unsigned* mask = mask_.data();
    const float scale = scale_;
    for (int64_t i = 0; i < n; ++i) dx[i] = dy[i] * (static_cast<float>(mask[i]) * scale);
  }

#ifdef ENGINE_USE_CUDA
  // The GPU mask is a hash of (seed, element): each forward draws a fresh seed from the
  // Context generator (so a fixed seed repeats the masks), and backward recomputes the mask
  // from it rather than storing one. Its draws differ from the CPU's.
  void forward_gpu(const Blobs& bottom, const Blobs& top) override {
    const int64_t n = bottom[0]->count();
    if (!training()) {
      gpu::copy(n, bottom[0]->gpu_data(), top[0]->mutable_gpu_data());
      return;
    }
    gpu_seed_ = rng_seed();
    gpu::dropout(n, bottom[0]->gpu_data(), top[0]->mutable_gpu_data(), gpu_seed_, threshold(),
                 scale_);
  }

  void backward_gpu(const Blobs& top, const std::vector<bool>& propagate_down,
                    const Blobs& bottom) override {
    if (!propagate_down[0]) return;
    const int64_t n = bottom[0]->count();
    if (!training()) {
      gpu::copy(n, top[0]->gpu_diff(), bottom[0]->mutable_gpu_diff());
      return;
    }
    gpu::dropout(n, top[0]->gpu_diff(), bottom[0]->mutable_gpu_diff(), gpu_seed_, threshold(),
                 scale_);
  }

  // An element is dropped when its 32-bit draw is below ratio * 2^32.
  uint32_t threshold() const {
    return static_cast<uint32_t>(std::min(4294967295.0, double(ratio_) * 4294967296.0));
  }

  uint64_t gpu_seed_ = 0;
#endif

 private:
  float ratio_ = 0.5f;
  float scale_ = 2.0f;
  std::vector<unsigned> mask_;
};

}  // namespace
}  // namespace engine

ENGINE_LAYER_FACTORY(ReLU, ReLULayer)
ENGINE_LAYER_FACTORY(Sigmoid, SigmoidLayer)
ENGINE_LAYER_FACTORY(TanH, TanHLayer)
ENGINE_LAYER_FACTORY(Dropout, DropoutLayer)
