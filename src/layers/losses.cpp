// Loss layers: EuclideanLoss, SigmoidCrossEntropyLoss, HingeLoss, MultinomialLogisticLoss and
// ContrastiveLoss (the softmax-based ones, SoftmaxWithLoss and InfogainLoss, are in softmax.cpp).
// Each writes a scalar; backward scales by the loss weight the top's diff carries. On the GPU
// the loss and the loss weight stay on the device: EuclideanLoss is written once for both
// devices but for that scaling; the others' loops are kernels in losses.cu.
#include <algorithm>
#include <cmath>
#include <utility>
#include <vector>

#include "core/layer.hpp"
#include "core/layer_registry.hpp"
#include "layers/contrastive_terms.hpp"
#include "layers/elementwise.hpp"
#include "layers/loss.hpp"
#include "math/blas.hpp"

namespace engine {

#ifdef ENGINE_USE_CUDA
// losses.cu: y = x * (*loss_weight / divisor), the loss weight read on the device.
void scale_by_loss_weight_gpu(int64_t n, const float* x, const float* loss_weight, float divisor,
                              float* y);
// sums[0] = the summed loss, sums[1] = the number of targets not ignored, loss = sums[0] over
// the normalizer (the count when by_valid, else fixed_normalizer); all device memory.
void sigmoid_cross_entropy_forward_gpu(int64_t n, const float* x, const float* target,
                                       bool has_ignore_label, int ignore_label, bool by_valid,
                                       float fixed_normalizer, float* sums, float* loss);
void sigmoid_cross_entropy_backward_gpu(int64_t n, const float* x, const float* target,
                                        bool has_ignore_label, int ignore_label, bool by_valid,
                                        const float* sums, float fixed_normalizer,
                                        const float* loss_weight, float* dx);
// The losses below write the loss into `loss` (device) and read the loss weight from
// `loss_weight` (device); dx is overwritten. A label out of range gives NaN (see losses.cu).
void hinge_loss_forward_gpu(int64_t num, int64_t dim, const float* x, const float* labels,
                           bool l2, float* margin, float* loss);
void hinge_loss_backward_gpu(int64_t num, int64_t dim, const float* labels, const float* margin,
                            bool l2, const float* loss_weight, float* dx);
void multinomial_logistic_loss_forward_gpu(int64_t num, int64_t dim, const float* prob,
                                           const float* labels, float floor, float* loss);
void multinomial_logistic_loss_backward_gpu(int64_t num, int64_t dim, const float* prob,
                                            const float* labels, float floor,
                                            const float* loss_weight, float* dx);
// distance_sq receives ||a - b||^2 per pair, for backward.
void contrastive_loss_forward_gpu(int64_t num, int channels, const float* difference,
                                  const float* similar, float margin, bool legacy,
                                  float* distance_sq, float* loss);
// sign: +1 for bottom a, -1 for bottom b.
void contrastive_loss_backward_gpu(int64_t num, int channels, const float* difference,
                                   const float* distance_sq, const float* similar, float margin,
                                   bool legacy, float sign, const float* loss_weight, float* dx);
#endif

namespace {

// sum((a - b)^2) / (2 N), N the first dimension. Both bottoms get a gradient, with opposite signs
// (either may be the target).
class EuclideanLossLayer : public LossLayer {
 public:
  using LossLayer::LossLayer;
  bool allow_force_backward(int) const override { return true; }

  void reshape(const Blobs& bottom, const Blobs& top) override {
    LossLayer::reshape(bottom, top);
    LAYER_REQUIRE(bottom[0]->count(1) == bottom[1]->count(1),
                  "bottoms must have the same size per sample, got " << bottom[0]->shape_string()
                                                                    << " and "
                                                                    << bottom[1]->shape_string());
    difference_.reshape_like(*bottom[0]);
  }

