// Convolution: parameters and shapes shared by both CPU paths, and Caffe's reference path, which
// lowers a chunk of images at once through im2col and multiplies by the weights with BLAS, one
// product per group. The oneDNN path is in conv_onednn.cpp; the factory picks between them.
#include "layers/conv.hpp"

#include <algorithm>
#include <cstring>

#include "core/filler.hpp"
#include "core/layer_registry.hpp"
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

ConvGeometry2d ConvSpec::geometry(const Blob& bottom, const std::string& who) const {
  const int axes = bottom.num_axes();
  ENGINE_REQUIRE(axes == 4 && (axis == 1 || axis == -3),
                 who << ": only 2-D convolution of an N x C x H x W bottom (axis 1) is supported; "
                        "got axis "
                     << axis << " and bottom shape " << bottom.shape_string());
  ConvGeometry2d g;
  g.channels = bottom.shape(1);
  g.height = bottom.shape(2);
  g.width = bottom.shape(3);
  g.kernel_h = kernel_h;
  g.kernel_w = kernel_w;
  g.pad_h = pad_h;
  g.pad_w = pad_w;
  g.stride_h = stride_h;
  g.stride_w = stride_w;
  g.dilation_h = dilation_h;
  g.dilation_w = dilation_w;
  ENGINE_REQUIRE(g.channels % group == 0, who << ": group (" << group
                                              << ") must divide the input channels ("
                                              << g.channels << ")");
  const int extent_h = dilation_h * (kernel_h - 1) + 1;
  const int extent_w = dilation_w * (kernel_w - 1) + 1;
  ENGINE_REQUIRE(g.height + 2 * pad_h >= extent_h && g.width + 2 * pad_w >= extent_w,
                 who << ": the kernel (extent " << extent_h << " x " << extent_w
                     << " with dilation) is larger than the padded input ("
                     << g.height + 2 * pad_h << " x " << g.width + 2 * pad_w << ")");
  return g;
}

