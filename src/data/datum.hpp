// Datum <-> image conversions, the one place that knows Caffe's record layout: uint8 pixels as
// channels x height x width in OpenCV's BGR order, or (encoded) an image file's bytes, decoded
// with OpenCV when read. Float records (float_data) have no image form.
#pragma once

#include <string>

#include <opencv2/core.hpp>

#include "engine.pb.h"

namespace engine {

// Reads an image file: 3-channel BGR when `color`, else 1-channel gray; resized to height x width
// when both are positive. Throws engine::Error naming the file when it cannot be read.
cv::Mat read_image(const std::string& path, bool color, int height = 0, int width = 0);

// Raw record from an 8-bit image (1 or 3 channels).
void image_to_datum(const cv::Mat& image, int label, Datum* datum);

// Encoded record: the file's bytes as they are when `format` is empty and the image needs no
// resizing; else the image (resized, color or gray) re-encoded as `format` ("jpg", "png").
void file_to_encoded_datum(const std::string& path, int label, bool color, int height, int width,
                           const std::string& format, Datum* datum);

// The record's pixels as an 8-bit image (HxW, BGR or gray), decoding encoded records.
// force_color / force_gray convert decoded images as Caffe's transformer options ask.
// Throws engine::Error for a record that does not decode or whose size disagrees with its
// channels/height/width.
cv::Mat datum_to_image(const Datum& datum, bool force_color = false, bool force_gray = false);

}  // namespace engine
