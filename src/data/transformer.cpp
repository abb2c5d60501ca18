#include "data/transformer.hpp"

#include <array>
#include <cstdint>

#include "core/blob.hpp"
#include "core/context.hpp"
#include "core/errors.hpp"
#include "data/datum.hpp"
#include "io/prototxt.hpp"

namespace engine {

namespace {

std::string shape_text(int channels, int height, int width) {
  return std::to_string(channels) + " x " + std::to_string(height) + " x " + std::to_string(width);
}

std::string shape_text(const std::vector<int>& shape) {
  return shape_text(shape[0], shape[1], shape[2]);
}

// Where one crop starts and whether it is flipped.
struct Crop {
  int row, column;
  bool mirror;
};

// One output row: out[w] (or out[width - 1 - w] when mirrored) = ((x + light) - mean) * scale.
// The mean is a row of the mean file (kMeanFile) or one value for the channel; the lighting
// addition is compiled out when off, so that without it the arithmetic is Caffe's exactly.
template <typename Pixel, bool kMeanFile, bool kLighting>
void transform_row(const Pixel* pixels, long column_stride, int width, const float* mean_row,
                   float mean_value, float light, float scale, bool mirror, float* out) {
  float* target = mirror ? out + width - 1 : out;
  const long step = mirror ? -1 : 1;
  for (int w = 0; w < width; ++w, target += step) {
    float x = static_cast<float>(pixels[w * column_stride]);
    if (kLighting) x += light;
    const float mean = kMeanFile ? mean_row[w] : mean_value;
    *target = (x - mean) * scale;
  }
}

}  // namespace

DataTransformer::DataTransformer(const TransformationParameter& param, Phase phase,
                                 const std::string& owner)
    : param_(param), phase_(phase), owner_(owner) {
  ENGINE_REQUIRE(!(param_.force_color() && param_.force_gray()),
                 owner_ << ": transform_param sets both force_color and force_gray; choose one");
  ENGINE_REQUIRE(!(param_.has_mean_file() && param_.mean_value_size() > 0),
                 owner_ << ": transform_param gives both mean_file and mean_value; use one");
  ENGINE_REQUIRE(param_.lighting_std() >= 0,
                 owner_ << ": lighting_std must not be negative, got " << param_.lighting_std());
  mean_values_.assign(param_.mean_value().begin(), param_.mean_value().end());

  BlobProto mean_proto;
  if (param_.has_mean_file()) {
    read_binary_file(param_.mean_file(), &mean_proto);
    Blob mean;
    mean.from_proto(mean_proto);
    const int axes = mean.num_axes();
    ENGINE_REQUIRE((axes == 3 || axes == 4) && (axes == 3 || mean.shape(0) == 1),
                   owner_ << ": mean_file " << param_.mean_file()
                          << " should hold one C x H x W image, but its shape is "
                          << mean.shape_string());
    mean_channels_ = mean.shape(-3);
    mean_height_ = mean.shape(-2);
    mean_width_ = mean.shape(-1);
    mean_.assign(mean.cpu_data(), mean.cpu_data() + mean.count());
  }

  ten_crop_ = param_.ten_crop() && phase_ == TEST;
  ENGINE_REQUIRE(!ten_crop_ || param_.crop_size() > 0,
                 owner_ << ": ten_crop needs a crop_size (the size of the ten crops)");

  lighting_ = param_.lighting_std() > 0 && phase_ == TRAIN;
  if (lighting_) {
    const std::string file =
        param_.has_lighting_file() ? param_.lighting_file() : param_.mean_file();
    ENGINE_REQUIRE(!file.empty(), owner_ << ": lighting_std needs the colour eigen-decomposition: "
                                            "give lighting_file or a mean_file that holds it");
    BlobProto eigen_proto;
    if (file == param_.mean_file()) {
      eigen_proto = mean_proto;
    } else {
      read_binary_file(file, &eigen_proto);
    }
    const int channels = eigen_proto.color_eigenvalues_size();
    ENGINE_REQUIRE(channels > 0 && eigen_proto.color_eigenvectors_size() == channels * channels,
                   owner_ << ": lighting_std needs color_eigenvalues and color_eigenvectors in "
                          << file << ", which has " << channels << " eigenvalues and "
                          << eigen_proto.color_eigenvectors_size()
                          << " eigenvector entries (compute_image_mean writes them)");
    eigenvalues_.assign(eigen_proto.color_eigenvalues().begin(),
                        eigen_proto.color_eigenvalues().end());
    eigenvectors_.assign(eigen_proto.color_eigenvectors().begin(),
                         eigen_proto.color_eigenvectors().end());
  }
}

void DataTransformer::validate(int channels, int height, int width) const {
  ENGINE_REQUIRE(channels > 0 && height > 0 && width > 0,
                 owner_ << ": an image has no pixels (" << shape_text(channels, height, width)
                        << ")");
  const int crop = static_cast<int>(param_.crop_size());
  ENGINE_REQUIRE(crop <= height && crop <= width,
                 owner_ << ": crop_size " << crop << " is larger than the image ("
                        << shape_text(channels, height, width) << ")");
  ENGINE_REQUIRE(mean_.empty() || (channels == mean_channels_ && height == mean_height_ &&
                                   width == mean_width_),
                 owner_ << ": mean_file " << param_.mean_file() << " is "
                        << shape_text(mean_channels_, mean_height_, mean_width_)
                        << ", but the image is " << shape_text(channels, height, width)
                        << "; the mean must have the images' size (before cropping)");
  const int values = static_cast<int>(mean_values_.size());
  ENGINE_REQUIRE(values == 0 || values == 1 || values == channels,
                 owner_ << ": " << values << " mean_value entries for an image of " << channels
                        << " channel(s); give one, or one per channel");
  ENGINE_REQUIRE(!lighting_ || static_cast<int>(eigenvalues_.size()) == channels,
                 owner_ << ": the lighting eigen-decomposition is for " << eigenvalues_.size()
                        << " channel(s), but the image has " << channels);
}

std::vector<int> DataTransformer::slot_shape(int channels, int height, int width) const {
  validate(channels, height, width);
  const int crop = static_cast<int>(param_.crop_size());
  return {channels, crop ? crop : height, crop ? crop : width};
}

std::vector<int> DataTransformer::slot_shape(const Datum& datum) const {
  if (datum.encoded()) {
    const cv::Mat image = datum_to_image(datum, param_.force_color(), param_.force_gray());
    return slot_shape(image.channels(), image.rows, image.cols);
  }
  const std::vector<int> slot = slot_shape(datum.channels(), datum.height(), datum.width());
  // Checked here too, before a batch is shaped after the record: a corrupt record's
  // dimensions could ask for any amount of memory.
  require_record_size(datum);
  return slot;
}

void DataTransformer::require_record_size(const Datum& datum) const {
  const int channels = datum.channels(), height = datum.height(), width = datum.width();
  const size_t size = size_t(channels) * height * width;
  if (!datum.data().empty()) {
    ENGINE_REQUIRE(datum.data().size() == size,
                   owner_ << ": a record of " << shape_text(channels, height, width) << " holds "
                          << datum.data().size() << " bytes; it needs " << size);
  } else {
    ENGINE_REQUIRE(static_cast<size_t>(datum.float_data_size()) == size,
                   owner_ << ": a record of " << shape_text(channels, height, width) << " holds "
                          << datum.float_data_size() << " float values; it needs " << size);
  }
}

std::vector<float> DataTransformer::draw_lighting_alphas(std::mt19937& rng) const {
  std::normal_distribution<float> gaussian(0.0f, param_.lighting_std());
  std::vector<float> alphas(eigenvalues_.size());
  for (float& alpha : alphas) alpha = gaussian(rng);
  return alphas;
}

// The paper's noise is sum_i alpha_i lambda_i p_i for pixels scaled to [0, 1]. The eigenvalues
// are variances of 0..255 pixel values, 255^2 times those of [0, 1] pixels, and the offset is
// wanted in 0..255 units: 255 * alpha * (lambda / 255^2) = alpha * lambda / 255.
constexpr float kPixelRange = 255.0f;

std::vector<float> DataTransformer::lighting_offset(const std::vector<float>& alphas) const {
  const size_t channels = eigenvalues_.size();
  CHECK_EQ(alphas.size(), channels);
  std::vector<float> offset(channels, 0.0f);
  for (size_t i = 0; i < channels; ++i) {
    const float weight = alphas[i] * eigenvalues_[i] / kPixelRange;
    for (size_t c = 0; c < channels; ++c) offset[c] += weight * eigenvectors_[i * channels + c];
  }
  return offset;
}

template <typename Pixel>
void DataTransformer::transform_planes(const Pixel* pixels, int channels, int height, int width,
                                       long channel_stride, long row_stride, long column_stride,
                                       const std::vector<int>& slot, float* out) const {
  const std::vector<int> made = slot_shape(channels, height, width);
  ENGINE_REQUIRE(made == slot,
                 owner_ << ": an image of " << shape_text(channels, height, width)
                        << " makes slots of " << shape_text(made) << ", but the batch holds "
                        << shape_text(slot)
                        << " (shaped from the first record); records must share one size "
                           "unless crop_size crops them to one");
  const int out_height = slot[1], out_width = slot[2];
  const int crop = static_cast<int>(param_.crop_size());

  // Draws in Caffe's order: mirror coin, row offset, column offset; then our lighting.
  std::mt19937& rng = Context::rng();
  std::array<Crop, 10> crops;
  int count = 1;
  if (ten_crop_) {
    const int bottom = height - crop, right = width - crop;
    const Crop corners[5] = {{0, 0, false},      {0, right, false},         {bottom, 0, false},
                             {bottom, right, false}, {bottom / 2, right / 2, false}};
    for (int k = 0; k < 5; ++k) {
      crops[k] = corners[k];
      crops[k + 5] = corners[k];
      crops[k + 5].mirror = true;
    }
    count = 10;
  } else {
    Crop& only = crops[0];
    only.mirror = param_.mirror() && rng() % 2;
    only.row = only.column = 0;
    if (crop) {
      if (phase_ == TRAIN) {
        only.row = static_cast<int>(rng() % static_cast<unsigned>(height - crop + 1));
        only.column = static_cast<int>(rng() % static_cast<unsigned>(width - crop + 1));
      } else {
        only.row = (height - crop) / 2;
        only.column = (width - crop) / 2;
      }
    }
  }
  std::vector<float> light(channels, 0.0f);
  if (lighting_) light = lighting_offset(draw_lighting_alphas(rng));

  const float scale = param_.scale();
  const bool has_mean_file = !mean_.empty();
  const size_t slot_size = size_t(channels) * out_height * out_width;
  for (int k = 0; k < count; ++k) {
    const Crop& at = crops[k];
    for (int c = 0; c < channels; ++c) {
      const float mean_value = mean_values_.empty()      ? 0.0f
                               : mean_values_.size() == 1 ? mean_values_[0]
                                                          : mean_values_[c];
      for (int h = 0; h < out_height; ++h) {
        const Pixel* row = pixels + c * channel_stride + (at.row + h) * row_stride +
                           at.column * column_stride;
        const float* mean_row =
            has_mean_file ? mean_.data() + (size_t(c) * height + at.row + h) * width + at.column
                          : nullptr;
        float* target = out + k * slot_size + (size_t(c) * out_height + h) * out_width;
        if (has_mean_file) {
          if (lighting_) {
            transform_row<Pixel, true, true>(row, column_stride, out_width, mean_row, 0, light[c],
                                             scale, at.mirror, target);
          } else {
            transform_row<Pixel, true, false>(row, column_stride, out_width, mean_row, 0, 0,
                                              scale, at.mirror, target);
          }
        } else if (lighting_) {
          transform_row<Pixel, false, true>(row, column_stride, out_width, nullptr, mean_value,
                                            light[c], scale, at.mirror, target);
        } else {
          transform_row<Pixel, false, false>(row, column_stride, out_width, nullptr, mean_value, 0,
                                             scale, at.mirror, target);
        }
      }
    }
  }
}

void DataTransformer::transform(const cv::Mat& image, const std::vector<int>& slot,
                                float* out) const {
  ENGINE_REQUIRE(image.depth() == CV_8U,
                 owner_ << ": images must have 8-bit pixels (OpenCV depth " << image.depth()
                        << ")");
  const int channels = image.channels();
  transform_planes(image.ptr<uint8_t>(0), channels, image.rows, image.cols, 1,
                   static_cast<long>(image.step[0]), channels, slot, out);
}

void DataTransformer::transform(const Datum& datum, const std::vector<int>& slot,
                                float* out) const {
  if (datum.encoded()) {
    transform(datum_to_image(datum, param_.force_color(), param_.force_gray()), slot, out);
    return;
  }
  const int channels = datum.channels(), height = datum.height(), width = datum.width();
  ENGINE_REQUIRE(channels > 0 && height > 0 && width > 0,
                 owner_ << ": a record has no pixels (" << shape_text(channels, height, width)
                        << ")");
  require_record_size(datum);
  const long plane = long(height) * width;
  if (!datum.data().empty()) {
    transform_planes(reinterpret_cast<const uint8_t*>(datum.data().data()), channels, height,
                     width, plane, width, 1, slot, out);
  } else {
    transform_planes(datum.float_data().data(), channels, height, width, plane, width, 1, slot,
                     out);
  }
}

}  // namespace engine
