#include "data/mnist_idx.hpp"

#include <zlib.h>

#include <algorithm>

#include "core/errors.hpp"

namespace engine {

constexpr uint32_t kImageMagic = 2051;  // idx: unsigned bytes, 3 dimensions
constexpr uint32_t kLabelMagic = 2049;  // idx: unsigned bytes, 1 dimension

// An idx file, read through zlib, which passes files without the gzip magic through as they are.
class MnistIdxReader::File {
 public:
  explicit File(const std::string& path) : path_(path), file_(gzopen(path.c_str(), "rb")) {
    ENGINE_REQUIRE(file_ != nullptr, path << ": cannot open the file");
    gzbuffer(file_, 1 << 17);
  }
  ~File() { gzclose(file_); }
  File(const File&) = delete;
  File& operator=(const File&) = delete;

  void read(void* buffer, size_t size, const std::string& what) {
    const size_t got = read_some(buffer, size, what);
    ENGINE_REQUIRE(got == size, path_ << ": truncated: the file ends in " << what << " (" << got
                                      << " of " << size << " bytes)");
  }

  // Reads `size` bytes into `out`, growing it as they arrive: a header that claims huge images
  // costs no memory when the file is short.
  void read(std::string* out, size_t size, const std::string& what) {
    constexpr size_t kChunk = size_t(1) << 20;
    out->clear();
    while (out->size() < size) {
      const size_t at = out->size();
      out->resize(at + std::min(kChunk, size - at));
      const size_t got = read_some(out->data() + at, out->size() - at, what);
      ENGINE_REQUIRE(at + got == out->size(), path_ << ": truncated: the file ends in " << what
                                                    << " (" << at + got << " of " << size
                                                    << " bytes)");
    }
  }

  // The idx header's big-endian 32-bit integers.
  uint32_t read_u32(const std::string& what) {
    unsigned char bytes[4];
    read(bytes, 4, what);
    return uint32_t(bytes[0]) << 24 | uint32_t(bytes[1]) << 16 | uint32_t(bytes[2]) << 8 |
           uint32_t(bytes[3]);
  }

  void check_magic(uint32_t expected, const char* kind) {
    const uint32_t magic = read_u32("the header");
    ENGINE_REQUIRE(magic == expected, path_ << ": not an MNIST " << kind << " file: magic number "
                                            << magic << ", expected " << expected);
  }

  const std::string& path() const { return path_; }

 private:
  size_t read_some(void* buffer, size_t size, const std::string& what) {
    const int got = gzread(file_, buffer, static_cast<unsigned>(size));
    if (got < 0) {
      int code = 0;
      const char* message = gzerror(file_, &code);
      ENGINE_FAIL(path_ << ": cannot read " << what << ": " << message);
    }
    return static_cast<size_t>(got);
  }

  std::string path_;
  gzFile file_;
};

MnistIdxReader::MnistIdxReader(const std::string& images_path, const std::string& labels_path)
    : images_(std::make_unique<File>(images_path)), labels_(std::make_unique<File>(labels_path)) {
  images_->check_magic(kImageMagic, "image");
  labels_->check_magic(kLabelMagic, "label");
  count_ = images_->read_u32("the header");
  const uint32_t label_count = labels_->read_u32("the header");
  ENGINE_REQUIRE(count_ == label_count,
                 images_path << " holds " << count_ << " images but " << labels_path << " holds "
                             << label_count << " labels; they must agree");
  rows_ = images_->read_u32("the header");
  cols_ = images_->read_u32("the header");
  ENGINE_REQUIRE(rows_ > 0 && cols_ > 0 && uint64_t(rows_) * cols_ <= (1u << 30),
                 images_path << ": implausible image size " << rows_ << " x " << cols_);
}

MnistIdxReader::~MnistIdxReader() = default;

void MnistIdxReader::read_next(std::string* pixels, int* label) {
  ENGINE_REQUIRE(next_ < count_, images_->path() << ": read past its " << count_ << " items");
  images_->read(pixels, size_t(rows_) * cols_, "image " + std::to_string(next_));
  unsigned char byte;
  labels_->read(&byte, 1, "label " + std::to_string(next_));
  *label = byte;
  ++next_;
}

}  // namespace engine
