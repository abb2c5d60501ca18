// InnerProduct (fully connected): top[M, N] = bottom[M, K] * W^T + bias, where the bottom's axes
// from `axis` on are flattened into K and those before it into M. W is [N, K], or [K, N] with
// `transpose`. The reference path uses BLAS; the oneDNN path uses matmul primitives (plain
// row-major operands, transposes expressed through strides, gradient accumulation through a sum
// post-op), built once per shape. A layer that runs no backward pass (inference) reads its
// weights in the format oneDNN picks, reordered once while they are unchanged (CaffeNet's fc6 at
// batch 1 on AVX-512: 5.4 instead of 6.2 ms). Precision bf16 on a processor with bf16
// arithmetic: the matmuls read bf16 operands (the bottom, the weights and the top's gradient,
// each converted once per pass and kept by its blob's memory for the other passes) and write
// fp32; elsewhere the layer's operands are rounded for it (Layer::forward). engine: ONEDNN_SGEMM
// computes the fp32 backward products by oneDNN's sgemm instead, as the reference path writes
// them: with a batch as small as AlexNet's the matmul packs the whole weight matrix for the data
// gradient (fc6 at batch 32 on an AVX-512 Xeon: 38.8 ms against sgemm's 19.0).
// DEFAULT measures all three.
#include <algorithm>
#include <cstdint>
#include <unordered_map>
#include <vector>

#include "core/filler.hpp"
#include "core/layer.hpp"
#include "core/synced_memory.hpp"
#include "core/layer_registry.hpp"
#include "math/blas.hpp"
#include "math/onednn.hpp"
#include "math/precision.hpp"

namespace engine {
namespace {

class InnerProductLayer : public Layer {
 public:
  explicit InnerProductLayer(const LayerParameter& param)
      : Layer(param),
        onednn_(use_onednn(param.inner_product_param().engine(), describe())),
        backward_by_sgemm_(param.inner_product_param().engine() ==
                           InnerProductParameter::ONEDNN_SGEMM) {}

  int exact_bottoms() const override { return 1; }
  int exact_tops() const override { return 1; }
  bool multiplies_operands() const override { return true; }

  void layer_setup(const Blobs& bottom, const Blobs& top) override {
    const InnerProductParameter& p = param_.inner_product_param();
    LAYER_REQUIRE(p.num_output() > 0, "inner_product_param needs num_output > 0, got "
                                          << p.num_output());
    outputs_ = static_cast<int>(p.num_output());
    bias_term_ = p.bias_term();
    transpose_ = p.transpose();
    axis_ = checked_axis(*bottom[0]);
    inputs_ = bottom[0]->count(axis_);
    LAYER_REQUIRE(inputs_ > 0, "has an empty input vector (bottom " << bottom[0]->shape_string()
                                                                     << ", axis " << p.axis()
                                                                     << ")");
    const int k = static_cast<int>(inputs_);
    const std::vector<int> weight_shape =
        transpose_ ? std::vector<int>{k, outputs_} : std::vector<int>{outputs_, k};
    const std::vector<int> bias_shape = {outputs_};
    const size_t expected = bias_term_ ? 2 : 1;
    if (!blobs_.empty()) {
      LAYER_REQUIRE(blobs_.size() == expected,
                    "expects " << expected << " parameter blob(s) (weights"
                               << (bias_term_ ? " and bias" : "") << "), got " << blobs_.size());
      LAYER_REQUIRE(blobs_[0]->shape() == weight_shape,
                    "weights should have shape " << shape_string(weight_shape) << ", got "
                                                 << blobs_[0]->shape_string());
      LAYER_REQUIRE(!bias_term_ || blobs_[1]->shape() == bias_shape,
                    "bias should have shape " << shape_string(bias_shape) << ", got "
                                              << blobs_[1]->shape_string());
      return;
    }
    blobs_.push_back(std::make_shared<Blob>(weight_shape));
    fill(p.weight_filler(), blobs_[0].get());
    if (bias_term_) {
      blobs_.push_back(std::make_shared<Blob>(bias_shape));
      fill(p.bias_filler(), blobs_[1].get());
    }
  }

