#include "onnx/onnx_export.hpp"

#include <cmath>
#include <functional>
#include <map>
#include <set>

#include "core/errors.hpp"
#include "io/prototxt.hpp"
#include "onnx/onnx_graph.hpp"

namespace engine {
namespace {

using onnx_io::GraphBuilder;
using onnx_io::set_attribute;
using Dims = std::vector<int64_t>;

Dims dims_of(const Blob& blob) { return Dims(blob.shape().begin(), blob.shape().end()); }

// A spatial setting of convolution or pooling for `axes` axes: the per-axis (_h, _w) fields
// when set, else the repeated field (one value for all axes, or one per axis), else `fallback`.
Dims per_axis(const google::protobuf::RepeatedField<uint32_t>& repeated, bool has_h, uint32_t h,
              bool has_w, uint32_t w, int axes, int64_t fallback, const Layer& layer,
              const char* what) {
  if (has_h || has_w) {
    ENGINE_REQUIRE(axes == 2, layer.describe() << ": " << what << "_h/_w need 2 spatial axes");
    return {has_h ? int64_t(h) : fallback, has_w ? int64_t(w) : fallback};
  }
  if (repeated.empty()) return Dims(axes, fallback);
  if (repeated.size() == 1) return Dims(axes, repeated[0]);
  ENGINE_REQUIRE(repeated.size() == axes,
                 layer.describe() << ": " << repeated.size() << " " << what << " values for "
                                  << axes << " spatial axes");
  return Dims(repeated.begin(), repeated.end());
}

Dims twice(const Dims& begin, const Dims& end) {
  Dims both = begin;
  both.insert(both.end(), end.begin(), end.end());
  return both;
}

class Exporter {
 public:
  Exporter(const Net& net, const OnnxExportOptions& options, onnx::GraphProto* graph)
      : net_(net), options_(options), graph_(graph) {}

  OnnxExportReport run() {
    for (layer_ = 0; layer_ < static_cast<int>(net_.layers().size()); ++layer_) {
      if (skip_.count(layer_)) continue;
      const std::string& type = layer().type();
      const auto found = handlers().find(type);
      if (found != handlers().end()) {
        (this->*found->second)();
        // Tops take their new tensors only now: an in-place layer's nodes read the old one,
        // whatever order the arguments of a call are evaluated in.
        for (const auto& [blob, tensor] : written_) current_[blob] = tensor;
        written_.clear();
      } else if (type.size() > 4 && type.compare(type.size() - 4, 4, "Loss") == 0) {
        drop("a loss, which inference does not compute");
      } else if (type == "Accuracy" || type == "Silence") {
        drop("not part of inference");
      } else if (is_data_layer()) {
        data_layer_to_input();
      } else {
        ENGINE_FAIL(layer().describe() << ": ONNX export has no mapping for " << type
                                       << " layers (see the README's table of layers)");
      }
    }
    for (const auto& [blob, tensor] : current_) {
      if (!consumed_.count(tensor) && produced_.count(tensor)) outputs_by_order_[produced_[tensor]] = tensor;
    }
    for (const auto& [order, tensor] : outputs_by_order_) {
      graph_.output(tensor, shapes_.at(tensor), options_.dynamic_batch);
      report_.outputs.push_back(tensor);
      report_.output_blobs.push_back(blob_of_.at(tensor));
    }
    ENGINE_REQUIRE(!report_.outputs.empty(), "net " << net_.name() << " has no output to export");
    return report_;
  }

