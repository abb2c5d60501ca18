// Layer: the unit a Net is built from. A layer reads its bottom blobs and writes its top blobs
// (forward), and turns the tops' gradients into the bottoms' and its parameters' (backward).
//
// The contract, as in Caffe:
//   setup(bottom, top)     once: checks the blob counts, layer_setup (read parameters, make the
//                          learnable blobs), reshape, and the loss weights of the tops.
//   reshape(bottom, top)   whenever the bottoms' shapes may have changed: shape tops, buffers.
//   forward / backward     dispatch on Context::mode() to forward_cpu / forward_gpu (and
//                          backward_*); the default forward_gpu / backward_gpu run the CPU ones.
// Writing the two devices' code (one convention for every layer):
//   - Where the algorithm is the same on both devices, write it once, in forward_cpu and
//     backward_cpu only, with the mode-aware accessors (Blob::data(), mutable_diff(), ...) and
//     the math:: front of math/blas.hpp. The default GPU overrides run that code in GPU mode,
//     where those pointers and primitives are the device's.
//   - Where one step really differs (a CUDA kernel against a CPU loop), keep that step a helper
//     that branches on math::on_gpu() (the kernel under #ifdef ENGINE_USE_CUDA), called from the
//     shared code.
//   - Override forward_gpu / backward_gpu only where the whole pass differs (cuDNN, a single
//     fused kernel for the pass).
//   - CPU-only code uses cpu_data() and cpu::; in GPU mode the synced memory brings the data
//     to the host. Never mix cpu_data() pointers with math:: (or data() with cpu::).
// Learnable parameters live in blobs_ (shared_ptr: a Net may share them between layers).
// A layer type is registered once, in layers/layer_list.cpp.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "core/blob.hpp"
#include "core/errors.hpp"
#include "engine.pb.h"

namespace engine {

using Blobs = std::vector<Blob*>;

class RoundedOperands;  // rounded_operands.hpp
class ChannelEpilogue;  // channel_epilogue.hpp

class Layer {
 public:
  explicit Layer(const LayerParameter& param);
  virtual ~Layer();
  Layer(const Layer&) = delete;
  Layer& operator=(const Layer&) = delete;

  void setup(const Blobs& bottom, const Blobs& top);
  virtual void reshape(const Blobs& bottom, const Blobs& top) = 0;

  // Runs forward and returns the weighted loss of the tops (0 for layers without a loss).
  float forward(const Blobs& bottom, const Blobs& top);
  void backward(const Blobs& top, const std::vector<bool>& propagate_down, const Blobs& bottom);

  const LayerParameter& param() const { return param_; }
  const std::string& name() const { return param_.name(); }
  const std::string& type() const { return param_.type(); }
  // "layer conv1 (Convolution)": the prefix of every error message about this layer.
  std::string describe() const;
  // Blob::canonical_axis for an axis parameter of this layer: an error names the layer, the
  // parameter and the blob's shape.
  int canonical_axis(const Blob& blob, int axis, const char* parameter) const;

  std::vector<std::shared_ptr<Blob>>& blobs() { return blobs_; }
  const std::vector<std::shared_ptr<Blob>>& blobs() const { return blobs_; }

  // The layer's parameter with its current blobs, as a .caffemodel stores it.
  void to_proto(LayerParameter* param, bool write_diff = false) const;

  float loss(int top_index) const {
    return top_index < static_cast<int>(loss_.size()) ? loss_[top_index] : 0.0f;
  }
  void set_loss(int top_index, float weight);

  // Whether backward computes the gradient of parameter blob i.
  bool param_propagate_down(int i) const {
    return i < static_cast<int>(param_propagate_down_.size()) && param_propagate_down_[i];
  }
  void set_param_propagate_down(int i, bool value);

  // What backward will compute, once a net knows (Net sets it at the end of its setup): whether
  // backward runs at all, and for which bottoms. A standalone layer is assumed to run every
  // gradient. Layers may use it to prepare the passes they will run (forward passes that
  // keep nothing for a backward pass that never runs).
  virtual void set_backward_plan(bool runs, const std::vector<bool>& bottoms) {
    backward_runs_ = runs;
    backward_bottoms_ = bottoms;
  }

