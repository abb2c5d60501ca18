// A pair of MNIST idx files (convert_mnist_data's IMAGES and LABELS, gzipped or not): the input's
// first four bytes (little-endian) give the length of the image file, which follows; the rest is
// the label file. Every item is read.
#include <algorithm>
#include <cstring>

#include "data/mnist_idx.hpp"
#include "fuzz_target.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 4) return 0;
  uint32_t image_bytes = 0;
  std::memcpy(&image_bytes, data, 4);
  image_bytes = std::min<uint32_t>(image_bytes, static_cast<uint32_t>(size - 4));
  engine::fuzz::expect_clean([&] {
    engine::MnistIdxReader reader(engine::fuzz::as_file(data + 4, image_bytes, "images.idx"),
                                  engine::fuzz::as_file(data + 4 + image_bytes,
                                                        size - 4 - image_bytes, "labels.idx"));
    std::string pixels;
    int label = 0;
    for (uint32_t i = 0; i < reader.count(); ++i) reader.read_next(&pixels, &label);
  });
  return 0;
}