 private:
  using Handler = void (Exporter::*)();
  static const std::map<std::string, Handler>& handlers() {
    static const std::map<std::string, Handler> table = {
        {"Input", &Exporter::input},           {"Split", &Exporter::alias},
        {"Dropout", &Exporter::alias},         {"Convolution", &Exporter::convolution},
        {"Deconvolution", &Exporter::convolution}, {"Pooling", &Exporter::pooling},
        {"LRN", &Exporter::lrn},               {"InnerProduct", &Exporter::inner_product},
        {"BatchNorm", &Exporter::batch_norm},  {"Scale", &Exporter::scale},
        {"Bias", &Exporter::bias},             {"ReLU", &Exporter::relu},
        {"PReLU", &Exporter::prelu},           {"ELU", &Exporter::elu},
        {"Sigmoid", &Exporter::unary},         {"TanH", &Exporter::unary},
        {"AbsVal", &Exporter::unary},          {"BNLL", &Exporter::unary},
        {"Power", &Exporter::power},           {"Exp", &Exporter::exp},
        {"Log", &Exporter::log},               {"Clip", &Exporter::clip},
        {"Swish", &Exporter::swish},           {"Threshold", &Exporter::threshold},
        {"Eltwise", &Exporter::eltwise},       {"Concat", &Exporter::concat},
        {"Slice", &Exporter::slice},           {"Flatten", &Exporter::reshape},
        {"Reshape", &Exporter::reshape},       {"Crop", &Exporter::crop},
        {"Softmax", &Exporter::softmax},
    };
    return table;
  }

  const Layer& layer() const { return *net_.layers()[layer_]; }
  const LayerParameter& param() const { return layer().param(); }
  const Blob& bottom_blob(int j) const { return *net_.bottom_vecs()[layer_][j]; }
  const Blob& top_blob(int j) const { return *net_.top_vecs()[layer_][j]; }
  int bottoms() const { return static_cast<int>(net_.bottom_vecs()[layer_].size()); }
  int tops() const { return static_cast<int>(net_.top_vecs()[layer_].size()); }
  const std::string& bottom_name(int j) const { return param().bottom(j); }
  const std::string& top_name(int j) const { return param().top(j); }
  const Blob& weights(int i) const {
    ENGINE_REQUIRE(static_cast<int>(layer().blobs().size()) > i,
                   layer().describe() << ": has no parameter blob " << i);
    return *layer().blobs()[i];
  }
  std::string name() const { return layer().name(); }

  // The tensor that holds bottom j now, read by the node being made.
  std::string in(int j) {
    const std::string tensor = holder(j);
    consumed_.insert(tensor);
    return tensor;
  }
  std::string holder(int j) const {
    const std::string& blob = bottom_name(j);
    ENGINE_REQUIRE(!unavailable_.count(blob),
                   layer().describe() << ": reads " << blob << ", which only a data layer's "
                                      << "label output or a dropped layer makes");
    const auto found = current_.find(blob);
    ENGINE_REQUIRE(found != current_.end(), layer().describe() << ": no tensor for " << blob);
    return found->second;
  }
  // A new tensor for top j (in-place layers get a fresh name: ONNX tensors are written once).
  std::string out(int j) {
    const std::string tensor = graph_.fresh(top_name(j));
    written_.emplace_back(top_name(j), tensor);
    produced_[tensor] = order_++;
    shapes_[tensor] = dims_of(top_blob(j));
    blob_of_[tensor] = top_name(j);
    return tensor;
  }
  // An intermediate tensor of this layer's nodes.
  std::string temp(const std::string& what) { return graph_.fresh(name() + "/" + what); }
  onnx::NodeProto* node(const std::string& op, const std::vector<std::string>& inputs,
                        const std::vector<std::string>& outputs) {
    ++report_.nodes;
    return graph_.node(op, inputs, outputs, name());
  }
  void note(const std::string& text) { report_.notes.push_back(layer().describe() + ": " + text); }
  void drop(const std::string& why) {
    note("dropped, " + why);
    for (int j = 0; j < tops(); ++j) unavailable_.insert(top_name(j));
  }
  bool is_data_layer() const {
    return bottoms() == 0 && tops() >= 1 &&
           (param().type() == "Data" || param().type() == "ImageData" ||
            param().type() == "DummyData" || param().type() == "MemoryData" ||
            param().type() == "HDF5Data" || param().type() == "WindowData");
  }
  void graph_input(int j) {
    const std::string tensor = graph_.fresh(top_name(j));
    graph_.input(tensor, dims_of(top_blob(j)), options_.dynamic_batch);
    current_[top_name(j)] = tensor;
    report_.inputs.push_back(tensor);
  }
  // A static shape for Reshape: the first dimension copied from the input when the batch is
  // dynamic (ONNX's 0).
  Dims reshape_target(const Blob& blob) const {
    Dims shape = dims_of(blob);
    if (options_.dynamic_batch && !shape.empty()) shape[0] = 0;
    return shape;
  }
  // `values` shaped to broadcast against bottom 0 from `axis` on (trailing ones).
  Dims broadcast_shape(const Blob& values, int axis) const {
    Dims shape = dims_of(values);
    while (static_cast<int>(shape.size()) + axis < bottom_blob(0).num_axes()) shape.push_back(1);
    return shape;
  }

