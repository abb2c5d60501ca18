// GraphBuilder: writes an ONNX graph (onnx.proto from Debian's libonnx-dev, compiled by our
// protobuf) one node at a time: unique tensor names, attributes by kind, weights as float
// initializers, shape constants as int64 initializers.
#pragma once

#include <cstdint>
#include <set>
#include <string>
#include <vector>

#include "onnx.pb.h"

namespace engine::onnx_io {

class GraphBuilder {
 public:
  explicit GraphBuilder(onnx::GraphProto* graph) : graph_(graph) {}

  // A node; returns it so that attributes can be added.
  onnx::NodeProto* node(const std::string& op, const std::vector<std::string>& inputs,
                        const std::vector<std::string>& outputs, const std::string& name);
  // A float tensor with the values given (weights, coefficients); returns its name.
  std::string weights(const std::string& name, const std::vector<int64_t>& shape,
                      const float* values);
  std::string scalar(const std::string& name, float value);
  // An int64 tensor (shapes, split sizes, slice bounds); returns its name.
  std::string int64s(const std::string& name, const std::vector<int64_t>& values);
  // A name no tensor has yet: `base`, or base_2, base_3, ...
  std::string fresh(const std::string& base);

  // Graph inputs and outputs: float tensors of `shape`, the first dimension "N" if dynamic.
  void input(const std::string& name, const std::vector<int64_t>& shape, bool dynamic_batch);
  void output(const std::string& name, const std::vector<int64_t>& shape, bool dynamic_batch);

 private:
  onnx::GraphProto* graph_;
  std::set<std::string> taken_;       // tensor names
  std::set<std::string> node_names_;
};

void set_attribute(onnx::NodeProto* node, const std::string& name, int64_t value);
void set_attribute(onnx::NodeProto* node, const std::string& name, float value);
void set_attribute(onnx::NodeProto* node, const std::string& name,
                   const std::vector<int64_t>& values);
void set_attribute(onnx::NodeProto* node, const std::string& name, const std::string& value);

}  // namespace engine::onnx_io
