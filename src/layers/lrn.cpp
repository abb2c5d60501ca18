// Local response normalization, BVLC Caffe's arithmetic:
//   ACROSS_CHANNELS  y = x * (k + alpha/n * sum of x^2 over the n channels centred on x)^-beta,
//                    channels past either end count as zeros;
//   WITHIN_CHANNEL   y = x * (1 + alpha * avg)^-beta, avg = sum of x^2 over the n x n window
//                    centred on x (zero padded) / n^2. Caffe builds this from split, power,
//                    average pooling (pad (n-1)/2, stride 1: its divisor is n^2 even at the
//                    borders), power and product layers, whose shift is fixed at 1: k is unused.
// Both backward passes are
//   dx = dy * s^-beta - (2 alpha beta / N) * x * sum over the window around x of dy * y / s,
// with s the bracket above and N = n (across) or n^2 (within).
#include <algorithm>
#include <cmath>
#include <unordered_map>
#include <vector>

#include "core/layer.hpp"
#include "core/layer_registry.hpp"
#include "math/onednn.hpp"

namespace engine {
namespace {

// y = x * s^-beta; the common exponents avoid pow, which does not vectorize.
void multiply_by_power(int64_t n, const float* x, const float* s, float beta, float* y) {
  if (beta == 0.75f) {
    for (int64_t i = 0; i < n; ++i) {
      const float root = std::sqrt(s[i]);
      y[i] = x[i] / (root * std::sqrt(root));
    }
  } else if (beta == 0.5f) {
    for (int64_t i = 0; i < n; ++i) y[i] = x[i] / std::sqrt(s[i]);
  } else if (beta == 1.0f) {
    for (int64_t i = 0; i < n; ++i) y[i] = x[i] / s[i];
  } else {
    for (int64_t i = 0; i < n; ++i) y[i] = x[i] * std::pow(s[i], -beta);
  }
}

// out[c] = sum of in[c'] for c' in [c - pad, c + pad] within [0, count), each "element" being
// a vector of `width` floats (a channel's plane, or a row). A running sum adds the head and
// drops the tail, so each output costs two vector operations whatever the window.
void window_sum(const float* in, int count, int64_t width, int pad, float* out) {
  std::fill(out, out + width, 0.0f);
  for (int c = 0; c <= std::min(pad, count - 1); ++c) {
    const float* src = in + c * width;
    for (int64_t i = 0; i < width; ++i) out[i] += src[i];
  }
  for (int c = 1; c < count; ++c) {
    const float* previous = out + (c - 1) * width;
    float* dst = out + c * width;
    const float* head = c + pad < count ? in + (c + pad) * width : nullptr;
    const float* tail = c - pad - 1 >= 0 ? in + (c - pad - 1) * width : nullptr;
    if (head && tail) {
      for (int64_t i = 0; i < width; ++i) dst[i] = previous[i] + head[i] - tail[i];
    } else if (head) {
      for (int64_t i = 0; i < width; ++i) dst[i] = previous[i] + head[i];
    } else if (tail) {
      for (int64_t i = 0; i < width; ++i) dst[i] = previous[i] - tail[i];
    } else {
      std::copy(previous, previous + width, dst);
    }
  }
}

// The same sum along one row of floats.
void row_window_sum(const float* in, int count, int pad, float* out) {
  float sum = 0;
  for (int c = 0; c < std::min(pad, count); ++c) sum += in[c];
  for (int c = 0; c < count; ++c) {
    if (c + pad < count) sum += in[c + pad];
    if (c - pad - 1 >= 0) sum -= in[c - pad - 1];
    out[c] = sum;
  }
}

// The n x n box sum of an H x W plane, clipped to the plane: columns first (rows as vectors),
// then along each row.
void box_sum(const float* in, int height, int width, int pad, float* scratch, float* out) {
  window_sum(in, height, width, pad, scratch);
  for (int h = 0; h < height; ++h) {
    row_window_sum(scratch + int64_t(h) * width, width, pad, out + int64_t(h) * width);
  }
}

class LRNLayer : public Layer {
 public:
  using Layer::Layer;
  int exact_bottoms() const override { return 1; }
  int exact_tops() const override { return 1; }