  // ---- layers ---------------------------------------------------------------------------------

  void input() {
    for (int j = 0; j < tops(); ++j) graph_input(j);
  }

  void data_layer_to_input() {
    graph_input(0);
    note("became the graph input " + top_name(0));
    for (int j = 1; j < tops(); ++j) unavailable_.insert(top_name(j));
  }

  void alias() {
    if (unavailable_.count(bottom_name(0))) {  // a split label: as unavailable as the label
      for (int j = 0; j < tops(); ++j) unavailable_.insert(top_name(j));
      return;
    }
    const std::string tensor = holder(0);  // a second name, not a use
    for (int j = 0; j < tops(); ++j) current_[top_name(j)] = tensor;
  }

  void convolution() {
    const bool transposed = param().type() == "Deconvolution";
    const ConvolutionParameter& conv = param().convolution_param();
    ENGINE_REQUIRE(layer().canonical_axis(bottom_blob(0), conv.axis(), "axis") == 1,
                   layer().describe() << ": ONNX convolutions take channels on axis 1");
    ENGINE_REQUIRE(bottoms() == 1, layer().describe() << ": ONNX convolutions take one input");
    const Blob& filters = weights(0);
    const int axes = filters.num_axes() - 2;
    const Dims kernel(filters.shape().begin() + 2, filters.shape().end());
    const Dims pad = per_axis(conv.pad(), conv.has_pad_h(), conv.pad_h(), conv.has_pad_w(),
                              conv.pad_w(), axes, 0, layer(), "pad");
    const Dims stride = per_axis(conv.stride(), conv.has_stride_h(), conv.stride_h(),
                                 conv.has_stride_w(), conv.stride_w(), axes, 1, layer(), "stride");
    const Dims dilation = per_axis(conv.dilation(), false, 0, false, 0, axes, 1, layer(),
                                   "dilation");
    std::vector<std::string> inputs = {in(0), graph_.weights(name() + "/W", dims_of(filters),
                                                             filters.cpu_data())};
    if (conv.bias_term()) {
      inputs.push_back(graph_.weights(name() + "/b", dims_of(weights(1)), weights(1).cpu_data()));
    }
    onnx::NodeProto* made = node(transposed ? "ConvTranspose" : "Conv", inputs, {out(0)});
    set_attribute(made, "kernel_shape", kernel);
    set_attribute(made, "pads", twice(pad, pad));
    set_attribute(made, "strides", stride);
    set_attribute(made, "dilations", dilation);
    set_attribute(made, "group", int64_t(conv.group()));
  }

