// Pooling (MAX, AVE, STOCHASTIC) with BVLC Caffe's geometry: output size
// ceil((in + 2p - k) / s) + 1 (or floor with round_mode FLOOR), one less when the last window
// would start inside the padding; AVE divides by the window clipped to [-pad, in + pad), so
// padding counts but overflow past in + pad does not.
//
// The oneDNN path serves MAX without the mask top and AVE where oneDNN's divisor equals
// Caffe's for every window of the geometry; anything else runs the reference code.
#include <algorithm>
#include <cfloat>
#include <memory>
#include <cmath>
#include <unordered_map>
#include <vector>

#include "core/context.hpp"
#include "core/layer.hpp"
#include "core/synced_memory.hpp"
#include "layers/gpu_kernels.hpp"
#include "math/cudnn.hpp"
#include "core/fastest_layer.hpp"
#include "core/layer_registry.hpp"
#include "math/blas.hpp"
#include "math/onednn.hpp"
#include "math/parallel.hpp"
#include "math/random.hpp"
#include "math/simd.hpp"

namespace engine {
namespace {

// maxima[w] = max(maxima[w], row[w]); std::max keeps maxima[w] against a NaN, as Caffe's
// strictly-greater comparison does.
ENGINE_VECTORIZED void row_max(int64_t width, const float* row, float* maxima) {
  for (int64_t w = 0; w < width; ++w) maxima[w] = std::max(maxima[w], row[w]);
}

struct PoolGeometry {
  int num = 0, channels = 0, height = 0, width = 0;
  int kernel_h = 0, kernel_w = 0, stride_h = 1, stride_w = 1, pad_h = 0, pad_w = 0;
  int pooled_h = 0, pooled_w = 0;

  // The padding oneDNN needs after the input so that its floor-rounded output size is ours
  // (negative when FLOOR rounding leaves input rows unused).
  int pad_bottom() const { return (pooled_h - 1) * stride_h + kernel_h - height - pad_h; }
  int pad_right() const { return (pooled_w - 1) * stride_w + kernel_w - width - pad_w; }
};

// One axis's windows: [start, end) clipped to the input, and the AVE divisor, which clips to
// [-pad, in + pad) only.
struct Windows {
  std::vector<int> start, end, divisor_extent;
};

Windows windows_along(int in, int out, int kernel, int stride, int pad) {
  Windows w;
  for (int o = 0; o < out; ++o) {
    const int start = o * stride - pad;
    const int padded_end = std::min(start + kernel, in + pad);
    w.divisor_extent.push_back(padded_end - start);
    w.start.push_back(std::max(start, 0));
    w.end.push_back(std::min(start + kernel, in));
  }
  return w;
}

int caffe_pooled_extent(int in, int kernel, int pad, int stride, bool ceil_mode) {
  const double span = static_cast<double>(in + 2 * pad - kernel) / stride;
  return static_cast<int>(ceil_mode ? std::ceil(span) : std::floor(span)) + 1;
}

class PoolingLayer : public Layer {
 public:
  using Layer::Layer;
  int exact_bottoms() const override { return 1; }
  int min_tops() const override { return 1; }
  // MAX may also produce the argmax mask.
  int max_tops() const override {
    return param_.pooling_param().pool() == PoolingParameter::MAX ? 2 : 1;
  }

