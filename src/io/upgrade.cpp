#include "io/upgrade.hpp"

#include <initializer_list>
#include <map>

#include "core/errors.hpp"
#include "io/prototxt.hpp"

namespace engine {

namespace {

using V1Type = V1LayerParameter::LayerType;

// ---- V0 -> V1 --------------------------------------------------------------------------------

const std::map<std::string, V1Type>& v0_types() {
  static const std::map<std::string, V1Type> types = {
      {"accuracy", V1LayerParameter::ACCURACY},
      {"bnll", V1LayerParameter::BNLL},
      {"concat", V1LayerParameter::CONCAT},
      {"conv", V1LayerParameter::CONVOLUTION},
      {"data", V1LayerParameter::DATA},
      {"dropout", V1LayerParameter::DROPOUT},
      {"euclidean_loss", V1LayerParameter::EUCLIDEAN_LOSS},
      {"flatten", V1LayerParameter::FLATTEN},
      {"hdf5_data", V1LayerParameter::HDF5_DATA},
      {"hdf5_output", V1LayerParameter::HDF5_OUTPUT},
      {"im2col", V1LayerParameter::IM2COL},
      {"images", V1LayerParameter::IMAGE_DATA},
      {"infogain_loss", V1LayerParameter::INFOGAIN_LOSS},
      {"innerproduct", V1LayerParameter::INNER_PRODUCT},
      {"lrn", V1LayerParameter::LRN},
      {"multinomial_logistic_loss", V1LayerParameter::MULTINOMIAL_LOGISTIC_LOSS},
      {"pool", V1LayerParameter::POOLING},
      {"relu", V1LayerParameter::RELU},
      {"sigmoid", V1LayerParameter::SIGMOID},
      {"softmax", V1LayerParameter::SOFTMAX},
      {"softmax_loss", V1LayerParameter::SOFTMAX_LOSS},
      {"split", V1LayerParameter::SPLIT},
      {"tanh", V1LayerParameter::TANH},
      {"window_data", V1LayerParameter::WINDOW_DATA},
  };
  return types;
}

// Moves the flat settings of one V0 layer into the V1 per-type messages. A setting the layer's
// type has no use for is dropped with a warning, as Caffe does.
class V0LayerUpgrade {
 public:
  V0LayerUpgrade(const V1LayerParameter& wrapper, const std::string& source)
      : v0_(wrapper.layer()), type_(v0_.type()), source_(source) {
    *v1_.mutable_bottom() = wrapper.bottom();
    *v1_.mutable_top() = wrapper.top();
    if (v0_.has_name()) v1_.set_name(v0_.name());
    if (v0_.has_type()) {
      const auto found = v0_types().find(type_);
      ENGINE_REQUIRE(found != v0_types().end(),
                     source << ": V0 layer " << v0_.name() << " has the unknown type '" << type_
                            << "'");
      v1_.set_type(found->second);
    }
    *v1_.mutable_blobs() = v0_.blobs();
    *v1_.mutable_blobs_lr() = v0_.blobs_lr();
    *v1_.mutable_weight_decay() = v0_.weight_decay();
    convert();
  }
  const V1LayerParameter& result() const { return v1_; }

 private:
  // Whether a present field applies to this layer's type; warns when it does not.
  bool takes(bool present, const char* field, std::initializer_list<const char*> types) const {
    if (!present) return false;
    for (const char* type : types) {
      if (type_ == type) return true;
    }
    LOG(WARNING) << source_ << ": V0 layer " << v0_.name() << " (" << type_ << "): dropped "
                 << field << ", which that type does not take";
    return false;
  }
  bool is(const char* type) const { return type_ == type; }