  void pooling() {
    const PoolingParameter& pool = param().pooling_param();
    const Blob& input = bottom_blob(0);
    ENGINE_REQUIRE(input.num_axes() == 4, layer().describe() << ": pools 4-D blobs only");
    ENGINE_REQUIRE(pool.pool() != PoolingParameter::STOCHASTIC,
                   layer().describe() << ": ONNX has no stochastic pooling");
    const bool max = pool.pool() == PoolingParameter::MAX;
    if (pool.global_pooling()) {
      node(max ? "GlobalMaxPool" : "GlobalAveragePool", {in(0)}, {out(0)});
      return;
    }
    ENGINE_REQUIRE(tops() == 1, layer().describe() << ": the mask top has no ONNX form");
    Dims kernel = {pool.has_kernel_h() ? pool.kernel_h() : pool.kernel_size(),
                   pool.has_kernel_w() ? pool.kernel_w() : pool.kernel_size()};
    Dims pad = {pool.has_pad_h() ? pool.pad_h() : pool.pad(),
                pool.has_pad_w() ? pool.pad_w() : pool.pad()};
    Dims stride = {pool.has_stride_h() ? pool.stride_h() : pool.stride(),
                   pool.has_stride_w() ? pool.stride_w() : pool.stride()};
    const Dims pooled = {top_blob(0).shape(2), top_blob(0).shape(3)};
    const Dims extent = {input.shape(2), input.shape(3)};
    // Caffe's output size (ceil, less a window that would start in the padding) as explicit
    // end padding with floor rounding; never negative (a short last stretch is skipped anyway).
    Dims end(2);
    for (int a = 0; a < 2; ++a) {
      end[a] = std::max<int64_t>(0, (pooled[a] - 1) * stride[a] + kernel[a] - extent[a] - pad[a]);
    }
    const std::string source = in(0);
    onnx::NodeProto* made;
    if (max) {
      made = node("MaxPool", {source}, {out(0)});
      set_attribute(made, "pads", twice(pad, end));
    } else {
      // Caffe divides by the window's part inside the input and its symmetric padding, not
      // beyond. ONNX divides by the whole kernel (count_include_pad); where the two differ, a
      // constant per output position corrects it. (An explicit Pad before a count_include_pad=0
      // pool would say the same, but ONNX Runtime's pad fusion merges the two and changes it.)
      const std::string pooled_sum = temp("pooled");
      std::vector<float> correction(pooled[0] * pooled[1]);
      bool corrected = false;
      for (int64_t ph = 0; ph < pooled[0]; ++ph) {
        for (int64_t pw = 0; pw < pooled[1]; ++pw) {
          const int64_t h0 = ph * stride[0] - pad[0], w0 = pw * stride[1] - pad[1];
          const int64_t rows = std::min(h0 + kernel[0], extent[0] + pad[0]) - h0;
          const int64_t columns = std::min(w0 + kernel[1], extent[1] + pad[1]) - w0;
          const float ratio = float(kernel[0] * kernel[1]) / float(rows * columns);
          correction[ph * pooled[1] + pw] = ratio;
          corrected = corrected || ratio != 1;
        }
      }
      made = node("AveragePool", {source}, {corrected ? pooled_sum : out(0)});
      set_attribute(made, "pads", twice(pad, end));
      set_attribute(made, "count_include_pad", int64_t(1));
      if (corrected) {
        node("Mul", {pooled_sum, graph_.weights(name() + "/divisor_correction",
                                                {pooled[0], pooled[1]}, correction.data())},
             {out(0)});
      }
    }
    set_attribute(made, "kernel_shape", kernel);
    set_attribute(made, "strides", stride);
  }