  void layer_setup(const Blobs& bottom, const Blobs& top) override {
    const PoolingParameter& p = param_.pooling_param();
    method_ = p.pool();
    global_ = p.global_pooling();
    const bool has_kernel_hw = p.has_kernel_h() && p.has_kernel_w();
    if (global_) {
      LAYER_REQUIRE(!p.has_kernel_size() && !p.has_kernel_h() && !p.has_kernel_w(),
                    "global_pooling takes the kernel from the bottom's height and width; "
                    "do not give kernel_size, kernel_h or kernel_w");
    } else {
      LAYER_REQUIRE(p.has_kernel_size() || p.has_kernel_h() || p.has_kernel_w(),
                    "pooling_param needs kernel_size (or kernel_h and kernel_w), or "
                    "global_pooling: true");
      LAYER_REQUIRE(!(p.has_kernel_size() && (p.has_kernel_h() || p.has_kernel_w())),
                    "give kernel_size or kernel_h and kernel_w, not both");
      LAYER_REQUIRE(p.has_kernel_size() || has_kernel_hw,
                    "a non-square kernel needs both kernel_h and kernel_w");
      geometry_.kernel_h = static_cast<int>(p.has_kernel_size() ? p.kernel_size() : p.kernel_h());
      geometry_.kernel_w = static_cast<int>(p.has_kernel_size() ? p.kernel_size() : p.kernel_w());
      LAYER_REQUIRE(geometry_.kernel_h > 0 && geometry_.kernel_w > 0,
                    "kernel must be positive, got " << geometry_.kernel_h << " x "
                                                    << geometry_.kernel_w);
    }
    LAYER_REQUIRE(!(p.has_pad() && (p.has_pad_h() || p.has_pad_w())),
                  "give pad or pad_h and pad_w, not both");
    LAYER_REQUIRE(p.has_pad_h() == p.has_pad_w(), "give both pad_h and pad_w, or pad");
    LAYER_REQUIRE(!(p.has_stride() && (p.has_stride_h() || p.has_stride_w())),
                  "give stride or stride_h and stride_w, not both");
    LAYER_REQUIRE(p.has_stride_h() == p.has_stride_w(),
                  "give both stride_h and stride_w, or stride");
    geometry_.pad_h = static_cast<int>(p.has_pad_h() ? p.pad_h() : p.pad());
    geometry_.pad_w = static_cast<int>(p.has_pad_w() ? p.pad_w() : p.pad());
    geometry_.stride_h = static_cast<int>(p.has_stride_h() ? p.stride_h() : p.stride());
    geometry_.stride_w = static_cast<int>(p.has_stride_w() ? p.stride_w() : p.stride());
    LAYER_REQUIRE(geometry_.stride_h > 0 && geometry_.stride_w > 0,
                  "stride must be positive, got " << geometry_.stride_h << " x "
                                                  << geometry_.stride_w);
    if (global_) {
      LAYER_REQUIRE(geometry_.pad_h == 0 && geometry_.pad_w == 0 && geometry_.stride_h == 1 &&
                        geometry_.stride_w == 1,
                    "global_pooling allows only pad 0 and stride 1");
    }
    if (geometry_.pad_h != 0 || geometry_.pad_w != 0) {
      LAYER_REQUIRE(method_ == PoolingParameter::AVE || method_ == PoolingParameter::MAX,
                    "padding is implemented only for AVE and MAX pooling");
      LAYER_REQUIRE(geometry_.pad_h < geometry_.kernel_h && geometry_.pad_w < geometry_.kernel_w,
                    "pad (" << geometry_.pad_h << ", " << geometry_.pad_w
                            << ") must be smaller than the kernel (" << geometry_.kernel_h
                            << ", " << geometry_.kernel_w << ")");
    }
    ceil_mode_ = p.round_mode() == PoolingParameter::CEIL;
    want_onednn_ = use_onednn(p.engine(), describe());
  }

  void reshape(const Blobs& bottom, const Blobs& top) override {
    const Blob& in = *bottom[0];
    LAYER_REQUIRE(in.num_axes() == 4, "needs a 4-axis bottom (num, channels, height, width), got "
                                          << in.shape_string());
    PoolGeometry g = geometry_;
    g.num = in.num();
    g.channels = in.channels();
    g.height = in.height();
    g.width = in.width();
    if (global_) {
      g.kernel_h = g.height;
      g.kernel_w = g.width;
    }
    g.pooled_h = caffe_pooled_extent(g.height, g.kernel_h, g.pad_h, g.stride_h, ceil_mode_);
    g.pooled_w = caffe_pooled_extent(g.width, g.kernel_w, g.pad_w, g.stride_w, ceil_mode_);
    // Caffe drops a last window that would start inside the padding.
    if (g.pad_h != 0 || g.pad_w != 0) {
      if ((g.pooled_h - 1) * g.stride_h >= g.height + g.pad_h) --g.pooled_h;
      if ((g.pooled_w - 1) * g.stride_w >= g.width + g.pad_w) --g.pooled_w;
    }
    LAYER_REQUIRE(g.pooled_h > 0 && g.pooled_w > 0,
                  "the kernel (" << g.kernel_h << " x " << g.kernel_w
                                 << ") does not fit the padded bottom " << in.shape_string());
    // Without padding Caffe keeps such a window and pools over nothing (-FLT_MAX, a divisor of
    // zero or less); refuse it instead.
    LAYER_REQUIRE((g.pooled_h - 1) * g.stride_h < g.height + g.pad_h &&
                      (g.pooled_w - 1) * g.stride_w < g.width + g.pad_w,
                  "the last pooling window would lie wholly outside the bottom "
                      << in.shape_string() << " (stride larger than the kernel?); use "
                      << "round_mode: FLOOR or another stride");
    const bool geometry_changed = g.num != geometry_.num || g.channels != geometry_.channels ||
                                  g.height != geometry_.height || g.width != geometry_.width ||
                                  g.pooled_h != geometry_.pooled_h ||
                                  g.pooled_w != geometry_.pooled_w || rows_.start.empty();
    geometry_ = g;
    const std::vector<int> out_shape = {g.num, g.channels, g.pooled_h, g.pooled_w};
    for (Blob* t : top) t->reshape(out_shape);
    if (!geometry_changed) return;

    rows_ = windows_along(g.height, g.pooled_h, g.kernel_h, g.stride_h, g.pad_h);
    cols_ = windows_along(g.width, g.pooled_w, g.kernel_w, g.stride_w, g.pad_w);
    const size_t out_count = static_cast<size_t>(top[0]->count());
    if (method_ == PoolingParameter::MAX) argmax_.resize(out_count);
    if (method_ == PoolingParameter::STOCHASTIC) {
      draws_.resize(out_count);
      chosen_.resize(out_count);
    }
#ifdef ENGINE_USE_ONEDNN
    // oneDNN refuses an empty batch; the reference loops run zero times. The primitives are
    // made for the format the bottom arrives in, at the first forward pass.
    onednn_ready_ = want_onednn_ && bottom[0]->count() > 0 && onednn_algorithm(top.size() > 1);
    built_for_ = dnnl::memory::desc();
#endif
  }

