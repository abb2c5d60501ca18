// convert_imageset: a list of images to an LMDB of Datum records, as Caffe's tool of the name.
//   convert_imageset [FLAGS] ROOTFOLDER/ LISTFILE DB_NAME
// LISTFILE holds one "relative/path.jpg LABEL" per line (the label after the last space, so
// names may contain spaces). Keys are the line's position in the (shuffled) list, zero-padded to
// 8 digits, "_", and the name: Caffe's keys, so Caffe reads these databases and we read Caffe's.
//
// Images decode on every core (--threads) in order-preserving chunks; this thread writes.
// An image that cannot be read is reported by path and skipped (its key is left out); the tool
// still succeeds if at least one image was converted. Bad usage, an unreadable or malformed
// list, or a size mismatch under --check_size: one line on stderr, exit 1.
#include <algorithm>
#include <cctype>
#include <charconv>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include <gflags/gflags.h>
#include <glog/logging.h>

#include "core/errors.hpp"
#include "core/ordered_parallel_map.hpp"
#include "data/datum.hpp"
#include "data/db.hpp"
#include "data/image_list.hpp"
#include "io/progress.hpp"
#include "tool_main.hpp"

DEFINE_bool(gray, false, "When this option is on, treat images as grayscale ones");
DEFINE_bool(shuffle, false,
            "Randomly shuffle the order of images and their labels (with a fixed seed, so the "
            "order is the same on every run)");
DEFINE_string(backend, "lmdb", "The backend for storing the result (lmdb only)");
DEFINE_int32(resize_width, 0, "Width images are resized to");
DEFINE_int32(resize_height, 0, "Height images are resized to");
DEFINE_bool(check_size, false,
            "When this option is on, check that all the datum have the same size");
DEFINE_bool(encoded, false, "When this option is on, the encoded image will be save in datum");
DEFINE_string(encode_type, "",
              "Optional: What type should we encode the image as ('png','jpg',...).");
DEFINE_int32(threads, 0, "Threads decoding images (ours); 0: one per core");

