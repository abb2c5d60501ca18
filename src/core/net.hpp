// Net: a directed acyclic graph of layers built from a NetParameter, run forward (returning
// the weighted loss) and backward.
//
// Construction follows Caffe: legacy forms are upgraded (io/upgrade.hpp); layers are
// filtered by the net state (phase, level, stages) against their include/exclude rules; a blob
// read by several layers gets a Split layer (so their gradients are summed); a top named like a
// bottom works in place; parameters named in `param { name }` are shared; the net works out
// which layers need backward (lr_mult, propagate_down, losses, force_backward).
//
// Blobs, layers and learnable parameters are reachable by name. Not thread-safe.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/blob.hpp"
#include "core/channel_epilogue.hpp"
#include "core/layer.hpp"
#include "engine.pb.h"

namespace engine {

class Net {
 public:
  // `param.state()` chooses the phase, level and stages.
  explicit Net(const NetParameter& param);
  // Reads a prototxt and builds it for the given state.
  Net(const std::string& prototxt, Phase phase, int level = 0,
      const std::vector<std::string>& stages = {});

  // Runs every layer forward; returns the total weighted loss.
  float forward();
  // Runs backward through every layer that needs it; gradients accumulate into parameter diffs.
  void backward();
  float forward_backward() {
    const float loss = forward();
    backward();
    return loss;
  }
  // Layer-by-layer entry points (timing, debugging): layers [start, end] inclusive.
  float forward_from_to(int start, int end);
  void backward_from_to(int start, int end);
  // Called by backward passes after each layer's step, with the layer's index (also for layers
  // that need no backward), in backward order: the point where that layer's parameter gradients
  // are complete, unless a layer before it shares them. Data-parallel training starts
  // exchanging gradients here while backward goes on.
  void set_after_backward_step(std::function<void(int layer)> callback) {
    after_backward_step_ = std::move(callback);
  }
  // fp16 training: backward starts from the loss gradients multiplied by `scale`, so that small
  // gradients stay above fp16's smallest values (the solver divides the result back). 1: off.
  void set_loss_scale(float scale) { loss_scale_ = scale; }
  float loss_scale() const { return loss_scale_; }
  // Re-runs every layer's reshape (after an input blob changed shape).
  void reshape();
  void clear_param_diffs();

  // Makes this net's layers use the parameter memory of `other`'s layers of the same name (test
  // nets follow the training net this way).
  void share_trained_layers_with(const Net& other);
  // Copies weights from a trained net by layer name. Layers the source lacks keep their
  // values; a blob count or shape mismatch fails naming the layer, blob index and shapes.
  void copy_trained_layers_from(const NetParameter& trained);
  void to_proto(NetParameter* param, bool write_diff = false) const;

  const std::string& name() const { return name_; }
  Phase phase() const { return phase_; }

  const std::vector<std::unique_ptr<Layer>>& layers() const { return layers_; }
  const std::vector<std::string>& layer_names() const { return layer_names_; }
  const std::vector<std::shared_ptr<Blob>>& blobs() const { return blobs_; }
  const std::vector<std::string>& blob_names() const { return blob_names_; }
  const std::vector<Blobs>& bottom_vecs() const { return bottom_vecs_; }
  const std::vector<Blobs>& top_vecs() const { return top_vecs_; }
  const std::vector<std::vector<bool>>& bottom_need_backward() const {
    return bottom_need_backward_;
  }
  bool layer_need_backward(int i) const { return layer_need_backward_[i]; }
  // The last layer whose forward pass layer i computes (i when it fuses none; fusion is off
  // with ENGINE_FUSION=off).
  int fused_until(int i) const { return fused_until_[i]; }

  // Tops of the Input layers; blobs no layer consumes.
  const Blobs& input_blobs() const { return input_blobs_; }
  const Blobs& output_blobs() const { return output_blobs_; }

  // The name of one of this net's blobs.
  const std::string& blob_name(const Blob* blob) const;
  // The loss weight of the top that produced `blob` (0 if none).
  float output_loss_weight(const Blob* blob) const;
  // For a net whose last pass produced a NaN or infinity: names the first layer whose output
  // (forward order), else whose gradient (backward order), is not finite.
  std::string describe_first_non_finite() const;

