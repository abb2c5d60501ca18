// Recurrent layers as Caffe 1.0 defines them: RNN, LSTM, and LSTMUnit (one LSTM timestep, a
// layer type of its own that LSTM is built from in Caffe).
//
// RNN and LSTM read x (T x N x ...: T timesteps of N independent streams), cont (T x N; 0 where
// a sequence starts, which clears the state carried into that timestep), optionally x_static
// (N x ..., added to every timestep's input), and with expose_hidden the initial state h0 (and
// c0 for LSTM), 1 x N x H each. Without expose_hidden the initial state is the final state of
// the previous forward pass (zeros at first), as in Caffe.
//
//   RNN:  h_t = tanh(W_hh (cont_t h_{t-1}) + W_xh x_t + b_h [+ W_xh_static x_static])
//         o_t = tanh(W_ho h_t + b_o)                      tops: o [, h_T]
//   LSTM: gates_t = W_hc (cont_t h_{t-1}) + W_xc x_t + b_c [+ W_xc_static x_static]
//         (c_t, h_t) = LSTMUnit(c_{t-1}, gates_t, cont_t)  tops: h [, h_T, c_T]
//   LSTMUnit: gates in the order i, f, o, g; i, f, o = sigmoid, g = tanh;
//         f is replaced by cont * f (0 when cont is 0), c = f c_prev + i g, h = o tanh(c).
//
// Caffe builds an unrolled net of InnerProduct/Eltwise/Scale/LSTMUnit layers for this; here the
// recurrence is computed directly: one gemm over all timesteps for the input projection, one
// gemm per timestep for the recurrent one, and the weight gradients as one gemm each over the
// whole sequence. The parameter blobs are Caffe's, in Caffe's order, so .caffemodel files load:
//   RNN:  W_xh [H, D], b_h [H], (W_xh_static [H, S]), W_hh [H, H], W_ho [H, H], b_o [H]
//   LSTM: W_xc [4H, D], b_c [4H], (W_xc_static [4H, S]), W_hc [4H, H]
// with D = x.count(2) and S = x_static.count(1).
//
// The layers are written once for both devices (math:: products on the mode's side); the
// pointwise steps of a timestep (the LSTM cell, masking by cont) are loops here and kernels in
// recurrent.cu, the RNN's tanh is the TanH layer's op. Every buffer, and the state carried
// between passes, lives on the side the mode computes on.
//
// One difference from Caffe: its unrolled net neither propagates gradients into the exposed
// h0/c0 bottoms nor takes the gradients arriving at the exposed h_T/c_T tops (its comments say
// it cannot backpropagate across batches). Here both are the true gradients; with nothing
// flowing into h_T/c_T (their usual use) every other gradient is the same as Caffe's.
#include <algorithm>
#include <string>

#include "core/filler.hpp"
#include "core/layer.hpp"
#include "core/layer_registry.hpp"
#include "layers/elementwise.hpp"
#include "layers/lstm_cell.hpp"
#include "math/blas.hpp"

