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
// NCHW data it has not, and the code here recomputes s and runs its own). DEFAULT runs the code
// here, which measured as fast as oneDNN's forward and far faster than its backward.
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
  };

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
    if (onednn_forward_ready_ && prepare_onednn(*bottom[0])) {
      onednn_forward(*bottom[0], *top[0]);
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
