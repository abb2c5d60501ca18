// compute_image_mean: the mean image of an LMDB of Datum records, as Caffe's tool.
//   compute_image_mean [FLAGS] INPUT_DB [OUTPUT_FILE]
// The output is a BlobProto as Caffe writes it (legacy num = 1, channels, height, width, and
// data in channel x height x width order), so Caffe reads our mean files and we read Caffe's.
// Records may be raw, encoded (decoded in their native channel count) or float_data; all must
// have one size. The per-channel means are printed as Caffe prints them.
//
// Ours besides: the eigen-decomposition of the C x C covariance of pixel colours (each pixel
// of each image one sample, in the records' units: 0..255 for 8-bit) in color_eigenvalues
// (descending; variances, pixel units squared) and color_eigenvectors (row i: the unit
// eigenvector of value i), for the AlexNet paper's lighting noise.
#include <cstdint>
#include <cstdio>
#include <string>
#include <utility>
#include <vector>

#include <gflags/gflags.h>
#include <glog/logging.h>

#include "core/errors.hpp"
#include "core/ordered_parallel_map.hpp"
#include "data/datum.hpp"
#include "data/db.hpp"
#include "engine.pb.h"
#include "io/progress.hpp"
#include "io/prototxt.hpp"
#include "math/symmetric_eigen.hpp"
#include "tool_main.hpp"

DEFINE_string(backend, "lmdb", "The backend containing the images (lmdb only)");
DEFINE_int32(threads, 0, "Threads parsing and decoding records (ours); 0: one per core");

namespace engine {
namespace {

struct Record {
  std::string key, value;
};

// A record's values in channel x height x width order: bytes, or floats for float_data.
struct Pixels {
  std::string key;
  int channels = 0, height = 0, width = 0;
  std::string bytes;
  std::vector<float> floats;
};

Pixels parse(Record&& record) {
  Pixels pixels;
  pixels.key = std::move(record.key);
  Datum datum;
  ENGINE_REQUIRE(datum.ParseFromString(record.value),
                 "record '" << pixels.key << "' is not a Datum");
  try {
    if (datum.encoded()) {
      Datum decoded;
      image_to_datum(datum_to_image(datum), datum.label(), &decoded);
      datum.Swap(&decoded);
    }
    pixels.channels = datum.channels();
    pixels.height = datum.height();
    pixels.width = datum.width();
    const size_t size = size_t(pixels.channels) * pixels.height * pixels.width;
    ENGINE_REQUIRE(pixels.channels > 0 && pixels.height > 0 && pixels.width > 0,
                   "it has no pixels (channels " << pixels.channels << ", height "
                                                 << pixels.height << ", width " << pixels.width
                                                 << ")");
    if (!datum.data().empty()) {
      ENGINE_REQUIRE(datum.data().size() == size,
                     "it holds " << datum.data().size() << " bytes, but its shape needs " << size);
      pixels.bytes = std::move(*datum.mutable_data());
    } else {
      ENGINE_REQUIRE(size_t(datum.float_data_size()) == size,
                     "it holds " << datum.float_data_size() << " float values, but its shape needs "
                                 << size);
      pixels.floats.assign(datum.float_data().begin(), datum.float_data().end());
    }
  } catch (const Error& error) {
    ENGINE_FAIL("record '" << pixels.key << "': " << error.what());
  }
  return pixels;
}

// Sums over every pixel of every image: the per-position totals for the mean image, and the
// per-channel first and second moments for the colour covariance. 8-bit records add into
// integers (exact however many images); float records into doubles.
class Accumulator {
 public:
  void add(const Pixels& p) {
    if (images_ == 0) {
      first_ = p;
      first_.bytes.clear();
      first_.floats.clear();
      channels_ = p.channels;
      plane_ = size_t(p.height) * p.width;
      sum_.assign(channels_ * plane_, 0.0);
      moment1_int_.assign(channels_, 0);
      moment2_int_.assign(channels_ * channels_, 0);
      moment1_float_.assign(channels_, 0.0);
      moment2_float_.assign(channels_ * channels_, 0.0);
    }
    ENGINE_REQUIRE(p.channels == first_.channels && p.height == first_.height &&
                       p.width == first_.width,
                   "record '" << p.key << "' is " << shape(p) << " but the first record ('"
                              << first_.key << "') is " << shape(first_)
                              << "; the mean needs one size");
    ++images_;
    if (!p.bytes.empty()) {
      add_bytes(reinterpret_cast<const uint8_t*>(p.bytes.data()));
    } else {
      add_floats(p.floats.data());
    }
  }

  size_t images() const { return images_; }
  const Pixels& first() const { return first_; }

  BlobProto result() const {
    BlobProto blob;
    blob.set_num(1);
    blob.set_channels(first_.channels);
    blob.set_height(first_.height);
    blob.set_width(first_.width);
    for (double total : sum_) blob.add_data(static_cast<float>(total / images_));

    const double samples = double(images_) * plane_;
    std::vector<double> mean(channels_), covariance(channels_ * channels_);
    for (size_t c = 0; c < channels_; ++c) {
      mean[c] = (double(moment1_int_[c]) + moment1_float_[c]) / samples;
    }
    for (size_t c = 0; c < channels_; ++c) {
      for (size_t d = 0; d < channels_; ++d) {
        const size_t i = c * channels_ + d;
        covariance[i] =
            (double(moment2_int_[i]) + moment2_float_[i]) / samples - mean[c] * mean[d];
      }
    }
    const SymmetricEigen eigen = symmetric_eigen(static_cast<int>(channels_), covariance);
    for (double value : eigen.values) blob.add_color_eigenvalues(static_cast<float>(value));
    for (double value : eigen.vectors) blob.add_color_eigenvectors(static_cast<float>(value));
    return blob;
  }