namespace engine {

#ifdef ENGINE_USE_CUDA
// recurrent.cu: the loops below as kernels, on device pointers.
void scale_rows_gpu(int N, int H, const float* scale, const float* rows, float* out);
void lstm_unit_forward_gpu(int N, int H, const float* c_prev, const float* gates,
                           const float* cont, float* acts, float* c, float* h);
void lstm_unit_backward_gpu(int N, int H, const float* c_prev, const float* acts, const float* c,
                            const float* c_diff, const float* h_diff, float* c_prev_diff,
                            float* gates_diff);
#endif

namespace {

// One LSTM timestep for N streams of H cells (lstm_cell.hpp). gates holds each stream's 4H gate
// inputs; acts receives the activations in the same layout for the backward pass, and may be
// gates itself.
void lstm_unit_forward(int N, int H, const float* c_prev, const float* gates, const float* cont,
                       float* acts, float* c, float* h) {
#ifdef ENGINE_USE_CUDA
  if (math::on_gpu()) return lstm_unit_forward_gpu(N, H, c_prev, gates, cont, acts, c, h);
#endif
  for (int n = 0; n < N; ++n) {
    const int64_t stream = int64_t(n) * 4 * H;
    const int64_t row = int64_t(n) * H;
    for (int d = 0; d < H; ++d) {
      lstm_cell_forward(H, d, gates + stream, cont[n], c_prev[row + d], acts + stream,
                        c + row + d, h + row + d);
    }
  }
}

// The gradients of one LSTM timestep. c_diff may be null (no gradient reaches c) and may alias
// c_prev_diff; c_prev_diff and gates_diff may be null (not wanted).
void lstm_unit_backward(int N, int H, const float* c_prev, const float* acts, const float* c,
                        const float* c_diff, const float* h_diff, float* c_prev_diff,
                        float* gates_diff) {
#ifdef ENGINE_USE_CUDA
  if (math::on_gpu()) {
    return lstm_unit_backward_gpu(N, H, c_prev, acts, c, c_diff, h_diff, c_prev_diff,
                                  gates_diff);
  }
#endif
  for (int n = 0; n < N; ++n) {
    const int64_t stream = int64_t(n) * 4 * H;
    const int64_t row = int64_t(n) * H;
    for (int d = 0; d < H; ++d) {
      const int64_t j = row + d;
      lstm_cell_backward(H, d, acts + stream, c_prev[j], c[j], c_diff ? c_diff[j] : 0.0f,
                         h_diff[j], c_prev_diff ? c_prev_diff + j : nullptr,
                         gates_diff ? gates_diff + stream : nullptr);
    }
  }
}

// rows[n, :] *= scale[n] for an N x H matrix, written to out (which may be rows).
void scale_rows(int N, int H, const float* scale, const float* rows, float* out) {
#ifdef ENGINE_USE_CUDA
  if (math::on_gpu()) return scale_rows_gpu(N, H, scale, rows, out);
#endif
  for (int n = 0; n < N; ++n) {
    const float s = scale[n];
    const int64_t row = int64_t(n) * H;
    for (int d = 0; d < H; ++d) out[row + d] = rows[row + d] * s;
  }
}

// Debug output only: on the GPU the sum comes back to the host.
float mean_abs(int64_t n, const float* x) { return n ? float(math::asum(n, x) / n) : 0.0f; }

// What RNN and LSTM share: the bottoms and tops, the parameters that project x, x_static and the
// previous hidden state onto the G = gates * H pre-activations, those projections and their
// gradients, and the state carried between forward passes.
class RecurrentLayer : public Layer {
 public:
  using Layer::Layer;

  int min_bottoms() const override { return 2 + exposed(); }
  int max_bottoms() const override { return 3 + exposed(); }
  int exact_tops() const override { return 1 + exposed(); }
  // The sequence indicators take no gradient.
  bool allow_force_backward(int bottom_index) const override { return bottom_index != 1; }

  void layer_setup(const Blobs& bottom, const Blobs& top) override {
    const RecurrentParameter& p = param_.recurrent_param();
    LAYER_REQUIRE(p.num_output() > 0,
                  "recurrent_param needs num_output > 0, got " << p.num_output());
    H_ = static_cast<int>(p.num_output());
    G_ = gates() * H_;
    static_input_ = static_cast<int>(bottom.size()) > 2 + exposed();
    check_bottoms(bottom);
    const Blob& x = *bottom[0];
    D_ = static_cast<int>(x.count(2));
    S_ = static_input_ ? static_cast<int>(bottom[2]->count(1)) : 0;

    const std::vector<ParameterSpec> specs = parameter_specs();
    if (!blobs_.empty()) {
      LAYER_REQUIRE(blobs_.size() == specs.size(),
                    "expects " << specs.size() << " parameter blobs (" << spec_names(specs)
                               << "), got " << blobs_.size());
      for (size_t i = 0; i < specs.size(); ++i) {
        LAYER_REQUIRE(blobs_[i]->shape() == specs[i].shape,
                      "parameter " << i << " (" << specs[i].name << ") should have shape "
                                   << shape_string(specs[i].shape) << ", got "
                                   << blobs_[i]->shape_string());
      }
      return;
    }
    // Filled in Caffe's order (that of the layers of its unrolled net).
    for (const ParameterSpec& spec : specs) {
      blobs_.push_back(std::make_shared<Blob>(spec.shape));
      fill(spec.bias ? p.bias_filler() : p.weight_filler(), blobs_.back().get());
    }
  }

