// Blob: an N-D float32 array with data and gradient ("diff"), each a SyncedMemory.
//
// Shapes are vectors of non-negative dimensions; axis indices may be negative (counted from the
// end). Reshaping never shrinks the allocation, so a net whose batch varies does not reallocate.
// Blobs are owned by a Net (activations) or a Layer (parameters, through shared_ptr so that
// parameters can be shared between layers). Not thread-safe.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/synced_memory.hpp"
#include "engine.pb.h"

namespace engine {

class Blob {
 public:
  Blob() : data_(std::make_shared<SyncedMemory>()), diff_(std::make_shared<SyncedMemory>()) {}
  explicit Blob(const std::vector<int>& shape) : Blob() { reshape(shape); }

  void reshape(const std::vector<int>& shape);
  void reshape(const BlobShape& shape);
  void reshape_like(const Blob& other) { reshape(other.shape()); }

  const std::vector<int>& shape() const { return shape_; }
  int shape(int axis) const { return shape_[canonical_axis(axis)]; }
  int num_axes() const { return static_cast<int>(shape_.size()); }
  int64_t count() const { return count_; }
  // Product of the dimensions in [start, end).
  int64_t count(int start, int end) const;
  int64_t count(int start) const { return count(start, num_axes()); }
  // Maps an axis in [-num_axes, num_axes) to [0, num_axes); throws for anything else.
  int canonical_axis(int axis) const;
  std::string shape_string() const;

  // Caffe's 4-D accessors; a missing axis reads as 1.
  int num() const { return legacy_shape(0); }
  int channels() const { return legacy_shape(1); }
  int height() const { return legacy_shape(2); }
  int width() const { return legacy_shape(3); }

  const float* cpu_data() const { return static_cast<const float*>(data_->host_data()); }
  const float* cpu_diff() const { return static_cast<const float*>(diff_->host_data()); }
  float* mutable_cpu_data() { return static_cast<float*>(data_->mutable_host_data()); }
  float* mutable_cpu_diff() { return static_cast<float*>(diff_->mutable_host_data()); }
  const float* gpu_data() const { return static_cast<const float*>(data_->device_data()); }
  const float* gpu_diff() const { return static_cast<const float*>(diff_->device_data()); }
  float* mutable_gpu_data() { return static_cast<float*>(data_->mutable_device_data()); }
  float* mutable_gpu_diff() { return static_cast<float*>(diff_->mutable_device_data()); }
  // The data or diff on the side the current Context mode computes on.
  const float* data() const;
  const float* diff() const;
  float* mutable_data();
  float* mutable_diff();

  // Makes this blob use other's memory (its shape must hold the same count).
  void share_data(const Blob& other);
  void share_diff(const Blob& other);
  const std::shared_ptr<SyncedMemory>& data_memory() const { return data_; }
  const std::shared_ptr<SyncedMemory>& diff_memory() const { return diff_; }

  // Loads from a BlobProto (shape or the legacy num/channels/height/width; data or double_data).
  // With reshape false the shapes must agree (shape_equals).
  void from_proto(const BlobProto& proto, bool reshape = true);
  void to_proto(BlobProto* proto, bool write_diff = false) const;
  // Whether the proto's shape is this blob's. Legacy 4-D shapes match Caffe's way, from the
  // end: 1 x 1 x N x K matches N x K, 1 x 1 x 1 x N matches N.
  bool shape_equals(const BlobProto& proto) const;

  void set_data(float value);
  void set_diff(float value);
  // The diff set to zero lazily (SyncedMemory::set_zero): what a net's parameter gradients get
  // before each pass.
  void clear_diff() { diff_->set_zero(); }
  // Where a gradient is summed into the diff: the diff itself, or, where it holds zeros not yet
  // written, the same memory to be overwritten (*overwrite set), skipping both the zeros and
  // reading them back.
  float* mutable_cpu_diff_to_sum(bool* overwrite) {
    *overwrite = diff_->zero_pending();
    return static_cast<float*>(*overwrite ? diff_->host_data_to_overwrite()
                                          : diff_->mutable_host_data());
  }
  // data -= diff, on the side where the data is newest.
  void update();
  double sum_of_squares_data() const;
  double sum_of_squares_diff() const;

 private:
  int legacy_shape(int axis) const;

  std::vector<int> shape_;
  int64_t count_ = 0;
  std::shared_ptr<SyncedMemory> data_;
  std::shared_ptr<SyncedMemory> diff_;
};

// The shape of a BlobProto, from `shape` or from the legacy num/channels/height/width.
std::vector<int> proto_shape(const BlobProto& proto);
std::string shape_string(const std::vector<int>& shape);

}  // namespace engine