  void reshape(const Blobs& bottom, const Blobs& top) override {
    const Blob& in = *bottom[0];
    axis_ = checked_axis(in);
    LAYER_REQUIRE(in.count(axis_) == inputs_,
                  "the bottom " << in.shape_string() << " flattens from axis " << axis_ << " to "
                                << in.count(axis_) << " inputs; the weights take " << inputs_);
    rows_ = in.count(0, axis_);
    std::vector<int> shape(in.shape().begin(), in.shape().begin() + axis_);
    shape.push_back(outputs_);
    top[0]->reshape(shape);
    if (bias_term_ && static_cast<int64_t>(ones_.size()) < rows_) ones_.assign(rows_, 1.0f);
#ifdef ENGINE_USE_ONEDNN
    const bool bf16 = precision_ == BF16 && cpu_has_bf16_arithmetic();
    if (runs_onednn() && (built_rows_ != rows_ || built_for_bf16_ != bf16)) {
      try {
        build(bf16);
      } catch (const dnnl::error&) {
        if (!bf16) throw;
        build(false);  // no such matmul here: the operands get rounded for it
      }
      built_for_bf16_ = bf16;
    }
#endif
  }

 protected:
#ifdef ENGINE_USE_ONEDNN
  bool computes_precision_itself() const override { return runs_onednn() && native_bf16_; }
  void set_backward_plan(bool runs, const std::vector<bool>& bottoms) override {
    if (runs != backward_runs_) built_rows_ = -1;  // the weights' format depends on it
    Layer::set_backward_plan(runs, bottoms);
  }
#endif

  void forward_cpu(const Blobs& bottom, const Blobs& top) override {
    float* out = top[0]->mutable_cpu_data();
#ifdef ENGINE_USE_ONEDNN
    if (runs_onednn()) {
      std::unordered_map<int, dnnl::memory> args = {
          {DNNL_ARG_SRC, src_.in(*bottom[0]->data_memory())},
          {DNNL_ARG_WEIGHTS, weights_.in(*blobs_[0]->data_memory())},
          {DNNL_ARG_DST, onednn::bind(forward_dst_, out)}};
      if (bias_term_) args[DNNL_ARG_BIAS] = onednn::bind(forward_bias_, blobs_[1]->cpu_data());
      onednn::run(forward_, args);
      return;
    }
#endif
    cpu::gemm(false, !transpose_, M(), N(), K(), 1.0f, bottom[0]->cpu_data(), blobs_[0]->cpu_data(),
              0.0f, out);
    if (bias_term_) {
      // out += ones[M] x bias[N]
      cpu::gemm(false, false, M(), N(), 1, 1.0f, ones_.data(), blobs_[1]->cpu_data(), 1.0f, out);
    }
  }

  void backward_cpu(const Blobs& top, const std::vector<bool>& propagate_down,
                    const Blobs& bottom) override {
#ifdef ENGINE_USE_ONEDNN
    if (runs_onednn() && backward_by_sgemm_ && !native_bf16_) {
      backward_by_gemm(
          top, propagate_down, bottom, /*overwrite_cleared=*/true,
          [](bool ta, bool tb, int m, int n, int k, const float* a, const float* b, float beta,
             float* c) { onednn::gemm(ta, tb, m, n, k, a, b, beta, c); },
          [this](const float* top_diff, float beta, float* bias_diff) {
            onednn::gemm(false, false, 1, N(), M(), ones_.data(), top_diff, beta, bias_diff);
          });
      return;
    }
    if (runs_onednn()) {
      // Everything on oneDNN's threads: an OpenBLAS call here would leave its threads spinning
      // against oneDNN's on the same cores.
      dnnl::stream& stream = onednn::cpu_stream();
      // The operands as the forward pass converted them (the top's gradient once for all three
      // products); the products read each in the orientation they need (another desc over the
      // same bytes).
      const bool bias_grad = bias_term_ && param_propagate_down(1);
      const void* diff = bias_grad || param_propagate_down(0) || propagate_down[0]
                             ? top_diff_.in(*top[0]->diff_memory()).get_data_handle()
                             : nullptr;
      // A gradient cleared for this pass is written, not added to (the primitives without the
      // sum post-op).
      bool overwrite = false;
      if (bias_grad) {
        float* bias_diff = blobs_[1]->mutable_cpu_diff_to_sum(&overwrite);
        bias_grad_.into(overwrite).execute(
            stream, {{DNNL_ARG_SRC, onednn::bind(bias_ones_, ones())},
                     {DNNL_ARG_WEIGHTS, onednn::bind(bias_diff_dst_, diff)},
                     {DNNL_ARG_DST, onednn::bind(bias_diff_, bias_diff)}});
      }
      if (param_propagate_down(0)) {
        const void* in = src_.in(*bottom[0]->data_memory()).get_data_handle();
        float* weight_diff = blobs_[0]->mutable_cpu_diff_to_sum(&overwrite);
        weight_grad_.into(overwrite).execute(
            stream, {{DNNL_ARG_SRC, onednn::bind(grad_lhs_, transpose_ ? in : diff)},
                     {DNNL_ARG_WEIGHTS, onednn::bind(grad_rhs_, transpose_ ? diff : in)},
                     {DNNL_ARG_DST, onednn::bind(grad_dst_, weight_diff)}});
      }
      if (propagate_down[0]) {
        onednn::Input& plain_weights = weights_blocked_ ? weights_for_data_ : weights_;
        const void* weights = plain_weights.in(*blobs_[0]->data_memory()).get_data_handle();
        data_grad_.execute(
            stream, {{DNNL_ARG_SRC, onednn::bind(data_diff_dst_, diff)},
                     {DNNL_ARG_WEIGHTS, onednn::bind(data_weights_, weights)},
                     {DNNL_ARG_DST, onednn::bind(data_diff_src_, bottom[0]->mutable_cpu_diff())}});
      }
      stream.wait();
      return;
    }
#endif
    backward_by_gemm(
        top, propagate_down, bottom, /*overwrite_cleared=*/false,
        [](bool ta, bool tb, int m, int n, int k, const float* a, const float* b, float beta,
           float* c) { cpu::gemm(ta, tb, m, n, k, 1.0f, a, b, beta, c); },
        [this](const float* top_diff, float beta, float* bias_diff) {
          cpu::gemv(true, M(), N(), 1.0f, top_diff, ones_.data(), beta, bias_diff);
        });
  }

