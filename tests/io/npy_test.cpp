// NumPy .npy files: round trips, the exact bytes of a small file, hand-made files NumPy could
// have written, and the errors for everything else.
#include "io/npy.hpp"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <filesystem>

#include "core/blob.hpp"
#include "gradient_checker.hpp"
#include "io/prototxt.hpp"

namespace engine {
namespace {

using namespace engine::testing;

namespace fs = std::filesystem;

class Npy : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("engine_npy_" + std::to_string(::getpid()));
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string path(const std::string& name) const { return (dir_ / name).string(); }
  // Writes `bytes` and returns the file's path.
  std::string file(const std::string& name, const std::string& bytes) {
    write_file_atomic(path(name), bytes);
    return path(name);
  }

  fs::path dir_;
};

// The header NumPy writes, with the preamble, the length field and the padding worked out
// below for each case.
std::string v1_file(const std::string& dict, const std::string& data) {
  std::string header = dict;
  while ((10 + header.size() + 1) % 64 != 0) header += ' ';
  header += '\n';
  std::string bytes("\x93NUMPY\x01\x00", 8);
  bytes.push_back(static_cast<char>(header.size() & 0xff));
  bytes.push_back(static_cast<char>(header.size() >> 8));
  return bytes + header + data;
}

std::string floats(const std::vector<float>& values) {
  return std::string(reinterpret_cast<const char*>(values.data()), 4 * values.size());
}

TEST_F(Npy, RoundTripsEveryShape) {
  const std::vector<std::vector<int64_t>> shapes = {
      {}, {1}, {7}, {0}, {2, 3}, {3, 0, 2}, {1, 1, 1}, {2, 3, 4, 5}, {2, 1, 3, 2, 4}};
  for (const auto& shape : shapes) {
    int64_t count = 1;
    for (int64_t dim : shape) count *= dim;
    std::vector<float> values(count);
    for (int64_t i = 0; i < count; ++i) values[i] = 0.25f * static_cast<float>(i) - 3.0f;
    write_npy(path("a.npy"), shape, values.data());
    const NpyArray array = read_npy(path("a.npy"));
    EXPECT_EQ(array.shape, shape);
    EXPECT_EQ(array.data, values);
    EXPECT_EQ(fs::file_size(path("a.npy")) % 64, (4 * static_cast<size_t>(count)) % 64)
        << "the data starts at a multiple of 64 bytes";
  }
}

TEST_F(Npy, BlobsWriteInTheirShape) {
  Blob blob;
  set_blob(blob, {2, 3}, {1, 2, 3, 4, 5, 6});
  write_npy(path("b.npy"), blob);
  const NpyArray array = read_npy(path("b.npy"));
  EXPECT_EQ(array.shape, (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(array.data, data_of(blob));
}

TEST_F(Npy, BytesOfATinyFile) {
  // np.save of np.array([1, -2], dtype='<f4'): magic, version 1.0, header length 118 (little-
  // endian 0x76 0x00), the dict padded with 60 spaces and a newline so that 10 + 118 = 128 bytes
  // precede the data, then 1.0f = 00 00 80 3f and -2.0f = 00 00 00 c0.
  const std::string dict = "{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }";
  ASSERT_EQ(dict.size(), 57u);
  const std::string expected = std::string("\x93NUMPY\x01\x00\x76\x00", 10) + dict +
                               std::string(60, ' ') + "\n" +
                               std::string("\x00\x00\x80\x3f\x00\x00\x00\xc0", 8);
  const float values[] = {1.0f, -2.0f};
  write_npy(path("tiny.npy"), {2}, values);
  EXPECT_EQ(read_file(path("tiny.npy")), expected);

  // A 0-d array: shape () and one value; 10 + 55 + 62 spaces + newline = 128.
  const float scalar = 3.5f;
  EXPECT_EQ(npy_bytes({}, &scalar),
            std::string("\x93NUMPY\x01\x00\x76\x00", 10) +
                "{'descr': '<f4', 'fortran_order': False, 'shape': (), }" +
                std::string(62, ' ') + "\n" + std::string("\x00\x00\x60\x40", 4));
}

TEST_F(Npy, ReadsOtherWritersHeaders) {
  // Keys in another order, double quotes, no trailing comma, Python 2 long integers.
  const NpyArray a = read_npy(file(
      "py2.npy", v1_file("{\"shape\": (1L, 2L), \"fortran_order\": False, \"descr\": \"<f4\"}",
                         floats({5, 6}))));
  EXPECT_EQ(a.shape, (std::vector<int64_t>{1, 2}));
  EXPECT_EQ(a.data, (std::vector<float>{5, 6}));

  // Version 2.0: a 4-byte header length.
  std::string header = "{'descr': '<f4', 'fortran_order': False, 'shape': (3,), }";
  while ((12 + header.size() + 1) % 64 != 0) header += ' ';
  header += '\n';
  std::string v2("\x93NUMPY\x02\x00", 8);
  for (int i = 0; i < 4; ++i) v2.push_back(static_cast<char>(header.size() >> 8 * i));
  const NpyArray b = read_npy(file("v2.npy", v2 + header + floats({1, 2, 3})));
  EXPECT_EQ(b.shape, (std::vector<int64_t>{3}));
  EXPECT_EQ(b.data, (std::vector<float>{1, 2, 3}));
}

TEST_F(Npy, LongHeadersUseVersion2) {
  // 30000 axes of 1 ("1, " each) give a header over 65535 bytes.
  const std::vector<int64_t> shape(30000, 1);
  const float value = 7;
  const std::string bytes = npy_bytes(shape, &value);
  EXPECT_EQ(bytes[6], 2);
  write_file_atomic(path("long.npy"), bytes);
  const NpyArray array = read_npy(path("long.npy"));
  EXPECT_EQ(array.shape, shape);
  EXPECT_EQ(array.data, std::vector<float>{7});
}

TEST_F(Npy, Errors) {
  const std::string good = "{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }";
  auto fails = [&](const std::string& name, const std::string& bytes,
                   const std::vector<std::string>& parts) {
    const std::string p = file(name, bytes);
    std::vector<std::string> all = parts;
    all.push_back(p);
    expect_error([&] { read_npy(p); }, all);
  };
  fails("f8.npy", v1_file("{'descr': '<f8', 'fortran_order': False, 'shape': (2,), }",
                          std::string(16, '\0')),
        {"dtype is '<f8'", "'<f4'"});
  fails("big_endian.npy", v1_file("{'descr': '>f4', 'fortran_order': False, 'shape': (2,), }",
                                  floats({1, 2})),
        {"dtype is '>f4'"});
  fails("int.npy", v1_file("{'descr': '<i4', 'fortran_order': False, 'shape': (2,), }",
                           floats({1, 2})),
        {"dtype is '<i4'"});
  fails("fortran.npy", v1_file("{'descr': '<f4', 'fortran_order': True, 'shape': (2,), }",
                               floats({1, 2})),
        {"Fortran order"});
  fails("magic.npy", "PK\x03\x04 a zip file", {"not a NumPy .npy file"});
  fails("empty.npy", "", {"not a NumPy .npy file"});
  fails("version.npy", std::string("\x93NUMPY\x04\x00\x00\x00", 10), {"version 4.0"});
  fails("short_header.npy", v1_file(good, floats({1, 2})).substr(0, 40), {"truncated .npy header"});
  fails("truncated.npy", v1_file(good, floats({1})), {"needs 2 float32 values", "truncated"});
  fails("extra.npy", v1_file(good, floats({1, 2, 3})), {"needs 2 float32 values", "12 bytes"});
  fails("garbage.npy", v1_file("{'descr': '<f4', 'fortran_order': Maybe, 'shape': (2,), }", ""),
        {"bad .npy header"});
  fails("no_shape.npy", v1_file("{'descr': '<f4', 'fortran_order': False}", ""),
        {"bad .npy header"});
  fails("not_dict.npy", v1_file("[1, 2]", ""), {"bad .npy header", "expected '{'"});
  fails("negative.npy", v1_file("{'descr': '<f4', 'fortran_order': False, 'shape': (-1,), }", ""),
        {"bad .npy header"});
  expect_error([&] { read_npy(path("missing.npy")); }, {"cannot open", "missing.npy"});
}

}  // namespace
}  // namespace engine
