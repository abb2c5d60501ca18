// Softmax along one axis; SoftmaxWithLoss (softmax followed by the multinomial logistic loss of
// integer labels) and InfogainLoss (its generalization that weighs every class by a matrix H).
// All compute the probabilities with the one function softmax_forward.
#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstdint>
#include <memory>
#include <vector>

#include "core/context.hpp"
#include "core/layer.hpp"
#include "core/synced_memory.hpp"
#include "layers/gpu_kernels.hpp"
#include "math/cudnn.hpp"
#include "core/layer_registry.hpp"
#include "io/prototxt.hpp"
#include "layers/elementwise.hpp"
#include "layers/loss.hpp"
#include "math/blas.hpp"

namespace engine {

#ifdef ENGINE_USE_CUDA
// softmax.cu, InfogainLoss. Locations whose label is ignore_label count for nothing; a label out
// of range gives NaN (the CPU throws). by_valid: normalize by the number of labelled locations,
// counted on the device; else by fixed_normalizer. sums: 2 floats of scratch. The loss weight is
// read from device memory, so no value comes to the host.
void infogain_loss_forward_gpu(int64_t outer, int classes, int64_t inner, const float* prob,
                               const float* labels, const float* h, bool has_ignore_label,
                               int ignore_label, float floor, bool by_valid,
                               float fixed_normalizer, float* sums, float* loss);
// Overwrites dx. scratch: classes + 1 floats.
void infogain_loss_backward_gpu(int64_t outer, int classes, int64_t inner, const float* prob,
                                const float* labels, const float* h, bool has_ignore_label,
                                int ignore_label, bool by_valid, float fixed_normalizer,
                                const float* loss_weight, float* scratch, float* dx);
#endif

namespace {

// The geometry of a softmax over `axis` of a blob: [outer, channels, inner], row-major.
struct SoftmaxShape {
  int64_t outer = 0;
  int channels = 0;
  int64_t inner = 0;
};

// out = softmax(in) along the channel axis; in == out is allowed. The maximum over the axis is
// subtracted first so that exp cannot overflow. `scratch` holds 2 * inner floats.
void softmax_forward(const SoftmaxShape& s, const float* in, float* out, float* scratch) {
  const int64_t inner = s.inner;
  float* max = scratch;
  float* sum = scratch + inner;
  const int64_t plane = s.channels * inner;
  for (int64_t i = 0; i < s.outer; ++i) {
    const float* x = in + i * plane;
    float* y = out + i * plane;
    std::copy(x, x + inner, max);
    for (int c = 1; c < s.channels; ++c) {
      const float* xc = x + c * inner;
      for (int64_t j = 0; j < inner; ++j) max[j] = std::max(max[j], xc[j]);
    }
    std::fill(sum, sum + inner, 0.0f);
    for (int c = 0; c < s.channels; ++c) {
      const float* xc = x + c * inner;
      float* yc = y + c * inner;
      for (int64_t j = 0; j < inner; ++j) {
        yc[j] = std::exp(xc[j] - max[j]);
        sum[j] += yc[j];
      }
    }
    for (int c = 0; c < s.channels; ++c) {
      float* yc = y + c * inner;
      for (int64_t j = 0; j < inner; ++j) yc[j] /= sum[j];
    }
  }
}

// The shape of a softmax over `axis` of `blob`, after checking the axis (errors name the layer).
SoftmaxShape softmax_shape(const Layer& layer, const Blob& blob, int axis) {
  ENGINE_REQUIRE(axis >= -blob.num_axes() && axis < blob.num_axes(),
                 layer.describe() << ": axis " << axis << " is out of range for bottom shape "
                                  << blob.shape_string());
  const int canonical = blob.canonical_axis(axis);
  SoftmaxShape shape;
  shape.outer = blob.count(0, canonical);
  shape.channels = blob.shape(canonical);
  shape.inner = blob.count(canonical + 1);
  return shape;
}

#ifdef ENGINE_USE_CUDA
// Softmax over the middle axis of [outer, channels, inner] on the GPU: cuDNN's accurate channel
// softmax on an outer x channels x inner x 1 tensor, or our kernels with engine: CAFFE (or
// shapes beyond cuDNN's int dimensions). In place, cuDNN gets a copy of its input.
class GpuSoftmax {
 public:
  void forward(const SoftmaxShape& s, bool cudnn, const float* x, float* y) {
    if (!prepare(s, cudnn)) {
      gpu::softmax_forward(s.outer, s.channels, s.inner, x, y);
      return;
    }
    if (x == y) x = copy_of(x);
    ENGINE_CUDNN_CHECK(cudnnSoftmaxForward(Context::cudnn(), CUDNN_SOFTMAX_ACCURATE,
                                           CUDNN_SOFTMAX_MODE_CHANNEL, &cudnn::kOne, *tensor_, x,
                                           &cudnn::kZero, *tensor_, y));
  }