  void layer_setup(const Blobs& bottom, const Blobs& top) override {
    const LRNParameter& p = param_.lrn_param();
    size_ = static_cast<int>(p.local_size());
    LAYER_REQUIRE(size_ % 2 == 1, "local_size must be odd, got " << p.local_size());
    pre_pad_ = (size_ - 1) / 2;
    alpha_ = p.alpha();
    beta_ = p.beta();
    k_ = p.k();
    across_ = p.norm_region() == LRNParameter::ACROSS_CHANNELS;
    if (!across_ && p.has_k() && k_ != 1.0f) {
      LOG(WARNING) << describe() << ": WITHIN_CHANNEL uses 1 in place of k (" << k_
                   << "), as Caffe does";
    }
    want_onednn_ = use_onednn(p.engine(), describe());
  }

  void reshape(const Blobs& bottom, const Blobs& top) override {
    const Blob& in = *bottom[0];
    LAYER_REQUIRE(in.num_axes() == 4, "needs a 4-axis bottom (num, channels, height, width), got "
                                          << in.shape_string());
    const bool changed = in.shape() != shape_;
    shape_ = in.shape();
    top[0]->reshape(shape_);
    if (!changed) return;
    scale_.resize(static_cast<size_t>(in.count()));
    const int64_t per_sample = in.count(1);
    ratio_.resize(static_cast<size_t>(per_sample));
    window_.resize(static_cast<size_t>(per_sample));
    scratch_.resize(static_cast<size_t>(in.height()) * in.width());
#ifdef ENGINE_USE_ONEDNN
    onednn_ready_ = want_onednn_ && build_onednn();
#endif
  }

  // Whether forward and backward run on oneDNN for the current shapes (tests ask).
  bool runs_onednn() const { return onednn_ready_; }

 protected:
  void forward_cpu(const Blobs& bottom, const Blobs& top) override {
#ifdef ENGINE_USE_ONEDNN
    if (onednn_ready_) {
      onednn_forward(*bottom[0], *top[0]);
      return;
    }
#endif
    const float* x = bottom[0]->cpu_data();
    float* y = top[0]->mutable_cpu_data();
    const int num = shape_[0];
    const int64_t per_sample = bottom[0]->count(1);
    const int64_t plane = int64_t(shape_[2]) * shape_[3];
    float* squares = ratio_.data();
    for (int n = 0; n < num; ++n) {
      const float* xn = x + n * per_sample;
      float* sn = scale_.data() + n * per_sample;
      for (int64_t i = 0; i < per_sample; ++i) squares[i] = xn[i] * xn[i];
      float coefficient, shift;
      if (across_) {
        window_sum(squares, shape_[1], plane, pre_pad_, window_.data());
        coefficient = alpha_ / size_;
        shift = k_;
      } else {
        for (int c = 0; c < shape_[1]; ++c) {
          box_sum(squares + c * plane, shape_[2], shape_[3], pre_pad_, scratch_.data(),
                  window_.data() + c * plane);
        }
        coefficient = alpha_ / (size_ * size_);
        shift = 1.0f;
      }
      // A running sum of squares may cancel to a hair below zero: clamp it.
      for (int64_t i = 0; i < per_sample; ++i) {
        sn[i] = shift + coefficient * std::max(window_[i], 0.0f);
      }
      multiply_by_power(per_sample, xn, sn, beta_, y + n * per_sample);
    }
  }

  void backward_cpu(const Blobs& top, const std::vector<bool>& propagate_down,
                    const Blobs& bottom) override {
    if (!propagate_down[0]) return;
#ifdef ENGINE_USE_ONEDNN
    if (onednn_ready_) {
      onednn_backward(*top[0], *bottom[0]);
      return;
    }
#endif
    const float* x = bottom[0]->cpu_data();
    const float* y = top[0]->cpu_data();
    const float* dy = top[0]->cpu_diff();
    float* dx = bottom[0]->mutable_cpu_diff();
    const int num = shape_[0];
    const int64_t per_sample = bottom[0]->count(1);
    const int64_t plane = int64_t(shape_[2]) * shape_[3];
    const float summands = across_ ? size_ : size_ * size_;
    const float cross = 2.0f * alpha_ * beta_ / summands;
    for (int n = 0; n < num; ++n) {
      const int64_t offset = n * per_sample;
      const float* sn = scale_.data() + offset;
      for (int64_t i = 0; i < per_sample; ++i) {
        ratio_[i] = dy[offset + i] * y[offset + i] / sn[i];
      }
      if (across_) {
        window_sum(ratio_.data(), shape_[1], plane, pre_pad_, window_.data());
      } else {
        for (int c = 0; c < shape_[1]; ++c) {
          box_sum(ratio_.data() + c * plane, shape_[2], shape_[3], pre_pad_, scratch_.data(),
                  window_.data() + c * plane);
        }
      }
      multiply_by_power(per_sample, dy + offset, sn, beta_, dx + offset);
      for (int64_t i = 0; i < per_sample; ++i) dx[offset + i] -= cross * x[offset + i] * window_[i];
    }
  }