  void convert() {
    const V0LayerParameter& v = v0_;
    ConvolutionParameter* conv = nullptr;
    auto convolution = [&] { return conv ? conv : (conv = v1_.mutable_convolution_param()); };
    if (takes(v.has_num_output(), "num_output", {"conv", "innerproduct"})) {
      if (is("conv")) convolution()->set_num_output(v.num_output());
      else v1_.mutable_inner_product_param()->set_num_output(v.num_output());
    }
    if (takes(v.has_biasterm(), "biasterm", {"conv", "innerproduct"})) {
      if (is("conv")) convolution()->set_bias_term(v.biasterm());
      else v1_.mutable_inner_product_param()->set_bias_term(v.biasterm());
    }
    if (takes(v.has_weight_filler(), "weight_filler", {"conv", "innerproduct"})) {
      if (is("conv")) *convolution()->mutable_weight_filler() = v.weight_filler();
      else *v1_.mutable_inner_product_param()->mutable_weight_filler() = v.weight_filler();
    }
    if (takes(v.has_bias_filler(), "bias_filler", {"conv", "innerproduct"})) {
      if (is("conv")) *convolution()->mutable_bias_filler() = v.bias_filler();
      else *v1_.mutable_inner_product_param()->mutable_bias_filler() = v.bias_filler();
    }
    if (takes(v.has_pad(), "pad", {"conv", "pool"})) {
      if (is("conv")) convolution()->add_pad(v.pad());
      else v1_.mutable_pooling_param()->set_pad(v.pad());
    }
    if (takes(v.has_kernelsize(), "kernelsize", {"conv", "pool"})) {
      if (is("conv")) convolution()->add_kernel_size(v.kernelsize());
      else v1_.mutable_pooling_param()->set_kernel_size(v.kernelsize());
    }
    if (takes(v.has_group(), "group", {"conv"})) convolution()->set_group(v.group());
    if (takes(v.has_stride(), "stride", {"conv", "pool"})) {
      if (is("conv")) convolution()->add_stride(v.stride());
      else v1_.mutable_pooling_param()->set_stride(v.stride());
    }
    if (takes(v.has_pool(), "pool", {"pool"})) {
      // The two enums share their values.
      v1_.mutable_pooling_param()->set_pool(static_cast<PoolingParameter::PoolMethod>(v.pool()));
    }
    if (takes(v.has_dropout_ratio(), "dropout_ratio", {"dropout"})) {
      v1_.mutable_dropout_param()->set_dropout_ratio(v.dropout_ratio());
    }
    if (takes(v.has_local_size(), "local_size", {"lrn"})) {
      v1_.mutable_lrn_param()->set_local_size(v.local_size());
    }
    if (takes(v.has_alpha(), "alpha", {"lrn"})) v1_.mutable_lrn_param()->set_alpha(v.alpha());
    if (takes(v.has_beta(), "beta", {"lrn"})) v1_.mutable_lrn_param()->set_beta(v.beta());
    if (takes(v.has_k(), "k", {"lrn"})) v1_.mutable_lrn_param()->set_k(v.k());
    if (takes(v.has_source(), "source",
              {"data", "hdf5_data", "images", "window_data", "infogain_loss"})) {
      if (is("data")) v1_.mutable_data_param()->set_source(v.source());
      if (is("hdf5_data")) v1_.mutable_hdf5_data_param()->set_source(v.source());
      if (is("images")) v1_.mutable_image_data_param()->set_source(v.source());
      if (is("window_data")) v1_.mutable_window_data_param()->set_source(v.source());
      if (is("infogain_loss")) v1_.mutable_infogain_loss_param()->set_source(v.source());
    }
    // The transformation settings apply to whatever layer carries them.
    if (v.has_scale()) v1_.mutable_transform_param()->set_scale(v.scale());
    if (v.has_meanfile()) v1_.mutable_transform_param()->set_mean_file(v.meanfile());
    if (v.has_cropsize()) v1_.mutable_transform_param()->set_crop_size(v.cropsize());
    if (v.has_mirror()) v1_.mutable_transform_param()->set_mirror(v.mirror());
    if (takes(v.has_batchsize(), "batchsize", {"data", "hdf5_data", "images", "window_data"})) {
      if (is("data")) v1_.mutable_data_param()->set_batch_size(v.batchsize());
      if (is("hdf5_data")) v1_.mutable_hdf5_data_param()->set_batch_size(v.batchsize());
      if (is("images")) v1_.mutable_image_data_param()->set_batch_size(v.batchsize());
      if (is("window_data")) v1_.mutable_window_data_param()->set_batch_size(v.batchsize());
    }
    if (takes(v.has_rand_skip(), "rand_skip", {"data", "images"})) {
      if (is("data")) v1_.mutable_data_param()->set_rand_skip(v.rand_skip());
      else v1_.mutable_image_data_param()->set_rand_skip(v.rand_skip());
    }
    if (takes(v.has_shuffle_images(), "shuffle_images", {"images"})) {
      v1_.mutable_image_data_param()->set_shuffle(v.shuffle_images());
    }
    if (takes(v.has_new_height(), "new_height", {"images"})) {
      v1_.mutable_image_data_param()->set_new_height(v.new_height());
    }
    if (takes(v.has_new_width(), "new_width", {"images"})) {
      v1_.mutable_image_data_param()->set_new_width(v.new_width());
    }
    if (takes(v.has_concat_dim(), "concat_dim", {"concat"})) {
      v1_.mutable_concat_param()->set_concat_dim(v.concat_dim());
    }
    WindowDataParameter* window = nullptr;
    auto window_data = [&] { return window ? window : (window = v1_.mutable_window_data_param()); };
    if (takes(v.has_det_fg_threshold(), "det_fg_threshold", {"window_data"})) {
      window_data()->set_fg_threshold(v.det_fg_threshold());
    }
    if (takes(v.has_det_bg_threshold(), "det_bg_threshold", {"window_data"})) {
      window_data()->set_bg_threshold(v.det_bg_threshold());
    }
    if (takes(v.has_det_fg_fraction(), "det_fg_fraction", {"window_data"})) {
      window_data()->set_fg_fraction(v.det_fg_fraction());
    }
    if (takes(v.has_det_context_pad(), "det_context_pad", {"window_data"})) {
      window_data()->set_context_pad(v.det_context_pad());
    }
    if (takes(v.has_det_crop_mode(), "det_crop_mode", {"window_data"})) {
      window_data()->set_crop_mode(v.det_crop_mode());
    }
    if (takes(v.has_hdf5_output_param(), "hdf5_output_param", {"hdf5_output"})) {
      *v1_.mutable_hdf5_output_param() = v.hdf5_output_param();
    }
  }

