// Convolution and Deconvolution: parameters and shapes shared by all paths, and Caffe's reference
// path (engine: CAFFE, and the CPU path of builds without oneDNN), which lowers a chunk of images
// at once through im2col and multiplies by the weights with BLAS, one product per group (on the
// CPU depthwise convolution runs a direct kernel instead). The reference path serves both
// devices: on the GPU it runs our im2col kernels and cuBLAS. The oneDNN paths are in
// conv_onednn.cpp, the cuDNN one in conv_cudnn.cpp; the factories pick between them.
#include "layers/conv.hpp"

#include <algorithm>
#include <vector>

#include "core/channel_epilogue.hpp"
#include "core/filler.hpp"
#include "core/layer_registry.hpp"
#include "core/synced_memory.hpp"
#include "layers/gpu_kernels.hpp"
#include "math/blas.hpp"
#include "math/onednn.hpp"

namespace engine {

namespace {

// One value for both spatial axes, or one for each (h, w); `fallback` when none is given.
void read_pair(const google::protobuf::RepeatedField<uint32_t>& values, const char* field,
               int fallback, const std::string& who, int* h, int* w) {
  ENGINE_REQUIRE(values.size() <= 2, who << ": " << field
                                         << " takes one value, or one per spatial axis (2), got "
                                         << values.size());
  *h = values.empty() ? fallback : static_cast<int>(values.Get(0));
  *w = values.empty() ? fallback : static_cast<int>(values.Get(values.size() - 1));
}

}  // namespace

ConvSpec ConvSpec::parse(const ConvolutionParameter& p, const std::string& who) {
  ConvSpec s;
  s.num_output = static_cast<int>(p.num_output());
  s.bias_term = p.bias_term();
  s.group = static_cast<int>(p.group());
  s.axis = p.axis();
  ENGINE_REQUIRE(s.num_output > 0, who << ": convolution_param needs num_output > 0, got "
                                       << p.num_output());
  ENGINE_REQUIRE(s.group > 0, who << ": group must be positive, got " << p.group());
  ENGINE_REQUIRE(s.num_output % s.group == 0,
                 who << ": group (" << s.group << ") must divide num_output (" << s.num_output
                     << ")");

  if (p.has_kernel_h() || p.has_kernel_w()) {
    ENGINE_REQUIRE(p.kernel_size_size() == 0,
                   who << ": give kernel_size or kernel_h/kernel_w, not both");
    ENGINE_REQUIRE(p.has_kernel_h() && p.has_kernel_w(),
                   who << ": kernel_h and kernel_w must be given together");
    s.kernel_h = static_cast<int>(p.kernel_h());
    s.kernel_w = static_cast<int>(p.kernel_w());
  } else {
    ENGINE_REQUIRE(p.kernel_size_size() > 0,
                   who << ": convolution_param needs kernel_size (or kernel_h and kernel_w)");
    read_pair(p.kernel_size(), "kernel_size", 0, who, &s.kernel_h, &s.kernel_w);
  }
  ENGINE_REQUIRE(s.kernel_h > 0 && s.kernel_w > 0,
                 who << ": kernel size must be nonzero, got " << s.kernel_h << " x " << s.kernel_w);

  if (p.has_pad_h() || p.has_pad_w()) {
    ENGINE_REQUIRE(p.pad_size() == 0, who << ": give pad or pad_h/pad_w, not both");
    s.pad_h = static_cast<int>(p.pad_h());
    s.pad_w = static_cast<int>(p.pad_w());
  } else {
    read_pair(p.pad(), "pad", 0, who, &s.pad_h, &s.pad_w);
  }

  if (p.has_stride_h() || p.has_stride_w()) {
    ENGINE_REQUIRE(p.stride_size() == 0, who << ": give stride or stride_h/stride_w, not both");
    ENGINE_REQUIRE(p.has_stride_h() && p.has_stride_w(),
                   who << ": stride_h and stride_w must be given together");
    s.stride_h = static_cast<int>(p.stride_h());
    s.stride_w = static_cast<int>(p.stride_w());
  } else {
    read_pair(p.stride(), "stride", 1, who, &s.stride_h, &s.stride_w);
  }
  ENGINE_REQUIRE(s.stride_h > 0 && s.stride_w > 0,
                 who << ": stride must be nonzero, got " << s.stride_h << " x " << s.stride_w);

  read_pair(p.dilation(), "dilation", 1, who, &s.dilation_h, &s.dilation_w);
  ENGINE_REQUIRE(s.dilation_h > 0 && s.dilation_w > 0,
                 who << ": dilation must be nonzero, got " << s.dilation_h << " x "
                     << s.dilation_w);
  return s;
}

namespace {

// The checks both geometries make of the bottom: 4-D, channels on axis 1, divisible by group.
void check_bottom(const ConvSpec& s, const Blob& bottom, const std::string& who) {
  ENGINE_REQUIRE(bottom.num_axes() == 4 && (s.axis == 1 || s.axis == -3),
                 who << ": only 2-D convolution of an N x C x H x W bottom (axis 1) is supported; "
                        "got axis "
                     << s.axis << " and bottom shape " << bottom.shape_string());
  ENGINE_REQUIRE(bottom.shape(1) > 0 && bottom.shape(2) > 0 && bottom.shape(3) > 0,
                 who << ": the bottom has shape " << bottom.shape_string()
                     << "; channels, height and width must be positive");
  ENGINE_REQUIRE(bottom.shape(1) % s.group == 0, who << ": group (" << s.group
                                                     << ") must divide the input channels ("
                                                     << bottom.shape(1) << ")");
}

// The kernel, padding, stride and dilation of `s` over a C x H x W image.
ConvGeometry2d image_geometry(const ConvSpec& s, int channels, int height, int width) {
  ConvGeometry2d g;
  g.channels = channels;
  g.height = height;
  g.width = width;
  g.kernel_h = s.kernel_h;
  g.kernel_w = s.kernel_w;
  g.pad_h = s.pad_h;
  g.pad_w = s.pad_w;
  g.stride_h = s.stride_h;
  g.stride_w = s.stride_w;
  g.dilation_h = s.dilation_h;
  g.dilation_w = s.dilation_w;
  return g;
}

}  // namespace

ConvGeometry2d ConvSpec::geometry(const Blob& bottom, const std::string& who) const {
  check_bottom(*this, bottom, who);
  const ConvGeometry2d g = image_geometry(*this, bottom.shape(1), bottom.shape(2), bottom.shape(3));
  const int extent_h = dilation_h * (kernel_h - 1) + 1;
  const int extent_w = dilation_w * (kernel_w - 1) + 1;
  ENGINE_REQUIRE(g.height + 2 * pad_h >= extent_h && g.width + 2 * pad_w >= extent_w,
                 who << ": the kernel (extent " << extent_h << " x " << extent_w
                     << " with dilation) is larger than the padded input ("
                     << g.height + 2 * pad_h << " x " << g.width + 2 * pad_w << ")");
  return g;
}

ConvGeometry2d ConvSpec::transposed_geometry(const Blob& bottom, const std::string& who) const {
  check_bottom(*this, bottom, who);
  const long height = static_cast<long>(stride_h) * (bottom.shape(2) - 1) +
                      static_cast<long>(dilation_h) * (kernel_h - 1) + 1 - 2l * pad_h;
  const long width = static_cast<long>(stride_w) * (bottom.shape(3) - 1) +
                     static_cast<long>(dilation_w) * (kernel_w - 1) + 1 - 2l * pad_w;
  ENGINE_REQUIRE(bottom.shape(2) > 0 && bottom.shape(3) > 0 && height > 0 && width > 0,
                 who << ": the padding (" << pad_h << " x " << pad_w
                     << ") leaves no output: stride * (in - 1) + dilation * (kernel - 1) + 1 - "
                        "2 * pad is "
                     << height << " x " << width << " for a bottom of shape "
                     << bottom.shape_string());
  return image_geometry(*this, num_output, static_cast<int>(height), static_cast<int>(width));
}

void ConvolutionLayerBase::layer_setup(const Blobs& bottom, const Blobs& top) {
  LAYER_REQUIRE(bottom.size() == top.size(), "needs one top per bottom, got "
                                                 << bottom.size() << " bottom(s) and "
                                                 << top.size() << " top(s)");
  const ConvolutionParameter& p = param_.convolution_param();
  spec_ = ConvSpec::parse(p, describe());
  geometry_ = transposed() ? spec_.transposed_geometry(*bottom[0], describe())
                           : spec_.geometry(*bottom[0], describe());
  channels_ = bottom[0]->shape(1);

  const std::vector<int> weight_shape =
      transposed() ? std::vector<int>{channels_, spec_.num_output / spec_.group, spec_.kernel_h,
                                      spec_.kernel_w}
                   : std::vector<int>{spec_.num_output, channels_ / spec_.group, spec_.kernel_h,
                                      spec_.kernel_w};
  const std::vector<int> bias_shape = {spec_.num_output};
  const size_t expected = spec_.bias_term ? 2 : 1;
  if (!blobs_.empty()) {
    LAYER_REQUIRE(blobs_.size() == expected,
                  "expects " << expected << " parameter blob(s) (weights"
                             << (spec_.bias_term ? " and bias" : "") << "), got "
                             << blobs_.size());
    LAYER_REQUIRE(blobs_[0]->shape() == weight_shape,
                  "weights should have shape " << shape_string(weight_shape) << ", got "
                                               << blobs_[0]->shape_string());
    LAYER_REQUIRE(!spec_.bias_term || blobs_[1]->shape() == bias_shape,
                  "bias should have shape " << shape_string(bias_shape) << ", got "
                                            << blobs_[1]->shape_string());
    return;
  }
  blobs_.push_back(std::make_shared<Blob>(weight_shape));
  fill(p.weight_filler(), blobs_[0].get());
  if (spec_.bias_term) {
    blobs_.push_back(std::make_shared<Blob>(bias_shape));
    fill(p.bias_filler(), blobs_[1].get());
  }
}

void ConvolutionLayerBase::finish_forward(const Blobs& top, bool affine_folded) const {
  // A net sets an epilogue for CPU passes only (the GPU runs the fused layers themselves).
  if (!epilogue_ || math::on_gpu() || (affine_folded && !epilogue_->clamps())) return;
  for (Blob* blob : top) {
    epilogue_->apply(blob->shape(0), blob->shape(1), blob->count(2), blob->mutable_cpu_data(),
                     !affine_folded);
  }
}

ConvolutionLayerBase::FoldedParameters& ConvolutionLayerBase::folded_parameters() {
  epilogue_->coefficients(spec_.num_output, &scale_, &shift_);
  const SyncedMemory& weights = *blobs_[0]->data_memory();
  const SyncedMemory* bias = spec_.bias_term ? blobs_[1]->data_memory().get() : nullptr;
  if (folded_.weights.size() == weights.size() && !weights.changed_since(folded_.weights_stamp) &&
      (!bias || !bias->changed_since(folded_.bias_stamp)) && scale_ == folded_.scale &&
      shift_ == folded_.shift) {
    return folded_;
  }
  const Blob& weight_blob = *blobs_[0];
  folded_.weights.resize(weights.size());
  float* out = static_cast<float*>(folded_.weights.mutable_host_data());
  const float* in = weight_blob.cpu_data();
  // Convolution's weight rows are its output channels; Deconvolution's [C, num_output / group]
  // rows and columns map to output channel (row / (C / group)) * (num_output / group) + column.
  const int rows = weight_blob.shape(0), columns = weight_blob.shape(1);
  const int64_t kernel = weight_blob.count(2);
  const int rows_per_group = rows / spec_.group;
  for (int row = 0; row < rows; ++row) {
    for (int column = 0; column < columns; ++column) {
      const int channel = transposed() ? (row / rows_per_group) * columns + column : row;
      const int64_t start = (int64_t(row) * columns + column) * kernel;
      for (int64_t k = 0; k < kernel; ++k) out[start + k] = in[start + k] * scale_[channel];
    }
  }
  folded_.bias = shift_;
  if (bias) {
    const float* b = blobs_[1]->cpu_data();
    for (int c = 0; c < spec_.num_output; ++c) folded_.bias[c] += b[c] * scale_[c];
  }
  folded_.scale = scale_;
  folded_.shift = shift_;
  folded_.weights_stamp = weights.stamp();
  folded_.bias_stamp = bias ? bias->stamp() : 0;
  return folded_;
}

void ConvolutionLayerBase::accumulate_bias_gradient(const float* top_diff) {
  float* bias_diff = blobs_[1]->mutable_cpu_diff();
  const int64_t plane = top_plane();
  for (int image = 0; image < num_; ++image) {
    for (int o = 0; o < spec_.num_output; ++o) {
      const float* p = top_diff + (int64_t(image) * spec_.num_output + o) * plane;
      bias_diff[o] += static_cast<float>(cpu::sum(plane, p));
    }
  }
}

void ConvolutionLayerBase::reshape(const Blobs& bottom, const Blobs& top) {
  for (size_t i = 1; i < bottom.size(); ++i) {
    LAYER_REQUIRE(bottom[i]->shape() == bottom[0]->shape(),
                  "all bottoms must have one shape: bottom 0 is "
                      << bottom[0]->shape_string() << ", bottom " << i << " is "
                      << bottom[i]->shape_string());
  }
  geometry_ = transposed() ? spec_.transposed_geometry(*bottom[0], describe())
                           : spec_.geometry(*bottom[0], describe());
  LAYER_REQUIRE(bottom[0]->shape(1) == channels_,
                "the bottom has " << bottom[0]->shape(1) << " channels, the weights were made for "
                                  << channels_);
  num_ = bottom[0]->shape(0);
  const std::vector<int> shape =
      transposed() ? std::vector<int>{num_, spec_.num_output, geometry_.height, geometry_.width}
                   : std::vector<int>{num_, spec_.num_output, geometry_.out_h(), geometry_.out_w()};
  for (Blob* t : top) t->reshape(shape);
}

namespace {

// A scratch buffer on the side the mode computes on. Each side keeps its own, never copied to the
// other: the contents live for one pass only.
class Scratch {
 public:
  float* get(size_t count) {
#ifdef ENGINE_USE_CUDA
    if (math::on_gpu()) {
      device_.resize(sizeof(float) * count);  // reuses the allocation when it is large enough
      return static_cast<float*>(device_.mutable_device_data());
    }
#endif
    if (host_.size() < count) host_.resize(count);
    return host_.data();
  }