  void backward(const SoftmaxShape& s, bool cudnn, const float* y, const float* dy, float* dx) {
    if (!prepare(s, cudnn)) {
      gpu::softmax_backward(s.outer, s.channels, s.inner, y, dy, dx);
      return;
    }
    if (dy == dx) dy = copy_of(dy);
    ENGINE_CUDNN_CHECK(cudnnSoftmaxBackward(Context::cudnn(), CUDNN_SOFTMAX_ACCURATE,
                                            CUDNN_SOFTMAX_MODE_CHANNEL, &cudnn::kOne, *tensor_, y,
                                            *tensor_, dy, &cudnn::kZero, *tensor_, dx));
  }

 private:
  int64_t count() const { return shape_.outer * shape_.channels * shape_.inner; }

  // Whether cuDNN runs this shape; (re)makes its descriptor, on the first GPU pass only.
  bool prepare(const SoftmaxShape& s, bool cudnn) {
    if (!cudnn || s.outer * s.channels * s.inner == 0 ||
        s.outer * s.channels * s.inner > INT32_MAX) {
      return false;
    }
    if (!tensor_) tensor_ = std::make_unique<cudnn::TensorDescriptor>();
    if (s.outer != shape_.outer || s.channels != shape_.channels || s.inner != shape_.inner) {
      cudnn::set_tensor(*tensor_, static_cast<int>(s.outer), s.channels,
                        static_cast<int>(s.inner), 1);
      shape_ = s;
    }
    return true;
  }

  const float* copy_of(const float* data) {
    copy_.resize(sizeof(float) * static_cast<size_t>(count()));
    float* copy = static_cast<float*>(copy_.mutable_device_data());
    gpu::copy(count(), data, copy);
    return copy;
  }

  std::unique_ptr<cudnn::TensorDescriptor> tensor_;
  SoftmaxShape shape_;
  SyncedMemory copy_;
};
#endif

class SoftmaxLayer : public Layer {
 public:
  using Layer::Layer;
  int exact_bottoms() const override { return 1; }
  int exact_tops() const override { return 1; }

  void reshape(const Blobs& bottom, const Blobs& top) override {
    shape_ = softmax_shape(*this, *bottom[0], param_.softmax_param().axis());
    if (top[0] != bottom[0]) top[0]->reshape_like(*bottom[0]);
    scratch_.resize(2 * shape_.inner);
  }

 protected:
  void forward_cpu(const Blobs& bottom, const Blobs& top) override {
    softmax_forward(shape_, bottom[0]->cpu_data(), top[0]->mutable_cpu_data(), scratch_.data());
  }

  // dx = y * (dy - sum over the axis of dy * y). Reads only top data, so it works in place.
  void backward_cpu(const Blobs& top, const std::vector<bool>& propagate_down,
                    const Blobs& bottom) override {
    if (!propagate_down[0]) return;
    const int64_t inner = shape_.inner;
    const int64_t plane = shape_.channels * inner;
    const float* y_all = top[0]->cpu_data();
    const float* dy_all = top[0]->cpu_diff();
    float* dx_all = bottom[0]->mutable_cpu_diff();
    float* dot = scratch_.data();
    for (int64_t i = 0; i < shape_.outer; ++i) {
      const float* y = y_all + i * plane;
      const float* dy = dy_all + i * plane;
      float* dx = dx_all + i * plane;
      std::fill(dot, dot + inner, 0.0f);
      for (int c = 0; c < shape_.channels; ++c) {
        for (int64_t j = 0; j < inner; ++j) dot[j] += dy[c * inner + j] * y[c * inner + j];
      }
      for (int c = 0; c < shape_.channels; ++c) {
        for (int64_t j = 0; j < inner; ++j) {
          dx[c * inner + j] = (dy[c * inner + j] - dot[j]) * y[c * inner + j];
        }
      }
    }
  }

#ifdef ENGINE_USE_CUDA
  void forward_gpu(const Blobs& bottom, const Blobs& top) override {
    gpu_.forward(shape_, use_cudnn(param_.softmax_param().engine(), describe()),
                 bottom[0]->gpu_data(), top[0]->mutable_gpu_data());
  }
  void backward_gpu(const Blobs& top, const std::vector<bool>& propagate_down,
                    const Blobs& bottom) override {
    if (!propagate_down[0]) return;
    gpu_.backward(shape_, use_cudnn(param_.softmax_param().engine(), describe()),
                  top[0]->gpu_data(), top[0]->gpu_diff(), bottom[0]->mutable_gpu_diff());
  }
  GpuSoftmax gpu_;
#endif

