#include "onnx/onnx_import.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <fstream>
#include <map>
#include <memory>
#include <set>
#include <sstream>

#include "core/errors.hpp"
#include "core/net.hpp"
#include "onnx.pb.h"

namespace engine {
namespace {

using Dims = std::vector<int64_t>;

// A constant: an initializer or a Constant node's value, as floats (and int64s where it is one).
struct Constant {
  Dims shape;
  std::vector<float> values;
  std::vector<int64_t> integers;
  int64_t count() const {
    int64_t n = 1;
    for (int64_t d : shape) n *= d;
    return n;
  }
};

// A tensor's values, from raw_data (little-endian, as ONNX stores them) or its typed field.
template <typename T, typename Repeated>
std::vector<T> tensor_values(const onnx::TensorProto& tensor, const Repeated& typed, int64_t count,
                             const std::string& where) {
  const std::string& raw = tensor.raw_data();
  const size_t given = raw.empty() ? size_t(typed.size()) : raw.size() / sizeof(T);
  ENGINE_REQUIRE(given == size_t(count) && raw.size() % sizeof(T) == 0,
                 where << ": tensor " << tensor.name() << " has "
                       << (raw.empty() ? typed.size() : int64_t(raw.size())) << " "
                       << (raw.empty() ? "values" : "bytes of data") << " for " << count
                       << " elements");
  if (raw.empty()) return std::vector<T>(typed.begin(), typed.end());
  std::vector<T> values(count);
  std::memcpy(values.data(), raw.data(), raw.size());
  return values;
}

Constant read_tensor(const onnx::TensorProto& tensor, const std::string& where) {
  Constant constant;
  constant.shape.assign(tensor.dims().begin(), tensor.dims().end());
  const int64_t count = constant.count();
  ENGINE_REQUIRE(count >= 0 && count < (int64_t(1) << 34),
                 where << ": tensor " << tensor.name() << " has an impossible size");
  ENGINE_REQUIRE(tensor.data_location() != onnx::TensorProto::EXTERNAL,
                 where << ": tensor " << tensor.name()
                       << " keeps its data in an external file, which import does not read");
  switch (tensor.data_type()) {
    case onnx::TensorProto::FLOAT:
      constant.values = tensor_values<float>(tensor, tensor.float_data(), count, where);
      break;
    case onnx::TensorProto::INT64:
      constant.integers = tensor_values<int64_t>(tensor, tensor.int64_data(), count, where);
      constant.values.assign(constant.integers.begin(), constant.integers.end());
      break;
    default:
      ENGINE_FAIL(where << ": tensor " << tensor.name() << " has element type "
                        << tensor.data_type() << "; import reads float and int64 tensors");
  }
  return constant;
}

class Importer {
 public:
  Importer(const onnx::ModelProto& model, const OnnxImportOptions& options, OnnxImport* result)
      : model_(model), options_(options), result_(result) {}

  void run() {
    const onnx::GraphProto& graph = model_.graph();
    for (const auto& tensor : graph.initializer()) {
      constants_[tensor.name()] = read_tensor(tensor, "initializer");
    }
    result_->net.set_name(graph.name());
    for (const auto& input : graph.input()) {
      if (!constants_.count(input.name())) add_input(input);
    }
    for (node_ = 0; node_ < graph.node_size(); ++node_) convert(graph.node(node_));
  }

 private:
  const onnx::NodeProto& node() const { return model_.graph().node(node_); }
  std::string where() const {
    return "node " + (node().name().empty() ? std::to_string(node_) : node().name()) + " (" +
           node().op_type() + ")";
  }
  std::string layer_name() {
    std::string base = node().name().empty() ? node().op_type() + "_" + std::to_string(node_)
                                             : node().name();
    std::string name = base;
    for (int i = 2; !layer_names_.insert(name).second; ++i) name = base + "_" + std::to_string(i);
    return name;
  }

  // ---- attributes ----------------------------------------------------------------------------
  const onnx::AttributeProto* attribute(const std::string& name) const {
    for (const auto& a : node().attribute()) {
      if (a.name() == name) return &a;
    }
    return nullptr;
  }
  int64_t int_attribute(const std::string& name, int64_t fallback) const {
    const auto* a = attribute(name);
    return a ? a->i() : fallback;
  }
  float float_attribute(const std::string& name, float fallback) const {
    const auto* a = attribute(name);
    return a ? a->f() : fallback;
  }
  Dims ints_attribute(const std::string& name) const {
    const auto* a = attribute(name);
    return a ? Dims(a->ints().begin(), a->ints().end()) : Dims();
  }
  std::string string_attribute(const std::string& name) const {
    const auto* a = attribute(name);
    return a ? a->s() : std::string();
  }

