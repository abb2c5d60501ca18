// Convolution and Deconvolution through oneDNN: forward, backward data and backward weights
// (with the bias gradient) as oneDNN primitives in the memory formats they pick (format `any`,
// usually blocked), with reorders between those and the blobs' N x C x H x W. Primitives and
// reorders are built once per bottom shape. Groups are native (5-D weights), dilation is
// oneDNN's d - 1, and Caffe's floor rounding of the output size becomes a smaller (possibly
// negative) right padding. Deconvolution is oneDNN's own deconvolution, whose weights in
// Caffe's [C_in, C_out / group, kh, kw] order are oneDNN's `iohw` (`giohw` with groups).
// engine: ONEDNN_NHWC fixes the activations' format to channels-last, which oneDNN's blocked
// formats beat on some geometries and lose to on others (channel counts off the block size pad
// to it: LeNet's conv2, 20 -> 50 channels, takes 4.1 ms in nChw16c and 2.9 in nhwc on an
// AVX-512 Xeon, forward and both backward passes); DEFAULT measures both.
// Precision bf16 on a processor with bf16 arithmetic: the primitives read bf16 operands (the
// reorders from the fp32 blobs round them) and write fp32 results and gradients; elsewhere, or
// where oneDNN has no such primitive, the layer's operands are rounded for it (Layer::forward).
// Layers a net fused into the convolution (channel_epilogue.hpp) join the forward primitive:
// BatchNorm and Scale folded into its weights and bias (remade when those change), ReLU or Clip
// as a post-op; where oneDNN has no such primitive, the epilogue runs as one pass after it.
#ifdef ENGINE_USE_ONEDNN

#include <algorithm>
#include <optional>
#include <unordered_map>

#include <oneapi/dnnl/dnnl.hpp>

#include "core/channel_epilogue.hpp"
#include "layers/conv.hpp"
#include "math/blas.hpp"
#include "math/onednn.hpp"
#include "math/precision.hpp"

namespace engine {
namespace {

using dnnl::memory;
using Tag = memory::format_tag;
constexpr auto kFloat = memory::data_type::f32;

// The parameter gradient: the primitive writes it in its own format, and a reorder with a sum
// post-op adds it to the blob's plain diff (parameter gradients accumulate, and stay plain for
// the solver), or a plain reorder writes it there when the diff was cleared for this pass.
class AccumulatedGradient {
 public:
  void init(const memory::desc& plain, const memory::desc& format) {
    dnnl::engine& engine = onednn::cpu_engine();
    plain_ = memory(plain, engine, nullptr);
    inner_ = memory(format, engine);
    dnnl::post_ops sum;
    sum.append_sum(1.0f);
    dnnl::primitive_attr attributes;
    attributes.set_post_ops(sum);
    add_ = dnnl::reorder(inner_, plain_, attributes);
    copy_ = dnnl::reorder(inner_, plain_);
  }
  const memory& inner() const { return inner_; }
  void add_to(Blob& parameter) {
    bool overwrite = false;
    plain_.set_data_handle(parameter.mutable_cpu_diff_to_sum(&overwrite));
    (overwrite ? copy_ : add_).execute(onednn::cpu_stream(), inner_, plain_);
  }

 private:
  memory plain_, inner_;
  dnnl::reorder add_, copy_;
};

struct ConvolutionPrimitives {
  using Forward = dnnl::convolution_forward;
  using BackwardData = dnnl::convolution_backward_data;
  using BackwardWeights = dnnl::convolution_backward_weights;
  static constexpr auto kAlgorithm = dnnl::algorithm::convolution_direct;
  static constexpr bool kTransposed = false;
};

struct DeconvolutionPrimitives {
  using Forward = dnnl::deconvolution_forward;
  using BackwardData = dnnl::deconvolution_backward_data;
  using BackwardWeights = dnnl::deconvolution_backward_weights;
  static constexpr auto kAlgorithm = dnnl::algorithm::deconvolution_direct;
  static constexpr bool kTransposed = true;
};

template <class Primitives>
class OnednnConvolutionLayer : public ConvolutionLayerBase {
 public:
  using ConvolutionLayerBase::ConvolutionLayerBase;