 private:
  std::vector<float> host_;
#ifdef ENGINE_USE_CUDA
  SyncedMemory device_;
#endif
};

// Caffe's lowering, in both directions, for a whole minibatch. The image side (geometry_) is
// lowered to columns by im2col; the output side holds `output_channels` planes of
// out_h x out_w per image, and the weights are [output_channels, image channels / group * kh *
// kw]. Images are lowered a chunk at a time so that one product per group covers many images.
// Written once for both devices: pointers from the mode-aware accessors, products through
// math::, and only im2col / col2im and the bias steps choosing their side.
class LoweredConvolution : public ConvolutionLayerBase {
 public:
  using ConvolutionLayerBase::ConvolutionLayerBase;

 protected:
  // Both layer types' passes, in the convolution's terms: a Convolution's bottom is its image
  // side and its top the output side; a Deconvolution (transposed()) has them the other way.
  void forward_cpu(const Blobs& bottom, const Blobs& top) override {
    const float* weights = blobs_[0]->data();
    for (size_t i = 0; i < bottom.size(); ++i) {
      float* out = top[i]->mutable_data();
      if (transposed()) {
        convolve_transposed(bottom[i]->data(), weights, out);
      } else {
        convolve(bottom[i]->data(), weights, out);
      }
      if (spec_.bias_term) add_bias(out, top_plane());
    }
    finish_forward(top);
  }