  // The backward products on plain fp32 values: C = op(A) op(B) + beta C by `gemm`, the bias
  // gradient (the top's gradient summed over the rows, into beta times the diff) by `sum_rows`.
  // `overwrite_cleared`: parameter gradients cleared for this pass are written (beta 0)
  // instead of added to.
  template <class Gemm, class SumRows>
  void backward_by_gemm(const Blobs& top, const std::vector<bool>& propagate_down,
                        const Blobs& bottom, bool overwrite_cleared, Gemm gemm,
                        SumRows sum_rows) {
    const float* top_diff = top[0]->cpu_diff();
    const float* in = bottom[0]->cpu_data();
    bool overwrite = false;
    const auto parameter_diff = [&](int index) {
      overwrite = false;
      return overwrite_cleared ? blobs_[index]->mutable_cpu_diff_to_sum(&overwrite)
                               : blobs_[index]->mutable_cpu_diff();
    };
    if (bias_term_ && param_propagate_down(1)) {
      float* bias_diff = parameter_diff(1);
      sum_rows(top_diff, overwrite ? 0.0f : 1.0f, bias_diff);
    }
    if (param_propagate_down(0)) {
      float* weight_diff = parameter_diff(0);
      const float beta = overwrite ? 0.0f : 1.0f;
      if (transpose_) {
        gemm(true, false, K(), N(), M(), in, top_diff, beta, weight_diff);
      } else {
        gemm(true, false, N(), K(), M(), top_diff, in, beta, weight_diff);
      }
    }
    if (propagate_down[0]) {
      gemm(false, transpose_, M(), K(), N(), top_diff, blobs_[0]->cpu_data(), 0.0f,
           bottom[0]->mutable_cpu_diff());
    }
  }

#ifdef ENGINE_USE_CUDA
  // cuBLAS, the reference path's products on the device; the bias through a ones vector.
  void forward_gpu(const Blobs& bottom, const Blobs& top) override {
    float* out = top[0]->mutable_gpu_data();
    gpu::gemm(false, !transpose_, M(), N(), K(), 1.0f, bottom[0]->gpu_data(),
              blobs_[0]->gpu_data(), 0.0f, out);
    if (bias_term_) {
      gpu::gemm(false, false, M(), N(), 1, 1.0f, gpu_ones(), blobs_[1]->gpu_data(), 1.0f, out);
    }
  }