  void reshape(const Blobs& bottom, const Blobs& top) override {
    check_bottoms(bottom);
    const Blob& x = *bottom[0];
    LAYER_REQUIRE(x.count(2) == D_, "bottom 0 (x) " << x.shape_string() << " has " << x.count(2)
                                                    << " inputs per timestep and stream; the "
                                                       "weights take "
                                                    << D_);
    LAYER_REQUIRE(!static_input_ || bottom[2]->count(1) == S_,
                  "bottom 2 (x_static) " << bottom[2]->shape_string() << " has "
                                         << bottom[2]->count(1)
                                         << " inputs per stream; the weights take " << S_);
    T_ = x.shape(0);
    if (x.shape(1) != N_) {
      // A new number of streams starts from a zero state.
      N_ = x.shape(1);
      for (int k = 0; k < state_blobs(); ++k) {
        state_[k].reshape({N_, H_});
        state_[k].set_data(0.0f);
      }
    }
    const std::vector<int> state_shape = {1, N_, H_};
    for (int k = 0; k < exposed(); ++k) {
      const Blob& given = *bottom[first_state_bottom() + k];
      LAYER_REQUIRE(given.shape() == state_shape,
                    "bottom " << first_state_bottom() + k << " (" << state_name(k)
                              << "_0) should have shape " << shape_string(state_shape)
                              << " (1 x streams x num_output), got " << given.shape_string());
      top[1 + k]->reshape(state_shape);
    }
    for (Blob* blob : top) {
      LAYER_REQUIRE(std::find(bottom.begin(), bottom.end(), blob) == bottom.end(),
                    "does not allow in-place computation");
    }
    top[0]->reshape({T_, N_, H_});
    pre_.reshape({T_, N_, G_});
    pre_diff_.reshape({T_, N_, G_});
    conted_.reshape({T_, N_, H_});
    hidden_.reshape({T_ + 1, N_, H_});
    if (static_input_) static_pre_.reshape({N_, G_});
    // Only grown (then filled), so that a pass in the usual shapes writes nothing here.
    const int64_t steps = int64_t(T_) * N_;
    if (ones_.count() < steps) {
      ones_.reshape({static_cast<int>(steps)});
      ones_.set_data(1.0f);
    }
    reshape_buffers();
  }

 protected:
  struct ParameterSpec {
    std::string name;
    std::vector<int> shape;
    bool bias;
  };

  virtual int gates() const = 0;         // pre-activations per hidden unit: 1 (RNN), 4 (LSTM)
  virtual int state_blobs() const = 0;   // h (RNN); h and c (LSTM)
  virtual const char* state_name(int k) const = 0;
  // Names of W_x, b, W_static, W_recurrent, in Caffe's words.
  virtual std::vector<std::string> projection_names() const = 0;
  // Parameters after the four projection ones (RNN's output layer).
  virtual std::vector<ParameterSpec> extra_parameter_specs() const { return {}; }
  virtual void reshape_buffers() {}

  int exposed() const {
    return param_.recurrent_param().expose_hidden() ? state_blobs() : 0;
  }
  int first_state_bottom() const { return 2 + (static_input_ ? 1 : 0); }
  int recurrent_weight_index() const { return static_input_ ? 3 : 2; }
  const Blob& recurrent_weights() const { return *blobs_[recurrent_weight_index()]; }

  // The state entering timestep 0: the exposed bottom, else the one the last pass left.
  const float* initial_state(const Blobs& bottom, int k) const {
    return exposed() ? bottom[first_state_bottom() + k]->data() : state_[k].data();
  }
  // After forward: the final state goes to the exposed top, else it is kept for the next pass.
  void final_state(const Blobs& top, int k, const float* value) {
    const int64_t count = int64_t(N_) * H_;
    math::copy(count, value, exposed() ? top[1 + k]->mutable_data() : state_[k].mutable_data());
  }

  // rows x width += ones[rows] bias[width]^T: a product with one term, so each element is
  // x + bias, rounded once, on either device.
  void add_bias(int rows, int width, const float* bias, float* x) const {
    math::gemm(false, false, rows, width, 1, 1.0f, ones_.data(), bias, 1.0f, x);
  }

  // pre_ = x W_x^T + b, for every timestep at once; static_pre_ = x_static W_static^T.
  void project_inputs(const Blobs& bottom) {
    const int rows = T_ * N_;
    float* pre = pre_.mutable_data();
    math::gemm(false, true, rows, G_, D_, 1.0f, bottom[0]->data(), blobs_[0]->data(), 0.0f, pre);
    add_bias(rows, G_, blobs_[1]->data(), pre);
    if (static_input_) {
      math::gemm(false, true, N_, G_, S_, 1.0f, bottom[2]->data(), blobs_[2]->data(), 0.0f,
                 static_pre_.mutable_data());
    }
  }