  // The precision the layer's products take (a Net sets its own before setup). Only layers
  // whose multiplications dominate use it (multiplies_operands()): convolutions and inner
  // products. Where the implementation has no reduced-precision path of its own
  // (computes_precision_itself()), forward and backward round its operands (rounded_operands.hpp).
  virtual void set_precision(Precision precision) { precision_ = precision; }
  Precision precision() const { return precision_; }

  // Fusion (channel_epilogue.hpp). A layer whose forward pass maps each channel c of a bottom
  // [N, channels, ...] to a[c] * x + b[c] (BatchNorm with stored statistics, Scale with a
  // learned factor per channel) composes that map after x -> scale[c] * x + shift[c] and
  // returns true; others return false.
  virtual bool compose_channel_affine(int channels, float* scale, float* shift) const {
    return false;
  }
  // A layer that can compute the in-place layers after it at the end of its CPU forward pass
  // (convolutions; a residual sum) says so, and takes the epilogue to compute (null: none)
  // before each pass; epilogue_takes_affine() false: the clamp (ReLU, Clip) only.
  virtual bool accepts_epilogue() const { return false; }
  virtual bool epilogue_takes_affine() const { return true; }
  virtual void set_epilogue(const ChannelEpilogue* epilogue) {}

  // Blob-count rules checked by setup; -1 means "no rule".
  virtual int exact_bottoms() const { return -1; }
  virtual int min_bottoms() const { return -1; }
  virtual int max_bottoms() const { return -1; }
  virtual int exact_tops() const { return -1; }
  virtual int min_tops() const { return -1; }
  virtual int max_tops() const { return -1; }
  // Loss layers: a top without an explicit loss_weight gets weight 1 (top 0 only).
  virtual bool is_loss() const { return false; }
  // Whether the net may ask for the gradient of this bottom (labels: no).
  virtual bool allow_force_backward(int bottom_index) const { return true; }

  // A position beyond the parameters that an exact resume must restore (data layers: records
  // consumed, random streams). save_state returns false for layers without one; the solver
  // stores what it writes in the .solverstate and hands it back to restore_state on resume.
  virtual bool save_state(std::string* state) const { return false; }
  // The default fails: a saved state for a layer that keeps none means the net has changed.
  virtual void restore_state(const std::string& state);

 protected:
  virtual void layer_setup(const Blobs& bottom, const Blobs& top) {}
  virtual bool multiplies_operands() const { return false; }
  // Called after reshape: whether this pass computes precision() natively (oneDNN's bf16).
  virtual bool computes_precision_itself() const { return false; }
  virtual void forward_cpu(const Blobs& bottom, const Blobs& top) = 0;
  virtual void backward_cpu(const Blobs& top, const std::vector<bool>& propagate_down,
                            const Blobs& bottom) {}
  // Default GPU paths run the CPU code: device-neutral code (see the header comment) computes
  // on the GPU there, CPU-only code has the synced memory move the data to the host.
  virtual void forward_gpu(const Blobs& bottom, const Blobs& top) { forward_cpu(bottom, top); }
  virtual void backward_gpu(const Blobs& top, const std::vector<bool>& propagate_down,
                            const Blobs& bottom) {
    backward_cpu(top, propagate_down, bottom);
  }

  LayerParameter param_;
  std::vector<std::shared_ptr<Blob>> blobs_;
  std::vector<bool> param_propagate_down_;
  std::vector<float> loss_;
  bool backward_runs_ = true;
  std::vector<bool> backward_bottoms_;  // empty: every bottom
  Precision precision_ = FP32;

 private:
  void check_blob_counts(const Blobs& bottom, const Blobs& top) const;
  bool rounds_operands() const {
    return precision_ != FP32 && multiplies_operands() && !computes_precision_itself();
  }
  void run_forward(const Blobs& bottom, const Blobs& top);
  void run_backward(const Blobs& top, const std::vector<bool>& propagate_down,
                    const Blobs& bottom);

  std::unique_ptr<RoundedOperands> rounded_;
};

using LayerPtr = std::unique_ptr<Layer>;

}  // namespace engine

// Requires a condition about a layer's configuration or input shapes; the message names the
// layer. Use inside Layer member functions.
#define LAYER_REQUIRE(condition, message) \
  ENGINE_REQUIRE(condition, describe() << ": " << message)