  void backward_cpu(const Blobs& top, const std::vector<bool>& propagate_down,
                    const Blobs& bottom) override {
    const float* weights = blobs_[0]->data();
    for (size_t i = 0; i < top.size(); ++i) {
      const float* top_diff = top[i]->diff();
      if (spec_.bias_term && param_propagate_down(1)) bias_gradient(top_diff);
      if (param_propagate_down(0)) {
        float* weight_diff = blobs_[0]->mutable_diff();
        if (transposed()) {
          correlate(top_diff, bottom[i]->data(), weight_diff);
        } else {
          correlate(bottom[i]->data(), top_diff, weight_diff);
        }
      }
      if (!propagate_down[i]) continue;
      if (transposed()) {
        convolve(top_diff, weights, bottom[i]->mutable_diff());
      } else {
        convolve_transposed(top_diff, weights, bottom[i]->mutable_diff());
      }
    }
  }

  // outputs = W * im2col(images), overwritten.
  void convolve(const float* images, const float* weights, float* outputs) {
    const int m = output_channels() / spec_.group;
    const int k = geometry_.col_rows() / spec_.group;
    for (int first = 0; first < num_; first += chunk_images()) {
      const int n = std::min(chunk_images(), num_ - first);
      const float* col = lower(images, first, n);
      float* product = n == 1 ? outputs + first * output_image() : gathered(n);
      const long columns = static_cast<long>(n) * out_plane();
      for (int g = 0; g < spec_.group; ++g) {
        math::gemm(false, false, m, static_cast<int>(columns), k, 1.0f,
                   weights + static_cast<long>(g) * m * k, col + g * k * columns, 0.0f,
                   product + g * m * columns);
      }
      if (n > 1) scatter(product, n, outputs + first * output_image());
    }
  }