  // ---- tensors -------------------------------------------------------------------------------
  bool is_constant(int input) const {
    return input < node().input_size() && constants_.count(node().input(input));
  }
  const Constant& constant(int input) const {
    ENGINE_REQUIRE(is_constant(input), where() << ": input " << input
                                               << " must be a constant (an initializer)");
    return constants_.at(node().input(input));
  }
  // The blob that holds a tensor (Identity and Dropout give tensors second names).
  std::string blob(int input) const {
    ENGINE_REQUIRE(input < node().input_size() && !node().input(input).empty(),
                   where() << ": has no input " << input);
    const std::string& tensor = node().input(input);
    ENGINE_REQUIRE(!comparisons_.count(tensor),
                   where() << ": reads the comparison " << tensor
                           << " as booleans; the engine takes a comparison only as Cast to "
                              "float (Caffe's Threshold)");
    ENGINE_REQUIRE(!constants_.count(tensor),
                   where() << ": input " << tensor << " is a constant where the engine needs a "
                                                      "computed tensor");
    const auto found = alias_.find(tensor);
    const std::string name = found == alias_.end() ? tensor : found->second;
    ENGINE_REQUIRE(known_.count(name), where() << ": input " << tensor << " is made by no "
                                                                         "earlier node");
    return name;
  }

  // A layer named after the node, reading `bottoms`; its tops come from add_top.
  LayerParameter* new_layer(const std::string& type, const std::vector<std::string>& bottoms) {
    LayerParameter* made = result_->net.add_layer();
    made->set_name(layer_name());
    made->set_type(type);
    for (const auto& bottom : bottoms) made->add_bottom(bottom);
    return made;
  }
  void add_top(LayerParameter* layer, const std::string& top) {
    layer->add_top(top);
    known_.insert(top);
  }
  // A layer whose tops are the node's first `outputs` outputs.
  LayerParameter* layer(const std::string& type, const std::vector<std::string>& bottoms,
                        int outputs = 1) {
    LayerParameter* made = new_layer(type, bottoms);
    for (int j = 0; j < outputs; ++j) {
      ENGINE_REQUIRE(j < node().output_size(), where() << ": has fewer outputs than expected");
      add_top(made, node().output(j));
    }
    return made;
  }
  void blob_proto(LayerParameter* layer, const Dims& shape, const float* values) {
    weights_[layer->name()].emplace_back();
    BlobProto& blob = weights_[layer->name()].back();
    int64_t count = 1;
    for (int64_t d : shape) {
      blob.mutable_shape()->add_dim(d);
      count *= d;
    }
    blob.mutable_data()->Add(values, values + count);
  }

  void add_input(const onnx::ValueInfoProto& input) {
    ENGINE_REQUIRE(input.type().has_tensor_type(),
                   "graph input " << input.name() << " is not a tensor");
    LayerParameter* made = result_->net.add_layer();
    made->set_name(input.name());
    made->set_type("Input");
    made->add_top(input.name());
    known_.insert(input.name());
    layer_names_.insert(input.name());
    BlobShape* shape = made->mutable_input_param()->add_shape();
    const auto& dims = input.type().tensor_type().shape().dim();
    for (int i = 0; i < dims.size(); ++i) {
      if (dims[i].has_dim_value() && dims[i].dim_value() > 0) {
        shape->add_dim(dims[i].dim_value());
      } else {
        ENGINE_REQUIRE(i == 0, "graph input " << input.name() << ": dimension " << i << " ('"
                                              << dims[i].dim_param()
                                              << "') is symbolic; the engine takes a symbolic "
                                                 "batch (the first dimension) only");
        shape->add_dim(options_.batch);
        result_->notes.push_back("input " + input.name() + ": symbolic batch '" +
                                 dims[i].dim_param() + "' set to " +
                                 std::to_string(options_.batch));
      }
    }
  }

