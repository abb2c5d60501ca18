#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>

#include "core/context.hpp"
#include "core/layer_registry.hpp"
#include "core/net.hpp"
#include "gradient_checker.hpp"
#include "io/prototxt.hpp"
#include "math/blas.hpp"

namespace engine {
namespace {

using namespace testing;

double sig(double x) { return 1 / (1 + std::exp(-x)); }

std::string recurrent_text(const std::string& type, int num_output, bool expose = false,
                           const std::string& fillers = "") {
  return "name: 'rec' type: '" + type + "' recurrent_param { num_output: " +
         std::to_string(num_output) + (expose ? " expose_hidden: true" : "") + " " + fillers +
         " }";
}

const char* kUniformFillers =
    "weight_filler { type: 'uniform' min: -0.6 max: 0.6 } "
    "bias_filler { type: 'uniform' min: -0.3 max: 0.3 }";

void set_params(Layer& layer, const std::vector<std::vector<float>>& values) {
  ASSERT_EQ(layer.blobs().size(), values.size());
  for (size_t i = 0; i < values.size(); ++i) set_blob(*layer.blobs()[i], values[i]);
}

// ---- LSTMUnit -------------------------------------------------------------------------------

TEST(LSTMUnitLayer, ForwardAndBackwardByHand) {
  // Stream 0 continues: all gate inputs 0, so i = f = o = 1/2 and g = 0.
  // Stream 1 starts a sequence (cont 0, so f = 0): i = sig(ln 3) = 3/4, o = sig(-ln 3) = 1/4,
  // g = tanh(ln 2) = 3/5.
  const float ln3 = std::log(3.0f), ln2 = std::log(2.0f);
  Blob c_prev, gates, cont, c, h;
  set_blob(c_prev, {1, 2, 1}, {0.5f, -1.0f});
  set_blob(gates, {1, 2, 4}, {0, 0, 0, 0, ln3, 5.0f, -ln3, ln2});
  set_blob(cont, {1, 2}, {1, 0});
  LayerPtr layer = create_layer(layer_param("name: 'unit' type: 'LSTMUnit'"));
  layer->setup({&c_prev, &gates, &cont}, {&c, &h});
  layer->forward({&c_prev, &gates, &cont}, {&c, &h});
  EXPECT_EQ(c.shape(), (std::vector<int>{1, 2, 1}));
  EXPECT_EQ(h.shape(), (std::vector<int>{1, 2, 1}));
  const double c0 = 0.5 * 0.5, c1 = 0.75 * 0.6;  // f c_prev + i g
  expect_near(data_of(c), {float(c0), float(c1)}, 1e-6f);
  expect_near(data_of(h), {float(0.5 * std::tanh(c0)), float(0.25 * std::tanh(c1))}, 1e-6f);

  const float dc[2] = {0.3f, -0.2f}, dh[2] = {1.0f, 2.0f};
  std::copy(dc, dc + 2, c.mutable_cpu_diff());
  std::copy(dh, dh + 2, h.mutable_cpu_diff());
  layer->backward({&c, &h}, {true, true, false}, {&c_prev, &gates, &cont});
  const double t0 = std::tanh(c0), t1 = std::tanh(c1);
  const double term0 = dc[0] + dh[0] * 0.5 * (1 - t0 * t0);
  const double term1 = dc[1] + dh[1] * 0.25 * (1 - t1 * t1);
  expect_near(diff_of(c_prev), {float(term0 * 0.5), 0.0f}, 1e-6f);
  expect_near(diff_of(gates),
              {0.0f,                                  // di = term g i (1 - i), g = 0
               float(term0 * 0.5 * 0.25),             // df = term c_prev f (1 - f)
               float(dh[0] * t0 * 0.25),              // do = dh tanh(c) o (1 - o)
               float(term0 * 0.5),                    // dg = term i (1 - g^2)
               float(term1 * 0.6 * 0.75 * 0.25),      //
               0.0f,                                  // f = 0: no gradient
               float(dh[1] * t1 * 0.25 * 0.75),       //
               float(term1 * 0.75 * (1 - 0.36))},     //
              1e-6f);
}

TEST(LSTMUnitLayer, GradientWithResets) {
  Context::set_seed(5);
  Blob c_prev({1, 3, 2}), gates({1, 3, 8}), cont, c, h;
  fill_gaussian(c_prev);
  fill_gaussian(gates);
  set_blob(cont, {1, 3}, {1, 0, 1});
  LayerPtr layer = create_layer(layer_param("name: 'unit' type: 'LSTMUnit'"));
  GradientCheckOptions options;
  options.bottoms = {0, 1};
  check_gradient(*layer, {&c_prev, &gates, &cont}, {&c, &h}, options);
}

TEST(LSTMUnitLayer, ShapeErrorsNameTheBottom) {
  Blob c_prev({1, 2, 3}), gates({1, 2, 11}), cont({1, 2}), c, h;
  LayerPtr layer = create_layer(layer_param("name: 'unit' type: 'LSTMUnit'"));
  std::string message = setup_error(*layer, {&c_prev, &gates, &cont}, {&c, &h});
  EXPECT_TRUE(contains(message, "layer unit (LSTMUnit)"));
  EXPECT_TRUE(contains(message, "bottom 1 (gate inputs)"));
  EXPECT_TRUE(contains(message, "= 1 x 2 x 12")) << message;

  gates.reshape({1, 2, 12});
  Blob wrong_cont({1, 3});
  message = setup_error(*layer, {&c_prev, &gates, &wrong_cont}, {&c, &h});
  EXPECT_TRUE(contains(message, "bottom 2 (cont)"));

  const std::string backward = error_of([&] {
    layer->setup({&c_prev, &gates, &cont}, {&c, &h});
    layer->forward({&c_prev, &gates, &cont}, {&c, &h});
    layer->backward({&c, &h}, {true, true, true}, {&c_prev, &gates, &cont});
  });
  EXPECT_TRUE(contains(backward, "cannot backpropagate to the sequence continuation"));
}

// ---- Reference implementations, in double, straight from the equations ----------------------

struct Sequence {
  Sequence(int T, int N, int D, int H, int S) : T(T), N(N), D(D), H(H), S(S) {}
  int T, N, D, H, S;
  std::vector<float> x, cont, x_static, h0, c0;
};

// Returns h for every timestep followed by h_T and c_T. Parameters in Caffe's order.
std::vector<double> lstm_reference(const Sequence& s, const std::vector<std::vector<float>>& p) {
  const int H = s.H, G = 4 * H;
  const bool has_static = s.S > 0;
  const auto& Wx = p[0];
  const auto& b = p[1];
  const auto& Wh = p[has_static ? 3 : 2];
  std::vector<double> h(s.h0.begin(), s.h0.end()), c(s.c0.begin(), s.c0.end()), out;
  for (int t = 0; t < s.T; ++t) {
    std::vector<double> h_next(s.N * H), c_next(s.N * H);
    for (int n = 0; n < s.N; ++n) {
      const double keep = s.cont[t * s.N + n];
      std::vector<double> pre(G);
      for (int j = 0; j < G; ++j) {
        double sum = b[j];
        for (int k = 0; k < s.D; ++k) sum += Wx[j * s.D + k] * s.x[(t * s.N + n) * s.D + k];
        for (int k = 0; k < H; ++k) sum += Wh[j * H + k] * keep * h[n * H + k];
        for (int k = 0; k < s.S; ++k) sum += p[2][j * s.S + k] * s.x_static[n * s.S + k];
        pre[j] = sum;
      }
      for (int d = 0; d < H; ++d) {
        const double i = sig(pre[d]), f = keep * sig(pre[H + d]), o = sig(pre[2 * H + d]),
                     g = std::tanh(pre[3 * H + d]);
        c_next[n * H + d] = f * c[n * H + d] + i * g;
        h_next[n * H + d] = o * std::tanh(c_next[n * H + d]);
      }
    }
    h = h_next;
    c = c_next;
    out.insert(out.end(), h.begin(), h.end());
  }
  out.insert(out.end(), h.begin(), h.end());
  out.insert(out.end(), c.begin(), c.end());
  return out;
}

// Returns o for every timestep followed by h_T.
std::vector<double> rnn_reference(const Sequence& s, const std::vector<std::vector<float>>& p) {
  const int H = s.H;
  const bool has_static = s.S > 0;
  const int rec = has_static ? 3 : 2;
  const auto &Wx = p[0], &b = p[1], &Wh = p[rec], &Wo = p[rec + 1], &bo = p[rec + 2];
  std::vector<double> h(s.h0.begin(), s.h0.end()), out;
  for (int t = 0; t < s.T; ++t) {
    std::vector<double> h_next(s.N * H);
    for (int n = 0; n < s.N; ++n) {
      const double keep = s.cont[t * s.N + n];
      for (int j = 0; j < H; ++j) {
        double sum = b[j];
        for (int k = 0; k < s.D; ++k) sum += Wx[j * s.D + k] * s.x[(t * s.N + n) * s.D + k];
        for (int k = 0; k < H; ++k) sum += Wh[j * H + k] * keep * h[n * H + k];
        for (int k = 0; k < s.S; ++k) sum += p[2][j * s.S + k] * s.x_static[n * s.S + k];
        h_next[n * H + j] = std::tanh(sum);
      }
    }
    h = h_next;
    for (int n = 0; n < s.N; ++n) {
      for (int j = 0; j < H; ++j) {
        double sum = bo[j];
        for (int k = 0; k < H; ++k) sum += Wo[j * H + k] * h[n * H + k];
        out.push_back(std::tanh(sum));
      }
    }
  }
  out.insert(out.end(), h.begin(), h.end());
  return out;
}

std::vector<float> to_float(const std::vector<double>& v, size_t begin, size_t end) {
  return std::vector<float>(v.begin() + begin, v.begin() + end);
}

std::vector<std::vector<float>> params_of(const Layer& layer) {
  std::vector<std::vector<float>> values;
  for (const auto& blob : layer.blobs()) values.push_back(data_of(*blob));
  return values;
}

// ---- LSTM -----------------------------------------------------------------------------------

TEST(LSTMLayer, OneAndTwoStepsByHandWithAReset) {
  // H = D = 1, two streams fed the same x; stream 0 continues at step 2, stream 1 restarts.
  // Step 1 (cont 0): gate inputs W_xc x = (ln 3, 0, -ln 3, ln 2): i = 3/4, o = 1/4, g = 3/5,
  // c1 = i g = 0.45, h1 = tanh(0.45) / 4.
  // Step 2 (x = 0, bias 0): stream 0 gets W_hc h1 = (0, 0, 0, 2 h1): i = f = o = 1/2,
  // g = tanh(2 h1), c2 = c1 / 2 + g / 2, h2 = tanh(c2) / 2. Stream 1: cont 0 hides h1 and c1, so
  // every gate input is 0, g = 0, c2 = 0 and h2 = 0.
  const float ln3 = std::log(3.0f), ln2 = std::log(2.0f);
  Blob x, cont, h;
  set_blob(x, {2, 2, 1}, {1, 1, 0, 0});
  set_blob(cont, {2, 2}, {0, 0, 1, 0});
  LayerPtr layer = create_layer(layer_param(recurrent_text("LSTM", 1)));
  layer->setup({&x, &cont}, {&h});
  set_params(*layer, {{ln3, 0, -ln3, ln2}, {0, 0, 0, 0}, {0, 0, 0, 2}});
  layer->forward({&x, &cont}, {&h});
  EXPECT_EQ(h.shape(), (std::vector<int>{2, 2, 1}));
  const double c1 = 0.45, h1 = 0.25 * std::tanh(c1);
  const double c2 = 0.5 * c1 + 0.5 * std::tanh(2 * h1), h2 = 0.5 * std::tanh(c2);
  expect_near(data_of(h), {float(h1), float(h1), float(h2), 0.0f}, 1e-6f);
}

TEST(LSTMLayer, MatchesReferenceWithStaticInputAndExposedState) {
  Context::set_seed(11);
  Sequence s(3, 2, 3, 2, 2);
  Blob x({3, 2, 3}), cont, x_static({2, 2}), h0({1, 2, 2}), c0({1, 2, 2}), h, hT, cT;
  fill_gaussian(x);
  fill_gaussian(x_static);
  fill_gaussian(h0);
  fill_gaussian(c0);
  set_blob(cont, {3, 2}, {1, 0, 1, 1, 0, 1});
  LayerPtr layer = create_layer(layer_param(recurrent_text("LSTM", 2, true, kUniformFillers)));
  const Blobs bottom = {&x, &cont, &x_static, &h0, &c0}, top = {&h, &hT, &cT};
  layer->setup(bottom, top);
  layer->forward(bottom, top);
  s.x = data_of(x);
  s.cont = data_of(cont);
  s.x_static = data_of(x_static);
  s.h0 = data_of(h0);
  s.c0 = data_of(c0);
  const std::vector<double> expected = lstm_reference(s, params_of(*layer));
  expect_near(data_of(h), to_float(expected, 0, 12), 1e-5f);
  expect_near(data_of(hT), to_float(expected, 12, 16), 1e-5f);
  expect_near(data_of(cT), to_float(expected, 16, 20), 1e-5f);
  EXPECT_EQ(hT.shape(), (std::vector<int>{1, 2, 2}));
}

TEST(LSTMLayer, ParameterShapesAreCaffes) {
  Blob x({2, 4, 5}), cont({2, 4}), x_static({4, 2, 3}), h;
  LayerPtr plain = create_layer(layer_param(recurrent_text("LSTM", 3)));
  plain->setup({&x, &cont}, {&h});
  ASSERT_EQ(plain->blobs().size(), 3u);
  EXPECT_EQ(plain->blobs()[0]->shape(), (std::vector<int>{12, 5}));  // W_xc
  EXPECT_EQ(plain->blobs()[1]->shape(), (std::vector<int>{12}));     // b_c
  EXPECT_EQ(plain->blobs()[2]->shape(), (std::vector<int>{12, 3}));  // W_hc
  EXPECT_EQ(h.shape(), (std::vector<int>{2, 4, 3}));

  LayerPtr with_static = create_layer(layer_param(recurrent_text("LSTM", 3)));
  with_static->setup({&x, &cont, &x_static}, {&h});
  ASSERT_EQ(with_static->blobs().size(), 4u);
  EXPECT_EQ(with_static->blobs()[2]->shape(), (std::vector<int>{12, 6}));  // W_xc_static
  EXPECT_EQ(with_static->blobs()[3]->shape(), (std::vector<int>{12, 3}));  // W_hc

  // Inputs beyond the third axis are flattened, as InnerProduct with axis 2 does.
  Blob x4({2, 4, 2, 3});
  LayerPtr flat = create_layer(layer_param(recurrent_text("LSTM", 3)));
  flat->setup({&x4, &cont}, {&h});
  EXPECT_EQ(flat->blobs()[0]->shape(), (std::vector<int>{12, 6}));
}

// A pass over all the steps of x_shape (T x N x D) equals two passes of T / 2 steps, the second
// continuing where the first stopped (cont 1 at its first step).
void expect_state_carries_over(const std::string& type, int num_output,
                               const std::vector<int>& x_shape, const std::vector<float>& conts) {
  Blob x_long(x_shape), cont_long, out_long;
  fill_gaussian(x_long);
  set_blob(cont_long, {x_shape[0], x_shape[1]}, conts);
  LayerPtr whole = create_layer(layer_param(recurrent_text(type, num_output, false,
                                                           kUniformFillers)));
  whole->setup({&x_long, &cont_long}, {&out_long});
  whole->forward({&x_long, &cont_long}, {&out_long});

  LayerPtr halves = create_layer(layer_param(recurrent_text(type, num_output)));
  share_parameters(*whole, *halves);
  const int half = x_shape[0] / 2;
  Blob x({half, x_shape[1], x_shape[2]}), cont({half, x_shape[1]}), out;
  halves->setup({&x, &cont}, {&out});
  std::vector<float> joined;
  for (int part = 0; part < 2; ++part) {
    std::copy(x_long.cpu_data() + part * x.count(), x_long.cpu_data() + (part + 1) * x.count(),
              x.mutable_cpu_data());
    std::copy(cont_long.cpu_data() + part * cont.count(),
              cont_long.cpu_data() + (part + 1) * cont.count(), cont.mutable_cpu_data());
    halves->forward({&x, &cont}, {&out});
    const std::vector<float> values = data_of(out);
    joined.insert(joined.end(), values.begin(), values.end());
  }
  expect_near(joined, data_of(out_long), 1e-6f);
}

// The gradient with respect to x over steps where some streams restart (cont 0) mid-sequence.
void check_gradient_with_resets(const std::string& type, int num_output,
                                const std::vector<int>& x_shape,
                                const std::vector<float>& conts) {
  Blob x(x_shape), cont, out;
  fill_gaussian(x);
  set_blob(cont, {x_shape[0], x_shape[1]}, conts);
  LayerPtr layer = create_layer(layer_param(recurrent_text(type, num_output, false,
                                                           kUniformFillers)));
  GradientCheckOptions options;
  options.bottoms = {0};
  check_gradient(*layer, {&x, &cont}, {&out}, options);
}

TEST(LSTMLayer, StateCarriesOverBetweenPassesUnlessExposed) {
  Context::set_seed(3);
  expect_state_carries_over("LSTM", 3, {4, 2, 2}, {0, 0, 1, 1, 1, 0, 1, 1});
}

TEST(LSTMLayer, GradientWithResetsInTheMiddle) {
  Context::set_seed(7);
  check_gradient_with_resets("LSTM", 2, {3, 2, 2}, {0, 0, 1, 0, 1, 1});
}

TEST(LSTMLayer, GradientWithStaticInputAndExposedState) {
  Context::set_seed(8);
  Blob x({3, 2, 2}), cont, x_static({2, 3}), h0({1, 2, 2}), c0({1, 2, 2}), h, hT, cT;
  fill_gaussian(x);
  fill_gaussian(x_static);
  fill_gaussian(h0);
  fill_gaussian(c0);
  set_blob(cont, {3, 2}, {1, 0, 0, 1, 1, 1});
  LayerPtr layer = create_layer(layer_param(recurrent_text("LSTM", 2, true, kUniformFillers)));
  GradientCheckOptions options;
  options.bottoms = {0, 2, 3, 4};
  check_gradient(*layer, {&x, &cont, &x_static, &h0, &c0}, {&h, &hT, &cT}, options);
}

TEST(LSTMLayer, ParameterGradientsAccumulate) {
  Context::set_seed(9);
  Blob x({2, 1, 2}), cont, h;
  fill_gaussian(x);
  set_blob(cont, {2, 1}, {0, 1});
  LayerPtr layer = create_layer(layer_param(recurrent_text("LSTM", 2, false, kUniformFillers)));
  layer->setup({&x, &cont}, {&h});
  layer->forward({&x, &cont}, {&h});
  for (int i = 0; i < h.count(); ++i) h.mutable_cpu_diff()[i] = 0.5f - 0.25f * i;
  for (auto& blob : layer->blobs()) blob->set_diff(0);
  layer->backward({&h}, {true, false}, {&x, &cont});
  const std::vector<float> once = diff_of(*layer->blobs()[2]);
  layer->backward({&h}, {true, false}, {&x, &cont});
  std::vector<float> twice = once;
  for (float& v : twice) v *= 2;
  expect_near(diff_of(*layer->blobs()[2]), twice, 1e-6f);
}

// ---- RNN ------------------------------------------------------------------------------------

TEST(RNNLayer, OneAndTwoStepsByHandWithAReset) {
  // W_xh = 1, b_h = 0, W_hh = 2, W_ho = 1, b_o = 1/2; stream 0 continues, stream 1 restarts.
  Blob x, cont, o;
  set_blob(x, {2, 2, 1}, {0.5f, 0.5f, -0.25f, -0.25f});
  set_blob(cont, {2, 2}, {0, 0, 1, 0});
  LayerPtr layer = create_layer(layer_param(recurrent_text("RNN", 1)));
  layer->setup({&x, &cont}, {&o});
  set_params(*layer, {{1}, {0}, {2}, {1}, {0.5f}});
  layer->forward({&x, &cont}, {&o});
  const double h1 = std::tanh(0.5);
  const double h2_kept = std::tanh(2 * h1 - 0.25), h2_reset = std::tanh(-0.25);
  expect_near(data_of(o), {float(std::tanh(h1 + 0.5)), float(std::tanh(h1 + 0.5)),
                           float(std::tanh(h2_kept + 0.5)), float(std::tanh(h2_reset + 0.5))},
              1e-6f);
}

TEST(RNNLayer, OneStepBackwardByHand) {
  // h = tanh(a x + b_h), o = tanh(w h + b_o), d(loss)/d(o) = 1.
  const float a = 0.8f, bh = -0.1f, w = 1.5f, bo = 0.2f, xv = 0.7f;
  Blob x, cont, o;
  set_blob(x, {1, 1, 1}, {xv});
  set_blob(cont, {1, 1}, {0});
  LayerPtr layer = create_layer(layer_param(recurrent_text("RNN", 1)));
  layer->setup({&x, &cont}, {&o});
  set_params(*layer, {{a}, {bh}, {3}, {w}, {bo}});
  layer->forward({&x, &cont}, {&o});
  o.mutable_cpu_diff()[0] = 1;
  for (auto& blob : layer->blobs()) blob->set_diff(0);
  layer->backward({&o}, {true, false}, {&x, &cont});
  const double h = std::tanh(a * xv + bh), out = std::tanh(w * h + bo);
  const double d_out = 1 - out * out, d_pre = d_out * w * (1 - h * h);
  expect_near(data_of(o), {float(out)}, 1e-6f);
  expect_near(diff_of(*layer->blobs()[0]), {float(d_pre * xv)}, 1e-6f);  // W_xh
  expect_near(diff_of(*layer->blobs()[1]), {float(d_pre)}, 1e-6f);       // b_h
  expect_near(diff_of(*layer->blobs()[2]), {0.0f}, 1e-6f);               // W_hh: cont 0
  expect_near(diff_of(*layer->blobs()[3]), {float(d_out * h)}, 1e-6f);   // W_ho
  expect_near(diff_of(*layer->blobs()[4]), {float(d_out)}, 1e-6f);       // b_o
  expect_near(diff_of(x), {float(d_pre * a)}, 1e-6f);
}

TEST(RNNLayer, MatchesReferenceWithStaticInputAndExposedState) {
  Context::set_seed(12);
  Sequence s(3, 2, 2, 3, 3);
  Blob x({3, 2, 2}), cont, x_static({2, 3}), h0({1, 2, 3}), o, hT;
  fill_gaussian(x);
  fill_gaussian(x_static);
  fill_gaussian(h0);
  set_blob(cont, {3, 2}, {1, 0, 0, 1, 1, 1});
  LayerPtr layer = create_layer(layer_param(recurrent_text("RNN", 3, true, kUniformFillers)));
  const Blobs bottom = {&x, &cont, &x_static, &h0}, top = {&o, &hT};
  layer->setup(bottom, top);
  layer->forward(bottom, top);
  s.x = data_of(x);
  s.cont = data_of(cont);
  s.x_static = data_of(x_static);
  s.h0 = data_of(h0);
  const std::vector<double> expected = rnn_reference(s, params_of(*layer));
  expect_near(data_of(o), to_float(expected, 0, 18), 1e-5f);
  expect_near(data_of(hT), to_float(expected, 18, 24), 1e-5f);
}

TEST(RNNLayer, ParameterShapesAreCaffes) {
  Blob x({2, 4, 5}), cont({2, 4}), x_static({4, 6}), o;
  LayerPtr plain = create_layer(layer_param(recurrent_text("RNN", 3)));
  plain->setup({&x, &cont}, {&o});
  const std::vector<std::vector<int>> shapes = {{3, 5}, {3}, {3, 3}, {3, 3}, {3}};
  ASSERT_EQ(plain->blobs().size(), shapes.size());  // W_xh, b_h, W_hh, W_ho, b_o
  for (size_t i = 0; i < shapes.size(); ++i) EXPECT_EQ(plain->blobs()[i]->shape(), shapes[i]);
  EXPECT_EQ(o.shape(), (std::vector<int>{2, 4, 3}));

  LayerPtr with_static = create_layer(layer_param(recurrent_text("RNN", 3)));
  with_static->setup({&x, &cont, &x_static}, {&o});
  const std::vector<std::vector<int>> static_shapes = {{3, 5}, {3}, {3, 6}, {3, 3}, {3, 3}, {3}};
  ASSERT_EQ(with_static->blobs().size(), static_shapes.size());
  for (size_t i = 0; i < static_shapes.size(); ++i) {
    EXPECT_EQ(with_static->blobs()[i]->shape(), static_shapes[i]);
  }
}

TEST(RNNLayer, StateCarriesOverBetweenPasses) {
  Context::set_seed(4);
  expect_state_carries_over("RNN", 2, {4, 3, 2}, {0, 0, 0, 1, 1, 1, 1, 0, 1, 1, 1, 1});
}

TEST(RNNLayer, GradientWithResetsInTheMiddle) {
  Context::set_seed(13);
  check_gradient_with_resets("RNN", 3, {4, 2, 3}, {0, 0, 1, 1, 0, 1, 1, 1});
}

TEST(RNNLayer, GradientWithStaticInputAndExposedState) {
  Context::set_seed(14);
  Blob x({3, 2, 2}), cont, x_static({2, 2}), h0({1, 2, 2}), o, hT;
  fill_gaussian(x);
  fill_gaussian(x_static);
  fill_gaussian(h0);
  set_blob(cont, {3, 2}, {1, 0, 1, 0, 1, 1});
  LayerPtr layer = create_layer(layer_param(recurrent_text("RNN", 2, true, kUniformFillers)));
  GradientCheckOptions options;
  options.bottoms = {0, 2, 3};
  check_gradient(*layer, {&x, &cont, &x_static, &h0}, {&o, &hT}, options);
}

// ---- Against Caffe's own construction ------------------------------------------------------
//
// Caffe computes RNN and LSTM with an unrolled net of InnerProduct, Scale, Eltwise, TanH, LSTMUnit,
// Slice and Concat layers sharing parameters by name. The same net, built here with our layers
// (force_backward so that h_0 and c_0 get gradients too), must give the outputs and gradients of
// the direct implementation. Random Scale weights with loss_weight 1 on h (or o), h_T and c_T
// set the gradients arriving at the outputs.

std::string shape_text(const std::vector<int>& dims) {
  std::string text = "shape {";
  for (int d : dims) text += " dim: " + std::to_string(d);
  return text + " }";
}

std::string loss_on(const std::string& blob) {
  return "layer { name: 'weigh_" + blob + "' type: 'Scale' bottom: '" + blob + "' top: 'weighted_" +
         blob + "' loss_weight: 1 scale_param { axis: 0 num_axes: -1 "
         "filler { type: 'gaussian' std: 1 } } }\n";
}

// Caffe's FillUnrolledNet for LSTM (lstm) or RNN, with x of shape T x N x D.
std::string unrolled_net(bool lstm, int T, int N, int D, int H, int S) {
  const int G = lstm ? 4 * H : H;
  const std::string ip = "' type: 'InnerProduct' ";
  auto ip_param = [&](int outputs, bool bias, int axis) {
    return " inner_product_param { num_output: " + std::to_string(outputs) +
           (bias ? " bias_term: true" : " bias_term: false") + " axis: " + std::to_string(axis) +
           " } }\n";
  };
  std::string text = "force_backward: true\nlayer { name: 'input' type: 'Input' top: 'x' "
                     "top: 'cont' ";
  if (S) text += "top: 'x_static' ";
  if (lstm) text += "top: 'c_0' ";
  text += "top: 'h_0' input_param { " + shape_text({T, N, D}) + " " + shape_text({T, N});
  if (S) text += " " + shape_text({N, S});
  if (lstm) text += " " + shape_text({1, N, H});
  text += " " + shape_text({1, N, H}) + " } }\n";
  const std::string wx = lstm ? "W_xc" : "W_xh", bx = lstm ? "b_c" : "b_h";
  const std::string projected = wx + "_x";
  text += "layer { name: 'cont_slice' type: 'Slice' bottom: 'cont' ";
  for (int t = 1; t <= T; ++t) text += "top: 'cont_" + std::to_string(t) + "' ";
  text += "slice_param { axis: 0 } }\n";
  text += "layer { name: 'x_transform" + ip + "bottom: 'x' top: '" + projected +
          "' param { name: '" + wx + "' } param { name: '" + bx + "' }" + ip_param(G, true, 2);
  if (S) {
    text += "layer { name: '" + wx + "_x_static" + ip + "bottom: 'x_static' top: 'static_pre' " +
            "param { name: '" + wx + "_static' }" + ip_param(G, false, 1);
    text += "layer { name: 'static_reshape' type: 'Reshape' bottom: 'static_pre' top: 'static' "
            "reshape_param { shape { dim: 1 dim: -1 dim: " + std::to_string(G) + " } } }\n";
  }
  text += "layer { name: 'x_slice' type: 'Slice' bottom: '" + projected + "' ";
  for (int t = 1; t <= T; ++t) text += "top: '" + projected + "_" + std::to_string(t) + "' ";
  text += "slice_param { axis: 0 } }\n";
  std::string concat = "layer { name: 'concat' type: 'Concat' top: '" +
                       std::string(lstm ? "h" : "o") + "' concat_param { axis: 0 } ";
  for (int t = 1; t <= T; ++t) {
    const std::string ts = std::to_string(t), tm1 = std::to_string(t - 1);
    text += "layer { name: 'h_conted_" + tm1 + "' type: 'Scale' bottom: 'h_" + tm1 +
            "' bottom: 'cont_" + ts + "' top: 'h_conted_" + tm1 + "' scale_param { axis: 0 } }\n";
    text += "layer { name: 'recurrent_" + ts + ip + "bottom: 'h_conted_" + tm1 +
            "' top: 'rec_" + ts + "' param { name: '" + (lstm ? "W_hc" : "W_hh") + "' }" +
            ip_param(G, false, 2);
    text += "layer { name: 'sum_" + ts + "' type: 'Eltwise' bottom: 'rec_" + ts + "' bottom: '" +
            projected + "_" + ts + "' " + (S ? "bottom: 'static' " : "") + "top: 'pre_" + ts +
            "' eltwise_param { operation: SUM } }\n";
    if (lstm) {
      text += "layer { name: 'unit_" + ts + "' type: 'LSTMUnit' bottom: 'c_" + tm1 +
              "' bottom: 'pre_" + ts + "' bottom: 'cont_" + ts + "' top: 'c_" + ts + "' top: 'h_" +
              ts + "' }\n";
      concat += "bottom: 'h_" + ts + "' ";
    } else {
      text += "layer { name: 'h_neuron_" + ts + "' type: 'TanH' bottom: 'pre_" + ts +
              "' top: 'h_" + ts + "' }\n";
      text += "layer { name: 'W_ho_h_" + ts + ip + "bottom: 'h_" + ts + "' top: 'o_pre_" + ts +
              "' param { name: 'W_ho' } param { name: 'b_o' }" + ip_param(H, true, 2);
      text += "layer { name: 'o_neuron_" + ts + "' type: 'TanH' bottom: 'o_pre_" + ts +
              "' top: 'o_" + ts + "' }\n";
      concat += "bottom: 'o_" + ts + "' ";
    }
  }
  text += concat + "}\n";
  text += loss_on(lstm ? "h" : "o") + loss_on("h_" + std::to_string(T));
  if (lstm) text += loss_on("c_" + std::to_string(T));
  return text;
}

const Layer& net_layer(const Net& net, const std::string& name) {
  const auto& names = net.layer_names();
  const size_t i = std::find(names.begin(), names.end(), name) - names.begin();
  CHECK_LT(i, names.size()) << name;
  return *net.layers()[i];
}

void compare_with_unrolled_net(bool lstm) {
  const int T = 3, N = 2, D = 3, H = 2, S = 2;
  const std::string type = lstm ? "LSTM" : "RNN";
  NetParameter net_param;
  parse_text(unrolled_net(lstm, T, N, D, H, S), "<unrolled " + type + ">", &net_param);
  net_param.mutable_state()->set_phase(TRAIN);
  Context::set_seed(21);
  Net net(net_param);

  Blob x({T, N, D}), cont, x_static({N, S}), h0({1, N, H}), c0({1, N, H}), out, hT, cT;
  fill_gaussian(x);
  fill_gaussian(x_static);
  fill_gaussian(h0);
  fill_gaussian(c0);
  set_blob(cont, {T, N}, {1, 0, 0, 1, 1, 1});
  Blobs bottom = {&x, &cont, &x_static, &h0}, top = {&out, &hT};
  if (lstm) {
    bottom.push_back(&c0);
    top.push_back(&cT);
  }
  LayerPtr layer = create_layer(layer_param(recurrent_text(type, H, true, kUniformFillers)));
  layer->setup(bottom, top);

  // The net's parameter owners take the layer's values.
  const std::vector<std::pair<std::string, int>> owners =
      lstm ? std::vector<std::pair<std::string, int>>{{"x_transform", 0}, {"x_transform", 1},
                                                      {"W_xc_x_static", 0}, {"recurrent_1", 0}}
           : std::vector<std::pair<std::string, int>>{{"x_transform", 0}, {"x_transform", 1},
                                                      {"W_xh_x_static", 0}, {"recurrent_1", 0},
                                                      {"W_ho_h_1", 0}, {"W_ho_h_1", 1}};
  ASSERT_EQ(layer->blobs().size(), owners.size());
  for (size_t i = 0; i < owners.size(); ++i) {
    Blob& target = *net_layer(net, owners[i].first).blobs()[owners[i].second];
    ASSERT_EQ(target.shape(), layer->blobs()[i]->shape()) << "parameter " << i;
    cpu::copy(target.count(), layer->blobs()[i]->cpu_data(), target.mutable_cpu_data());
  }
  for (const char* name : {"x", "cont", "x_static", "h_0", "c_0"}) {
    if (!net.has_blob(name)) continue;
    const Blob& from = std::string(name) == "x"          ? x
                       : std::string(name) == "cont"     ? cont
                       : std::string(name) == "x_static" ? x_static
                       : std::string(name) == "h_0"      ? h0
                                                         : c0;
    cpu::copy(from.count(), from.cpu_data(), net.blob_by_name(name)->mutable_cpu_data());
  }
  net.clear_param_diffs();
  net.forward_backward();

  layer->forward(bottom, top);
  const std::string output = lstm ? "h" : "o";
  const std::vector<std::string> top_names = {output, "h_" + std::to_string(T),
                                              "c_" + std::to_string(T)};
  for (size_t k = 0; k < top.size(); ++k) {
    expect_close(data_of(*top[k]), data_of(*net.blob_by_name(top_names[k])), type + " top " +
                 top_names[k], 1e-6f);
    const std::vector<float> weights = data_of(*net_layer(net, "weigh_" + top_names[k]).blobs()[0]);
    std::copy(weights.begin(), weights.end(), top[k]->mutable_cpu_diff());
  }
  for (auto& blob : layer->blobs()) blob->set_diff(0);
  std::vector<bool> propagate_down(bottom.size(), true);
  propagate_down[1] = false;
  layer->backward(top, propagate_down, bottom);
  for (size_t i = 0; i < owners.size(); ++i) {
    expect_close(diff_of(*layer->blobs()[i]),
                 diff_of(*net_layer(net, owners[i].first).blobs()[owners[i].second]),
                 type + " parameter " + std::to_string(i), 1e-5f);
  }
  expect_close(diff_of(x), diff_of(*net.blob_by_name("x")), type + " x", 1e-5f);
  expect_close(diff_of(x_static), diff_of(*net.blob_by_name("x_static")), type + " x_static",
               1e-5f);
  expect_close(diff_of(h0), diff_of(*net.blob_by_name("h_0")), type + " h_0", 1e-5f);
  if (lstm) expect_close(diff_of(c0), diff_of(*net.blob_by_name("c_0")), type + " c_0", 1e-5f);
}

TEST(LSTMLayer, EqualsCaffesUnrolledNet) { compare_with_unrolled_net(true); }
TEST(RNNLayer, EqualsCaffesUnrolledNet) { compare_with_unrolled_net(false); }

// ---- Errors and nets ------------------------------------------------------------------------

TEST(RecurrentLayers, MissingNumOutputNamesTheLayer) {
  for (const char* type : {"RNN", "LSTM"}) {
    Blob x({2, 1, 3}), cont({2, 1}), top;
    LayerPtr layer =
        create_layer(layer_param(std::string("name: 'rec' type: '") + type + "'"));
    const std::string message = setup_error(*layer, {&x, &cont}, {&top});
    EXPECT_TRUE(contains(message, std::string("layer rec (") + type + ")"));
    EXPECT_TRUE(contains(message, "num_output > 0, got 0"));
  }
}

TEST(RecurrentLayers, ContShapeMismatchSaysWhatWasExpected) {
  for (const char* type : {"RNN", "LSTM"}) {
    Blob x({3, 2, 4}), cont({3, 5}), top;
    LayerPtr layer = create_layer(layer_param(recurrent_text(type, 2)));
    const std::string message = setup_error(*layer, {&x, &cont}, {&top});
    EXPECT_TRUE(contains(message, "bottom 1 (cont) must be timesteps x streams = 3 x 2"));
    EXPECT_TRUE(contains(message, "got 3 x 5")) << message;

    Blob flat_cont({6});
    EXPECT_TRUE(contains(setup_error(*layer, {&x, &flat_cont}, {&top}), "bottom 1 (cont)"));
  }
}

TEST(RecurrentLayers, OtherBadInputs) {
  Blob x({3, 2, 4}), cont({3, 2}), h0({1, 2, 3}), c0({1, 2, 2}), h, hT, cT;
  LayerPtr lstm = create_layer(layer_param(recurrent_text("LSTM", 2, true)));
  EXPECT_TRUE(contains(setup_error(*lstm, {&x, &cont, &h0, &c0}, {&h, &hT, &cT}),
                       "bottom 2 (h_0) should have shape 1 x 2 x 2"));
  // expose_hidden takes the state bottoms and gives the state tops.
  EXPECT_TRUE(contains(setup_error(*lstm, {&x, &cont}, {&h}), "at least 4 bottom"));

  Blob x2({3, 2}), cont2({3, 2});
  LayerPtr rnn = create_layer(layer_param(recurrent_text("RNN", 2)));
  EXPECT_TRUE(contains(setup_error(*rnn, {&x2, &cont2}, {&h}), "at least 3 axes"));

  // Weights from a file must have Caffe's shapes.
  LayerParameter param = layer_param(recurrent_text("LSTM", 2));
  for (const std::vector<int>& shape :
       std::vector<std::vector<int>>{{8, 4}, {8}, {8, 3}}) {  // W_hc should be [8, 2]
    BlobProto* proto = param.add_blobs();
    for (int d : shape) proto->mutable_shape()->add_dim(d);
    int count = 1;
    for (int d : shape) count *= d;
    for (int i = 0; i < count; ++i) proto->add_data(0);
  }
  LayerPtr loaded = create_layer(param);
  const std::string message = setup_error(*loaded, {&x, &cont}, {&h});
  EXPECT_TRUE(contains(message, "parameter 2 (W_hc) should have shape 8 x 2, got 8 x 3"));
}

TEST(RecurrentLayers, TrainInANetWithLossOnTheOutput) {
  // The cont input comes from an Input layer and needs no gradient; the layer's parameters get
  // theirs through the net.
  NetParameter param;
  parse_text(R"(
    layer { name: 'in' type: 'Input' top: 'x' top: 'cont'
            input_param { shape { dim: 3 dim: 2 dim: 2 } shape { dim: 3 dim: 2 } } }
    layer { name: 'lstm' type: 'LSTM' bottom: 'x' bottom: 'cont' top: 'h'
            recurrent_param { num_output: 2
              weight_filler { type: 'uniform' min: -0.5 max: 0.5 } } }
    layer { name: 'rnn' type: 'RNN' bottom: 'h' bottom: 'cont' top: 'o'
            recurrent_param { num_output: 2
              weight_filler { type: 'uniform' min: -0.5 max: 0.5 } } }
    layer { name: 'loss' type: 'EuclideanLoss' bottom: 'o' bottom: 'x' top: 'loss' }
  )",
             "<test net>", &param);
  param.mutable_state()->set_phase(TRAIN);
  Context::set_seed(2);
  Net net(param);
  fill_gaussian(*net.blob_by_name("x"));
  set_blob(*net.blob_by_name("cont"), {0, 0, 1, 1, 1, 0});
  net.clear_param_diffs();
  net.forward_backward();
  for (const auto& layer : net.layers()) {
    for (const auto& blob : layer->blobs()) {
      EXPECT_GT(blob->sum_of_squares_diff(), 0) << layer->name();
    }
  }
}

}  // namespace
}  // namespace engine
