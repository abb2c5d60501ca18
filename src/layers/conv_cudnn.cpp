// Convolution on cuDNN: the GPU pass of every Convolution and Deconvolution layer
// (ConvolutionLayerBase, whichever CPU path the layer takes) unless its engine is CAFFE.
// Groups are native (cudnnSetConvolutionGroupCount), and so is dilation; cuDNN's output size for
// cross-correlation is Caffe's floor((in + 2p - extent) / s) + 1.
//
// One object describes the convolution from its image side (geometry_) to its output side, as
// cuDNN's x, w and y. Convolution's bottom is x and its top y. Deconvolution, the transposed
// convolution, has them the other way round, so its passes are cuDNN's with their roles
// exchanged: its forward is cuDNN's backward-data (y -> x), its backward-data cuDNN's forward
// (x -> y), its weight gradient cuDNN's backward-filter of x = the top's gradient and dy = the
// bottom. Its weights [C, num_output / group, kh, kw] are exactly cuDNN's KCRS filter for that
// convolution: K = C output feature maps (the bottom's channels), num_output / group input
// channels per group, and cuDNN, like Caffe, gives group g the filters [g K / G, (g + 1) K / G).
// The bias is per channel of the layer's top in both, added and reduced by our kernels
// (scale_bias.cu) in a fixed order.
//
// Algorithms are chosen per bottom shape from cuDNN's heuristics (cudnnGet*Algorithm_v7, which
// neither runs nor allocates anything), fastest first, skipping those that need more workspace
// than cudnn::workspace_limit(), that use tensor-core math (in fp32: layers with a reduced
// precision, whose operands arrive rounded, take tensor cores, where their products are exact:
// TF32 for bf16, fp16 conversion for fp16), or, in deterministic mode, that are not
// deterministic. The chosen one's workspace is reserved at once; when the device cannot
// provide it (Caffe's classic cuDNN out-of-memory), the next candidate that needs less is taken.
// The choice is kept until the shape, the deterministic mode or the limit changes. All three
// passes are chosen for both layer types, since each runs all three.
//
// Parameter gradients accumulate (beta = 1), as on the CPU; the bottom gradient is overwritten.
#ifdef ENGINE_USE_CUDA

#include <algorithm>
#include <sstream>
#include <vector>

#include "core/context.hpp"
#include "layers/conv.hpp"
#include "layers/gpu_kernels.hpp"
#include "math/cudnn.hpp"

namespace engine {

// One candidate algorithm of one of the three passes.
struct ConvAlgorithm {
  int algorithm = -1;
  size_t workspace = 0;
};

class CudnnConvolution {
 public:
  explicit CudnnConvolution(bool transposed) : transposed_(transposed) {}

  // Rebuilds the descriptors and chooses the algorithms when anything they depend on changed.
  // `output_channels`: the channels of the output side (y), the weights' first axis.
  void prepare(const ConvSpec& spec, int num, const ConvGeometry2d& g, int output_channels,
               Precision precision, const std::string& who) {
    const std::vector<int> key = {num, g.channels, g.height, g.width, Context::deterministic(),
                                  precision,
                                  static_cast<int>(std::min<size_t>(cudnn::workspace_limit() >> 10,
                                                                    INT32_MAX))};
    if (key == key_ && Context::device() == device_) return;
    // Cleared until every step below succeeds, so that a failed choice is made again next time
    // rather than leaving half-set descriptors marked as ready.
    key_.clear();
    // cuDNN rejects empty tensors: an empty batch computes nothing.
    empty_ = num == 0;
    precision_ = precision;
    if (!empty_) describe_and_choose(spec, num, g, output_channels, who);
    key_ = key;
    device_ = Context::device();
  }

  // The layer's forward pass: top = conv(bottom) or conv^T(bottom), overwritten, + bias.
  void forward(const float* bottom, const float* weights, const float* bias, float* top) {
    if (empty_) return;
    if (transposed_) {
      image_from_output(weights, bottom, top);
    } else {
      output_from_image(bottom, weights, top);
    }
    // The bias through our kernels, as on the engine: CAFFE path: cuDNN's bias calls are
    // legacy API, and its bias gradient promises no fixed summation order.
    if (bias) broadcast_add_gpu(num_, bias_channels_, top_plane_, top, bias, top);
  }