  // images = col2im(W^T * outputs), overwritten: the adjoint of convolve.
  void convolve_transposed(const float* outputs, const float* weights, float* images) {
    const int m = output_channels() / spec_.group;
    const int k = geometry_.col_rows() / spec_.group;
    for (int first = 0; first < num_; first += chunk_images()) {
      const int n = std::min(chunk_images(), num_ - first);
      const long columns = static_cast<long>(n) * out_plane();
      const float* product = outputs_as_product(outputs, first, n);
      float* image = images + first * image_size();
      // A 1x1 unpadded unit-stride kernel on one image: the columns are the image itself.
      float* col = (n == 1 && is_pointwise()) ? image : column_.get(column_count(n));
      for (int g = 0; g < spec_.group; ++g) {
        math::gemm(true, false, k, static_cast<int>(columns), m, 1.0f,
                   weights + static_cast<long>(g) * m * k, product + g * m * columns, 0.0f,
                   col + g * k * columns);
      }
      if (col != image) {
        for (int j = 0; j < n; ++j) {
          columns_to_image(col + j * out_plane(), columns, image + j * image_size());
        }
      }
    }
  }

  // weight_diff += outputs * im2col(images)^T.
  void correlate(const float* images, const float* outputs, float* weight_diff) {
    const int m = output_channels() / spec_.group;
    const int k = geometry_.col_rows() / spec_.group;
    for (int first = 0; first < num_; first += chunk_images()) {
      const int n = std::min(chunk_images(), num_ - first);
      const long columns = static_cast<long>(n) * out_plane();
      const float* product = outputs_as_product(outputs, first, n);
      const float* col = lower(images, first, n);
      for (int g = 0; g < spec_.group; ++g) {
        math::gemm(false, true, m, k, static_cast<int>(columns), 1.0f, product + g * m * columns,
                   col + g * k * columns, 1.0f, weight_diff + static_cast<long>(g) * m * k);
      }
    }
  }