  // Whether forward and backward run on oneDNN for the current shapes (tests ask).
  bool runs_onednn() const { return onednn_ready_; }

 protected:
  void forward_cpu(const Blobs& bottom, const Blobs& top) override {
#ifdef ENGINE_USE_ONEDNN
    if (onednn_ready_ && prepare_onednn(*bottom[0], backward_runs_)) {
      onednn_forward(*bottom[0], *top[0]->data_memory());
      argmax_fresh_ = false;
      return;
    }
#endif
    switch (method_) {
      case PoolingParameter::MAX:
        // With no backward pass planned (and no mask top), the maxima alone.
        argmax_fresh_ = backward_runs_ || top.size() > 1;
        if (argmax_fresh_) {
          max_forward(bottom[0]->cpu_data(), top[0]->mutable_cpu_data(),
                      top.size() > 1 ? top[1]->mutable_cpu_data() : nullptr);
        } else {
          max_values(bottom[0]->cpu_data(), top[0]->mutable_cpu_data());
        }
        break;
      case PoolingParameter::AVE:
        average_forward(bottom[0]->cpu_data(), top[0]->mutable_cpu_data());
        break;
      case PoolingParameter::STOCHASTIC:
        if (param_.phase() == TRAIN) {
          stochastic_forward_train(bottom[0]->cpu_data(), top[0]->mutable_cpu_data());
        } else {
          stochastic_forward_test(bottom[0]->cpu_data(), top[0]->mutable_cpu_data());
        }
        break;
      default:
        LAYER_REQUIRE(false, "unknown pooling method " << method_);
    }
  }

