#include "core/blob.hpp"

#include <climits>
#include <sstream>

#include "core/context.hpp"
#include "core/errors.hpp"
#include "math/blas.hpp"

namespace engine {

std::string shape_string(const std::vector<int>& shape) {
  std::ostringstream out;
  for (size_t i = 0; i < shape.size(); ++i) out << (i ? " x " : "") << shape[i];
  if (shape.empty()) out << "(scalar)";
  return out.str();
}

std::vector<int> proto_shape(const BlobProto& proto) {
  if (proto.has_shape()) {
    std::vector<int> shape;
    for (int64_t dim : proto.shape().dim()) {
      ENGINE_REQUIRE(dim >= 0 && dim <= INT_MAX, "blob dimension " << dim << " is out of range");
      shape.push_back(static_cast<int>(dim));
    }
    return shape;
  }
  // Legacy 4-D form: every field defaults to 0 in the file, but a present blob means 1.
  auto legacy = [](bool has, int value) { return has ? value : 1; };
  return {legacy(proto.has_num(), proto.num()), legacy(proto.has_channels(), proto.channels()),
          legacy(proto.has_height(), proto.height()), legacy(proto.has_width(), proto.width())};
}

void Blob::reshape(const std::vector<int>& shape) {
  int64_t count = 1;
  for (int dim : shape) {
    ENGINE_REQUIRE(dim >= 0, "negative blob dimension in shape " << engine::shape_string(shape));
    count *= dim;
    // As Caffe: kernels, BLAS and CUDA index a blob with 32-bit integers.
    ENGINE_REQUIRE(count <= INT_MAX, "blob shape " << engine::shape_string(shape)
                                                   << " holds more than 2^31 - 1 values, the "
                                                      "most a blob can hold");
  }
  shape_ = shape;
  count_ = count;
  const size_t bytes = sizeof(float) * count;
  // Growing takes fresh memory (leaving any sharing); shrinking keeps the allocation.
  if (bytes > data_->capacity()) data_ = std::make_shared<SyncedMemory>(bytes);
  if (bytes > diff_->capacity()) diff_ = std::make_shared<SyncedMemory>(bytes);
  data_->resize(bytes);
  diff_->resize(bytes);
}

void Blob::reshape(const BlobShape& shape) {
  std::vector<int> dims;
  for (int64_t dim : shape.dim()) {
    ENGINE_REQUIRE(dim >= 0 && dim <= INT_MAX, "blob dimension " << dim << " is out of range");
    dims.push_back(static_cast<int>(dim));
  }
  reshape(dims);
}

int64_t Blob::count(int start, int end) const {
  CHECK_LE(0, start);
  CHECK_LE(start, end);
  CHECK_LE(end, num_axes());
  int64_t product = 1;
  for (int i = start; i < end; ++i) product *= shape_[i];
  return product;
}

int Blob::canonical_axis(int axis) const {
  ENGINE_REQUIRE(axis >= -num_axes() && axis < num_axes(),
                 "axis " << axis << " is out of range for a blob of shape " << shape_string());
  return axis < 0 ? axis + num_axes() : axis;
}

std::string Blob::shape_string() const {
  return engine::shape_string(shape_) + " (" + std::to_string(count_) + ")";
}

int Blob::legacy_shape(int axis) const {
  CHECK_LE(num_axes(), 4) << "num/channels/height/width need a blob of at most 4 axes";
  return axis < num_axes() ? shape_[axis] : 1;
}

const float* Blob::data() const { return Context::mode() == Mode::GPU ? gpu_data() : cpu_data(); }
const float* Blob::diff() const { return Context::mode() == Mode::GPU ? gpu_diff() : cpu_diff(); }
float* Blob::mutable_data() {
  return Context::mode() == Mode::GPU ? mutable_gpu_data() : mutable_cpu_data();
}
float* Blob::mutable_diff() {
  return Context::mode() == Mode::GPU ? mutable_gpu_diff() : mutable_cpu_diff();
}

void Blob::share_data(const Blob& other) {
  CHECK_EQ(count_, other.count_);
  data_ = other.data_;
}

void Blob::share_diff(const Blob& other) {
  CHECK_EQ(count_, other.count_);
  diff_ = other.diff_;
}

bool Blob::shape_equals(const BlobProto& proto) const {
  const std::vector<int> shape = proto_shape(proto);
  if (proto.has_shape()) return shape == shape_;
  // Caffe indexes legacy num/channels/height/width from the end of the blob's shape, padding
  // the front with ones: an InnerProduct weight stored as 1 x 1 x N x K is the N x K blob, a
  // bias 1 x 1 x 1 x N the blob of N.
  if (num_axes() > 4) return false;
  for (int i = 0; i < 4; ++i) {
    const int axis = num_axes() - 4 + i;
    if (shape[i] != (axis >= 0 ? shape_[axis] : 1)) return false;
  }
  return true;
}

void Blob::from_proto(const BlobProto& proto, bool reshape_to_proto) {
  if (reshape_to_proto) {
    reshape(proto_shape(proto));
  } else {
    ENGINE_REQUIRE(shape_equals(proto), "blob shape mismatch: expected "
                                            << shape_string() << ", file has "
                                            << engine::shape_string(proto_shape(proto)));
  }
  auto load = [this](const auto& values, float* out, const char* what) {
    ENGINE_REQUIRE(values.size() == count_, "blob " << what << " holds " << values.size()
                                                    << " values, shape " << shape_string()
                                                    << " needs " << count_);
    for (int64_t i = 0; i < count_; ++i) out[i] = static_cast<float>(values[i]);
  };
  if (proto.double_data_size() > 0) {
    load(proto.double_data(), mutable_cpu_data(), "double_data");
  } else {
    load(proto.data(), mutable_cpu_data(), "data");
  }
  if (proto.double_diff_size() > 0) {
    load(proto.double_diff(), mutable_cpu_diff(), "double_diff");
  } else if (proto.diff_size() > 0) {
    load(proto.diff(), mutable_cpu_diff(), "diff");
  }
}

void Blob::to_proto(BlobProto* proto, bool write_diff) const {
  proto->Clear();
  // Present even when empty, so that a 0-d blob does not read back as a legacy 1 x 1 x 1 x 1.
  BlobShape* shape = proto->mutable_shape();
  for (int dim : shape_) shape->add_dim(dim);
  const float* data = cpu_data();
  proto->mutable_data()->Reserve(count_);
  proto->mutable_data()->Add(data, data + count_);
  if (write_diff) {
    const float* diff = cpu_diff();
    proto->mutable_diff()->Add(diff, diff + count_);
  }
}

void Blob::set_data(float value) { math::set(count_, value, mutable_data()); }

void Blob::set_diff(float value) { math::set(count_, value, mutable_diff()); }

void Blob::update() {
  switch (data_->head()) {
    case SyncedMemory::Head::AT_DEVICE:
    case SyncedMemory::Head::SYNCED:
#ifdef ENGINE_USE_CUDA
      if (Context::mode() == Mode::GPU) {
        gpu::axpy(count_, -1.0f, gpu_diff(), mutable_gpu_data());
        return;
      }
#endif
      [[fallthrough]];
    case SyncedMemory::Head::AT_HOST:
      cpu::axpy(count_, -1.0f, cpu_diff(), mutable_cpu_data());
      return;
    case SyncedMemory::Head::UNINITIALIZED:
      return;
  }
}

double Blob::sum_of_squares_data() const { return math::dot(count_, data(), data()); }

double Blob::sum_of_squares_diff() const { return math::dot(count_, diff(), diff()); }

}  // namespace engine