  // Per-channel bias over whole N x num_output x plane tops, and its gradient (accumulated).
  void add_bias(float* top, long plane) const {
    const float* bias = blobs_[1]->data();
#ifdef ENGINE_USE_CUDA
    if (math::on_gpu()) return broadcast_add_gpu(num_, spec_.num_output, plane, top, bias, top);
#endif
    for (int image = 0; image < num_; ++image) {
      for (int o = 0; o < spec_.num_output; ++o) {
        float* p = top + (static_cast<long>(image) * spec_.num_output + o) * plane;
        cpu::add_scalar(plane, bias[o], p);
      }
    }
  }
  void bias_gradient(const float* top_diff) {
#ifdef ENGINE_USE_CUDA
    if (math::on_gpu()) {
      return reduce_to_operand_gpu(num_, spec_.num_output, top_plane(), top_diff, nullptr,
                                   /*accumulate=*/true, blobs_[1]->mutable_diff());
    }
#endif
    accumulate_bias_gradient(top_diff);
  }

  long out_plane() const { return static_cast<long>(geometry_.out_h()) * geometry_.out_w(); }
  long image_plane() const { return static_cast<long>(geometry_.height) * geometry_.width; }
  long image_size() const { return geometry_.channels * image_plane(); }
  long output_image() const { return output_channels() * out_plane(); }