 private:
  static std::string shape(const Pixels& p) {
    return std::to_string(p.channels) + " x " + std::to_string(p.height) + " x " +
           std::to_string(p.width);
  }

  void add_bytes(const uint8_t* data) {
    for (size_t i = 0; i < sum_.size(); ++i) sum_[i] += data[i];
    // A 32-bit partial sum of products of bytes holds 66051 pixels without overflow.
    constexpr size_t kBlock = 65536;
    for (size_t c = 0; c < channels_; ++c) {
      const uint8_t* a = data + c * plane_;
      uint64_t first = 0;
      for (size_t i = 0; i < plane_; ++i) first += a[i];
      moment1_int_[c] += first;
      for (size_t d = c; d < channels_; ++d) {
        const uint8_t* b = data + d * plane_;
        uint64_t second = 0;
        for (size_t start = 0; start < plane_; start += kBlock) {
          const size_t end = std::min(plane_, start + kBlock);
          uint32_t partial = 0;
          for (size_t i = start; i < end; ++i) partial += uint32_t(a[i]) * b[i];
          second += partial;
        }
        moment2_int_[c * channels_ + d] += second;
        if (d != c) moment2_int_[d * channels_ + c] += second;
      }
    }
  }

  void add_floats(const float* data) {
    for (size_t i = 0; i < sum_.size(); ++i) sum_[i] += data[i];
    for (size_t c = 0; c < channels_; ++c) {
      const float* a = data + c * plane_;
      double first = 0;
      for (size_t i = 0; i < plane_; ++i) first += a[i];
      moment1_float_[c] += first;
      for (size_t d = c; d < channels_; ++d) {
        const float* b = data + d * plane_;
        double second = 0;
        for (size_t i = 0; i < plane_; ++i) second += double(a[i]) * b[i];
        moment2_float_[c * channels_ + d] += second;
        if (d != c) moment2_float_[d * channels_ + c] += second;
      }
    }
  }

  Pixels first_;
  size_t images_ = 0, channels_ = 0, plane_ = 0;
  std::vector<double> sum_;
  std::vector<uint64_t> moment1_int_, moment2_int_;
  std::vector<double> moment1_float_, moment2_float_;
};

int compute(const std::string& db_path, const std::string& output_path) {
  ENGINE_REQUIRE(FLAGS_backend == "lmdb",
                 (FLAGS_backend == "leveldb"
                      ? "--backend=leveldb is not supported: this build reads LMDB only"
                      : "unknown --backend '" + FLAGS_backend + "' (lmdb is the one supported)"));
  DbReader db(db_path);
  ENGINE_REQUIRE(db.entries() > 0, db_path << ": the database is empty");
  Progress progress(db.entries(), 10000);
  Accumulator accumulator;
  auto next = [&](Record* record) {
    if (!db.valid()) return false;
    record->key.assign(db.key());
    record->value.assign(db.value());
    db.next();
    return true;
  };
  auto consume = [&](Pixels&& pixels) {
    accumulator.add(pixels);
    progress.advance();
  };
  ordered_parallel_map<Record, Pixels>(FLAGS_threads, 32, next, parse, consume);
  progress.finish();

  const BlobProto mean = accumulator.result();
  if (!output_path.empty()) {
    std::fprintf(stderr, "Write to %s\n", output_path.c_str());
    write_binary_file(mean, output_path);
  }
  const int channels = mean.channels();
  const size_t plane = size_t(mean.height()) * mean.width();
  std::fprintf(stderr, "Number of channels: %d\n", channels);
  for (int c = 0; c < channels; ++c) {
    double total = 0;
    for (size_t i = 0; i < plane; ++i) total += mean.data(c * plane + i);
    std::fprintf(stderr, "mean_value channel [%d]:%g\n", c, total / plane);
  }
  for (int c = 0; c < channels; ++c) {
    std::string vector;
    for (int k = 0; k < channels; ++k) {
      char text[32];
      std::snprintf(text, sizeof text, "%s%.4f", k ? ", " : "",
                    mean.color_eigenvectors(c * channels + k));
      vector += text;
    }
    std::fprintf(stderr, "colour eigenvalue [%d]: %g  eigenvector (%s)\n", c,
                 mean.color_eigenvalues(c), vector.c_str());
  }
  return 0;
}

}  // namespace
}  // namespace engine

int main(int argc, char** argv) {
  return engine::tool_main(
      argc, argv, "compute_image_mean",
      "Compute the mean_image of a set of images given by an lmdb, and (ours) the eigen-\n"
      "decomposition of their pixel colour covariance.\n"
      "Usage:\n"
      "    compute_image_mean [FLAGS] INPUT_DB [OUTPUT_FILE]",
      1, 2, "INPUT_DB [OUTPUT_FILE]",
      [](char** args, int count) { return engine::compute(args[0], count == 2 ? args[1] : ""); });
}
