// MVN: mean-variance normalization of each image's channels (or of each whole image with
// across_channels). Caffe's eps is added to the standard deviation, not to the variance:
// y = (x - mean) / (sqrt(mean((x - mean)^2)) + eps). The groups follow Caffe's legacy num and
// channels (axes 0 and 1); everything after them is one group's values.
#include <cmath>
#include <vector>

#include "core/layer.hpp"
#include "core/layer_registry.hpp"
#include "math/blas.hpp"

namespace engine {
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
    deviation_.resize(groups_);
  }

 protected:
  void forward_cpu(const Blobs& bottom, const Blobs& top) override {
    const MVNParameter& p = param_.mvn_param();
    const float* x = bottom[0]->cpu_data();
    float* y = top[0]->mutable_cpu_data();
    // Caffe averages with a float factor 1 / dim.
    const float inverse_dim = static_cast<float>(1.0 / dim_);
    for (int64_t g = 0; g < groups_; ++g) {
      const float* xg = x + g * dim_;
      float* yg = y + g * dim_;
      const float mean = static_cast<float>(cpu::sum(dim_, xg)) * inverse_dim;
      for (int64_t j = 0; j < dim_; ++j) yg[j] = xg[j] - mean;
      if (!p.normalize_variance()) continue;
      const float variance = static_cast<float>(cpu::dot(dim_, yg, yg)) * inverse_dim;
      deviation_[g] = std::sqrt(variance) + p.eps();
      for (int64_t j = 0; j < dim_; ++j) yg[j] /= deviation_[g];
    }
  }

  // With normalized variance, Caffe's gradient (dy - mean(dy) - y * mean(y dy)) / (sd + eps),
  // which is exact up to a factor sd / (sd + eps) on the last term.
  void backward_cpu(const Blobs& top, const std::vector<bool>& propagate_down,
                    const Blobs& bottom) override {
    if (!propagate_down[0]) return;
    const bool normalize = param_.mvn_param().normalize_variance();
    const float* y = top[0]->cpu_data();
    const float* dy = top[0]->cpu_diff();
    float* dx = bottom[0]->mutable_cpu_diff();
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
        dxg[j] = (dyg[j] + scale * (yg[j] * y_dy + sum_dy)) / deviation_[g];
      }
    }
  }

 private:
  int64_t groups_ = 0, dim_ = 0;
  std::vector<float> deviation_;  // per group: sqrt(variance) + eps, kept for backward
};

}  // namespace
}  // namespace engine

ENGINE_LAYER_FACTORY(MVN, MvnLayer)