 private:
  SoftmaxShape shape_;
  std::vector<float> scratch_;
};

// Loss = -sum over labelled locations of log(max(p[label], FLT_MIN)) / normalizer. Bottoms:
// scores [.., classes (axis), ..] and labels (one per location); an optional second top gets
// the probabilities.
class SoftmaxWithLossLayer : public Layer {
 public:
  using Layer::Layer;
  int exact_bottoms() const override { return 2; }
  int min_tops() const override { return 1; }
  int max_tops() const override { return 2; }
  bool is_loss() const override { return true; }
  bool allow_force_backward(int bottom_index) const override { return bottom_index != 1; }

  void layer_setup(const Blobs& bottom, const Blobs& top) override {
    const LossParameter& loss = param_.loss_param();
    has_ignore_label_ = loss.has_ignore_label();
    ignore_label_ = loss.ignore_label();
    normalization_ = normalization_mode(loss, LossParameter::VALID);
  }

  void reshape(const Blobs& bottom, const Blobs& top) override {
    const Blob& scores = *bottom[0];
    const Blob& labels = *bottom[1];
    LAYER_REQUIRE(
        scores.num_axes() > 0 && labels.num_axes() > 0 && scores.shape(0) == labels.shape(0),
        "scores and labels must have the same first dimension, got scores "
            << scores.shape_string() << " and labels " << labels.shape_string());
    shape_ = softmax_shape(*this, scores, param_.softmax_param().axis());
    LAYER_REQUIRE(shape_.outer * shape_.inner == labels.count(),
                  "needs one label per prediction: scores "
                      << scores.shape_string() << " with the class axis "
                      << param_.softmax_param().axis() << " call for "
                      << shape_.outer * shape_.inner << " labels, got " << labels.count());
    top[0]->reshape(std::vector<int>{});
    if (top.size() > 1) top[1]->reshape_like(scores);
    prob_.reshape_like(scores);
    scratch_.resize(2 * shape_.inner);
  }

 protected:
  void forward_cpu(const Blobs& bottom, const Blobs& top) override {
    softmax_forward(shape_, bottom[0]->cpu_data(), prob_.mutable_cpu_data(), scratch_.data());
    const float* prob = prob_.cpu_data();
    const float* labels = bottom[1]->cpu_data();
    const int64_t plane = shape_.channels * shape_.inner;
    float loss = 0;
    int64_t valid = 0;
    for (int64_t i = 0; i < shape_.outer; ++i) {
      for (int64_t j = 0; j < shape_.inner; ++j) {
        const int64_t index = i * shape_.inner + j;
        const int label = static_cast<int>(labels[index]);
        if (has_ignore_label_ && label == ignore_label_) continue;
        LAYER_REQUIRE(label >= 0 && label < shape_.channels, "label " << label << " of sample "
                                                                      << index << " is outside [0, "
                                                                      << shape_.channels << ")");
        loss -= std::log(std::max(prob[i * plane + label * shape_.inner + j], FLT_MIN));
        ++valid;
      }
    }
    top[0]->mutable_cpu_data()[0] = loss / normalizer(valid);
    if (top.size() > 1) cpu::copy(prob_.count(), prob, top[1]->mutable_cpu_data());
  }

