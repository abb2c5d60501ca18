// The one mechanism behind the elementwise layers (activations.cpp, neurons.cpp): loops that
// apply a scalar function or its derivative to every element, and ElementwiseLayer, a layer made
// from an Op that supplies only those two scalar functions. The Ops, and helpers that reproduce
// Caffe's rounding, are in elementwise_ops.hpp; on the GPU one kernel template runs them all.
#pragma once

#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "core/layer.hpp"
#include "layers/elementwise_ops.hpp"
#include "math/blas.hpp"
#include "math/parallel.hpp"

namespace engine {

// y[i] = f(x[i]). In place (x == y) gets its own loop: with a possible overlap the compiler
// would fall back to scalar code.
template <class F>
void map_unary(int64_t n, const float* x, float* y, F f) {
  if (x == y) {
    for (int64_t i = 0; i < n; ++i) y[i] = f(y[i]);
  } else {
    const float* __restrict in = x;
    float* __restrict out = y;
    for (int64_t i = 0; i < n; ++i) out[i] = f(in[i]);
  }
}

// dx[i] = g(dy[i], x[i], y[i]); dx == dy when the layer runs in place. x and y are only read, so
// they may alias each other; a g that ignores one of them costs no loads of it once inlined.
template <class G>
void map_gradient(int64_t n, const float* dy, const float* x, const float* y, float* dx, G g) {
  const float* __restrict input = x;
  const float* __restrict output = y;
  if (dx == dy) {
    float* __restrict grad = dx;
    for (int64_t i = 0; i < n; ++i) grad[i] = g(grad[i], input[i], output[i]);
  } else {
    const float* __restrict top_grad = dy;
    float* __restrict grad = dx;
    for (int64_t i = 0; i < n; ++i) grad[i] = g(top_grad[i], input[i], output[i]);
  }
}

// y[i] = op.forward(x[i]) and dx[i] = op.gradient(dy[i], x[i], y[i]) on the side the mode
// computes on: the loops above on the CPU (a chunk per core), the kernel template of
// elementwise_ops.cu on the GPU.
template <class Op>
void elementwise_forward(int64_t n, const float* x, float* y, const Op& op) {
#ifdef ENGINE_USE_CUDA
  if (math::on_gpu()) return elementwise_forward_gpu(n, x, y, op);
#endif
  cpu::parallel_chunks(n, [&](int64_t begin, int64_t end) {
    map_unary(end - begin, x + begin, y + begin, [op](float v) { return op.forward(v); });
  });
}

template <class Op>
void elementwise_gradient(int64_t n, const float* dy, const float* x, const float* y, float* dx,
                          const Op& op) {
#ifdef ENGINE_USE_CUDA
  if (math::on_gpu()) return elementwise_gradient_gpu(n, dy, x, y, dx, op);
#endif
  cpu::parallel_chunks(n, [&](int64_t begin, int64_t end) {
    map_gradient(end - begin, dy + begin, x + begin, y + begin, dx + begin,
                 [op](float g, float v, float w) { return op.gradient(g, v, w); });
  });
}

// Keeps the bottom's data for backward when a layer whose gradient reads its input runs in
// place (the forward pass overwrites that input with the output), as Caffe's PReLU does. The
// copy is made on the side the current mode computes on.
class InPlaceInput {
 public:
  // Call at the start of forward.
  void save(const Blob& bottom, const Blob& top) {
    if (&bottom != &top) return;
    copy_.reshape_like(bottom);
    math::copy(bottom.count(), bottom.data(), copy_.mutable_data());
  }
  // The input as it was before forward, on the mode's side.
  const float* data(const Blob& bottom, const Blob& top) const {
    return &bottom == &top ? copy_.data() : bottom.data();
  }

 private:
  Blob copy_;
};

// A layer y = f(x) applied to every element. Op derives from ElementwiseOp (elementwise_ops.hpp,
// which lists every Op for the GPU launchers) and provides
//   Op()                          default values (the layer assigns the real Op in setup)
//   explicit Op(const Layer&)     reads layer.param(); errors name the layer
//   float forward(float x) const
//   float gradient(float dy, float x, float y) const
template <class Op>
class ElementwiseLayer : public Layer {
 public:
  using Layer::Layer;
  int exact_bottoms() const override { return 1; }
  int exact_tops() const override { return 1; }

  void layer_setup(const Blobs& bottom, const Blobs& top) override {
    LAYER_REQUIRE(Op::kAllowsInPlace || top[0] != bottom[0],
                  "cannot run in place (top and bottom are both " << bottom_name(0) << ")");
    op_ = Op(*this);
  }