 protected:
  void forward_cpu(const Blobs& bottom, const Blobs& top) override {
    const int64_t count = bottom[0]->count();
    math::sub(count, bottom[0]->data(), bottom[1]->data(), difference_.mutable_data());
    const float dot = static_cast<float>(math::dot(count, difference_.data(), difference_.data()));
    math::set(1, dot / static_cast<float>(bottom[0]->shape(0)) / 2, top[0]->mutable_data());
  }

  void backward_cpu(const Blobs& top, const std::vector<bool>& propagate_down,
                    const Blobs& bottom) override {
    for (int i = 0; i < 2; ++i) {
      if (!propagate_down[i]) continue;
      // sign * w / N: the sign folded into the divisor gives the same float.
      const float divisor = (i == 0 ? 1.0f : -1.0f) * static_cast<float>(bottom[i]->shape(0));
#ifdef ENGINE_USE_CUDA
      if (math::on_gpu()) {
        scale_by_loss_weight_gpu(bottom[i]->count(), difference_.gpu_data(), top[0]->gpu_diff(),
                                 divisor, bottom[i]->mutable_gpu_diff());
        continue;
      }
#endif
      cpu::scale(bottom[i]->count(), loss_weight(top) / divisor, difference_.cpu_data(),
                 bottom[i]->mutable_cpu_diff());
    }
  }

 private:
  Blob difference_;
};

// -sum over targets t of [t log s(x) + (1 - t) log(1 - s(x))] / normalizer, s the logistic
// function, written (as Caffe does) so that no exp overflows: for x >= 0 the term is
// x (t - 1) - log(1 + exp(-x)), for x < 0 it is x t - log(1 + exp(x)). Targets may be any value
// in [0, 1]; ignore_label skips those whose integer part equals it. Normalization defaults to
// BATCH_SIZE for this layer.
class SigmoidCrossEntropyLossLayer : public LossLayer {
 public:
  using LossLayer::LossLayer;

  void layer_setup(const Blobs& bottom, const Blobs& top) override {
    const LossParameter& loss = param_.loss_param();
    has_ignore_label_ = loss.has_ignore_label();
    ignore_label_ = loss.ignore_label();
    normalization_ = normalization_mode(loss, LossParameter::BATCH_SIZE);
  }

  void reshape(const Blobs& bottom, const Blobs& top) override {
    LossLayer::reshape(bottom, top);
    LAYER_REQUIRE(bottom[0]->count() == bottom[1]->count(),
                  "needs one target per prediction, got predictions "
                      << bottom[0]->shape_string() << " and targets " << bottom[1]->shape_string());
  }

 protected:
  bool ignored(float target) const {
    return has_ignore_label_ && static_cast<int>(target) == ignore_label_;
  }

  void forward_cpu(const Blobs& bottom, const Blobs& top) override {
#ifdef ENGINE_USE_CUDA
    if (math::on_gpu()) {
      // The count of targets not ignored stays on the device: VALID divides there.
      normalizer_ = loss_normalizer(normalization_, bottom[0]->shape(0), bottom[0]->count(1), 0);
      sums_.reshape({2});
      sigmoid_cross_entropy_forward_gpu(bottom[0]->count(), bottom[0]->gpu_data(),
                                        bottom[1]->gpu_data(), has_ignore_label_, ignore_label_,
                                        by_valid(), normalizer_, sums_.mutable_gpu_data(),
                                        top[0]->mutable_gpu_data());
      return;
    }
#endif
    const auto [loss, valid] = summed_loss(*bottom[0], *bottom[1]);
    normalizer_ = loss_normalizer(normalization_, bottom[0]->shape(0), bottom[0]->count(1), valid);
    top[0]->mutable_cpu_data()[0] = loss / normalizer_;
  }

