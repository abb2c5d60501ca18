// Solver update rules, regularisation, gradient clipping, iter_size and a small training run,
// checked against values worked out by hand (the arithmetic is in the comments).
//
// Most tests drive a net whose only learnable parameter is a 1x2 weight: they write the
// gradient into its diff themselves and call apply_update(), so each step's arithmetic is
// visible. apply_update() does not advance the iteration counter; that matters only to Adam,
// whose bias correction uses t = iter + 1, so the Adam tests run the real loop (step(1)) and
// replace the computed gradient from a gradients-ready callback.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "core/context.hpp"
#include "core/errors.hpp"
#include "gradient_checker.hpp"
#include "io/prototxt.hpp"
#include "solvers/solver.hpp"

namespace engine {
namespace {

using testing::contains;
using testing::error_of;

constexpr float kTolerance = 1e-6f;

// A 1x2 weight w (InnerProduct, one output, no bias) on a zero input; the output is the loss,
// so a forward-backward is cheap and finite. The tests overwrite the gradient anyway.
const char* const kTinyNet = R"(
  net_param {
    name: 'tiny'
    layer { name: 'x' type: 'Input' top: 'x' input_param { shape { dim: 1 dim: 2 } } }
    layer { name: 'ip' type: 'InnerProduct' bottom: 'x' top: 'y' loss_weight: 1
            inner_product_param { num_output: 1 bias_term: false } }
  }
)";

SolverParameter solver_param(const std::string& text) {
  SolverParameter param;
  parse_text(text, "<test solver>", &param);
  return param;
}

// A solver on kTinyNet with the given settings (lr_policy fixed) and weights w.
std::unique_ptr<Solver> tiny_solver(const std::string& settings, const std::vector<float>& w) {
  auto solver = make_solver(solver_param(std::string(kTinyNet) + " lr_policy: 'fixed' " + settings));
  Blob& weight = *solver->net().learnable_params().at(0);
  EXPECT_EQ(weight.count(), 2);
  std::copy(w.begin(), w.end(), weight.mutable_cpu_data());
  return solver;
}

void set_diff(Blob& blob, const std::vector<float>& values) {
  ASSERT_EQ(static_cast<int64_t>(values.size()), blob.count());
  std::copy(values.begin(), values.end(), blob.mutable_cpu_diff());
}

// Sets the gradient of the solver's parameters (in learnable_params() order), then updates.
void apply_gradient(Solver& solver, const std::vector<std::vector<float>>& gradients) {
  const auto& params = solver.net().learnable_params();
  ASSERT_EQ(params.size(), gradients.size());
  for (size_t i = 0; i < params.size(); ++i) set_diff(*params[i], gradients[i]);
  solver.apply_update();
}

void apply_gradient(Solver& solver, const std::vector<float>& gradient) {
  apply_gradient(solver, std::vector<std::vector<float>>{gradient});
}

// Runs one real iteration (step(1): forward-backward, callbacks, update, ++iter) with the
// gradient of the first parameter replaced by `next` before the update.
class GradientFeeder {
 public:
  explicit GradientFeeder(Solver& solver) : solver_(solver) {
    solver.add_gradients_ready_callback(
        [this] { set_diff(*solver_.net().learnable_params()[0], next_); });
  }
  void step(const std::vector<float>& gradient) {
    next_ = gradient;
    solver_.step(1);
  }

