// ELU, AbsVal, BNLL, Power, Exp, Log, Threshold, Clip, Swish and PReLU: forward and backward
// values worked by hand, gradient checks (in place where the layer allows it), PReLU's slope
// gradient, and parameter errors.
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "core/layer_registry.hpp"
#include "gradient_checker.hpp"
#include "math/blas.hpp"

namespace engine {
namespace {

using namespace testing;

const std::vector<std::vector<int>> kShapes = {{2, 3, 4, 5}, {3, 7}, {1, 1, 5, 3}, {13}};

LayerPtr make(const std::string& type, const std::string& params = "") {
  return create_layer(layer_param("name: 'n' type: '" + type + "' " + params));
}

// Runs forward on `x`, then backward from dy = `top_grad` everywhere; returns {y, dx}.
struct Pass {
  std::vector<float> y, dx;
};
Pass run(Layer& layer, const std::vector<float>& x, float top_grad = 1.0f) {
  Blob bottom, top;
  set_blob(bottom, {static_cast<int>(x.size())}, x);
  layer.setup({&bottom}, {&top});
  layer.forward({&bottom}, {&top});
  cpu::set(top.count(), top_grad, top.mutable_cpu_diff());
  layer.backward({&top}, {true}, {&bottom});
  return {data_of(top), diff_of(bottom)};
}

// Moves every value closer than `gap` to one of `points` out to distance `gap`, so that finite
// differences do not straddle a kink.
void keep_away(Blob& blob, const std::vector<float>& points, float gap) {
  float* x = blob.mutable_cpu_data();
  for (int64_t i = 0; i < blob.count(); ++i) {
    for (float p : points) {
      if (std::fabs(x[i] - p) < gap) x[i] = x[i] < p ? p - gap : p + gap;
    }
  }
}

// Gradient checks at every shape, out of place and (when `in_place`) in place, on inputs drawn
// by `fill` and kept `gap` away from `kinks`.
void check_everywhere(const std::string& type, const std::string& params, bool in_place,
                      void (*fill)(Blob&), const std::vector<float>& kinks = {}) {
  for (const auto& shape : kShapes) {
    for (bool same : {false, true}) {
      if (same && !in_place) continue;
      SCOPED_TRACE(type + " " + params + (same ? " in place" : "") + " shape " +
                   shape_string(shape));
      Blob bottom(shape), top;
      fill(bottom);
      keep_away(bottom, kinks, 0.05f);
      LayerPtr layer = make(type, params);
      check_gradient(*layer, {&bottom}, {same ? &bottom : &top});
    }
  }
}

void gaussian(Blob& blob) { fill_gaussian(blob); }
void positive(Blob& blob) { fill_uniform(blob, 0.5f, 2.0f); }

// ---- ELU ----------------------------------------------------------------------------------

TEST(ELULayer, ForwardAndBackwardByHand) {
  const float ln2 = std::log(2.0f), ln4 = std::log(4.0f);
  LayerPtr layer = make("ELU", "elu_param { alpha: 2 }");
  const Pass pass = run(*layer, {-ln2, -ln4, 0.0f, 1.5f});
  // 2 (e^-ln2 - 1) = 2 (0.5 - 1) = -1; 2 (0.25 - 1) = -1.5; 0; 1.5.
  expect_close(pass.y, {-1.0f, -1.5f, 0.0f, 1.5f}, "y", 1e-6f);
  // x <= 0: alpha + y = 1, 0.5, and 2 at x = 0 (Caffe takes the negative side there); x > 0: 1.
  expect_close(pass.dx, {1.0f, 0.5f, 2.0f, 1.0f}, "dx", 1e-6f);
}

TEST(ELULayer, NearZeroKeepsDigits) {
  // exp(x) - 1 for x = -1e-4 is -9.9995e-5 to 5 digits; float exp would give 1 ulp of 1 (6e-8)
  // of absolute error, 6e-4 relative.
  LayerPtr layer = make("ELU");
  const Pass pass = run(*layer, {-1e-4f});
  expect_close(pass.y, {static_cast<float>(std::expm1(-1e-4))}, "y", 1e-6f);
}

TEST(ELULayer, Gradient) {
  check_everywhere("ELU", "", true, gaussian, {0});
  check_everywhere("ELU", "elu_param { alpha: 0.4 }", true, gaussian, {0});
}

// ---- AbsVal -------------------------------------------------------------------------------

TEST(AbsValLayer, ForwardAndBackwardByHand) {
  LayerPtr layer = make("AbsVal");
  const Pass pass = run(*layer, {-2.0f, 0.0f, 3.5f}, 2.0f);
  expect_near(pass.y, {2, 0, 3.5f});
  // sign(x) * 2, with sign(0) = 0.
  expect_near(pass.dx, {-2, 0, 2});
}

TEST(AbsValLayer, GradientAndNoInPlace) {
  check_everywhere("AbsVal", "", false, gaussian, {0});
  Blob blob({4});
  LayerPtr layer = create_layer(layer_param("name: 'abs1' type: 'AbsVal' bottom: 'x' top: 'x'"));
  const std::string message = setup_error(*layer, {&blob}, {&blob});
  EXPECT_TRUE(contains(message, "layer abs1 (AbsVal)"));
  EXPECT_TRUE(contains(message, "cannot run in place"));
}

// ---- BNLL ---------------------------------------------------------------------------------

TEST(BNLLLayer, ForwardAndBackwardByHand) {
  const float ln3 = std::log(3.0f);
  LayerPtr layer = make("BNLL");
  const Pass pass = run(*layer, {0.0f, ln3, -ln3, 100.0f});
  // log(1 + e^x): log 2; log(1 + 3) = log 4; log(1 + 1/3) = log(4/3); 100 (+ 4e-44).
  expect_close(pass.y, {0.6931472f, 1.3862944f, 0.2876821f, 100.0f}, "y", 1e-6f);
  // The logistic function: 1/2, 3/4, 1/4, and 1 (Caffe caps x at 50 first).
  expect_close(pass.dx, {0.5f, 0.75f, 0.25f, 1.0f}, "dx", 1e-6f);
}

TEST(BNLLLayer, Gradient) { check_everywhere("BNLL", "", true, gaussian); }

// ---- Power --------------------------------------------------------------------------------

TEST(PowerLayer, SquareByHand) {
  LayerPtr layer = make("Power", "power_param { power: 2 scale: 3 shift: 1 }");
  const Pass pass = run(*layer, {-1.0f, 0.0f, 0.5f, 2.0f});
  // (1 + 3x)^2: (-2)^2, 1, 2.5^2, 7^2.
  expect_near(pass.y, {4, 1, 6.25f, 49});
  // 2 * 3 * (1 + 3x).
  expect_near(pass.dx, {-12, 6, 15, 42}, 1e-5f);
}

TEST(PowerLayer, SquareRootWithoutShiftByHand) {
  LayerPtr layer = make("Power", "power_param { power: 0.5 }");
  const Pass pass = run(*layer, {4.0f, 9.0f, 0.25f});
  expect_near(pass.y, {2, 3, 0.5f});
  // power * y / x: 0.5 * 2/4, 0.5 * 3/9, 0.5 * 0.5/0.25.
  expect_close(pass.dx, {0.25f, 1.0f / 6, 1.0f}, "dx", 1e-6f);
}

TEST(PowerLayer, GeneralFormByHand) {
  LayerPtr layer = make("Power", "power_param { power: 3 scale: 2 shift: 1 }");
  const Pass pass = run(*layer, {0.0f, 0.5f, 1.0f}, 0.5f);
  // (1 + 2x)^3: 1, 8, 27.
  expect_close(pass.y, {1, 8, 27}, "y", 1e-6f);
  // 0.5 * power * scale * y / (1 + 2x) = 0.5 * 6 * {1, 4, 9}.
  expect_close(pass.dx, {3, 12, 27}, "dx", 1e-6f);
}

TEST(PowerLayer, ConstantAndLinearCases) {
  // power 0: 1 everywhere, gradient 0.
  LayerPtr zero_power = make("Power", "power_param { power: 0 scale: 5 shift: 2 }");
  Pass pass = run(*zero_power, {-1.0f, 3.0f});
  expect_near(pass.y, {1, 1});
  expect_near(pass.dx, {0, 0});
  // scale 0: shift^power = 9, gradient 0.
  LayerPtr zero_scale = make("Power", "power_param { power: 2 scale: 0 shift: 3 }");
  pass = run(*zero_scale, {-1.0f, 3.0f});
  expect_near(pass.y, {9, 9});
  expect_near(pass.dx, {0, 0});
  // power 1: 2x + 1, gradient 2 * dy.
  LayerPtr linear = make("Power", "power_param { power: 1 scale: 2 shift: 1 }");
  pass = run(*linear, {-1.0f, 3.0f}, 1.5f);
  expect_near(pass.y, {-1, 7});
  expect_near(pass.dx, {3, 3});
}

TEST(PowerLayer, Gradient) {
  check_everywhere("Power", "power_param { power: 2 scale: 0.7 shift: -0.3 }", true, gaussian);
  check_everywhere("Power", "power_param { power: 1.5 scale: 1.2 }", true, positive);
  check_everywhere("Power", "power_param { power: -0.7 scale: 0.8 shift: 0.5 }", true, positive);
  check_everywhere("Power", "power_param { power: 1 scale: -2 shift: 4 }", true, gaussian);
}

// ---- Exp ----------------------------------------------------------------------------------

TEST(ExpLayer, ForwardAndBackwardByHand) {
  const float ln2 = std::log(2.0f);
  LayerPtr natural = make("Exp");
  Pass pass = run(*natural, {0.0f, ln2, -ln2});
  expect_close(pass.y, {1, 2, 0.5f}, "e^x", 1e-6f);
  expect_close(pass.dx, {1, 2, 0.5f}, "d e^x", 1e-6f);

  LayerPtr base2 = make("Exp", "exp_param { base: 2 scale: 3 shift: 1 }");
  pass = run(*base2, {0.0f, 1.0f, -1.0f / 3});
  // 2^(1 + 3x): 2, 16, 1.
  expect_close(pass.y, {2, 16, 1}, "2^(1+3x)", 1e-6f);
  // y * 3 ln 2 with 3 ln 2 = 2.0794415.
  expect_close(pass.dx, {4.158883f, 33.271065f, 2.0794415f}, "d 2^(1+3x)", 1e-6f);

  // base -1 means e, also for the shift: e^(1 + x).
  LayerPtr shifted = make("Exp", "exp_param { shift: 1 }");
  pass = run(*shifted, {0.0f, -1.0f});
  expect_close(pass.y, {2.7182818f, 1.0f}, "e^(1+x)", 1e-6f);
}

TEST(ExpLayer, Gradient) {
  check_everywhere("Exp", "", true, gaussian);
  check_everywhere("Exp", "exp_param { base: 3 scale: 0.5 shift: -1 }", true, gaussian);
}

// ---- Log ----------------------------------------------------------------------------------

TEST(LogLayer, ForwardAndBackwardByHand) {
  const float e = std::exp(1.0f);
  LayerPtr natural = make("Log");
  Pass pass = run(*natural, {1.0f, e, 0.5f});
  expect_close(pass.y, {0, 1, -0.6931472f}, "ln x", 1e-6f);
  expect_close(pass.dx, {1, 1 / e, 2}, "d ln x", 1e-6f);

  LayerPtr base10 = make("Log", "log_param { base: 10 scale: 2 shift: 1 }");
  pass = run(*base10, {0.0f, 4.5f, 49.5f});
  // log10(1 + 2x): 0, 1, 2.
  expect_close(pass.y, {0, 1, 2}, "log10(1+2x)", 1e-6f);
  // 2 / (ln 10 (1 + 2x)) with 2 / ln 10 = 0.8685890.
  expect_close(pass.dx, {0.8685890f, 0.0868589f, 0.00868589f}, "d log10(1+2x)", 1e-6f);
}

TEST(LogLayer, Gradient) {
  check_everywhere("Log", "", true, positive);
  check_everywhere("Log", "log_param { base: 2 scale: 1.5 shift: 0.2 }", true, positive);
}

TEST(ExpAndLogLayers, BadBaseNamesTheLayer) {
  Blob bottom({3}), top;
  for (const char* type : {"Exp", "Log"}) {
    SCOPED_TRACE(type);
    const std::string p = std::string(type) == "Exp" ? "exp_param" : "log_param";
    LayerPtr layer = create_layer(
        layer_param(std::string("name: 'b' type: '") + type + "' " + p + " { base: -2 }"));
    const std::string message = setup_error(*layer, {&bottom}, {&top});
    EXPECT_TRUE(contains(message, std::string("layer b (") + type + ")"));
    EXPECT_TRUE(contains(message, "base must be positive (or -1 for e), got -2"));
  }
  LayerPtr log1 = create_layer(layer_param("name: 'l' type: 'Log' log_param { base: 1 }"));
  EXPECT_TRUE(contains(setup_error(*log1, {&bottom}, {&top}), "base 1 has no logarithm"));
}

// ---- Threshold ----------------------------------------------------------------------------

TEST(ThresholdLayer, ForwardByHandAndNoGradient) {
  Blob bottom, top;
  set_blob(bottom, {4}, {0.4f, 0.5f, 0.6f, -1.0f});
  LayerPtr layer = create_layer(
      layer_param("name: 'thr' type: 'Threshold' threshold_param { threshold: 0.5 }"));
  layer->setup({&bottom}, {&top});
  layer->forward({&bottom}, {&top});
  // Strictly greater than the threshold.
  expect_near(data_of(top), {0, 0, 1, 0});
  layer->backward({&top}, {false}, {&bottom});  // nothing asked, nothing done
  expect_error([&] { layer->backward({&top}, {true}, {&bottom}); },
               {"layer thr (Threshold)", "has no gradient"});
}

// ---- Clip ---------------------------------------------------------------------------------

TEST(ClipLayer, ForwardAndBackwardByHand) {
  LayerPtr layer = make("Clip", "clip_param { min: -1 max: 2 }");
  const Pass pass = run(*layer, {-3.0f, -1.0f, 0.5f, 2.0f, 2.5f});
  expect_near(pass.y, {-1, -1, 0.5f, 2, 2});
  // The gradient passes where min <= x <= max, the ends included.
  expect_near(pass.dx, {0, 1, 1, 1, 0});
}

TEST(ClipLayer, InPlaceUsesTheInput) {
  // In place the bottom holds the clipped values by backward time; the gradient must still
  // come from the input (an input of 5 clipped to 2 gets no gradient).
  Blob blob;
  set_blob(blob, {3}, {5.0f, 1.0f, -4.0f});
  LayerPtr layer = make("Clip", "clip_param { min: -1 max: 2 }");
  layer->setup({&blob}, {&blob});
  layer->forward({&blob}, {&blob});
  expect_near(data_of(blob), {2, 1, -1});
  cpu::set(3, 1.0f, blob.mutable_cpu_diff());
  layer->backward({&blob}, {true}, {&blob});
  expect_near(diff_of(blob), {0, 1, 0});
}

TEST(ClipLayer, GradientAndBadRange) {
  check_everywhere("Clip", "clip_param { min: -0.8 max: 1.1 }", true, gaussian, {-0.8f, 1.1f});
  Blob bottom({3}), top;
  LayerPtr layer =
      create_layer(layer_param("name: 'c' type: 'Clip' clip_param { min: 2 max: 1 }"));
  const std::string message = setup_error(*layer, {&bottom}, {&top});
  EXPECT_TRUE(contains(message, "layer c (Clip)"));
  EXPECT_TRUE(contains(message, "min 2 is greater than max 1"));
}

// ---- Swish --------------------------------------------------------------------------------

TEST(SwishLayer, ForwardAndBackwardByHand) {
  const float ln3 = std::log(3.0f);
  LayerPtr layer = make("Swish", "swish_param { beta: 2 }");
  const Pass pass = run(*layer, {0.0f, ln3 / 2});
  // s = sigmoid(2x): 1/2, sigmoid(ln 3) = 3/4. y = x s: 0, 0.75 ln3 / 2 = 0.4119796.
  expect_close(pass.y, {0, 0.4119796f}, "y", 1e-6f);
  // beta y + s (1 - beta y): 0 + 0.5; 0.8239592 + 0.75 * 0.1760408 = 0.9559898.
  expect_close(pass.dx, {0.5f, 0.9559898f}, "dx", 1e-6f);
}

TEST(SwishLayer, Gradient) {
  check_everywhere("Swish", "", true, gaussian);
  check_everywhere("Swish", "swish_param { beta: 1.7 }", true, gaussian);
}

// ---- In place equals out of place ---------------------------------------------------------

TEST(NeuronLayers, InPlaceMatchesSeparateTop) {
  const std::vector<std::pair<std::string, std::string>> layers = {
      {"ELU", "elu_param { alpha: 0.5 }"}, {"BNLL", ""},
      {"Power", "power_param { power: 1.5 scale: 0.5 shift: 2 }"}, {"Exp", "exp_param { base: 2 }"},
      {"Log", "log_param { shift: 3 }"}, {"Clip", "clip_param { min: -0.5 max: 0.5 }"},
      {"Swish", ""}, {"Threshold", ""}};
  for (const auto& [type, params] : layers) {
    SCOPED_TRACE(type);
    Blob bottom({2, 3, 5}), top, blob({2, 3, 5});
    fill_uniform(bottom, -1.0f, 1.0f);
    cpu::copy(bottom.count(), bottom.cpu_data(), blob.mutable_cpu_data());
    LayerPtr separate = make(type, params), same = make(type, params);
    separate->setup({&bottom}, {&top});
    same->setup({&blob}, {&blob});
    separate->forward({&bottom}, {&top});
    same->forward({&blob}, {&blob});
    EXPECT_EQ(data_of(top), data_of(blob));
    if (type == "Threshold") continue;
    same_random_diff(top, blob);
    separate->backward({&top}, {true}, {&bottom});
    same->backward({&blob}, {true}, {&blob});
    EXPECT_EQ(diff_of(bottom), diff_of(blob));
  }
}

// ---- PReLU --------------------------------------------------------------------------------

TEST(PReLULayer, DefaultSlopesAreAQuarter) {
  Blob bottom({2, 3, 2}), top;
  LayerPtr layer = make("PReLU");
  layer->setup({&bottom}, {&top});
  ASSERT_EQ(layer->blobs().size(), 1u);
  EXPECT_EQ(layer->blobs()[0]->shape(), std::vector<int>{3});
  expect_near(data_of(*layer->blobs()[0]), {0.25f, 0.25f, 0.25f});

  LayerPtr shared = make("PReLU", "prelu_param { channel_shared: true }");
  shared->setup({&bottom}, {&top});
  EXPECT_EQ(shared->blobs()[0]->num_axes(), 0);  // a scalar, as Caffe stores it
  expect_near(data_of(*shared->blobs()[0]), {0.25f});
}

TEST(PReLULayer, ForwardAndBackwardByHand) {
  Blob bottom, top;
  // One sample, channel 0: {-1, 2, -4}, channel 1: {3, -2, 0}.
  set_blob(bottom, {1, 2, 3}, {-1.0f, 2.0f, -4.0f, 3.0f, -2.0f, 0.0f});
  LayerPtr layer = make("PReLU", "prelu_param { filler { type: 'constant' value: 0.5 } }");
  layer->setup({&bottom}, {&top});
  set_blob(*layer->blobs()[0], {0.25f, 0.5f});
  layer->forward({&bottom}, {&top});
  expect_near(data_of(top), {-0.25f, 2, -1, 3, -1, 0});
  cpu::set(top.count(), 1.0f, top.mutable_cpu_diff());
  layer->blobs()[0]->set_diff(0);
  layer->backward({&top}, {true}, {&bottom});
  // 1 for x > 0, the channel's slope for x <= 0 (x = 0 included).
  expect_near(diff_of(bottom), {0.25f, 1, 0.25f, 1, 0.5f, 0.5f});
  // d/da_c = sum of dy * x over x <= 0: -1 - 4 = -5; -2 + 0 = -2.
  expect_near(diff_of(*layer->blobs()[0]), {-5, -2});
  // Parameter gradients accumulate.
  layer->backward({&top}, {false}, {&bottom});
  expect_near(diff_of(*layer->blobs()[0]), {-10, -4});
}

TEST(PReLULayer, SharedSlopeByHand) {
  Blob bottom, top;
  set_blob(bottom, {1, 2, 3}, {-1.0f, 2.0f, -4.0f, 3.0f, -2.0f, 0.0f});
  LayerPtr layer = make("PReLU", "prelu_param { channel_shared: true }");
  layer->setup({&bottom}, {&top});
  layer->forward({&bottom}, {&top});
  expect_near(data_of(top), {-0.25f, 2, -1, 3, -0.5f, 0});
  cpu::set(top.count(), 2.0f, top.mutable_cpu_diff());
  layer->blobs()[0]->set_diff(0);
  layer->backward({&top}, {true}, {&bottom});
  expect_near(diff_of(bottom), {0.5f, 2, 0.5f, 2, 0.5f, 0.5f});
  // 2 * (-1 - 4 - 2 + 0).
  expect_near(diff_of(*layer->blobs()[0]), {-14});
}

TEST(PReLULayer, InPlaceByHand) {
  Blob blob;
  set_blob(blob, {1, 2, 2}, {-2.0f, 1.0f, -1.0f, 4.0f});
  LayerPtr layer = make("PReLU");
  layer->setup({&blob}, {&blob});
  layer->forward({&blob}, {&blob});
  expect_near(data_of(blob), {-0.5f, 1, -0.25f, 4});
  cpu::set(blob.count(), 1.0f, blob.mutable_cpu_diff());
  layer->blobs()[0]->set_diff(0);
  layer->backward({&blob}, {true}, {&blob});
  expect_near(diff_of(blob), {0.25f, 1, 0.25f, 1});
  // From the saved input, not the overwritten bottom: -2 and -1.
  expect_near(diff_of(*layer->blobs()[0]), {-2, -1});
}

TEST(PReLULayer, GradientOfInputsAndSlopes) {
  GradientCheckOptions options;
  options.kink = 0;
  options.kink_range = 0.05f;
  for (const char* shared : {"false", "true"}) {
    for (const std::vector<int>& shape :
         std::vector<std::vector<int>>{{2, 3, 4, 5}, {3, 4}, {2, 5, 3}}) {
      for (bool in_place : {false, true}) {
        SCOPED_TRACE(std::string("channel_shared ") + shared + (in_place ? " in place" : "") +
                     " shape " + shape_string(shape));
        Blob bottom(shape), top;
        fill_gaussian(bottom);
        LayerPtr layer = make("PReLU", std::string("prelu_param { channel_shared: ") + shared +
                                           " filler { type: 'uniform' min: -0.5 max: 0.5 } }");
        check_gradient(*layer, {&bottom}, {in_place ? &bottom : &top}, options);
      }
    }
  }
}

TEST(PReLULayer, BadSlopesAndShapesNameTheLayer) {
  Blob bottom({2, 2, 3}), top;
  // Three loaded slopes for two channels.
  LayerPtr loaded = create_layer(layer_param(
      "name: 'prelu1' type: 'PReLU' blobs { shape { dim: 3 } data: 1 data: 2 data: 3 }"));
  std::string message = setup_error(*loaded, {&bottom}, {&top});
  EXPECT_TRUE(contains(message, "layer prelu1 (PReLU)"));
  EXPECT_TRUE(contains(message, "has 3 slopes, but the bottom has 2 channels"));

  LayerPtr shared = create_layer(layer_param(
      "name: 'prelu2' type: 'PReLU' prelu_param { channel_shared: true } "
      "blobs { shape { dim: 2 } data: 1 data: 2 }"));
  EXPECT_TRUE(contains(setup_error(*shared, {&bottom}, {&top}),
                       "has 2 slopes, but channel_shared needs 1"));

  Blob flat({5});
  LayerPtr one_axis = make("PReLU");
  EXPECT_TRUE(contains(setup_error(*one_axis, {&flat}, {&top}), "at least 2 axes"));

  // A later bottom with another channel count.
  LayerPtr layer = make("PReLU");
  layer->setup({&bottom}, {&top});
  Blob wider({2, 4, 3});
  expect_error([&] { layer->forward({&wider}, {&top}); },
               {"has 2 slopes, but the bottom has 4 channels"});
}

}  // namespace
}  // namespace engine