  // The layer's backward pass; a null gradient pointer skips that gradient.
  void backward(const float* top_diff, const float* bottom, const float* weights,
                float* weight_diff, float* bias_diff, float* bottom_diff) {
    if (empty_) return;
    if (bias_diff) {
      reduce_to_operand_gpu(num_, bias_channels_, top_plane_, top_diff, nullptr, true, bias_diff);
    }
    if (weight_diff) {
      if (transposed_) {
        filter_gradient(top_diff, bottom, weight_diff);
      } else {
        filter_gradient(bottom, top_diff, weight_diff);
      }
    }
    if (bottom_diff) {
      if (transposed_) {
        output_from_image(top_diff, weights, bottom_diff);
      } else {
        image_from_output(weights, top_diff, bottom_diff);
      }
    }
  }

  // cuDNN's forward, backward-data and backward-filter algorithms of the convolution (for
  // Deconvolution: of its backward-data, forward and weight-gradient passes, in that order).
  std::vector<int> algorithms() const {
    return {forward_.algorithm, backward_data_.algorithm, backward_filter_.algorithm};
  }

 private:
  // The descriptors of the convolution image -> output, and its three algorithms.
  void describe_and_choose(const ConvSpec& spec, int num, const ConvGeometry2d& g,
                           int output_channels, const std::string& who) {
    const int out_h = g.out_h(), out_w = g.out_w();
    num_ = num;
    bias_channels_ = spec.num_output;
    top_plane_ = transposed_ ? int64_t(g.height) * g.width : int64_t(out_h) * out_w;
    cudnn::set_tensor(image_, num, g.channels, g.height, g.width);
    cudnn::set_tensor(output_, num, output_channels, out_h, out_w);
    cudnn::set_filter(filter_, output_channels, g.channels / spec.group, spec.kernel_h,
                      spec.kernel_w);
    ENGINE_CUDNN_CHECK(cudnnSetConvolution2dDescriptor(
        convolution_, spec.pad_h, spec.pad_w, spec.stride_h, spec.stride_w, spec.dilation_h,
        spec.dilation_w, CUDNN_CROSS_CORRELATION, CUDNN_DATA_FLOAT));
    ENGINE_CUDNN_CHECK(cudnnSetConvolutionGroupCount(convolution_, spec.group));
    ENGINE_CUDNN_CHECK(cudnnSetConvolutionMathType(convolution_, math_type()));
    int n = 0, c = 0, h = 0, w = 0;
    ENGINE_CUDNN_CHECK(
        cudnnGetConvolution2dForwardOutputDim(convolution_, image_, filter_, &n, &c, &h, &w));
    CHECK(n == num && c == output_channels && h == out_h && w == out_w)
        << who << ": cuDNN's output shape " << n << "x" << c << "x" << h << "x" << w
        << " differs from Caffe's";
    forward_ = choose_forward(who);
    backward_data_ = choose_backward_data(who);
    backward_filter_ = choose_backward_filter(who);
  }

  // The three passes of cuDNN's convolution x = image -> y = output.
  // output = conv(image), overwritten.
  void output_from_image(const float* image, const float* weights, float* output) {
    ENGINE_CUDNN_CHECK(cudnnConvolutionForward(
        Context::cudnn(), &cudnn::kOne, image_, image, filter_, weights, convolution_,
        static_cast<cudnnConvolutionFwdAlgo_t>(forward_.algorithm),
        cudnn::workspace(forward_.workspace), forward_.workspace, &cudnn::kZero, output_,
        output));
  }
  // image = conv^T(output), overwritten.
  void image_from_output(const float* weights, const float* output, float* image) {
    ENGINE_CUDNN_CHECK(cudnnConvolutionBackwardData(
        Context::cudnn(), &cudnn::kOne, filter_, weights, output_, output, convolution_,
        static_cast<cudnnConvolutionBwdDataAlgo_t>(backward_data_.algorithm),
        cudnn::workspace(backward_data_.workspace), backward_data_.workspace, &cudnn::kZero,
        image_, image));
  }
  // weight_diff += the correlation of output with image.
  void filter_gradient(const float* image, const float* output, float* weight_diff) {
    ENGINE_CUDNN_CHECK(cudnnConvolutionBackwardFilter(
        Context::cudnn(), &cudnn::kOne, image_, image, output_, output, convolution_,
        static_cast<cudnnConvolutionBwdFilterAlgo_t>(backward_filter_.algorithm),
        cudnn::workspace(backward_filter_.workspace), backward_filter_.workspace, &cudnn::kOne,
        filter_, weight_diff));
  }
  // Takes the first usable candidate (they come fastest first) whose workspace can be reserved.
  template <class Perf, class WorkspaceOf>
  ConvAlgorithm pick(const Perf* results, int count, const char* pass, const std::string& who,
                     WorkspaceOf workspace_of) {
    const size_t limit = cudnn::workspace_limit();
    std::ostringstream tried;
    for (int i = 0; i < count; ++i) {
      const Perf& r = results[i];
      if (r.status != CUDNN_STATUS_SUCCESS) continue;
      if (!math_allowed(r.mathType)) continue;
      if (Context::deterministic() && r.determinism != CUDNN_DETERMINISTIC) continue;
      size_t bytes = 0;
      if (!workspace_of(static_cast<int>(r.algo), &bytes)) continue;
      if (bytes > limit) {
        tried << " " << r.algo << " (needs " << bytes << " bytes, over the limit)";
        continue;
      }
      if (!cudnn::reserve_workspace(bytes)) {
        LOG(WARNING) << who << ": no GPU memory for the " << bytes << "-byte workspace of cuDNN "
                     << pass << " algorithm " << r.algo << "; trying one that needs less";
        tried << " " << r.algo << " (" << bytes << " bytes could not be allocated)";
        continue;
      }
      return {static_cast<int>(r.algo), bytes};
    }
    ENGINE_FAIL(who << ": cuDNN has no usable " << pass
                    << " algorithm for this shape within the workspace limit of " << limit
                    << " bytes and the free GPU memory; tried:" << tried.str());
  }