  void reshape(const Blobs& bottom, const Blobs& top) override {
    ConvolutionLayerBase::reshape(bottom, top);
    // Unless oneDNN was asked for by name, depthwise geometries take the faster direct kernels.
    direct_ = !Primitives::kTransposed && is_depthwise(spec_, channels_) &&
              param_.convolution_param().engine() != ConvolutionParameter::ONEDNN &&
              param_.convolution_param().engine() != ConvolutionParameter::ONEDNN_NHWC;
    if (!direct_ && bottom[0]->shape() != built_for_) {
      const bool bf16 = precision_ == BF16 && cpu_has_bf16_arithmetic();
      try {
        build(bottom[0]->shape(), bf16);
      } catch (const dnnl::error&) {
        if (!bf16) throw;
        build(bottom[0]->shape(), false);
      }
    }
  }

 protected:
  bool transposed() const override { return Primitives::kTransposed; }
  bool computes_precision_itself() const override { return !direct_ && native_bf16_; }

  void forward_cpu(const Blobs& bottom, const Blobs& top) override {
    if (direct_) return depthwise_forward(bottom, top);
    dnnl::stream& stream = onednn::cpu_stream();
    const bool fused = epilogue_ && prepare_fused(*epilogue_);
    const bool folded = fused && epilogue_->has_affine();
    FoldedParameters* parameters = folded ? &folded_parameters() : nullptr;
    const memory& weights =
        weights_.in(folded ? parameters->weights : *blobs_[0]->data_memory());
    if (folded) {
      onednn::bind(bias_, parameters->bias.data());
    } else if (spec_.bias_term) {
      onednn::bind(bias_, blobs_[1]->cpu_data());
    }
    for (size_t i = 0; i < bottom.size(); ++i) {
      std::unordered_map<int, memory> args = {{DNNL_ARG_SRC, src_.in(*bottom[i]->data_memory())},
                                              {DNNL_ARG_WEIGHTS, weights},
                                              {DNNL_ARG_DST, dst_.out(*top[i]->data_memory())}};
      if (spec_.bias_term || folded) args[DNNL_ARG_BIAS] = bias_;
      (fused ? fused_forward_ : forward_).execute(stream, args);
      dst_.finish();
    }
    stream.wait();
    if (!fused) finish_forward(top);
  }

  void backward_cpu(const Blobs& top, const std::vector<bool>& propagate_down,
                    const Blobs& bottom) override {
    if (direct_) return depthwise_backward(top, propagate_down, bottom);
    dnnl::stream& stream = onednn::cpu_stream();
    const bool weight_grad = param_propagate_down(0);
    const bool bias_grad = spec_.bias_term && param_propagate_down(1);
    bool data_grad = false;
    for (size_t i = 0; i < bottom.size(); ++i) data_grad = data_grad || propagate_down[i];
    // Inputs read twice (the top's gradient, by both passes when their formats agree) are
    // reordered once: the blob's memory keeps the arranged copy.
    const memory* weights = data_grad ? &weights_for_data_.in(*blobs_[0]->data_memory()) : nullptr;
    for (size_t i = 0; i < top.size(); ++i) {
      SyncedMemory& top_diff = *top[i]->diff_memory();
      if (propagate_down[i]) {
        backward_data_.execute(stream, {{DNNL_ARG_DIFF_DST, diff_dst_for_data_.in(top_diff)},
                                        {DNNL_ARG_WEIGHTS, *weights},
                                        {DNNL_ARG_DIFF_SRC, diff_src_.out(*bottom[i]->diff_memory())}});
        diff_src_.finish();
      }
      if (!weight_grad && !bias_grad) continue;
      std::unordered_map<int, memory> args = {
          {DNNL_ARG_SRC, src_for_weights_.in(*bottom[i]->data_memory())},
          {DNNL_ARG_DIFF_DST, diff_dst_for_weights_.in(top_diff)},
          {DNNL_ARG_DIFF_WEIGHTS, diff_weights_.inner()}};
      if (spec_.bias_term) args[DNNL_ARG_DIFF_BIAS] = diff_bias_;
      backward_weights_.execute(stream, args);
      if (weight_grad) diff_weights_.add_to(*blobs_[0]);
      if (bias_grad) {
        stream.wait();
        const auto* gradient = static_cast<const float*>(diff_bias_.get_data_handle());
        bool overwrite = false;
        float* bias_diff = blobs_[1]->mutable_cpu_diff_to_sum(&overwrite);
        if (overwrite) {
          std::copy_n(gradient, spec_.num_output, bias_diff);
        } else {
          cpu::axpy(spec_.num_output, 1.0f, gradient, bias_diff);
        }
      }
    }
    stream.wait();
  }