namespace engine {
namespace {

// Caffe's shuffle draws from an unseeded generator; a fixed one makes conversions repeatable.
constexpr uint64_t kShuffleSeed = 0x5eed'c0ffee;

using Entry = ImageListEntry;

// Fisher-Yates on mt19937_64, whose output the standard fixes: the same order everywhere
// (std::shuffle's is left to the library).
void shuffle_entries(std::vector<Entry>* entries) {
  std::mt19937_64 generator(kShuffleSeed);
  for (size_t i = entries->size(); i > 1; --i) {
    std::swap((*entries)[i - 1], (*entries)[generator() % i]);
  }
}

std::string lowercase_extension(const std::string& name) {
  const size_t dot = name.rfind('.');
  if (dot == std::string::npos || name.find('/', dot) != std::string::npos) return "";
  std::string extension = name.substr(dot + 1);
  for (char& c : extension) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return extension;
}

struct Converted {
  size_t line = 0;
  std::string value;  // the serialized Datum; empty when the image could not be read
  std::string error;
  int channels = 0, height = 0, width = 0;
};

std::string shape_text(const Converted& c) {
  return std::to_string(c.channels) + " x " + std::to_string(c.height) + " x " +
         std::to_string(c.width);
}

int convert(const std::string& root_argument, const std::string& list_path,
            const std::string& db_path) {
  ENGINE_REQUIRE(FLAGS_backend == "lmdb",
                 (FLAGS_backend == "leveldb"
                      ? "--backend=leveldb is not supported: this build writes LMDB only"
                      : "unknown --backend '" + FLAGS_backend + "' (lmdb is the one supported)"));
  ENGINE_REQUIRE(FLAGS_resize_width >= 0 && FLAGS_resize_height >= 0,
                 "--resize_width and --resize_height must not be negative (got "
                     << FLAGS_resize_width << " and " << FLAGS_resize_height << ")");
  ENGINE_REQUIRE((FLAGS_resize_width > 0) == (FLAGS_resize_height > 0),
                 "--resize_width and --resize_height go together (got " << FLAGS_resize_width
                     << " and " << FLAGS_resize_height << ")");
  const bool encoded = FLAGS_encoded || !FLAGS_encode_type.empty();
  // An encoded record's size is its file's, which says nothing of the pixels'.
  ENGINE_REQUIRE(!(encoded && FLAGS_check_size),
                 "--check_size applies to raw records only, not with --encoded / --encode_type");
  const bool color = !FLAGS_gray;
  const int height = FLAGS_resize_height, width = FLAGS_resize_width;
  const bool resize = height > 0;
  std::string encode_type = FLAGS_encode_type;
  for (char& c : encode_type) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (!encode_type.empty() && encode_type[0] == '.') encode_type.erase(0, 1);

  std::vector<Entry> entries = read_image_list(list_path);
  ENGINE_REQUIRE(!entries.empty(), list_path << ": the list names no images");
  if (FLAGS_shuffle) {
    std::fprintf(stderr, "Shuffling data\n");
    shuffle_entries(&entries);
  }
  std::fprintf(stderr, "A total of %zu images.\n", entries.size());

  // Caffe concatenates ROOTFOLDER and the name; a folder given without its slash gets one.
  std::string root = root_argument;
  if (!root.empty() && root.back() != '/' && std::filesystem::is_directory(root)) root += '/';

  DbWriter db(db_path);
  Progress progress(entries.size());
  size_t next_line = 0, written = 0, skipped = 0;
  Converted first;  // the first record written, the reference for --check_size

  auto next = [&](size_t* line) {
    if (next_line == entries.size()) return false;
    *line = next_line++;
    return true;
  };
  auto map = [&](size_t&& line) {
    Converted result;
    result.line = line;
    const Entry& entry = entries[line];
    const std::string path = root + entry.name;
    Datum datum;
    try {
      if (encoded) {
        // As Caffe: the file's own bytes when nothing changes them, else re-encoded (as
        // --encode_type, or as the file's own format when only resizing).
        const std::string extension = lowercase_extension(entry.name);
        const bool same_format =
            encode_type.empty() || encode_type == extension ||
            (encode_type == "jpg" && extension == "jpeg");
        std::string format = same_format ? "" : encode_type;
        if (resize) format = encode_type.empty() ? extension : encode_type;
        file_to_encoded_datum(path, entry.label, color, height, width, format, &datum);
      } else {
        image_to_datum(read_image(path, color, height, width), entry.label, &datum);
      }
    } catch (const std::exception& error) {  // engine::Error, or OpenCV's on a corrupt file
      result.error = error.what();
      if (result.error.find(path) == std::string::npos) result.error = path + ": " + result.error;
      return result;
    }
    result.channels = datum.channels();
    result.height = datum.height();
    result.width = datum.width();
    CHECK(datum.SerializeToString(&result.value));
    return result;
  };
  auto consume = [&](Converted&& converted) {
    progress.advance();
    if (!converted.error.empty()) {
      progress.message(converted.error + " (skipped)");
      ++skipped;
      return;
    }
    if (FLAGS_check_size) {
      if (written == 0) {
        first = converted;
        first.value.clear();
      } else {
        ENGINE_REQUIRE(converted.channels == first.channels && converted.height == first.height &&
                           converted.width == first.width,
                       root + entries[converted.line].name
                           << " is " << shape_text(converted) << " but "
                           << root + entries[first.line].name << " (the first) is "
                           << shape_text(first) << "; --check_size wants one size");
      }
    }
    char index[32];
    std::snprintf(index, sizeof index, "%08zu", converted.line);
    db.put(std::string(index) + "_" + entries[converted.line].name, converted.value);
    ++written;
  };
  ordered_parallel_map<size_t, Converted>(FLAGS_threads, 16, next, map, consume);
  db.commit();
  progress.finish();

  const double seconds = progress.seconds();
  std::fprintf(stderr, "Wrote %zu records to %s in %.1f s (%.0f images/s).\n", written,
               db_path.c_str(), seconds, seconds > 0 ? written / seconds : 0.0);
  if (skipped > 0) {
    std::fprintf(stderr, "Skipped %zu of %zu images that could not be read (listed above).\n",
                 skipped, entries.size());
  }
  ENGINE_REQUIRE(written > 0, "none of the " << entries.size() << " images in " << list_path
                                             << " could be read (root '" << root << "')");
  return 0;
}

}  // namespace
}  // namespace engine

int main(int argc, char** argv) {
  return engine::tool_main(
      argc, argv, "convert_imageset",
      "Convert a set of images to the lmdb format used as input for Caffe and the engine.\n"
      "Usage:\n"
      "    convert_imageset [FLAGS] ROOTFOLDER/ LISTFILE DB_NAME\n"
      "LISTFILE holds lines 'subfolder1/file1.JPEG 7'.",
      3, 3, "ROOTFOLDER/ LISTFILE DB_NAME",
      [](char** args, int) { return engine::convert(args[0], args[1], args[2]); });
}
