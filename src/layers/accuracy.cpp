// Accuracy: the fraction of labelled locations whose true class is among the top_k scores, and
// optionally (second top) that fraction per class. A metric, not a loss: it has no backward.
//
// Ranking, as BVLC Caffe's master branch does it (and ../shared/DESIGN.md records): a sample is
// correct when fewer than top_k other classes score at least as high as the true class, so
// every tie counts against it. (The 1.0 release sorted instead, breaking ties by class index.)
//
// On the GPU (accuracy.cu) the accuracies are computed and written on the device.
#include <cstdint>
#include <vector>

#include "core/layer.hpp"
#include "core/layer_registry.hpp"
#include "core/synced_memory.hpp"

namespace engine {

#ifdef ENGINE_USE_CUDA
// accuracy.cu. scratch: 2 * outer * inner + 2 + 2 * classes floats. class_accuracy (classes
// floats) may be null. A label out of range gives a NaN accuracy (the CPU throws).
void accuracy_forward_gpu(int64_t outer, int classes, int64_t inner, const float* scores,
                          const float* labels, int64_t top_k, bool has_ignore_label,
                          int ignore_label, float* scratch, float* accuracy,
                          float* class_accuracy);
#endif

namespace {

class AccuracyLayer : public Layer {
 public:
  using Layer::Layer;
  int exact_bottoms() const override { return 2; }
  int min_tops() const override { return 1; }
  int max_tops() const override { return 2; }
  bool allow_force_backward(int bottom_index) const override { return false; }

  void layer_setup(const Blobs& bottom, const Blobs& top) override {
    const AccuracyParameter& p = param_.accuracy_param();
    top_k_ = static_cast<int64_t>(p.top_k());
    LAYER_REQUIRE(top_k_ >= 1, "top_k must be at least 1, got " << top_k_);
    has_ignore_label_ = p.has_ignore_label();
    ignore_label_ = p.ignore_label();
  }

  void reshape(const Blobs& bottom, const Blobs& top) override {
    const Blob& scores = *bottom[0];
    const Blob& labels = *bottom[1];
    const int axis = param_.accuracy_param().axis();
    LAYER_REQUIRE(axis >= -scores.num_axes() && axis < scores.num_axes(),
                  "axis " << axis << " is out of range for bottom shape " << scores.shape_string());
    const int label_axis = scores.canonical_axis(axis);
    outer_ = scores.count(0, label_axis);
    classes_ = scores.shape(label_axis);
    inner_ = scores.count(label_axis + 1);
    LAYER_REQUIRE(outer_ * inner_ == labels.count(),
                  "needs one label per prediction: scores "
                      << scores.shape_string() << " with the class axis " << axis << " call for "
                      << outer_ * inner_ << " labels, got " << labels.count());
    LAYER_REQUIRE(top_k_ <= classes_, "top_k (" << top_k_
                                                << ") must not exceed the number of classes ("
                                                << classes_ << ")");
    top[0]->reshape(std::vector<int>{});
    if (top.size() > 1) top[1]->reshape(std::vector<int>{classes_});
  }

 protected:
  void forward_cpu(const Blobs& bottom, const Blobs& top) override {
    const float* scores = bottom[0]->cpu_data();
    const float* labels = bottom[1]->cpu_data();
    const bool per_class = top.size() > 1;
    std::vector<int64_t> class_total(per_class ? classes_ : 0, 0);
    std::vector<int64_t> class_correct(per_class ? classes_ : 0, 0);
    int64_t total = 0, correct = 0;
    const int64_t plane = int64_t(classes_) * inner_;
    for (int64_t i = 0; i < outer_; ++i) {
      for (int64_t j = 0; j < inner_; ++j) {
        const int64_t index = i * inner_ + j;
        const int label = static_cast<int>(labels[index]);
        if (has_ignore_label_ && label == ignore_label_) continue;
        LAYER_REQUIRE(label >= 0 && label < classes_, "label " << label << " of sample " << index
                                                               << " is outside [0, " << classes_
                                                               << ")");
        const float* location = scores + i * plane + j;
        const float true_score = location[int64_t(label) * inner_];
        int64_t ranked_above = 0;
        for (int c = 0; c < classes_ && ranked_above < top_k_; ++c) {
          const float score = location[int64_t(c) * inner_];
          ranked_above += c != label && score >= true_score;
        }
        const bool hit = ranked_above < top_k_;
        correct += hit;
        ++total;
        if (per_class) {
          ++class_total[label];
          class_correct[label] += hit;
        }
      }
    }
    // With every label ignored there is nothing to score: 0 rather than Caffe 1.0's 0/0.
    top[0]->mutable_cpu_data()[0] = total == 0 ? 0.0f : float(correct) / float(total);
    if (per_class) {
      float* accuracy = top[1]->mutable_cpu_data();
      for (int c = 0; c < classes_; ++c) {
        accuracy[c] = class_total[c] == 0 ? 0.0f : float(class_correct[c]) / float(class_total[c]);
      }
    }
  }

#ifdef ENGINE_USE_CUDA
  void forward_gpu(const Blobs& bottom, const Blobs& top) override {
    const int64_t floats = 2 * (outer_ * inner_) + 2 + 2 * int64_t(classes_);
    scratch_gpu_.resize(sizeof(float) * static_cast<size_t>(floats));
    accuracy_forward_gpu(outer_, classes_, inner_, bottom[0]->gpu_data(), bottom[1]->gpu_data(),
                         top_k_, has_ignore_label_, ignore_label_,
                         static_cast<float*>(scratch_gpu_.mutable_device_data()),
                         top[0]->mutable_gpu_data(),
                         top.size() > 1 ? top[1]->mutable_gpu_data() : nullptr);
  }

  // Per location: hit, counted; then their sums, overall and per class.
  SyncedMemory scratch_gpu_;
#endif

 private:
  int64_t top_k_ = 1;
  bool has_ignore_label_ = false;
  int ignore_label_ = 0;
  int64_t outer_ = 0, inner_ = 0;
  int classes_ = 0;
};

}  // namespace
}  // namespace engine

ENGINE_LAYER_FACTORY(Accuracy, AccuracyLayer)