 private:
  // The forward primitive computing `epilogue`: with a bias (its affine part folded into the
  // weights and bias) and the clamp as a post-op; made once per kind of epilogue and shape.
  // False where oneDNN has none (or it would take other formats than the plain primitive's).
  bool prepare_fused(const ChannelEpilogue& epilogue) {
    const int kind = (epilogue.has_affine() ? 2 : 0) + (epilogue.clamps() ? 1 : 0);
    if (kind == fused_kind_) return fused_ready_;
    fused_kind_ = kind;
    fused_ready_ = false;
    dnnl::post_ops operations;
    if (epilogue.clamps() && epilogue.clamp().is_relu()) {
      operations.append_eltwise(1.0f, dnnl::algorithm::eltwise_relu, 0, 0);
    } else if (epilogue.clamps()) {
      operations.append_eltwise(1.0f, dnnl::algorithm::eltwise_clip, epilogue.clamp().low,
                                epilogue.clamp().high);
    }
    dnnl::primitive_attr attributes;
    attributes.set_post_ops(operations);
    try {
      const typename Primitives::Forward::primitive_desc fused(
          epilogue.has_affine() ? *biased_forward_desc_ : *forward_desc_, attributes,
          onednn::cpu_engine());
      if (fused.src_desc() != src_desc_ || fused.weights_desc() != weights_desc_ ||
          fused.dst_desc() != dst_desc_) {
        return false;
      }
      fused_forward_ = typename Primitives::Forward(fused);
    } catch (const dnnl::error&) {
      return false;
    }
    fused_ready_ = true;
    return true;
  }

