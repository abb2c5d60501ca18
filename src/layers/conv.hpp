// Convolution, shared by its paths (conv.cpp: Caffe's im2col + gemm reference, on either device;
// conv_onednn.cpp: oneDNN; conv_cudnn.cpp: cuDNN) and by Deconvolution: the parameters parsed
// from a ConvolutionParameter, and the layer base that owns the parameters, the learnable blobs
// and the top shapes. Only 2-D convolution over N x C x H x W blobs (channel axis 1) is supported.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "core/layer.hpp"
#include "core/synced_memory.hpp"
#include "math/im2col.hpp"

namespace engine {

struct ConvSpec {
  int num_output = 0;
  bool bias_term = true;
  int group = 1;
  int kernel_h = 0, kernel_w = 0;
  int pad_h = 0, pad_w = 0;
  int stride_h = 1, stride_w = 1;
  int dilation_h = 1, dilation_w = 1;
  int axis = 1;

  // Reads kernel_size / kernel_h / kernel_w and the rest as Caffe does (one value for both
  // spatial axes or one each); throws engine::Error naming `who` on anything invalid.
  static ConvSpec parse(const ConvolutionParameter& param, const std::string& who);

  // The per-image geometry of `bottom`, after checking that it is 4-D with channels on `axis`,
  // that group divides its channels and that the kernel fits the padded input.
  ConvGeometry2d geometry(const Blob& bottom, const std::string& who) const;
  // Deconvolution's: the convolution whose image is one top image (num_output channels of
  // stride * (in - 1) + dilation * (kernel - 1) + 1 - 2 * pad) and whose output is `bottom`'s
  // image; the same checks on `bottom`, and a positive top size.
  ConvGeometry2d transposed_geometry(const Blob& bottom, const std::string& who) const;
};

#ifdef ENGINE_USE_CUDA
class CudnnConvolution;  // conv_cudnn.cpp
#endif

// Unit-stride 3x3 and 5x5 convolution by Winograd's minimal filtering F(4x4, 3x3) and F(4x4, 5x5)
// (conv_winograd.cpp): 36 (64) multiplications per tile and channel pair instead of 144 (400).
// `engine: WINOGRAD` on a Convolution, and a candidate of DEFAULT's; other geometries take
// Caffe's reference path.
namespace winograd {
bool applies(const ConvSpec& spec, int channels);
// Whether a Convolution of these parameters may be one (depthwise ones are not, which only the
// bottom tells); false for parameters that do not parse (the layer reports them).
bool may_apply(const ConvolutionParameter& param);
// What a layer keeps between passes: the transformed weights and tiles, and which values they
// hold (a memory and its stamp then), so that a pass need not redo them while those stay
// unchanged: an inference net's weights, the forward pass's bottom in the backward pass.
struct Workspace {
  std::vector<float> weights, tiles;
  bool tiles_whole = false;  // `tiles` hold every image of the last forward pass's bottom
  struct Made {
    const SyncedMemory* from = nullptr;
    uint64_t stamp = 0;
    bool holds(const SyncedMemory* memory) const {
      return from == memory && !memory->changed_since(stamp);
    }
    void set(const SyncedMemory* memory) {
      from = memory;
      stamp = memory->stamp();
    }
  };
  Made weights_made, tiles_made;
};
// top = conv(bottom) + bias (bias may be null); bottom [num, g.channels, g.height, g.width];
// `weights_ready`: work->weights hold these weights transformed; `keep_tiles`: keep the tiles in
// work->tiles for a backward pass.
void forward(const ConvGeometry2d& g, int num, int outputs, int group, const float* bottom,
             const float* weights, const float* bias, bool weights_ready, bool keep_tiles,
             Workspace* work, float* top);
// weight_diff += the weights' gradient and bottom_diff = the bottom's (overwritten), each
// skipped where null; `tiles_ready`: work->tiles hold the forward pass's tiles of `bottom`.
void backward(const ConvGeometry2d& g, int num, int outputs, int group, const float* bottom,
              const float* top_diff, const float* weights, bool weights_ready, bool tiles_ready,
              Workspace* work, float* weight_diff, float* bottom_diff);
}  // namespace winograd

// The common part of Convolution and Deconvolution layers: blob counts (one top per bottom, all
// bottoms of one shape, all sharing the weights), the weights, the bias [num_output] and the tops
// [N, num_output, h, w]. Convolution's weights are [num_output, C / group, kh, kw]; Deconvolution,
// the transposed convolution, keeps Caffe's [C, num_output / group, kh, kw]. In both the weights'
// rows are the channels of the convolution's output side.
//
// On the GPU a Convolution or Deconvolution, whichever CPU path it takes, runs cuDNN
// (conv_cudnn.cpp): one object serves both devices, since the mode may change after the layer is
// made. engine: CAFFE runs Caffe's reference path there instead, on our im2col kernels and cuBLAS
// (conv.cpp, written once for both devices).
class ConvolutionLayerBase : public Layer {
 public:
#ifdef ENGINE_USE_CUDA
  // Out of line: CudnnConvolution is complete only in conv_cudnn.cpp.
  explicit ConvolutionLayerBase(const LayerParameter& param);
  ~ConvolutionLayerBase() override;
  // For tests: the cuDNN algorithms chosen for the current shapes (forward, backward data,
  // backward filter), or -1 before the first GPU pass.
  std::vector<int> cudnn_algorithms() const;
#else
  using Layer::Layer;
#endif
  int min_bottoms() const override { return 1; }
  int min_tops() const override { return 1; }
  void reshape(const Blobs& bottom, const Blobs& top) override;

