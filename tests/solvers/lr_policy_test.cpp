// Learning-rate policies at chosen iterations, values worked out by hand; the plateau policy on
// sequences of observed values; the errors for bad settings.
#include <gtest/gtest.h>

#include <string>

#include "core/errors.hpp"
#include "gradient_checker.hpp"
#include "io/prototxt.hpp"
#include "solvers/lr_policy.hpp"
#include "solvers/solver.hpp"

namespace engine {
namespace {

using testing::contains;
using testing::error_of;

SolverParameter policy(const std::string& text) {
  SolverParameter param;
  parse_text(text, "<test solver>", &param);
  return param;
}

// The rate at `iteration` from a fresh state (the policies other than multistep and plateau keep
// none).
float rate_at(const SolverParameter& param, int iteration) {
  LrState state;
  return learning_rate(param, iteration, &state);
}

TEST(LrPolicy, Fixed) {
  const SolverParameter param = policy("lr_policy: 'fixed' base_lr: 0.01 gamma: 0.5 stepsize: 1");
  EXPECT_FLOAT_EQ(rate_at(param, 0), 0.01f);
  EXPECT_FLOAT_EQ(rate_at(param, 5000), 0.01f);
}

// base 0.1 * 0.5 ^ floor(iter / 10)
TEST(LrPolicy, Step) {
  const SolverParameter param = policy("lr_policy: 'step' base_lr: 0.1 gamma: 0.5 stepsize: 10");
  EXPECT_FLOAT_EQ(rate_at(param, 0), 0.1f);
  EXPECT_FLOAT_EQ(rate_at(param, 9), 0.1f);     // floor(0.9) = 0
  EXPECT_FLOAT_EQ(rate_at(param, 10), 0.05f);   // 0.1 * 0.5
  EXPECT_FLOAT_EQ(rate_at(param, 25), 0.025f);  // 0.1 * 0.25
}

// base 0.5 * 0.9 ^ iter
TEST(LrPolicy, Exp) {
  const SolverParameter param = policy("lr_policy: 'exp' base_lr: 0.5 gamma: 0.9");
  EXPECT_FLOAT_EQ(rate_at(param, 0), 0.5f);
  EXPECT_FLOAT_EQ(rate_at(param, 1), 0.45f);
  EXPECT_FLOAT_EQ(rate_at(param, 3), 0.3645f);  // 0.5 * 0.729
}

// base (1 + gamma iter) ^ -power
TEST(LrPolicy, Inv) {
  const SolverParameter param = policy("lr_policy: 'inv' base_lr: 1 gamma: 0.5 power: 2");
  EXPECT_FLOAT_EQ(rate_at(param, 0), 1.0f);
  EXPECT_FLOAT_EQ(rate_at(param, 2), 0.25f);    // 2 ^ -2
  EXPECT_FLOAT_EQ(rate_at(param, 6), 0.0625f);  // 4 ^ -2
  // LeNet's settings: 0.01 (1 + 0.0001 * 10000) ^ -0.75 = 0.01 * 2 ^ -0.75 = 0.0059460356
  const SolverParameter lenet =
      policy("lr_policy: 'inv' base_lr: 0.01 gamma: 0.0001 power: 0.75");
  EXPECT_FLOAT_EQ(rate_at(lenet, 10000), 0.0059460356f);
}

// base 1, gamma 0.1, steps at iterations 3 and 5: the state counts the steps passed.
TEST(LrPolicy, MultistepAdvancesItsIndexAndKeepsIt) {
  const SolverParameter param =
      policy("lr_policy: 'multistep' base_lr: 1 gamma: 0.1 stepvalue: 3 stepvalue: 5");
  LrState state;
  EXPECT_FLOAT_EQ(learning_rate(param, 0, &state), 1.0f);
  EXPECT_FLOAT_EQ(learning_rate(param, 2, &state), 1.0f);
  EXPECT_EQ(state.multistep_index, 0);
  EXPECT_FLOAT_EQ(learning_rate(param, 3, &state), 0.1f);  // 3 >= 3: index 1
  EXPECT_EQ(state.multistep_index, 1);
  EXPECT_FLOAT_EQ(learning_rate(param, 4, &state), 0.1f);  // index 1 reused
  EXPECT_EQ(state.multistep_index, 1);
  EXPECT_FLOAT_EQ(learning_rate(param, 5, &state), 0.01f);  // 5 >= 5: index 2
  EXPECT_EQ(state.multistep_index, 2);
  EXPECT_FLOAT_EQ(learning_rate(param, 100, &state), 0.01f);  // no third step
  EXPECT_EQ(state.multistep_index, 2);

  // The index is state, not a function of the iteration (Caffe's current_step): it never goes
  // back, and a restored index (a resumed run) is used as it is.
  LrState passed_one;
  EXPECT_FLOAT_EQ(learning_rate(param, 3, &passed_one), 0.1f);
  EXPECT_FLOAT_EQ(learning_rate(param, 0, &passed_one), 0.1f);
  LrState restored;
  restored.multistep_index = 1;
  EXPECT_FLOAT_EQ(learning_rate(param, 4, &restored), 0.1f);
}

// base (1 - iter / max_iter) ^ power
TEST(LrPolicy, Poly) {
  const SolverParameter param = policy("lr_policy: 'poly' base_lr: 1 power: 2 max_iter: 10");
  EXPECT_FLOAT_EQ(rate_at(param, 0), 1.0f);
  EXPECT_FLOAT_EQ(rate_at(param, 5), 0.25f);  // 0.5 ^ 2
  EXPECT_FLOAT_EQ(rate_at(param, 9), 0.01f);  // 0.1 ^ 2
  EXPECT_FLOAT_EQ(rate_at(param, 10), 0.0f);
  const SolverParameter root = policy("lr_policy: 'poly' base_lr: 1 power: 0.5 max_iter: 10");
  EXPECT_FLOAT_EQ(rate_at(root, 6), 0.63245553f);  // sqrt(0.4)
}

// base / (1 + exp(-gamma (iter - stepsize)))
TEST(LrPolicy, Sigmoid) {
  const SolverParameter param = policy("lr_policy: 'sigmoid' base_lr: 1 gamma: 0.5 stepsize: 4");
  EXPECT_FLOAT_EQ(rate_at(param, 4), 0.5f);          // 1 / (1 + e^0)
  EXPECT_FLOAT_EQ(rate_at(param, 6), 0.73105858f);   // 1 / (1 + e^-1)
  EXPECT_FLOAT_EQ(rate_at(param, 2), 0.26894142f);   // 1 / (1 + e^1)
}

// ---- plateau ------------------------------------------------------------------------------------

// Watching an accuracy: base 0.1, gamma 0.1, patience 2, an improvement must beat the best by
// 10% of it (threshold 0.1).
TEST(LrPolicy, PlateauMaximize) {
  const SolverParameter param = policy(R"(
    lr_policy: 'plateau' base_lr: 0.1 gamma: 0.1 plateau_output: 'accuracy'
    plateau_mode: MAXIMIZE plateau_patience: 2 plateau_threshold: 0.1)");
  LrState state;
  auto observe = [&](float value) { return plateau_observe(param, value, &state); };
  EXPECT_FLOAT_EQ(learning_rate(param, 0, &state), 0.1f);
  EXPECT_FALSE(observe(0.5f));  // the first value is the best so far
  EXPECT_FALSE(observe(0.52f));  // needs > 0.5 + 0.05 = 0.55: stale 1
  EXPECT_EQ(state.plateau_stale_rounds, 1);
  EXPECT_FALSE(observe(0.56f));  // > 0.55: best 0.56, stale 0
  EXPECT_EQ(state.plateau_stale_rounds, 0);
  EXPECT_FLOAT_EQ(learning_rate(param, 10, &state), 0.1f);
  EXPECT_FALSE(observe(0.6f));  // needs > 0.56 + 0.056 = 0.616: stale 1
  EXPECT_TRUE(observe(0.61f));  // stale 2 = patience: cut, stale back to 0
  EXPECT_EQ(state.plateau_reductions, 1);
  EXPECT_EQ(state.plateau_stale_rounds, 0);
  EXPECT_FLOAT_EQ(learning_rate(param, 20, &state), 0.01f);
  EXPECT_FALSE(observe(0.7f));   // > 0.616: best 0.7
  EXPECT_FALSE(observe(0.7f));   // needs > 0.77: stale 1
  EXPECT_TRUE(observe(0.69f));   // stale 2: cut again
  EXPECT_FLOAT_EQ(learning_rate(param, 30, &state), 0.001f);  // 0.1 * 0.1 ^ 2
  EXPECT_FLOAT_EQ(state.plateau_best, 0.7f);
}

// Watching a loss: base 1, gamma 0.5, patience 2, threshold 0 (any decrease counts; equal does
// not).
TEST(LrPolicy, PlateauMinimize) {
  const SolverParameter param = policy(R"(
    lr_policy: 'plateau' base_lr: 1 gamma: 0.5 plateau_output: 'loss'
    plateau_mode: MINIMIZE plateau_patience: 2)");
  LrState state;
  auto observe = [&](float value) { return plateau_observe(param, value, &state); };
  EXPECT_FALSE(observe(1.0f));   // best 1
  EXPECT_FALSE(observe(0.9f));   // best 0.9
  EXPECT_FALSE(observe(0.9f));   // equal: stale 1
  EXPECT_FLOAT_EQ(learning_rate(param, 0, &state), 1.0f);
  EXPECT_TRUE(observe(0.95f));   // worse: stale 2, cut
  EXPECT_FLOAT_EQ(learning_rate(param, 0, &state), 0.5f);
  EXPECT_FALSE(observe(0.8f));   // best 0.8
  EXPECT_FALSE(observe(0.85f));  // stale 1
  EXPECT_TRUE(observe(0.8f));    // equal: stale 2, cut
  EXPECT_FLOAT_EQ(learning_rate(param, 0, &state), 0.25f);
}

// Patience defaults to 1: every round without improvement cuts.
TEST(LrPolicy, PlateauDefaultPatienceCutsAtOnce) {
  const SolverParameter param =
      policy("lr_policy: 'plateau' base_lr: 1 gamma: 0.1 plateau_output: 'accuracy'");
  LrState state;
  EXPECT_FALSE(plateau_observe(param, 0.5f, &state));
  EXPECT_TRUE(plateau_observe(param, 0.4f, &state));
  EXPECT_TRUE(plateau_observe(param, 0.5f, &state));  // equal to the best: no improvement
  EXPECT_FALSE(plateau_observe(param, 0.6f, &state));
  EXPECT_FLOAT_EQ(learning_rate(param, 0, &state), 0.01f);
}

// The solver feeds each test round's value of plateau_output to the policy. The tiny net's
// output is 0 on its zero input every round, so with patience 1 the second round cuts.
const char* const kWatchedNet = R"(
  net_param {
    layer { name: 'x' type: 'Input' top: 'x' input_param { shape { dim: 1 dim: 2 } } }
    layer { name: 'ip' type: 'InnerProduct' bottom: 'x' top: 'y' loss_weight: 1
            inner_product_param { num_output: 1 bias_term: false } }
  }
  test_iter: 1 test_interval: 100
  lr_policy: 'plateau' base_lr: 0.1 gamma: 0.5
)";

TEST(LrPolicy, SolverTestRoundsFeedThePlateau) {
  SolverParameter param = policy(std::string(kWatchedNet) + "plateau_output: 'y'");
  auto solver = make_solver(param);
  solver->test_all();
  EXPECT_FLOAT_EQ(solver->learning_rate(), 0.1f);
  solver->test_all();
  EXPECT_FLOAT_EQ(solver->learning_rate(), 0.05f);
}

TEST(LrPolicy, SolverPlateauOutputMustExist) {
  auto solver = make_solver(policy(std::string(kWatchedNet) + "plateau_output: 'accuracy'"));
  const std::string message = error_of([&] { solver->test_all(); });
  EXPECT_TRUE(contains(message, "plateau_output 'accuracy' is not an output of test net 0"));
  EXPECT_TRUE(contains(message, "its outputs: y"));
}

// ---- errors -------------------------------------------------------------------------------------

std::string rate_error(const std::string& text) {
  return error_of([&] { rate_at(policy(text), 0); });
}

TEST(LrPolicy, UnknownPolicyListsTheKnownOnes) {
  const std::string message = rate_error("lr_policy: 'cosine' base_lr: 0.1");
  EXPECT_TRUE(contains(message, "unknown lr_policy 'cosine'"));
  EXPECT_TRUE(contains(message, "known: fixed, step, exp, inv, multistep, poly, sigmoid, plateau"));
  EXPECT_TRUE(contains(rate_error("base_lr: 0.1"), "unknown lr_policy ''"));
}

TEST(LrPolicy, MissingParametersAreNamed) {
  EXPECT_TRUE(contains(rate_error("lr_policy: 'step' base_lr: 0.1 gamma: 0.1"),
                       "lr_policy step needs a positive stepsize"));
  EXPECT_TRUE(contains(rate_error("lr_policy: 'plateau' base_lr: 0.1 gamma: 0.1"),
                       "lr_policy plateau needs plateau_output"));
  EXPECT_TRUE(contains(rate_error("lr_policy: 'poly' base_lr: 0.1 power: 1"),
                       "lr_policy poly needs a positive max_iter"));
}

}  // namespace
}  // namespace engine
