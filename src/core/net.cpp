#include "core/net.hpp"

#include <algorithm>
#include <cstdlib>
#include <new>
#include <set>
#include <sstream>

#include "core/context.hpp"
#include "core/layer_registry.hpp"
#include "io/prototxt.hpp"
#include "io/upgrade.hpp"
#include "math/blas.hpp"

namespace engine {

// ---- construction steps ------------------------------------------------------------------

namespace {

// Called in a catch block: the error leaves naming the layer and the step once. A library's
// exception (oneDNN's, OpenCV's, std::bad_alloc) becomes the engine's, not an abort.
[[noreturn]] void rethrow_naming(const Layer& layer, const char* step) {
  const std::string where = layer.describe() + ": " + step + ": ";
  try {
    throw;
  } catch (const OutOfMemory& error) {
    throw OutOfMemory(where + error.what());
  } catch (const Error& error) {
    if (std::string(error.what()).find("layer " + layer.name()) != std::string::npos) throw;
    throw Error(where + error.what());
  } catch (const std::bad_alloc&) {
    throw OutOfMemory(where + "out of host memory");
  } catch (const std::exception& error) {
    throw Error(where + error.what());
  }
}

bool state_meets_rule(const NetState& state, const NetStateRule& rule) {
  if (rule.has_phase() && rule.phase() != state.phase()) return false;
  if (rule.has_min_level() && state.level() < rule.min_level()) return false;
  if (rule.has_max_level() && state.level() > rule.max_level()) return false;
  const auto& stages = state.stage();
  auto has_stage = [&](const std::string& s) {
    return std::find(stages.begin(), stages.end(), s) != stages.end();
  };
  for (const std::string& stage : rule.stage()) {
    if (!has_stage(stage)) return false;
  }
  for (const std::string& stage : rule.not_stage()) {
    if (has_stage(stage)) return false;
  }
  return true;
}

std::string split_layer_name(const std::string& layer, const std::string& blob, int top) {
  return blob + "_" + layer + "_" + std::to_string(top) + "_split";
}

std::string split_blob_name(const std::string& layer, const std::string& blob, int top,
                            int split) {
  return split_layer_name(layer, blob, top) + "_" + std::to_string(split);
}

}  // namespace

bool state_meets_rules(const NetState& state, const LayerParameter& layer) {
  ENGINE_REQUIRE(layer.include_size() == 0 || layer.exclude_size() == 0,
                 "layer " << layer.name() << ": give include rules or exclude rules, not both");
  if (layer.include_size() > 0) {
    return std::any_of(layer.include().begin(), layer.include().end(),
                       [&](const NetStateRule& rule) { return state_meets_rule(state, rule); });
  }
  return std::none_of(layer.exclude().begin(), layer.exclude().end(),
                      [&](const NetStateRule& rule) { return state_meets_rule(state, rule); });
}

NetParameter filter_net(const NetParameter& param) {
  NetParameter filtered = param;
  filtered.clear_layer();
  for (const LayerParameter& layer : param.layer()) {
    if (state_meets_rules(param.state(), layer)) *filtered.add_layer() = layer;
  }
  return filtered;
}

NetParameter insert_splits(const NetParameter& param) {
  // A blob version is the (layer, top) that produced it: an in-place layer makes a new version.
  using Source = std::pair<int, int>;
  std::map<std::string, Source> last_producer;
  std::map<std::pair<int, int>, Source> bottom_source;  // (layer, bottom) -> producing top
  std::map<Source, int> readers;
  std::map<Source, float> loss_weights;
  for (int i = 0; i < param.layer_size(); ++i) {
    const LayerParameter& layer = param.layer(i);
    for (int j = 0; j < layer.bottom_size(); ++j) {
      auto found = last_producer.find(layer.bottom(j));
      ENGINE_REQUIRE(found != last_producer.end(),
                     "layer " << layer.name() << " (" << layer.type() << "): bottom blob '"
                              << layer.bottom(j) << "' (bottom " << j
                              << ") is not produced by any earlier layer");
      bottom_source[{i, j}] = found->second;
      ++readers[found->second];
    }
    for (int j = 0; j < layer.top_size(); ++j) {
      last_producer[layer.top(j)] = {i, j};
      const float weight = j < layer.loss_weight_size() ? layer.loss_weight(j) : 0.0f;
      if (weight != 0) {
        loss_weights[{i, j}] = weight;
        ++readers[{i, j}];  // the loss counts as one more reader
      }
    }
  }

  NetParameter split = param;
  split.clear_layer();
  std::map<Source, int> next_split;
  for (int i = 0; i < param.layer_size(); ++i) {
    LayerParameter* layer = split.add_layer();
    *layer = param.layer(i);
    for (int j = 0; j < layer->bottom_size(); ++j) {
      const Source source = bottom_source[{i, j}];
      if (readers[source] > 1) {
        const std::string& producer = param.layer(source.first).name();
        layer->set_bottom(j, split_blob_name(producer, layer->bottom(j), source.second,
                                             next_split[source]++));
      }
    }
    for (int j = 0; j < layer->top_size(); ++j) {
      const Source source{i, j};
      const int count = readers.count(source) ? readers[source] : 0;
      if (count <= 1) continue;
      LayerParameter* splitter = split.add_layer();
      splitter->set_name(split_layer_name(layer->name(), layer->top(j), j));
      splitter->set_type("Split");
      splitter->add_bottom(layer->top(j));
      const auto loss = loss_weights.find(source);
      for (int k = 0; k < count; ++k) {
        splitter->add_top(split_blob_name(layer->name(), layer->top(j), j, k));
        // The first split top carries the loss; the others feed the readers.
        if (loss != loss_weights.end()) splitter->add_loss_weight(k == 0 ? loss->second : 0.0f);
      }
      if (loss != loss_weights.end()) {
        layer->clear_loss_weight();
        ++next_split[source];
      }
    }
  }
  return split;
}

void set_layer_engines(int engine, NetParameter* param) {
  const google::protobuf::Descriptor* layer_type = LayerParameter::descriptor();
  for (LayerParameter& layer : *param->mutable_layer()) {
    const google::protobuf::Reflection* reflection = layer.GetReflection();
    for (int f = 0; f < layer_type->field_count(); ++f) {
      const google::protobuf::FieldDescriptor* field = layer_type->field(f);
      if (field->type() != google::protobuf::FieldDescriptor::TYPE_MESSAGE || field->is_repeated()) {
        continue;
      }
      const google::protobuf::FieldDescriptor* engine_field =
          field->message_type()->FindFieldByName("engine");
      if (!engine_field || !engine_field->enum_type()) continue;
      if (!engine_field->enum_type()->FindValueByNumber(engine)) continue;
      google::protobuf::Message* message = reflection->MutableMessage(&layer, field);
      message->GetReflection()->SetEnumValue(message, engine_field, engine);
    }
  }
}

void set_input_batch(int batch, NetParameter* param) {
  for (LayerParameter& layer : *param->mutable_layer()) {
    if (layer.type() != "Input") continue;
    for (BlobShape& shape : *layer.mutable_input_param()->mutable_shape()) {
      if (shape.dim_size() > 0) shape.set_dim(0, batch);
    }
  }
  for (BlobShape& shape : *param->mutable_input_shape()) {
    if (shape.dim_size() > 0) shape.set_dim(0, batch);
  }
  for (int i = 0; i < param->input_dim_size(); i += 4) param->set_input_dim(i, batch);
}

// ---- the net -------------------------------------------------------------------------------

Net::Net(const NetParameter& param) { init(param); }

Net::Net(const std::string& prototxt, Phase phase, int level,
         const std::vector<std::string>& stages) {
  NetParameter param = read_net_text_file(prototxt);
  param.mutable_state()->set_phase(phase);
  param.mutable_state()->set_level(level);
  param.mutable_state()->clear_stage();
  for (const std::string& stage : stages) param.mutable_state()->add_stage(stage);
  init(param);
}

void Net::init(const NetParameter& given) {
  name_ = given.name();
  phase_ = given.state().phase();
  NetParameter upgraded;
  const NetParameter* source = &given;
  if (net_needs_upgrade(given)) {
    upgraded = given;
    upgrade_net(&upgraded, "net " + given.name());
    source = &upgraded;
  }
  const NetParameter param = insert_splits(filter_net(*source));

  std::map<std::string, int> available;  // blobs produced and not yet consumed
  const int count = param.layer_size();
  bottom_vecs_.resize(count);
  top_vecs_.resize(count);
  bottom_ids_.resize(count);
  top_ids_.resize(count);
  bottom_need_backward_.resize(count);
  for (int i = 0; i < count; ++i) {
    LayerParameter layer_param = param.layer(i);
    if (!layer_param.has_phase()) layer_param.set_phase(phase_);
    ENGINE_REQUIRE(layer_param.propagate_down_size() == 0 ||
                       layer_param.propagate_down_size() == layer_param.bottom_size(),
                   "layer " << layer_param.name() << ": propagate_down needs one value per bottom ("
                            << layer_param.bottom_size() << "), found "
                            << layer_param.propagate_down_size());
    ENGINE_REQUIRE(!layer_index_.count(layer_param.name()),
                   "two layers are named '" << layer_param.name() << "'");
    layers_.push_back(create_layer(layer_param));
    layers_.back()->set_precision(param.precision());
    layer_names_.push_back(layer_param.name());
    layer_index_[layer_param.name()] = i;

    bool need_backward = false;
    for (int j = 0; j < layer_param.bottom_size(); ++j) {
      append_bottom(layer_param, i, j, &available);
      // As Caffe: a bottom blob that needs a gradient makes its reader need backward.
      need_backward = need_backward || blob_need_backward_[bottom_ids_[i][j]];
    }
    for (int j = 0; j < layer_param.top_size(); ++j) append_top(layer_param, i, j, &available);
    if (layer_param.type() == "Input") {
      for (Blob* top : top_vecs_[i]) input_blobs_.push_back(top);
    }

    Layer& layer = *layers_[i];
    try {
      layer.setup(bottom_vecs_[i], top_vecs_[i]);
    } catch (...) {
      rethrow_naming(layer, "setup");
    }
    for (size_t j = 0; j < top_vecs_[i].size(); ++j) {
      VLOG(1) << "top shape " << blob_names_[top_ids_[i][j]] << ": "
              << top_vecs_[i][j]->shape_string();
      const float weight = layer.loss(static_cast<int>(j));
      if (weight != 0) blob_loss_weights_[top_ids_[i][j]] = weight;
    }

    const int param_count = static_cast<int>(layer.blobs().size());
    ENGINE_REQUIRE(layer_param.param_size() <= param_count,
                   layer.describe() << ": " << layer_param.param_size()
                                    << " param specs given, but the layer has only " << param_count
                                    << " parameter blob(s)");
    for (int j = 0; j < param_count; ++j) {
      // A parameter with lr_mult 0 is frozen: no gradient is computed for it.
      const bool learns = j >= layer_param.param_size() || layer_param.param(j).lr_mult() != 0;
      // The layer may have frozen it itself (BatchNorm's statistics).
      const bool frozen_by_layer = !layer.param_propagate_down(j);
      layer.set_param_propagate_down(j, learns && !frozen_by_layer);
      need_backward = need_backward || layer.param_propagate_down(j);
    }
    for (int j = 0; j < param_count; ++j) append_params(layer.param(), i, j);
    layer_need_backward_.push_back(need_backward);
    for (int id : top_ids_[i]) blob_need_backward_[id] = need_backward;
  }
  for (const auto& entry : available) output_blobs_.push_back(blobs_[entry.second].get());
  analyse_backward(param);
  plan_fusion(param.force_backward());
  for (size_t i = 0; i < layers_.size(); ++i) {
    layers_[i]->set_backward_plan(layer_need_backward_[i], bottom_need_backward_[i]);
  }
}

void Net::append_top(const LayerParameter& layer, int layer_id, int top_id,
                     std::map<std::string, int>* available) {
  const std::string& name = layer.top(top_id);
  const bool in_place = top_id < layer.bottom_size() && layer.bottom(top_id) == name;
  if (in_place) {
    // The bottom was consumed by this layer: it becomes available again as this layer's top.
    const int id = bottom_ids_[layer_id][top_id];
    (*available)[name] = id;
    top_vecs_[layer_id].push_back(blobs_[id].get());
    top_ids_[layer_id].push_back(id);
    return;
  }
  ENGINE_REQUIRE(!blob_index_.count(name),
                 "layer " << layer.name() << " (" << layer.type() << "): top blob '" << name
                          << "' is already produced by another layer (only a layer's own "
                             "bottom can be reused as its top, in place)");
  const int id = static_cast<int>(blobs_.size());
  blobs_.push_back(std::make_shared<Blob>());
  blob_names_.push_back(name);
  blob_need_backward_.push_back(false);
  blob_loss_weights_.push_back(0.0f);
  blob_index_[name] = id;
  (*available)[name] = id;
  top_vecs_[layer_id].push_back(blobs_[id].get());
  top_ids_[layer_id].push_back(id);
}

void Net::append_bottom(const LayerParameter& layer, int layer_id, int bottom_id,
                        std::map<std::string, int>* available) {
  const std::string& name = layer.bottom(bottom_id);
  const auto found = available->find(name);
  ENGINE_REQUIRE(found != available->end(),
                 "layer " << layer.name() << " (" << layer.type() << "): bottom blob '" << name
                          << "' (bottom " << bottom_id << ") is not produced by any earlier layer");
  const int id = found->second;
  bottom_vecs_[layer_id].push_back(blobs_[id].get());
  bottom_ids_[layer_id].push_back(id);
  bool need_backward = blob_need_backward_[id];
  // propagate_down, when given, decides: it can switch a gradient off, or on (as Caffe's
  // unrolled recurrent nets use it).
  if (layer.propagate_down_size() > 0) need_backward = layer.propagate_down(bottom_id);
  bottom_need_backward_[layer_id].push_back(need_backward);
  available->erase(found);
}

void Net::append_params(const LayerParameter& layer, int layer_id, int param_id) {
  const int net_id = static_cast<int>(params_.size());
  const std::shared_ptr<Blob>& blob = layers_[layer_id]->blobs()[param_id];
  params_.push_back(blob);
  param_layer_indices_.emplace_back(layer_id, param_id);
  const ParamSpec spec = param_id < layer.param_size() ? layer.param(param_id) : ParamSpec();
  const std::string display =
      spec.name().empty() ? layer.name() + "[" + std::to_string(param_id) + "]" : spec.name();
  param_display_names_.push_back(display);

  const auto owner = spec.name().empty() ? param_names_index_.end()
                                         : param_names_index_.find(spec.name());
  if (owner == param_names_index_.end()) {
    // This layer owns the parameter.
    if (!spec.name().empty()) param_names_index_[spec.name()] = net_id;
    param_owners_.push_back(-1);
    learnable_param_ids_.push_back(net_id);
    learnable_params_.push_back(blob.get());
    params_lr_.push_back(spec.has_lr_mult() ? spec.lr_mult() : 1.0f);
    params_weight_decay_.push_back(spec.has_decay_mult() ? spec.decay_mult() : 1.0f);
    return;
  }
  // Shared: use the owner's memory, after checking the shapes agree.
  const int owner_id = owner->second;
  param_owners_.push_back(owner_id);
  Blob& owner_blob = *params_[owner_id];
  const auto& [owner_layer, owner_param] = param_layer_indices_[owner_id];
  if (spec.share_mode() == ParamSpec::PERMISSIVE) {
    ENGINE_REQUIRE(owner_blob.count() == blob->count(),
                   "layer " << layer.name() << ": shared parameter '" << spec.name() << "' has "
                            << blob->count() << " values, but its owner in layer "
                            << layer_names_[owner_layer] << " has " << owner_blob.count());
  } else {
    ENGINE_REQUIRE(owner_blob.shape() == blob->shape(),
                   "layer " << layer.name() << ": shared parameter '" << spec.name()
                            << "' has shape " << blob->shape_string() << ", but its owner in layer "
                            << layer_names_[owner_layer] << " has " << owner_blob.shape_string()
                            << " (use share_mode: PERMISSIVE to share by count)");
  }
  blob->share_data(owner_blob);
  blob->share_diff(owner_blob);
  // The owner's multipliers apply; a sharer that sets different ones is an error.
  const int learnable_index = static_cast<int>(
      std::find(learnable_param_ids_.begin(), learnable_param_ids_.end(), owner_id) -
      learnable_param_ids_.begin());
  if (spec.has_lr_mult()) {
    float& lr = params_lr_[learnable_index];
    const LayerParameter& owner_param_layer = layers_[owner_layer]->param();
    const bool owner_set = owner_param < owner_param_layer.param_size() &&
                           owner_param_layer.param(owner_param).has_lr_mult();
    ENGINE_REQUIRE(!owner_set || lr == spec.lr_mult(),
                   "layer " << layer.name() << ": shared parameter '" << spec.name()
                            << "' has lr_mult " << spec.lr_mult() << ", its owner "
                            << layer_names_[owner_layer] << " has " << lr);
    lr = spec.lr_mult();
  }
  if (spec.has_decay_mult()) {
    float& decay = params_weight_decay_[learnable_index];
    const LayerParameter& owner_param_layer = layers_[owner_layer]->param();
    const bool owner_set = owner_param < owner_param_layer.param_size() &&
                           owner_param_layer.param(owner_param).has_decay_mult();
    ENGINE_REQUIRE(!owner_set || decay == spec.decay_mult(),
                   "layer " << layer.name() << ": shared parameter '" << spec.name()
                            << "' has decay_mult " << spec.decay_mult() << ", its owner "
                            << layer_names_[owner_layer] << " has " << decay);
    decay = spec.decay_mult();
  }
}

void Net::analyse_backward(const NetParameter& param) {
  // Walk back from the losses: a layer no loss depends on needs no backward, and a blob whose
  // readers all skip propagating to it needs no gradient.
  std::set<std::string> under_loss, skip_backprop;
  for (int i = static_cast<int>(layers_.size()) - 1; i >= 0; --i) {
    bool contributes = false;
    bool skip = true;
    for (size_t j = 0; j < top_vecs_[i].size(); ++j) {
      const std::string& name = blob_names_[top_ids_[i][j]];
      if (layers_[i]->loss(static_cast<int>(j)) != 0 || under_loss.count(name)) contributes = true;
      if (!skip_backprop.count(name)) skip = false;
    }
    if (layer_need_backward_[i] && skip) {
      layer_need_backward_[i] = false;
      std::fill(bottom_need_backward_[i].begin(), bottom_need_backward_[i].end(), false);
    }
    if (!contributes) layer_need_backward_[i] = false;
    for (size_t j = 0; j < bottom_vecs_[i].size(); ++j) {
      const std::string& name = blob_names_[bottom_ids_[i][j]];
      if (contributes) {
        under_loss.insert(name);
      } else {
        bottom_need_backward_[i][j] = false;
      }
      if (!bottom_need_backward_[i][j]) skip_backprop.insert(name);
    }
  }
  if (param.force_backward()) {
    for (size_t i = 0; i < layers_.size(); ++i) {
      layer_need_backward_[i] = true;
      for (size_t j = 0; j < bottom_vecs_[i].size(); ++j) {
        const bool allowed = layers_[i]->allow_force_backward(static_cast<int>(j));
        bottom_need_backward_[i][j] = bottom_need_backward_[i][j] || allowed;
        blob_need_backward_[bottom_ids_[i][j]] = blob_need_backward_[bottom_ids_[i][j]] || allowed;
      }
      for (size_t p = 0; p < layers_[i]->blobs().size(); ++p) {
        layers_[i]->set_param_propagate_down(static_cast<int>(p), true);
      }
    }
  }
}

float Net::forward_from_to(int start, int end) {
  CHECK_GE(start, 0);
  CHECK_LT(end, static_cast<int>(layers_.size()));
  float loss = 0;
  int i = start;
  try {
    for (; i <= end; ++i) {
      // A layer computes the layers fused into it (channel_epilogue.hpp) when this pass runs
      // them all, on the CPU; otherwise every layer runs itself.
      const int last = fused_until_[i];
      const bool fused = last > i && last <= end && Context::mode() == Mode::CPU;
      if (last > i) layers_[i]->set_epilogue(fused ? epilogues_[i].get() : nullptr);
      forward_fused_[i] = false;
      loss += layers_[i]->forward(bottom_vecs_[i], top_vecs_[i]);
      if (loss_scale_ != 1) scale_loss_gradients(i);
      for (int j = i + 1; j <= last; ++j) forward_fused_[j] = fused;
      if (fused) i = last;
    }
  } catch (...) {
    rethrow_naming(*layers_[i], "forward");
  }
  return loss;
}

float Net::forward() { return forward_from_to(0, static_cast<int>(layers_.size()) - 1); }

void Net::backward_from_to(int start, int end) {
  CHECK_GE(end, 0);
  CHECK_LT(start, static_cast<int>(layers_.size()));
  int i = start;
  try {
    for (; i >= end; --i) {
      ENGINE_REQUIRE(!(layer_need_backward_[i] && forward_fused_[i] && fused_without_backward_[i]),
                     layers_[i]->describe()
                         << ": backward through a layer that this TEST net computed inside the "
                            "convolution before it (fusion); set force_backward: true in the net "
                            "to take gradients through it");
      if (layer_need_backward_[i]) {
        layers_[i]->backward(top_vecs_[i], bottom_need_backward_[i], bottom_vecs_[i]);
      }
      if (after_backward_step_) after_backward_step_(i);
    }
  } catch (...) {
    rethrow_naming(*layers_[i], "backward");
  }
}

void Net::plan_fusion(bool force_backward) {
  const int count = static_cast<int>(layers_.size());
  fused_until_.resize(count);
  forward_fused_.assign(count, false);
  fused_without_backward_.assign(count, false);
  // A TEST net runs backward only when asked to (force_backward, for input gradients); backward
  // through a fused affine layer without it fails, naming the layer.
  const bool inference = phase_ == TEST && !force_backward;
  for (int i = 0; i < count; ++i) fused_until_[i] = i;
  const char* fusion = std::getenv("ENGINE_FUSION");
  if (fusion && std::string(fusion) == "off") return;
  // Whether layer j rewrites blob `id` in place, alone, and adds no loss.
  auto in_place_on = [&](int j, int id) {
    return bottom_ids_[j].size() == 1 && top_ids_[j].size() == 1 && bottom_ids_[j][0] == id &&
           top_ids_[j][0] == id && layers_[j]->loss(0) == 0;
  };
  for (int i = 0; i < count; ++i) {
    Layer& layer = *layers_[i];
    if (!layer.accepts_epilogue() || top_ids_[i].size() != 1 || blob_loss_weights_[top_ids_[i][0]]) {
      continue;
    }
    const int id = top_ids_[i][0];
    const Blob& top = *blobs_[id];
    if (top.num_axes() < 2) continue;
    const int channels = top.shape(1);
    std::vector<float> scale(channels), shift(channels);
    std::vector<const Layer*> affine;
    bool clamps = false;
    ChannelEpilogue::Clamp clamp;
    int j = i + 1;
    // Per-channel affine layers that run no backward (their backward needs what they saw),
    // then a ReLU (whose backward reads only its output, which the fused pass leaves) or a Clip
    // that runs no backward (its backward reads its input).
    for (; j < count && in_place_on(j, id); ++j) {
      const Layer& next = *layers_[j];
      const bool without_backward = inference || !layer_need_backward_[j];
      if (without_backward && layer.epilogue_takes_affine() &&
          next.compose_channel_affine(channels, scale.data(), shift.data())) {
        affine.push_back(&next);
        fused_without_backward_[j] = true;
        continue;
      }
      if (next.type() == "ReLU" && next.param().relu_param().negative_slope() == 0) {
        clamps = true;
        ++j;
      } else if (next.type() == "Clip" && without_backward) {
        clamps = true;
        clamp.low = next.param().clip_param().min();
        clamp.high = next.param().clip_param().max();
        fused_without_backward_[j] = true;
        ++j;
      }
      break;
    }
    if (j == i + 1) continue;
    fused_until_[i] = j - 1;
    epilogues_[i] = std::make_unique<ChannelEpilogue>(std::move(affine), clamps, clamp);
    VLOG(1) << layer.describe() << " computes the " << j - 1 - i << " in-place layer(s) after it";
  }
}

void Net::scale_loss_gradients(int layer) {
  for (size_t j = 0; j < top_vecs_[layer].size(); ++j) {
    if (layers_[layer]->loss(static_cast<int>(j)) == 0) continue;
    Blob& top = *top_vecs_[layer][j];
    math::scale(top.count(), loss_scale_, top.mutable_diff());
  }
}

void Net::backward() { backward_from_to(static_cast<int>(layers_.size()) - 1, 0); }

void Net::reshape() {
  for (size_t i = 0; i < layers_.size(); ++i) layers_[i]->reshape(bottom_vecs_[i], top_vecs_[i]);
}

void Net::clear_param_diffs() {
  for (Blob* blob : learnable_params_) blob->clear_diff();
}

void Net::copy_trained_layers_from(const NetParameter& trained) {
  if (net_needs_upgrade(trained)) {
    NetParameter upgraded = trained;
    upgrade_net(&upgraded, "weights " + trained.name());
    return copy_trained_layers_from(upgraded);
  }
  for (const LayerParameter& source : trained.layer()) {
    const auto found = layer_index_.find(source.name());
    if (found == layer_index_.end()) {
      LOG(INFO) << "Ignoring source layer " << source.name() << ": net " << name_
                << " has no layer of that name";
      continue;
    }
    Layer& target = *layers_[found->second];
    auto& blobs = target.blobs();
    ENGINE_REQUIRE(static_cast<int>(blobs.size()) == source.blobs_size(),
                   target.describe() << ": the trained weights have " << source.blobs_size()
                                     << " blob(s), the layer has " << blobs.size());
    for (int j = 0; j < source.blobs_size(); ++j) {
      ENGINE_REQUIRE(blobs[j]->shape_equals(source.blobs(j)),
                     target.describe() << ": parameter blob " << j << " has shape "
                                       << shape_string(blobs[j]->shape())
                                       << " in the net, but "
                                       << shape_string(proto_shape(source.blobs(j)))
                                       << " in the trained weights");
      blobs[j]->from_proto(source.blobs(j), false);
      // A diverged run's snapshot would otherwise yield NaN outputs with no word why.
      ENGINE_REQUIRE(cpu::all_finite(blobs[j]->count(), blobs[j]->cpu_data()),
                     target.describe() << ": parameter blob " << j
                                       << " holds NaN or infinite values in the trained weights");
    }
  }
}

void Net::share_trained_layers_with(const Net& other) {
  for (size_t i = 0; i < layers_.size(); ++i) {
    const auto found = other.layer_index_.find(layer_names_[i]);
    if (found == other.layer_index_.end()) continue;
    auto& blobs = layers_[i]->blobs();
    const auto& source = other.layers_[found->second]->blobs();
    ENGINE_REQUIRE(blobs.size() == source.size(),
                   layers_[i]->describe() << ": has " << blobs.size() << " parameter blob(s), the "
                                          << "same layer in net " << other.name_ << " has "
                                          << source.size());
    for (size_t j = 0; j < blobs.size(); ++j) {
      ENGINE_REQUIRE(blobs[j]->shape() == source[j]->shape(),
                     layers_[i]->describe() << ": parameter blob " << j << " has shape "
                                            << blobs[j]->shape_string() << ", in net "
                                            << other.name_ << " " << source[j]->shape_string());
      blobs[j]->share_data(*source[j]);
    }
  }
}

const std::string& Net::blob_name(const Blob* blob) const {
  for (size_t i = 0; i < blobs_.size(); ++i) {
    if (blobs_[i].get() == blob) return blob_names_[i];
  }
  LOG(FATAL) << "blob is not in net " << name_;
  return blob_names_[0];
}

float Net::output_loss_weight(const Blob* blob) const {
  for (size_t i = 0; i < blobs_.size(); ++i) {
    if (blobs_[i].get() == blob) return blob_loss_weights_[i];
  }
  return 0;
}

std::string Net::describe_first_non_finite() const {
  auto finite = [](const Blob& blob, bool diff) {
    return cpu::all_finite(blob.count(), diff ? blob.cpu_diff() : blob.cpu_data());
  };
  for (size_t i = 0; i < layers_.size(); ++i) {
    for (size_t j = 0; j < top_vecs_[i].size(); ++j) {
      if (!finite(*top_vecs_[i][j], false)) {
        return "the first non-finite value is in the output '" + blob_names_[top_ids_[i][j]] +
               "' of " + layers_[i]->describe();
      }
    }
  }
  for (int i = static_cast<int>(layers_.size()) - 1; i >= 0; --i) {
    if (!layer_need_backward_[i]) continue;
    for (size_t j = 0; j < bottom_vecs_[i].size(); ++j) {
      if (bottom_need_backward_[i][j] && !finite(*bottom_vecs_[i][j], true)) {
        return "the first non-finite gradient is the one " + layers_[i]->describe() +
               " computes for its input '" + blob_names_[bottom_ids_[i][j]] + "'";
      }
    }
    const auto& params = layers_[i]->blobs();
    for (size_t p = 0; p < params.size(); ++p) {
      if (!finite(*params[p], true)) {
        return "the first non-finite gradient is the one " + layers_[i]->describe() +
               " computes for its parameter " + std::to_string(p);
      }
    }
  }
  return "no layer output or gradient holds a non-finite value now";
}

void Net::to_proto(NetParameter* param, bool write_diff) const {
  param->Clear();
  param->set_name(name_);
  for (const auto& layer : layers_) layer->to_proto(param->add_layer(), write_diff);
}

std::shared_ptr<Blob> Net::blob_by_name(const std::string& name) const {
  const auto found = blob_index_.find(name);
  ENGINE_REQUIRE(found != blob_index_.end(), "net " << name_ << " has no blob named '" << name << "'");
  return blobs_[found->second];
}

Layer& Net::layer_by_name(const std::string& name) const {
  const auto found = layer_index_.find(name);
  ENGINE_REQUIRE(found != layer_index_.end(), "net " << name_ << " has no layer named '" << name << "'");
  return *layers_[found->second];
}

}  // namespace engine