  // d(loss)/dx = (s(x) - t) * loss_weight / normalizer; zero where ignored.
  void backward_cpu(const Blobs& top, const std::vector<bool>& propagate_down,
                    const Blobs& bottom) override {
    require_no_gradient(propagate_down, 1, "targets");
    if (!propagate_down[0]) return;
    const int64_t count = bottom[0]->count();
#ifdef ENGINE_USE_CUDA
    if (math::on_gpu()) {
      return sigmoid_cross_entropy_backward_gpu(
          count, bottom[0]->gpu_data(), bottom[1]->gpu_data(), has_ignore_label_, ignore_label_,
          by_valid(), sums_.gpu_data(), normalizer_, top[0]->gpu_diff(),
          bottom[0]->mutable_gpu_diff());
    }
#endif
    const float* x = bottom[0]->cpu_data();
    const float* target = bottom[1]->cpu_data();
    float* dx = bottom[0]->mutable_cpu_diff();
    const float scale = loss_weight(top) / normalizer_;
    for (int64_t i = 0; i < count; ++i) {
      dx[i] = ignored(target[i]) ? 0.0f : (sigmoid(x[i]) - target[i]) * scale;
    }
  }

 private:
  bool by_valid() const { return normalization_ == LossParameter::VALID; }

  // The summed loss and the number of targets not ignored.
  std::pair<float, int64_t> summed_loss(const Blob& prediction, const Blob& targets) {
    const int64_t count = prediction.count();
    const float* x = prediction.cpu_data();
    const float* target = targets.cpu_data();
    // Caffe accumulates in float the terms it computes in double.
    float loss = 0;
    int64_t valid = 0;
    for (int64_t i = 0; i < count; ++i) {
      if (ignored(target[i])) continue;
      const float positive = x[i] >= 0;
      const float linear = x[i] * (target[i] - positive);
      loss = static_cast<float>(loss - (linear - std::log(1 + std::exp(double(x[i] - 2 * x[i] * positive)))));
      ++valid;
    }
    return {loss, valid};
  }

  bool has_ignore_label_ = false;
  int ignore_label_ = 0;
  LossParameter::NormalizationMode normalization_ = LossParameter::BATCH_SIZE;
  float normalizer_ = 1;
  Blob sums_;  // GPU: the summed loss and the count of valid targets
};

// One-vs-all hinge loss over the K = count / N scores of each sample: with t = +1 for the true
// class and -1 for the others, sum of max(0, 1 - t x) (L1) or its square (L2), divided by N.
class HingeLossLayer : public LossLayer {
 public:
  using LossLayer::LossLayer;

  void reshape(const Blobs& bottom, const Blobs& top) override {
    LossLayer::reshape(bottom, top);
    LAYER_REQUIRE(bottom[1]->count() == bottom[0]->shape(0),
                  "needs one label per sample: predictions " << bottom[0]->shape_string()
                                                             << ", labels "
                                                             << bottom[1]->shape_string());
    margins_.reshape_like(*bottom[0]);
  }

 protected:
  void forward_cpu(const Blobs& bottom, const Blobs& top) override {
    const int64_t num = bottom[0]->shape(0);
    const int64_t dim = bottom[0]->count() / std::max<int64_t>(num, 1);
    const float* x = bottom[0]->cpu_data();
    const float* labels = bottom[1]->cpu_data();
    float* margin = margins_.mutable_cpu_data();
    for (int64_t i = 0; i < num; ++i) {
      const int label = static_cast<int>(labels[i]);
      LAYER_REQUIRE(label >= 0 && label < dim,
                    "label " << labels[i] << " of sample " << i << " is outside [0, " << dim << ")");
      for (int64_t j = 0; j < dim; ++j) {
        const float t_x = j == label ? -x[i * dim + j] : x[i * dim + j];
        margin[i * dim + j] = std::max(0.0f, 1 + t_x);
      }
    }
    const int64_t count = bottom[0]->count();
    const double sum = l2() ? cpu::dot(count, margin, margin) : cpu::asum(count, margin);
    top[0]->mutable_cpu_data()[0] = static_cast<float>(sum) / static_cast<float>(num);
  }