  void lrn() {
    const LRNParameter& lrn = param().lrn_param();
    if (lrn.norm_region() == LRNParameter::ACROSS_CHANNELS) {
      // ONNX's LRN divides alpha by the size as Caffe does.
      onnx::NodeProto* made = node("LRN", {in(0)}, {out(0)});
      set_attribute(made, "size", int64_t(lrn.local_size()));
      set_attribute(made, "alpha", lrn.alpha());
      set_attribute(made, "beta", lrn.beta());
      set_attribute(made, "bias", lrn.k());
      return;
    }
    // WITHIN_CHANNEL: x / (1 + alpha/n^2 * sum of x^2 over the n x n window)^beta, the sum an
    // average pool over the zero-padded squares (every window full, as in Caffe).
    const std::string x = in(0), squares = temp("squares"), mean = temp("mean");
    const std::string scaled = temp("scaled"), base = temp("base"), divisor = temp("divisor");
    const int64_t size = lrn.local_size(), half = (size - 1) / 2;
    node("Mul", {x, x}, {squares});
    onnx::NodeProto* pool = node("AveragePool", {squares}, {mean});
    set_attribute(pool, "kernel_shape", Dims{size, size});
    set_attribute(pool, "pads", Dims{half, half, half, half});
    set_attribute(pool, "count_include_pad", int64_t(1));
    node("Mul", {mean, graph_.scalar(name() + "/alpha", lrn.alpha())}, {scaled});
    node("Add", {scaled, graph_.scalar(name() + "/one", 1.0f)}, {base});
    node("Pow", {base, graph_.scalar(name() + "/beta", lrn.beta())}, {divisor});
    node("Div", {x, divisor}, {out(0)});
  }

  void inner_product() {
    const InnerProductParameter& ip = param().inner_product_param();
    const Blob& input = bottom_blob(0);
    const int axis = layer().canonical_axis(input, ip.axis(), "axis");
    const Blob& matrix = weights(0);
    std::string source = in(0);
    const bool flat_already = input.num_axes() == 2 && axis == 1;
    if (!flat_already && axis == 1) {
      const std::string flat = temp("flat");
      set_attribute(node("Flatten", {source}, {flat}), "axis", int64_t(1));
      source = flat;
    } else if (!flat_already) {
      ENGINE_REQUIRE(!options_.dynamic_batch,
                     layer().describe() << ": axis " << axis << " needs a fixed batch");
      const std::string flat = temp("flat");
      node("Reshape", {source, graph_.int64s(name() + "/flat_shape",
                                             {input.count(0, axis), input.count(axis)})},
           {flat});
      source = flat;
    }
    std::vector<std::string> inputs = {
        source, graph_.weights(name() + "/W", dims_of(matrix), matrix.cpu_data())};
    if (ip.bias_term()) {
      inputs.push_back(graph_.weights(name() + "/b", dims_of(weights(1)), weights(1).cpu_data()));
    }
    // Caffe keeps the axes before `axis`: Gemm's 2-D product is reshaped back to them.
    const bool reshape_back = axis != 1;
    const std::string product = reshape_back ? temp("product") : out(0);
    set_attribute(node("Gemm", inputs, {product}), "transB", int64_t(ip.transpose() ? 0 : 1));
    if (reshape_back) {
      node("Reshape", {product, graph_.int64s(name() + "/shape", dims_of(top_blob(0)))}, {out(0)});
    }
  }