  void backward_cpu(const Blobs& top, const std::vector<bool>& propagate_down,
                    const Blobs& bottom) override {
    if (!propagate_down[0]) return;
#ifdef ENGINE_USE_ONEDNN
    // The primitives (and max pooling's workspace) of the forward pass. After a forward pass
    // made without them (the net planned no backward pass here), max pooling's training pass
    // runs again for its workspace, into a buffer of its own: the top may have changed since
    // (in place). Where oneDNN cannot, the reference code below finds the argmax itself.
    if (onednn_ready_ && built_for_ != dnnl::memory::desc() && !built_for_training_ &&
        prepare_onednn(*bottom[0], true) && has_workspace_) {
      recomputed_top_.resize(sizeof(float) * static_cast<size_t>(top[0]->count()));
      onednn_forward(*bottom[0], recomputed_top_);
    }
    if (onednn_ready_ && built_for_ != dnnl::memory::desc()) {
      onednn_backward(*top[0], *bottom[0]);
      return;
    }
#endif
    const float* top_diff = top[0]->cpu_diff();
    float* bottom_diff = bottom[0]->mutable_cpu_diff();
    // Each path below writes the whole bottom gradient (the scatters clear it plane by plane).
    switch (method_) {
      case PoolingParameter::MAX:
        if (!argmax_fresh_) {
          // The forward pass kept no argmax: find it again (the top may have changed since).
          recomputed_maxima_.resize(argmax_.size());
          max_forward(bottom[0]->cpu_data(), recomputed_maxima_.data(), nullptr);
          argmax_fresh_ = true;
        }
        scatter_to_chosen(top_diff, argmax_.data(), bottom_diff);
        break;
      case PoolingParameter::AVE:
        average_backward(top_diff, bottom_diff);
        break;
      case PoolingParameter::STOCHASTIC:
        if (param_.phase() == TRAIN) {
          scatter_to_chosen(top_diff, chosen_.data(), bottom_diff);
        } else {
          cpu::set(bottom[0]->count(), 0.0f, bottom_diff);
          stochastic_backward_test(top_diff, bottom[0]->cpu_data(), top[0]->cpu_data(),
                                   bottom_diff);
        }
        break;
      default:
        break;
    }
  }

#ifdef ENGINE_USE_CUDA
  // GPU: cuDNN for MAX (without the mask top) and AVE where its floor-rounded, symmetrically
  // padded geometry is Caffe's (then no window reaches past in + pad, so Caffe's AVE divisor is
  // the whole kernel: cuDNN's "include padding"); our kernels otherwise. STOCHASTIC in TRAIN
  // draws its uniforms on the device from a seed the Context generator gives each pass, so its
  // picks differ from the CPU's.
  void forward_gpu(const Blobs& bottom, const Blobs& top) override {
    if (cudnn_fits(top.size() > 1)) {
      prepare_cudnn();
      ENGINE_CUDNN_CHECK(cudnnPoolingForward(Context::cudnn(), cudnn_->pooling, &cudnn::kOne,
                                             cudnn_->bottom, bottom[0]->gpu_data(), &cudnn::kZero,
                                             cudnn_->top, top[0]->mutable_gpu_data()));
      return;
    }
    const gpu::PoolShape s = pool_shape();
    const float* x = bottom[0]->gpu_data();
    float* y = top[0]->mutable_gpu_data();
    switch (method_) {
      case PoolingParameter::MAX:
        gpu::max_pool_forward(s, x, y, mutable_chosen_gpu(*top[0]),
                              top.size() > 1 ? top[1]->mutable_gpu_data() : nullptr);
        break;
      case PoolingParameter::AVE:
        gpu::ave_pool_forward(s, x, y);
        break;
      case PoolingParameter::STOCHASTIC:
        if (param_.phase() == TRAIN) {
          gpu::stochastic_pool_train_forward(s, x, y, mutable_chosen_gpu(*top[0]), rng_seed());
        } else {
          gpu::stochastic_pool_test_forward(s, x, y);
        }
        break;
      default:
        LAYER_REQUIRE(false, "unknown pooling method " << method_);
    }
  }

  void backward_gpu(const Blobs& top, const std::vector<bool>& propagate_down,
                    const Blobs& bottom) override {
    if (!propagate_down[0]) return;
    if (cudnn_fits(top.size() > 1)) {
      prepare_cudnn();
      ENGINE_CUDNN_CHECK(cudnnPoolingBackward(
          Context::cudnn(), cudnn_->pooling, &cudnn::kOne, cudnn_->top, top[0]->gpu_data(),
          cudnn_->top, top[0]->gpu_diff(), cudnn_->bottom, bottom[0]->gpu_data(), &cudnn::kZero,
          cudnn_->bottom, bottom[0]->mutable_gpu_diff()));
      return;
    }
    const gpu::PoolShape s = pool_shape();
    const float* dy = top[0]->gpu_diff();
    float* dx = bottom[0]->mutable_gpu_diff();
    switch (method_) {
      case PoolingParameter::MAX:
        gpu::max_pool_backward(s, dy, static_cast<const int*>(chosen_gpu_.device_data()), dx);
        break;
      case PoolingParameter::AVE:
        gpu::ave_pool_backward(s, dy, dx);
        break;
      case PoolingParameter::STOCHASTIC:
        if (param_.phase() == TRAIN) {
          gpu::max_pool_backward(s, dy, static_cast<const int*>(chosen_gpu_.device_data()), dx);
        } else {
          gpu::stochastic_pool_test_backward(s, dy, bottom[0]->gpu_data(), top[0]->gpu_data(),
                                             dx);
        }
        break;
      default:
        break;
    }
  }

 private:
  struct CudnnPooling {
    cudnn::TensorDescriptor bottom, top;
    cudnn::PoolingDescriptor pooling;
    std::vector<int> key;
  };

  bool cudnn_fits(bool wants_mask_top) const {
    const PoolGeometry& g = geometry_;
    if (!use_cudnn(param_.pooling_param().engine(), describe())) return false;
    if (method_ == PoolingParameter::MAX) {
      if (wants_mask_top) return false;
    } else if (method_ != PoolingParameter::AVE) {
      return false;
    }
    return g.num > 0 && g.channels > 0 &&
           g.pooled_h == (g.height + 2 * g.pad_h - g.kernel_h) / g.stride_h + 1 &&
           g.pooled_w == (g.width + 2 * g.pad_w - g.kernel_w) / g.stride_w + 1;
  }