  // L1: -t sign(margin) / N; L2: -2 t margin / N (times the loss weight).
  void backward_cpu(const Blobs& top, const std::vector<bool>& propagate_down,
                    const Blobs& bottom) override {
    require_no_gradient(propagate_down, 1, "labels");
    if (!propagate_down[0]) return;
    const int64_t num = bottom[0]->shape(0);
    const int64_t dim = bottom[0]->count() / std::max<int64_t>(num, 1);
    const float* labels = bottom[1]->cpu_data();
    const float* margin = margins_.cpu_data();
    float* dx = bottom[0]->mutable_cpu_diff();
    const float scale = l2() ? loss_weight(top) * 2 / static_cast<float>(num)
                             : loss_weight(top) / static_cast<float>(num);
    for (int64_t i = 0; i < num; ++i) {
      const int label = static_cast<int>(labels[i]);
      for (int64_t j = 0; j < dim; ++j) {
        const float m = margin[i * dim + j];
        const float d = l2() ? m : static_cast<float>(m > 0);
        dx[i * dim + j] = (j == label ? -d : d) * scale;
      }
    }
  }

#ifdef ENGINE_USE_CUDA
  void forward_gpu(const Blobs& bottom, const Blobs& top) override {
    const int64_t num = bottom[0]->shape(0);
    hinge_loss_forward_gpu(num, bottom[0]->count() / std::max<int64_t>(num, 1),
                           bottom[0]->gpu_data(), bottom[1]->gpu_data(), l2(),
                           margins_.mutable_gpu_data(), top[0]->mutable_gpu_data());
  }

  void backward_gpu(const Blobs& top, const std::vector<bool>& propagate_down,
                    const Blobs& bottom) override {
    require_no_gradient(propagate_down, 1, "labels");
    if (!propagate_down[0]) return;
    const int64_t num = bottom[0]->shape(0);
    hinge_loss_backward_gpu(num, bottom[0]->count() / std::max<int64_t>(num, 1),
                            bottom[1]->gpu_data(), margins_.gpu_data(), l2(), top[0]->gpu_diff(),
                            bottom[0]->mutable_gpu_diff());
  }
#endif

 private:
  bool l2() const { return param_.hinge_loss_param().norm() == HingeLossParameter::L2; }

  // max(0, 1 - t x) per score, from forward.
  Blob margins_;
};

// -sum over samples of log(p[label]) / N, where bottom 0 holds probabilities (N x K) and p is
// floored at 1e-20 so that a zero probability gives a large, finite loss.
class MultinomialLogisticLossLayer : public LossLayer {
 public:
  using LossLayer::LossLayer;

  void reshape(const Blobs& bottom, const Blobs& top) override {
    LossLayer::reshape(bottom, top);
    const Blob& labels = *bottom[1];
    LAYER_REQUIRE(labels.count() == labels.shape(0),
                  "needs one label per sample (N or N x 1 x 1 x 1), got labels "
                      << labels.shape_string());
  }

 protected:
  int label_of(const Blobs& bottom, int64_t i, int64_t dim) const {
    const float value = bottom[1]->cpu_data()[i];
    const int label = static_cast<int>(value);
    LAYER_REQUIRE(label >= 0 && label < dim,
                  "label " << value << " of sample " << i << " is outside [0, " << dim << ")");
    return label;
  }

  void forward_cpu(const Blobs& bottom, const Blobs& top) override {
    const int64_t num = bottom[0]->shape(0);
    const int64_t dim = bottom[0]->count() / std::max<int64_t>(num, 1);
    const float* prob = bottom[0]->cpu_data();
    float loss = 0;
    for (int64_t i = 0; i < num; ++i) {
      const float p = std::max(prob[i * dim + label_of(bottom, i, dim)], kLogThreshold);
      loss = static_cast<float>(loss - std::log(double(p)));
    }
    top[0]->mutable_cpu_data()[0] = loss / static_cast<float>(num);
  }

