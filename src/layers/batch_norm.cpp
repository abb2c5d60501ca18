// BatchNorm as Caffe defines it: per-channel normalisation over the batch and spatial axes, with
// no scale or shift of its own (a Scale layer follows it). Its three blobs are statistics, not
// parameters: the running sum of means, of variances, and the running normaliser; the stored
// mean is blob0 / blob2 and the stored variance blob1 / blob2.
#include <cmath>

#include "core/layer.hpp"
#include "core/layer_registry.hpp"
#include "math/blas.hpp"

namespace engine {

#ifdef ENGINE_USE_CUDA
// batch_norm.cu: forward and backward on [num][channels][spatial], every step on the device.
// mean_sum, variance_sum and normaliser are blobs 0-2 (updated unless use_global_stats);
// statistics holds 5 x channels floats of workspace that forward fills for backward; normalized
// (batch statistics only) keeps forward's output.
void batch_norm_forward_gpu(int num, int channels, int64_t spatial, const float* x, float* y,
                            float* normalized, bool use_global_stats, float fraction, float eps,
                            float* mean_sum, float* variance_sum, float* normaliser,
                            float* statistics);
void batch_norm_backward_gpu(int num, int channels, int64_t spatial, const float* dy,
                             const float* normalized, bool use_global_stats, float* statistics,
                             float* dx);
#endif

namespace {

// Sums over the batch and spatial axes of a [num][channels][spatial] array: sum of a, or of a * b.
void channel_sums(int num, int channels, int64_t spatial, const float* a, const float* b,
                  std::vector<double>& sums) {
  sums.assign(channels, 0.0);
  for (int n = 0; n < num; ++n) {
    for (int c = 0; c < channels; ++c) {
      const int64_t offset = (int64_t(n) * channels + c) * spatial;
      sums[c] += b ? cpu::dot(spatial, a + offset, b + offset) : cpu::sum(spatial, a + offset);
    }
  }
}

class BatchNormLayer : public Layer {
 public:
  using Layer::Layer;
  int exact_bottoms() const override { return 1; }
  int exact_tops() const override { return 1; }

  void layer_setup(const Blobs& bottom, const Blobs& top) override {
    const BatchNormParameter& p = param_.batch_norm_param();
    moving_average_fraction_ = p.moving_average_fraction();
    use_global_stats_ = p.has_use_global_stats() ? p.use_global_stats()
                                                 : param_.phase() == TEST;
    eps_ = p.eps();
    LAYER_REQUIRE(bottom[0]->num_axes() >= 1, "needs a bottom with at least one axis, got "
                                                  << bottom[0]->shape_string());
    channels_ = bottom[0]->num_axes() == 1 ? 1 : bottom[0]->shape(1);
    const std::vector<std::vector<int>> shapes = {{channels_}, {channels_}, {1}};
    if (blobs_.empty()) {
      for (const auto& shape : shapes) {
        blobs_.push_back(std::make_shared<Blob>(shape));
        blobs_.back()->set_data(0);
      }
    } else {
      LAYER_REQUIRE(blobs_.size() == 3,
                    "has " << blobs_.size() << " stored blobs, expected 3 (mean, variance, "
                           << "moving-average factor)");
      for (size_t i = 0; i < 3; ++i) {
        LAYER_REQUIRE(blobs_[i]->shape() == shapes[i],
                      "stored blob " << i << " has shape " << blobs_[i]->shape_string()
                                     << ", expected " << shape_string(shapes[i]) << " for "
                                     << channels_ << " channels");
      }
    }
    // The statistics must never be touched by the solver: learning rate 0, no gradient.
    for (int i = 0; i < 3; ++i) {
      if (param_.param_size() == i) {
        param_.add_param()->set_lr_mult(0.0f);
      } else {
        LAYER_REQUIRE(param_.param(i).lr_mult() == 0.0f,
                      "param " << i << " has lr_mult " << param_.param(i).lr_mult()
                               << "; the batch statistics cannot be learned parameters");
      }
      set_param_propagate_down(i, false);
    }
  }