  // Descriptors for the current geometry, made on the first GPU pass (not at construction, so
  // that a CPU-only run never touches cuDNN) and remade when the geometry changes.
  void prepare_cudnn() {
    const PoolGeometry& g = geometry_;
    const std::vector<int> key = {g.num, g.channels, g.height, g.width, g.kernel_h, g.kernel_w,
                                  g.pooled_h, g.pooled_w};
    if (!cudnn_) cudnn_ = std::make_unique<CudnnPooling>();
    if (cudnn_->key == key) return;
    cudnn::set_tensor(cudnn_->bottom, g.num, g.channels, g.height, g.width);
    cudnn::set_tensor(cudnn_->top, g.num, g.channels, g.pooled_h, g.pooled_w);
    const cudnnPoolingMode_t mode = method_ == PoolingParameter::MAX
                                        ? CUDNN_POOLING_MAX_DETERMINISTIC
                                        : CUDNN_POOLING_AVERAGE_COUNT_INCLUDE_PADDING;
    ENGINE_CUDNN_CHECK(cudnnSetPooling2dDescriptor(cudnn_->pooling, mode, CUDNN_NOT_PROPAGATE_NAN,
                                                   g.kernel_h, g.kernel_w, g.pad_h, g.pad_w,
                                                   g.stride_h, g.stride_w));
    int n = 0, c = 0, h = 0, w = 0;
    ENGINE_CUDNN_CHECK(cudnnGetPooling2dForwardOutputDim(cudnn_->pooling, cudnn_->bottom, &n, &c,
                                                         &h, &w));
    CHECK(n == g.num && c == g.channels && h == g.pooled_h && w == g.pooled_w)
        << describe() << ": cuDNN's pooled shape differs from Caffe's";
    cudnn_->key = key;
  }

  // Room for one index per output of `top`, on the device.
  int* mutable_chosen_gpu(const Blob& top) {
    chosen_gpu_.resize(sizeof(int) * static_cast<size_t>(top.count()));
    return static_cast<int*>(chosen_gpu_.mutable_device_data());
  }

  gpu::PoolShape pool_shape() const {
    const PoolGeometry& g = geometry_;
    return {g.num,      g.channels, g.height, g.width, g.kernel_h, g.kernel_w,
            g.stride_h, g.stride_w, g.pad_h,  g.pad_w, g.pooled_h, g.pooled_w};
  }

  std::unique_ptr<CudnnPooling> cudnn_;
  // Our kernels, MAX and STOCHASTIC at TRAIN: the input each output took, on the device.
  SyncedMemory chosen_gpu_;
#endif

 private:
  int64_t in_plane() const { return int64_t(geometry_.height) * geometry_.width; }
  int64_t out_plane() const { return int64_t(geometry_.pooled_h) * geometry_.pooled_w; }
  int64_t planes() const { return int64_t(geometry_.num) * geometry_.channels; }

  // Caffe keeps the first maximum in row-major order (strictly greater replaces).
  // Plane by plane, the planes spread over the threads.
  void max_forward(const float* in, float* top_data, float* mask_top) {
    const PoolGeometry& g = geometry_;
    cpu::parallel_for(planes(), in_plane(), [&](int64_t plane, int) {
      const float* src = in + plane * in_plane();
      float* out = top_data + plane * out_plane();
      int* argmax = argmax_.data() + plane * out_plane();
      for (int ph = 0; ph < g.pooled_h; ++ph) {
        for (int pw = 0; pw < g.pooled_w; ++pw) {
          float best = -FLT_MAX;
          int best_index = -1;
          for (int h = rows_.start[ph]; h < rows_.end[ph]; ++h) {
            const float* row = src + h * g.width;
            for (int w = cols_.start[pw]; w < cols_.end[pw]; ++w) {
              if (row[w] > best) {
                best = row[w];
                best_index = h * g.width + w;
              }
            }
          }
          *out++ = best;
          *argmax++ = best_index;
        }
      }
    });
    if (mask_top) {
      const int64_t n = static_cast<int64_t>(argmax_.size());
      for (int64_t i = 0; i < n; ++i) mask_top[i] = static_cast<float>(argmax_[i]);
    }
  }

