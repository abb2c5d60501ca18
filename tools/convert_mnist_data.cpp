// convert_mnist_data: MNIST's idx files to an LMDB of Datum records, as Caffe's example tool.
//   convert_mnist_data [FLAGS] IMAGES LABELS DB_NAME
// IMAGES and LABELS may be gzipped (as downloaded) or not: the gzip magic bytes decide. Each
// record is a raw 1 x rows x cols Datum with the label; keys are the item's index, "%08d".
// Bad usage or a bad file (wrong magic number, counts that disagree, a truncated file): one
// line on stderr naming the file, exit 1.
#include <zlib.h>

#include <cstdint>
#include <cstdio>
#include <memory>
#include <string>

#include <gflags/gflags.h>
#include <glog/logging.h>

#include "core/errors.hpp"
#include "data/db.hpp"
#include "engine.pb.h"
#include "io/progress.hpp"
#include "tool_main.hpp"

DEFINE_string(backend, "lmdb", "The backend for storing the result (lmdb only)");

namespace engine {
namespace {

constexpr uint32_t kImageMagic = 2051;  // idx: unsigned bytes, 3 dimensions
constexpr uint32_t kLabelMagic = 2049;  // idx: unsigned bytes, 1 dimension

// An idx file, read through zlib, which passes files without the gzip magic through as they are.
class IdxFile {
 public:
  explicit IdxFile(const std::string& path) : path_(path), file_(gzopen(path.c_str(), "rb")) {
    ENGINE_REQUIRE(file_ != nullptr, path << ": cannot open the file");
    gzbuffer(file_, 1 << 17);
  }
  ~IdxFile() { gzclose(file_); }
  IdxFile(const IdxFile&) = delete;
  IdxFile& operator=(const IdxFile&) = delete;

  void read(void* buffer, size_t size, const std::string& what) {
    const int got = gzread(file_, buffer, static_cast<unsigned>(size));
    if (got < 0) {
      int code = 0;
      const char* message = gzerror(file_, &code);
      ENGINE_FAIL(path_ << ": cannot read " << what << ": " << message);
    }
    ENGINE_REQUIRE(size_t(got) == size, path_ << ": truncated: the file ends in " << what
                                              << " (" << got << " of " << size << " bytes)");
  }

  // The idx header's big-endian 32-bit integers.
  uint32_t read_u32(const std::string& what) {
    unsigned char bytes[4];
    read(bytes, 4, what);
    return uint32_t(bytes[0]) << 24 | uint32_t(bytes[1]) << 16 | uint32_t(bytes[2]) << 8 |
           uint32_t(bytes[3]);
  }

  const std::string& path() const { return path_; }

 private:
  std::string path_;
  gzFile file_;
};

void check_magic(IdxFile& file, uint32_t expected, const char* kind) {
  const uint32_t magic = file.read_u32("the header");
  ENGINE_REQUIRE(magic == expected, file.path() << ": not an MNIST " << kind
                                                << " file: magic number " << magic
                                                << ", expected " << expected);
}

int convert(const std::string& images_path, const std::string& labels_path,
            const std::string& db_path) {
  ENGINE_REQUIRE(FLAGS_backend == "lmdb",
                 (FLAGS_backend == "leveldb"
                      ? "--backend=leveldb is not supported: this build writes LMDB only"
                      : "unknown --backend '" + FLAGS_backend + "' (lmdb is the one supported)"));
  IdxFile images(images_path), labels(labels_path);
  check_magic(images, kImageMagic, "image");
  check_magic(labels, kLabelMagic, "label");
  const uint32_t image_count = images.read_u32("the header");
  const uint32_t label_count = labels.read_u32("the header");
  ENGINE_REQUIRE(image_count == label_count,
                 images_path << " holds " << image_count << " images but " << labels_path
                             << " holds " << label_count << " labels; they must agree");
  const uint32_t rows = images.read_u32("the header"), cols = images.read_u32("the header");
  ENGINE_REQUIRE(rows > 0 && cols > 0 && uint64_t(rows) * cols <= (1u << 30),
                 images_path << ": implausible image size " << rows << " x " << cols);
  std::fprintf(stderr, "A total of %u items.\nRows: %u Cols: %u\n", image_count, rows, cols);

  DbWriter db(db_path);
  Progress progress(image_count);
  Datum datum;
  datum.set_channels(1);
  datum.set_height(static_cast<int>(rows));
  datum.set_width(static_cast<int>(cols));
  std::string* pixels = datum.mutable_data();
  pixels->resize(size_t(rows) * cols);
  std::string value;
  for (uint32_t item = 0; item < image_count; ++item) {
    images.read(pixels->data(), pixels->size(), "image " + std::to_string(item));
    unsigned char label;
    labels.read(&label, 1, "label " + std::to_string(item));
    datum.set_label(label);
    CHECK(datum.SerializeToString(&value));
    char key[32];
    std::snprintf(key, sizeof key, "%08u", item);
    db.put(key, value);
    progress.advance();
  }
  db.commit();
  progress.finish();
  return 0;
}

}  // namespace
}  // namespace engine

int main(int argc, char** argv) {
  return engine::tool_main(
      argc, argv, "convert_mnist_data",
      "Convert the MNIST dataset to the lmdb format used by Caffe and the engine.\n"
      "Usage:\n"
      "    convert_mnist_data [FLAGS] input_image_file input_label_file output_db_file\n"
      "The files may be gzipped (as downloaded) or not.",
      3, 3, "IMAGES LABELS DB_NAME",
      [](char** args, int) { return engine::convert(args[0], args[1], args[2]); });
}