  // d(loss)/d(score) = (p - onehot(label)) * loss_weight / normalizer; zero where ignored.
  void backward_cpu(const Blobs& top, const std::vector<bool>& propagate_down,
                    const Blobs& bottom) override {
    LAYER_REQUIRE(!(propagate_down.size() > 1 && propagate_down[1]),
                  "cannot backpropagate to the labels (bottom 1)");
    if (!propagate_down[0]) return;
    float* diff = bottom[0]->mutable_cpu_diff();
    cpu::copy(prob_.count(), prob_.cpu_data(), diff);
    const float* labels = bottom[1]->cpu_data();
    const int64_t plane = shape_.channels * shape_.inner;
    int64_t valid = 0;
    for (int64_t i = 0; i < shape_.outer; ++i) {
      for (int64_t j = 0; j < shape_.inner; ++j) {
        const int label = static_cast<int>(labels[i * shape_.inner + j]);
        float* location = diff + i * plane + j;
        if (has_ignore_label_ && label == ignore_label_) {
          for (int c = 0; c < shape_.channels; ++c) location[c * shape_.inner] = 0;
        } else {
          location[label * shape_.inner] -= 1;
          ++valid;
        }
      }
    }
    const float loss_weight = top[0]->cpu_diff()[0];
    cpu::scale(prob_.count(), loss_weight / normalizer(valid), diff);
  }

#ifdef ENGINE_USE_CUDA
  // The per-location losses go to prob_'s diff (free until backward overwrites the bottom's);
  // the sums come back as two scalars, and the loss goes to the top on the device.
  void forward_gpu(const Blobs& bottom, const Blobs& top) override {
    const int64_t locations = shape_.outer * shape_.inner;
    gpu_.forward(shape_, use_cudnn(param_.softmax_param().engine(), describe()),
                 bottom[0]->gpu_data(), prob_.mutable_gpu_data());
    valid_gpu_.resize(sizeof(float) * static_cast<size_t>(std::max<int64_t>(locations, 1)));
    float* losses = prob_.mutable_gpu_diff();
    float* valid = static_cast<float*>(valid_gpu_.mutable_device_data());
    gpu::softmax_loss_forward(shape_.outer, shape_.channels, shape_.inner, prob_.gpu_data(),
                              bottom[1]->gpu_data(), has_ignore_label_, ignore_label_, losses,
                              valid);
    const double loss = locations > 0 ? gpu::asum(locations, losses) : 0.0;
    if (std::isnan(loss)) report_bad_label(*bottom[1]);
    valid_count_ = has_ignore_label_ && locations > 0
                       ? static_cast<int64_t>(std::llround(gpu::asum(locations, valid)))
                       : locations;
    gpu::set(1, static_cast<float>(loss / normalizer(valid_count_)), top[0]->mutable_gpu_data());
    if (top.size() > 1) gpu::copy(prob_.count(), prob_.gpu_data(), top[1]->mutable_gpu_data());
  }

  void backward_gpu(const Blobs& top, const std::vector<bool>& propagate_down,
                    const Blobs& bottom) override {
    LAYER_REQUIRE(!(propagate_down.size() > 1 && propagate_down[1]),
                  "cannot backpropagate to the labels (bottom 1)");
    if (!propagate_down[0]) return;
    gpu::softmax_loss_backward(shape_.outer, shape_.channels, shape_.inner, prob_.gpu_data(),
                               bottom[1]->gpu_data(), has_ignore_label_, ignore_label_,
                               top[0]->gpu_diff(), 1.0f / normalizer(valid_count_),
                               bottom[0]->mutable_gpu_diff());
  }

  // A NaN loss: a label out of range (named as on the CPU), else non-finite scores, whose NaN
  // loss stands as it would on the CPU. An error path, so reading the labels here is fine.
  void report_bad_label(const Blob& labels) const {
    const float* values = labels.cpu_data();
    for (int64_t index = 0; index < labels.count(); ++index) {
      const int label = static_cast<int>(values[index]);
      if (has_ignore_label_ && label == ignore_label_) continue;
      LAYER_REQUIRE(label >= 0 && label < shape_.channels,
                    "label " << label << " of sample " << index << " is outside [0, "
                             << shape_.channels << ")");
    }
  }

  GpuSoftmax gpu_;
  SyncedMemory valid_gpu_;   // per location: 1 if labelled, 0 if ignored
  int64_t valid_count_ = 0;  // of the last GPU forward pass, for backward's normalizer
#endif

 private:
  float normalizer(int64_t valid) const {
    return loss_normalizer(normalization_, shape_.outer, shape_.inner, valid);
  }