  ConvAlgorithm choose_forward(const std::string& who) {
    // Every candidate cuDNN has (tensor-op and plain variants both count): a list cut at the
    // number of algorithms could drop the plain ones pick() needs.
    int most = 0;
    ENGINE_CUDNN_CHECK(cudnnGetConvolutionForwardAlgorithmMaxCount(Context::cudnn(), &most));
    std::vector<cudnnConvolutionFwdAlgoPerf_t> results(std::max(most, 1));
    int count = 0;
    ENGINE_CUDNN_CHECK(cudnnGetConvolutionForwardAlgorithm_v7(
        Context::cudnn(), image_, filter_, convolution_, output_,
        static_cast<int>(results.size()), &count, results.data()));
    return pick(results.data(), count, "forward", who, [&](int algorithm, size_t* bytes) {
      return cudnnGetConvolutionForwardWorkspaceSize(
                 Context::cudnn(), image_, filter_, convolution_, output_,
                 static_cast<cudnnConvolutionFwdAlgo_t>(algorithm), bytes) == CUDNN_STATUS_SUCCESS;
    });
  }

  ConvAlgorithm choose_backward_data(const std::string& who) {
    // Every candidate cuDNN has (tensor-op and plain variants both count): a list cut at the
    // number of algorithms could drop the plain ones pick() needs.
    int most = 0;
    ENGINE_CUDNN_CHECK(cudnnGetConvolutionBackwardDataAlgorithmMaxCount(Context::cudnn(), &most));
    std::vector<cudnnConvolutionBwdDataAlgoPerf_t> results(std::max(most, 1));
    int count = 0;
    ENGINE_CUDNN_CHECK(cudnnGetConvolutionBackwardDataAlgorithm_v7(
        Context::cudnn(), filter_, output_, convolution_, image_,
        static_cast<int>(results.size()), &count, results.data()));
    return pick(results.data(), count, "backward-data", who, [&](int algorithm, size_t* bytes) {
      return cudnnGetConvolutionBackwardDataWorkspaceSize(
                 Context::cudnn(), filter_, output_, convolution_, image_,
                 static_cast<cudnnConvolutionBwdDataAlgo_t>(algorithm),
                 bytes) == CUDNN_STATUS_SUCCESS;
    });
  }

  ConvAlgorithm choose_backward_filter(const std::string& who) {
    // Every candidate cuDNN has (tensor-op and plain variants both count): a list cut at the
    // number of algorithms could drop the plain ones pick() needs.
    int most = 0;
    ENGINE_CUDNN_CHECK(cudnnGetConvolutionBackwardFilterAlgorithmMaxCount(Context::cudnn(), &most));
    std::vector<cudnnConvolutionBwdFilterAlgoPerf_t> results(std::max(most, 1));
    int count = 0;
    ENGINE_CUDNN_CHECK(cudnnGetConvolutionBackwardFilterAlgorithm_v7(
        Context::cudnn(), image_, output_, convolution_, filter_,
        static_cast<int>(results.size()), &count, results.data()));
    return pick(results.data(), count, "backward-filter", who, [&](int algorithm, size_t* bytes) {
      return cudnnGetConvolutionBackwardFilterWorkspaceSize(
                 Context::cudnn(), image_, output_, convolution_, filter_,
                 static_cast<cudnnConvolutionBwdFilterAlgo_t>(algorithm),
                 bytes) == CUDNN_STATUS_SUCCESS;
    });
  }

