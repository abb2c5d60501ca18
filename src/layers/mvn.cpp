// MVN: mean-variance normalization of each image's channels (or of each whole image with
// across_channels). Caffe's eps is added to the standard deviation, not to the variance:
// y = (x - mean) / (sqrt(mean((x - mean)^2)) + eps). The groups follow Caffe's legacy num and
// channels (axes 0 and 1); everything after them is one group's values.
#include <cmath>
#include <vector>

#include "core/layer.hpp"
#include "core/layer_registry.hpp"
#include "core/synced_memory.hpp"
#include "math/blas.hpp"

namespace engine {

#ifdef ENGINE_USE_CUDA
// mvn.cu: the passes below over `groups` rows of `dim` values, with the same float expressions.
// sums: scratch for two floats per group. x == y and dy == dx are allowed.
void mvn_forward_gpu(int64_t groups, int64_t dim, bool normalize, float eps, const float* x,
                     float* y, float* sums, float* deviation);
void mvn_backward_gpu(int64_t groups, int64_t dim, bool normalize, const float* y,
                      const float* dy, const float* deviation, float* sums, float* dx);
#endif

namespace {

class MvnLayer : public Layer {
 public:
  using Layer::Layer;
  int exact_bottoms() const override { return 1; }
  int exact_tops() const override { return 1; }

  void reshape(const Blobs& bottom, const Blobs& top) override {
    const Blob& in = *bottom[0];
    top[0]->reshape_like(in);
    groups_ = param_.mvn_param().across_channels() ? in.num()
                                                   : static_cast<int64_t>(in.num()) * in.channels();
    dim_ = groups_ == 0 ? 0 : in.count() / groups_;
    deviation_.reshape({static_cast<int>(groups_)});
    sums_.resize(sizeof(float) * 2 * groups_);
  }

 protected:
  void forward_cpu(const Blobs& bottom, const Blobs& top) override {
    const MVNParameter& p = param_.mvn_param();
    const float* x = bottom[0]->cpu_data();
    float* y = top[0]->mutable_cpu_data();
    float* deviation = deviation_.mutable_cpu_data();
    // Caffe averages with a float factor 1 / dim.
    const float inverse_dim = static_cast<float>(1.0 / dim_);
    for (int64_t g = 0; g < groups_; ++g) {
      const float* xg = x + g * dim_;
      float* yg = y + g * dim_;
      const float mean = static_cast<float>(cpu::sum(dim_, xg)) * inverse_dim;
      for (int64_t j = 0; j < dim_; ++j) yg[j] = xg[j] - mean;
      if (!p.normalize_variance()) continue;
      const float variance = static_cast<float>(cpu::dot(dim_, yg, yg)) * inverse_dim;
      deviation[g] = std::sqrt(variance) + p.eps();
      for (int64_t j = 0; j < dim_; ++j) yg[j] /= deviation[g];
    }
  }

#ifdef ENGINE_USE_CUDA
  // The whole pass differs: a loop over the groups on the CPU, reductions over all groups at
  // once and elementwise kernels on the GPU. (The math:: front would round the sums to float
  // where the CPU keeps them in double, and has no square root.)
  void forward_gpu(const Blobs& bottom, const Blobs& top) override {
    const MVNParameter& p = param_.mvn_param();
    if (groups_ * dim_ == 0) return;
    mvn_forward_gpu(groups_, dim_, p.normalize_variance(), p.eps(), bottom[0]->gpu_data(),
                    top[0]->mutable_gpu_data(), static_cast<float*>(sums_.mutable_device_data()),
                    p.normalize_variance() ? deviation_.mutable_gpu_data() : nullptr);
  }

  void backward_gpu(const Blobs& top, const std::vector<bool>& propagate_down,
                    const Blobs& bottom) override {
    if (!propagate_down[0] || groups_ * dim_ == 0) return;
    const bool normalize = param_.mvn_param().normalize_variance();
    mvn_backward_gpu(groups_, dim_, normalize, top[0]->gpu_data(), top[0]->gpu_diff(),
                     normalize ? deviation_.gpu_data() : nullptr,
                     static_cast<float*>(sums_.mutable_device_data()),
                     bottom[0]->mutable_gpu_diff());
  }
#endif

  // With normalized variance, Caffe's gradient (dy - mean(dy) - y * mean(y dy)) / (sd + eps),
  // which is exact up to a factor sd / (sd + eps) on the last term.
  void backward_cpu(const Blobs& top, const std::vector<bool>& propagate_down,
                    const Blobs& bottom) override {
    if (!propagate_down[0]) return;
    const bool normalize = param_.mvn_param().normalize_variance();
    const float* y = top[0]->cpu_data();
    const float* dy = top[0]->cpu_diff();
    float* dx = bottom[0]->mutable_cpu_diff();
    const float* deviation = normalize ? deviation_.cpu_data() : nullptr;
    const float inverse_dim = static_cast<float>(1.0 / dim_);
    for (int64_t g = 0; g < groups_; ++g) {
      const float* yg = y + g * dim_;
      const float* dyg = dy + g * dim_;
      float* dxg = dx + g * dim_;
      if (!normalize) {
        const float mean = static_cast<float>(cpu::sum(dim_, dyg)) * inverse_dim;
        for (int64_t j = 0; j < dim_; ++j) dxg[j] = dyg[j] - mean;
        continue;
      }
      const float y_dy = static_cast<float>(cpu::dot(dim_, yg, dyg));
      const float sum_dy = static_cast<float>(cpu::sum(dim_, dyg));
      const float scale = -1.0f / static_cast<float>(dim_);
      for (int64_t j = 0; j < dim_; ++j) {
        dxg[j] = (dyg[j] + scale * (yg[j] * y_dy + sum_dy)) / deviation[g];
      }
    }
  }

 private:
  int64_t groups_ = 0, dim_ = 0;
  // Per group: sqrt(variance) + eps, kept for backward (on the side of the pass that made it).
  Blob deviation_;
  SyncedMemory sums_;  // the GPU's per-group sums
};

}  // namespace
}  // namespace engine

ENGINE_LAYER_FACTORY(MVN, MvnLayer)
