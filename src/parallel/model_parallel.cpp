#include "parallel/model_parallel.hpp"

#include <algorithm>
#include <functional>
#include <tuple>
#include <map>
#include <sstream>

#include "core/errors.hpp"
#include "io/upgrade.hpp"

namespace engine {

namespace {

// A blob on every worker, its channels divided among them, or (the hybrid) each worker's own
// images.
enum class Placement { WHOLE, SLICED, IMAGES };

// Layers whose every output channel depends on the same input channel only, without
// parameters: they run on a slice as they run on the whole.
const std::set<std::string> kChannelwise = {
    "ReLU",  "Sigmoid", "TanH",      "AbsVal", "Power", "Exp",   "Log",     "BNLL",
    "ELU",   "Threshold", "Clip",    "Swish",  "Dropout", "Pooling", "Split"};
// Layers with parameters that are not divided yet.
const std::set<std::string> kUnsplittable = {"BatchNorm", "Scale", "Bias", "PReLU", "Embed",
                                             "Deconvolution", "RNN", "LSTM", "Parameter"};

bool is_loss(const LayerParameter& layer) {
  const std::string& type = layer.type();
  return type.size() > 4 && type.compare(type.size() - 4, 4, "Loss") == 0;
}

class Splitter {
 public:
  Splitter(int workers, int worker, std::string source, bool fully_connected_only)
      : workers_(workers), worker_(worker), source_(std::move(source)),
        hybrid_(fully_connected_only) {}

  SplitNet run(const NetParameter& net) {
    result_.net = net;
    result_.net.clear_layer();
    for (const LayerParameter& layer : net.layer()) {
      used_names_.insert(layer.name());
      used_names_.insert(layer.top().begin(), layer.top().end());
    }
    for (const LayerParameter& layer : net.layer()) place(layer);
    decide_gradients();
    return std::move(result_);
  }

 private:
  [[noreturn]] void refuse(const LayerParameter& layer, const std::string& why) {
    ENGINE_FAIL(source_ << ": layer " << layer.name() << " (" << layer.type()
                        << ") cannot be split over " << workers_ << " workers: " << why);
  }

  Placement placement(const std::string& blob) const {
    const auto found = placement_.find(blob);
    return found == placement_.end() ? Placement::WHOLE : found->second;
  }

  // An exchange layer's skeleton: its type, name, this worker's place, and the include/exclude
  // rules of the layer it serves (its input may exist in that phase only).
  LayerParameter exchange_layer(const std::string& type, const std::string& name,
                                const LayerParameter& consumer) const {
    LayerParameter layer;
    layer.set_name(name);
    layer.set_type(type);
    *layer.mutable_include() = consumer.include();
    *layer.mutable_exclude() = consumer.exclude();
    layer.mutable_channel_exchange_param()->set_workers(workers_);
    layer.mutable_channel_exchange_param()->set_worker(worker_);
    return layer;
  }

  // An exchange layer before `consumer`, with its include/exclude rules (its input may exist
  // in that phase only); reused by later consumers with the same rules.
  std::string exchange(const std::string& type, const std::string& blob,
                       const LayerParameter& consumer, const std::string& why, int axis = 1) {
    std::string rules;
    for (const auto& rule : consumer.include()) rules += "+" + rule.ShortDebugString();
    for (const auto& rule : consumer.exclude()) rules += "-" + rule.ShortDebugString();
    auto& made = exchanged_[{type, blob, rules}];
    if (!made.empty()) return made;
    const std::string suffix =
        type == "KeepChannels" ? "_slice" : (axis == 0 ? "_all_images" : "_whole");
    made = blob + suffix;
    for (int n = 2; used_names_.count(made); ++n) made = blob + suffix + std::to_string(n);
    used_names_.insert(made);
    LayerParameter layer = exchange_layer(type, made, consumer);
    layer.add_bottom(blob);
    layer.add_top(made);
    layer.mutable_channel_exchange_param()->set_axis(axis);
    *result_.net.add_layer() = layer;
    if (type == "GatherChannels") result_.exchanges.push_back(consumer.name() + ": " + why);
    return made;
  }