  // max_forward's values without the argmax, for a pass no backward pass follows: the maxima
  // of the window's rows a whole row at a time (vectorized), then along the columns.
  void max_values(const float* in, float* top_data) {
    const PoolGeometry& g = geometry_;
    column_maxima_.resize(cpu::threads());
    cpu::parallel_for(planes(), in_plane(), [&](int64_t plane, int thread) {
      std::vector<float>& maxima = column_maxima_[thread];
      maxima.resize(g.width);
      const float* src = in + plane * in_plane();
      float* out = top_data + plane * out_plane();
      for (int ph = 0; ph < g.pooled_h; ++ph) {
        std::fill(maxima.begin(), maxima.end(), -FLT_MAX);
        for (int h = rows_.start[ph]; h < rows_.end[ph]; ++h) {
          row_max(g.width, src + int64_t(h) * g.width, maxima.data());
        }
        for (int pw = 0; pw < g.pooled_w; ++pw) {
          float best = -FLT_MAX;
          for (int w = cols_.start[pw]; w < cols_.end[pw]; ++w) best = std::max(best, maxima[w]);
          *out++ = best;
        }
      }
    });
  }

  // Routes each output's gradient to the input element it took (MAX, STOCHASTIC in TRAIN).
  void scatter_to_chosen(const float* top_diff, const int* chosen, float* bottom_diff) const {
    cpu::parallel_for(planes(), in_plane(), [&](int64_t plane, int) {
      float* dst = bottom_diff + plane * in_plane();
      std::fill(dst, dst + in_plane(), 0.0f);
      const int64_t first = plane * out_plane();
      for (int64_t i = first; i < first + out_plane(); ++i) {
        if (chosen[i] >= 0) dst[chosen[i]] += top_diff[i];
      }
    });
  }

  void average_forward(const float* in, float* top_data) const {
    const PoolGeometry& g = geometry_;
    cpu::parallel_for(planes(), in_plane(), [&](int64_t plane, int) {
      const float* src = in + plane * in_plane();
      float* out = top_data + plane * out_plane();
      for (int ph = 0; ph < g.pooled_h; ++ph) {
        for (int pw = 0; pw < g.pooled_w; ++pw) {
          float sum = 0;
          for (int h = rows_.start[ph]; h < rows_.end[ph]; ++h) {
            const float* row = src + h * g.width;
            for (int w = cols_.start[pw]; w < cols_.end[pw]; ++w) sum += row[w];
          }
          *out++ = sum / static_cast<float>(rows_.divisor_extent[ph] * cols_.divisor_extent[pw]);
        }
      }
    });
  }

  void average_backward(const float* top_diff_data, float* bottom_diff) const {
    const PoolGeometry& g = geometry_;
    cpu::parallel_for(planes(), in_plane(), [&](int64_t plane, int) {
      float* dst = bottom_diff + plane * in_plane();
      std::fill(dst, dst + in_plane(), 0.0f);
      const float* top_diff = top_diff_data + plane * out_plane();
      for (int ph = 0; ph < g.pooled_h; ++ph) {
        for (int pw = 0; pw < g.pooled_w; ++pw) {
          const float share =
              *top_diff++ / static_cast<float>(rows_.divisor_extent[ph] * cols_.divisor_extent[pw]);
          for (int h = rows_.start[ph]; h < rows_.end[ph]; ++h) {
            float* row = dst + h * g.width;
            for (int w = cols_.start[pw]; w < cols_.end[pw]; ++w) row[w] += share;
          }
        }
      }
    });
  }

  // TRAIN: one element per window, drawn with probability proportional to its value (the
  // inputs are meant to be non-negative, as after a ReLU), as Caffe's GPU code does: a uniform
  // draw scales the window's sum into a threshold that the running sum must reach.
  void stochastic_forward_train(const float* in, float* out) {
    const PoolGeometry& g = geometry_;
    rng_uniform(static_cast<int64_t>(draws_.size()), 0.0f, 1.0f, draws_.data());
    const float* draw = draws_.data();
    int* chosen = chosen_.data();
    for (int64_t plane = 0; plane < planes(); ++plane) {
      const float* src = in + plane * in_plane();
      for (int ph = 0; ph < g.pooled_h; ++ph) {
        for (int pw = 0; pw < g.pooled_w; ++pw) {
          float total = 0;
          for (int h = rows_.start[ph]; h < rows_.end[ph]; ++h) {
            for (int w = cols_.start[pw]; w < cols_.end[pw]; ++w) total += src[h * g.width + w];
          }
          const float threshold = *draw++ * total;
          // Rounding may leave the running sum a hair short of a threshold drawn at 1: the
          // window's last element is then the pick.
          int pick = (rows_.end[ph] - 1) * g.width + cols_.end[pw] - 1;
          float running = 0;
          bool found = false;
          for (int h = rows_.start[ph]; h < rows_.end[ph] && !found; ++h) {
            for (int w = cols_.start[pw]; w < cols_.end[pw]; ++w) {
              running += src[h * g.width + w];
              if (running >= threshold) {
                pick = h * g.width + w;
                found = true;
                break;
              }
            }
          }
          *chosen++ = pick;
          *out++ = src[pick];
        }
      }
    }
  }