 private:
  // Images lowered together: as many as keep the column buffer under kColumnBytes.
  static constexpr long kColumnBytes = 64l << 20;
  int chunk_images() const {
    const long per_image = static_cast<long>(geometry_.col_rows()) * out_plane() * sizeof(float);
    return static_cast<int>(std::clamp<long>(kColumnBytes / std::max(per_image, 1l), 1, num_));
  }
  bool is_pointwise() const {
    const ConvGeometry2d& g = geometry_;
    return g.kernel_h == 1 && g.kernel_w == 1 && g.pad_h == 0 && g.pad_w == 0 &&
           g.stride_h == 1 && g.stride_w == 1;
  }

  size_t column_count(int n) const {
    return static_cast<size_t>(geometry_.col_rows()) * n * out_plane();
  }
  // The columns of images [first, first + n), side by side: [col_rows, n * out_plane].
  const float* lower(const float* images, int first, int n) {
    if (n == 1 && is_pointwise()) return images + first * image_size();
    float* col = column_.get(column_count(n));
    const long columns = n * out_plane();
    for (int j = 0; j < n; ++j) {
      const float* image = images + (first + j) * image_size();
#ifdef ENGINE_USE_CUDA
      if (math::on_gpu()) {
        gpu::im2col(geometry_, image, col + j * out_plane(), columns);
        continue;
      }
#endif
      im2col(geometry_, image, col + j * out_plane(), columns);
    }
    return col;
  }
  // col2im of one image's columns (row_stride apart) into the image, on the mode's side.
  void columns_to_image(const float* col, long row_stride, float* image) const {
#ifdef ENGINE_USE_CUDA
    if (math::on_gpu()) return gpu::col2im(geometry_, col, row_stride, image);
#endif
    col2im(geometry_, col, row_stride, image);
  }
  // The products' layout [output_channels, n * out_plane] against the blobs' [n, channels,
  // plane].
  float* gathered(int n) {
    return product_.get(static_cast<size_t>(output_channels()) * n * out_plane());
  }
  // Images [first, first + n) of `outputs` in the products' layout (one image already is).
  const float* outputs_as_product(const float* outputs, int first, int n) {
    const float* images = outputs + first * output_image();
    if (n == 1) return images;
    float* product = gathered(n);
    gather(images, n, product);
    return product;
  }
  // One strided copy per image: image j's planes are the products' columns [j * plane, (j + 1) *
  // plane) of every row.
  void scatter(const float* product, int n, float* images) const {
    const long plane = out_plane(), columns = n * plane;
    for (int j = 0; j < n; ++j) {
      math::copy_rows(output_channels(), plane, product + j * plane, columns,
                      images + j * output_image(), plane);
    }
  }
  void gather(const float* images, int n, float* product) const {
    const long plane = out_plane(), columns = n * plane;
    for (int j = 0; j < n; ++j) {
      math::copy_rows(output_channels(), plane, images + j * output_image(), plane,
                      product + j * plane, columns);
    }
  }