  // Timestep t's pre-activations: conted_t = cont_t * h_prev, then
  // pre_t = (W_rec conted_t + pre_t) + static_pre, summed in the order of Caffe's Eltwise.
  float* recurrent_step(const Blobs& bottom, int t, const float* h_prev) {
    const float* cont = bottom[1]->data() + int64_t(t) * N_;
    float* conted = conted_.mutable_data() + int64_t(t) * N_ * H_;
    float* pre = pre_.mutable_data() + int64_t(t) * N_ * G_;
    scale_rows(N_, H_, cont, h_prev, conted);
    math::gemm(false, true, N_, G_, H_, 1.0f, conted, recurrent_weights().data(), 1.0f, pre);
    if (static_input_) math::axpy(int64_t(N_) * G_, 1.0f, static_pre_.data(), pre);
    return pre;
  }

  // The gradient reaching h_{t-1} through timestep t's recurrent projection:
  // h_prev_diff = cont_t * (pre_diff_t W_rec).
  void recurrent_step_backward(const Blobs& bottom, int t, float* h_prev_diff) {
    const float* cont = bottom[1]->data() + int64_t(t) * N_;
    math::gemm(false, false, N_, H_, G_, 1.0f, pre_diff_.data() + int64_t(t) * N_ * G_,
               recurrent_weights().data(), 0.0f, h_prev_diff);
    scale_rows(N_, H_, cont, h_prev_diff, h_prev_diff);
  }

  // From pre_diff_ (every timestep's d(loss)/d(pre-activation)): the gradients of W_x, b,
  // W_static, W_rec, x and x_static.
  void projection_backward(const std::vector<bool>& propagate_down, const Blobs& bottom) {
    const int rows = T_ * N_;
    const float* diff = pre_diff_.data();
    if (param_propagate_down(0)) {
      math::gemm(true, false, G_, D_, rows, 1.0f, diff, bottom[0]->data(), 1.0f,
                 blobs_[0]->mutable_diff());
    }
    if (param_propagate_down(1)) {
      math::gemv(true, rows, G_, 1.0f, diff, ones_.data(), 1.0f, blobs_[1]->mutable_diff());
    }
    const int rec = recurrent_weight_index();
    if (param_propagate_down(rec)) {
      math::gemm(true, false, G_, H_, rows, 1.0f, diff, conted_.data(), 1.0f,
                 blobs_[rec]->mutable_diff());
    }
    if (static_input_ && (param_propagate_down(2) || propagate_down[2])) {
      // x_static enters every timestep: its pre-activation gradient is the sum over time.
      const int64_t step = int64_t(N_) * G_;
      float* sum = static_pre_.mutable_data();
      math::copy(step, diff, sum);
      for (int t = 1; t < T_; ++t) math::axpy(step, 1.0f, diff + t * step, sum);
      if (param_propagate_down(2)) {
        math::gemm(true, false, G_, S_, N_, 1.0f, sum, bottom[2]->data(), 1.0f,
                   blobs_[2]->mutable_diff());
      }
      if (propagate_down[2]) {
        math::gemm(false, false, N_, S_, G_, 1.0f, sum, blobs_[2]->data(), 0.0f,
                   bottom[2]->mutable_diff());
      }
    }
    if (propagate_down[0]) {
      math::gemm(false, false, rows, D_, G_, 1.0f, diff, blobs_[0]->data(), 0.0f,
                 bottom[0]->mutable_diff());
    }
  }

  void require_no_cont_gradient(const std::vector<bool>& propagate_down) const {
    LAYER_REQUIRE(!propagate_down[1],
                  "cannot backpropagate to the sequence continuation indicators (bottom 1)");
  }

  void log_step(const char* what, int t, int64_t count, const float* values) const {
    if (!param_.recurrent_param().debug_info()) return;
    LOG(INFO) << describe() << " timestep " << t + 1 << ": " << what << " mean |value| "
              << mean_abs(count, values);
  }