  // fp32 keeps to FMA math (TF32's 10-bit mantissa would break parity with the CPU); operands
  // rounded to bf16 are exact in TF32, and those rounded to fp16 exact in fp16.
  cudnnMathType_t math_type() const {
    switch (precision_) {
      case BF16:
        return CUDNN_TENSOR_OP_MATH;
      case FP16:
        return CUDNN_TENSOR_OP_MATH_ALLOW_CONVERSION;
      default:
        return CUDNN_FMA_MATH;
    }
  }
  bool math_allowed(cudnnMathType_t math) const {
    if (math == CUDNN_TENSOR_OP_MATH) return precision_ != FP32;
    if (math == CUDNN_TENSOR_OP_MATH_ALLOW_CONVERSION) return precision_ == FP16;
    return true;
  }

  const bool transposed_;
  Precision precision_ = FP32;
  std::vector<int> key_;
  int device_ = -1;
  bool empty_ = false;
  cudnn::TensorDescriptor image_, output_;
  int num_ = 0;                // images
  int bias_channels_ = 0;      // the top's channels, which the bias spans
  int64_t top_plane_ = 0;      // the top's height x width
  cudnn::FilterDescriptor filter_;
  cudnn::ConvolutionDescriptor convolution_;
  ConvAlgorithm forward_, backward_data_, backward_filter_;
};

ConvolutionLayerBase::ConvolutionLayerBase(const LayerParameter& param) : Layer(param) {}
ConvolutionLayerBase::~ConvolutionLayerBase() = default;

std::vector<int> ConvolutionLayerBase::cudnn_algorithms() const {
  return cudnn_ ? cudnn_->algorithms() : std::vector<int>{-1, -1, -1};
}

// engine: CAFFE runs Caffe's reference path, whose CPU code is written for both devices.
void ConvolutionLayerBase::forward_gpu(const Blobs& bottom, const Blobs& top) {
  if (!use_cudnn(param_.convolution_param().engine(), describe())) {
    forward_cpu(bottom, top);
    return;
  }
  if (!cudnn_) cudnn_ = std::make_unique<CudnnConvolution>(transposed());
  cudnn_->prepare(spec_, num_, geometry_, output_channels(), precision_, describe());
  const float* weights = blobs_[0]->gpu_data();
  const float* bias = spec_.bias_term ? blobs_[1]->gpu_data() : nullptr;
  for (size_t i = 0; i < bottom.size(); ++i) {
    cudnn_->forward(bottom[i]->gpu_data(), weights, bias, top[i]->mutable_gpu_data());
  }
}

void ConvolutionLayerBase::backward_gpu(const Blobs& top,
                                          const std::vector<bool>& propagate_down,
                                          const Blobs& bottom) {
  if (!use_cudnn(param_.convolution_param().engine(), describe())) {
    backward_cpu(top, propagate_down, bottom);
    return;
  }
  if (!cudnn_) cudnn_ = std::make_unique<CudnnConvolution>(transposed());
  cudnn_->prepare(spec_, num_, geometry_, output_channels(), precision_, describe());
  const float* weights = blobs_[0]->gpu_data();
  float* weight_diff = param_propagate_down(0) ? blobs_[0]->mutable_gpu_diff() : nullptr;
  float* bias_diff =
      spec_.bias_term && param_propagate_down(1) ? blobs_[1]->mutable_gpu_diff() : nullptr;
  for (size_t i = 0; i < top.size(); ++i) {
    const bool data_grad = i < propagate_down.size() && propagate_down[i];
    if (!weight_diff && !bias_diff && !data_grad) continue;
    cudnn_->backward(top[i]->gpu_diff(), weight_diff ? bottom[i]->gpu_data() : nullptr, weights,
                     weight_diff, bias_diff, data_grad ? bottom[i]->mutable_gpu_diff() : nullptr);
  }
}

}  // namespace engine

#endif  // ENGINE_USE_CUDA