  // ---- operators -----------------------------------------------------------------------------
  void convert(const onnx::NodeProto& n) {
    const std::string& op = n.op_type();
    ENGINE_REQUIRE(n.domain().empty() || n.domain() == "ai.onnx",
                   where() << ": operator domain '" << n.domain() << "' is not ONNX's");
    if (op == "Constant") {
      const auto* value = attribute("value");
      ENGINE_REQUIRE(value && value->has_t(), where() << ": only tensor constants are read");
      constants_[n.output(0)] = read_tensor(value->t(), where());
    } else if (op == "Identity" || op == "Dropout") {
      alias_[n.output(0)] = blob(0);
    } else if (op == "Conv" || op == "ConvTranspose") {
      convolution(op == "ConvTranspose");
    } else if (op == "MaxPool" || op == "AveragePool") {
      pooling(op == "MaxPool");
    } else if (op == "GlobalAveragePool" || op == "GlobalMaxPool") {
      LayerParameter* made = layer("Pooling", {blob(0)});
      made->mutable_pooling_param()->set_global_pooling(true);
      made->mutable_pooling_param()->set_pool(op == "GlobalMaxPool" ? PoolingParameter::MAX
                                                                    : PoolingParameter::AVE);
    } else if (op == "LRN") {
      LRNParameter* p = layer("LRN", {blob(0)})->mutable_lrn_param();
      p->set_local_size(int_attribute("size", 1));
      p->set_alpha(float_attribute("alpha", 1e-4f));
      p->set_beta(float_attribute("beta", 0.75f));
      p->set_k(float_attribute("bias", 1.0f));
    } else if (op == "Gemm" || op == "MatMul") {
      inner_product(op == "MatMul");
    } else if (op == "BatchNormalization") {
      batch_norm();
    } else if (op == "Relu") {
      layer("ReLU", {blob(0)});
    } else if (op == "LeakyRelu") {
      layer("ReLU", {blob(0)})->mutable_relu_param()->set_negative_slope(
          float_attribute("alpha", 0.01f));
    } else if (op == "PRelu") {
      const Constant& slope = constant(1);
      LayerParameter* made = layer("PReLU", {blob(0)});
      if (slope.count() == 1) made->mutable_prelu_param()->set_channel_shared(true);
      blob_proto(made, {slope.count()}, slope.values.data());
    } else if (op == "Elu") {
      layer("ELU", {blob(0)})->mutable_elu_param()->set_alpha(float_attribute("alpha", 1.0f));
    } else if (simple_ops().count(op)) {
      layer(simple_ops().at(op), {blob(0)});
    } else if (op == "Clip") {
      clip();
    } else if (op == "Pow") {
      ENGINE_REQUIRE(constant(1).count() == 1, where() << ": the exponent must be a scalar");
      layer("Power", {blob(0)})->mutable_power_param()->set_power(constant(1).values[0]);
    } else if (op == "Add" || op == "Sub" || op == "Mul" || op == "Div") {
      arithmetic(op);
    } else if (op == "Greater") {
      ENGINE_REQUIRE(is_constant(1) && constant(1).count() == 1,
                     where() << ": compares with a scalar constant only (Caffe's Threshold)");
      comparisons_[n.output(0)] = {blob(0), constant(1).values[0]};
    } else if (op == "Cast") {
      threshold();
    } else if (op == "Slice") {
      slice();
    } else if (op == "Sum" || op == "Max") {
      std::vector<std::string> bottoms;
      for (int i = 0; i < n.input_size(); ++i) bottoms.push_back(blob(i));
      layer("Eltwise", bottoms)->mutable_eltwise_param()->set_operation(
          op == "Sum" ? EltwiseParameter::SUM : EltwiseParameter::MAX);
    } else if (op == "Concat") {
      std::vector<std::string> bottoms;
      for (int i = 0; i < n.input_size(); ++i) bottoms.push_back(blob(i));
      layer("Concat", bottoms)->mutable_concat_param()->set_axis(int_attribute("axis", 1));
    } else if (op == "Split") {
      split();
    } else if (op == "Softmax") {
      layer("Softmax", {blob(0)})->mutable_softmax_param()->set_axis(
          int_attribute("axis", -1));
    } else if (op == "Flatten") {
      const int64_t axis = int_attribute("axis", 1);
      ENGINE_REQUIRE(axis == 1, where() << ": flattens from axis " << axis
                                        << "; the engine's Flatten keeps the first axis (1)");
      layer("Flatten", {blob(0)});
    } else if (op == "Reshape") {
      const Dims& dims = constant(1).integers;
      // allowzero matters for a 0 in the shape only (copy the input's dimension, or make it 0).
      ENGINE_REQUIRE(int_attribute("allowzero", 0) == 0 ||
                         std::find(dims.begin(), dims.end(), 0) == dims.end(),
                     where() << ": allowzero=1 with a 0 in the shape has no Caffe form");
      BlobShape* shape = layer("Reshape", {blob(0)})->mutable_reshape_param()->mutable_shape();
      for (int64_t d : dims) shape->add_dim(d);
    } else if (op == "ReduceMean") {
      reduce_mean();
    } else {
      ENGINE_FAIL(where() << ": operator " << op
                          << " has no mapping to the engine's layers (see the README's table)");
    }
  }