  int T_ = 0, N_ = 0, D_ = 0, S_ = 0, H_ = 0, G_ = 0;
  bool static_input_ = false;
  Blob pre_;         // [T, N, G] pre-activations (LSTM: then the gate activations)
  Blob pre_diff_;    // [T, N, G] their gradients
  Blob conted_;      // [T, N, H] cont_t * h_{t-1}, the recurrent projection's input
  Blob hidden_;      // [T + 1, N, H] h_0 .. h_T
  Blob static_pre_;  // [N, G] x_static's projection; in backward, its gradient
  Blob ones_;        // at least T * N ones: bias products and sums over timesteps
  Blob state_[2];    // [N, H] the final h (and c) of the last pass, without expose_hidden

 private:
  std::vector<ParameterSpec> parameter_specs() const {
    const std::vector<std::string> names = projection_names();
    std::vector<ParameterSpec> specs = {{names[0], {G_, D_}, false}, {names[1], {G_}, true}};
    if (static_input_) specs.push_back({names[2], {G_, S_}, false});
    specs.push_back({names[3], {G_, H_}, false});
    for (const ParameterSpec& spec : extra_parameter_specs()) specs.push_back(spec);
    return specs;
  }
  static std::string spec_names(const std::vector<ParameterSpec>& specs) {
    std::string names;
    for (const ParameterSpec& spec : specs) names += (names.empty() ? "" : ", ") + spec.name;
    return names;
  }

  void check_bottoms(const Blobs& bottom) const {
    const Blob& x = *bottom[0];
    const Blob& cont = *bottom[1];
    LAYER_REQUIRE(x.num_axes() >= 3, "bottom 0 (x) must be timesteps x streams x inputs (at "
                                     "least 3 axes), got "
                                         << x.shape_string());
    LAYER_REQUIRE(cont.num_axes() == 2 && cont.shape(0) == x.shape(0) &&
                      cont.shape(1) == x.shape(1),
                  "bottom 1 (cont) must be timesteps x streams = " << x.shape(0) << " x "
                                                                   << x.shape(1)
                                                                   << " to match bottom 0 (x) "
                                                                   << x.shape_string() << ", got "
                                                                   << cont.shape_string());
    if (static_input_) {
      const Blob& x_static = *bottom[2];
      LAYER_REQUIRE(x_static.num_axes() >= 1 && x_static.shape(0) == x.shape(1),
                    "bottom 2 (x_static) must be streams x ... with " << x.shape(1)
                                                                      << " streams, got "
                                                                      << x_static.shape_string());
    }
  }
};

class RNNLayer : public RecurrentLayer {
 public:
  using RecurrentLayer::RecurrentLayer;

 protected:
  int gates() const override { return 1; }
  int state_blobs() const override { return 1; }
  const char* state_name(int k) const override { return "h"; }
  std::vector<std::string> projection_names() const override {
    return {"W_xh", "b_h", "W_xh_static", "W_hh"};
  }
  std::vector<ParameterSpec> extra_parameter_specs() const override {
    return {{"W_ho", {H_, H_}, false}, {"b_o", {H_}, true}};
  }
  int output_weight_index() const { return recurrent_weight_index() + 1; }
  void reshape_buffers() override {
    output_.reshape({T_, N_, H_});
    output_diff_.reshape({T_, N_, H_});
    carried_diff_.reshape({N_, H_});
  }

  void forward_cpu(const Blobs& bottom, const Blobs& top) override {
    const int64_t step = int64_t(N_) * H_;
    project_inputs(bottom);
    float* hidden = hidden_.mutable_data();
    math::copy(step, initial_state(bottom, 0), hidden);
    for (int t = 0; t < T_; ++t) {
      const float* pre = recurrent_step(bottom, t, hidden + t * step);
      float* h = hidden + (t + 1) * step;
      elementwise_forward(step, pre, h, TanHOp());
      log_step("h", t, step, h);
    }
    final_state(top, 0, hidden + T_ * step);
    // o = tanh(h W_ho^T + b_o), all timesteps at once.
    const int rows = T_ * N_;
    const int64_t count = int64_t(rows) * H_;
    float* o = output_.mutable_data();
    math::gemm(false, true, rows, H_, H_, 1.0f, hidden + step,
               blobs_[output_weight_index()]->data(), 0.0f, o);
    add_bias(rows, H_, blobs_[output_weight_index() + 1]->data(), o);
    elementwise_forward(count, o, o, TanHOp());
    math::copy(count, o, top[0]->mutable_data());
  }