  // The whole blob: its channels, or in the hybrid its images, gathered.
  std::string gathered(const std::string& blob, const LayerParameter& consumer,
                       const std::string& why) {
    switch (placement(blob)) {
      case Placement::WHOLE:
        return blob;
      case Placement::SLICED:
        return exchange("GatherChannels", blob, consumer, why);
      case Placement::IMAGES:
        break;
    }
    return exchange("GatherChannels", blob, consumer, why + "'s images", 0);
  }

  void set_tops(const LayerParameter& layer, Placement where) {
    for (const std::string& top : layer.top()) {
      placement_[top] = where;
      renamed_.erase(top);
      used_names_.insert(top);
      // A new value under the name: earlier exchanges of it are stale.
      for (auto it = exchanged_.begin(); it != exchanged_.end();) {
        if (std::get<1>(it->first) == top) {
          it = exchanged_.erase(it);
        } else {
          ++it;
        }
      }
    }
  }

  bool all_inputs(const LayerParameter& layer, Placement where) const {
    bool all = layer.bottom_size() > 0;
    for (const std::string& bottom : layer.bottom()) all = all && placement(bottom) == where;
    return all;
  }

  // Whether each output channel comes from the same input channel only (so a slice of the
  // channels maps to the same slice).
  static bool keeps_channels(const LayerParameter& layer) {
    const std::string& type = layer.type();
    return kChannelwise.count(type) ||
           (type == "LRN" && layer.lrn_param().norm_region() == LRNParameter::WITHIN_CHANNEL) ||
           (type == "Eltwise" && layer.bottom_size() > 1);
  }

  void place(LayerParameter layer) {
    // A blob an in-place layer went on computing on after gathering it has a new name.
    for (int i = 0; i < layer.bottom_size(); ++i) {
      const auto found = renamed_.find(layer.bottom(i));
      if (found != renamed_.end()) layer.set_bottom(i, found->second);
    }
    const std::string& type = layer.type();
    if (hybrid_) return place_hybrid(layer);
    if (type == "Convolution" || type == "InnerProduct") return place_split(layer);
    if (kUnsplittable.count(type)) refuse(layer, "its parameters cannot be divided yet");
    const bool sliced_input = all_inputs(layer, Placement::SLICED);
    if (sliced_input && keeps_channels(layer)) {
      *result_.net.add_layer() = layer;
      return set_tops(layer, Placement::SLICED);
    }
    if (sliced_input && type == "LRN") {
      // Normalizing across channels reads the `size / 2` channels on either side: the slice
      // with a halo of the neighbours' edge channels, then the slice of the result.
      const std::string bottom = layer.bottom(0), top = layer.top(0);
      const int halo = static_cast<int>(layer.lrn_param().local_size()) / 2;
      LayerParameter with_halo = exchange_layer("HaloChannels", layer.name() + "_halo", layer);
      with_halo.add_bottom(bottom);
      with_halo.add_top(bottom + "_halo");
      with_halo.mutable_channel_exchange_param()->set_halo(halo);
      *result_.net.add_layer() = with_halo;
      set_tops(with_halo, Placement::WHOLE);
      result_.exchanges.push_back(layer.name() + ": " + std::to_string(halo) +
                                  " channels of " + bottom +
                                  " from each neighbouring worker (LRN across channels)");
      layer.set_bottom(0, with_halo.top(0));
      layer.set_top(0, top + "_normalized");
      *result_.net.add_layer() = layer;
      set_tops(layer, Placement::WHOLE);
      LayerParameter keep = exchange_layer("KeepChannels", layer.name() + "_slice", layer);
      keep.add_bottom(layer.top(0));
      keep.add_top(top);
      keep.mutable_channel_exchange_param()->set_halo(halo);
      *result_.net.add_layer() = keep;
      return set_tops(keep, Placement::SLICED);
    }
    // Anything else (losses, accuracy, softmax, concat, ...) runs whole on every worker.
    run_whole(layer);
  }

  // `layer` on whole inputs, gathered where they are not; an in-place layer then computes in
  // place on the gathered blob, which later readers of the name get.
  void run_whole(LayerParameter layer) {
    for (int i = 0; i < layer.bottom_size(); ++i) {
      const std::string original = layer.bottom(i);
      layer.set_bottom(i, gathered(original, layer, "all-gather of " + original));
      for (int t = 0; t < layer.top_size(); ++t) {
        if (layer.top(t) == original && layer.bottom(i) != original) {
          layer.set_top(t, layer.bottom(i));
          renamed_[original] = layer.bottom(i);
        }
      }
    }
    *result_.net.add_layer() = layer;
    set_tops(layer, Placement::WHOLE);
  }

