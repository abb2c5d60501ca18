// MNIST's idx files, as convert_mnist_data reads them: an image file (magic 2051, count, rows,
// cols, then count x rows x cols bytes) and a label file (magic 2049, count, then count bytes),
// big-endian headers, each gzipped (as downloaded) or not. A wrong magic number, counts that
// disagree, an implausible size or a truncated file throws engine::Error naming the file.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

namespace engine {

class MnistIdxReader {
 public:
  MnistIdxReader(const std::string& images_path, const std::string& labels_path);
  ~MnistIdxReader();
  MnistIdxReader(const MnistIdxReader&) = delete;
  MnistIdxReader& operator=(const MnistIdxReader&) = delete;

  uint32_t count() const { return count_; }
  uint32_t rows() const { return rows_; }
  uint32_t cols() const { return cols_; }
  // The next item: rows x cols pixel bytes into `pixels` (resized), and its label.
  void read_next(std::string* pixels, int* label);

 private:
  class File;
  std::unique_ptr<File> images_, labels_;
  uint32_t count_ = 0, rows_ = 0, cols_ = 0, next_ = 0;
};

}  // namespace engine