  static const std::map<std::string, std::string>& simple_ops() {
    static const std::map<std::string, std::string> ops = {
        {"Sigmoid", "Sigmoid"}, {"Tanh", "TanH"}, {"Abs", "AbsVal"},
        {"Softplus", "BNLL"},   {"Exp", "Exp"},   {"Log", "Log"}};
    return ops;
  }

  // Caffe pads both ends alike; ONNX may pad the end more, which is how Caffe's ceil rounding
  // is written (checked against the built net's shapes afterwards).
  Dims symmetric_pads(int axes, bool allow_longer_end, bool* longer_end) const {
    ENGINE_REQUIRE(string_attribute("auto_pad").empty() || string_attribute("auto_pad") == "NOTSET" ||
                       string_attribute("auto_pad") == "VALID",
                   where() << ": auto_pad " << string_attribute("auto_pad")
                           << " has no Caffe form; give explicit pads");
    Dims pads = ints_attribute("pads");
    if (pads.empty()) pads.assign(2 * axes, 0);
    ENGINE_REQUIRE(static_cast<int>(pads.size()) == 2 * axes,
                   where() << ": " << pads.size() << " pads for " << axes << " spatial axes");
    Dims begin(pads.begin(), pads.begin() + axes);
    for (int a = 0; a < axes; ++a) {
      const int64_t end = pads[axes + a];
      if (end > begin[a] && allow_longer_end) *longer_end = true;
      ENGINE_REQUIRE(end == begin[a] || (allow_longer_end && end > begin[a]),
                     where() << ": pads " << begin[a] << " and " << end << " on axis " << a
                             << " differ; Caffe pads both ends alike");
    }
    return begin;
  }

  void convolution(bool transposed) {
    const Constant& filters = constant(1);
    const int axes = static_cast<int>(filters.shape.size()) - 2;
    ENGINE_REQUIRE(axes >= 1, where() << ": the filters must have spatial axes");
    ENGINE_REQUIRE(ints_attribute("output_padding").empty() || !transposed ||
                       std::all_of(ints_attribute("output_padding").begin(),
                                   ints_attribute("output_padding").end(),
                                   [](int64_t v) { return v == 0; }),
                   where() << ": output_padding has no Caffe form");
    ENGINE_REQUIRE(!attribute("output_shape"), where() << ": output_shape has no Caffe form");
    bool unused = false;
    const Dims pads = symmetric_pads(axes, false, &unused);
    const int64_t group = int_attribute("group", 1);
    LayerParameter* made = layer(transposed ? "Deconvolution" : "Convolution", {blob(0)});
    ConvolutionParameter* p = made->mutable_convolution_param();
    p->set_num_output(transposed ? filters.shape[1] * group : filters.shape[0]);
    p->set_group(group);
    for (int a = 0; a < axes; ++a) {
      p->add_kernel_size(filters.shape[2 + a]);
      p->add_pad(pads[a]);
    }
    for (int64_t s : ints_attribute("strides")) p->add_stride(s);
    for (int64_t d : ints_attribute("dilations")) p->add_dilation(d);
    blob_proto(made, filters.shape, filters.values.data());
    if (node().input_size() > 2 && !node().input(2).empty()) {
      const Constant& bias = constant(2);
      blob_proto(made, {bias.count()}, bias.values.data());
    } else {
      p->set_bias_term(false);
    }
  }