  // -loss_weight / (N p[label]) at each label, 0 elsewhere.
  void backward_cpu(const Blobs& top, const std::vector<bool>& propagate_down,
                    const Blobs& bottom) override {
    require_no_gradient(propagate_down, 1, "labels");
    if (!propagate_down[0]) return;
    const int64_t num = bottom[0]->shape(0);
    const int64_t dim = bottom[0]->count() / std::max<int64_t>(num, 1);
    const float* prob = bottom[0]->cpu_data();
    float* dx = bottom[0]->mutable_cpu_diff();
    cpu::set(bottom[0]->count(), 0.0f, dx);
    const float scale = -loss_weight(top) / static_cast<float>(num);
    for (int64_t i = 0; i < num; ++i) {
      const int label = label_of(bottom, i, dim);
      dx[i * dim + label] = scale / std::max(prob[i * dim + label], kLogThreshold);
    }
  }

#ifdef ENGINE_USE_CUDA
  void forward_gpu(const Blobs& bottom, const Blobs& top) override {
    const int64_t num = bottom[0]->shape(0);
    multinomial_logistic_loss_forward_gpu(num, bottom[0]->count() / std::max<int64_t>(num, 1),
                                          bottom[0]->gpu_data(), bottom[1]->gpu_data(),
                                          kLogThreshold, top[0]->mutable_gpu_data());
  }

  void backward_gpu(const Blobs& top, const std::vector<bool>& propagate_down,
                    const Blobs& bottom) override {
    require_no_gradient(propagate_down, 1, "labels");
    if (!propagate_down[0]) return;
    const int64_t num = bottom[0]->shape(0);
    multinomial_logistic_loss_backward_gpu(num, bottom[0]->count() / std::max<int64_t>(num, 1),
                                           bottom[0]->gpu_data(), bottom[1]->gpu_data(),
                                           kLogThreshold, top[0]->gpu_diff(),
                                           bottom[0]->mutable_gpu_diff());
  }
#endif
};

// Siamese pairs: bottoms a and b (N x C, or N x C x 1 x 1) and a similarity flag y (N). With
// d = ||a - b||, the loss is sum of [y d^2 + (1 - y) max(margin - d, 0)^2] / 2N, or with
// legacy_version the dissimilar term max(margin - d^2, 0).
class ContrastiveLossLayer : public LossLayer {
 public:
  using LossLayer::LossLayer;
  int exact_bottoms() const override { return 3; }
  bool allow_force_backward(int bottom_index) const override { return bottom_index != 2; }

  void reshape(const Blobs& bottom, const Blobs& top) override {
    LossLayer::reshape(bottom, top);
    const Blob& a = *bottom[0];
    const Blob& b = *bottom[1];
    const Blob& similar = *bottom[2];
    LAYER_REQUIRE(a.height() == 1 && a.width() == 1 && b.height() == 1 && b.width() == 1 &&
                      a.channels() == b.channels() && a.num_axes() <= 4 && b.num_axes() <= 4,
                  "needs two N x C (x 1 x 1) bottoms of the same shape, got "
                      << a.shape_string() << " and " << b.shape_string());
    LAYER_REQUIRE(similar.count() == a.shape(0),
                  "needs one similarity flag per pair in bottom 2 (" << a.shape(0)
                                                                     << " pairs), got "
                                                                     << similar.shape_string());
    difference_.reshape_like(a);
    distance_sq_.reshape({a.shape(0)});
  }

 protected:
  ContrastiveLossParameter options() const { return param_.contrastive_loss_param(); }

