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
// One difference from Caffe: its unrolled net neither propagates gradients into the exposed
// h0/c0 bottoms nor takes the gradients arriving at the exposed h_T/c_T tops (its comments say
// it cannot backpropagate across batches). Here both are the true gradients; with nothing
// flowing into h_T/c_T (their usual use) every other gradient is the same as Caffe's.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>

#include "core/filler.hpp"
#include "core/layer.hpp"
#include "core/layer_registry.hpp"
#include "math/blas.hpp"

namespace engine {
namespace {

// Caffe's LSTMUnit computes both through the logistic function in double precision; the same
// here so that the results agree to the last bits.
inline float sigmoid(float x) { return static_cast<float>(1.0 / (1.0 + std::exp(-double(x)))); }
inline float tanh_by_sigmoid(float x) {
  return static_cast<float>(2.0 / (1.0 + std::exp(-2.0 * x)) - 1.0);
}

// One LSTM timestep for N streams of H cells. X holds each stream's 4H gate inputs (i, f, o, g);
// acts receives the activations in the same layout, f already multiplied by cont, for the
// backward pass. acts may be X itself.
void lstm_unit_forward(int N, int H, const float* c_prev, const float* X, const float* cont,
                       float* acts, float* c, float* h) {
  for (int n = 0; n < N; ++n) {
    const float* x = X + int64_t(n) * 4 * H;
    float* a = acts + int64_t(n) * 4 * H;
    const float keep = cont[n];
    const int64_t row = int64_t(n) * H;
    for (int d = 0; d < H; ++d) {
      const float i = sigmoid(x[d]);
      const float f = keep == 0 ? 0.0f : keep * sigmoid(x[H + d]);
      const float o = sigmoid(x[2 * H + d]);
      const float g = tanh_by_sigmoid(x[3 * H + d]);
      a[d] = i;
      a[H + d] = f;
      a[2 * H + d] = o;
      a[3 * H + d] = g;
      const float cell = f * c_prev[row + d] + i * g;
      c[row + d] = cell;
      h[row + d] = o * tanh_by_sigmoid(cell);
    }
  }
}

// The gradients of one LSTM timestep, by Caffe's formulas (for a cont other than 0 or 1 they use
// f = cont * sigmoid in f's derivative, as Caffe does). c_diff may be null (no gradient reaches
// c) and may alias c_prev_diff; c_prev_diff and X_diff may be null (not wanted).
void lstm_unit_backward(int N, int H, const float* c_prev, const float* acts, const float* c,
                        const float* c_diff, const float* h_diff, float* c_prev_diff,
                        float* X_diff) {
  for (int n = 0; n < N; ++n) {
    const float* a = acts + int64_t(n) * 4 * H;
    const int64_t row = int64_t(n) * H;
    float* dx = X_diff ? X_diff + int64_t(n) * 4 * H : nullptr;
    for (int d = 0; d < H; ++d) {
      const float i = a[d], f = a[H + d], o = a[2 * H + d], g = a[3 * H + d];
      const float tanh_c = tanh_by_sigmoid(c[row + d]);
      const float dh = h_diff[row + d];
      const float dc = (c_diff ? c_diff[row + d] : 0.0f) + dh * o * (1 - tanh_c * tanh_c);
      if (dx) {
        dx[d] = dc * g * i * (1 - i);
        dx[H + d] = dc * c_prev[row + d] * f * (1 - f);
        dx[2 * H + d] = dh * tanh_c * o * (1 - o);
        dx[3 * H + d] = dc * i * (1 - g * g);
      }
      if (c_prev_diff) c_prev_diff[row + d] = dc * f;
    }
  }
}

// rows[n, :] *= scale[n] for an N x H matrix, written to out (which may be rows).
void scale_rows(int N, int H, const float* scale, const float* rows, float* out) {
  for (int n = 0; n < N; ++n) {
    const float s = scale[n];
    const int64_t row = int64_t(n) * H;
    for (int d = 0; d < H; ++d) out[row + d] = rows[row + d] * s;
  }
}

float mean_abs(int64_t n, const float* x) { return n ? float(cpu::asum(n, x) / n) : 0.0f; }

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
      for (auto& state : state_) state.assign(int64_t(N_) * H_, 0.0f);
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
    const int64_t steps = int64_t(T_) * N_;
    pre_.resize(steps * G_);
    pre_diff_.resize(steps * G_);
    conted_.resize(steps * H_);
    hidden_.resize((steps + N_) * H_);
    if (static_input_) static_pre_.resize(int64_t(N_) * G_);
    if (static_cast<int64_t>(ones_.size()) < steps) ones_.assign(steps, 1.0f);
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
    return exposed() ? bottom[first_state_bottom() + k]->cpu_data() : state_[k].data();
  }
  // After forward: the final state goes to the exposed top, else it is kept for the next pass.
  void final_state(const Blobs& top, int k, const float* value) {
    const int64_t count = int64_t(N_) * H_;
    if (exposed()) {
      cpu::copy(count, value, top[1 + k]->mutable_cpu_data());
    } else {
      std::copy(value, value + count, state_[k].begin());
    }
  }