  bool has_blob(const std::string& name) const { return blob_index_.count(name) > 0; }
  bool has_layer(const std::string& name) const { return layer_index_.count(name) > 0; }
  // Throws engine::Error naming the missing blob or layer.
  std::shared_ptr<Blob> blob_by_name(const std::string& name) const;
  Layer& layer_by_name(const std::string& name) const;

  // Every parameter blob of every layer (a shared one appears once per layer using it).
  const std::vector<std::shared_ptr<Blob>>& params() const { return params_; }
  // Name of params()[i]: its `param { name }` or "LAYER[INDEX]".
  const std::vector<std::string>& param_display_names() const { return param_display_names_; }
  // For params()[i]: -1 if it owns its memory, else the index of its owner in params().
  const std::vector<int>& param_owners() const { return param_owners_; }
  // For params()[i]: the index of the layer holding it, and its index among that layer's blobs.
  const std::vector<std::pair<int, int>>& param_layer_indices() const {
    return param_layer_indices_;
  }
  // For learnable_params()[i]: its index in params().
  const std::vector<int>& learnable_param_ids() const { return learnable_param_ids_; }
  // The parameters a solver updates (owners only), with their lr and decay multipliers.
  const std::vector<Blob*>& learnable_params() const { return learnable_params_; }
  const std::vector<float>& params_lr() const { return params_lr_; }
  const std::vector<float>& params_weight_decay() const { return params_weight_decay_; }

 private:
  // Multiplies the loss tops' gradients of one layer by loss_scale_.
  void scale_loss_gradients(int layer);
  void init(const NetParameter& param);
  void append_top(const LayerParameter& layer, int layer_id, int top_id,
                  std::map<std::string, int>* available);
  void append_bottom(const LayerParameter& layer, int layer_id, int bottom_id,
                     std::map<std::string, int>* available);
  void append_params(const LayerParameter& layer, int layer_id, int param_id);
  void analyse_backward(const NetParameter& param);
  // Finds the in-place layers each convolution can compute (channel_epilogue.hpp).
  void plan_fusion(bool force_backward);

  std::string name_;
  Phase phase_ = TRAIN;

  std::vector<std::unique_ptr<Layer>> layers_;
  std::vector<std::string> layer_names_;
  std::map<std::string, int> layer_index_;
  std::vector<bool> layer_need_backward_;
  // Per layer: the last layer its forward pass computes (itself when it fuses none), and what
  // it computes of the others.
  std::vector<int> fused_until_;
  std::map<int, std::unique_ptr<ChannelEpilogue>> epilogues_;
  // Fused layers whose last forward pass the convolution computed, and which of them have no
  // state for backward then (the affine ones; a ReLU's backward needs only its output).
  std::vector<bool> forward_fused_, fused_without_backward_;

  std::vector<std::shared_ptr<Blob>> blobs_;
  std::vector<std::string> blob_names_;
  std::map<std::string, int> blob_index_;
  std::vector<bool> blob_need_backward_;
  std::vector<float> blob_loss_weights_;

  std::vector<Blobs> bottom_vecs_, top_vecs_;
  std::vector<std::vector<int>> bottom_ids_, top_ids_;
  std::vector<std::vector<bool>> bottom_need_backward_;
  Blobs input_blobs_, output_blobs_;

  std::vector<std::shared_ptr<Blob>> params_;
  std::vector<std::string> param_display_names_;
  std::vector<int> param_owners_;
  std::vector<std::pair<int, int>> param_layer_indices_;
  std::map<std::string, int> param_names_index_;
  std::vector<Blob*> learnable_params_;
  std::vector<int> learnable_param_ids_;
  std::vector<float> params_lr_;
  std::vector<float> params_weight_decay_;
  std::function<void(int)> after_backward_step_;
  float loss_scale_ = 1;
};

// Net construction steps, exposed for testing and tools.
// Whether the state passes the layer's include/exclude rules (both given is an error).
bool state_meets_rules(const NetState& state, const LayerParameter& layer);
// The layers of `param` that the state of `param` selects.
NetParameter filter_net(const NetParameter& param);
// Adds a Split layer after every blob that more than one layer reads.
NetParameter insert_splits(const NetParameter& param);
// Sets the `engine` field of every layer parameter message that has one (tools' --engine).
void set_layer_engines(int engine, NetParameter* param);
// Sets the first axis of every Input layer's shapes and of the legacy input fields.
void set_input_batch(int batch, NetParameter* param);

}  // namespace engine
