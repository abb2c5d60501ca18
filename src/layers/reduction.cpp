// Layers that reduce along axes: ArgMax (the top-k positions, or values, per item) and Reduction
// (SUM, ASUM, SUMSQ or MEAN of all axes from `axis` on, times `coeff`).
#include <algorithm>
#include <cmath>
#include <functional>
#include <utility>
#include <vector>

#include "core/layer.hpp"
#include "core/layer_registry.hpp"
#include "math/blas.hpp"

namespace engine {

#ifdef ENGINE_USE_CUDA
// reduction.cu. ArgMax: `searches` runs of `dim` values `inner` apart (search i at
// (i / inner) * dim * inner + i % inner), the top written as the CPU writes it.
void argmax_gpu(int64_t searches, int dim, int64_t inner, int top_k, bool along_axis,
                bool out_max_val, const float* data, float* out);
// Reduction: out[i] = the sum over row i of [num, dim] of x, |x| (absolute) or x^2 (squares),
// summed in double and rounded to float; and the gradient of coeff times that, overwriting diff.
void reduction_sums_gpu(int64_t num, int64_t dim, bool absolute, bool squares, const float* x,
                        float* out);
void reduction_backward_gpu(int64_t num, int64_t dim, bool absolute, bool squares, float coeff,
                            const float* x, const float* top_diff, float* diff);
#endif

namespace {

// Caffe's ArgMax: without `axis`, each item's flattened values give a top [N, 1 (2 with
// out_max_val: indices then values), top_k, 1...]; with `axis`, the top is the bottom with that
// axis cut to top_k, holding indices, or values with out_max_val. Ties rank the larger index
// first (the ordering of (value, index) pairs that Caffe sorts by). No gradient.
class ArgMaxLayer : public Layer {
 public:
  using Layer::Layer;
  int exact_bottoms() const override { return 1; }
  int exact_tops() const override { return 1; }
  bool allow_force_backward(int) const override { return false; }

  void layer_setup(const Blobs& bottom, const Blobs& top) override {
    const ArgMaxParameter& p = param_.argmax_param();
    LAYER_REQUIRE(p.top_k() >= 1, "top_k must be at least 1, got " << p.top_k());
    top_k_ = static_cast<int>(p.top_k());
  }

  void reshape(const Blobs& bottom, const Blobs& top) override {
    const ArgMaxParameter& p = param_.argmax_param();
    const Blob& in = *bottom[0];
    std::vector<int> shape(std::max(in.num_axes(), 3), 1);
    if (p.has_axis()) {
      axis_ = canonical_axis(in, p.axis(), "axis");
      LAYER_REQUIRE(top_k_ <= in.shape(axis_),
                    "top_k (" << top_k_ << ") must not exceed the length of axis " << axis_
                              << " of the bottom " << in.shape_string());
      shape = in.shape();
      shape[axis_] = top_k_;
    } else {
      LAYER_REQUIRE(in.num_axes() >= 1 && top_k_ <= in.count(1),
                    "top_k (" << top_k_ << ") must not exceed the values per item ("
                              << (in.num_axes() >= 1 ? in.count(1) : 0) << ") of the bottom "
                              << in.shape_string());
      shape[0] = in.shape(0);
      shape[2] = top_k_;
      if (p.out_max_val()) shape[1] = 2;
    }
    top[0]->reshape(shape);
  }

 protected:
  void forward_cpu(const Blobs& bottom, const Blobs& top) override {
    const ArgMaxParameter& p = param_.argmax_param();
    const Blob& in = *bottom[0];
    const bool along_axis = p.has_axis();
    const int dim = static_cast<int>(along_axis ? in.shape(axis_) : in.count(1));
    const int64_t inner = along_axis ? in.count(axis_ + 1) : 1;
    const int64_t searches = in.count() / std::max(dim, 1);
#ifdef ENGINE_USE_CUDA
    if (math::on_gpu()) {
      argmax_gpu(searches, dim, inner, top_k_, along_axis, p.out_max_val(), in.gpu_data(),
                 top[0]->mutable_gpu_data());
      return;
    }
#endif
    const float* data = in.cpu_data();
    float* out = top[0]->mutable_cpu_data();
    std::vector<std::pair<float, int>> ranked(dim);
    for (int64_t i = 0; i < searches; ++i) {
      const int64_t outer = i / inner, position = i % inner;
      for (int j = 0; j < dim; ++j) ranked[j] = {data[(outer * dim + j) * inner + position], j};
      std::partial_sort(ranked.begin(), ranked.begin() + top_k_, ranked.end(),
                        std::greater<std::pair<float, int>>());
      for (int j = 0; j < top_k_; ++j) {
        if (along_axis) {
          const float value =
              p.out_max_val() ? ranked[j].first : static_cast<float>(ranked[j].second);
          out[(outer * top_k_ + j) * inner + position] = value;
        } else if (p.out_max_val()) {
          out[2 * i * top_k_ + j] = static_cast<float>(ranked[j].second);
          out[2 * i * top_k_ + top_k_ + j] = ranked[j].first;
        } else {
          out[i * top_k_ + j] = static_cast<float>(ranked[j].second);
        }
      }
    }
  }

