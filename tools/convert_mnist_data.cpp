// convert_mnist_data: MNIST's idx files to an LMDB of Datum records, as Caffe's example tool.
//   convert_mnist_data [FLAGS] IMAGES LABELS DB_NAME
// IMAGES and LABELS may be gzipped (as downloaded) or not: the gzip magic bytes decide. Each
// record is a raw 1 x rows x cols Datum with the label; keys are the item's index, "%08d".
// Bad usage or a bad file (wrong magic number, counts that disagree, a truncated file): one
// line on stderr naming the file, exit 1.
#include <cstdint>
#include <cstdio>
#include <memory>
#include <string>

#include <gflags/gflags.h>
#include <glog/logging.h>

#include "core/errors.hpp"
#include "data/db.hpp"
#include "data/mnist_idx.hpp"
#include "engine.pb.h"
#include "io/progress.hpp"
#include "tool_main.hpp"

DEFINE_string(backend, "lmdb", "The backend for storing the result (lmdb only)");

namespace engine {
namespace {

int convert(const std::string& images_path, const std::string& labels_path,
            const std::string& db_path) {
  ENGINE_REQUIRE(FLAGS_backend == "lmdb",
                 (FLAGS_backend == "leveldb"
                      ? "--backend=leveldb is not supported: this build writes LMDB only"
                      : "unknown --backend '" + FLAGS_backend + "' (lmdb is the one supported)"));
  MnistIdxReader items(images_path, labels_path);
  const uint32_t image_count = items.count(), rows = items.rows(), cols = items.cols();
  std::fprintf(stderr, "A total of %u items.\nRows: %u Cols: %u\n", image_count, rows, cols);

  DbWriter db(db_path);
  Progress progress(image_count);
  Datum datum;
  datum.set_channels(1);
  datum.set_height(static_cast<int>(rows));
  datum.set_width(static_cast<int>(cols));
  std::string value;
  for (uint32_t item = 0; item < image_count; ++item) {
    int label = 0;
    items.read_next(datum.mutable_data(), &label);
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