  void pooling(bool max) {
    const Dims kernel = ints_attribute("kernel_shape");
    ENGINE_REQUIRE(kernel.size() == 2, where() << ": pools 2 spatial axes only");
    ENGINE_REQUIRE(ints_attribute("dilations").empty() ||
                       ints_attribute("dilations") == Dims({1, 1}),
                   where() << ": dilated pooling has no Caffe form");
    bool longer_end = false;
    const Dims pads = symmetric_pads(2, true, &longer_end);
    const bool ceil = int_attribute("ceil_mode", 0) == 1 || longer_end;
    if (!max && int_attribute("count_include_pad", 0) == 0) {
      ENGINE_REQUIRE(pads[0] == 0 && pads[1] == 0 && !longer_end,
                     where() << ": count_include_pad=0 with padding has no Caffe form (Caffe "
                                "divides by the window within the padded input)");
    }
    Dims strides = ints_attribute("strides");
    if (strides.empty()) strides = {1, 1};
    LayerParameter* made = layer("Pooling", {blob(0)});
    PoolingParameter* p = made->mutable_pooling_param();
    p->set_pool(max ? PoolingParameter::MAX : PoolingParameter::AVE);
    p->set_kernel_h(kernel[0]);
    p->set_kernel_w(kernel[1]);
    p->set_stride_h(strides[0]);
    p->set_stride_w(strides[1]);
    p->set_pad_h(pads[0]);
    p->set_pad_w(pads[1]);
    p->set_round_mode(ceil ? PoolingParameter::CEIL : PoolingParameter::FLOOR);
    const Dims onnx_pads = ints_attribute("pads");
    pooled_[made->name()] = {kernel, strides, onnx_pads.empty() ? Dims(4, 0) : onnx_pads,
                             int_attribute("ceil_mode", 0) == 1, where()};
    if (!max) average_pools_.insert(node().output(0));
  }

  void inner_product(bool matmul) {
    const Constant& matrix = constant(1);
    ENGINE_REQUIRE(matrix.shape.size() == 2, where() << ": the weights must be a matrix");
    const bool trans_b = matmul ? false : int_attribute("transB", 0) == 1;
    ENGINE_REQUIRE(matmul || int_attribute("transA", 0) == 0,
                   where() << ": transA=1 has no Caffe form");
    const float alpha = matmul ? 1 : float_attribute("alpha", 1);
    const float beta = matmul ? 1 : float_attribute("beta", 1);
    LayerParameter* made = layer("InnerProduct", {blob(0)});
    InnerProductParameter* p = made->mutable_inner_product_param();
    p->set_num_output(trans_b ? matrix.shape[0] : matrix.shape[1]);
    p->set_transpose(!trans_b);
    if (matmul) p->set_axis(-1);
    std::vector<float> weights = matrix.values;
    for (float& w : weights) w *= alpha;
    blob_proto(made, matrix.shape, weights.data());
    if (!matmul && node().input_size() > 2 && !node().input(2).empty()) {
      const Constant& bias = constant(2);
      std::vector<float> values(p->num_output());
      ENGINE_REQUIRE(bias.count() == 1 || bias.count() == p->num_output(),
                     where() << ": a bias of " << bias.count() << " values for "
                             << p->num_output() << " outputs");
      for (size_t i = 0; i < values.size(); ++i) {
        values[i] = beta * bias.values[bias.count() == 1 ? 0 : i];
      }
      blob_proto(made, {p->num_output()}, values.data());
    } else {
      p->set_bias_term(false);
    }
  }

  void batch_norm() {
    const Constant &gamma = constant(1), &beta = constant(2), &mean = constant(3),
                   &variance = constant(4);
    ENGINE_REQUIRE(node().output_size() == 1 || node().output(1).empty(),
                   where() << ": training-mode outputs (running statistics) are not imported");
    const std::string input = blob(0);
    const bool affine = std::any_of(gamma.values.begin(), gamma.values.end(),
                                    [](float v) { return v != 1; }) ||
                        std::any_of(beta.values.begin(), beta.values.end(),
                                    [](float v) { return v != 0; });
    LayerParameter* made = new_layer("BatchNorm", {input});
    const std::string normalized = affine ? made->name() + "/normalized" : node().output(0);
    add_top(made, normalized);
    made->mutable_batch_norm_param()->set_use_global_stats(true);
    made->mutable_batch_norm_param()->set_eps(float_attribute("epsilon", 1e-5f));
    const float one = 1;
    blob_proto(made, {mean.count()}, mean.values.data());
    blob_proto(made, {variance.count()}, variance.values.data());
    blob_proto(made, {1}, &one);
    if (!affine) return;
    LayerParameter* scale = layer("Scale", {normalized});
    scale->mutable_scale_param()->set_bias_term(true);
    blob_proto(scale, {gamma.count()}, gamma.values.data());
    blob_proto(scale, {beta.count()}, beta.values.data());
  }