  Scratch column_;   // reused across calls
  Scratch product_;  // output-side data or diff in the products' layout
};

// Depthwise geometries (group == channels) run the direct kernels of conv_depthwise.cpp on the
// CPU instead: lowered, each group would be a product of one row of weights. Those kernels are
// CPU code, so on the GPU (engine: CAFFE) depthwise geometries are lowered per group, as Caffe
// does. engine: WINOGRAD computes unit-stride 3x3 and 5x5 geometries by conv_winograd.cpp on the
// CPU.
class ConvolutionLayer : public LoweredConvolution {
 public:
  using LoweredConvolution::LoweredConvolution;

 protected:
  void forward_cpu(const Blobs& bottom, const Blobs& top) override {
    if (direct_depthwise()) return depthwise_forward(bottom, top);
    if (winograd()) return winograd_forward(bottom, top);
    LoweredConvolution::forward_cpu(bottom, top);
  }

  void backward_cpu(const Blobs& top, const std::vector<bool>& propagate_down,
                    const Blobs& bottom) override {
    if (direct_depthwise()) return depthwise_backward(top, propagate_down, bottom);
    if (winograd()) return winograd_backward(top, propagate_down, bottom);
    LoweredConvolution::backward_cpu(top, propagate_down, bottom);
  }

 private:
  bool direct_depthwise() const { return !math::on_gpu() && is_depthwise(spec_, channels_); }
  // engine: WINOGRAD on a geometry it serves, in fp32 (reduced precision multiplies the rounded
  // operands themselves, which the transforms would not).
  bool winograd() const {
    return param_.convolution_param().engine() == ConvolutionParameter::WINOGRAD &&
           !math::on_gpu() && precision() == FP32 && winograd::applies(spec_, channels_);
  }
};

// Deconvolution: Convolution's forward and backward-data passes exchanged, its weight gradient
// the correlation of the top's gradient (the image side) with the bottom (the output side).
class DeconvolutionLayer : public LoweredConvolution {
 public:
  using LoweredConvolution::LoweredConvolution;

 protected:
  bool transposed() const override { return true; }
};

std::string description(const LayerParameter& param) {
  return "layer " + param.name() + " (" + param.type() + ")";
}

}  // namespace

LayerPtr create_Convolution_layer(const LayerParameter& param) {
#ifdef ENGINE_USE_ONEDNN
  if (use_onednn(param.convolution_param().engine(), description(param))) {
    return create_onednn_convolution_layer(param);
  }
#else
  use_onednn(param.convolution_param().engine(), description(param));
#endif
  return std::make_unique<ConvolutionLayer>(param);
}

LayerPtr create_Deconvolution_layer(const LayerParameter& param) {
#ifdef ENGINE_USE_ONEDNN
  if (use_onednn(param.convolution_param().engine(), description(param))) {
    return create_onednn_deconvolution_layer(param);
  }
#else
  use_onednn(param.convolution_param().engine(), description(param));
#endif
  return std::make_unique<DeconvolutionLayer>(param);
}

}  // namespace engine