  void reshape(const Blobs& bottom, const Blobs& top) override {
    const Blob& in = *bottom[0];
    const int channels = in.num_axes() == 1 ? 1 : in.shape(1);
    LAYER_REQUIRE(channels == channels_, "was set up for " << channels_
                                             << " channels, bottom " << in.shape_string()
                                             << " has " << channels);
    top[0]->reshape_like(in);
    mean_.resize(channels_);
    variance_.resize(channels_);
    stddev_.resize(channels_);
    if (!use_global_stats_) normalized_.reshape_like(in);
    statistics_.reshape({5, channels_});
  }

  // With stored statistics: x -> (x - mean) / sqrt(variance + eps).
  bool compose_channel_affine(int channels, float* scale, float* shift) const override {
    if (!use_global_stats_ || channels != channels_) return false;
    const float normaliser = blobs_[2]->cpu_data()[0];
    const float factor = normaliser == 0 ? 0 : 1 / normaliser;
    const float* mean_sum = blobs_[0]->cpu_data();
    const float* variance_sum = blobs_[1]->cpu_data();
    for (int c = 0; c < channels; ++c) {
      const float a = 1 / std::sqrt(factor * variance_sum[c] + eps_);
      scale[c] *= a;
      shift[c] = a * (shift[c] - factor * mean_sum[c]);
    }
    return true;
  }

 protected:
  void forward_cpu(const Blobs& bottom, const Blobs& top) override {
    const Blob& in = *bottom[0];
    const int num = in.shape(0);
    const int64_t spatial = num * channels_ == 0 ? 0 : in.count() / (int64_t(num) * channels_);
    const int64_t per_channel = num * spatial;
    const float* x = in.cpu_data();
    float* y = top[0]->mutable_cpu_data();

    if (use_global_stats_) {
      const float normaliser = blobs_[2]->cpu_data()[0];
      const float factor = normaliser == 0 ? 0 : 1 / normaliser;
      cpu::scale(channels_, factor, blobs_[0]->cpu_data(), mean_.data());
      cpu::scale(channels_, factor, blobs_[1]->cpu_data(), variance_.data());
    } else {
      channel_sums(num, channels_, spatial, x, nullptr, sums_);
      for (int c = 0; c < channels_; ++c) mean_[c] = static_cast<float>(sums_[c] / per_channel);
    }
    for_each_row(num, spatial, [&](int64_t offset, int c) {
      for (int64_t s = 0; s < spatial; ++s) y[offset + s] = x[offset + s] - mean_[c];
    });
    if (!use_global_stats_) {
      channel_sums(num, channels_, spatial, y, y, sums_);
      for (int c = 0; c < channels_; ++c) {
        variance_[c] = static_cast<float>(sums_[c] / per_channel);
      }
      float* normaliser = blobs_[2]->mutable_cpu_data();
      normaliser[0] = normaliser[0] * moving_average_fraction_ + 1;
      cpu::axpby(channels_, 1.0f, mean_.data(), moving_average_fraction_,
                 blobs_[0]->mutable_cpu_data());
      // The stored variance is the unbiased estimate over the m values of each channel.
      const int64_t m = in.count() / channels_;
      const float correction = m > 1 ? static_cast<float>(double(m) / (m - 1)) : 1.0f;
      cpu::axpby(channels_, correction, variance_.data(), moving_average_fraction_,
                 blobs_[1]->mutable_cpu_data());
    }
    for (int c = 0; c < channels_; ++c) stddev_[c] = std::sqrt(variance_[c] + eps_);
    // Later in-place layers may overwrite the top: backward reads the normalised values from a
    // copy (needed only with batch statistics).
    float* kept = use_global_stats_ ? nullptr : normalized_.mutable_cpu_data();
    for_each_row(num, spatial, [&](int64_t offset, int c) {
      const float divisor = stddev_[c];
      for (int64_t s = 0; s < spatial; ++s) y[offset + s] /= divisor;
      if (kept) cpu::copy(spatial, y + offset, kept + offset);
    });
  }