  const V0LayerParameter& v0_;
  const std::string type_;
  const std::string& source_;
  V1LayerParameter v1_;
};

// Removes V0 "padding" layers: the convolution or pooling that reads a padding layer's output
// reads its input instead, with the padding as its own pad. Returns how many were folded.
int fold_v0_padding(NetParameter* param, const std::string& source) {
  const NetParameter original = *param;
  param->clear_layers();
  std::map<std::string, int> producer;  // blob -> index in `original` of the last layer making it
  for (const std::string& input : original.input()) producer[input] = -1;
  int folded = 0;
  for (int i = 0; i < original.layers_size(); ++i) {
    const V1LayerParameter& wrapper = original.layers(i);
    const V0LayerParameter& layer = wrapper.layer();
    const bool padding = layer.type() == "padding";
    V1LayerParameter* kept = padding ? nullptr : param->add_layers();
    if (kept) *kept = wrapper;
    folded += padding;
    for (int j = 0; j < wrapper.bottom_size(); ++j) {
      const auto found = producer.find(wrapper.bottom(j));
      ENGINE_REQUIRE(found != producer.end(),
                     source << ": V0 layer " << layer.name() << " reads blob '" << wrapper.bottom(j)
                            << "', which no earlier layer or input makes");
      if (found->second < 0) continue;
      const V1LayerParameter& from = original.layers(found->second);
      if (from.layer().type() != "padding") continue;
      ENGINE_REQUIRE(layer.type() == "conv" || layer.type() == "pool",
                     source << ": V0 padding layer " << from.layer().name() << " feeds layer "
                            << layer.name() << " of type '" << layer.type()
                            << "'; only conv and pool layers can take its padding");
      ENGINE_REQUIRE(wrapper.bottom_size() == 1 && from.bottom_size() == 1 && from.top_size() == 1,
                     source << ": V0 padding layer " << from.layer().name() << " and layer "
                            << layer.name() << " must each have one input (and the padding "
                            << "layer one output)");
      kept->mutable_layer()->set_pad(from.layer().pad());
      kept->set_bottom(j, from.bottom(0));
    }
    for (const std::string& top : wrapper.top()) producer[top] = i;
  }
  return folded;
}

// ---- V1 -> V2 --------------------------------------------------------------------------------

const char* v1_type_name(V1Type type) {
  switch (type) {
    case V1LayerParameter::NONE: return "";
    case V1LayerParameter::ABSVAL: return "AbsVal";
    case V1LayerParameter::ACCURACY: return "Accuracy";
    case V1LayerParameter::ARGMAX: return "ArgMax";
    case V1LayerParameter::BNLL: return "BNLL";
    case V1LayerParameter::CONCAT: return "Concat";
    case V1LayerParameter::CONTRASTIVE_LOSS: return "ContrastiveLoss";
    case V1LayerParameter::CONVOLUTION: return "Convolution";
    case V1LayerParameter::DATA: return "Data";
    case V1LayerParameter::DECONVOLUTION: return "Deconvolution";
    case V1LayerParameter::DROPOUT: return "Dropout";
    case V1LayerParameter::DUMMY_DATA: return "DummyData";
    case V1LayerParameter::EUCLIDEAN_LOSS: return "EuclideanLoss";
    case V1LayerParameter::ELTWISE: return "Eltwise";
    case V1LayerParameter::EXP: return "Exp";
    case V1LayerParameter::FLATTEN: return "Flatten";
    case V1LayerParameter::HDF5_DATA: return "HDF5Data";
    case V1LayerParameter::HDF5_OUTPUT: return "HDF5Output";
    case V1LayerParameter::HINGE_LOSS: return "HingeLoss";
    case V1LayerParameter::IM2COL: return "Im2col";
    case V1LayerParameter::IMAGE_DATA: return "ImageData";
    case V1LayerParameter::INFOGAIN_LOSS: return "InfogainLoss";
    case V1LayerParameter::INNER_PRODUCT: return "InnerProduct";
    case V1LayerParameter::LRN: return "LRN";
    case V1LayerParameter::MEMORY_DATA: return "MemoryData";
    case V1LayerParameter::MULTINOMIAL_LOGISTIC_LOSS: return "MultinomialLogisticLoss";
    case V1LayerParameter::MVN: return "MVN";
    case V1LayerParameter::POOLING: return "Pooling";
    case V1LayerParameter::POWER: return "Power";
    case V1LayerParameter::RELU: return "ReLU";
    case V1LayerParameter::SIGMOID: return "Sigmoid";
    case V1LayerParameter::SIGMOID_CROSS_ENTROPY_LOSS: return "SigmoidCrossEntropyLoss";
    case V1LayerParameter::SILENCE: return "Silence";
    case V1LayerParameter::SOFTMAX: return "Softmax";
    case V1LayerParameter::SOFTMAX_LOSS: return "SoftmaxWithLoss";
    case V1LayerParameter::SPLIT: return "Split";
    case V1LayerParameter::SLICE: return "Slice";
    case V1LayerParameter::TANH: return "TanH";
    case V1LayerParameter::WINDOW_DATA: return "WindowData";
    case V1LayerParameter::THRESHOLD: return "Threshold";
  }
  return nullptr;
}

// Copies every per-type message (`*_param`) V1 and V2 layers both have, by name, so that a
// message added to both schemas needs no code here.
void copy_layer_messages(const V1LayerParameter& from, LayerParameter* to) {
  namespace pb = google::protobuf;
  const pb::Reflection* from_reflection = from.GetReflection();
  const pb::Reflection* to_reflection = to->GetReflection();
  std::vector<const pb::FieldDescriptor*> fields;
  from_reflection->ListFields(from, &fields);
  for (const pb::FieldDescriptor* field : fields) {
    if (field->type() != pb::FieldDescriptor::TYPE_MESSAGE || field->is_repeated()) continue;
    if (field->message_type() == V0LayerParameter::descriptor()) continue;
    const pb::FieldDescriptor* target =
        LayerParameter::descriptor()->FindFieldByName(field->name());
    if (!target || target->message_type() != field->message_type()) continue;
    to_reflection->MutableMessage(to, target)->CopyFrom(from_reflection->GetMessage(from, field));
  }
}

LayerParameter upgrade_v1_layer(const V1LayerParameter& v1, const std::string& source) {
  LayerParameter layer;
  if (v1.has_name()) layer.set_name(v1.name());
  *layer.mutable_bottom() = v1.bottom();
  *layer.mutable_top() = v1.top();
  *layer.mutable_include() = v1.include();
  *layer.mutable_exclude() = v1.exclude();
  if (v1.has_type()) {
    const char* type = v1_type_name(v1.type());
    ENGINE_REQUIRE(type, source << ": V1 layer " << v1.name() << " has an unknown type "
                                << static_cast<int>(v1.type()));
    layer.set_type(type);
  }
  *layer.mutable_blobs() = v1.blobs();
  auto spec = [&layer](int i) {
    while (layer.param_size() <= i) layer.add_param();
    return layer.mutable_param(i);
  };
  for (int i = 0; i < v1.param_size(); ++i) spec(i)->set_name(v1.param(i));
  for (int i = 0; i < v1.blob_share_mode_size(); ++i) {
    spec(i)->set_share_mode(v1.blob_share_mode(i) == V1LayerParameter::PERMISSIVE
                                ? ParamSpec::PERMISSIVE
                                : ParamSpec::STRICT);
  }
  for (int i = 0; i < v1.blobs_lr_size(); ++i) spec(i)->set_lr_mult(v1.blobs_lr(i));
  for (int i = 0; i < v1.weight_decay_size(); ++i) spec(i)->set_decay_mult(v1.weight_decay(i));
  *layer.mutable_loss_weight() = v1.loss_weight();
  copy_layer_messages(v1, &layer);
  return layer;
}

// ---- data transformation -----------------------------------------------------------------------

// Moves a data layer's old transformation fields into transform_param; whether any moved.
template <typename DataParam>
bool move_transform_fields(DataParam* data, TransformationParameter* transform) {
  const bool any = data->has_scale() || data->has_mean_file() || data->has_crop_size() ||
                   data->has_mirror();
  if (data->has_scale()) transform->set_scale(data->scale());
  if (data->has_mean_file()) transform->set_mean_file(data->mean_file());
  if (data->has_crop_size()) transform->set_crop_size(data->crop_size());
  if (data->has_mirror()) transform->set_mirror(data->mirror());
  data->clear_scale();
  data->clear_mean_file();
  data->clear_crop_size();
  data->clear_mirror();
  return any;
}

// For a V1 or V2 layer: moves the fields of whichever data message it carries.
template <typename Layer>
bool upgrade_layer_transform(Layer* layer) {
  bool moved = false;
  if (layer->has_data_param()) {
    moved |= move_transform_fields(layer->mutable_data_param(), layer->mutable_transform_param());
  }
  if (layer->has_image_data_param()) {
    moved |= move_transform_fields(layer->mutable_image_data_param(),
                                   layer->mutable_transform_param());
  }
  if (layer->has_window_data_param()) {
    moved |= move_transform_fields(layer->mutable_window_data_param(),
                                   layer->mutable_transform_param());
  }
  return moved;
}

template <typename Message>
bool has_old_transform_fields(const Message& m) {
  return m.has_scale() || m.has_mean_file() || m.has_crop_size() || m.has_mirror();
}

template <typename Layer>
bool layer_needs_transform_upgrade(const Layer& layer) {
  return (layer.has_data_param() && has_old_transform_fields(layer.data_param())) ||
         (layer.has_image_data_param() && has_old_transform_fields(layer.image_data_param())) ||
         (layer.has_window_data_param() && has_old_transform_fields(layer.window_data_param()));
}

bool batch_norm_needs_upgrade(const LayerParameter& layer) {
  if (layer.type() != "BatchNorm" || layer.param_size() != 3) return false;
  for (const ParamSpec& spec : layer.param()) {
    if (spec.lr_mult() != 0) return true;
  }
  return false;
}

}  // namespace

bool upgrade_v0_net(NetParameter* param, const std::string& source) {
  int v0_layers = 0;
  for (const V1LayerParameter& layer : param->layers()) v0_layers += layer.has_layer();
  if (v0_layers == 0) return false;
  const int folded = fold_v0_padding(param, source);
  for (V1LayerParameter& layer : *param->mutable_layers()) {
    if (layer.has_layer()) layer = V0LayerUpgrade(layer, source).result();
  }
  LOG(INFO) << source << ": upgraded " << v0_layers << " V0 layer(s) to V1"
            << (folded ? " (" + std::to_string(folded) + " padding layer(s) folded into the "
                                                         "next convolution or pooling)"
                       : std::string());
  return true;
}

bool upgrade_data_transformation(NetParameter* param, const std::string& source) {
  bool changed = false;
  auto upgrade = [&](auto* layer) {
    if (!upgrade_layer_transform(layer)) return;
    LOG(INFO) << source << ": upgraded the data transformation fields of layer " << layer->name()
              << " to transform_param";
    changed = true;
  };
  for (V1LayerParameter& layer : *param->mutable_layers()) upgrade(&layer);
  for (LayerParameter& layer : *param->mutable_layer()) upgrade(&layer);
  return changed;
}

bool upgrade_v1_net(NetParameter* param, const std::string& source) {
  if (param->layers_size() == 0) return false;
  ENGINE_REQUIRE(param->layer_size() == 0,
                 source << ": the net has both 'layer' (" << param->layer_size()
                        << ") and legacy 'layers' (" << param->layers_size()
                        << ") entries; use one form");
  for (const V1LayerParameter& v1 : param->layers()) {
    ENGINE_REQUIRE(!v1.has_layer(), source << ": V1 layer " << v1.name()
                                           << " still holds a V0 layer");
    *param->add_layer() = upgrade_v1_layer(v1, source);
  }
  LOG(INFO) << source << ": upgraded " << param->layers_size()
            << " V1 'layers' entries to V2 'layer'";
  param->clear_layers();
  return true;
}

bool upgrade_net_input(NetParameter* param, const std::string& source) {
  if (param->input_size() == 0) return false;
  const int inputs = param->input_size();
  const bool dims = param->input_dim_size() > 0;
  const bool shapes = param->input_shape_size() > 0;
  if (!dims && !shapes) {
    // What Caffe wrote into weights files: input names alone, which mean nothing there.
    LOG(INFO) << source << ": upgraded: dropped " << inputs << " input name(s) without shapes";
    param->clear_input();
    return true;
  }
  ENGINE_REQUIRE(!(dims && shapes), source << ": give input_dim or input_shape, not both");
  ENGINE_REQUIRE(!dims || param->input_dim_size() == 4 * inputs,
                 source << ": " << inputs << " input(s) need " << 4 * inputs
                        << " input_dim values, found " << param->input_dim_size());
  ENGINE_REQUIRE(!shapes || param->input_shape_size() == inputs,
                 source << ": " << inputs << " input(s) need as many input_shape, found "
                        << param->input_shape_size());
  LayerParameter input;
  input.set_name("input");
  input.set_type("Input");
  for (int i = 0; i < inputs; ++i) {
    input.add_top(param->input(i));
    BlobShape* shape = input.mutable_input_param()->add_shape();
    if (shapes) {
      *shape = param->input_shape(i);
    } else {
      for (int d = 0; d < 4; ++d) shape->add_dim(param->input_dim(4 * i + d));
    }
  }
  auto* layers = param->mutable_layer();
  *layers->Add() = std::move(input);
  // Move it to the front.
  for (int i = layers->size() - 1; i > 0; --i) layers->SwapElements(i, i - 1);
  param->clear_input();
  param->clear_input_dim();
  param->clear_input_shape();
  LOG(INFO) << source << ": upgraded the input fields (" << inputs << " input(s)) to an Input "
            << "layer";
  return true;
}

bool upgrade_batch_norm(NetParameter* param, const std::string& source) {
  bool changed = false;
  for (LayerParameter& layer : *param->mutable_layer()) {
    if (!batch_norm_needs_upgrade(layer)) continue;
    for (ParamSpec& spec : *layer.mutable_param()) {
      spec.set_lr_mult(0);
      spec.set_decay_mult(0);
    }
    LOG(INFO) << source << ": upgraded BatchNorm layer " << layer.name()
              << ": its 3 param specs get lr_mult 0 and decay_mult 0 (the statistics are not "
                 "learned)";
    changed = true;
  }
  return changed;
}

bool net_needs_upgrade(const NetParameter& param) {
  if (param.layers_size() > 0 || param.input_size() > 0) return true;
  for (const LayerParameter& layer : param.layer()) {
    if (layer_needs_transform_upgrade(layer) || batch_norm_needs_upgrade(layer)) return true;
  }
  return false;
}

bool upgrade_net(NetParameter* param, const std::string& source) {
  if (!net_needs_upgrade(*param)) return false;
  ENGINE_REQUIRE(param->layer_size() == 0 || param->layers_size() == 0,
                 source << ": the net has both 'layer' (" << param->layer_size()
                        << ") and legacy 'layers' (" << param->layers_size()
                        << ") entries; use one form");
  bool changed = upgrade_v0_net(param, source);
  changed |= upgrade_data_transformation(param, source);
  changed |= upgrade_v1_net(param, source);
  changed |= upgrade_net_input(param, source);
  changed |= upgrade_batch_norm(param, source);
  return changed;
}

NetParameter read_net_text_file(const std::string& path) {
  NetParameter param;
  read_text_file(path, &param);
  upgrade_net(&param, path);
  return param;
}

NetParameter read_net_binary_file(const std::string& path) {
  NetParameter param;
  read_binary_file(path, &param);
  upgrade_net(&param, path);
  return param;
}

bool upgrade_solver(SolverParameter* param, const std::string& source) {
  if (!param->has_solver_type()) return false;
  static const std::map<SolverParameter::SolverType, const char*> kTypes = {
      {SolverParameter::SGD, "SGD"},         {SolverParameter::NESTEROV, "Nesterov"},
      {SolverParameter::ADAGRAD, "AdaGrad"}, {SolverParameter::RMSPROP, "RMSProp"},
      {SolverParameter::ADADELTA, "AdaDelta"}, {SolverParameter::ADAM, "Adam"},
  };
  const auto found = kTypes.find(param->solver_type());
  ENGINE_REQUIRE(found != kTypes.end(), source << ": unknown solver_type "
                                               << static_cast<int>(param->solver_type()));
  const std::string type = found->second;
  ENGINE_REQUIRE(!param->has_type() || param->type() == type,
                 source << ": solver_type "
                        << SolverParameter::SolverType_Name(param->solver_type()) << " and type '"
                        << param->type() << "' disagree; give only type");
  LOG(INFO) << source << ": upgraded the legacy solver_type field to type: \"" << type << "\"";
  param->set_type(type);
  param->clear_solver_type();
  return true;
}

}  // namespace engine