  void backward_cpu(const Blobs& top, const std::vector<bool>& propagate_down,
                    const Blobs& bottom) override {
    require_no_cont_gradient(propagate_down);
    const int rows = T_ * N_;
    const int64_t step = int64_t(N_) * H_;
    const int64_t count = int64_t(rows) * H_;
    const float* hidden = hidden_.data();
    float* pre_diff = pre_diff_.mutable_data();
    // The output layer: d(pre-tanh of o), then W_ho's and b_o's gradients and the gradient
    // reaching every h_t from its output, kept in pre_diff_ (G = H here).
    float* out_diff = output_diff_.mutable_data();
    const float* o = output_.data();
    elementwise_gradient(count, top[0]->diff(), o, o, out_diff, TanHOp());
    const int w_out = output_weight_index();
    if (param_propagate_down(w_out)) {
      math::gemm(true, false, H_, H_, rows, 1.0f, out_diff, hidden + step, 1.0f,
                 blobs_[w_out]->mutable_diff());
    }
    if (param_propagate_down(w_out + 1)) {
      math::gemv(true, rows, H_, 1.0f, out_diff, ones_.data(), 1.0f,
                 blobs_[w_out + 1]->mutable_diff());
    }
    math::gemm(false, false, rows, H_, H_, 1.0f, out_diff, blobs_[w_out]->data(), 0.0f,
               pre_diff);

    // Back through time: h_t's gradient is its output's plus the one from timestep t + 1.
    float* carried = carried_diff_.mutable_data();
    if (exposed()) {
      math::copy(step, top[1]->diff(), carried);
    } else {
      math::set(step, 0.0f, carried);
    }
    for (int t = T_ - 1; t >= 0; --t) {
      float* diff = pre_diff + t * step;
      const float* h = hidden + (t + 1) * step;
      math::add(step, diff, carried, diff);
      elementwise_gradient(step, diff, h, h, diff, TanHOp());
      recurrent_step_backward(bottom, t, carried);
    }
    if (exposed() && propagate_down[first_state_bottom()]) {
      math::copy(step, carried, bottom[first_state_bottom()]->mutable_diff());
    }
    projection_backward(propagate_down, bottom);
  }

 private:
  Blob output_;  // [T, N, H] o, kept apart from the top, which a later in-place layer may change
  Blob output_diff_;
  Blob carried_diff_;  // [N, H]
};

class LSTMLayer : public RecurrentLayer {
 public:
  using RecurrentLayer::RecurrentLayer;

 protected:
  int gates() const override { return 4; }
  int state_blobs() const override { return 2; }
  const char* state_name(int k) const override { return k == 0 ? "h" : "c"; }
  std::vector<std::string> projection_names() const override {
    return {"W_xc", "b_c", "W_xc_static", "W_hc"};
  }
  void reshape_buffers() override {
    cell_.reshape({T_ + 1, N_, H_});
    for (Blob* buffer : {&h_carried_, &c_carried_, &h_total_}) buffer->reshape({N_, H_});
  }

  void forward_cpu(const Blobs& bottom, const Blobs& top) override {
    const int64_t step = int64_t(N_) * H_;
    project_inputs(bottom);
    float* hidden = hidden_.mutable_data();
    float* cell = cell_.mutable_data();
    math::copy(step, initial_state(bottom, 0), hidden);
    math::copy(step, initial_state(bottom, 1), cell);
    const float* cont = bottom[1]->data();
    for (int t = 0; t < T_; ++t) {
      float* gates = recurrent_step(bottom, t, hidden + t * step);
      // The activations replace the pre-activations: backward needs only them.
      lstm_unit_forward(N_, H_, cell + t * step, gates, cont + int64_t(t) * N_, gates,
                        cell + (t + 1) * step, hidden + (t + 1) * step);
      log_step("h", t, step, hidden + (t + 1) * step);
      log_step("c", t, step, cell + (t + 1) * step);
    }
    math::copy(int64_t(T_) * step, hidden + step, top[0]->mutable_data());
    final_state(top, 0, hidden + T_ * step);
    final_state(top, 1, cell + T_ * step);
  }

