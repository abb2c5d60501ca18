// The scalar functions of the elementwise layers (ElementwiseLayer, elementwise.hpp), written
// once for both devices: each Op's forward and gradient are ENGINE_HOST_DEVICE, so the CPU loops
// and one CUDA kernel template (elementwise_ops.cu) run the same code. Each Op's constructor
// reads its layer's parameters and is defined beside the layer (activations.cpp, neurons.cpp),
// so this header needs no protobuf and nvcc can include it.
//
// Caffe's float code calls the C library's double exp/log/pow and rounds the result; the Ops do
// the same (near x = 0, exp(x) - 1 in float would lose digits that Caffe's output keeps).
#pragma once

#include <cmath>
#include <cstdint>

#include "core/host_device.hpp"

namespace engine {

class Layer;

// Caffe's CPU code is built without FMA, so a product that is then added is rounded first; with
// -march=native GCC would contract a * b + c into one fused operation, which rounds once. Wrap
// the product to keep Caffe's two roundings. (nvcc's front end lacks the builtin; the CUDA files
// use the Ops in kernels only, where parity is to 1e-4 and nvcc's contraction may stay.)
ENGINE_HOST_DEVICE inline float rounded(float product) {
#if defined(__CUDACC__)
  return product;
#elif defined(__GNUC__) && !defined(__clang__) && __GNUC__ >= 12
  return __builtin_assoc_barrier(product);
#else
  return product;
#endif
}

// std::max and std::min, callable from kernels, with the same answers (NaN included).
ENGINE_HOST_DEVICE inline float max_of(float a, float b) { return a < b ? b : a; }
ENGINE_HOST_DEVICE inline float min_of(float a, float b) { return b < a ? b : a; }

// Caffe 1.0's logistic function; for very negative x, exp(-x) = inf gives exactly 0, not NaN.
ENGINE_HOST_DEVICE inline float sigmoid(float x) { return 1.0f / (1.0f + std::exp(-x)); }

// The traits an Op may override (by declaring the same name):
struct ElementwiseOp {
  // Whether the gradient reads x in a way that the output cannot stand in for, so that running
  // in place needs a copy of the input. (ReLU reads only x's sign, which y keeps.)
  static constexpr bool kKeepsInputInPlace = false;
  static constexpr bool kAllowsInPlace = true;
  static constexpr bool kDifferentiable = true;
  // Whether f(0) == 0: then the layer may compute on a blocked arrangement as it is, padding
  // included (elementwise.hpp).
  bool keeps_zero() const { return false; }
};

// ---- activations.cpp ----------------------------------------------------------------------

// In place the gradient reads y where x was, as Caffe's does: y keeps x's sign (for
// negative_slope >= 0).
struct ReLUOp : ElementwiseOp {
  ReLUOp() = default;
  explicit ReLUOp(const Layer& layer);
  bool keeps_zero() const { return true; }
  ENGINE_HOST_DEVICE float forward(float x) const { return x > 0 ? x : negative_slope * x; }
  // Caffe takes the slope at x == 0 (the kink) from the negative side.
  ENGINE_HOST_DEVICE float gradient(float dy, float x, float) const {
    return x > 0 ? dy : negative_slope * dy;
  }
  float negative_slope = 0;
};

struct SigmoidOp : ElementwiseOp {
  SigmoidOp() = default;
  explicit SigmoidOp(const Layer&) {}
  ENGINE_HOST_DEVICE float forward(float x) const { return sigmoid(x); }
  ENGINE_HOST_DEVICE float gradient(float dy, float, float y) const { return dy * y * (1 - y); }
};

struct TanHOp : ElementwiseOp {
  TanHOp() = default;
  explicit TanHOp(const Layer&) {}
  bool keeps_zero() const { return true; }
  ENGINE_HOST_DEVICE float forward(float x) const { return std::tanh(x); }
  ENGINE_HOST_DEVICE float gradient(float dy, float, float y) const { return dy * (1 - y * y); }
};

// ---- neurons.cpp --------------------------------------------------------------------------
// Ops whose gradient reads x keep a copy of the input when they run in place; Caffe's read the
// overwritten bottom then, which gives wrong gradients.

// y = max(x, 0) + alpha (exp(min(x, 0)) - 1).
struct ELUOp : ElementwiseOp {
  static constexpr bool kKeepsInputInPlace = true;
  ELUOp() = default;
  explicit ELUOp(const Layer& layer);
  ENGINE_HOST_DEVICE float forward(float x) const {
    return static_cast<float>(max_of(x, 0.0f) + alpha * (std::exp(double(min_of(x, 0.0f))) - 1));
  }
  // For x <= 0, dy/dx = alpha exp(x) = alpha + y.
  ENGINE_HOST_DEVICE float gradient(float dy, float x, float y) const {
    return dy * ((x > 0) + (alpha + y) * (x <= 0));
  }
  float alpha = 1;
};

// |x|; the gradient is sign(x), 0 at 0. Caffe refuses to run it in place.
struct AbsValOp : ElementwiseOp {
  static constexpr bool kAllowsInPlace = false;
  AbsValOp() = default;
  explicit AbsValOp(const Layer&) {}
  ENGINE_HOST_DEVICE float forward(float x) const { return std::fabs(x); }
  ENGINE_HOST_DEVICE float gradient(float dy, float x, float) const {
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
  ENGINE_HOST_DEVICE float forward(float x) const {
    return static_cast<float>(x > 0 ? x + std::log(1.0 + std::exp(double(-x)))
                                    : std::log(1.0 + std::exp(double(x))));
  }
  ENGINE_HOST_DEVICE float gradient(float dy, float x, float) const {
    const float e = static_cast<float>(std::exp(double(min_of(x, kThreshold))));
    return static_cast<float>(double(dy * e) / (double(e) + 1));
  }
};

// Power and Log apply their function to shift + scale x, skipping the operations that would not
// change x (as Caffe's code does, so that the roundings are its).
struct AffineInputOp : ElementwiseOp {
  ENGINE_HOST_DEVICE float affine(float x) const {
    float v = scale != 1 ? scale * x : x;
    return shift != 0 ? rounded(v) + shift : v;
  }
  float scale = 1, shift = 0;
};

// y = (shift + scale x)^power, with Caffe's shortcuts: a constant when power or scale is 0, and
// simpler derivative forms for power 1, power 2 and shift 0 (so that x = 0 gives what Caffe's
// gives, NaN included).
struct PowerOp : AffineInputOp {
  static constexpr bool kKeepsInputInPlace = true;
  PowerOp() = default;
  explicit PowerOp(const Layer& layer);
  ENGINE_HOST_DEVICE float forward(float x) const {
    if (diff_scale == 0) return constant;
    const float v = affine(x);
    return power != 1 ? static_cast<float>(std::pow(double(v), double(power))) : v;
  }
  ENGINE_HOST_DEVICE float gradient(float dy, float x, float y) const {
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
  float power = 1, diff_scale = 1, constant = 1;
};

// y = base^(shift + scale x) = base^shift * exp(log(base) scale x).
struct ExpOp : ElementwiseOp {
  ExpOp() = default;
  explicit ExpOp(const Layer& layer);
  ENGINE_HOST_DEVICE float forward(float x) const {
    const float y = static_cast<float>(std::exp(double(inner_scale != 1 ? inner_scale * x : x)));
    return outer_scale != 1 ? y * outer_scale : y;
  }
  ENGINE_HOST_DEVICE float gradient(float dy, float, float y) const {
    const float d = y * dy;
    return inner_scale != 1 ? d * inner_scale : d;
  }
  float inner_scale = 1, outer_scale = 1;
};

// y = log_base(shift + scale x) = ln(shift + scale x) / ln(base).
struct LogOp : AffineInputOp {
  static constexpr bool kKeepsInputInPlace = true;
  LogOp() = default;
  explicit LogOp(const Layer& layer);
  ENGINE_HOST_DEVICE float forward(float x) const {
    const float y = static_cast<float>(std::log(double(affine(x))));
    return base_scale != 1 ? y * base_scale : y;
  }
  ENGINE_HOST_DEVICE float gradient(float dy, float x, float) const {
    float d = static_cast<float>(std::pow(double(affine(x)), -1.0));
    if (backward_scale != 1) d *= backward_scale;
    return dy * d;
  }
  float base_scale = 1, backward_scale = 1;
};

// 1 where x > threshold, else 0; not differentiable (Caffe has no backward either).
struct ThresholdOp : ElementwiseOp {
  static constexpr bool kDifferentiable = false;
  ThresholdOp() = default;
  explicit ThresholdOp(const Layer& layer);
  ENGINE_HOST_DEVICE float forward(float x) const { return x > threshold ? 1.0f : 0.0f; }
  ENGINE_HOST_DEVICE float gradient(float, float, float) const { return 0; }
  float threshold = 0;
};

// max(min, min(x, max)); the gradient passes where min <= x <= max, both ends included.
struct ClipOp : ElementwiseOp {
  static constexpr bool kKeepsInputInPlace = true;
  ClipOp() = default;
  explicit ClipOp(const Layer& layer);
  bool keeps_zero() const { return min <= 0 && max >= 0; }
  ENGINE_HOST_DEVICE float forward(float x) const { return max_of(min, min_of(x, max)); }
  ENGINE_HOST_DEVICE float gradient(float dy, float x, float) const {
    return dy * static_cast<float>(x >= min && x <= max);
  }
  float min = 0, max = 0;
};

// y = x sigmoid(beta x). dy/dx = beta y + s (1 - beta y) with s = sigmoid(beta x), which Caffe
// evaluates in double.
struct SwishOp : ElementwiseOp {
  static constexpr bool kKeepsInputInPlace = true;
  SwishOp() = default;
  explicit SwishOp(const Layer& layer);
  ENGINE_HOST_DEVICE float forward(float x) const { return x * sigmoid(beta * x); }
  ENGINE_HOST_DEVICE float gradient(float dy, float x, float y) const {
    const double by = beta * y;
    return static_cast<float>(dy * (by + sigmoid(beta * x) * (1.0 - by)));
  }
  float beta = 1;
};

// Every Op above, once: elementwise_ops.cu instantiates the GPU launchers for each, so an
// ElementwiseLayer of an Op missing here fails to link in a CUDA build.
#define ENGINE_ELEMENTWISE_OPS(X) \
  X(ReLUOp) X(SigmoidOp) X(TanHOp) X(ELUOp) X(AbsValOp) X(BNLLOp) X(PowerOp) X(ExpOp) X(LogOp) \
  X(ThresholdOp) X(ClipOp) X(SwishOp)

#ifdef ENGINE_USE_CUDA
// y[i] = op.forward(x[i]) and dx[i] = op.gradient(dy[i], x[i], y[i]) on the device, on the
// default stream; x == y and dx == dy are allowed (each element is read before it is written).
template <class Op>
void elementwise_forward_gpu(int64_t n, const float* x, float* y, const Op& op);
template <class Op>
void elementwise_gradient_gpu(int64_t n, const float* dy, const float* x, const float* y,
                              float* dx, const Op& op);
#endif

}  // namespace engine