void ConvolutionLayerBase::layer_setup(const Blobs& bottom, const Blobs& top) {
  LAYER_REQUIRE(bottom.size() == top.size(), "needs one top per bottom, got "
                                                 << bottom.size() << " bottom(s) and "
                                                 << top.size() << " top(s)");
  const ConvolutionParameter& p = param_.convolution_param();
  spec_ = ConvSpec::parse(p, describe());
  geometry_ = spec_.geometry(*bottom[0], describe());
  channels_ = geometry_.channels;

  const std::vector<int> weight_shape = {spec_.num_output, channels_ / spec_.group,
                                         spec_.kernel_h, spec_.kernel_w};
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

void ConvolutionLayerBase::reshape(const Blobs& bottom, const Blobs& top) {
  for (size_t i = 1; i < bottom.size(); ++i) {
    LAYER_REQUIRE(bottom[i]->shape() == bottom[0]->shape(),
                  "all bottoms must have one shape: bottom 0 is "
                      << bottom[0]->shape_string() << ", bottom " << i << " is "
                      << bottom[i]->shape_string());
  }
  geometry_ = spec_.geometry(*bottom[0], describe());
  LAYER_REQUIRE(geometry_.channels == channels_,
                "the bottom has " << geometry_.channels << " channels, the weights were made for "
                                  << channels_);
  num_ = bottom[0]->shape(0);
  for (Blob* t : top) t->reshape({num_, spec_.num_output, geometry_.out_h(), geometry_.out_w()});
}

namespace {

class ConvolutionLayer : public ConvolutionLayerBase {
 public:
  using ConvolutionLayerBase::ConvolutionLayerBase;

 protected:
  void forward_cpu(const Blobs& bottom, const Blobs& top) override {
    const float* weights = blobs_[0]->cpu_data();
    const float* bias = spec_.bias_term ? blobs_[1]->cpu_data() : nullptr;
    const int images_per_chunk = chunk_images();
    for (size_t i = 0; i < bottom.size(); ++i) {
      const float* in = bottom[i]->cpu_data();
      float* out = top[i]->mutable_cpu_data();
      for (int first = 0; first < num_; first += images_per_chunk) {
        const int n = std::min(images_per_chunk, num_ - first);
        const float* col = lower(in, first, n);
        float* product = n == 1 ? out + first * top_image() : gathered(n);
        const long columns = static_cast<long>(n) * out_plane();
        const int m = spec_.num_output / spec_.group;
        const int k = geometry_.col_rows() / spec_.group;
        for (int g = 0; g < spec_.group; ++g) {
          cpu::gemm(false, false, m, static_cast<int>(columns), k, 1.0f,
                    weights + static_cast<long>(g) * m * k, col + g * k * columns, 0.0f,
                    product + g * m * columns);
        }
        if (bias) {
          for (int o = 0; o < spec_.num_output; ++o) {
            cpu::add_scalar(columns, bias[o], product + o * columns);
          }
        }
        if (n > 1) scatter(product, n, out + first * top_image());
      }
    }
  }

  void backward_cpu(const Blobs& top, const std::vector<bool>& propagate_down,
                    const Blobs& bottom) override {
    const float* weights = blobs_[0]->cpu_data();
    const bool weight_grad = param_propagate_down(0);
    const bool bias_grad = spec_.bias_term && param_propagate_down(1);
    float* weight_diff = weight_grad ? blobs_[0]->mutable_cpu_diff() : nullptr;
    const int images_per_chunk = chunk_images();
    const int m = spec_.num_output / spec_.group;
    const int k = geometry_.col_rows() / spec_.group;
    for (size_t i = 0; i < top.size(); ++i) {
      const float* top_diff = top[i]->cpu_diff();
      if (bias_grad) {
        float* bias_diff = blobs_[1]->mutable_cpu_diff();
        for (int image = 0; image < num_; ++image) {
          const float* plane = top_diff + image * top_image();
          for (int o = 0; o < spec_.num_output; ++o) {
            bias_diff[o] += static_cast<float>(cpu::sum(out_plane(), plane + o * out_plane()));
          }
        }
      }
      if (!weight_grad && !propagate_down[i]) continue;
      const float* in = bottom[i]->cpu_data();
      float* in_diff = propagate_down[i] ? bottom[i]->mutable_cpu_diff() : nullptr;
      for (int first = 0; first < num_; first += images_per_chunk) {
        const int n = std::min(images_per_chunk, num_ - first);
        const long columns = static_cast<long>(n) * out_plane();
        const float* dout = top_diff + first * top_image();
        if (n > 1) {
          gather(dout, n, gathered(n));
          dout = gathered(n);
        }
        if (weight_grad) {
          const float* col = lower(in, first, n);
          for (int g = 0; g < spec_.group; ++g) {
            cpu::gemm(false, true, m, k, static_cast<int>(columns), 1.0f, dout + g * m * columns,
                      col + g * k * columns, 1.0f, weight_diff + static_cast<long>(g) * m * k);
          }
        }
        if (in_diff) {
          float* image_diff = in_diff + first * bottom_image();
          // A 1x1 unpadded unit-stride kernel on one image: the columns are the image itself.
          float* col = (n == 1 && is_pointwise()) ? image_diff : column_buffer(n);
          for (int g = 0; g < spec_.group; ++g) {
            cpu::gemm(true, false, k, static_cast<int>(columns), m, 1.0f,
                      weights + static_cast<long>(g) * m * k, dout + g * m * columns, 0.0f,
                      col + g * k * columns);
          }
          if (col != image_diff) {
            for (int j = 0; j < n; ++j) {
              col2im(geometry_, col + j * out_plane(), columns, image_diff + j * bottom_image());
            }
          }
        }
      }
    }
  }

 private:
  // Images lowered together: as many as keep the column buffer under kColumnBytes.
  static constexpr long kColumnBytes = 64l << 20;
  int chunk_images() const {
    const long per_image = static_cast<long>(geometry_.col_rows()) * out_plane() * sizeof(float);
    return static_cast<int>(std::clamp<long>(kColumnBytes / std::max(per_image, 1l), 1, num_));
  }
  long out_plane() const { return static_cast<long>(geometry_.out_h()) * geometry_.out_w(); }
  long top_image() const { return spec_.num_output * out_plane(); }
  long bottom_image() const {
    return static_cast<long>(geometry_.channels) * geometry_.height * geometry_.width;
  }
  bool is_pointwise() const {
    const ConvGeometry2d& g = geometry_;
    return g.kernel_h == 1 && g.kernel_w == 1 && g.pad_h == 0 && g.pad_w == 0 &&
           g.stride_h == 1 && g.stride_w == 1;
  }

  float* column_buffer(int n) {
    const size_t size = static_cast<size_t>(geometry_.col_rows()) * n * out_plane();
    if (column_.size() < size) column_.resize(size);
    return column_.data();
  }
  // The columns of images [first, first + n), side by side: [col_rows, n * out_plane].
  const float* lower(const float* data, int first, int n) {
    if (n == 1 && is_pointwise()) return data + first * bottom_image();
    float* col = column_buffer(n);
    const long columns = n * out_plane();
    for (int j = 0; j < n; ++j) {
      im2col(geometry_, data + (first + j) * bottom_image(), col + j * out_plane(), columns);
    }
    return col;
  }
  // The products' layout [num_output, n * out_plane] against the blobs' [n, num_output, plane].
  float* gathered(int n) {
    const size_t size = static_cast<size_t>(spec_.num_output) * n * out_plane();
    if (product_.size() < size) product_.resize(size);
    return product_.data();
  }
  void scatter(const float* product, int n, float* images) const {
    const long plane = out_plane(), columns = n * plane;
    for (int o = 0; o < spec_.num_output; ++o) {
      for (int j = 0; j < n; ++j) {
        std::memcpy(images + j * top_image() + o * plane, product + o * columns + j * plane,
                    sizeof(float) * plane);
      }
    }
  }
  void gather(const float* images, int n, float* product) const {
    const long plane = out_plane(), columns = n * plane;
    for (int o = 0; o < spec_.num_output; ++o) {
      for (int j = 0; j < n; ++j) {
        std::memcpy(product + o * columns + j * plane, images + j * top_image() + o * plane,
                    sizeof(float) * plane);
      }
    }
  }

  std::vector<float> column_;   // reused across calls
  std::vector<float> product_;  // top data or diff in the products' layout
};

}  // namespace

LayerPtr create_Convolution_layer(const LayerParameter& param) {
#ifdef ENGINE_USE_ONEDNN
  if (use_onednn(param.convolution_param().engine(),
                 "layer " + param.name() + " (" + param.type() + ")")) {
    return create_onednn_convolution_layer(param);
  }
#else
  use_onednn(param.convolution_param().engine(), "layer " + param.name() + " (" + param.type() + ")");
#endif
  return std::make_unique<ConvolutionLayer>(param);
}

}  // namespace engine