  void batch_norm() {
    const BatchNormParameter& bn = param().batch_norm_param();
    const bool global = bn.has_use_global_stats() ? bn.use_global_stats() : net_.phase() == TEST;
    ENGINE_REQUIRE(global, layer().describe() << ": exports with its stored statistics only "
                                                 "(a TEST net, or use_global_stats: true)");
    const int channels = bottom_blob(0).shape(1);
    const float factor = weights(2).cpu_data()[0];
    const float unscale = factor == 0 ? 0 : 1 / factor;
    std::vector<float> mean(channels), variance(channels), gamma(channels, 1), beta(channels, 0);
    for (int c = 0; c < channels; ++c) {
      mean[c] = weights(0).cpu_data()[c] * unscale;
      variance[c] = weights(1).cpu_data()[c] * unscale;
    }
    // A Scale (with or without bias) that reads this output next folds into the same node.
    const Layer* fold = nullptr;
    if (layer_ + 1 < static_cast<int>(net_.layers().size())) {
      const Layer& next = *net_.layers()[layer_ + 1];
      const ScaleParameter& sp = next.param().scale_param();
      if (next.type() == "Scale" && next.param().bottom_size() == 1 &&
          next.param().bottom(0) == top_name(0) && sp.axis() == 1 && sp.num_axes() == 1) {
        fold = &next;
      }
    }
    if (fold) {
      for (int c = 0; c < channels; ++c) {
        gamma[c] = fold->blobs()[0]->cpu_data()[c];
        if (fold->blobs().size() > 1) beta[c] = fold->blobs()[1]->cpu_data()[c];
      }
    }
    const Dims shape = {channels};
    const std::vector<std::string> inputs = {
        in(0), graph_.weights(name() + "/gamma", shape, gamma.data()),
        graph_.weights(name() + "/beta", shape, beta.data()),
        graph_.weights(name() + "/mean", shape, mean.data()),
        graph_.weights(name() + "/variance", shape, variance.data())};
    std::string output;
    if (fold) {
      skip_.insert(layer_ + 1);
      note("folded with " + fold->describe() + " into one BatchNormalization");
      const std::string tensor = graph_.fresh(fold->param().top(0));
      written_.emplace_back(fold->param().top(0), tensor);
      produced_[tensor] = order_++;
      shapes_[tensor] = dims_of(top_blob(0));
      blob_of_[tensor] = fold->param().top(0);
      output = tensor;
    } else {
      output = out(0);
    }
    set_attribute(node("BatchNormalization", inputs, {output}), "epsilon", bn.eps());
  }

  // Scale and Bias: a parameter blob (or the second bottom) broadcast from `axis` on.
  std::string broadcast_operand(int axis, int parameter, const std::string& what) {
    if (bottoms() > 1) {
      const std::string shaped = temp(what);
      node("Reshape", {in(1), graph_.int64s(name() + "/" + what + "_shape",
                                            broadcast_shape(bottom_blob(1), axis))},
           {shaped});
      return shaped;
    }
    const Blob& values = weights(parameter);
    return graph_.weights(name() + "/" + what, broadcast_shape(values, axis), values.cpu_data());
  }

  void scale() {
    const ScaleParameter& sp = param().scale_param();
    const int axis = layer().canonical_axis(bottom_blob(0), sp.axis(), "axis");
    const std::string x = in(0);
    const std::string factor = broadcast_operand(axis, 0, "scale");
    const bool has_bias = sp.bias_term();
    if (!has_bias) {
      node("Mul", {x, factor}, {out(0)});
      return;
    }
    const std::string scaled = temp("scaled");
    node("Mul", {x, factor}, {scaled});
    const Blob& offsets = weights(bottoms() > 1 ? 0 : 1);
    node("Add",
         {scaled, graph_.weights(name() + "/bias", broadcast_shape(offsets, axis),
                                 offsets.cpu_data())},
         {out(0)});
  }

  void bias() {
    const int axis = layer().canonical_axis(bottom_blob(0), param().bias_param().axis(), "axis");
    const std::string x = in(0);
    node("Add", {x, broadcast_operand(axis, 0, "bias")}, {out(0)});
  }

  void relu() {
    const float slope = param().relu_param().negative_slope();
    if (slope == 0) {
      node("Relu", {in(0)}, {out(0)});
    } else {
      set_attribute(node("LeakyRelu", {in(0)}, {out(0)}), "alpha", slope);
    }
  }

  void prelu() {
    const Blob& slopes = weights(0);
    const Dims shape = param().prelu_param().channel_shared() ? Dims{1}
                                                              : broadcast_shape(slopes, 1);
    const std::string x = in(0);
    node("PRelu", {x, graph_.weights(name() + "/slope", shape, slopes.cpu_data())}, {out(0)});
  }

  void elu() {
    set_attribute(node("Elu", {in(0)}, {out(0)}), "alpha", param().elu_param().alpha());
  }

  void unary() {
    static const std::map<std::string, std::string> ops = {
        {"Sigmoid", "Sigmoid"}, {"TanH", "Tanh"}, {"AbsVal", "Abs"}, {"BNLL", "Softplus"}};
    node(ops.at(param().type()), {in(0)}, {out(0)});
  }