  void clip() {
    float low = -INFINITY, high = INFINITY;
    if (node().input_size() > 1 && !node().input(1).empty()) low = constant(1).values.at(0);
    if (node().input_size() > 2 && !node().input(2).empty()) high = constant(2).values.at(0);
    low = float_attribute("min", low);  // opset < 11 keeps them as attributes
    high = float_attribute("max", high);
    ClipParameter* p = layer("Clip", {blob(0)})->mutable_clip_param();
    p->set_min(low);
    p->set_max(high);
  }

  // Add, Sub, Mul, Div: with a scalar constant a Power layer, with a constant tensor a Scale or
  // Bias layer (its trailing ones mark the axes it spans), between two tensors an Eltwise.
  void arithmetic(const std::string& op) {
    const int constant_side = is_constant(1) ? 1 : is_constant(0) ? 0 : -1;
    if (constant_side < 0) {
      std::string divisor;
      if (op == "Div") {  // a times b to the power -1
        LayerParameter* inverse = new_layer("Power", {blob(1)});
        divisor = inverse->name() + "/inverse";
        add_top(inverse, divisor);
        inverse->mutable_power_param()->set_power(-1);
      }
      LayerParameter* made = layer("Eltwise", {blob(0), op == "Div" ? divisor : blob(1)});
      EltwiseParameter* p = made->mutable_eltwise_param();
      p->set_operation(op == "Mul" || op == "Div" ? EltwiseParameter::PROD
                                                  : EltwiseParameter::SUM);
      if (op == "Sub") {
        p->add_coeff(1);
        p->add_coeff(-1);
      }
      return;
    }
    ENGINE_REQUIRE(!(constant_side == 0 && (op == "Sub" || op == "Div")),
                   where() << ": a constant minus or over a tensor has no Caffe layer");
    const Constant& c = constant(constant_side);
    const std::string input = blob(1 - constant_side);
    // export_onnx's correction of the average divisor, already Caffe's own.
    if (op == "Mul" && average_pools_.count(input) &&
        node().input(constant_side).find("divisor_correction") != std::string::npos) {
      alias_[node().output(0)] = input;
      return;
    }
    if (c.count() == 1) {
      PowerParameter* p = layer("Power", {input})->mutable_power_param();
      const float v = c.values[0];
      if (op == "Add") p->set_shift(v);
      if (op == "Sub") p->set_shift(-v);
      if (op == "Mul") p->set_scale(v);
      if (op == "Div") p->set_scale(1 / v);
      return;
    }
    Dims shape = c.shape;
    const int rank = static_cast<int>(shape.size());
    while (!shape.empty() && shape.back() == 1) shape.pop_back();
    std::vector<float> values = c.values;
    if (op == "Sub") {
      for (float& v : values) v = -v;
    }
    if (op == "Div") {
      for (float& v : values) v = 1 / v;
    }
    const bool scales = op == "Mul" || op == "Div";
    LayerParameter* made = layer(scales ? "Scale" : "Bias", {input});
    // Aligned with the input's last `rank` axes (numpy broadcasting), so counted from the end.
    if (scales) {
      made->mutable_scale_param()->set_axis(-rank);
      made->mutable_scale_param()->set_num_axes(static_cast<int>(shape.size()));
    } else {
      made->mutable_bias_param()->set_axis(-rank);
      made->mutable_bias_param()->set_num_axes(static_cast<int>(shape.size()));
    }
    blob_proto(made, shape, values.data());
  }

  void split() {
    const int64_t axis = int_attribute("axis", 0);
    Dims sizes = ints_attribute("split");
    if (node().input_size() > 1 && !node().input(1).empty()) sizes = constant(1).integers;
    ENGINE_REQUIRE(!sizes.empty(), where() << ": needs its split sizes");
    LayerParameter* made = layer("Slice", {blob(0)}, node().output_size());
    SliceParameter* p = made->mutable_slice_param();
    p->set_axis(static_cast<int>(axis));
    int64_t point = 0;
    for (size_t i = 0; i + 1 < sizes.size(); ++i) p->add_slice_point(point += sizes[i]);
  }