  void backward_gpu(const Blobs& top, const std::vector<bool>& propagate_down,
                    const Blobs& bottom) override {
    const float* top_diff = top[0]->gpu_diff();
    if (bias_term_ && param_propagate_down(1)) {
      gpu::gemv(true, M(), N(), 1.0f, top_diff, gpu_ones(), 1.0f, blobs_[1]->mutable_gpu_diff());
    }
    if (param_propagate_down(0)) {
      const float* in = bottom[0]->gpu_data();
      float* weight_diff = blobs_[0]->mutable_gpu_diff();
      if (transpose_) {
        gpu::gemm(true, false, K(), N(), M(), 1.0f, in, top_diff, 1.0f, weight_diff);
      } else {
        gpu::gemm(true, false, N(), K(), M(), 1.0f, top_diff, in, 1.0f, weight_diff);
      }
    }
    if (propagate_down[0]) {
      gpu::gemm(false, transpose_, M(), K(), N(), 1.0f, top_diff, blobs_[0]->gpu_data(), 0.0f,
                bottom[0]->mutable_gpu_diff());
    }
  }

  // M ones on the device, filled when the batch grows (not per pass).
  const float* gpu_ones() {
    if (gpu_ones_rows_ < rows_) {
      gpu_ones_.resize(sizeof(float) * static_cast<size_t>(rows_));
      gpu::set(rows_, 1.0f, static_cast<float*>(gpu_ones_.mutable_device_data()));
      gpu_ones_rows_ = rows_;
    }
    return static_cast<const float*>(gpu_ones_.device_data());
  }

  SyncedMemory gpu_ones_;
  int64_t gpu_ones_rows_ = 0;
#endif

 private:
  int checked_axis(const Blob& bottom) const {
    const int axes = bottom.num_axes();
    const int axis = param_.inner_product_param().axis();
    LAYER_REQUIRE(axis >= -axes && axis < axes,
                  "axis " << axis << " is out of range for a bottom of shape "
                          << bottom.shape_string());
    return bottom.canonical_axis(axis);
  }
  int M() const { return static_cast<int>(rows_); }
  int N() const { return outputs_; }
  int K() const { return static_cast<int>(inputs_); }
  // oneDNN's matmul divides by the rows when it plans (SIGFPE on an empty batch); the reference
  // gemm takes zero rows.
  bool runs_onednn() const { return onednn_ && rows_ > 0; }

  bool onednn_ = false;
  bool backward_by_sgemm_ = false;  // engine: ONEDNN_SGEMM
  int outputs_ = 0;
  bool bias_term_ = true;
  bool transpose_ = false;
  int axis_ = 1;
  int64_t inputs_ = 0;  // K
  int64_t rows_ = 0;    // M
  std::vector<float> ones_;

#ifdef ENGINE_USE_ONEDNN
  using memory = dnnl::memory;
  using data_type = memory::data_type;
  // A row-major [rows, cols] matrix, or the transpose of a row-major [cols, rows] one.
  static memory::desc matrix(int64_t rows, int64_t cols, bool transposed,
                             data_type type = data_type::f32) {
    return memory::desc({rows, cols}, type,
                        transposed ? memory::format_tag::ba : memory::format_tag::ab);
  }
  static memory plain(int64_t rows, int64_t cols, bool transposed,
                      data_type type = data_type::f32) {
    return memory(matrix(rows, cols, transposed, type), onednn::cpu_engine(), nullptr);
  }
  // An operand read by the products in the forward pass's orientation.
  static void init_operand(onednn::Input& input, int64_t rows, int64_t cols, bool transposed,
                           data_type type) {
    input.init(matrix(rows, cols, transposed, type), matrix(rows, cols, transposed));
  }
  static dnnl::matmul::primitive_desc plan_matmul(const memory::desc& a, const memory::desc& b,
                                                  const memory::desc* bias, const memory::desc& c,
                                                  bool accumulate) {
    dnnl::primitive_attr attr;
    if (accumulate) {
      dnnl::post_ops sum;
      sum.append_sum(1.0f);
      attr.set_post_ops(sum);
    }
    const dnnl::matmul::desc desc =
        bias ? dnnl::matmul::desc(a, b, *bias, c) : dnnl::matmul::desc(a, b, c);
    return dnnl::matmul::primitive_desc(desc, attr, onednn::cpu_engine());
  }

  // A product into a parameter gradient: `add` sums into it (a sum post-op), `write` replaces
  // a gradient cleared for this pass.
  struct GradientProduct {
    dnnl::matmul add, write;
    void plan(const memory::desc& a, const memory::desc& b, const memory::desc& c) {
      add = dnnl::matmul(plan_matmul(a, b, nullptr, c, true));
      write = dnnl::matmul(plan_matmul(a, b, nullptr, c, false));
    }
    const dnnl::matmul& into(bool overwrite) const { return overwrite ? write : add; }
  };