  // The hybrid: sources give each worker its own images; layers that treat images one by one
  // keep them so; InnerProducts and everything else see the whole group's images.
  void place_hybrid(LayerParameter layer) {
    const std::string& type = layer.type();
    if (type == "InnerProduct") return place_split(layer);
    if (kUnsplittable.count(type)) refuse(layer, "its parameters cannot be divided yet");
    if (layer.bottom_size() == 0) {
      *result_.net.add_layer() = layer;
      return set_tops(layer, Placement::IMAGES);
    }
    const bool image_by_image = kChannelwise.count(type) || type == "LRN" ||
                                type == "Convolution" || type == "Eltwise";
    if (all_inputs(layer, Placement::IMAGES) && image_by_image) {
      *result_.net.add_layer() = layer;
      return set_tops(layer, Placement::IMAGES);
    }
    if (all_inputs(layer, Placement::SLICED) && keeps_channels(layer)) {
      *result_.net.add_layer() = layer;
      return set_tops(layer, Placement::SLICED);
    }
    run_whole(layer);
  }

  void place_split(LayerParameter layer) {
    const bool convolution = layer.type() == "Convolution";
    if (layer.bottom_size() != 1 || layer.top_size() != 1) {
      refuse(layer, "it has several bottoms or tops");
    }
    const int outputs = convolution ? static_cast<int>(layer.convolution_param().num_output())
                                    : static_cast<int>(layer.inner_product_param().num_output());
    if (outputs % workers_ != 0) {
      refuse(layer, "its num_output " + std::to_string(outputs) + " is not a multiple of " +
                        std::to_string(workers_));
    }
    const std::string bottom = layer.bottom(0);
    const Placement input = placement(bottom);
    if (convolution) {
      ConvolutionParameter& conv = *layer.mutable_convolution_param();
      const int group = static_cast<int>(conv.group());
      if (group % workers_ == 0) {
        // Whole groups per worker: it reads only its groups' input channels.
        if (input == Placement::WHOLE) layer.set_bottom(0, exchange("KeepChannels", bottom, layer, ""));
        conv.set_group(group / workers_);
      } else if (group > 1) {
        refuse(layer, "its group " + std::to_string(group) + " is not a multiple of " +
                          std::to_string(workers_));
      } else {
        layer.set_bottom(0, gathered(bottom, layer, "all-gather of " + bottom));
      }
      conv.set_num_output(outputs / workers_);
    } else {
      InnerProductParameter& product = *layer.mutable_inner_product_param();
      if (product.axis() != 1 || product.transpose()) {
        refuse(layer, "only axis 1 without transpose is divided");
      }
      layer.set_bottom(0, gathered(bottom, layer, "all-gather of " + bottom));
      product.set_num_output(outputs / workers_);
    }
    result_.split_layers.insert(layer.name());
    *result_.net.add_layer() = layer;
    set_tops(layer, Placement::SLICED);
  }

  // Whether each GatherChannels' backward sums partial gradients: the consumers of its whole
  // blob either compute a slice of their output from it (a split layer, KeepChannels: each
  // worker's gradient is one part of the sum) or compute the same whole result on every worker
  // (a loss: each worker's gradient is already complete); what a whole-running layer passes
  // back is partial or complete as its own output's gradient is.
  enum class Gradient { NONE, PARTIAL, COMPLETE };

