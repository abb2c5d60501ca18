// import_onnx: an ONNX model as a net (prototxt) and its weights (caffemodel).
//
// The operators that export_onnx writes, and those that PyTorch writes for convolutional nets
// (Conv, BatchNormalization, Relu, Clip, MaxPool, AveragePool, GlobalAveragePool, Flatten, Gemm,
// Add, Concat, ...), map back to layers; Identity and Dropout become other names of their
// input. An operator without a mapping, a file that is not ONNX, or a dimension the engine
// cannot fix is an error that names the node or input. The net is then built and run through
// its shapes once, so that a pooling whose ONNX output size Caffe cannot give is an error too.
#pragma once

#include <string>
#include <vector>

#include "engine.pb.h"

namespace engine {

struct OnnxImportOptions {
  int batch = 1;  // the first dimension of inputs whose batch is symbolic
};

struct OnnxImport {
  NetParameter net;      // the layers, without weights
  NetParameter weights;  // the same layers with their blobs
  std::vector<std::string> notes;
};

OnnxImport import_onnx(const std::string& path, const OnnxImportOptions& options);

}  // namespace engine
