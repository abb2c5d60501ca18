#include "onnx/onnx_graph.hpp"

#include <algorithm>
#include <cstring>

namespace engine::onnx_io {

onnx::NodeProto* GraphBuilder::node(const std::string& op, const std::vector<std::string>& inputs,
                                    const std::vector<std::string>& outputs,
                                    const std::string& name) {
  onnx::NodeProto* node = graph_->add_node();
  node->set_op_type(op);
  node->set_name(name);
  for (int i = 2; !node_names_.insert(node->name()).second; ++i) {
    node->set_name(name + "_" + std::to_string(i));
  }
  for (const auto& input : inputs) node->add_input(input);
  for (const auto& output : outputs) node->add_output(output);
  return node;
}

std::string GraphBuilder::weights(const std::string& name, const std::vector<int64_t>& shape,
                                  const float* values) {
  onnx::TensorProto* tensor = graph_->add_initializer();
  tensor->set_name(fresh(name));
  tensor->set_data_type(onnx::TensorProto::FLOAT);
  int64_t count = 1;
  for (int64_t dim : shape) {
    tensor->add_dims(dim);
    count *= dim;
  }
  tensor->set_raw_data(std::string(reinterpret_cast<const char*>(values), count * sizeof(float)));
  return tensor->name();
}

std::string GraphBuilder::scalar(const std::string& name, float value) {
  return weights(name, {}, &value);
}

std::string GraphBuilder::int64s(const std::string& name, const std::vector<int64_t>& values) {
  onnx::TensorProto* tensor = graph_->add_initializer();
  tensor->set_name(fresh(name));
  tensor->set_data_type(onnx::TensorProto::INT64);
  tensor->add_dims(static_cast<int64_t>(values.size()));
  tensor->set_raw_data(
      std::string(reinterpret_cast<const char*>(values.data()), values.size() * sizeof(int64_t)));
  return tensor->name();
}

std::string GraphBuilder::fresh(const std::string& base) {
  std::string name = base;
  for (int i = 2; !taken_.insert(name).second; ++i) name = base + "_" + std::to_string(i);
  return name;
}

namespace {
void describe_tensor(onnx::ValueInfoProto* value, const std::string& name,
                     const std::vector<int64_t>& shape, bool dynamic_batch) {
  value->set_name(name);
  onnx::TypeProto_Tensor* type = value->mutable_type()->mutable_tensor_type();
  type->set_elem_type(onnx::TensorProto::FLOAT);
  onnx::TensorShapeProto* dims = type->mutable_shape();
  for (size_t i = 0; i < shape.size(); ++i) {
    if (i == 0 && dynamic_batch) {
      dims->add_dim()->set_dim_param("N");
    } else {
      dims->add_dim()->set_dim_value(shape[i]);
    }
  }
}
}  // namespace

void GraphBuilder::input(const std::string& name, const std::vector<int64_t>& shape,
                         bool dynamic_batch) {
  describe_tensor(graph_->add_input(), name, shape, dynamic_batch);
}

void GraphBuilder::output(const std::string& name, const std::vector<int64_t>& shape,
                          bool dynamic_batch) {
  describe_tensor(graph_->add_output(), name, shape, dynamic_batch);
}

void set_attribute(onnx::NodeProto* node, const std::string& name, int64_t value) {
  onnx::AttributeProto* attribute = node->add_attribute();
  attribute->set_name(name);
  attribute->set_type(onnx::AttributeProto::INT);
  attribute->set_i(value);
}

void set_attribute(onnx::NodeProto* node, const std::string& name, float value) {
  onnx::AttributeProto* attribute = node->add_attribute();
  attribute->set_name(name);
  attribute->set_type(onnx::AttributeProto::FLOAT);
  attribute->set_f(value);
}

void set_attribute(onnx::NodeProto* node, const std::string& name,
                   const std::vector<int64_t>& values) {
  onnx::AttributeProto* attribute = node->add_attribute();
  attribute->set_name(name);
  attribute->set_type(onnx::AttributeProto::INTS);
  for (int64_t value : values) attribute->add_ints(value);
}

void set_attribute(onnx::NodeProto* node, const std::string& name, const std::string& value) {
  onnx::AttributeProto* attribute = node->add_attribute();
  attribute->set_name(name);
  attribute->set_type(onnx::AttributeProto::STRING);
  attribute->set_s(value);
}

}  // namespace engine::onnx_io
