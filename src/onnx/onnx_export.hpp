// export_onnx: a built Net (its layers, shapes and weights) as an ONNX model, for inference.
//
// Every layer that ONNX can express becomes one or a few standard operators with the same
// numbers: Caffe's ceil-mode pooling and its clipping of the last window become explicit end
// padding; average pooling keeps Caffe's divisor (the window within the padded input); LRN keeps
// Caffe's alpha / size; BatchNorm takes its stored scale factor, and a Scale right after it folds
// into the same BatchNormalization. In-place layers get fresh tensor names (ONNX tensors are
// written once). Losses, Accuracy and Silence are dropped, and data layers become graph inputs:
// the report lists what was dropped or replaced. Any other layer ONNX cannot express is an
// error naming it.
#pragma once

#include <string>
#include <vector>

#include "core/net.hpp"

namespace engine {

struct OnnxExportOptions {
  int opset = 13;              // 13 to 21
  bool dynamic_batch = false;  // the inputs' first dimension symbolic ("N")
};

struct OnnxExportReport {
  std::vector<std::string> notes;  // "dropped layer loss (SoftmaxWithLoss): ..." and the like
  std::vector<std::string> inputs, outputs;
  std::vector<std::string> output_blobs;  // the net's blob each output holds (in-place layers
                                          // give their tensors fresh names)
  int nodes = 0;
};

// Writes the model to `path` atomically.
OnnxExportReport export_onnx(const Net& net, const std::string& path,
                             const OnnxExportOptions& options);

}  // namespace engine