  void decide_gradients() {
    NetParameter& net = result_.net;
    // Versions of blobs: every top makes a new one, even in place.
    std::map<std::string, int> current;
    std::vector<std::vector<std::pair<int, int>>> consumers;  // (layer, bottom index)
    std::vector<std::vector<int>> tops_of(net.layer_size());
    for (int i = 0; i < net.layer_size(); ++i) {
      const LayerParameter& layer = net.layer(i);
      for (int j = 0; j < layer.bottom_size(); ++j) {
        const auto found = current.find(layer.bottom(j));
        if (found != current.end()) consumers[found->second].push_back({i, j});
      }
      for (const std::string& top : layer.top()) {
        current[top] = static_cast<int>(consumers.size());
        tops_of[i].push_back(static_cast<int>(consumers.size()));
        consumers.emplace_back();
      }
    }
    std::map<int, Gradient> memo;
    std::function<Gradient(int)> gradient_of = [&](int version) {
      const auto known = memo.find(version);
      if (known != memo.end()) return known->second;
      Gradient result = Gradient::NONE;
      for (const auto& [i, j] : consumers[version]) {
        const LayerParameter& layer = net.layer(i);
        Gradient part = Gradient::NONE;
        if (layer.type() == "Accuracy" || layer.type() == "Silence" ||
            (j < layer.propagate_down_size() && !layer.propagate_down(j))) {
          part = Gradient::NONE;
        } else if (result_.split_layers.count(layer.name()) || layer.type() == "KeepChannels") {
          part = Gradient::PARTIAL;
        } else {
          for (int t = 0; t < static_cast<int>(tops_of[i].size()); ++t) {
            Gradient top = gradient_of(tops_of[i][t]);
            // A weighted top starts backward with the same complete gradient on every worker.
            const float weight = t < layer.loss_weight_size() ? layer.loss_weight(t)
                                                              : (is_loss(layer) && t == 0 ? 1 : 0);
            if (weight != 0) top = combine(top, Gradient::COMPLETE, layer);
            part = combine(part, top, layer);
          }
        }
        result = combine(result, part, layer);
      }
      return memo[version] = result;
    };
    for (int i = 0; i < net.layer_size(); ++i) {
      LayerParameter& layer = *net.mutable_layer(i);
      if (layer.type() != "GatherChannels") continue;
      layer.mutable_channel_exchange_param()->set_partial_gradients(
          gradient_of(tops_of[i][0]) != Gradient::COMPLETE);
    }
  }

  Gradient combine(Gradient a, Gradient b, const LayerParameter& layer) {
    if (a == Gradient::NONE) return b;
    if (b == Gradient::NONE || a == b) return a;
    refuse(layer, "the gradient of its input would mix the workers' partial sums with complete "
                  "copies");
  }