  void reshape(const Blobs& bottom, const Blobs& top) override {
    if (top[0] != bottom[0]) top[0]->reshape_like(*bottom[0]);
  }

 protected:
  // Both devices (elementwise_forward and elementwise_gradient choose the loop or the kernel).
  void forward_cpu(const Blobs& bottom, const Blobs& top) override {
    Arranged values;
    if (arranged_forward(*bottom[0], *top[0], &values)) {
      return elementwise_forward(values.count, values.x, values.out, op_);
    }
    if (Op::kKeepsInputInPlace) input_.save(*bottom[0], *top[0]);
    elementwise_forward(bottom[0]->count(), bottom[0]->data(), top[0]->mutable_data(), op_);
  }

  void backward_cpu(const Blobs& top, const std::vector<bool>& propagate_down,
                    const Blobs& bottom) override {
    if (!propagate_down[0]) return;
    if constexpr (!Op::kDifferentiable) {
      LAYER_REQUIRE(false, "has no gradient; set propagate_down: false for its bottom");
    } else {
      Arranged values;
      if (arranged_backward(*top[0], *bottom[0], &values)) {
        return elementwise_gradient(values.count, values.dy, values.x, values.y, values.dx, op_);
      }
      const float* x = Op::kKeepsInputInPlace ? input_.data(*bottom[0], *top[0])
                                              : bottom[0]->data();
      elementwise_gradient(bottom[0]->count(), top[0]->diff(), x, top[0]->data(),
                           bottom[0]->mutable_diff(), op_);
    }
  }

  // Values that arrive arranged (blocked, from a oneDNN layer: synced_memory.hpp) are computed
  // on as they are, padding included, and the results keep the arrangement, where f(0) == 0
  // and the pointers below are all a pass needs (an op that keeps its input in place does not
  // find it there in backward: its forward takes the arrangement only when no backward runs).
  // Forward fills count, x and out; backward count, x, y, dy and dx.
  struct Arranged {
    int64_t count = 0;
    const float *x = nullptr, *y = nullptr, *dy = nullptr;
    float *out = nullptr, *dx = nullptr;
  };
  bool arranged_forward(const Blob& bottom, Blob& top, Arranged* values) const {
    if (math::on_gpu() || !op_.keeps_zero()) return false;
    if (Op::kKeepsInputInPlace && &bottom == &top && backward_runs_) return false;
    const HostLayoutPtr layout = shared_arrangement({bottom.data_memory().get()});
    if (!layout || !top.data_memory()->may_arrange()) return false;
    values->count = static_cast<int64_t>(layout->bytes() / sizeof(float));
    values->x = static_cast<const float*>(bottom.data_memory()->arranged_data(*layout));
    values->out = static_cast<float*>(top.data_memory()->mutable_arranged_data(layout));
    return true;
  }
  bool arranged_backward(const Blob& top, Blob& bottom, Arranged* values) const {
    if (math::on_gpu() || !op_.keeps_zero() || (Op::kKeepsInputInPlace && &bottom == &top)) {
      return false;
    }
    const SyncedMemory& dy = *top.diff_memory();
    const SyncedMemory& x = *bottom.data_memory();
    const SyncedMemory& y = *top.data_memory();
    const HostLayoutPtr layout = shared_arrangement({&dy, &x, &y});
    if (!layout || !bottom.diff_memory()->may_arrange()) return false;
    values->count = static_cast<int64_t>(layout->bytes() / sizeof(float));
    values->x = static_cast<const float*>(x.arranged_data(*layout));
    values->y = static_cast<const float*>(y.arranged_data(*layout));
    values->dy = static_cast<const float*>(dy.arranged_data(*layout));
    values->dx = static_cast<float*>(bottom.diff_memory()->mutable_arranged_data(layout));
    return true;
  }

#ifdef ENGINE_USE_CUDA
  // Not the default (the virtual forward_cpu): subclasses add CPU-only fast paths there (ReLU's
  // oneDNN), which GPU mode must not run.
  void forward_gpu(const Blobs& bottom, const Blobs& top) override {
    ElementwiseLayer::forward_cpu(bottom, top);
  }
  void backward_gpu(const Blobs& top, const std::vector<bool>& propagate_down,
                    const Blobs& bottom) override {
    ElementwiseLayer::backward_cpu(top, propagate_down, bottom);
  }
#endif

  std::string bottom_name(int i) const {
    return i < param_.bottom_size() ? "'" + param_.bottom(i) + "'" : "the same blob";
  }

  Op op_;
  InPlaceInput input_;
};

}  // namespace engine