  void backward_cpu(const Blobs& top, const std::vector<bool>& propagate_down,
                    const Blobs& bottom) override {
    require_no_cont_gradient(propagate_down);
    const int64_t step = int64_t(N_) * H_;
    const float* top_diff = top[0]->diff();
    const float* cell = cell_.data();
    const float* acts = pre_.data();
    float* pre_diff = pre_diff_.mutable_data();
    // The gradients carried from timestep t + 1 into h_t and c_t (from the exposed tops at T).
    float* h_carried = h_carried_.mutable_data();
    float* c_carried = c_carried_.mutable_data();
    float* h_total = h_total_.mutable_data();
    if (exposed()) {
      math::copy(step, top[1]->diff(), h_carried);
      math::copy(step, top[2]->diff(), c_carried);
    } else {
      math::set(step, 0.0f, h_carried);
      math::set(step, 0.0f, c_carried);
    }
    for (int t = T_ - 1; t >= 0; --t) {
      math::add(step, top_diff + t * step, h_carried, h_total);
      lstm_unit_backward(N_, H_, cell + t * step, acts + t * step * 4, cell + (t + 1) * step,
                         c_carried, h_total, c_carried, pre_diff + t * step * 4);
      recurrent_step_backward(bottom, t, h_carried);
    }
    if (exposed()) {
      const int h0 = first_state_bottom();
      if (propagate_down[h0]) math::copy(step, h_carried, bottom[h0]->mutable_diff());
      if (propagate_down[h0 + 1]) math::copy(step, c_carried, bottom[h0 + 1]->mutable_diff());
    }
    projection_backward(propagate_down, bottom);
  }

 private:
  Blob cell_;  // [T + 1, N, H] c_0 .. c_T
  Blob h_carried_, c_carried_, h_total_;
};

// bottoms: c_prev (1 x N x H), gates (1 x N x 4H), cont (1 x N); tops: c, h (1 x N x H).
class LSTMUnitLayer : public Layer {
 public:
  using Layer::Layer;
  int exact_bottoms() const override { return 3; }
  int exact_tops() const override { return 2; }
  bool allow_force_backward(int bottom_index) const override { return bottom_index != 2; }

  void reshape(const Blobs& bottom, const Blobs& top) override {
    const Blob& c_prev = *bottom[0];
    const Blob& gates = *bottom[1];
    const Blob& cont = *bottom[2];
    LAYER_REQUIRE(c_prev.num_axes() == 3 && c_prev.shape(0) == 1,
                  "bottom 0 (previous cell state) must be 1 x streams x cells, got "
                      << c_prev.shape_string());
    N_ = c_prev.shape(1);
    H_ = c_prev.shape(2);
    const std::vector<int> gates_shape = {1, N_, 4 * H_};
    LAYER_REQUIRE(gates.shape() == gates_shape,
                  "bottom 1 (gate inputs) must be 1 x streams x 4*cells = "
                      << shape_string(gates_shape) << " for a cell state of shape "
                      << c_prev.shape_string() << ", got " << gates.shape_string());
    LAYER_REQUIRE(cont.num_axes() == 2 && cont.shape(0) == 1 && cont.shape(1) == N_,
                  "bottom 2 (cont) must be 1 x streams = 1 x " << N_ << ", got "
                                                               << cont.shape_string());
    for (Blob* blob : top) {
      LAYER_REQUIRE(std::find(bottom.begin(), bottom.end(), blob) == bottom.end(),
                    "does not allow in-place computation");
      blob->reshape(c_prev.shape());
    }
    acts_.reshape(gates_shape);
  }

 protected:
  void forward_cpu(const Blobs& bottom, const Blobs& top) override {
    lstm_unit_forward(N_, H_, bottom[0]->data(), bottom[1]->data(), bottom[2]->data(),
                      acts_.mutable_data(), top[0]->mutable_data(), top[1]->mutable_data());
  }

  void backward_cpu(const Blobs& top, const std::vector<bool>& propagate_down,
                    const Blobs& bottom) override {
    LAYER_REQUIRE(!propagate_down[2],
                  "cannot backpropagate to the sequence continuation indicators (bottom 2)");
    if (!propagate_down[0] && !propagate_down[1]) return;
    lstm_unit_backward(N_, H_, bottom[0]->data(), acts_.data(), top[0]->data(), top[0]->diff(),
                       top[1]->diff(), propagate_down[0] ? bottom[0]->mutable_diff() : nullptr,
                       propagate_down[1] ? bottom[1]->mutable_diff() : nullptr);
  }

 private:
  int N_ = 0, H_ = 0;
  Blob acts_;
};

}  // namespace
}  // namespace engine

ENGINE_LAYER_FACTORY(RNN, RNNLayer)
ENGINE_LAYER_FACTORY(LSTM, LSTMLayer)
ENGINE_LAYER_FACTORY(LSTMUnit, LSTMUnitLayer)