  // scale * x + shift, as few nodes as the values need; returns the tensor.
  std::string affine(std::string x, float scale, float shift) {
    if (scale != 1) {
      const std::string scaled = temp("scaled");
      node("Mul", {x, graph_.scalar(name() + "/scale", scale)}, {scaled});
      x = scaled;
    }
    if (shift != 0) {
      const std::string shifted = temp("shifted");
      node("Add", {x, graph_.scalar(name() + "/shift", shift)}, {shifted});
      x = shifted;
    }
    return x;
  }

  void power() {
    const PowerParameter& p = param().power_param();
    const std::string base = affine(in(0), p.scale(), p.shift());
    if (p.power() == 1) {
      node("Identity", {base}, {out(0)});
    } else {
      node("Pow", {base, graph_.scalar(name() + "/power", p.power())}, {out(0)});
    }
  }

  void exp() {
    const ExpParameter& p = param().exp_param();
    const float log_base = p.base() == -1 ? 1.0f : std::log(p.base());
    node("Exp", {affine(in(0), p.scale() * log_base, p.shift() * log_base)}, {out(0)});
  }

  void log() {
    const LogParameter& p = param().log_param();
    const std::string argument = affine(in(0), p.scale(), p.shift());
    if (p.base() == -1) {
      node("Log", {argument}, {out(0)});
      return;
    }
    const std::string natural = temp("ln");
    node("Log", {argument}, {natural});
    node("Mul", {natural, graph_.scalar(name() + "/inverse_log_base", 1 / std::log(p.base()))},
         {out(0)});
  }

  void clip() {
    const ClipParameter& p = param().clip_param();
    node("Clip", {in(0), graph_.scalar(name() + "/min", p.min()),
                  graph_.scalar(name() + "/max", p.max())},
         {out(0)});
  }

  void swish() {
    const std::string x = in(0), gate = temp("gate");
    node("Sigmoid", {affine(x, param().swish_param().beta(), 0)}, {gate});
    node("Mul", {x, gate}, {out(0)});
  }

  void threshold() {
    const std::string above = temp("above");
    node("Greater", {in(0), graph_.scalar(name() + "/threshold",
                                          param().threshold_param().threshold())},
         {above});
    set_attribute(node("Cast", {above}, {out(0)}), "to", int64_t(onnx::TensorProto::FLOAT));
  }

  void eltwise() {
    const EltwiseParameter& p = param().eltwise_param();
    std::vector<std::string> inputs;
    for (int j = 0; j < bottoms(); ++j) inputs.push_back(in(j));
    if (p.operation() == EltwiseParameter::MAX) {
      node("Max", inputs, {out(0)});
    } else if (p.operation() == EltwiseParameter::PROD) {
      std::string product = inputs[0];
      for (int j = 1; j < bottoms(); ++j) {
        const std::string next = j + 1 == bottoms() ? out(0) : temp("product");
        node("Mul", {product, inputs[j]}, {next});
        product = next;
      }
    } else {
      ENGINE_REQUIRE(p.coeff_size() == 0 || p.coeff_size() == bottoms(),
                     layer().describe() << ": " << p.coeff_size() << " coefficients for "
                                        << bottoms() << " bottoms");
      for (int j = 0; j < p.coeff_size(); ++j) {
        if (p.coeff(j) == 1) continue;
        const std::string weighted = temp("weighted");
        node("Mul", {inputs[j], graph_.scalar(name() + "/coeff", p.coeff(j))}, {weighted});
        inputs[j] = weighted;
      }
      node("Sum", inputs, {out(0)});
    }
  }

  void concat() {
    const ConcatParameter& p = param().concat_param();
    const int axis = layer().canonical_axis(
        bottom_blob(0), p.has_concat_dim() ? static_cast<int>(p.concat_dim()) : p.axis(), "axis");
    std::vector<std::string> inputs;
    for (int j = 0; j < bottoms(); ++j) inputs.push_back(in(j));
    set_attribute(node("Concat", inputs, {out(0)}), "axis", int64_t(axis));
  }

