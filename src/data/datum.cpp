#include "data/datum.hpp"

#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include <vector>

#include "core/errors.hpp"
#include "io/prototxt.hpp"

namespace engine {

cv::Mat read_image(const std::string& path, bool color, int height, int width) {
  cv::Mat image;
  try {
    image = cv::imread(path, color ? cv::IMREAD_COLOR : cv::IMREAD_GRAYSCALE);
  } catch (const cv::Exception&) {  // OpenCV asserts on some corrupt images
    image.release();
  }
  ENGINE_REQUIRE(!image.empty(), path << ": cannot read the image (missing, or not an image "
                                         "format OpenCV decodes)");
  if (height > 0 && width > 0 && (image.rows != height || image.cols != width)) {
    cv::Mat resized;
    cv::resize(image, resized, cv::Size(width, height));
    return resized;
  }
  return image;
}

void image_to_datum(const cv::Mat& image, int label, Datum* datum) {
  CHECK_EQ(image.depth(), CV_8U) << "image_to_datum needs 8-bit pixels";
  const int channels = image.channels();
  datum->Clear();
  datum->set_channels(channels);
  datum->set_height(image.rows);
  datum->set_width(image.cols);
  datum->set_label(label);
  datum->set_encoded(false);
  std::string* data = datum->mutable_data();
  data->resize(size_t(channels) * image.rows * image.cols);
  // Interleaved HxWxC to planar CxHxW.
  for (int h = 0; h < image.rows; ++h) {
    const uint8_t* row = image.ptr<uint8_t>(h);
    for (int w = 0; w < image.cols; ++w) {
      for (int c = 0; c < channels; ++c) {
        (*data)[(size_t(c) * image.rows + h) * image.cols + w] =
            static_cast<char>(row[w * channels + c]);
      }
    }
  }
}

void file_to_encoded_datum(const std::string& path, int label, bool color, int height, int width,
                           const std::string& format, Datum* datum) {
  const cv::Mat image = read_image(path, color, height, width);
  datum->Clear();
  datum->set_label(label);
  datum->set_encoded(true);
  const bool resized = height > 0 && width > 0;
  if (format.empty() && !resized) {
    datum->set_data(read_file(path));
  } else {
    std::vector<uint8_t> bytes;
    const std::string extension = "." + (format.empty() ? std::string("png") : format);
    ENGINE_REQUIRE(cv::imencode(extension, image, bytes),
                   path << ": cannot encode the image as " << extension);
    datum->set_data(std::string(bytes.begin(), bytes.end()));
  }
  // Caffe leaves the shape of encoded records unset; readers take it from the decoded image.
}

cv::Mat datum_to_image(const Datum& datum, bool force_color, bool force_gray) {
  if (datum.encoded()) {
    const std::string& bytes = datum.data();
    const cv::Mat buffer(1, static_cast<int>(bytes.size()), CV_8U,
                         const_cast<char*>(bytes.data()));
    const int mode = force_color  ? cv::IMREAD_COLOR
                     : force_gray ? cv::IMREAD_GRAYSCALE
                                  : cv::IMREAD_ANYCOLOR;
    cv::Mat image;
    try {
      if (!bytes.empty()) image = cv::imdecode(buffer, mode);
    } catch (const cv::Exception&) {  // OpenCV asserts on some corrupt images
      image.release();
    }
    ENGINE_REQUIRE(!image.empty(), "an encoded record does not decode as an image ("
                                       << bytes.size() << " bytes)");
    return image;
  }
  const int channels = datum.channels(), height = datum.height(), width = datum.width();
  ENGINE_REQUIRE(channels > 0 && height > 0 && width > 0,
                 "a record has no pixels (channels " << channels << ", height " << height
                                                     << ", width " << width << ")");
  ENGINE_REQUIRE(channels <= CV_CN_MAX, "a record has " << channels
                                                        << " channels; images have at most "
                                                        << CV_CN_MAX);
  ENGINE_REQUIRE(datum.data().size() == size_t(channels) * height * width,
                 "a record holds " << datum.data().size() << " bytes, but " << channels << " x "
                                   << height << " x " << width << " needs "
                                   << size_t(channels) * height * width);
  cv::Mat image(height, width, CV_8UC(channels));
  const std::string& data = datum.data();
  for (int h = 0; h < height; ++h) {
    uint8_t* row = image.ptr<uint8_t>(h);
    for (int w = 0; w < width; ++w) {
      for (int c = 0; c < channels; ++c) {
        row[w * channels + c] = static_cast<uint8_t>(data[(size_t(c) * height + h) * width + w]);
      }
    }
  }
  if (force_gray && channels == 3) cv::cvtColor(image, image, cv::COLOR_BGR2GRAY);
  if (force_color && channels == 1) cv::cvtColor(image, image, cv::COLOR_GRAY2BGR);
  return image;
}

}  // namespace engine