  void backward_cpu(const Blobs& top, const std::vector<bool>& propagate_down,
                    const Blobs& bottom) override {
    if (!propagate_down[0]) return;
    const Blob& in = *bottom[0];
    const int num = in.shape(0);
    const int64_t spatial = num * channels_ == 0 ? 0 : in.count() / (int64_t(num) * channels_);
    const int64_t per_channel = num * spatial;
    const float* dy = top[0]->cpu_diff();
    float* dx = bottom[0]->mutable_cpu_diff();  // may be dy itself (in place): read, then write
    if (use_global_stats_) {
      for_each_row(num, spatial, [&](int64_t offset, int c) {
        const float divisor = stddev_[c];
        for (int64_t s = 0; s < spatial; ++s) dx[offset + s] = dy[offset + s] / divisor;
      });
      return;
    }
    // With y = (x - mean) / stddev over the batch:
    //   dx = (dy - mean(dy) - mean(dy * y) * y) / stddev, the means per channel.
    const float* y = normalized_.cpu_data();
    channel_sums(num, channels_, spatial, dy, nullptr, sums_);
    channel_sums(num, channels_, spatial, dy, y, product_sums_);
    for_each_row(num, spatial, [&](int64_t offset, int c) {
      const float mean_dy = static_cast<float>(sums_[c] / per_channel);
      const float mean_dy_y = static_cast<float>(product_sums_[c] / per_channel);
      const float divisor = stddev_[c];
      for (int64_t s = 0; s < spatial; ++s) {
        const int64_t j = offset + s;
        dx[j] = (dy[j] - mean_dy - mean_dy_y * y[j]) / divisor;
      }
    });
  }

#ifdef ENGINE_USE_CUDA
  void forward_gpu(const Blobs& bottom, const Blobs& top) override {
    const Blob& in = *bottom[0];
    const int num = in.shape(0);
    batch_norm_forward_gpu(num, channels_, spatial(in), in.gpu_data(), top[0]->mutable_gpu_data(),
                           use_global_stats_ ? nullptr : normalized_.mutable_gpu_data(),
                           use_global_stats_, moving_average_fraction_, eps_,
                           blobs_[0]->mutable_gpu_data(), blobs_[1]->mutable_gpu_data(),
                           blobs_[2]->mutable_gpu_data(), statistics_.mutable_gpu_data());
  }

  void backward_gpu(const Blobs& top, const std::vector<bool>& propagate_down,
                    const Blobs& bottom) override {
    if (!propagate_down[0]) return;
    const Blob& in = *bottom[0];
    batch_norm_backward_gpu(in.shape(0), channels_, spatial(in), top[0]->gpu_diff(),
                            use_global_stats_ ? nullptr : normalized_.gpu_data(),
                            use_global_stats_, statistics_.mutable_gpu_data(),
                            bottom[0]->mutable_gpu_diff());
  }
#endif

 private:
  int64_t spatial(const Blob& in) const {
    const int num = in.shape(0);
    return num * channels_ == 0 ? 0 : in.count() / (int64_t(num) * channels_);
  }

  // Calls body(offset, channel) for every [n][c] row of `spatial` values.
  template <typename Body>
  void for_each_row(int num, int64_t spatial, Body body) const {
    for (int n = 0; n < num; ++n) {
      for (int c = 0; c < channels_; ++c) body((int64_t(n) * channels_ + c) * spatial, c);
    }
  }

  float moving_average_fraction_ = 0.999f;
  float eps_ = 1e-5f;
  bool use_global_stats_ = false;
  int channels_ = 0;
  // Per channel.
  std::vector<float> mean_, variance_, stddev_;
  std::vector<double> sums_, product_sums_;
  Blob normalized_;
  Blob statistics_;  // GPU only: see batch_norm_forward_gpu
};

}  // namespace
}  // namespace engine

ENGINE_LAYER_FACTORY(BatchNorm, BatchNormLayer)