  const int workers_, worker_;
  const std::string source_;
  const bool hybrid_;
  SplitNet result_;
  std::map<std::string, Placement> placement_;
  std::map<std::tuple<std::string, std::string, std::string>, std::string> exchanged_;
  std::set<std::string> used_names_;
  std::map<std::string, std::string> renamed_;
};

}  // namespace

SplitNet split_net(const NetParameter& net, int workers, int worker, const std::string& source,
                   bool fully_connected_only) {
  ENGINE_REQUIRE(workers >= 1 && worker >= 0 && worker < workers,
                 source << ": worker " << worker << " of " << workers << " does not exist");
  NetParameter upgraded = net;
  if (net_needs_upgrade(upgraded)) upgrade_net(&upgraded, source);
  upgrade_net_input(&upgraded, source);
  if (workers == 1) return {upgraded, {}, {}};
  return Splitter(workers, worker, source, fully_connected_only).run(upgraded);
}

void copy_weight_slices(const NetParameter& whole, const std::set<std::string>& split_layers,
                        int workers, int worker, Net* net) {
  NetParameter sliced = whole;
  if (net_needs_upgrade(sliced)) upgrade_net(&sliced, "weights " + whole.name());
  for (LayerParameter& layer : *sliced.mutable_layer()) {
    if (!split_layers.count(layer.name())) continue;
    for (BlobProto& blob : *layer.mutable_blobs()) {
      const std::vector<int> shape = proto_shape(blob);
      ENGINE_REQUIRE(!shape.empty() && shape[0] % workers == 0,
                     "layer " << layer.name() << ": a parameter blob of shape "
                              << shape_string(shape) << " cannot be divided among " << workers
                              << " workers");
      const int64_t rows = shape[0] / workers;
      const int64_t row = blob.data_size() / std::max(shape[0], 1);
      BlobProto part;
      for (size_t a = 0; a < shape.size(); ++a) {
        part.mutable_shape()->add_dim(a == 0 ? rows : shape[a]);
      }
      part.mutable_data()->Reserve(static_cast<int>(rows * row));
      for (int64_t k = worker * rows * row; k < (worker + 1) * rows * row; ++k) {
        part.add_data(blob.data(static_cast<int>(k)));
      }
      blob = part;
    }
  }
  net->copy_trained_layers_from(sliced);
}

void gather_whole_model(Communicator& group, const std::set<std::string>& split_layers,
                        NetParameter* model) {
  // The exchanges are the workers' business: the whole model has the original's layers.
  auto& layers = *model->mutable_layer();
  layers.erase(std::remove_if(layers.begin(), layers.end(),
                              [](const LayerParameter& layer) {
                                return layer.type() == "GatherChannels" ||
                                       layer.type() == "KeepChannels" ||
                                       layer.type() == "HaloChannels";
                              }),
               layers.end());
  // Through blobs, so that the values travel in the memory the group's communicator exchanges
  // (the mode's side: host for MPI, device for NCCL).
  auto gather = [&group](google::protobuf::RepeatedField<float>* values, const std::string& what) {
    const int count = values->size();
    Blob part({count}), whole({count * group.size()});
    std::copy(values->begin(), values->end(), part.mutable_cpu_data());
    group.allgather(part.data(), whole.mutable_data(), static_cast<size_t>(count), what);
    group.synchronize(what);
    values->Assign(whole.cpu_data(), whole.cpu_data() + whole.count());
  };
  for (LayerParameter& layer : *model->mutable_layer()) {
    if (!split_layers.count(layer.name())) continue;
    for (int j = 0; j < layer.blobs_size(); ++j) {
      BlobProto& blob = *layer.mutable_blobs(j);
      const std::string what = "the gathering of " + layer.name() + "'s parameter blob " +
                               std::to_string(j) + " for a snapshot";
      gather(blob.mutable_data(), what);
      if (blob.diff_size() > 0) gather(blob.mutable_diff(), what + " (its gradient)");
      blob.mutable_shape()->set_dim(0, blob.shape().dim(0) * group.size());
    }
  }
}

// ---- ModelParallel ---------------------------------------------------------------------------

ModelParallel::ModelParallel(Communicator& world, Communicator& group, Communicator* replicas,
                             Net& net, std::set<std::string> split_layers,
                             bool fully_connected_only, int copies, size_t bucket_bytes,
                             bool overlap)
    : world_(world), group_(group), split_layers_(std::move(split_layers)), copies_(copies) {
  // A split layer's slices average with their counterparts in the other groups. In the hybrid
  // every other parameter saw only this worker's images of the group's batch: summed over the
  // whole world, then averaged over the groups.
  const float groups = static_cast<float>(world.size() / group.size());
  // A learnable parameter is sliced when its owning layer was split.
  std::vector<bool> sliced;
  for (int owner : net.learnable_param_ids()) {
    const int layer = net.param_layer_indices()[owner].first;
    sliced.push_back(split_layers_.count(net.layer_names()[layer]) > 0);
  }
  const bool several_groups = replicas && replicas->size() > 1;
  if (!several_groups && !fully_connected_only) return;
  data_parallel_ = std::make_unique<DataParallel>(
      world, net, bucket_bytes, overlap, [&, replicas, groups, several_groups](int id) {
        if (sliced[id]) {
          return several_groups ? DataParallel::Route{replicas, 1 / groups}
                                : DataParallel::Route{};
        }
        return fully_connected_only ? DataParallel::Route{&world, 1 / groups}
                                    : DataParallel::Route{replicas, 1 / groups};
      });
}

void ModelParallel::backward_starting() {
  if (data_parallel_) data_parallel_->backward_starting();
}

void ModelParallel::average_gradients() {
  if (data_parallel_) data_parallel_->average_gradients();
}

void ModelParallel::broadcast_weights() {
  // Each worker's slices come from its counterpart in the root's group.
  if (data_parallel_) data_parallel_->broadcast_weights();
}

void ModelParallel::broadcast(std::string* bytes, const std::string& what,
                              bool after_root_work) {
  world_.broadcast_bytes(bytes, 0, what, after_root_work);
}

std::vector<std::string> ModelParallel::allgather(const std::string& bytes,
                                                  const std::string& what) {
  return world_.allgather_bytes(bytes, what);
}

void ModelParallel::whole_model(NetParameter* model) {
  gather_whole_model(group_, split_layers_, model);
}

void ModelParallel::load_model(const NetParameter& model, Net* net) {
  copy_weight_slices(model, split_layers_, group_.size(), group_.rank(), net);
}

}  // namespace engine