 protected:
#ifdef ENGINE_USE_CUDA
  void forward_gpu(const Blobs& bottom, const Blobs& top) override;
  void backward_gpu(const Blobs& top, const std::vector<bool>& propagate_down,
                    const Blobs& bottom) override;
#endif
  void layer_setup(const Blobs& bottom, const Blobs& top) override;
  bool multiplies_operands() const override { return true; }
  bool accepts_epilogue() const override { return true; }
  void set_epilogue(const ChannelEpilogue* epilogue) override { epilogue_ = epilogue; }
  // The end of every CPU forward pass: the fused layers' work on the tops (channel_epilogue.hpp),
  // but for the affine part where the pass computed with folded_parameters().
  void finish_forward(const Blobs& top, bool affine_folded = false) const;
  // The parameters with the epilogue's affine part folded in, for the paths that compute it
  // inside the convolution (the sum scaled is the sum of the scaled terms): each output
  // channel's weights times scale[c], and the bias b[c] * scale[c] + shift[c] (shift[c] alone
  // without a bias term). Remade only when the weights, the bias or the coefficients change, so
  // an inference net pays for the fused BatchNorm and Scale once (but for weights rewritten at
  // every pass: rounded for emulated bf16, or handed out to numpy). Needs an epilogue with
  // has_affine().
  struct FoldedParameters {
    SyncedMemory weights;     // plain, in the weight blob's shape
    std::vector<float> bias;  // [num_output]
    std::vector<float> scale, shift;  // the coefficients folded in
    uint64_t weights_stamp = 0, bias_stamp = 0;  // of the blobs' values folded in
  };
  FoldedParameters& folded_parameters();
  // Deconvolution: the bottoms are the convolution's output side, the tops its image side.
  virtual bool transposed() const { return false; }
  // The channels of the convolution's output side: the top's (Convolution) or the bottom's.
  int output_channels() const { return transposed() ? channels_ : spec_.num_output; }
  // Every bottom through the direct depthwise kernels (conv_depthwise.cpp), for a Convolution
  // where is_depthwise(spec_, channels_).
  void depthwise_forward(const Blobs& bottom, const Blobs& top);
  void depthwise_backward(const Blobs& top, const std::vector<bool>& propagate_down,
                          const Blobs& bottom);
  // Every bottom through Winograd's algorithms (conv_winograd.cpp), for a Convolution where
  // winograd::applies(spec_, channels_).
  void winograd_forward(const Blobs& bottom, const Blobs& top);
  void winograd_backward(const Blobs& top, const std::vector<bool>& propagate_down,
                         const Blobs& bottom);
  // bias_diff += the sum of top_diff over images and positions, per output channel (CPU).
  void accumulate_bias_gradient(const float* top_diff);
  // Values per channel of a top.
  int64_t top_plane() const {
    return transposed() ? int64_t(geometry_.height) * geometry_.width
                        : int64_t(geometry_.out_h()) * geometry_.out_w();
  }

  ConvSpec spec_;
  // The convolution's geometry: its image is one bottom image (Convolution) or one top image
  // (Deconvolution), its output the other.
  ConvGeometry2d geometry_;
  int num_ = 0;              // images per bottom
  int channels_ = 0;         // input channels, fixed at setup by the weights
  const ChannelEpilogue* epilogue_ = nullptr;  // not owned: the net's

 private:
  FoldedParameters folded_;
  winograd::Workspace winograd_;
  std::vector<float> scale_, shift_;  // this pass's coefficients

#ifdef ENGINE_USE_CUDA
  std::unique_ptr<CudnnConvolution> cudnn_;
#endif
};

// The oneDNN paths (conv_onednn.cpp); only in builds with oneDNN.
LayerPtr create_onednn_convolution_layer(const LayerParameter& param);
LayerPtr create_onednn_deconvolution_layer(const LayerParameter& param);

// Depthwise convolution computed directly (conv_depthwise.cpp), for group == channels > 1: output
// channel o reads input channel o / multiplier only, where multiplier = num_output / channels.
// Weights [num_output, 1, kh, kw]; bottoms and tops whole N x C x H x W blobs. Both Convolution
// paths use it (oneDNN's only with engine DEFAULT): on MobileNet's shapes it beats oneDNN's
// grouped convolution with its reorders from and to N x C x H x W.
bool is_depthwise(const ConvSpec& spec, int channels);
namespace depthwise {
// top = conv(bottom) + bias (bias may be null).
void forward(const ConvGeometry2d& g, int num, int multiplier, const float* bottom,
             const float* weights, const float* bias, float* top);
// bottom_diff = the transposed convolution of top_diff (overwritten).
void backward_data(const ConvGeometry2d& g, int num, int multiplier, const float* top_diff,
                   const float* weights, float* bottom_diff);
// weight_diff += the correlation of top_diff with bottom.
void backward_weights(const ConvGeometry2d& g, int num, int multiplier, const float* bottom,
                      const float* top_diff, float* weight_diff);
}  // namespace depthwise

}  // namespace engine