 private:
  Solver& solver_;
  std::vector<float> next_;
};

#define EXPECT_WEIGHTS(solver, w0, w1)                                         \
  do {                                                                         \
    const float* w_ = (solver).net().learnable_params()[0]->cpu_data();        \
    EXPECT_NEAR(w_[0], (w0), kTolerance);                                      \
    EXPECT_NEAR(w_[1], (w1), kTolerance);                                      \
  } while (0)

// ---- the rules --------------------------------------------------------------------------------

// Gradients g1 = [1, 2], g2 = [-1, 0.5], g3 = [2, -1] from w = [1, -2], rate 0.1, momentum 0.9.
TEST(SgdSolver, MomentumOverThreeSteps) {
  auto solver = tiny_solver("type: 'SGD' base_lr: 0.1 momentum: 0.9", {1, -2});
  // v = 0.1 g1 = [0.1, 0.2]; w = [1 - 0.1, -2 - 0.2] = [0.9, -2.2]
  apply_gradient(*solver, {1, 2});
  EXPECT_WEIGHTS(*solver, 0.9f, -2.2f);
  // v = 0.9 [0.1, 0.2] + 0.1 [-1, 0.5] = [0.09 - 0.1, 0.18 + 0.05] = [-0.01, 0.23]
  // w = [0.9 + 0.01, -2.2 - 0.23] = [0.91, -2.43]
  apply_gradient(*solver, {-1, 0.5f});
  EXPECT_WEIGHTS(*solver, 0.91f, -2.43f);
  // v = 0.9 [-0.01, 0.23] + 0.1 [2, -1] = [-0.009 + 0.2, 0.207 - 0.1] = [0.191, 0.107]
  // w = [0.91 - 0.191, -2.43 - 0.107] = [0.719, -2.537]
  apply_gradient(*solver, {2, -1});
  EXPECT_WEIGHTS(*solver, 0.719f, -2.537f);
}

// The same gradients: the step is (1 + m) v_new - m v_old.
TEST(NesterovSolver, LookAheadOverThreeSteps) {
  auto solver = tiny_solver("type: 'Nesterov' base_lr: 0.1 momentum: 0.9", {1, -2});
  // v = [0.1, 0.2]; step = 1.9 [0.1, 0.2] - 0 = [0.19, 0.38]; w = [0.81, -2.38]
  apply_gradient(*solver, {1, 2});
  EXPECT_WEIGHTS(*solver, 0.81f, -2.38f);
  // v = [-0.01, 0.23]; step = 1.9 [-0.01, 0.23] - 0.9 [0.1, 0.2]
  //   = [-0.019 - 0.09, 0.437 - 0.18] = [-0.109, 0.257]; w = [0.919, -2.637]
  apply_gradient(*solver, {-1, 0.5f});
  EXPECT_WEIGHTS(*solver, 0.919f, -2.637f);
  // v = [0.191, 0.107]; step = 1.9 [0.191, 0.107] - 0.9 [-0.01, 0.23]
  //   = [0.3629 + 0.009, 0.2033 - 0.207] = [0.3719, -0.0037]; w = [0.5471, -2.6333]
  apply_gradient(*solver, {2, -1});
  EXPECT_WEIGHTS(*solver, 0.5471f, -2.6333f);
}

// delta 1 makes its place visible: step = rate g / (sqrt(h) + delta), outside the root.
TEST(AdaGradSolver, AccumulatesSquaresOverThreeSteps) {
  auto solver = tiny_solver("type: 'AdaGrad' base_lr: 0.1 delta: 1", {1, -2});
  // h = [9, 16]; step = 0.1 [3 / (3 + 1), 4 / (4 + 1)] = [0.075, 0.08]; w = [0.925, -2.08]
  apply_gradient(*solver, {3, 4});
  EXPECT_WEIGHTS(*solver, 0.925f, -2.08f);
  // h = [9 + 16, 16 + 9] = [25, 25]; step = 0.1 [4 / 6, -3 / 6] = [0.0666667, -0.05]
  // w = [0.8583333, -2.03]
  apply_gradient(*solver, {4, -3});
  EXPECT_WEIGHTS(*solver, 0.8583333f, -2.03f);
  // h = [25 + 144, 25] = [169, 25]; step = 0.1 [12 / 14, 0] = [0.0857143, 0]
  // w = [0.8583333 - 0.0857143, -2.03] = [0.7726190, -2.03]
  apply_gradient(*solver, {12, 0});
  EXPECT_WEIGHTS(*solver, 0.7726190f, -2.03f);
}

// rms_decay 0.75: h = 0.75 h + 0.25 g^2; step = rate g / (sqrt(h) + delta), delta 1.
TEST(RmsPropSolver, DecayingSquaresOverThreeSteps) {
  auto solver = tiny_solver("type: 'RMSProp' base_lr: 0.1 rms_decay: 0.75 delta: 1", {1, -2});
  // h = 0.25 [4, 16] = [1, 4]; step = 0.1 [2 / 2, -4 / 3] = [0.1, -0.1333333]
  // w = [0.9, -1.8666667]
  apply_gradient(*solver, {2, -4});
  EXPECT_WEIGHTS(*solver, 0.9f, -1.8666667f);
  // h = 0.75 [1, 4] + 0.25 [1, 4] = [1, 4]; step = 0.1 [1 / 2, 2 / 3] = [0.05, 0.0666667]
  // w = [0.85, -1.9333333]
  apply_gradient(*solver, {1, 2});
  EXPECT_WEIGHTS(*solver, 0.85f, -1.9333333f);
  // h = 0.75 [1, 4] + 0.25 [9, 0] = [3, 3]; step = 0.1 [3 / (1.7320508 + 1), 0]
  //   = [0.1098076, 0]; w = [0.7401924, -1.9333333]
  apply_gradient(*solver, {3, 0});
  EXPECT_WEIGHTS(*solver, 0.7401924f, -1.9333333f);
}

// momentum 0.5, delta 1, rate 0.5. h: gradient squares, s: update squares, both starting at 0.
//   h = 0.5 h + 0.5 g^2; u = g sqrt((s + 1) / (h + 1)); s = 0.5 s + 0.5 u^2; w -= 0.5 u
// The rate scales the step only: s accumulates the unscaled u.
TEST(AdaDeltaSolver, TwoHistoriesOverTwoSteps) {
  auto solver = tiny_solver("type: 'AdaDelta' base_lr: 0.5 momentum: 0.5 delta: 1", {1, -2});
  // w0, g = 2:  h = 2;   u = 2 sqrt(1 / 3) = 1.1547005;  s = 0.5 * 4/3 = 2/3
  //             w0 = 1 - 0.5 * 1.1547005 = 0.4226497
  // w1, g = -1: h = 0.5; u = -sqrt(1 / 1.5) = -0.8164966; s = 0.5 * 2/3 = 1/3
  //             w1 = -2 + 0.5 * 0.8164966 = -1.5917517
  apply_gradient(*solver, {2, -1});
  EXPECT_WEIGHTS(*solver, 0.4226497f, -1.5917517f);
  // w0, g = 1:  h = 1 + 0.5 = 1.5;     u = sqrt((2/3 + 1) / 2.5) = sqrt(2/3) = 0.8164966
  //             w0 = 0.4226497 - 0.4082483 = 0.0144014
  // w1, g = 3:  h = 0.25 + 4.5 = 4.75; u = 3 sqrt((1/3 + 1) / 5.75) = 3 sqrt(16/69) = 1.4446302
  //             w1 = -1.5917517 - 0.7223151 = -2.3140668
  apply_gradient(*solver, {1, 3});
  EXPECT_WEIGHTS(*solver, 0.0144014f, -2.3140668f);
}

// beta1 0.5, beta2 0.75, rate 0.1, epsilon 1e-8 (below the tolerance: it changes each step by
// about 1e-9). m = 0.5 m + 0.5 g; v = 0.75 v + 0.25 g^2;
//   step = 0.1 c_t m / sqrt(v), c_t = sqrt(1 - 0.75^t) / (1 - 0.5^t), t = iter + 1.
TEST(AdamSolver, BiasCorrectionAtStepsOneTwoThree) {
  auto solver = tiny_solver("type: 'Adam' base_lr: 0.1 momentum: 0.5 momentum2: 0.75", {1, -2});
  GradientFeeder feed(*solver);
  // t = 1: c = sqrt(0.25) / 0.5 = 1. g = [1, 2]: m = [0.5, 1], v = [0.25, 1]
  //   step = 0.1 [0.5 / 0.5, 1 / 1] = [0.1, 0.1]; w = [0.9, -2.1]
  feed.step({1, 2});
  EXPECT_EQ(solver->iter(), 1);
  EXPECT_WEIGHTS(*solver, 0.9f, -2.1f);
  // t = 2: c = sqrt(1 - 0.5625) / 0.75 = sqrt(0.4375) / 0.75 = 0.8819171. g = [3, -2]:
  //   m = [0.25 + 1.5, 0.5 - 1] = [1.75, -0.5]; v = [0.1875 + 2.25, 0.75 + 1] = [2.4375, 1.75]
  //   step0 = 0.1 * 0.8819171 * 1.75 / 1.5612495 = 0.0988538
  //   step1 = 0.1 * (sqrt(1.75) / 1.5) * -0.5 / sqrt(1.75) = -0.1 / 3 = -0.0333333
  //   w = [0.9 - 0.0988538, -2.1 + 0.0333333] = [0.8011462, -2.0666667]
  feed.step({3, -2});
  EXPECT_WEIGHTS(*solver, 0.8011462f, -2.0666667f);
  // t = 3: c = sqrt(1 - 27/64) / (1 - 1/8) = sqrt(37) / 7 = 0.8689661. g = [-1, 4]:
  //   m = [0.875 - 0.5, -0.25 + 2] = [0.375, 1.75]
  //   v = [1.828125 + 0.25, 1.3125 + 4] = [2.078125, 5.3125] = [133/64, 85/16]
  //   step0 = 0.1 (sqrt(37) / 7) 0.375 / (sqrt(133) / 8) = 0.1 (3/7) sqrt(37/133) = 0.0226047
  //   step1 = 0.1 (sqrt(37) / 7) 1.75 / (sqrt(85) / 4) = 0.1 sqrt(37/85) = 0.0659768
  //   w = [0.8011462 - 0.0226047, -2.0666667 - 0.0659768] = [0.7785415, -2.1326435]
  feed.step({-1, 4});
  EXPECT_WEIGHTS(*solver, 0.7785415f, -2.1326435f);
}

// With Caffe's defaults (beta1 0.9, beta2 0.999) the first step is rate * sign(g) whatever g's
// size: m = 0.1 g, sqrt(v) = sqrt(0.001) |g|, c_1 = sqrt(0.001) / 0.1, so the step is
// rate (sqrt(0.001) / 0.1) 0.1 g / (sqrt(0.001) |g|) = rate sign(g) (epsilon aside, ~1e-7 g).
// apply_update() without step() stays at t = 1: a second call repeats the same correction.
TEST(AdamSolver, FirstStepIsRateTimesSignWithDefaults) {
  auto solver = tiny_solver("type: 'Adam' base_lr: 0.01", {1, -2});
  apply_gradient(*solver, {250, -0.5f});
  EXPECT_EQ(solver->iter(), 0);
  EXPECT_WEIGHTS(*solver, 0.99f, -1.99f);
}

// Adam keeps two history blobs per parameter (m, then v); a snapshot holds both and a restored
// solver continues exactly: the same third step as BiasCorrectionAtStepsOneTwoThree.
TEST(AdamSolver, SnapshotHoldsBothHistoriesAndResumes) {
  const std::string settings = "type: 'Adam' base_lr: 0.1 momentum: 0.5 momentum2: 0.75 "
                               "snapshot_prefix: '" + ::testing::TempDir() + "adam_resume'";
  auto first = tiny_solver(settings, {1, -2});
  GradientFeeder feed_first(*first);
  feed_first.step({1, 2});
  feed_first.step({3, -2});
  first->snapshot();
  const std::string state_file = first->snapshot_filename(2, ".solverstate");
  SolverState state;
  read_binary_file(state_file, &state);
  EXPECT_EQ(state.iter(), 2);
  ASSERT_EQ(state.history_size(), 2);
  EXPECT_FLOAT_EQ(state.history(0).data(0), 1.75f);   // m of w0
  EXPECT_FLOAT_EQ(state.history(1).data(1), 1.75f);   // v of w1

  auto resumed = tiny_solver(settings, {0, 0});
  resumed->restore(state_file);
  EXPECT_EQ(resumed->iter(), 2);
  EXPECT_WEIGHTS(*resumed, 0.8011462f, -2.0666667f);
  GradientFeeder feed_resumed(*resumed);
  feed_resumed.step({-1, 4});
  EXPECT_WEIGHTS(*resumed, 0.7785415f, -2.1326435f);
}

// ---- regularisation ---------------------------------------------------------------------------

// A 1x3 weight w = [1, -2, 0] (lr_mult 2, decay_mult 0.5) and a bias b = 3 (lr_mult 3,
// decay_mult 2); plain SGD, rate 0.1, weight_decay 0.1. Gradients: weight [1, 1, 1], bias [-1].
std::unique_ptr<Solver> regularized_solver(const std::string& type) {
  auto solver = make_solver(solver_param(R"(
    net_param {
      layer { name: 'x' type: 'Input' top: 'x' input_param { shape { dim: 1 dim: 3 } } }
      layer { name: 'ip' type: 'InnerProduct' bottom: 'x' top: 'y' loss_weight: 1
              param { lr_mult: 2 decay_mult: 0.5 } param { lr_mult: 3 decay_mult: 2 }
              inner_product_param { num_output: 1 } }
    }
    type: 'SGD' lr_policy: 'fixed' base_lr: 0.1 weight_decay: 0.1
    regularization_type: ')" + type + "'"));
  const auto& params = solver->net().learnable_params();
  EXPECT_EQ(params.size(), 2u);
  std::vector<float> w = {1, -2, 0}, b = {3};
  std::copy(w.begin(), w.end(), params[0]->mutable_cpu_data());
  std::copy(b.begin(), b.end(), params[1]->mutable_cpu_data());
  return solver;
}

TEST(Regularization, L2UsesEachParametersMultipliers) {
  auto solver = regularized_solver("L2");
  apply_gradient(*solver, {{1, 1, 1}, {-1}});
  // weight: decay 0.1 * 0.5 = 0.05; diff = [1 + 0.05, 1 - 0.1, 1 + 0] = [1.05, 0.9, 1]
  //   step = 0.1 * 2 * diff = [0.21, 0.18, 0.2]; w = [0.79, -2.18, -0.2]
  const float* w = solver->net().learnable_params()[0]->cpu_data();
  EXPECT_NEAR(w[0], 0.79f, kTolerance);
  EXPECT_NEAR(w[1], -2.18f, kTolerance);
  EXPECT_NEAR(w[2], -0.2f, kTolerance);
  // bias: decay 0.1 * 2 = 0.2; diff = -1 + 0.2 * 3 = -0.4; step = 0.1 * 3 * -0.4 = -0.12
  EXPECT_NEAR(solver->net().learnable_params()[1]->cpu_data()[0], 3.12f, kTolerance);
}

TEST(Regularization, L1AddsDecayTimesSign) {
  auto solver = regularized_solver("L1");
  apply_gradient(*solver, {{1, 1, 1}, {-1}});
  // weight: diff = [1 + 0.05, 1 - 0.05, 1 + 0.05 * sign(0) = 1] = [1.05, 0.95, 1]
  //   step = 0.2 diff = [0.21, 0.19, 0.2]; w = [0.79, -2.19, -0.2]
  const float* w = solver->net().learnable_params()[0]->cpu_data();
  EXPECT_NEAR(w[0], 0.79f, kTolerance);
  EXPECT_NEAR(w[1], -2.19f, kTolerance);
  EXPECT_NEAR(w[2], -0.2f, kTolerance);
  // bias: diff = -1 + 0.2 * 1 = -0.8; step = 0.3 * -0.8 = -0.24; b = 3.24
  EXPECT_NEAR(solver->net().learnable_params()[1]->cpu_data()[0], 3.24f, kTolerance);
}

TEST(Regularization, UnknownTypeIsNamed) {
  auto solver = regularized_solver("L3");
  const std::string message = error_of([&] { apply_gradient(*solver, {{1, 1, 1}, {-1}}); });
  EXPECT_TRUE(contains(message, "unknown regularization_type 'L3'"));
  EXPECT_TRUE(contains(message, "known: L1, L2"));
}

// ---- gradient clipping ------------------------------------------------------------------------

// Weight w = [1, -2] and bias b = 3 with gradients [2, 4] and [4]: the norm over all parameters
// is sqrt(4 + 16 + 16) = 6. Plain SGD with rate 1, so w -= diff.
std::unique_ptr<Solver> clipping_solver(float threshold) {
  auto solver = make_solver(solver_param(R"(
    net_param {
      layer { name: 'x' type: 'Input' top: 'x' input_param { shape { dim: 1 dim: 2 } } }
      layer { name: 'ip' type: 'InnerProduct' bottom: 'x' top: 'y' loss_weight: 1
              inner_product_param { num_output: 1 } }
    }
    type: 'SGD' lr_policy: 'fixed' base_lr: 1 clip_gradients: )" +
                                         std::to_string(threshold)));
  const auto& params = solver->net().learnable_params();
  std::vector<float> w = {1, -2};
  std::copy(w.begin(), w.end(), params[0]->mutable_cpu_data());
  params[1]->mutable_cpu_data()[0] = 3;
  apply_gradient(*solver, {{2, 4}, {4}});
  return solver;
}

TEST(ClipGradients, AboveThresholdScalesAllParametersToIt) {
  // 6 > 3: every gradient times 3 / 6 = [1, 2] and [2]; w = [0, -4], b = 1
  auto solver = clipping_solver(3);
  EXPECT_WEIGHTS(*solver, 0.0f, -4.0f);
  EXPECT_NEAR(solver->net().learnable_params()[1]->cpu_data()[0], 1.0f, kTolerance);
}

TEST(ClipGradients, AtOrBelowThresholdLeavesGradientsAlone) {
  for (float threshold : {6.0f, 6.5f}) {
    // w = [1 - 2, -2 - 4] = [-1, -6]; b = 3 - 4 = -1
    auto solver = clipping_solver(threshold);
    EXPECT_WEIGHTS(*solver, -1.0f, -6.0f);
    EXPECT_NEAR(solver->net().learnable_params()[1]->cpu_data()[0], -1.0f, kTolerance);
  }
}

// ---- iter_size --------------------------------------------------------------------------------

// Two samples (3 features, labels among 3 classes) in a batch of 2 with iter_size 2 see the same
// samples twice per iteration; their accumulated gradient divided by 2 equals the gradient of the
// batch of 4 that holds them twice (SoftmaxWithLoss averages over the batch, VALID
// normalisation). Momentum and weight decay act on the normalised gradient in both.
std::vector<float> train_three_steps(int batch, int iter_size) {
  const std::string net = R"(
    net_param {
      layer { name: 'in' type: 'Input' top: 'data' top: 'label'
              input_param { shape { dim: )" + std::to_string(batch) + R"( dim: 3 }
                            shape { dim: )" + std::to_string(batch) + R"( } } }
      layer { name: 'ip' type: 'InnerProduct' bottom: 'data' top: 'score'
              inner_product_param { num_output: 3 } }
      layer { name: 'loss' type: 'SoftmaxWithLoss' bottom: 'score' bottom: 'label' top: 'loss' }
    }
    type: 'SGD' lr_policy: 'fixed' base_lr: 0.5 momentum: 0.9 weight_decay: 0.01 iter_size: )";
  auto solver = make_solver(solver_param(net + std::to_string(iter_size)));
  Net& train = solver->net();
  const std::vector<float> samples = {0.5f, -1.0f, 2.0f, 1.5f, 0.25f, -0.75f};
  const std::vector<float> labels = {2, 0};
  float* data = train.blob_by_name("data")->mutable_cpu_data();
  float* label = train.blob_by_name("label")->mutable_cpu_data();
  for (int n = 0; n < batch; ++n) {
    std::copy(samples.begin() + 3 * (n % 2), samples.begin() + 3 * (n % 2) + 3, data + 3 * n);
    label[n] = labels[n % 2];
  }
  Blob& weight = *train.learnable_params()[0];
  for (int64_t i = 0; i < weight.count(); ++i) weight.mutable_cpu_data()[i] = 0.1f * (i % 4) - 0.15f;
  solver->step(3);
  std::vector<float> result = testing::data_of(weight);
  const std::vector<float> bias = testing::data_of(*train.learnable_params()[1]);
  result.insert(result.end(), bias.begin(), bias.end());
  return result;
}

TEST(IterSize, AccumulatingTwiceEqualsTheDoubledBatch) {
  const std::vector<float> accumulated = train_three_steps(2, 2);
  const std::vector<float> doubled = train_three_steps(4, 1);
  ASSERT_EQ(accumulated.size(), doubled.size());
  const std::vector<float> untrained = {-0.15f, -0.05f, 0.05f, 0.15f, -0.15f, -0.05f,
                                        0.05f, 0.15f, -0.15f, 0, 0, 0};
  double moved = 0;
  for (size_t i = 0; i < accumulated.size(); ++i) {
    EXPECT_NEAR(accumulated[i], doubled[i], 1e-6) << "parameter element " << i;
    moved += std::fabs(accumulated[i] - untrained[i]);
  }
  EXPECT_GT(moved, 0.1) << "training should have moved the parameters";
}

// ---- a small training run ---------------------------------------------------------------------

// Logistic regression (two-class softmax) on 64 separable samples of 5 features.
//
// Why loss < 0.1 after 300 iterations: every sample lies at distance >= 1.5 from the separating
// plane (unit normal u), so the parameters u' = (+-c/2 u, 0 bias) for the two classes give each
// sample a logit gap >= 1.5 c; with c = 2, the loss is at most log(1 + e^-3) = 0.049, and
// ||u'||^2 = c^2 / 2 = 2. Plain gradient descent from zero with a rate eta <= 1/L guarantees
// loss(T) <= loss(u') + ||u'||^2 / (2 eta T) = 0.049 + 2 / (2 * 0.1 * 300) = 0.082. Here rate
// 0.01 with momentum 0.9 behaves, once the velocity builds up, like plain descent with rate
// 0.01 / (1 - 0.9) = 0.1. The smoothness L is at most 0.5 (the two-class softmax curvature) times
// the largest eigenvalue of E[x x^T] with the bias input: about 1 across u, and along u
// E[(|z| + 1.5)^2] = 1 + 3 E|z| + 2.25 = 5.6, plus at most 1 for the bias, so L <= 3.3 and
// 0.1 <= 1/L. Measured: 0.693 at the start, 0.0078 after 100 iterations, 0.0037 after 300.
TEST(Training, LogisticRegressionConverges) {
  constexpr int kSamples = 64, kFeatures = 5;
  auto solver = make_solver(solver_param(R"(
    net_param {
      layer { name: 'in' type: 'Input' top: 'data' top: 'label'
              input_param { shape { dim: 64 dim: 5 } shape { dim: 64 } } }
      layer { name: 'ip' type: 'InnerProduct' bottom: 'data' top: 'score'
              inner_product_param { num_output: 2 weight_filler { type: 'constant' value: 0 } } }
      layer { name: 'loss' type: 'SoftmaxWithLoss' bottom: 'score' bottom: 'label' top: 'loss' }
    }
    type: 'SGD' lr_policy: 'fixed' base_lr: 0.01 momentum: 0.9
  )"));
  Net& net = solver->net();
  Blob& data = *net.blob_by_name("data");
  Context::set_seed(7);
  testing::fill_gaussian(data);
  // Move each sample 1.5 further from the plane u.x = 0 on its own side, then label by side.
  const float direction[kFeatures] = {1, -2, 0.5f, 1.5f, -1};
  float norm = 0;
  for (float d : direction) norm += d * d;
  norm = std::sqrt(norm);
  float* x = data.mutable_cpu_data();
  float* label = net.blob_by_name("label")->mutable_cpu_data();
  for (int n = 0; n < kSamples; ++n) {
    float side = 0;
    for (int k = 0; k < kFeatures; ++k) side += x[n * kFeatures + k] * direction[k] / norm;
    const float sign = side >= 0 ? 1.0f : -1.0f;
    for (int k = 0; k < kFeatures; ++k) x[n * kFeatures + k] += sign * 1.5f * direction[k] / norm;
    label[n] = side >= 0 ? 1.0f : 0.0f;
  }

  // average_loss 1: smoothed_loss() is the loss of the iteration just run, before its update.
  std::vector<float> losses;
  for (int i = 0; i < 300; ++i) {
    solver->step(1);
    losses.push_back(solver->smoothed_loss());
  }
  const float final_loss = net.forward();
  // Zero weights: both classes 0.5, loss log 2.
  EXPECT_NEAR(losses[0], std::log(2.0f), 1e-6);
  for (int i = 10; i < 300; i += 10) {
    EXPECT_LT(losses[i], losses[i - 10]) << "loss at iteration " << i;
  }
  EXPECT_LT(final_loss, 0.1f);
}

// ---- construction and legacy files ------------------------------------------------------------

std::string write_temp_file(const std::string& name, const std::string& contents) {
  const std::string path = ::testing::TempDir() + name;
  std::ofstream(path) << contents;
  return path;
}

TEST(ReadSolverFile, UpgradesLegacySolverType) {
  const std::string path = write_temp_file("legacy_nesterov.prototxt",
                                           std::string(kTinyNet) + R"(
    solver_type: NESTEROV base_lr: 0.1 momentum: 0.9 lr_policy: 'fixed'
  )");
  const SolverParameter param = read_solver_file(path);
  EXPECT_EQ(param.type(), "Nesterov");
  EXPECT_FALSE(param.has_solver_type());
  // And it is a Nesterov solver: the first step is (1 + 0.9) * 0.1 * g, not SGD's 0.1 * g.
  auto solver = make_solver(param);
  std::fill_n(solver->net().learnable_params()[0]->mutable_cpu_data(), 2, 0.0f);
  apply_gradient(*solver, {1, -1});
  EXPECT_WEIGHTS(*solver, -0.19f, 0.19f);
}

TEST(ReadSolverFile, ConflictingSolverTypeAndTypeAreRejected) {
  const std::string path =
      write_temp_file("legacy_conflict.prototxt", "solver_type: NESTEROV type: 'Adam'");
  const std::string message = error_of([&] { read_solver_file(path); });
  EXPECT_TRUE(contains(message, path));
  EXPECT_TRUE(contains(message, "solver_type NESTEROV and type 'Adam' disagree"));
}

TEST(MakeSolver, UnknownTypeListsTheKnownOnes) {
  const std::string message =
      error_of([] { make_solver(solver_param(std::string(kTinyNet) + "type: 'Lion'")); });
  EXPECT_TRUE(contains(message, "unknown solver type 'Lion'"));
  EXPECT_TRUE(contains(message, "known: SGD Nesterov AdaGrad RMSProp AdaDelta Adam"));
}

TEST(MakeSolver, AdaGradAndRmsPropRejectMomentum) {
  for (const std::string type : {"AdaGrad", "RMSProp"}) {
    const std::string message = error_of([&] {
      make_solver(solver_param(std::string(kTinyNet) + "lr_policy: 'fixed' momentum: 0.9 type: '" +
                               type + "'"),
                  "my_solver.prototxt");
    });
    EXPECT_TRUE(contains(message, "my_solver.prototxt: momentum cannot be used with " + type));
  }
}

TEST(MakeSolver, UnknownLrPolicyFailsAtConstruction) {
  const std::string message = error_of(
      [] { make_solver(solver_param(std::string(kTinyNet) + "lr_policy: 'cosine'")); });
  EXPECT_TRUE(contains(message, "unknown lr_policy 'cosine'"));
}

}  // namespace
}  // namespace engine
