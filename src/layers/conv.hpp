// Convolution, shared by its two CPU paths (conv.cpp: Caffe's im2col + gemm reference;
// conv_onednn.cpp: oneDNN) and by Deconvolution: the parameters parsed from a
// ConvolutionParameter, and the layer base that owns the parameters, the learnable blobs and the
// top shapes. Only 2-D convolution over N x C x H x W blobs (channel axis 1) is supported.
#pragma once

#include <string>
#include <vector>

#include "core/layer.hpp"
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
};

// The common part of a Convolution layer: blob counts (one top per bottom, all bottoms of one
// shape, all sharing the weights), the weights [num_output, C / group, kh, kw] and bias
// [num_output], and the tops [N, num_output, out_h, out_w].
class ConvolutionLayerBase : public Layer {
 public:
  using Layer::Layer;
  int min_bottoms() const override { return 1; }
  int min_tops() const override { return 1; }
  void reshape(const Blobs& bottom, const Blobs& top) override;

 protected:
  void layer_setup(const Blobs& bottom, const Blobs& top) override;

  ConvSpec spec_;
  ConvGeometry2d geometry_;  // of one image of the bottoms
  int num_ = 0;              // images per bottom
  int channels_ = 0;         // input channels, fixed at setup by the weights
};

// The oneDNN path (conv_onednn.cpp); only in builds with oneDNN.
LayerPtr create_onednn_convolution_layer(const LayerParameter& param);

}  // namespace engine
