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
//
// engine: ONEDNN runs oneDNN's forward (and its backward where oneDNN has an optimized one; for
// NCHW data it has not, and the code here recomputes s and runs its own). engine: CAFFE runs the
// code here: across channels on plain blobs plane by plane, and on blobs a oneDNN layer left
// channels-last pixel by pixel in that format. DEFAULT measures both.
#include <algorithm>
#include <cstring>
#include <cmath>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "core/context.hpp"
#include "core/layer.hpp"
#include "core/synced_memory.hpp"
#include "layers/gpu_kernels.hpp"
#include "math/cudnn.hpp"
#include "core/fastest_layer.hpp"
#include "core/layer_registry.hpp"
#include "math/onednn.hpp"
#include "math/parallel.hpp"
#include "math/simd.hpp"

namespace engine {
namespace {

// y = x * s^-beta. AlexNet's beta (0.75) and 0.5 avoid pow, which does not vectorize; the
// square roots vectorize (the build passes -fno-math-errno), for AVX-512 too where the
// processor has it.
ENGINE_VECTORIZED void multiply_by_power(int64_t n, const float* x, const float* s, float beta,
                                         float* y) {
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
// a vector of `width` floats (a row of a plane). A running sum adds the head and
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

// The backward pass's two per-value factors: p = s^-beta and ratio = dy * x * p / s (dy * y / s,
// y = x * p); AlexNet's beta (0.75) as s^(1/4) / s, two square roots and one division.
ENGINE_VECTORIZED void backward_factors(int64_t n, const float* x, const float* dy,
                                        const float* s, float beta, float* p, float* ratio) {
  if (beta == 0.75f) {
    for (int64_t i = 0; i < n; ++i) {
      const float inverse = 1.0f / s[i];
      p[i] = std::sqrt(std::sqrt(s[i])) * inverse;
      ratio[i] = dy[i] * x[i] * p[i] * inverse;
    }
  } else {
    for (int64_t i = 0; i < n; ++i) {
      p[i] = std::pow(s[i], -beta);
      ratio[i] = dy[i] * x[i] * p[i] / s[i];
    }
  }
}

// dx = dy * p - cross * x * sums.
ENGINE_VECTORIZED void backward_combine(int64_t n, const float* dy, const float* p,
                                        const float* x, const float* sums, float cross,
                                        float* dx) {
  for (int64_t i = 0; i < n; ++i) dx[i] = dy[i] * p[i] - cross * x[i] * sums[i];
}

// out[i] = in[i - kSize / 2] + ... + in[i + kSize / 2] for i in [kSize / 2, n - kSize / 2): the
// taps unrolled, one vector pass.
template <int kSize>
inline void centred_window_sum(const float* in, int64_t n, float* out) {
  constexpr int kPad = kSize / 2;
  for (int64_t i = kPad; i < n - kPad; ++i) {
    float sum = 0;
    for (int j = 0; j < kSize; ++j) sum += in[i - kPad + j];
    out[i] = sum;
  }
}

// out[c] = sum of in[c'] for c' in [c - pre_pad, c - pre_pad + size) within [0, channels), for
// each of `pixels` pixels whose `channels` values are contiguous (channels-last). The window
// runs over the whole run of pixels as one array, in long vector loops; it reaches into the
// neighbouring pixels only at each pixel's first and last channels, which are then summed again.
ENGINE_VECTORIZED void channel_window_sum(const float* in, int64_t pixels, int channels,
                                          int pre_pad, int size, float* out) {
  const int64_t n = pixels * channels;
  const int post_pad = size - 1 - pre_pad;
  switch (size) {
    case 3: centred_window_sum<3>(in, n, out); break;
    case 5: centred_window_sum<5>(in, n, out); break;
    case 7: centred_window_sum<7>(in, n, out); break;
    default:  // tap by tap
      for (int64_t i = 0; i < n; ++i) out[i] = in[i];
      for (int j = 1; j <= pre_pad; ++j) {
        for (int64_t i = j; i < n; ++i) out[i] += in[i - j];
      }
      for (int j = 1; j <= post_pad; ++j) {
        for (int64_t i = 0; i + j < n; ++i) out[i] += in[i + j];
      }
  }
  const auto edge = [&](const float* a, float* o, int c) {
    float sum = 0;
    const int last = std::min(channels - 1, c + post_pad);
    for (int t = std::max(0, c - pre_pad); t <= last; ++t) sum += a[t];
    o[c] = sum;
  };
  for (int64_t p = 0; p < pixels; ++p) {
    const float* a = in + p * channels;
    float* o = out + p * channels;
    for (int c = 0; c < std::min(pre_pad, channels); ++c) edge(a, o, c);
    for (int c = std::max(0, channels - post_pad); c < channels; ++c) edge(a, o, c);
  }
}

// s = k + coefficient * (window sum of the squares of x), channels-last; `squares` is scratch.
ENGINE_VECTORIZED void channel_window_scale(const float* x, int64_t pixels, int channels,
                                            int pre_pad, int size, float k, float coefficient,
                                            float* squares, float* s) {
  const int64_t n = pixels * channels;
  for (int64_t i = 0; i < n; ++i) squares[i] = x[i] * x[i];
  channel_window_sum(squares, pixels, channels, pre_pad, size, s);
  for (int64_t i = 0; i < n; ++i) s[i] = k + coefficient * s[i];
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
  // Each thread's buffers for the sample it computes.
  struct Workspace {
    std::vector<float> ring;     // across: the window's last size_ planes of squares or ratios
    std::vector<float> running;  // one plane of window sums
    std::vector<float> ratio;    // within: one plane of squares or of dy * y / s
    std::vector<float> scratch;  // within: one plane, between the box sum's two passes
    std::vector<float> pixels;   // channels-last, kPixelChunk pixels: s, s^-beta, squares or
                                 // ratios, window sums
  };
  // Pixels a thread computes at a time on channels-last blobs.
  static constexpr int64_t kPixelChunk = 32;

 public:
  using Layer::Layer;
  int exact_bottoms() const override { return 1; }
  int exact_tops() const override { return 1; }

  void layer_setup(const Blobs& bottom, const Blobs& top) override {
    LAYER_REQUIRE(top[0] != bottom[0],
                  "cannot run in place (top = bottom): its backward pass needs both its input "
                  "and its output");
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
    // Only when asked for by name: on NCHW blobs oneDNN 2.6's forward is no faster than the
    // sliding window below (AlexNet's norm1 at batch 32: about 5 ms either way), and its
    // backward is a plain reference loop 25 times slower than ours.
    want_onednn_ = use_onednn(p.engine(), describe()) && p.engine() == LRNParameter::ONEDNN;
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
    scale_fresh_ = false;
    const size_t plane = static_cast<size_t>(in.height()) * in.width();
    workspaces_.resize(cpu::threads());
    for (Workspace& work : workspaces_) {
      work.running.resize(plane);
      if (across_) {
        work.ring.resize(size_ * plane);
        work.pixels.resize(4 * kPixelChunk * static_cast<size_t>(in.channels()));
      } else {
        work.ratio.resize(plane);
        work.scratch.resize(plane);
      }
    }
#ifdef ENGINE_USE_ONEDNN
    // The primitives are made for the format the bottom arrives in, at the first forward pass.
    onednn_forward_ready_ = want_onednn_;
    onednn_backward_ready_ = false;
    built_for_ = dnnl::memory::desc();
#endif
  }

  // Whether forward runs on oneDNN for the current shapes (tests ask).
  bool runs_onednn() const { return onednn_forward_ready_; }

 protected:
  void forward_cpu(const Blobs& bottom, const Blobs& top) override {
#ifdef ENGINE_USE_ONEDNN
    channels_last_ = false;
    if (onednn_forward_ready_ && prepare_onednn(*bottom[0])) {
      onednn_forward(*bottom[0], *top[0]);
      scale_fresh_ = false;
      return;
    }
    if (across_ && arrives_channels_last(*bottom[0])) {
      channels_last_ = true;
      channels_last_forward(*bottom[0], *top[0]);
      scale_fresh_ = false;
      return;
    }
#endif
    compute_scale(bottom[0]->cpu_data(), top[0]->mutable_cpu_data());
  }

  void backward_cpu(const Blobs& top, const std::vector<bool>& propagate_down,
                    const Blobs& bottom) override {
    if (!propagate_down[0]) return;
#ifdef ENGINE_USE_ONEDNN
    if (onednn_backward_ready_) {
      onednn_backward(*top[0], *bottom[0]);
      return;
    }
    if (channels_last_) {
      channels_last_backward(*top[0], *bottom[0]);
      return;
    }
#endif
    const float* x = bottom[0]->cpu_data();
    // After a oneDNN forward the reference backward needs the brackets s of its own.
    if (!scale_fresh_) compute_scale(x, nullptr);
    const float* y = top[0]->cpu_data();
    const float* dy = top[0]->cpu_diff();
    float* dx = bottom[0]->mutable_cpu_diff();
    const int64_t per_sample = bottom[0]->count(1);
    cpu::parallel_for(shape_[0], per_sample, [&](int64_t n, int thread) {
      const int64_t offset = n * per_sample;
      Workspace& work = workspaces_[thread];
      const float* s = scale_.data() + offset;
      if (across_) {
        across_backward(x + offset, y + offset, dy + offset, s, dx + offset, work);
      } else {
        within_backward(x + offset, y + offset, dy + offset, s, dx + offset, work);
      }
    });
  }

#ifdef ENGINE_USE_CUDA
  // GPU: cuDNN's cross-channel LRN (its alpha is divided by n, as Caffe's) where its parameter
  // range allows; our kernels for WITHIN_CHANNEL, engine: CAFFE and the rest.
  void forward_gpu(const Blobs& bottom, const Blobs& top) override {
    const float* x = bottom[0]->gpu_data();
    float* y = top[0]->mutable_gpu_data();
    if (bottom[0]->count() == 0) return;
    if (cudnn_fits()) {
      prepare_cudnn();
      ENGINE_CUDNN_CHECK(cudnnLRNCrossChannelForward(Context::cudnn(), cudnn_->lrn,
                                                     CUDNN_LRN_CROSS_CHANNEL_DIM1, &cudnn::kOne,
                                                     cudnn_->tensor, x, &cudnn::kZero,
                                                     cudnn_->tensor, y));
      return;
    }
    const size_t bytes = sizeof(float) * static_cast<size_t>(bottom[0]->count());
    scale_gpu_.resize(bytes);
    const float summands = across_ ? float(size_) : float(size_ * size_);
    gpu::lrn_forward(across_, shape_[0], shape_[1], shape_[2], shape_[3], size_,
                     alpha_ / summands, across_ ? k_ : 1.0f, beta_, x,
                     static_cast<float*>(scale_gpu_.mutable_device_data()), y);
  }

  void backward_gpu(const Blobs& top, const std::vector<bool>& propagate_down,
                    const Blobs& bottom) override {
    if (!propagate_down[0] || bottom[0]->count() == 0) return;
    if (cudnn_fits()) {
      prepare_cudnn();
      ENGINE_CUDNN_CHECK(cudnnLRNCrossChannelBackward(
          Context::cudnn(), cudnn_->lrn, CUDNN_LRN_CROSS_CHANNEL_DIM1, &cudnn::kOne,
          cudnn_->tensor, top[0]->gpu_data(), cudnn_->tensor, top[0]->gpu_diff(), cudnn_->tensor,
          bottom[0]->gpu_data(), &cudnn::kZero, cudnn_->tensor, bottom[0]->mutable_gpu_diff()));
      return;
    }
    ratio_gpu_.resize(sizeof(float) * static_cast<size_t>(bottom[0]->count()));
    const float summands = across_ ? float(size_) : float(size_ * size_);
    gpu::lrn_backward(across_, shape_[0], shape_[1], shape_[2], shape_[3], size_, beta_,
                      2.0f * alpha_ * beta_ / summands, bottom[0]->gpu_data(), top[0]->gpu_data(),
                      top[0]->gpu_diff(), static_cast<const float*>(scale_gpu_.device_data()),
                      static_cast<float*>(ratio_gpu_.mutable_device_data()),
                      bottom[0]->mutable_gpu_diff());
  }

 private:
  struct CudnnLrn {
    cudnn::TensorDescriptor tensor;
    cudnn::LRNDescriptor lrn;
    std::vector<int> shape;
  };

  bool cudnn_fits() const {
    return across_ && use_cudnn(param_.lrn_param().engine(), describe()) &&
           size_ >= CUDNN_LRN_MIN_N && size_ <= CUDNN_LRN_MAX_N && k_ >= CUDNN_LRN_MIN_K &&
           beta_ >= CUDNN_LRN_MIN_BETA;
  }

  // Made on the first GPU pass, so that a CPU-only run never touches cuDNN.
  void prepare_cudnn() {
    if (!cudnn_) {
      cudnn_ = std::make_unique<CudnnLrn>();
      ENGINE_CUDNN_CHECK(cudnnSetLRNDescriptor(cudnn_->lrn, static_cast<unsigned>(size_), alpha_,
                                               beta_, k_));
    }
    if (cudnn_->shape == shape_) return;
    cudnn::set_tensor(cudnn_->tensor, shape_[0], shape_[1], shape_[2], shape_[3]);
    cudnn_->shape = shape_;
  }

  std::unique_ptr<CudnnLrn> cudnn_;
  SyncedMemory scale_gpu_;  // our kernels: the bracket s of the last forward pass
  SyncedMemory ratio_gpu_;  // our kernels: dy * y / s, scratch of backward
#endif

 private:
  int64_t plane() const { return int64_t(shape_[2]) * shape_[3]; }

  // Fills scale_ with the brackets s and, when y is given, writes y = x * s^-beta.
  void compute_scale(const float* x, float* y) {
    const int64_t per_sample = int64_t(shape_[1]) * plane();
    cpu::parallel_for(shape_[0], per_sample, [&](int64_t n, int thread) {
      const int64_t offset = n * per_sample;
      float* yn = y ? y + offset : nullptr;
      if (across_) {
        across_forward(x + offset, scale_.data() + offset, yn, workspaces_[thread]);
      } else {
        within_forward(x + offset, scale_.data() + offset, yn, workspaces_[thread]);
      }
    });
    scale_fresh_ = true;
  }

  // One sample, channel by channel: a running sum over pixels of the squares in the window,
  // updated as channel c + pad enters it and c - pad - 1 leaves it. The last `size_` channels'
  // squares wait in a ring of planes, where the entering channel takes the leaving one's slot.
  void across_forward(const float* x, float* scale, float* y, Workspace& work) const {
    const int channels = shape_[1];
    const int64_t hw = plane();
    const float coefficient = alpha_ / size_;
    std::fill(work.ring.begin(), work.ring.end(), 0.0f);
    std::fill(work.running.begin(), work.running.end(), 0.0f);
    float* sum = work.running.data();
    for (int c = -pre_pad_; c < channels; ++c) {
      const int head = c + pre_pad_;
      float* slot = work.ring.data() + (head % size_) * hw;
      if (head < channels) {
        const float* entering = x + head * hw;
        for (int64_t i = 0; i < hw; ++i) {
          const float square = entering[i] * entering[i];
          sum[i] += square - slot[i];
          slot[i] = square;
        }
      } else {
        for (int64_t i = 0; i < hw; ++i) {
          sum[i] -= slot[i];
          slot[i] = 0;
        }
      }
      if (c < 0) continue;
      float* s = scale + c * hw;
      // The running sum of squares may cancel to a hair below zero: clamp it.
      for (int64_t i = 0; i < hw; ++i) s[i] = k_ + coefficient * std::max(sum[i], 0.0f);
      if (y) multiply_by_power(hw, x + c * hw, s, beta_, y + c * hw);
    }
  }

  // The same sliding window over channels, of dy * y / s.
  void across_backward(const float* x, const float* y, const float* dy, const float* scale,
                       float* dx, Workspace& work) const {
    const int channels = shape_[1];
    const int64_t hw = plane();
    const float cross = 2.0f * alpha_ * beta_ / size_;
    std::fill(work.ring.begin(), work.ring.end(), 0.0f);
    std::fill(work.running.begin(), work.running.end(), 0.0f);
    float* sum = work.running.data();
    for (int c = -pre_pad_; c < channels; ++c) {
      const int head = c + pre_pad_;
      float* slot = work.ring.data() + (head % size_) * hw;
      if (head < channels) {
        const int64_t at = head * hw;
        for (int64_t i = 0; i < hw; ++i) {
          const float ratio = dy[at + i] * y[at + i] / scale[at + i];
          sum[i] += ratio - slot[i];
          slot[i] = ratio;
        }
      } else {
        for (int64_t i = 0; i < hw; ++i) {
          sum[i] -= slot[i];
          slot[i] = 0;
        }
      }
      if (c < 0) continue;
      const int64_t at = c * hw;
      multiply_by_power(hw, dy + at, scale + at, beta_, dx + at);
      for (int64_t i = 0; i < hw; ++i) dx[at + i] -= cross * x[at + i] * sum[i];
    }
  }

  // One sample, plane by plane: the n x n box sums of the squares.
  void within_forward(const float* x, float* scale, float* y, Workspace& work) const {
    const int64_t hw = plane();
    const float coefficient = alpha_ / (size_ * size_);
    float* ratio = work.ratio.data();
    float* sum = work.running.data();
    for (int c = 0; c < shape_[1]; ++c) {
      const float* xc = x + c * hw;
      float* s = scale + c * hw;
      for (int64_t i = 0; i < hw; ++i) ratio[i] = xc[i] * xc[i];
      box_sum(ratio, shape_[2], shape_[3], pre_pad_, work.scratch.data(), sum);
      for (int64_t i = 0; i < hw; ++i) s[i] = 1.0f + coefficient * std::max(sum[i], 0.0f);
      if (y) multiply_by_power(hw, xc, s, beta_, y + c * hw);
    }
  }

  void within_backward(const float* x, const float* y, const float* dy, const float* scale,
                       float* dx, Workspace& work) const {
    const int64_t hw = plane();
    const float cross = 2.0f * alpha_ * beta_ / (size_ * size_);
    float* ratio = work.ratio.data();
    float* sum = work.running.data();
    for (int c = 0; c < shape_[1]; ++c) {
      const int64_t at = c * hw;
      for (int64_t i = 0; i < hw; ++i) ratio[i] = dy[at + i] * y[at + i] / scale[at + i];
      box_sum(ratio, shape_[2], shape_[3], pre_pad_, work.scratch.data(), sum);
      multiply_by_power(hw, dy + at, scale + at, beta_, dx + at);
      for (int64_t i = 0; i < hw; ++i) dx[at + i] -= cross * x[at + i] * sum[i];
    }
  }

#ifdef ENGINE_USE_ONEDNN
  // Across channels on channels-last blobs (N x H x W x C: the format oneDNN's bf16 and some
  // fp32 convolutions write), the window runs along each pixel's contiguous channels, where
  // oneDNN 2.6's LRN is slow (AlexNet's norm1 at batch 32 in bf16 on an AVX-512 Xeon: 13.3 ms
  // forward, ours 5.6). The top and the bottom's gradient stay channels-last. Neither s nor
  // y is kept: the backward pass recomputes them from x, which it reads anyway, in place of
  // reading two more blobs.
  dnnl::memory::desc channels_last() const {
    return dnnl::memory::desc(onednn::dims(shape_), dnnl::memory::data_type::f32,
                              dnnl::memory::format_tag::nhwc);
  }

  bool arrives_channels_last(const Blob& bottom) const {
    return onednn::held_desc(*bottom.data_memory(), onednn::dims(shape_)) == channels_last();
  }

  void prepare_channels_last() {
    const dnnl::memory::desc channels_last = this->channels_last();
    if (x_channels_last_.layout() && x_channels_last_.layout()->desc() == channels_last) return;
    for (onednn::Input* input : {&x_channels_last_, &dy_channels_last_}) input->init(channels_last);
    for (onednn::Output* output : {&y_channels_last_, &dx_channels_last_}) {
      output->init(channels_last);
    }
  }

  // Calls body(first pixel, pixels, workspace) over all pixels in chunks, in parallel.
  template <class Body>
  void for_pixel_chunks(Body body) {
    const int64_t pixels = int64_t(shape_[0]) * shape_[2] * shape_[3];
    const int64_t chunks = (pixels + kPixelChunk - 1) / kPixelChunk;
    cpu::parallel_for(chunks, kPixelChunk * shape_[1], [&](int64_t chunk, int thread) {
      const int64_t first = chunk * kPixelChunk;
      body(first, std::min(kPixelChunk, pixels - first), workspaces_[thread]);
    });
  }

  // s = k + alpha / n * (sum of the squares over the window) for `pixels` pixels from x.
  void channels_last_scale(const float* x, int64_t pixels, float* squares, float* s) const {
    channel_window_scale(x, pixels, shape_[1], pre_pad_, size_, k_, alpha_ / size_, squares, s);
  }

  void channels_last_forward(Blob& bottom, Blob& top) {
    prepare_channels_last();
    const auto* x = static_cast<const float*>(
        x_channels_last_.in(*bottom.data_memory()).get_data_handle());
    auto* y = static_cast<float*>(y_channels_last_.out(*top.data_memory()).get_data_handle());
    const int channels = shape_[1];
    for_pixel_chunks([&](int64_t first, int64_t pixels, Workspace& work) {
      const int64_t at = first * channels;
      float* s = work.pixels.data();
      channels_last_scale(x + at, pixels, s + kPixelChunk * channels, s);
      multiply_by_power(pixels * channels, x + at, s, beta_, y + at);
    });
    y_channels_last_.finish();
  }

  // dx = dy * s^-beta - (2 alpha beta / n) * x * (window sum of dy * y / s), as across_backward,
  // with y / s = x * s^-beta / s: s^-beta once serves both terms.
  void channels_last_backward(Blob& top, Blob& bottom) {
    prepare_channels_last();
    const auto* x = static_cast<const float*>(
        x_channels_last_.in(*bottom.data_memory()).get_data_handle());
    const auto* dy = static_cast<const float*>(
        dy_channels_last_.in(*top.diff_memory()).get_data_handle());
    auto* dx = static_cast<float*>(dx_channels_last_.out(*bottom.diff_memory()).get_data_handle());
    const int channels = shape_[1];
    const float cross = 2.0f * alpha_ * beta_ / size_;
    for_pixel_chunks([&](int64_t first, int64_t pixels, Workspace& work) {
      const int64_t at = first * channels, count = pixels * channels;
      float* s = work.pixels.data();
      float* power = s + kPixelChunk * channels;
      float* ratio = power + kPixelChunk * channels;
      float* sums = ratio + kPixelChunk * channels;
      channels_last_scale(x + at, pixels, ratio, s);  // the squares, spent before the ratios
      backward_factors(count, x + at, dy + at, s, beta_, power, ratio);
      channel_window_sum(ratio, pixels, channels, pre_pad_, size_, sums);
      backward_combine(count, dy + at, power, x + at, sums, cross, dx + at);
    });
    dx_channels_last_.finish();
  }

  onednn::Input x_channels_last_, dy_channels_last_;
  onednn::Output y_channels_last_, dx_channels_last_;
  bool channels_last_ = false;  // the last forward pass ran channels-last

  // oneDNN computes the forward pass whenever it can, in the format the bottom holds (blocked,
  // when the layer before computed in it: the top keeps it). Its backward pass is used only
  // where it has an optimized kernel: for plain NCHW data oneDNN 2.6 falls back to a reference
  // loop several times slower than ours, so our backward runs instead. A net that plans no
  // backward pass here gets the forward pass alone, which keeps no workspace.
  bool prepare_onednn(Blob& bottom) {
    using dnnl::memory;
    const memory::desc md = onednn::held_desc(*bottom.data_memory(), onednn::dims(shape_));
    const bool training = backward_runs_;
    if (md == built_for_ && training == built_for_training_) return true;
    try {
      dnnl::engine& engine = onednn::cpu_engine();
      // oneDNN divides alpha by its number of summands (n, or n^2 within a channel), as Caffe
      // does; within a channel Caffe's shift is 1.
      const auto algorithm = across_ ? dnnl::algorithm::lrn_across_channels
                                     : dnnl::algorithm::lrn_within_channel;
      const float k = across_ ? k_ : 1.0f;
      const auto forward_pd = [&](dnnl::prop_kind prop) {
        return dnnl::lrn_forward::primitive_desc(
            dnnl::lrn_forward::desc(prop, algorithm, md, size_, alpha_, beta_, k), engine);
      };
      const dnnl::lrn_forward::primitive_desc planned_pd =
          forward_pd(training ? dnnl::prop_kind::forward_training
                              : dnnl::prop_kind::forward_inference);
      dnnl::lrn_backward::primitive_desc backward_pd;
      if (training) {
        backward_pd = dnnl::lrn_backward::primitive_desc(
            dnnl::lrn_backward::desc(algorithm, md, md, size_, alpha_, beta_, k), engine,
            planned_pd, /*allow_empty=*/true);
      }
      onednn_backward_ready_ =
          backward_pd && std::string(backward_pd.impl_info_str()).find("ref") == std::string::npos;
      has_workspace_ = false;
      if (onednn_backward_ready_) {
        onednn_forward_ = dnnl::lrn_forward(planned_pd);
        onednn_backward_ = dnnl::lrn_backward(backward_pd);
        has_workspace_ = planned_pd.workspace_desc().get_size() > 0;
        if (has_workspace_) workspace_mem_ = memory(planned_pd.workspace_desc(), engine);
        diff_dst_.init(backward_pd.diff_dst_desc());
        diff_src_.init(backward_pd.diff_src_desc());
        src_for_backward_.init(backward_pd.src_desc());
      } else {
        // Our backward recomputes what it needs: no workspace to keep.
        onednn_forward_ = dnnl::lrn_forward(
            training ? forward_pd(dnnl::prop_kind::forward_inference) : planned_pd);
      }
      src_.init(md);
      dst_.init(md);
      built_for_ = md;
      built_for_training_ = training;
      return true;
    } catch (const dnnl::error& error) {
      LOG(INFO) << describe() << ": oneDNN cannot normalize this shape (" << error.what()
                << "); using the reference code";
      onednn_forward_ready_ = onednn_backward_ready_ = false;
      return false;
    }
  }

  void onednn_forward(Blob& bottom, Blob& top) {
    std::unordered_map<int, dnnl::memory> args = {
        {DNNL_ARG_SRC, src_.in(*bottom.data_memory())},
        {DNNL_ARG_DST, dst_.out(*top.data_memory())}};
    if (has_workspace_) args[DNNL_ARG_WORKSPACE] = workspace_mem_;
    onednn::run(onednn_forward_, args);
    dst_.finish();
  }

  void onednn_backward(Blob& top, Blob& bottom) {
    std::unordered_map<int, dnnl::memory> args = {
        {DNNL_ARG_SRC, src_for_backward_.in(*bottom.data_memory())},
        {DNNL_ARG_DIFF_DST, diff_dst_.in(*top.diff_memory())},
        {DNNL_ARG_DIFF_SRC, diff_src_.out(*bottom.diff_memory())}};
    if (has_workspace_) args[DNNL_ARG_WORKSPACE] = workspace_mem_;
    onednn::run(onednn_backward_, args);
    diff_src_.finish();
  }

  dnnl::lrn_forward onednn_forward_;
  dnnl::lrn_backward onednn_backward_;
  dnnl::memory::desc built_for_;  // the bottom format the primitives were made for
  bool built_for_training_ = false;
  onednn::Input src_, src_for_backward_, diff_dst_;
  onednn::Output dst_, diff_src_;
  dnnl::memory workspace_mem_;
  bool has_workspace_ = false;
#endif

  int size_ = 5, pre_pad_ = 2;
  float alpha_ = 1, beta_ = 0.75f, k_ = 1;
  bool across_ = true;
  bool want_onednn_ = false;
  bool onednn_forward_ready_ = false;
  bool onednn_backward_ready_ = false;
  std::vector<int> shape_;
  std::vector<float> scale_;    // the bracket s, kept for backward
  bool scale_fresh_ = false;    // whether scale_ belongs to the last forward pass
  std::vector<Workspace> workspaces_;
};

}  // namespace

// For tests: whether a LRN layer computes on oneDNN for its current shapes.
bool lrn_runs_onednn(const Layer& layer) {
  const auto* self = dynamic_cast<const LRNLayer*>(&working_layer(layer));
  return self != nullptr && self->runs_onednn();
}

}  // namespace engine

ENGINE_LAYER_FACTORY(LRN, LRNLayer)