  void forward_cpu(const Blobs& bottom, const Blobs& top) override {
    const int64_t num = bottom[0]->shape(0);
    const int channels = bottom[0]->channels();
    math::sub(bottom[0]->count(), bottom[0]->data(), bottom[1]->data(),
              difference_.mutable_data());
    const float margin = options().margin();
    const bool legacy = options().legacy_version();
#ifdef ENGINE_USE_CUDA
    if (math::on_gpu()) {
      return contrastive_loss_forward_gpu(num, channels, difference_.gpu_data(),
                                          bottom[2]->gpu_data(), margin, legacy,
                                          distance_sq_.mutable_gpu_data(),
                                          top[0]->mutable_gpu_data());
    }
#endif
    const float* diff = difference_.cpu_data();
    const float* similar = bottom[2]->cpu_data();
    float* distance_sq = distance_sq_.mutable_cpu_data();
    float loss = 0;
    for (int64_t i = 0; i < num; ++i) {
      const float* d = diff + i * channels;
      distance_sq[i] = static_cast<float>(cpu::dot(channels, d, d));
      if (static_cast<int>(similar[i]) != 0) {
        loss += distance_sq[i];
      } else if (legacy) {
        loss += std::max(margin - distance_sq[i], 0.0f);
      } else {
        const float gap = std::max(static_cast<float>(margin - std::sqrt(double(distance_sq[i]))), 0.0f);
        loss += gap * gap;
      }
    }
    top[0]->mutable_cpu_data()[0] = loss / static_cast<float>(num) / 2;
  }

  // Each pair's gradient is (a - b) times contrastive_pair_factor (contrastive_terms.hpp).
  void backward_cpu(const Blobs& top, const std::vector<bool>& propagate_down,
                    const Blobs& bottom) override {
    const int64_t num = bottom[0]->shape(0);
    const int channels = bottom[0]->channels();
    const float* diff = difference_.cpu_data();
    const float* distance_sq = distance_sq_.cpu_data();
    const float* similar = bottom[2]->cpu_data();
    const float margin = options().margin();
    const bool legacy = options().legacy_version();
    for (int k = 0; k < 2; ++k) {
      if (!propagate_down[k]) continue;
      const float alpha = (k == 0 ? 1.0f : -1.0f) * loss_weight(top) / static_cast<float>(num);
      float* out = bottom[k]->mutable_cpu_diff();
      for (int64_t i = 0; i < num; ++i) {
        const float beta = contrastive_pair_factor(
            alpha, distance_sq[i], static_cast<int>(similar[i]) != 0, margin, legacy);
        cpu::scale(channels, beta, diff + i * channels, out + i * channels);
      }
    }
  }

#ifdef ENGINE_USE_CUDA
  void backward_gpu(const Blobs& top, const std::vector<bool>& propagate_down,
                    const Blobs& bottom) override {
    const ContrastiveLossParameter p = options();
    for (int k = 0; k < 2; ++k) {
      if (!propagate_down[k]) continue;
      contrastive_loss_backward_gpu(bottom[0]->shape(0), bottom[0]->channels(),
                                    difference_.gpu_data(), distance_sq_.gpu_data(),
                                    bottom[2]->gpu_data(), p.margin(), p.legacy_version(),
                                    k == 0 ? 1.0f : -1.0f, top[0]->gpu_diff(),
                                    bottom[k]->mutable_gpu_diff());
    }
  }
#endif

 private:
  Blob difference_;
  Blob distance_sq_;  // ||a - b||^2 per pair, from forward
};

}  // namespace
}  // namespace engine

ENGINE_LAYER_FACTORY(EuclideanLoss, EuclideanLossLayer)
ENGINE_LAYER_FACTORY(SigmoidCrossEntropyLoss, SigmoidCrossEntropyLossLayer)
ENGINE_LAYER_FACTORY(HingeLoss, HingeLossLayer)
ENGINE_LAYER_FACTORY(MultinomialLogisticLoss, MultinomialLogisticLossLayer)
ENGINE_LAYER_FACTORY(ContrastiveLoss, ContrastiveLossLayer)
