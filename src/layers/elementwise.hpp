// The one mechanism behind the elementwise layers (activations.cpp, neurons.cpp): loops that
// apply a scalar function or its derivative to every element, and ElementwiseLayer, a layer made
// from an Op that supplies only those two scalar functions. Also helpers that reproduce Caffe's
// rounding where our compiler would otherwise round differently.
#pragma once

#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "core/layer.hpp"
#include "math/blas.hpp"

namespace engine {

// Caffe's CPU code is built without FMA, so a product that is then added is rounded first; with
// -march=native GCC would contract a * b + c into one fused operation, which rounds once. Wrap
// the product to keep Caffe's two roundings.
inline float rounded(float product) {
#if defined(__GNUC__) && !defined(__clang__) && __GNUC__ >= 12
  return __builtin_assoc_barrier(product);
#else
  return product;
#endif
}

// Caffe 1.0's logistic function; for very negative x, exp(-x) = inf gives exactly 0, not NaN.
inline float sigmoid(float x) { return 1.0f / (1.0f + std::exp(-x)); }

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

// Keeps the bottom's data for backward when a layer whose gradient reads its input runs in
// place (the forward pass overwrites that input with the output), as Caffe's PReLU does.
class InPlaceInput {
 public:
  // Call at the start of forward.
  void save(const Blob& bottom, const Blob& top) {
    if (&bottom != &top) return;
    copy_.resize(bottom.count());
    cpu::copy(bottom.count(), bottom.cpu_data(), copy_.data());
  }
  // The input as it was before forward.
  const float* data(const Blob& bottom, const Blob& top) const {
    return &bottom == &top ? copy_.data() : bottom.cpu_data();
  }

 private:
  std::vector<float> copy_;
};

// The traits an Op may override (by declaring the same name):
struct ElementwiseOp {
  // Whether the gradient reads x in a way that the output cannot stand in for, so that running
  // in place needs a copy of the input. (ReLU reads only x's sign, which y keeps.)
  static constexpr bool kKeepsInputInPlace = false;
  static constexpr bool kAllowsInPlace = true;
  static constexpr bool kDifferentiable = true;
};

// A layer y = f(x) applied to every element. Op derives from ElementwiseOp and provides
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
  void forward_cpu(const Blobs& bottom, const Blobs& top) override {
    if (Op::kKeepsInputInPlace) input_.save(*bottom[0], *top[0]);
    const Op op = op_;
    map_unary(bottom[0]->count(), bottom[0]->cpu_data(), top[0]->mutable_cpu_data(),
              [op](float x) { return op.forward(x); });
  }

  void backward_cpu(const Blobs& top, const std::vector<bool>& propagate_down,
                    const Blobs& bottom) override {
    if (!propagate_down[0]) return;
    if constexpr (!Op::kDifferentiable) {
      LAYER_REQUIRE(false, "has no gradient; set propagate_down: false for its bottom");
    } else {
      const Op op = op_;
      const float* x = Op::kKeepsInputInPlace ? input_.data(*bottom[0], *top[0])
                                              : bottom[0]->cpu_data();
      map_gradient(bottom[0]->count(), top[0]->cpu_diff(), x, top[0]->cpu_data(),
                   bottom[0]->mutable_cpu_diff(),
                   [op](float dy, float x, float y) { return op.gradient(dy, x, y); });
    }
  }

  std::string bottom_name(int i) const {
    return i < param_.bottom_size() ? "'" + param_.bottom(i) + "'" : "the same blob";
  }

  Op op_;
  InPlaceInput input_;
};

}  // namespace engine