  // pre_ = x W_x^T + b, for every timestep at once; static_pre_ = x_static W_static^T.
  void project_inputs(const Blobs& bottom) {
    const int rows = T_ * N_;
    cpu::gemm(false, true, rows, G_, D_, 1.0f, bottom[0]->cpu_data(), blobs_[0]->cpu_data(), 0.0f,
              pre_.data());
    const float* bias = blobs_[1]->cpu_data();
    for (int r = 0; r < rows; ++r) cpu::axpy(G_, 1.0f, bias, pre_.data() + int64_t(r) * G_);
    if (static_input_) {
      cpu::gemm(false, true, N_, G_, S_, 1.0f, bottom[2]->cpu_data(), blobs_[2]->cpu_data(), 0.0f,
                static_pre_.data());
    }
  }

  // Timestep t's pre-activations: conted_t = cont_t * h_prev, then
  // pre_t = (W_rec conted_t + pre_t) + static_pre, summed in the order of Caffe's Eltwise.
  float* recurrent_step(const Blobs& bottom, int t, const float* h_prev) {
    const float* cont = bottom[1]->cpu_data() + int64_t(t) * N_;
    float* conted = conted_.data() + int64_t(t) * N_ * H_;
    float* pre = pre_.data() + int64_t(t) * N_ * G_;
    scale_rows(N_, H_, cont, h_prev, conted);
    cpu::gemm(false, true, N_, G_, H_, 1.0f, conted, recurrent_weights().cpu_data(), 1.0f, pre);
    if (static_input_) cpu::axpy(int64_t(N_) * G_, 1.0f, static_pre_.data(), pre);
    return pre;
  }

  // The gradient reaching h_{t-1} through timestep t's recurrent projection:
  // h_prev_diff = cont_t * (pre_diff_t W_rec).
  void recurrent_step_backward(const Blobs& bottom, int t, float* h_prev_diff) {
    const float* cont = bottom[1]->cpu_data() + int64_t(t) * N_;
    cpu::gemm(false, false, N_, H_, G_, 1.0f, pre_diff_.data() + int64_t(t) * N_ * G_,
              recurrent_weights().cpu_data(), 0.0f, h_prev_diff);
    scale_rows(N_, H_, cont, h_prev_diff, h_prev_diff);
  }