  // TEST: the probability-weighted average sum(x^2) / sum(x); FLT_MIN keeps an all-zero
  // window at 0, as in Caffe.
  void stochastic_forward_test(const float* in, float* out) const {
    const PoolGeometry& g = geometry_;
    for (int64_t plane = 0; plane < planes(); ++plane) {
      const float* src = in + plane * in_plane();
      for (int ph = 0; ph < g.pooled_h; ++ph) {
        for (int pw = 0; pw < g.pooled_w; ++pw) {
          float total = FLT_MIN, weighted = 0;
          for (int h = rows_.start[ph]; h < rows_.end[ph]; ++h) {
            for (int w = cols_.start[pw]; w < cols_.end[pw]; ++w) {
              const float x = src[h * g.width + w];
              total += x;
              weighted += x * x;
            }
          }
          *out++ = weighted / total;
        }
      }
    }
  }

  // Caffe has no TEST-phase backward of its own (it reuses the last TRAIN draw); this is the
  // derivative of sum(x^2) / sum(x): (2 x - y) / sum(x).
  void stochastic_backward_test(const float* top_diff, const float* in, const float* out,
                                float* bottom_diff) const {
    const PoolGeometry& g = geometry_;
    for (int64_t plane = 0; plane < planes(); ++plane) {
      const float* src = in + plane * in_plane();
      float* dst = bottom_diff + plane * in_plane();
      for (int ph = 0; ph < g.pooled_h; ++ph) {
        for (int pw = 0; pw < g.pooled_w; ++pw) {
          float total = FLT_MIN;
          for (int h = rows_.start[ph]; h < rows_.end[ph]; ++h) {
            for (int w = cols_.start[pw]; w < cols_.end[pw]; ++w) total += src[h * g.width + w];
          }
          const float y = *out++;
          const float d = *top_diff++;
          for (int h = rows_.start[ph]; h < rows_.end[ph]; ++h) {
            for (int w = cols_.start[pw]; w < cols_.end[pw]; ++w) {
              dst[h * g.width + w] += d * (2 * src[h * g.width + w] - y) / total;
            }
          }
        }
      }
    }
  }

#ifdef ENGINE_USE_ONEDNN
  // The oneDNN averaging whose divisor equals Caffe's for every window here, if any.
  bool onednn_average_algorithm(dnnl::algorithm* algorithm) const {
    const PoolGeometry& g = geometry_;
    if (g.pad_h == 0 && g.pad_w == 0) {
      // Caffe's divisor is then the window clipped to the input: oneDNN's exclude_padding.
      *algorithm = dnnl::algorithm::pooling_avg_exclude_padding;
      return true;
    }
    if (g.pad_bottom() <= g.pad_h && g.pad_right() <= g.pad_w) {
      // No window reaches past in + pad, so Caffe divides by the whole kernel area.
      *algorithm = dnnl::algorithm::pooling_avg_include_padding;
      return true;
    }
    return false;
  }

  // Whether oneDNN pools as Caffe does here; sets algorithm_.
  bool onednn_algorithm(bool wants_mask_top) {
    if (method_ == PoolingParameter::MAX) {
      if (wants_mask_top) return false;  // oneDNN's workspace is not Caffe's mask
      algorithm_ = dnnl::algorithm::pooling_max;
      return true;
    }
    return method_ == PoolingParameter::AVE && onednn_average_algorithm(&algorithm_);
  }