  // `bf16`: the products read bf16 operands, plain like the fp32 ones (one conversion serves
  // both orientations); results and gradients stay fp32.
  void build(bool bf16) {
    const int64_t m = rows_, n = outputs_, k = inputs_;
    const data_type operand = bf16 ? data_type::bf16 : data_type::f32;
    // forward: [M, K] x [K, N]; W is [N, K] (read transposed) or, with transpose, [K, N].
    // Without a backward pass the weights may take any format: the matmul's own, made once.
    init_operand(src_, m, k, false, operand);
    init_operand(top_diff_, m, n, false, operand);
    forward_bias_ = plain(1, n, false);
    forward_dst_ = plain(m, n, false);
    const memory::desc bias = forward_bias_.get_desc();
    const memory::desc plain_weights = matrix(k, n, !transpose_, operand);
    const dnnl::matmul::primitive_desc forward = plan_matmul(
        matrix(m, k, false, operand),
        backward_runs_ ? plain_weights : memory::desc({k, n}, operand, memory::format_tag::any),
        bias_term_ ? &bias : nullptr, forward_dst_.get_desc(), false);
    forward_ = dnnl::matmul(forward);
    const memory::desc chosen = forward.weights_desc();
    weights_.init(chosen, matrix(k, n, !transpose_));
    weights_blocked_ = chosen != plain_weights;
    // A backward pass asked for anyway reads them plainly.
    if (weights_blocked_) init_operand(weights_for_data_, k, n, !transpose_, operand);
    // bottom diff [M, K] = top diff [M, N] x W as [N, K].
    data_diff_dst_ = plain(m, n, false, operand);
    data_weights_ = plain(n, k, transpose_, operand);
    data_diff_src_ = plain(m, k, false);
    data_grad_ = dnnl::matmul(plan_matmul(data_diff_dst_.get_desc(), data_weights_.get_desc(),
                                          nullptr, data_diff_src_.get_desc(), false));
    // weight diff += top diff^T x bottom ([N, K]), or bottom^T x top diff ([K, N]).
    if (transpose_) {
      grad_lhs_ = plain(k, m, true, operand);
      grad_rhs_ = plain(m, n, false, operand);
      grad_dst_ = plain(k, n, false);
    } else {
      grad_lhs_ = plain(n, m, true, operand);
      grad_rhs_ = plain(m, k, false, operand);
      grad_dst_ = plain(n, k, false);
    }
    weight_grad_.plan(grad_lhs_.get_desc(), grad_rhs_.get_desc(), grad_dst_.get_desc());
    // bias diff [1, N] += ones [1, M] x top diff [M, N] (the sum of the gradient as rounded).
    bias_ones_ = plain(1, m, false, operand);
    bias_diff_dst_ = plain(m, n, false, operand);
    if (bf16) ones_bf16_.assign(m, kBf16One);
    bias_diff_ = plain(1, n, false);
    bias_grad_.plan(bias_ones_.get_desc(), bias_diff_dst_.get_desc(), bias_diff_.get_desc());
    built_rows_ = rows_;
    native_bf16_ = bf16;
  }

  // M ones in the products' operand type.
  const void* ones() const {
    return native_bf16_ ? static_cast<const void*>(ones_bf16_.data()) : ones_.data();
  }
  static constexpr uint16_t kBf16One = 0x3f80;  // 1.0f's upper half

  int64_t built_rows_ = -1;
  bool built_for_bf16_ = false;  // what the last build was asked for
  bool native_bf16_ = false;     // what it made
  bool weights_blocked_ = false;  // the forward pass reads the weights in a format of its own
  std::vector<uint16_t> ones_bf16_;
  onednn::Input src_, weights_, top_diff_, weights_for_data_;
  dnnl::matmul forward_, data_grad_;
  GradientProduct weight_grad_, bias_grad_;
  memory forward_bias_, forward_dst_;
  memory data_diff_dst_, data_weights_, data_diff_src_;
  memory grad_lhs_, grad_rhs_, grad_dst_;
  memory bias_ones_, bias_diff_dst_, bias_diff_;
#endif
};

}  // namespace
}  // namespace engine

ENGINE_LAYER_FACTORY(InnerProduct, InnerProductLayer)