  // From pre_diff_ (every timestep's d(loss)/d(pre-activation)): the gradients of W_x, b,
  // W_static, W_rec, x and x_static.
  void projection_backward(const std::vector<bool>& propagate_down, const Blobs& bottom) {
    const int rows = T_ * N_;
    const float* diff = pre_diff_.data();
    if (param_propagate_down(0)) {
      cpu::gemm(true, false, G_, D_, rows, 1.0f, diff, bottom[0]->cpu_data(), 1.0f,
                blobs_[0]->mutable_cpu_diff());
    }
    if (param_propagate_down(1)) {
      cpu::gemv(true, rows, G_, 1.0f, diff, ones_.data(), 1.0f, blobs_[1]->mutable_cpu_diff());
    }
    const int rec = recurrent_weight_index();
    if (param_propagate_down(rec)) {
      cpu::gemm(true, false, G_, H_, rows, 1.0f, diff, conted_.data(), 1.0f,
                blobs_[rec]->mutable_cpu_diff());
    }
    if (static_input_ && (param_propagate_down(2) || propagate_down[2])) {
      // x_static enters every timestep: its pre-activation gradient is the sum over time.
      std::vector<float>& sum = static_pre_;
      std::copy(diff, diff + int64_t(N_) * G_, sum.begin());
      for (int t = 1; t < T_; ++t) {
        cpu::axpy(int64_t(N_) * G_, 1.0f, diff + int64_t(t) * N_ * G_, sum.data());
      }
      if (param_propagate_down(2)) {
        cpu::gemm(true, false, G_, S_, N_, 1.0f, sum.data(), bottom[2]->cpu_data(), 1.0f,
                  blobs_[2]->mutable_cpu_diff());
      }
      if (propagate_down[2]) {
        cpu::gemm(false, false, N_, S_, G_, 1.0f, sum.data(), blobs_[2]->cpu_data(), 0.0f,
                  bottom[2]->mutable_cpu_diff());
      }
    }
    if (propagate_down[0]) {
      cpu::gemm(false, false, rows, D_, G_, 1.0f, diff, blobs_[0]->cpu_data(), 0.0f,
                bottom[0]->mutable_cpu_diff());
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
  std::vector<float> pre_;       // [T, N, G] pre-activations (LSTM: then the gate activations)
  std::vector<float> pre_diff_;  // [T, N, G] their gradients
  std::vector<float> conted_;    // [T, N, H] cont_t * h_{t-1}, the recurrent projection's input
  std::vector<float> hidden_;    // [T + 1, N, H] h_0 .. h_T
  std::vector<float> static_pre_;
  std::vector<float> ones_;
  std::vector<std::vector<float>> state_ = std::vector<std::vector<float>>(2);

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
  void reshape_buffers() override { output_.resize(int64_t(T_) * N_ * H_); }

  void forward_cpu(const Blobs& bottom, const Blobs& top) override {
    const int64_t step = int64_t(N_) * H_;
    project_inputs(bottom);
    std::copy(initial_state(bottom, 0), initial_state(bottom, 0) + step, hidden_.begin());
    for (int t = 0; t < T_; ++t) {
      const float* pre = recurrent_step(bottom, t, hidden_.data() + t * step);
      float* h = hidden_.data() + (t + 1) * step;
      for (int64_t j = 0; j < step; ++j) h[j] = std::tanh(pre[j]);
      log_step("h", t, step, h);
    }
    final_state(top, 0, hidden_.data() + T_ * step);
    // o = tanh(h W_ho^T + b_o), all timesteps at once.
    const int rows = T_ * N_;
    float* o = output_.data();
    cpu::gemm(false, true, rows, H_, H_, 1.0f, hidden_.data() + step,
              blobs_[output_weight_index()]->cpu_data(), 0.0f, o);
    const float* bias = blobs_[output_weight_index() + 1]->cpu_data();
    for (int r = 0; r < rows; ++r) {
      float* row = o + int64_t(r) * H_;
      for (int d = 0; d < H_; ++d) row[d] = std::tanh(row[d] + bias[d]);
    }
    cpu::copy(int64_t(rows) * H_, o, top[0]->mutable_cpu_data());
  }

  void backward_cpu(const Blobs& top, const std::vector<bool>& propagate_down,
                    const Blobs& bottom) override {
    require_no_cont_gradient(propagate_down);
    const int rows = T_ * N_;
    const int64_t step = int64_t(N_) * H_;
    const int64_t count = int64_t(rows) * H_;
    // The output layer: d(pre-tanh of o), then W_ho's and b_o's gradients and the gradient
    // reaching every h_t from its output, kept in pre_diff_ (G = H here).
    std::vector<float>& out_diff = output_diff_;
    out_diff.resize(count);
    const float* top_diff = top[0]->cpu_diff();
    for (int64_t j = 0; j < count; ++j) out_diff[j] = top_diff[j] * (1 - output_[j] * output_[j]);
    const int w_out = output_weight_index();
    if (param_propagate_down(w_out)) {
      cpu::gemm(true, false, H_, H_, rows, 1.0f, out_diff.data(), hidden_.data() + step, 1.0f,
                blobs_[w_out]->mutable_cpu_diff());
    }
    if (param_propagate_down(w_out + 1)) {
      cpu::gemv(true, rows, H_, 1.0f, out_diff.data(), ones_.data(), 1.0f,
                blobs_[w_out + 1]->mutable_cpu_diff());
    }
    cpu::gemm(false, false, rows, H_, H_, 1.0f, out_diff.data(), blobs_[w_out]->cpu_data(), 0.0f,
              pre_diff_.data());

    // Back through time: h_t's gradient is its output's plus the one from timestep t + 1.
    std::vector<float>& carried = carried_diff_;
    if (exposed()) {
      carried.assign(top[1]->cpu_diff(), top[1]->cpu_diff() + step);
    } else {
      carried.assign(step, 0.0f);
    }
    for (int t = T_ - 1; t >= 0; --t) {
      float* diff = pre_diff_.data() + t * step;
      const float* h = hidden_.data() + (t + 1) * step;
      for (int64_t j = 0; j < step; ++j) diff[j] = (diff[j] + carried[j]) * (1 - h[j] * h[j]);
      recurrent_step_backward(bottom, t, carried.data());
    }
    if (exposed() && propagate_down[first_state_bottom()]) {
      cpu::copy(step, carried.data(), bottom[first_state_bottom()]->mutable_cpu_diff());
    }
    projection_backward(propagate_down, bottom);
  }

 private:
  // [T, N, H] o, kept apart from the top, which a later in-place layer may change.
  std::vector<float> output_;
  std::vector<float> output_diff_;
  std::vector<float> carried_diff_;
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
  void reshape_buffers() override { cell_.resize((int64_t(T_) + 1) * N_ * H_); }

  void forward_cpu(const Blobs& bottom, const Blobs& top) override {
    const int64_t step = int64_t(N_) * H_;
    project_inputs(bottom);
    std::copy(initial_state(bottom, 0), initial_state(bottom, 0) + step, hidden_.begin());
    std::copy(initial_state(bottom, 1), initial_state(bottom, 1) + step, cell_.begin());
    const float* cont = bottom[1]->cpu_data();
    for (int t = 0; t < T_; ++t) {
      float* gates = recurrent_step(bottom, t, hidden_.data() + t * step);
      // The activations replace the pre-activations: backward needs only them.
      lstm_unit_forward(N_, H_, cell_.data() + t * step, gates, cont + int64_t(t) * N_, gates,
                        cell_.data() + (t + 1) * step, hidden_.data() + (t + 1) * step);
      log_step("h", t, step, hidden_.data() + (t + 1) * step);
      log_step("c", t, step, cell_.data() + (t + 1) * step);
    }
    cpu::copy(int64_t(T_) * step, hidden_.data() + step, top[0]->mutable_cpu_data());
    final_state(top, 0, hidden_.data() + T_ * step);
    final_state(top, 1, cell_.data() + T_ * step);
  }

  void backward_cpu(const Blobs& top, const std::vector<bool>& propagate_down,
                    const Blobs& bottom) override {
    require_no_cont_gradient(propagate_down);
    const int64_t step = int64_t(N_) * H_;
    const float* top_diff = top[0]->cpu_diff();
    // The gradients carried from timestep t + 1 into h_t and c_t (from the exposed tops at T).
    h_carried_.resize(step);
    c_carried_.resize(step);
    h_total_.resize(step);
    if (exposed()) {
      std::copy(top[1]->cpu_diff(), top[1]->cpu_diff() + step, h_carried_.begin());
      std::copy(top[2]->cpu_diff(), top[2]->cpu_diff() + step, c_carried_.begin());
    } else {
      std::fill(h_carried_.begin(), h_carried_.end(), 0.0f);
      std::fill(c_carried_.begin(), c_carried_.end(), 0.0f);
    }
    for (int t = T_ - 1; t >= 0; --t) {
      cpu::add(step, top_diff + t * step, h_carried_.data(), h_total_.data());
      lstm_unit_backward(N_, H_, cell_.data() + t * step, pre_.data() + t * step * 4,
                         cell_.data() + (t + 1) * step, c_carried_.data(), h_total_.data(),
                         c_carried_.data(), pre_diff_.data() + t * step * 4);
      recurrent_step_backward(bottom, t, h_carried_.data());
    }
    if (exposed()) {
      const int h0 = first_state_bottom();
      if (propagate_down[h0]) cpu::copy(step, h_carried_.data(), bottom[h0]->mutable_cpu_diff());
      if (propagate_down[h0 + 1]) {
        cpu::copy(step, c_carried_.data(), bottom[h0 + 1]->mutable_cpu_diff());
      }
    }
    projection_backward(propagate_down, bottom);
  }

 private:
  std::vector<float> cell_;  // [T + 1, N, H] c_0 .. c_T
  std::vector<float> h_carried_, c_carried_, h_total_;
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
    acts_.resize(int64_t(N_) * 4 * H_);
  }

 protected:
  void forward_cpu(const Blobs& bottom, const Blobs& top) override {
    lstm_unit_forward(N_, H_, bottom[0]->cpu_data(), bottom[1]->cpu_data(), bottom[2]->cpu_data(),
                      acts_.data(), top[0]->mutable_cpu_data(), top[1]->mutable_cpu_data());
  }

  void backward_cpu(const Blobs& top, const std::vector<bool>& propagate_down,
                    const Blobs& bottom) override {
    LAYER_REQUIRE(!propagate_down[2],
                  "cannot backpropagate to the sequence continuation indicators (bottom 2)");
    if (!propagate_down[0] && !propagate_down[1]) return;
    lstm_unit_backward(N_, H_, bottom[0]->cpu_data(), acts_.data(), top[0]->cpu_data(),
                       top[0]->cpu_diff(), top[1]->cpu_diff(),
                       propagate_down[0] ? bottom[0]->mutable_cpu_diff() : nullptr,
                       propagate_down[1] ? bottom[1]->mutable_cpu_diff() : nullptr);
  }

 private:
  int N_ = 0, H_ = 0;
  std::vector<float> acts_;
};

}  // namespace
}  // namespace engine

ENGINE_LAYER_FACTORY(RNN, RNNLayer)
ENGINE_LAYER_FACTORY(LSTM, LSTMLayer)
ENGINE_LAYER_FACTORY(LSTMUnit, LSTMUnitLayer)