  // `bf16`: the primitives read bf16 operands.
  void build(const std::vector<int>& shape, bool bf16) {
    // geometry_ is the convolution's: Deconvolution reads its output side and writes its image.
    const ConvGeometry2d& g = geometry_;
    const int n = shape[0];
    const int out_h = g.out_h(), out_w = g.out_w();
    const memory::dims image_dims = {n, g.channels, g.height, g.width};
    const memory::dims output_dims = {n, transposed() ? channels_ : spec_.num_output, out_h, out_w};
    const memory::dims src_dims = transposed() ? output_dims : image_dims;
    const memory::dims dst_dims = transposed() ? image_dims : output_dims;
    const memory::dims bias_dims = {spec_.num_output};
    const bool grouped = spec_.group > 1;
    // oneDNN's weights are {out, in} of the layer in both cases: {num_output, channels}.
    const memory::dims weight_dims =
        grouped ? memory::dims{spec_.group, spec_.num_output / spec_.group,
                               channels_ / spec_.group, g.kernel_h, g.kernel_w}
                : memory::dims{spec_.num_output, channels_, g.kernel_h, g.kernel_w};
    const Tag weight_tag = transposed() ? (grouped ? Tag::giohw : Tag::iohw)
                                        : (grouped ? Tag::goihw : Tag::oihw);
    const memory::dims strides = {g.stride_h, g.stride_w};
    const memory::dims dilates = {g.dilation_h - 1, g.dilation_w - 1};
    const memory::dims pad_l = {g.pad_h, g.pad_w};
    // The right padding that makes oneDNN's exact output size Caffe's floored one (for
    // Deconvolution this is the pad itself).
    const memory::dims pad_r = {
        (out_h - 1) * g.stride_h + g.dilation_h * (g.kernel_h - 1) + 1 - g.height - g.pad_h,
        (out_w - 1) * g.stride_w + g.dilation_w * (g.kernel_w - 1) + 1 - g.width - g.pad_w};

    // What the passes read (operands: bf16 or fp32) and what they write (always fp32), in the
    // activations' format oneDNN picks, or channels-last where the engine says so.
    const memory::data_type operand = bf16 ? memory::data_type::bf16 : kFloat;
    const Tag activations =
        param_.convolution_param().engine() == ConvolutionParameter::ONEDNN_NHWC ? Tag::nhwc
                                                                                 : Tag::any;
    const memory::desc src_in(src_dims, operand, activations);
    const memory::desc src_out(src_dims, kFloat, activations);
    const memory::desc dst_in(dst_dims, operand, activations);
    const memory::desc dst_out(dst_dims, kFloat, activations);
    const memory::desc weights_in(weight_dims, operand, Tag::any);
    const memory::desc weights_out(weight_dims, kFloat, Tag::any);
    const memory::desc bias_md(bias_dims, kFloat, Tag::x);
    const memory::desc no_bias;
    const auto algorithm = Primitives::kAlgorithm;
    dnnl::engine& engine = onednn::cpu_engine();

    using Forward = typename Primitives::Forward;
    using BackwardData = typename Primitives::BackwardData;
    using BackwardWeights = typename Primitives::BackwardWeights;
    // Kept: prepare_fused() makes the same convolution with post-ops.
    forward_desc_.emplace(dnnl::prop_kind::forward_training, algorithm, src_in, weights_in,
                          spec_.bias_term ? bias_md : no_bias, dst_out, strides, dilates, pad_l,
                          pad_r);
    biased_forward_desc_.emplace(dnnl::prop_kind::forward_training, algorithm, src_in,
                                 weights_in, bias_md, dst_out, strides, dilates, pad_l, pad_r);
    const typename Forward::primitive_desc forward_pd(*forward_desc_, engine);
    const typename BackwardData::primitive_desc data_pd(
        typename BackwardData::desc(algorithm, src_out, weights_in, dst_in, strides, dilates,
                                    pad_l, pad_r),
        engine, forward_pd);
    const typename BackwardWeights::primitive_desc weights_pd(
        typename BackwardWeights::desc(algorithm, src_in, weights_out,
                                       spec_.bias_term ? bias_md : no_bias, dst_in, strides,
                                       dilates, pad_l, pad_r),
        engine, forward_pd);
    forward_ = Forward(forward_pd);
    src_desc_ = forward_pd.src_desc();
    weights_desc_ = forward_pd.weights_desc();
    dst_desc_ = forward_pd.dst_desc();
    fused_kind_ = -1;
    backward_data_ = BackwardData(data_pd);
    backward_weights_ = BackwardWeights(weights_pd);

    // The blobs' weights are [out, in, kh, kw] (Deconvolution: [in, out, ...]), grouped or not.
    const memory::desc weights_plain(weight_dims, kFloat, weight_tag);
    src_.init(forward_pd.src_desc());
    weights_.init(forward_pd.weights_desc(), weights_plain);
    dst_.init(forward_pd.dst_desc());
    diff_dst_for_data_.init(data_pd.diff_dst_desc());
    weights_for_data_.init(data_pd.weights_desc(), weights_plain);
    diff_src_.init(data_pd.diff_src_desc());
    src_for_weights_.init(weights_pd.src_desc());
    diff_dst_for_weights_.init(weights_pd.diff_dst_desc());
    diff_weights_.init(weights_plain, weights_pd.diff_weights_desc());
    bias_ = memory(bias_md, engine, nullptr);
    if (spec_.bias_term) diff_bias_ = memory(weights_pd.diff_bias_desc(), engine);
    built_for_ = shape;
    native_bf16_ = bf16;
  }

  bool direct_ = false;
  bool native_bf16_ = false;
  // desc has no empty state. The biased one is forward_desc_ with a bias, for folding.
  std::optional<typename Primitives::Forward::desc> forward_desc_, biased_forward_desc_;
  memory::desc src_desc_, weights_desc_, dst_desc_;  // the plain primitive's formats
  typename Primitives::Forward fused_forward_;
  int fused_kind_ = -1;  // the epilogue fused_forward_ computes: 2 affine + 1 clamp; -1 none yet
  bool fused_ready_ = false;
  std::vector<int> built_for_;
  typename Primitives::Forward forward_;
  typename Primitives::BackwardData backward_data_;
  typename Primitives::BackwardWeights backward_weights_;
  onednn::Input src_, weights_, diff_dst_for_data_, weights_for_data_;
  onednn::Input src_for_weights_, diff_dst_for_weights_;
  onednn::Output dst_, diff_src_;
  AccumulatedGradient diff_weights_;
  memory bias_, diff_bias_;
};

}  // namespace

LayerPtr create_onednn_convolution_layer(const LayerParameter& param) {
  return std::make_unique<OnednnConvolutionLayer<ConvolutionPrimitives>>(param);
}

LayerPtr create_onednn_deconvolution_layer(const LayerParameter& param) {
  return std::make_unique<OnednnConvolutionLayer<DeconvolutionPrimitives>>(param);
}

}  // namespace engine

#endif  // ENGINE_USE_ONEDNN