 private:
#ifdef ENGINE_USE_ONEDNN
  bool build_onednn() {
    using dnnl::memory;
    try {
      dnnl::engine& engine = onednn::cpu_engine();
      const memory::desc md(onednn::dims(shape_), memory::data_type::f32,
                            memory::format_tag::nchw);
      // oneDNN divides alpha by its number of summands (n, or n^2 within a channel), as Caffe
      // does; within a channel Caffe's shift is 1.
      const auto algorithm = across_ ? dnnl::algorithm::lrn_across_channels
                                     : dnnl::algorithm::lrn_within_channel;
      const float k = across_ ? k_ : 1.0f;
      const dnnl::lrn_forward::primitive_desc forward_pd(
          dnnl::lrn_forward::desc(dnnl::prop_kind::forward_training, algorithm, md, size_,
                                  alpha_, beta_, k),
          engine);
      const dnnl::lrn_backward::primitive_desc backward_pd(
          dnnl::lrn_backward::desc(algorithm, md, md, size_, alpha_, beta_, k), engine,
          forward_pd);
      onednn_forward_ = dnnl::lrn_forward(forward_pd);
      onednn_backward_ = dnnl::lrn_backward(backward_pd);
      src_mem_ = memory(md, engine, nullptr);
      dst_mem_ = memory(md, engine, nullptr);
      diff_src_mem_ = memory(md, engine, nullptr);
      diff_dst_mem_ = memory(md, engine, nullptr);
      has_workspace_ = forward_pd.workspace_desc().get_size() > 0;
      if (has_workspace_) workspace_mem_ = memory(forward_pd.workspace_desc(), engine);
    } catch (const dnnl::error& error) {
      LOG(INFO) << describe() << ": oneDNN cannot normalize this shape (" << error.what()
                << "); using the reference code";
      return false;
    }
    return true;
  }

  void onednn_forward(const Blob& bottom, Blob& top) {
    src_mem_.set_data_handle(const_cast<float*>(bottom.cpu_data()));
    dst_mem_.set_data_handle(top.mutable_cpu_data());
    std::unordered_map<int, dnnl::memory> args = {{DNNL_ARG_SRC, src_mem_},
                                                  {DNNL_ARG_DST, dst_mem_}};
    if (has_workspace_) args[DNNL_ARG_WORKSPACE] = workspace_mem_;
    onednn_forward_.execute(onednn::cpu_stream(), args);
    onednn::cpu_stream().wait();
  }

  void onednn_backward(const Blob& top, Blob& bottom) {
    src_mem_.set_data_handle(const_cast<float*>(bottom.cpu_data()));
    diff_dst_mem_.set_data_handle(const_cast<float*>(top.cpu_diff()));
    diff_src_mem_.set_data_handle(bottom.mutable_cpu_diff());
    std::unordered_map<int, dnnl::memory> args = {{DNNL_ARG_SRC, src_mem_},
                                                  {DNNL_ARG_DIFF_DST, diff_dst_mem_},
                                                  {DNNL_ARG_DIFF_SRC, diff_src_mem_}};
    if (has_workspace_) args[DNNL_ARG_WORKSPACE] = workspace_mem_;
    onednn_backward_.execute(onednn::cpu_stream(), args);
    onednn::cpu_stream().wait();
  }

  dnnl::lrn_forward onednn_forward_;
  dnnl::lrn_backward onednn_backward_;
  dnnl::memory src_mem_, dst_mem_, diff_src_mem_, diff_dst_mem_, workspace_mem_;
  bool has_workspace_ = false;
#endif

  int size_ = 5, pre_pad_ = 2;
  float alpha_ = 1, beta_ = 0.75f, k_ = 1;
  bool across_ = true;
  bool want_onednn_ = false;
  bool onednn_ready_ = false;
  std::vector<int> shape_;
  std::vector<float> scale_;    // the bracket s, kept for backward
  std::vector<float> ratio_;    // one sample's squares (forward) or dy * y / s (backward)
  std::vector<float> window_;   // one sample's window sums
  std::vector<float> scratch_;  // one plane, for the two passes of the within-channel box
};

}  // namespace

// For tests: whether a LRN layer computes on oneDNN for its current shapes.
bool lrn_runs_onednn(const Layer& layer) {
  const auto* self = dynamic_cast<const LRNLayer*>(&layer);
  return self != nullptr && self->runs_onednn();
}

}  // namespace engine

ENGINE_LAYER_FACTORY(LRN, LRNLayer)
