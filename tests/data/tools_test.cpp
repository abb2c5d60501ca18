// The dataset tools run end to end on small generated data: convert_imageset,
// convert_mnist_data and compute_image_mean, their records read back and checked exactly.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zlib.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include "data/datum.hpp"
#include "data/db.hpp"
#include "io/prototxt.hpp"

namespace engine {
namespace {

namespace fs = std::filesystem;

#define EXPECT_CONTAINS(text, part) \
  EXPECT_NE((text).find(part), std::string::npos) << "expected '" << (part) << "' in:\n" << (text)

using Records = std::vector<std::pair<std::string, Datum>>;

// A BGR test image whose every value differs by position, channel and `seed`.
cv::Mat pattern(int height, int width, int seed) {
  cv::Mat image(height, width, CV_8UC3);
  for (int h = 0; h < height; ++h)
    for (int w = 0; w < width; ++w)
      for (int c = 0; c < 3; ++c)
        image.ptr<uint8_t>(h)[w * 3 + c] =
            static_cast<uint8_t>((h * 37 + w * 11 + c * 71 + seed * 53) % 256);
  return image;
}

// HxWxC interleaved -> CxHxW planar bytes, the Datum layout (written independently of
// image_to_datum so the test does not check the code with itself).
std::string planar(const cv::Mat& image) {
  const int channels = image.channels();
  std::string bytes(size_t(channels) * image.rows * image.cols, '\0');
  for (int c = 0; c < channels; ++c)
    for (int h = 0; h < image.rows; ++h)
      for (int w = 0; w < image.cols; ++w)
        bytes[(size_t(c) * image.rows + h) * image.cols + w] =
            static_cast<char>(image.ptr<uint8_t>(h)[w * channels + c]);
  return bytes;
}

class DataTools : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("engine_tools_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_ / "images" / "sub");
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::string path(const std::string& name) const { return (dir_ / name).string(); }
  void write(const std::string& name, const std::string& contents) {
    std::ofstream(path(name), std::ios::binary) << contents;
  }
  void write_image(const std::string& name, const cv::Mat& image) {
    ASSERT_TRUE(cv::imwrite(path("images/" + name), image));
  }

  // Runs a tool from the build's bin/ with arguments; returns the exit code, fills `output`.
  int run(const std::string& tool, const std::string& arguments, std::string* output) {
    const std::string log = path("log.txt");
    const std::string command = std::string(ENGINE_BINARY_DIR) + "/bin/" + tool + " " +
                                arguments + " >" + log + " 2>&1";
    const int status = std::system(command.c_str());
    *output = read_file(log);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  }
  // Runs a tool that must succeed.
  std::string run_ok(const std::string& tool, const std::string& arguments) {
    std::string output;
    EXPECT_EQ(run(tool, arguments, &output), 0) << output;
    return output;
  }
  std::string convert(const std::string& flags, const std::string& list, const std::string& db) {
    return run_ok("convert_imageset", flags + " " + path("images") + "/ " + path(list) + " " +
                                          path(db));
  }

  Records read_db(const std::string& name) {
    Records records;
    DbReader db(path(name));
    for (; db.valid(); db.next()) {
      Datum datum;
      EXPECT_TRUE(datum.ParseFromArray(db.value().data(), static_cast<int>(db.value().size())));
      records.emplace_back(std::string(db.key()), datum);
    }
    return records;
  }

  static std::vector<std::string> keys(const Records& records) {
    std::vector<std::string> result;
    for (const auto& record : records) result.push_back(record.first);
    return result;
  }

  fs::path dir_;
};

// ---- convert_imageset ----------------------------------------------------------------------

TEST_F(DataTools, ImagesetKeysAndPixelsAreCaffes) {
  const cv::Mat a = pattern(4, 5, 1), b = pattern(3, 2, 2), c = pattern(6, 3, 3);
  write_image("a.png", a);
  write_image("sub/b.png", b);
  write_image("c d.png", c);  // a space in the name: the label is after the last space
  write("list.txt", "a.png 3\n\nsub/b.png 0\n  c d.png   12  \n");
  const std::string output = convert("", "list.txt", "db");
  EXPECT_CONTAINS(output, "Processed 3 files.");  // not a terminal: Caffe's plain lines

  const Records records = read_db("db");
  ASSERT_EQ(keys(records),
            (std::vector<std::string>{"00000000_a.png", "00000001_sub/b.png", "00000002_c d.png"}));
  const cv::Mat* images[] = {&a, &b, &c};
  const int labels[] = {3, 0, 12};
  for (int i = 0; i < 3; ++i) {
    const Datum& datum = records[i].second;
    SCOPED_TRACE(records[i].first);
    EXPECT_FALSE(datum.encoded());
    EXPECT_EQ(datum.channels(), 3);
    EXPECT_EQ(datum.height(), images[i]->rows);
    EXPECT_EQ(datum.width(), images[i]->cols);
    EXPECT_EQ(datum.label(), labels[i]);
    EXPECT_EQ(datum.data(), planar(*images[i]));
  }
}

TEST_F(DataTools, ImagesetGray) {
  const cv::Mat a = pattern(4, 5, 1);
  write_image("a.png", a);
  write("list.txt", "a.png 1\n");
  convert("--gray", "list.txt", "db");
  const Records records = read_db("db");
  ASSERT_EQ(records.size(), 1u);
  const Datum& datum = records[0].second;
  EXPECT_EQ(datum.channels(), 1);
  EXPECT_EQ(datum.data(), planar(cv::imread(path("images/a.png"), cv::IMREAD_GRAYSCALE)));
}

TEST_F(DataTools, ImagesetResize) {
  const cv::Mat a = pattern(8, 10, 1);
  write_image("a.png", a);
  write("list.txt", "a.png 1\n");
  convert("--resize_width=3 --resize_height=5", "list.txt", "db");
  const Records records = read_db("db");
  ASSERT_EQ(records.size(), 1u);
  const Datum& datum = records[0].second;
  EXPECT_EQ(datum.channels(), 3);
  EXPECT_EQ(datum.height(), 5);
  EXPECT_EQ(datum.width(), 3);
  cv::Mat expected;
  cv::resize(a, expected, cv::Size(3, 5));
  EXPECT_EQ(datum.data(), planar(expected));
}

TEST_F(DataTools, ImagesetEncodedRoundTrip) {
  const cv::Mat a = pattern(6, 7, 1);
  write_image("a.png", a);
  write("list.txt", "a.png 4\n");

  convert("--encoded", "list.txt", "as_file");
  Records records = read_db("as_file");
  ASSERT_EQ(records.size(), 1u);
  EXPECT_TRUE(records[0].second.encoded());
  EXPECT_EQ(records[0].second.label(), 4);
  EXPECT_EQ(records[0].second.data(), read_file(path("images/a.png")));  // the file's own bytes
  EXPECT_EQ(planar(datum_to_image(records[0].second)), planar(a));

  convert("--encode_type=jpg", "list.txt", "as_jpg");  // implies --encoded
  records = read_db("as_jpg");
  ASSERT_EQ(records.size(), 1u);
  const std::string& jpeg = records[0].second.data();
  ASSERT_GE(jpeg.size(), 2u);
  EXPECT_EQ(uint8_t(jpeg[0]), 0xFF);
  EXPECT_EQ(uint8_t(jpeg[1]), 0xD8);
  const cv::Mat decoded = datum_to_image(records[0].second);
  EXPECT_EQ(decoded.rows, 6);
  EXPECT_EQ(decoded.cols, 7);

  convert("--encoded --resize_width=4 --resize_height=3", "list.txt", "resized");
  records = read_db("resized");
  ASSERT_EQ(records.size(), 1u);
  cv::Mat expected;
  cv::resize(a, expected, cv::Size(4, 3));
  EXPECT_EQ(planar(datum_to_image(records[0].second)), planar(expected));  // PNG: lossless
}

TEST_F(DataTools, ImagesetShuffleIsDeterministicAndKeepsLabels) {
  std::string list;
  std::set<std::string> names;
  for (int i = 0; i < 20; ++i) {
    const std::string name = "img" + std::to_string(i) + ".png";
    write_image(name, pattern(1, 1, i));
    list += name + " " + std::to_string(i) + "\n";
    names.insert(name);
  }
  write("list.txt", list);
  EXPECT_CONTAINS(convert("--shuffle", "list.txt", "one"), "Shuffling data");
  convert("--shuffle", "list.txt", "two");
  const Records one = read_db("one"), two = read_db("two");
  ASSERT_EQ(one.size(), 20u);
  EXPECT_EQ(keys(one), keys(two));

  std::set<std::string> seen;
  bool moved = false;
  for (size_t i = 0; i < one.size(); ++i) {
    const std::string& key = one[i].first;
    char index[32];
    std::snprintf(index, sizeof index, "%08zu_", i);
    ASSERT_EQ(key.substr(0, 9), index);  // the position in the shuffled order
    const std::string name = key.substr(9);
    seen.insert(name);
    const int original = std::stoi(name.substr(3));
    EXPECT_EQ(one[i].second.label(), original) << key;
    EXPECT_EQ(one[i].second.data(), planar(pattern(1, 1, original))) << key;
    moved |= original != int(i);
  }
  EXPECT_EQ(seen, names);
  EXPECT_TRUE(moved) << "the order did not change";
}

TEST_F(DataTools, ImagesetSkipsUnreadableImagesAndCountsThem) {
  write_image("a.png", pattern(2, 2, 1));
  write_image("d.png", pattern(2, 2, 4));
  write("images/not_an_image.png", "hello");
  write("list.txt", "a.png 0\nmissing.png 1\nnot_an_image.png 2\nd.png 3\n");
  const std::string output = convert("", "list.txt", "db");
  EXPECT_CONTAINS(output, path("images/missing.png"));
  EXPECT_CONTAINS(output, path("images/not_an_image.png"));
  EXPECT_CONTAINS(output, "Skipped 2 of 4 images");
  // Keys keep the list positions: the skipped ones leave gaps, as in Caffe.
  EXPECT_EQ(keys(read_db("db")), (std::vector<std::string>{"00000000_a.png", "00000003_d.png"}));

  write("none.txt", "missing.png 1\nnot_an_image.png 2\n");
  std::string failure;
  EXPECT_EQ(run("convert_imageset", path("images") + "/ " + path("none.txt") + " " + path("db2"),
                &failure),
            1);
  EXPECT_CONTAINS(failure, "none of the 2 images");
}

TEST_F(DataTools, ImagesetCheckSizeNamesTheOddImage) {
  write_image("a.png", pattern(2, 2, 1));
  write_image("b.png", pattern(3, 2, 1));
  write("list.txt", "a.png 0\nb.png 1\n");
  std::string output;
  EXPECT_EQ(run("convert_imageset",
                "--check_size " + path("images") + "/ " + path("list.txt") + " " + path("db"),
                &output),
            1);
  EXPECT_CONTAINS(output, "b.png is 3 x 3 x 2");
  EXPECT_CONTAINS(output, "--check_size");
}

TEST_F(DataTools, ImagesetBadUsage) {
  write_image("a.png", pattern(2, 2, 1));
  const std::string root = path("images") + "/ ";
  std::string output;
  EXPECT_EQ(run("convert_imageset", root + path("list.txt"), &output), 1);
  EXPECT_CONTAINS(output, "expected ROOTFOLDER/ LISTFILE DB_NAME, got 2 argument(s)");

  EXPECT_EQ(run("convert_imageset", root + path("absent.txt") + " " + path("db"), &output), 1);
  EXPECT_CONTAINS(output, path("absent.txt") + ": cannot open the image list");

  write("list.txt", "a.png 0\na.png 1\njustaname.png\n");
  EXPECT_EQ(run("convert_imageset", root + path("list.txt") + " " + path("db"), &output), 1);
  EXPECT_CONTAINS(output, path("list.txt") + ":3: expected 'FILE LABEL'");

  write("list.txt", "a.png 0\na.png seven\n");
  EXPECT_EQ(run("convert_imageset", root + path("list.txt") + " " + path("db"), &output), 1);
  EXPECT_CONTAINS(output, path("list.txt") + ":2: the label 'seven' is not an integer");

  write("list.txt", "a.png 0\n");
  EXPECT_EQ(run("convert_imageset",
                "--backend=leveldb " + root + path("list.txt") + " " + path("db"), &output),
            1);
  EXPECT_CONTAINS(output, "--backend=leveldb is not supported");

  EXPECT_EQ(run("convert_imageset",
                "--resize_width=4 " + root + path("list.txt") + " " + path("db"), &output),
            1);
  EXPECT_CONTAINS(output, "go together");

  convert("", "list.txt", "db");
  EXPECT_EQ(run("convert_imageset", root + path("list.txt") + " " + path("db"), &output), 1);
  EXPECT_CONTAINS(output, "already exists");
}

// ---- convert_mnist_data --------------------------------------------------------------------

std::string big_endian(uint32_t value) {
  return {char(value >> 24), char(value >> 16 & 0xFF), char(value >> 8 & 0xFF),
          char(value & 0xFF)};
}

std::string idx_images(uint32_t magic, uint32_t count, uint32_t rows, uint32_t cols,
                       std::string* pixels_out) {
  std::string pixels;
  for (uint32_t i = 0; i < count * rows * cols; ++i) pixels += char((i * 7 + i / 13) % 256);
  if (pixels_out) *pixels_out = pixels;
  return big_endian(magic) + big_endian(count) + big_endian(rows) + big_endian(cols) + pixels;
}

std::string idx_labels(uint32_t magic, uint32_t count) {
  std::string labels = big_endian(magic) + big_endian(count);
  for (uint32_t i = 0; i < count; ++i) labels += char((i * 3) % 10);
  return labels;
}

void write_gzip(const std::string& path, const std::string& contents) {
  gzFile file = gzopen(path.c_str(), "wb");
  ASSERT_NE(file, nullptr);
  ASSERT_EQ(gzwrite(file, contents.data(), static_cast<unsigned>(contents.size())),
            int(contents.size()));
  ASSERT_EQ(gzclose(file), Z_OK);
}

TEST_F(DataTools, MnistPlainAndGzipped) {
  std::string pixels;
  const std::string images = idx_images(2051, 5, 28, 28, &pixels);
  const std::string labels = idx_labels(2049, 5);
  write("images.idx", images);
  write("labels.idx", labels);
  write_gzip(path("images.idx.gz"), images);
  write_gzip(path("labels.idx.gz"), labels);
  ASSERT_EQ(uint8_t(read_file(path("images.idx.gz"))[0]), 0x1F);

  for (const std::string suffix : {"", ".gz"}) {
    SCOPED_TRACE("suffix '" + suffix + "'");
    const std::string db = "db" + suffix;
    run_ok("convert_mnist_data",
           path("images.idx" + suffix) + " " + path("labels.idx" + suffix) + " " + path(db));
    const Records records = read_db(db);
    ASSERT_EQ(keys(records), (std::vector<std::string>{"00000000", "00000001", "00000002",
                                                       "00000003", "00000004"}));
    for (int i = 0; i < 5; ++i) {
      const Datum& datum = records[i].second;
      EXPECT_EQ(datum.channels(), 1);
      EXPECT_EQ(datum.height(), 28);
      EXPECT_EQ(datum.width(), 28);
      EXPECT_FALSE(datum.encoded());
      EXPECT_EQ(datum.label(), (i * 3) % 10);
      EXPECT_EQ(datum.data(), pixels.substr(i * 784, 784));
    }
  }
}

TEST_F(DataTools, MnistBadFilesAreNamed) {
  write("images.idx", idx_images(2051, 5, 28, 28, nullptr));
  write("labels.idx", idx_labels(2049, 5));
  write("swapped.idx", idx_images(2049, 5, 28, 28, nullptr));
  write("bad_labels.idx", idx_labels(2051, 5));
  write("four_labels.idx", idx_labels(2049, 4));
  write("short.idx", idx_images(2051, 5, 28, 28, nullptr).substr(0, 16 + 784 * 3 + 100));
  std::string output;

  EXPECT_EQ(run("convert_mnist_data",
                path("swapped.idx") + " " + path("labels.idx") + " " + path("db1"), &output),
            1);
  EXPECT_CONTAINS(output, path("swapped.idx") +
                              ": not an MNIST image file: magic number 2049, expected 2051");

  EXPECT_EQ(run("convert_mnist_data",
                path("images.idx") + " " + path("bad_labels.idx") + " " + path("db2"), &output),
            1);
  EXPECT_CONTAINS(output, path("bad_labels.idx") +
                              ": not an MNIST label file: magic number 2051, expected 2049");

  EXPECT_EQ(run("convert_mnist_data",
                path("images.idx") + " " + path("four_labels.idx") + " " + path("db3"), &output),
            1);
  EXPECT_CONTAINS(output, path("images.idx") + " holds 5 images but " + path("four_labels.idx") +
                              " holds 4 labels");

  EXPECT_EQ(run("convert_mnist_data",
                path("short.idx") + " " + path("labels.idx") + " " + path("db4"), &output),
            1);
  EXPECT_CONTAINS(output, path("short.idx") + ": truncated: the file ends in image 3");

  EXPECT_EQ(run("convert_mnist_data",
                path("absent.idx") + " " + path("labels.idx") + " " + path("db5"), &output),
            1);
  EXPECT_CONTAINS(output, path("absent.idx") + ": cannot open");

  EXPECT_EQ(run("convert_mnist_data", path("images.idx"), &output), 1);
  EXPECT_CONTAINS(output, "expected IMAGES LABELS DB_NAME");
}

// ---- compute_image_mean --------------------------------------------------------------------

Datum raw_datum(int channels, int height, int width, const std::vector<int>& values) {
  Datum datum;
  datum.set_channels(channels);
  datum.set_height(height);
  datum.set_width(width);
  std::string bytes;
  for (int v : values) bytes += static_cast<char>(v);
  datum.set_data(bytes);
  return datum;
}

void write_db(const std::string& path, const std::vector<Datum>& datums) {
  DbWriter db(path);
  for (size_t i = 0; i < datums.size(); ++i) {
    char key[32];
    std::snprintf(key, sizeof key, "%08zu", i);
    db.put(key, datums[i].SerializeAsString());
  }
}

TEST_F(DataTools, MeanImageIsExactInCaffesLayout) {
  // Three 2-channel 1x3 images.
  const std::vector<std::vector<int>> images = {
      {0, 10, 255, 1, 2, 3}, {3, 20, 255, 4, 5, 6}, {4, 30, 254, 7, 9, 11}};
  write_db(path("db"), {raw_datum(2, 1, 3, images[0]), raw_datum(2, 1, 3, images[1]),
                        raw_datum(2, 1, 3, images[2])});
  const std::string output = run_ok("compute_image_mean", path("db") + " " + path("mean.bin"));
  BlobProto mean;
  read_binary_file(path("mean.bin"), &mean);
  EXPECT_FALSE(mean.has_shape());  // Caffe writes the legacy 4-d fields only
  EXPECT_EQ(mean.num(), 1);
  EXPECT_EQ(mean.channels(), 2);
  EXPECT_EQ(mean.height(), 1);
  EXPECT_EQ(mean.width(), 3);
  ASSERT_EQ(mean.data_size(), 6);
  for (int i = 0; i < 6; ++i) {
    const double total = images[0][i] + images[1][i] + images[2][i];
    EXPECT_EQ(mean.data(i), static_cast<float>(total / 3)) << i;
  }
  // Channel 0: (0+10+255+3+20+255+4+30+254)/9 = 92.3333; channel 1: 48/9 = 5.33333.
  EXPECT_CONTAINS(output, "mean_value channel [0]:92.3333");
  EXPECT_CONTAINS(output, "mean_value channel [1]:5.33333");
  EXPECT_EQ(mean.color_eigenvalues_size(), 2);
  EXPECT_EQ(mean.color_eigenvectors_size(), 4);
}

TEST_F(DataTools, ColourEigenvectorFollowsTheOneDirectionPixelsVary) {
  // Pixels base + t (1, 2, 2) over t = 0..20, split across two 1x11 / ... images of one size:
  // the covariance is var(t) d d^T, rank one, with eigenvalue 9 var(t) along d / 3.
  std::vector<int> ts(22);
  for (int i = 0; i < 22; ++i) ts[i] = i % 21;  // 0..20 and 0 again: still along d
  std::vector<Datum> datums;
  for (int image = 0; image < 2; ++image) {
    std::vector<int> values(3 * 11);
    for (int k = 0; k < 11; ++k) {
      const int t = ts[image * 11 + k];
      values[0 * 11 + k] = 30 + t;
      values[1 * 11 + k] = 40 + 2 * t;
      values[2 * 11 + k] = 50 + 2 * t;
    }
    datums.push_back(raw_datum(3, 1, 11, values));
  }
  write_db(path("db"), datums);
  run_ok("compute_image_mean", path("db") + " " + path("mean.bin"));
  BlobProto mean;
  read_binary_file(path("mean.bin"), &mean);
  double t_mean = 0, t_square = 0;
  for (int t : ts) t_mean += t, t_square += double(t) * t;
  t_mean /= ts.size();
  const double variance = t_square / ts.size() - t_mean * t_mean;
  ASSERT_EQ(mean.color_eigenvalues_size(), 3);
  ASSERT_EQ(mean.color_eigenvectors_size(), 9);
  EXPECT_NEAR(mean.color_eigenvalues(0), 9 * variance, 1e-4 * variance);
  EXPECT_NEAR(mean.color_eigenvalues(1), 0, 1e-4);
  EXPECT_NEAR(mean.color_eigenvalues(2), 0, 1e-4);
  EXPECT_NEAR(mean.color_eigenvectors(0), 1.0 / 3, 1e-6);
  EXPECT_NEAR(mean.color_eigenvectors(1), 2.0 / 3, 1e-6);
  EXPECT_NEAR(mean.color_eigenvectors(2), 2.0 / 3, 1e-6);
  for (int i = 1; i < 3; ++i) {  // the others: unit length, orthogonal to d
    const float* v = &mean.color_eigenvectors().data()[i * 3];
    EXPECT_NEAR(v[0] * v[0] + v[1] * v[1] + v[2] * v[2], 1, 1e-6);
    EXPECT_NEAR(v[0] + 2 * v[1] + 2 * v[2], 0, 1e-5);
  }
}

TEST_F(DataTools, ColourEigenvaluesOfIndependentChannels) {
  // The 8 pixels (100 +- 10, 100 +- 5, 100 +- 1): covariance diag(100, 25, 1) exactly.
  std::vector<int> values(3 * 8);
  for (int k = 0; k < 8; ++k) {
    values[0 * 8 + k] = (k & 1) ? 110 : 90;
    values[1 * 8 + k] = (k & 2) ? 105 : 95;
    values[2 * 8 + k] = (k & 4) ? 101 : 99;
  }
  write_db(path("db"), {raw_datum(3, 2, 4, values)});
  run_ok("compute_image_mean", path("db") + " " + path("mean.bin"));
  BlobProto mean;
  read_binary_file(path("mean.bin"), &mean);
  const std::vector<float> eigenvalues(mean.color_eigenvalues().begin(),
                                       mean.color_eigenvalues().end());
  const std::vector<float> eigenvectors(mean.color_eigenvectors().begin(),
                                        mean.color_eigenvectors().end());
  EXPECT_EQ(eigenvalues, (std::vector<float>{100, 25, 1}));
  EXPECT_EQ(eigenvectors, (std::vector<float>{1, 0, 0, 0, 1, 0, 0, 0, 1}));
}

TEST_F(DataTools, MeanOfEncodedRecordsEqualsMeanOfRaw) {
  std::string list;
  for (int i = 0; i < 5; ++i) {
    write_image("img" + std::to_string(i) + ".png", pattern(5, 6, i));
    list += "img" + std::to_string(i) + ".png 0\n";
  }
  write("list.txt", list);
  convert("", "list.txt", "raw");
  convert("--encoded", "list.txt", "encoded");
  run_ok("compute_image_mean", path("raw") + " " + path("raw.bin"));
  run_ok("compute_image_mean", path("encoded") + " " + path("encoded.bin"));
  BlobProto raw, encoded;
  read_binary_file(path("raw.bin"), &raw);
  read_binary_file(path("encoded.bin"), &encoded);
  EXPECT_EQ(raw.SerializeAsString(), encoded.SerializeAsString());
  EXPECT_EQ(encoded.channels(), 3);
  EXPECT_EQ(encoded.height(), 5);
  EXPECT_EQ(encoded.width(), 6);
}

TEST_F(DataTools, MeanOfFloatRecords) {
  Datum a, b;
  for (Datum* d : {&a, &b}) {
    d->set_channels(1);
    d->set_height(1);
    d->set_width(2);
  }
  a.add_float_data(0.5f);
  a.add_float_data(-2.0f);
  b.add_float_data(1.5f);
  b.add_float_data(4.0f);
  write_db(path("db"), {a, b});
  run_ok("compute_image_mean", path("db") + " " + path("mean.bin"));
  BlobProto mean;
  read_binary_file(path("mean.bin"), &mean);
  ASSERT_EQ(mean.data_size(), 2);
  EXPECT_EQ(mean.data(0), 1.0f);
  EXPECT_EQ(mean.data(1), 1.0f);
  ASSERT_EQ(mean.color_eigenvalues_size(), 1);
  // Samples 0.5, -2, 1.5, 4: mean 1, variance (0.25 + 9 + 0.25 + 9) / 4 = 4.625.
  EXPECT_NEAR(mean.color_eigenvalues(0), 4.625, 1e-6);
  EXPECT_EQ(mean.color_eigenvectors(0), 1.0f);
}

TEST_F(DataTools, MeanOfDifferingSizesNamesTheKey) {
  write_db(path("db"), {raw_datum(1, 1, 2, {1, 2}), raw_datum(1, 1, 2, {3, 4}),
                        raw_datum(1, 2, 2, {1, 2, 3, 4})});
  std::string output;
  EXPECT_EQ(run("compute_image_mean", path("db") + " " + path("mean.bin"), &output), 1);
  EXPECT_CONTAINS(output, "record '00000002' is 1 x 2 x 2 but the first record ('00000000') is "
                          "1 x 1 x 2");
  EXPECT_FALSE(fs::exists(path("mean.bin")));

  EXPECT_EQ(run("compute_image_mean", path("absent"), &output), 1);
  EXPECT_CONTAINS(output, path("absent") + ": no such LMDB database");
  EXPECT_EQ(run("compute_image_mean", "", &output), 1);
  EXPECT_CONTAINS(output, "expected INPUT_DB [OUTPUT_FILE]");
}

}  // namespace
}  // namespace engine