  // The primitives for the format the bottom holds (blocked, when the layer before computed in
  // it: then the top keeps the matching format, and pooling runs on vectors of channels); false
  // where oneDNN cannot pool it, and the reference code runs from then on. Without `training`,
  // the forward pass only: it keeps no workspace (max pooling's argmax), and oneDNN's runs
  // about three times faster so on AVX2.
  bool prepare_onednn(Blob& bottom, bool training) {
    using dnnl::memory;
    const PoolGeometry& g = geometry_;
    const memory::dims src_dims = {g.num, g.channels, g.height, g.width};
    const memory::dims dst_dims = {g.num, g.channels, g.pooled_h, g.pooled_w};
    const memory::desc src_md = onednn::held_desc(*bottom.data_memory(), src_dims);
    if (src_md == built_for_ && training == built_for_training_) return true;
    try {
      dnnl::engine& engine = onednn::cpu_engine();
      const bool plain = src_md == onednn::plain_desc(src_dims);
      const memory::desc dst_md = plain ? onednn::plain_desc(dst_dims)
                                        : memory::desc(dst_dims, memory::data_type::f32,
                                                       memory::format_tag::any);
      const memory::dims strides = {g.stride_h, g.stride_w};
      const memory::dims kernel = {g.kernel_h, g.kernel_w};
      const memory::dims pad_l = {g.pad_h, g.pad_w};
      const memory::dims pad_r = {g.pad_bottom(), g.pad_right()};
      const dnnl::pooling_forward::primitive_desc forward_pd(
          dnnl::pooling_forward::desc(training ? dnnl::prop_kind::forward_training
                                               : dnnl::prop_kind::forward_inference,
                                      algorithm_, src_md, dst_md, strides, kernel, pad_l, pad_r),
          engine);
      onednn_forward_ = dnnl::pooling_forward(forward_pd);
      src_.init(src_md);
      dst_.init(forward_pd.dst_desc());
      if (training) {
        // The gradients take the data's formats.
        const dnnl::pooling_backward::primitive_desc backward_pd(
            dnnl::pooling_backward::desc(algorithm_, src_md, forward_pd.dst_desc(), strides,
                                         kernel, pad_l, pad_r),
            engine, forward_pd);
        onednn_backward_ = dnnl::pooling_backward(backward_pd);
        diff_dst_.init(backward_pd.diff_dst_desc());
        diff_src_.init(backward_pd.diff_src_desc());
      }
      has_workspace_ = forward_pd.workspace_desc().get_size() > 0;
      if (has_workspace_) workspace_mem_ = memory(forward_pd.workspace_desc(), engine);
    } catch (const dnnl::error& error) {
      LOG(INFO) << describe() << ": oneDNN cannot pool this geometry (" << error.what()
                << "); using the reference code";
      onednn_ready_ = false;
      return false;
    }
    built_for_ = src_md;
    built_for_training_ = training;
    return true;
  }

  void onednn_forward(Blob& bottom, SyncedMemory& top) {
    std::unordered_map<int, dnnl::memory> args = {
        {DNNL_ARG_SRC, src_.in(*bottom.data_memory())},
        {DNNL_ARG_DST, dst_.out(top)}};
    if (has_workspace_) args[DNNL_ARG_WORKSPACE] = workspace_mem_;
    onednn::run(onednn_forward_, args);
    dst_.finish();
  }

  void onednn_backward(Blob& top, Blob& bottom) {
    std::unordered_map<int, dnnl::memory> args = {
        {DNNL_ARG_DIFF_DST, diff_dst_.in(*top.diff_memory())},
        {DNNL_ARG_DIFF_SRC, diff_src_.out(*bottom.diff_memory())}};
    if (has_workspace_) args[DNNL_ARG_WORKSPACE] = workspace_mem_;
    onednn::run(onednn_backward_, args);
    diff_src_.finish();
  }

  dnnl::pooling_forward onednn_forward_;
  dnnl::pooling_backward onednn_backward_;
  dnnl::algorithm algorithm_ = dnnl::algorithm::pooling_max;
  dnnl::memory::desc built_for_;  // the bottom format the primitives were made for
  bool built_for_training_ = false;
  onednn::Input src_, diff_dst_;
  onednn::Output dst_, diff_src_;
  dnnl::memory workspace_mem_;
  bool has_workspace_ = false;
  SyncedMemory recomputed_top_;  // an unplanned backward pass's forward output
#endif

  int method_ = PoolingParameter::MAX;
  bool global_ = false;
  bool ceil_mode_ = true;
  bool want_onednn_ = false;
  bool onednn_ready_ = false;
  PoolGeometry geometry_;
  Windows rows_, cols_;
  std::vector<int> argmax_;   // index into the H*W plane, per output (MAX)
  bool argmax_fresh_ = false;  // whether argmax_ is the last forward pass's
  std::vector<float> recomputed_maxima_;  // the values of an argmax found again
  std::vector<std::vector<float>> column_maxima_;  // max_values' rows, per thread
  std::vector<float> draws_;  // uniform draws, per output (STOCHASTIC, TRAIN)
  std::vector<int> chosen_;   // index of the sampled element, per output (STOCHASTIC, TRAIN)
};

}  // namespace

// For tests: whether a Pooling layer computes on oneDNN for its current shapes.
bool pooling_runs_onednn(const Layer& layer) {
  const auto* self = dynamic_cast<const PoolingLayer*>(&working_layer(layer));
  return self != nullptr && self->runs_onednn();
}

}  // namespace engine

ENGINE_LAYER_FACTORY(Pooling, PoolingLayer)