  SoftmaxShape shape_;
  std::vector<float> scratch_;
  Blob prob_;
  bool has_ignore_label_ = false;
  int ignore_label_ = 0;
  LossParameter::NormalizationMode normalization_ = LossParameter::VALID;
};

// Loss = -sum over labelled locations of sum_k H[label, k] log(max(p_k, 1e-20)) / normalizer,
// p the softmax of the scores along `axis`. H (K x K) comes from bottom 2 when given, else from
// infogain_loss_param.source (a binary BlobProto). With H = I this is SoftmaxWithLoss. An
// optional second top gets the probabilities.
class InfogainLossLayer : public LossLayer {
 public:
  using LossLayer::LossLayer;
  int exact_bottoms() const override { return -1; }
  int min_bottoms() const override { return 2; }
  int max_bottoms() const override { return 3; }
  int exact_tops() const override { return -1; }
  int min_tops() const override { return 1; }
  int max_tops() const override { return 2; }
  bool allow_force_backward(int bottom_index) const override { return bottom_index == 0; }

  void layer_setup(const Blobs& bottom, const Blobs& top) override {
    const LossParameter& loss = param_.loss_param();
    has_ignore_label_ = loss.has_ignore_label();
    ignore_label_ = loss.ignore_label();
    LAYER_REQUIRE(!loss.has_normalize(),
                  "loss_param normalize is deprecated for this layer; use normalization");
    normalization_ = loss.normalization();
    if (bottom.size() < 3) {
      const InfogainLossParameter& p = param_.infogain_loss_param();
      LAYER_REQUIRE(p.has_source(),
                    "needs the infogain matrix H: set infogain_loss_param.source or give a "
                    "third bottom");
      BlobProto proto;
      try {
        read_binary_file(p.source(), &proto);
        infogain_.from_proto(proto);
      } catch (const Error& error) {
        ENGINE_FAIL(describe() << ": cannot load the infogain matrix: " << error.what());
      }
    }
  }

  void reshape(const Blobs& bottom, const Blobs& top) override {
    LossLayer::reshape(bottom, top);
    const Blob& scores = *bottom[0];
    const int axis = param_.infogain_loss_param().axis();
    shape_ = softmax_shape(*this, scores, axis);
    LAYER_REQUIRE(shape_.outer * shape_.inner == bottom[1]->count(),
                  "needs one label per prediction: scores "
                      << scores.shape_string() << " with the class axis " << axis << " call for "
                      << shape_.outer * shape_.inner << " labels, got " << bottom[1]->count());
    const Blob& h = matrix(bottom);
    const int64_t classes = shape_.channels;
    LAYER_REQUIRE(h.count() == classes * classes,
                  "the infogain matrix H must be " << classes << " x " << classes
                                                   << " (one row and column per class), got "
                                                   << h.shape_string());
    if (top.size() > 1) top[1]->reshape_like(scores);
    prob_.reshape_like(scores);
    scratch_.resize(2 * shape_.inner);
    row_sums_.resize(classes);
  }

 protected:
  const Blob& matrix(const Blobs& bottom) const {
    return bottom.size() > 2 ? *bottom[2] : infogain_;
  }

  void forward_cpu(const Blobs& bottom, const Blobs& top) override {
    softmax_forward(shape_, bottom[0]->cpu_data(), prob_.mutable_cpu_data(), scratch_.data());
    const float* prob = prob_.cpu_data();
    const float* labels = bottom[1]->cpu_data();
    const float* h = matrix(bottom).cpu_data();
    const int classes = shape_.channels;
    const int64_t inner = shape_.inner;
    // Caffe accumulates in float the terms it computes in double.
    float loss = 0;
    int64_t valid = 0;
    for (int64_t i = 0; i < shape_.outer; ++i) {
      for (int64_t j = 0; j < inner; ++j) {
        const int64_t index = i * inner + j;
        const int label = static_cast<int>(labels[index]);
        if (has_ignore_label_ && label == ignore_label_) continue;
        LAYER_REQUIRE(label >= 0 && label < classes, "label " << labels[index] << " of sample "
                                                              << index << " is outside [0, "
                                                              << classes << ")");
        const float* p = prob + i * classes * inner + j;
        for (int k = 0; k < classes; ++k) {
          const double log_p = std::log(double(std::max(p[k * inner], kLogThreshold)));
          loss = static_cast<float>(loss - h[label * classes + k] * log_p);
        }
        ++valid;
      }
    }
    top[0]->mutable_cpu_data()[0] = loss / loss_normalizer(normalization_, shape_.outer, inner, valid);
    if (top.size() > 1) cpu::copy(prob_.count(), prob, top[1]->mutable_cpu_data());
  }