  void slice() {
    const SliceParameter& p = param().slice_param();
    const int axis = layer().canonical_axis(
        bottom_blob(0), p.has_slice_dim() ? static_cast<int>(p.slice_dim()) : p.axis(), "axis");
    Dims sizes;
    std::vector<std::string> outputs;
    for (int j = 0; j < tops(); ++j) sizes.push_back(top_blob(j).shape(axis));
    const std::string x = in(0);
    for (int j = 0; j < tops(); ++j) outputs.push_back(out(j));
    set_attribute(node("Split", {x, graph_.int64s(name() + "/split", sizes)}, outputs), "axis",
                  int64_t(axis));
  }

  void reshape() {
    const std::string x = in(0);
    node("Reshape", {x, graph_.int64s(name() + "/shape", reshape_target(top_blob(0)))}, {out(0)});
  }

  void crop() {
    const CropParameter& p = param().crop_param();
    const Blob& input = bottom_blob(0);
    const int axis = layer().canonical_axis(input, p.axis(), "axis");
    Dims starts, ends, axes;
    for (int a = axis; a < input.num_axes(); ++a) {
      const int i = a - axis;
      const int64_t offset = p.offset_size() == 0 ? 0
                             : p.offset_size() == 1 ? p.offset(0)
                                                    : p.offset(i);
      starts.push_back(offset);
      ends.push_back(offset + top_blob(0).shape(a));
      axes.push_back(a);
    }
    const std::string x = in(0);
    in(1);  // only its shape matters, fixed in the bounds
    node("Slice", {x, graph_.int64s(name() + "/starts", starts), graph_.int64s(name() + "/ends", ends),
                   graph_.int64s(name() + "/axes", axes)},
         {out(0)});
  }

  void softmax() {
    const int axis = layer().canonical_axis(bottom_blob(0), param().softmax_param().axis(), "axis");
    set_attribute(node("Softmax", {in(0)}, {out(0)}), "axis", int64_t(axis));
  }

  const Net& net_;
  const OnnxExportOptions& options_;
  GraphBuilder graph_;
  OnnxExportReport report_;
  int layer_ = 0;
  std::set<int> skip_;
  std::map<std::string, std::string> current_;  // blob name -> the tensor that holds it now
  std::vector<std::pair<std::string, std::string>> written_;  // this layer's tops, to commit
  std::set<std::string> unavailable_;           // blobs only dropped layers make
  std::set<std::string> consumed_;              // tensors some node reads
  std::map<std::string, int> produced_;         // tensors nodes write, in order
  std::map<std::string, Dims> shapes_;          // their shapes
  std::map<std::string, std::string> blob_of_;  // and the blobs they hold
  std::map<int, std::string> outputs_by_order_;
  int order_ = 0;
};

int64_t ir_version_for(int opset) {
  if (opset <= 14) return 7;
  if (opset <= 18) return 8;
  if (opset <= 20) return 9;
  return 10;
}

}  // namespace

OnnxExportReport export_onnx(const Net& net, const std::string& path,
                             const OnnxExportOptions& options) {
  ENGINE_REQUIRE(options.opset >= 13 && options.opset <= 21,
                 "ONNX export writes opsets 13 to 21, not " << options.opset);
  onnx::ModelProto model;
  model.set_ir_version(ir_version_for(options.opset));
  model.set_producer_name("engine");
  model.set_producer_version("1.0.0");
  onnx::OperatorSetIdProto* opset = model.add_opset_import();
  opset->set_domain("");
  opset->set_version(options.opset);
  onnx::GraphProto* graph = model.mutable_graph();
  graph->set_name(net.name().empty() ? "net" : net.name());
  OnnxExportReport report = Exporter(net, options, graph).run();
  write_file_atomic(path, model.SerializeAsString());
  return report;
}

}  // namespace engine
