// Layers that only relabel a blob's shape: Flatten and Reshape. The top aliases the bottom's data
// and gradient, so forward and backward cost nothing.
#include "core/layer.hpp"
#include "core/layer_registry.hpp"

namespace engine {
namespace {

void alias(Blob& top, const Blob& bottom) {
  top.share_data(bottom);
  top.share_diff(bottom);
}

class FlattenLayer : public Layer {
 public:
  using Layer::Layer;
  int exact_bottoms() const override { return 1; }
  int exact_tops() const override { return 1; }

  void reshape(const Blobs& bottom, const Blobs& top) override {
    LAYER_REQUIRE(top[0] != bottom[0], "does not allow in-place computation");
    const Blob& in = *bottom[0];
    const FlattenParameter& p = param_.flatten_param();
    const int start = canonical_axis(in, p.axis(), "axis");
    const int end = canonical_axis(in, p.end_axis(), "end_axis");
    LAYER_REQUIRE(start <= end, "axis " << p.axis() << " comes after end_axis " << p.end_axis()
                                        << " for a bottom of shape " << in.shape_string());
    std::vector<int> shape(in.shape().begin(), in.shape().begin() + start);
    shape.push_back(static_cast<int>(in.count(start, end + 1)));
    shape.insert(shape.end(), in.shape().begin() + end + 1, in.shape().end());
    top[0]->reshape(shape);
    alias(*top[0], in);
  }

 protected:
  void forward_cpu(const Blobs& bottom, const Blobs& top) override {}
};

class ReshapeLayer : public Layer {
 public:
  using Layer::Layer;
  int exact_bottoms() const override { return 1; }
  int exact_tops() const override { return 1; }

  void layer_setup(const Blobs& bottom, const Blobs& top) override {
    const BlobShape& shape = param_.reshape_param().shape();
    inferred_axis_ = -1;
    copied_axes_.clear();
    constant_count_ = 1;
    for (int i = 0; i < shape.dim_size(); ++i) {
      const int64_t dim = shape.dim(i);
      LAYER_REQUIRE(dim >= -1, "reshape_param shape dimension " << i << " is " << dim
                                   << "; use a positive size, 0 to copy or -1 to infer");
      if (dim == 0) {
        copied_axes_.push_back(i);
      } else if (dim == -1) {
        LAYER_REQUIRE(inferred_axis_ < 0,
                      "reshape_param shape may contain at most one -1, found two (dimensions "
                          << inferred_axis_ << " and " << i << ")");
        inferred_axis_ = i;
      } else {
        constant_count_ *= dim;
      }
    }
  }

  void reshape(const Blobs& bottom, const Blobs& top) override {
    LAYER_REQUIRE(top[0] != bottom[0], "does not allow in-place computation");
    const Blob& in = *bottom[0];
    const ReshapeParameter& p = param_.reshape_param();
    const BlobShape& wanted = p.shape();
    const int axes = in.num_axes();
    // axis counts from the end like a gap between axes: -1 means after the last one.
    const int start = p.axis() >= 0 ? p.axis() : axes + p.axis() + 1;
    LAYER_REQUIRE(start >= 0 && start <= axes,
                  "axis " << p.axis() << " is out of range for bottom " << in.shape_string());
    LAYER_REQUIRE(p.num_axes() >= -1,
                  "num_axes must be -1 (to the end) or non-negative, got " << p.num_axes());
    const int end = p.num_axes() == -1 ? axes : start + p.num_axes();
    LAYER_REQUIRE(end <= axes, "axis " << p.axis() << " + num_axes " << p.num_axes()
                                       << " reaches past the end of bottom "
                                       << in.shape_string());

    std::vector<int> shape(in.shape().begin(), in.shape().begin() + start);
    for (int64_t dim : wanted.dim()) shape.push_back(static_cast<int>(dim));
    shape.insert(shape.end(), in.shape().begin() + end, in.shape().end());
    for (int i : copied_axes_) {
      LAYER_REQUIRE(start + i < axes, "reshape_param shape has 0 at dimension "
                                          << i << " but bottom " << in.shape_string()
                                          << " has no axis " << start + i << " to copy");
      shape[start + i] = in.shape(start + i);
    }
    if (inferred_axis_ >= 0) {
      int64_t known = constant_count_ * in.count(0, start) * in.count(end);
      for (int i : copied_axes_) known *= shape[start + i];
      LAYER_REQUIRE(known > 0 && in.count() % known == 0,
                    "cannot infer the -1 dimension of " << describe_wanted(wanted)
                        << ": bottom " << in.shape_string() << " does not divide into parts of "
                        << known);
      shape[start + inferred_axis_] = static_cast<int>(in.count() / known);
    }
    int64_t count = 1;
    for (int dim : shape) count *= dim;
    LAYER_REQUIRE(count == in.count(), "cannot reshape bottom " << in.shape_string() << " to "
                                                                << engine::shape_string(shape)
                                                                << " (" << count << ")");
    top[0]->reshape(shape);
    alias(*top[0], in);
  }

 protected:
  void forward_cpu(const Blobs& bottom, const Blobs& top) override {}

 private:
  static std::string describe_wanted(const BlobShape& wanted) {
    std::vector<int> dims(wanted.dim().begin(), wanted.dim().end());
    return "shape " + engine::shape_string(dims);
  }

  int inferred_axis_ = -1;
  std::vector<int> copied_axes_;
  int64_t constant_count_ = 1;
};

}  // namespace
}  // namespace engine

ENGINE_LAYER_FACTORY(Flatten, FlattenLayer)
ENGINE_LAYER_FACTORY(Reshape, ReshapeLayer)