  // The mean over trailing axes: over the spatial axes of an image kept as 1 x 1, a global
  // average pooling; dropped, a Reduction.
  void reduce_mean() {
    const int rank = static_cast<int>(shape_of(blob(0)).size());
    Dims axes = ints_attribute("axes");  // opset 18 moved them to an input
    if (node().input_size() > 1 && !node().input(1).empty()) axes = constant(1).integers;
    if (axes.empty() && int_attribute("noop_with_empty_axes", 0) == 0) {
      for (int a = 0; a < rank; ++a) axes.push_back(a);
    }
    for (int64_t& a : axes) a = a < 0 ? a + rank : a;
    std::sort(axes.begin(), axes.end());
    const int64_t first = axes.empty() ? rank : axes[0];
    bool trailing = !axes.empty();
    for (size_t i = 0; i < axes.size(); ++i) trailing = trailing && axes[i] == first + int64_t(i);
    trailing = trailing && axes.back() == rank - 1;
    ENGINE_REQUIRE(trailing, where() << ": averages axes other than the last ones, which no "
                                        "Caffe layer does");
    const bool keep = int_attribute("keepdims", 1) == 1;
    if (keep) {
      ENGINE_REQUIRE(rank == 4 && first == 2,
                     where() << ": keeps the averaged axes of other than an image's height and "
                                "width, which no Caffe layer does");
      LayerParameter* made = layer("Pooling", {blob(0)});
      made->mutable_pooling_param()->set_global_pooling(true);
      made->mutable_pooling_param()->set_pool(PoolingParameter::AVE);
      return;
    }
    ReductionParameter* p = layer("Reduction", {blob(0)})->mutable_reduction_param();
    p->set_operation(ReductionParameter::MEAN);
    p->set_axis(static_cast<int>(first));
  }

  void threshold() {
    const auto found = comparisons_.find(node().input(0));
    ENGINE_REQUIRE(found != comparisons_.end(),
                   where() << ": casts only a Greater's result (Caffe's Threshold); elsewhere "
                              "the engine keeps float tensors throughout");
    ENGINE_REQUIRE(int_attribute("to", 0) == onnx::TensorProto::FLOAT,
                   where() << ": casts a comparison to type " << int_attribute("to", 0)
                           << "; the engine takes float (1)");
    layer("Threshold", {found->second.input})
        ->mutable_threshold_param()->set_threshold(found->second.threshold);
  }

  // Slice with unit steps: on each axis a Caffe Slice into the part before, the part kept and
  // the part after, the other two parts silenced. Needs the input's shape, from the net so far.
  void slice() {
    ENGINE_REQUIRE(node().input_size() >= 3,
                   where() << ": needs starts and ends as inputs (opset 10 or newer)");
    const Dims starts = constant(1).integers, ends = constant(2).integers;
    const Dims shape = shape_of(blob(0));
    const int rank = static_cast<int>(shape.size());
    Dims axes, steps;
    if (node().input_size() > 3 && !node().input(3).empty()) axes = constant(3).integers;
    if (node().input_size() > 4 && !node().input(4).empty()) steps = constant(4).integers;
    for (size_t i = axes.size(); i < starts.size(); ++i) axes.push_back(int64_t(i));
    ENGINE_REQUIRE(starts.size() == ends.size() && axes.size() == starts.size(),
                   where() << ": starts, ends and axes differ in length");
    std::string source = blob(0);
    for (size_t i = 0; i < axes.size(); ++i) {
      ENGINE_REQUIRE(steps.empty() || steps[i] == 1,
                     where() << ": step " << steps[i] << " has no Caffe form (steps of 1 only)");
      const int64_t axis = axes[i] < 0 ? axes[i] + rank : axes[i];
      ENGINE_REQUIRE(axis >= 0 && axis < rank,
                     where() << ": axis " << axes[i] << " is outside the input's " << rank);
      const int64_t dim = shape[axis];
      const auto clamp = [dim](int64_t v) {
        return std::clamp(v < 0 ? v + dim : v, int64_t(0), dim);
      };
      const int64_t begin = clamp(starts[i]), end = clamp(ends[i]);
      ENGINE_REQUIRE(begin < end, where() << ": keeps nothing of axis " << axis);
      if (begin == 0 && end == dim) continue;
      LayerParameter* made = new_layer("Slice", {source});
      SliceParameter* p = made->mutable_slice_param();
      p->set_axis(static_cast<int>(axis));
      const bool last = i + 1 == axes.size();
      const std::string kept = last ? node().output(0) : made->name() + "/kept";
      std::vector<std::string> unused;
      if (begin > 0) {
        p->add_slice_point(begin);
        unused.push_back(made->name() + "/before");
        add_top(made, unused.back());
      }
      add_top(made, kept);
      if (end < dim) {
        p->add_slice_point(end);
        unused.push_back(made->name() + "/after");
        add_top(made, unused.back());
      }
      new_layer("Silence", unused);
      source = kept;
    }
    if (source != node().output(0)) alias_[node().output(0)] = source;  // every axis kept whole
    known_.insert(node().output(0));
  }

