// DataTransformer: one image (a Datum, or an 8-bit cv::Mat) into float C x H x W slot(s) of a
// batch, by Caffe's TransformationParameter: crop (random offsets in TRAIN, centred in TEST),
// mirror (a coin flip whenever `mirror` is set, in both phases, as Caffe does), then
// out = (x - mean) * scale with mean_file (cropped along with the image) or mean_value.
//
// Our additions: lighting noise in TRAIN (the AlexNet paper's PCA colour augmentation, added to
// the pixels before the mean is subtracted), and ten_crop in TEST (the four corners and the
// centre, then the same five mirrored, consecutive slots).
//
// Random draws come from the calling thread's Context generator, in Caffe's order: the mirror
// coin (rng() % 2), the crop's row then column offset (rng() % (room + 1)), then one Gaussian
// per channel for the lighting. The transformer itself is immutable after construction, so
// prefetch threads share one.
//
// User errors (a mean of another shape, a crop larger than the image, a channel count that does
// not match the mean or the mean_value count) throw engine::Error prefixed by `owner`.
#pragma once

#include <random>
#include <string>
#include <vector>

#include <opencv2/core.hpp>

#include "engine.pb.h"

namespace engine {

class DataTransformer {
 public:
  // Loads the mean file and the colour eigen-decomposition the parameters name. `owner` (the
  // layer's describe()) prefixes every error message.
  DataTransformer(const TransformationParameter& param, Phase phase, const std::string& owner);

  // Slots each image fills: 10 with ten_crop in TEST, else 1.
  int crops_per_image() const { return ten_crop_ ? 10 : 1; }
  // The {C, H, W} shape of one slot made from an image of that size; validates the size
  // against the crop, the mean and the mean values.
  std::vector<int> slot_shape(int channels, int height, int width) const;
  // The slot shape of a record (decoding it when encoded).
  std::vector<int> slot_shape(const Datum& datum) const;

  // Writes crops_per_image() consecutive slots of shape `slot` at `out`. An image whose slots
  // would have another shape (a record of another size where nothing crops it to the batch's)
  // fails, naming both shapes.
  void transform(const Datum& datum, const std::vector<int>& slot, float* out) const;
  void transform(const cv::Mat& image, const std::vector<int>& slot, float* out) const;

  // The lighting noise, exposed for tests: the per-channel coefficients alpha_i ~ N(0, std) as
  // transform draws them, and the offset sum_i alpha_i * lambda_i * p_i[c] added to channel c.
  bool lighting() const { return lighting_; }
  std::vector<float> draw_lighting_alphas(std::mt19937& rng) const;
  std::vector<float> lighting_offset(const std::vector<float>& alphas) const;

 private:
  template <typename Pixel>
  void transform_planes(const Pixel* pixels, int channels, int height, int width,
                        long channel_stride, long row_stride, long column_stride,
                        const std::vector<int>& slot, float* out) const;
  void validate(int channels, int height, int width) const;
  // A raw record holds channels x height x width bytes or float values.
  void require_record_size(const Datum& datum) const;

  TransformationParameter param_;
  Phase phase_;
  std::string owner_;
  bool ten_crop_ = false;
  bool lighting_ = false;
  // Mean file: C x H x W, planar.
  std::vector<float> mean_;
  int mean_channels_ = 0, mean_height_ = 0, mean_width_ = 0;
  std::vector<float> mean_values_;
  std::vector<float> eigenvalues_;   // C
  std::vector<float> eigenvectors_;  // C x C, row i the eigenvector of eigenvalue i
};

}  // namespace engine
