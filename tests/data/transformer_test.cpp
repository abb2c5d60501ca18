#include "data/transformer.hpp"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <functional>
#include <set>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include "core/context.hpp"
#include "data/datum.hpp"
#include "gradient_checker.hpp"
#include "io/prototxt.hpp"

namespace engine {
namespace {

namespace fs = std::filesystem;
using testing::contains;

// A raw 8-bit record whose pixel (c, h, w) is value(c, h, w).
template <typename Value>
Datum raw_datum(int channels, int height, int width, Value value) {
  Datum datum;
  datum.set_channels(channels);
  datum.set_height(height);
  datum.set_width(width);
  std::string data;
  for (int c = 0; c < channels; ++c)
    for (int h = 0; h < height; ++h)
      for (int w = 0; w < width; ++w) data.push_back(static_cast<char>(value(c, h, w)));
  datum.set_data(data);
  return datum;
}

TransformationParameter transform_param(const std::string& text) {
  TransformationParameter param;
  parse_text(text, "<test>", &param);
  return param;
}

std::vector<float> run(const DataTransformer& transformer, const Datum& datum) {
  const std::vector<int> slot = transformer.slot_shape(datum);
  std::vector<float> out(size_t(transformer.crops_per_image()) * slot[0] * slot[1] * slot[2]);
  transformer.transform(datum, slot, out.data());
  return out;
}

std::string error_of(const std::function<void()>& action) {
  try {
    action();
  } catch (const Error& error) {
    return error.what();
  }
  return "";
}

class TransformerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("engine_transformer_" + std::to_string(getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::create_directories(dir_);
    Context::set_seed(1701);
  }
  void TearDown() override { fs::remove_all(dir_); }

  // A binaryproto of shape 1 x C x H x W, optionally with an eigen-decomposition.
  std::string write_mean(int channels, int height, int width, const std::vector<float>& values,
                         const std::vector<float>& eigenvalues = {},
                         const std::vector<float>& eigenvectors = {}) {
    BlobProto proto;
    proto.set_num(1);
    proto.set_channels(channels);
    proto.set_height(height);
    proto.set_width(width);
    for (float v : values) proto.add_data(v);
    for (float v : eigenvalues) proto.add_color_eigenvalues(v);
    for (float v : eigenvectors) proto.add_color_eigenvectors(v);
    const std::string path = (dir_ / ("mean" + std::to_string(files_++) + ".binaryproto")).string();
    write_binary_file(proto, path);
    return path;
  }

  fs::path dir_;
  int files_ = 0;
};

TEST_F(TransformerTest, SubtractsTheMeanFileThenScales) {
  const std::string mean = write_mean(1, 2, 3, {1, 2, 3, 4, 5, 6});
  DataTransformer transformer(
      transform_param("scale: 0.5 mean_file: '" + mean + "'"), TEST, "layer d (Data)");
  // pixels 10, 20, ..., 60
  const Datum datum = raw_datum(1, 2, 3, [](int, int h, int w) { return 10 * (h * 3 + w + 1); });
  EXPECT_EQ(run(transformer, datum),
            (std::vector<float>{4.5f, 9.0f, 13.5f, 18.0f, 22.5f, 27.0f}));
}

TEST_F(TransformerTest, CentreCropInTestCropsTheMeanAlong) {
  // pixel 10h + w on 4 x 5; mean h + w. Centre crop 2: rows 1-2, columns 1-2.
  std::vector<float> mean_values;
  for (int h = 0; h < 4; ++h)
    for (int w = 0; w < 5; ++w) mean_values.push_back(static_cast<float>(h + w));
  const std::string mean = write_mean(1, 4, 5, mean_values);
  DataTransformer transformer(transform_param("crop_size: 2 mean_file: '" + mean + "'"), TEST,
                              "layer d (Data)");
  const Datum datum = raw_datum(1, 4, 5, [](int, int h, int w) { return 10 * h + w; });
  EXPECT_EQ(transformer.slot_shape(datum), (std::vector<int>{1, 2, 2}));
  // (11 - 2), (12 - 3), (21 - 3), (22 - 4)
  EXPECT_EQ(run(transformer, datum), (std::vector<float>{9, 9, 18, 18}));
}

TEST_F(TransformerTest, RandomCropInTrainDrawsRowThenColumn) {
  DataTransformer transformer(transform_param("crop_size: 2"), TRAIN, "layer d (Data)");
  const Datum datum = raw_datum(1, 4, 5, [](int, int h, int w) { return 10 * h + w; });
  std::set<std::pair<int, int>> seen;
  for (int trial = 0; trial < 40; ++trial) {
    std::mt19937 copy = Context::rng();
    const int row = static_cast<int>(copy() % 3), column = static_cast<int>(copy() % 4);
    seen.insert({row, column});
    const float top_left = static_cast<float>(10 * row + column);
    EXPECT_EQ(run(transformer, datum),
              (std::vector<float>{top_left, top_left + 1, top_left + 10, top_left + 11}));
  }
  EXPECT_GT(seen.size(), 6u) << "offsets should vary";
}

TEST_F(TransformerTest, MirrorIsACoinFlipInBothPhases) {
  for (Phase phase : {TRAIN, TEST}) {
    DataTransformer transformer(transform_param("mirror: true"), phase, "layer d (Data)");
    const Datum datum = raw_datum(1, 1, 3, [](int, int, int w) { return w + 1; });
    int flipped = 0;
    for (int trial = 0; trial < 20; ++trial) {
      std::mt19937 copy = Context::rng();
      const bool mirror = copy() % 2;
      flipped += mirror;
      EXPECT_EQ(run(transformer, datum),
                mirror ? (std::vector<float>{3, 2, 1}) : (std::vector<float>{1, 2, 3}));
    }
    EXPECT_GT(flipped, 0);
    EXPECT_LT(flipped, 20);
  }
}

TEST_F(TransformerTest, MeanValuesPerChannelOrOneForAll) {
  const Datum datum = raw_datum(3, 1, 2, [](int c, int, int w) { return 10 * (c + 1) + w; });
  DataTransformer per_channel(transform_param("mean_value: 1 mean_value: 2 mean_value: 3 scale: 2"),
                              TEST, "layer d (Data)");
  EXPECT_EQ(run(per_channel, datum), (std::vector<float>{18, 20, 36, 38, 54, 56}));
  DataTransformer one(transform_param("mean_value: 10"), TEST, "layer d (Data)");
  EXPECT_EQ(run(one, datum), (std::vector<float>{0, 1, 10, 11, 20, 21}));
}

TEST_F(TransformerTest, FloatRecordsAndInterleavedImages) {
  Datum floats;
  floats.set_channels(1);
  floats.set_height(1);
  floats.set_width(3);
  for (float v : {0.5f, -1.0f, 2.0f}) floats.add_float_data(v);
  DataTransformer scaled(transform_param("scale: 2 mean_value: 1"), TEST, "layer d (Data)");
  EXPECT_EQ(run(scaled, floats), (std::vector<float>{-1, -4, 2}));

  // A BGR cv::Mat is interleaved; slots are planar.
  cv::Mat image(1, 2, CV_8UC3);
  image.at<cv::Vec3b>(0, 0) = cv::Vec3b(1, 2, 3);
  image.at<cv::Vec3b>(0, 1) = cv::Vec3b(4, 5, 6);
  DataTransformer plain(transform_param(""), TEST, "layer d (Data)");
  std::vector<float> out(6);
  plain.transform(image, {3, 1, 2}, out.data());
  EXPECT_EQ(out, (std::vector<float>{1, 4, 2, 5, 3, 6}));
}

TEST_F(TransformerTest, EncodedRecordsDecodeLikeRawOnes) {
  cv::Mat image(3, 4, CV_8UC3);
  for (int h = 0; h < 3; ++h)
    for (int w = 0; w < 4; ++w) image.at<cv::Vec3b>(h, w) = cv::Vec3b(10 * h + w, 50 + w, 100 + h);
  Datum raw;
  image_to_datum(image, 0, &raw);
  std::vector<uint8_t> png;
  ASSERT_TRUE(cv::imencode(".png", image, png));
  Datum encoded;
  encoded.set_encoded(true);
  encoded.set_data(std::string(png.begin(), png.end()));

  DataTransformer transformer(transform_param("crop_size: 2 mean_value: 5"), TEST,
                              "layer d (Data)");
  EXPECT_EQ(transformer.slot_shape(encoded), (std::vector<int>{3, 2, 2}));
  EXPECT_EQ(run(transformer, encoded), run(transformer, raw));

  DataTransformer gray(transform_param("force_gray: true"), TEST, "layer d (Data)");
  cv::Mat gray_image;
  cv::cvtColor(image, gray_image, cv::COLOR_BGR2GRAY);
  const std::vector<float> out = run(gray, encoded);
  ASSERT_EQ(out.size(), 12u);
  for (int h = 0; h < 3; ++h)
    for (int w = 0; w < 4; ++w) {
      // The decoder's own gray conversion may round differently from cvtColor's.
      EXPECT_NEAR(out[h * 4 + w], gray_image.at<uint8_t>(h, w), 1.0f);
    }
}

TEST_F(TransformerTest, TenCropsAreCornersCentreThenTheirMirrors) {
  DataTransformer transformer(transform_param("crop_size: 2 ten_crop: true mirror: true"), TEST,
                              "layer d (Data)");
  ASSERT_EQ(transformer.crops_per_image(), 10);
  // pixel 10h + w on 3 x 4; the centre crop starts at ((3-2)/2, (4-2)/2) = (0, 1).
  const Datum datum = raw_datum(1, 3, 4, [](int, int h, int w) { return 10 * h + w; });
  const std::vector<float> expected = {
      0,  1,  10, 11,  // top left
      2,  3,  12, 13,  // top right
      10, 11, 20, 21,  // bottom left
      12, 13, 22, 23,  // bottom right
      1,  2,  11, 12,  // centre
      1,  0,  11, 10,  // the same five, mirrored
      3,  2,  13, 12,  //
      11, 10, 21, 20,  //
      13, 12, 23, 22,  //
      2,  1,  12, 11};
  const std::mt19937 before = Context::rng();
  EXPECT_EQ(run(transformer, datum), expected);
  EXPECT_TRUE(before == Context::rng()) << "ten crops draw nothing";

  DataTransformer training(transform_param("crop_size: 2 ten_crop: true"), TRAIN,
                           "layer d (Data)");
  EXPECT_EQ(training.crops_per_image(), 1) << "ten_crop is for TEST only";
}

TEST_F(TransformerTest, LightingAddsTheDrawnEigenCombinationBeforeTheMean) {
  // Eigenvalues 510, 255, 127.5 (variances in 0..255 pixel units, that is 2, 1, 0.5 times 255)
  // with eigenvectors as rows: the offset is alpha * lambda / 255 along each.
  const std::vector<float> values = {510, 255, 127.5f};
  const std::vector<float> vectors = {0.6f, 0.8f, 0, -0.8f, 0.6f, 0, 0, 0, 1};
  const std::string eigen = write_mean(3, 1, 2, std::vector<float>(6, 1.0f), values, vectors);
  DataTransformer transformer(
      transform_param("lighting_std: 0.1 mean_value: 3 scale: 0.5 lighting_file: '" + eigen + "'"),
      TRAIN, "layer d (Data)");
  ASSERT_TRUE(transformer.lighting());
  const Datum datum = raw_datum(3, 1, 2, [](int c, int, int w) { return 100 + 10 * c + w; });
  for (int trial = 0; trial < 5; ++trial) {
    std::mt19937 copy = Context::rng();
    const std::vector<float> alphas = transformer.draw_lighting_alphas(copy);
    ASSERT_EQ(alphas.size(), 3u);
    const float offset[3] = {alphas[0] * 2 * 0.6f + alphas[1] * 1 * -0.8f,
                             alphas[0] * 2 * 0.8f + alphas[1] * 1 * 0.6f,
                             alphas[2] * 0.5f * 1};
    const std::vector<float> out = run(transformer, datum);
    for (int c = 0; c < 3; ++c) {
      for (int w = 0; w < 2; ++w) {
        EXPECT_NEAR(out[c * 2 + w], (100 + 10 * c + w + offset[c] - 3) * 0.5f, 1e-4f)
            << "channel " << c;
      }
    }
  }
  // The coefficients are N(0, lighting_std).
  std::mt19937 rng(7);
  double sum = 0, squares = 0;
  const int draws = 3000;
  for (int i = 0; i < draws; ++i) {
    for (float alpha : transformer.draw_lighting_alphas(rng)) {
      sum += alpha;
      squares += alpha * alpha;
    }
  }
  EXPECT_NEAR(sum / (3 * draws), 0.0, 0.01);
  EXPECT_NEAR(std::sqrt(squares / (3 * draws)), 0.1, 0.005);

  // TEST leaves the pixels alone; the mean file is the default eigen source.
  const std::string mean = write_mean(3, 1, 2, std::vector<float>(6, 0.0f), values, vectors);
  DataTransformer testing(transform_param("lighting_std: 0.1 mean_file: '" + mean + "'"), TEST,
                          "layer d (Data)");
  EXPECT_FALSE(testing.lighting());
  EXPECT_EQ(run(testing, datum), (std::vector<float>{100, 101, 110, 111, 120, 121}));
  DataTransformer from_mean(transform_param("lighting_std: 0.1 mean_file: '" + mean + "'"),
                            TRAIN, "layer d (Data)");
  EXPECT_TRUE(from_mean.lighting());
}

TEST_F(TransformerTest, OneChannelLightingIsAlphaLambdaP) {
  // lambda = 1020 (pixel units squared) is 4 * 255: the offset is alpha * 4 * p.
  const std::string eigen = write_mean(1, 1, 1, {0}, {1020}, {-1});
  DataTransformer transformer(
      transform_param("lighting_std: 0.5 lighting_file: '" + eigen + "'"), TRAIN, "layer d (Data)");
  const Datum datum = raw_datum(1, 1, 1, [](int, int, int) { return 50; });
  std::mt19937 copy = Context::rng();
  const float alpha = transformer.draw_lighting_alphas(copy)[0];
  EXPECT_NEAR(run(transformer, datum)[0], 50 - 4 * alpha, 1e-5f);
}

TEST_F(TransformerTest, ErrorsSayWhatWasExpectedAndFound) {
  const std::string mean = write_mean(1, 2, 3, std::vector<float>(6, 0.0f));
  const Datum big = raw_datum(1, 4, 5, [](int, int, int) { return 0; });
  const Datum small = raw_datum(1, 3, 4, [](int, int, int) { return 0; });
  const Datum colour = raw_datum(3, 2, 3, [](int, int, int) { return 0; });

  DataTransformer with_mean(transform_param("mean_file: '" + mean + "'"), TEST, "layer d (Data)");
  std::string message = error_of([&] { run(with_mean, big); });
  EXPECT_TRUE(contains(message, "layer d (Data): mean_file"));
  EXPECT_TRUE(contains(message, "is 1 x 2 x 3, but the image is 1 x 4 x 5"));
  message = error_of([&] { run(with_mean, colour); });
  EXPECT_TRUE(contains(message, "is 1 x 2 x 3, but the image is 3 x 2 x 3"));

  DataTransformer crop(transform_param("crop_size: 4"), TEST, "layer d (Data)");
  EXPECT_TRUE(contains(error_of([&] { run(crop, small); }),
                       "crop_size 4 is larger than the image (1 x 3 x 4)"));

  EXPECT_TRUE(contains(error_of([&] {
                         DataTransformer(
                             transform_param("mean_value: 1 mean_file: '" + mean + "'"), TEST,
                             "layer d (Data)");
                       }),
                       "both mean_file and mean_value"));
  DataTransformer two_means(transform_param("mean_value: 1 mean_value: 2"), TEST,
                            "layer d (Data)");
  EXPECT_TRUE(contains(error_of([&] { run(two_means, colour); }),
                       "2 mean_value entries for an image of 3 channel(s)"));

  EXPECT_TRUE(contains(error_of([&] {
                         DataTransformer(transform_param("ten_crop: true"), TEST, "layer d (Data)");
                       }),
                       "ten_crop needs a crop_size"));
  EXPECT_TRUE(contains(error_of([&] {
                         DataTransformer(transform_param("lighting_std: 0.1 mean_file: '" + mean +
                                                         "'"),
                                         TRAIN, "layer d (Data)");
                       }),
                       "needs color_eigenvalues and color_eigenvectors in " + mean));
  EXPECT_TRUE(contains(error_of([&] {
                         DataTransformer(transform_param("lighting_std: 0.1"), TRAIN,
                                         "layer d (Data)");
                       }),
                       "give lighting_file or a mean_file"));
  EXPECT_TRUE(contains(error_of([&] {
                         DataTransformer(transform_param("force_gray: true force_color: true"),
                                         TEST, "layer d (Data)");
                       }),
                       "both force_color and force_gray"));

  DataTransformer plain(transform_param(""), TEST, "layer d (Data)");
  std::vector<float> out(64);
  message = error_of([&] { plain.transform(big, {1, 3, 4}, out.data()); });
  EXPECT_TRUE(contains(message, "an image of 1 x 4 x 5 makes slots of 1 x 4 x 5, but the batch "
                                "holds 1 x 3 x 4"));
}

}  // namespace
}  // namespace engine