  // d(loss)/d(score_k) = (p_k sum_m H[label, m] - H[label, k]) * loss_weight / normalizer.
  void backward_cpu(const Blobs& top, const std::vector<bool>& propagate_down,
                    const Blobs& bottom) override {
    require_no_gradient(propagate_down, 1, "labels");
    require_no_gradient(propagate_down, 2, "infogain matrix");
    if (!propagate_down[0]) return;
    const float* h = matrix(bottom).cpu_data();
    const int classes = shape_.channels;
    const int64_t inner = shape_.inner;
    for (int r = 0; r < classes; ++r) {
      float sum = 0;
      for (int k = 0; k < classes; ++k) sum += h[r * classes + k];
      row_sums_[r] = sum;
    }
    const float* prob = prob_.cpu_data();
    const float* labels = bottom[1]->cpu_data();
    float* diff = bottom[0]->mutable_cpu_diff();
    int64_t valid = 0;
    for (int64_t i = 0; i < shape_.outer; ++i) {
      for (int64_t j = 0; j < inner; ++j) {
        const int label = static_cast<int>(labels[i * inner + j]);
        const int64_t offset = i * classes * inner + j;
        if (has_ignore_label_ && label == ignore_label_) {
          for (int k = 0; k < classes; ++k) diff[offset + k * inner] = 0;
          continue;
        }
        for (int k = 0; k < classes; ++k) {
          diff[offset + k * inner] =
              rounded(prob[offset + k * inner] * row_sums_[label]) - h[label * classes + k];
        }
        ++valid;
      }
    }
    const float scale = loss_weight(top) / loss_normalizer(normalization_, shape_.outer, inner, valid);
    cpu::scale(prob_.count(), scale, diff);
  }

#ifdef ENGINE_USE_CUDA
  void forward_gpu(const Blobs& bottom, const Blobs& top) override {
    gpu_.forward(shape_, use_cudnn(param_.softmax_param().engine(), describe()),
                 bottom[0]->gpu_data(), prob_.mutable_gpu_data());
    scratch_gpu_.resize(2 * sizeof(float));
    infogain_loss_forward_gpu(shape_.outer, shape_.channels, shape_.inner, prob_.gpu_data(),
                              bottom[1]->gpu_data(), matrix(bottom).gpu_data(), has_ignore_label_,
                              ignore_label_, kLogThreshold, by_valid(), fixed_normalizer(),
                              static_cast<float*>(scratch_gpu_.mutable_device_data()),
                              top[0]->mutable_gpu_data());
    if (top.size() > 1) gpu::copy(prob_.count(), prob_.gpu_data(), top[1]->mutable_gpu_data());
  }

  void backward_gpu(const Blobs& top, const std::vector<bool>& propagate_down,
                    const Blobs& bottom) override {
    require_no_gradient(propagate_down, 1, "labels");
    require_no_gradient(propagate_down, 2, "infogain matrix");
    if (!propagate_down[0]) return;
    scratch_gpu_.resize((shape_.channels + 1) * sizeof(float));
    infogain_loss_backward_gpu(shape_.outer, shape_.channels, shape_.inner, prob_.gpu_data(),
                               bottom[1]->gpu_data(), matrix(bottom).gpu_data(), has_ignore_label_,
                               ignore_label_, by_valid(), fixed_normalizer(), top[0]->gpu_diff(),
                               static_cast<float*>(scratch_gpu_.mutable_device_data()),
                               bottom[0]->mutable_gpu_diff());
  }

  // VALID counts the labelled locations, on the device; the other modes are known here.
  bool by_valid() const { return normalization_ == LossParameter::VALID; }
  float fixed_normalizer() const {
    return loss_normalizer(normalization_, shape_.outer, shape_.inner, 0);
  }

  GpuSoftmax gpu_;
  // Forward: the summed loss and the label count; backward: H's row sums and the label count.
  SyncedMemory scratch_gpu_;
#endif

 private:
  SoftmaxShape shape_;
  std::vector<float> scratch_;
  Blob prob_;
  Blob infogain_;
  std::vector<float> row_sums_;
  bool has_ignore_label_ = false;
  int ignore_label_ = 0;
  LossParameter::NormalizationMode normalization_ = LossParameter::VALID;
};

}  // namespace
}  // namespace engine

ENGINE_LAYER_FACTORY(Softmax, SoftmaxLayer)
ENGINE_LAYER_FACTORY(SoftmaxWithLoss, SoftmaxWithLossLayer)
ENGINE_LAYER_FACTORY(InfogainLoss, InfogainLossLayer)