  void backward_cpu(const Blobs& top, const std::vector<bool>& propagate_down,
                    const Blobs& bottom) override {
    LAYER_REQUIRE(!propagate_down[0], "has no gradient (the top holds positions)");
  }

 private:
  int top_k_ = 1;
  int axis_ = 0;
};

class ReductionLayer : public Layer {
 public:
  using Layer::Layer;
  int exact_bottoms() const override { return 1; }
  int exact_tops() const override { return 1; }

  void reshape(const Blobs& bottom, const Blobs& top) override {
    const ReductionParameter& p = param_.reduction_param();
    const Blob& in = *bottom[0];
    axis_ = canonical_axis(in, p.axis(), "axis");
    top[0]->reshape(std::vector<int>(in.shape().begin(), in.shape().begin() + axis_));
    num_ = in.count(0, axis_);
    dim_ = in.count(axis_);
    coeff_ = p.coeff();
    if (p.operation() == ReductionParameter::MEAN) coeff_ /= static_cast<float>(dim_);
  }

 protected:
  void forward_cpu(const Blobs& bottom, const Blobs& top) override {
    float* out = top[0]->mutable_data();
    row_sums(bottom[0]->data(), out);
    // Rounded to float before the coefficient, as Caffe scales its float sums.
    if (coeff_ != 1.0f) math::scale(num_, coeff_, out);
  }

  void backward_cpu(const Blobs& top, const std::vector<bool>& propagate_down,
                    const Blobs& bottom) override {
    if (!propagate_down[0]) return;
    const auto op = param_.reduction_param().operation();
#ifdef ENGINE_USE_CUDA
    if (math::on_gpu()) {
      reduction_backward_gpu(num_, dim_, op == ReductionParameter::ASUM,
                             op == ReductionParameter::SUMSQ, coeff_, bottom[0]->gpu_data(),
                             top[0]->gpu_diff(), bottom[0]->mutable_gpu_diff());
      return;
    }
#endif
    const float* data = bottom[0]->cpu_data();
    const float* top_diff = top[0]->cpu_diff();
    float* diff = bottom[0]->mutable_cpu_diff();
    for (int64_t i = 0; i < num_; ++i) {
      const float scale = top_diff[i] * coeff_;
      const float* x = data + i * dim_;
      float* d = diff + i * dim_;
      switch (op) {
        case ReductionParameter::SUM:
        case ReductionParameter::MEAN: cpu::set(dim_, scale, d); break;
        case ReductionParameter::ASUM:
          for (int64_t j = 0; j < dim_; ++j) {
            d[j] = static_cast<float>((x[j] > 0) - (x[j] < 0)) * scale;
          }
          break;
        case ReductionParameter::SUMSQ: cpu::scale(dim_, 2 * scale, x, d); break;
      }
    }
  }

 private:
  // out[i] = the operation's sum over item i, in double, rounded to float.
  void row_sums(const float* data, float* out) {
    const auto op = param_.reduction_param().operation();
#ifdef ENGINE_USE_CUDA
    if (math::on_gpu()) {
      reduction_sums_gpu(num_, dim_, op == ReductionParameter::ASUM,
                         op == ReductionParameter::SUMSQ, data, out);
      return;
    }
#endif
    for (int64_t i = 0; i < num_; ++i) {
      const float* item = data + i * dim_;
      double value = 0;
      switch (op) {
        case ReductionParameter::SUM:
        case ReductionParameter::MEAN: value = cpu::sum(dim_, item); break;
        case ReductionParameter::ASUM: value = cpu::asum(dim_, item); break;
        case ReductionParameter::SUMSQ: value = cpu::dot(dim_, item, item); break;
      }
      out[i] = static_cast<float>(value);
    }
  }

  int axis_ = 0;
  int64_t num_ = 0, dim_ = 0;
  float coeff_ = 1;
};

}  // namespace
}  // namespace engine

ENGINE_LAYER_FACTORY(ArgMax, ArgMaxLayer)
ENGINE_LAYER_FACTORY(Reduction, ReductionLayer)