  // A tensor's shape, from a net built of the layers converted so far.
  Dims shape_of(const std::string& name) const {
    Net net(result_->net);
    const auto blob = net.blob_by_name(name);
    return Dims(blob->shape().begin(), blob->shape().end());
  }

 public:
  struct PoolingCheck {
    Dims kernel, strides, pads;
    bool ceil_mode;
    std::string where;
  };

  // The built net's pooled sizes against ONNX's formula for the same input.
  void check_pooling(const Net& net) const {
    for (const auto& [name, check] : pooled_) {
      const auto& names = net.layer_names();
      const size_t index = std::find(names.begin(), names.end(), name) - names.begin();
      const Blob& in = *net.bottom_vecs()[index][0];
      const Blob& out = *net.top_vecs()[index][0];
      for (int a = 0; a < 2; ++a) {
        const double span = double(in.shape(2 + a) + check.pads[a] + check.pads[2 + a] -
                                   check.kernel[a]) / check.strides[a];
        int64_t expected = int64_t(check.ceil_mode ? std::ceil(span) : std::floor(span)) + 1;
        if (check.ceil_mode && (expected - 1) * check.strides[a] >= in.shape(2 + a) + check.pads[a]) {
          --expected;
        }
        ENGINE_REQUIRE(expected == out.shape(2 + a),
                       check.where << ": ONNX pools axis " << 2 + a << " to " << expected
                                   << " but Caffe's rounding gives " << out.shape(2 + a));
      }
    }
  }

  void attach_weights() {
    result_->weights = result_->net;
    for (LayerParameter& layer : *result_->weights.mutable_layer()) {
      const auto found = weights_.find(layer.name());
      if (found == weights_.end()) continue;
      for (const BlobProto& blob : found->second) *layer.add_blobs() = blob;
    }
  }

 private:
  const onnx::ModelProto& model_;
  const OnnxImportOptions& options_;
  OnnxImport* result_;
  int node_ = 0;
  std::map<std::string, Constant> constants_;
  std::map<std::string, std::string> alias_;
  std::set<std::string> known_;
  std::set<std::string> layer_names_;
  std::set<std::string> average_pools_;
  struct Comparison {
    std::string input;
    float threshold;
  };
  std::map<std::string, Comparison> comparisons_;
  std::map<std::string, std::vector<BlobProto>> weights_;
  std::map<std::string, PoolingCheck> pooled_;
};

}  // namespace

OnnxImport import_onnx(const std::string& path, const OnnxImportOptions& options) {
  ENGINE_REQUIRE(options.batch > 0, "the batch for symbolic dimensions must be positive");
  std::ifstream file(path, std::ios::binary);
  ENGINE_REQUIRE(file, path << ": cannot open the ONNX file");
  std::stringstream bytes;
  bytes << file.rdbuf();
  onnx::ModelProto model;
  ENGINE_REQUIRE(model.ParseFromString(bytes.str()),
                 path << ": not an ONNX model (the protobuf does not parse; truncated?)");
  ENGINE_REQUIRE(model.has_graph() && model.graph().node_size() > 0,
                 path << ": not an ONNX model (no graph, or a graph without nodes)");
  for (const auto& opset : model.opset_import()) {
    if (opset.domain().empty() || opset.domain() == "ai.onnx") {
      ENGINE_REQUIRE(opset.version() >= 7,
                     path << ": opset " << opset.version() << " is older than import reads (7)");
    }
  }
  OnnxImport result;
  Importer importer(model, options, &result);
  try {
    importer.run();
    importer.attach_weights();
    // Built once: the shapes must agree, and each pooling must round as ONNX does.
    Net net(result.net);
    net.copy_trained_layers_from(result.weights);
    importer.check_pooling(net);
  } catch (const Error& error) {
    ENGINE_FAIL(path << ": " << error.what());
  }
  return result;
}

}  // namespace engine
