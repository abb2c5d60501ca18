#include "solvers/lr_policy.hpp"

#include <cmath>

#include "core/errors.hpp"

namespace engine {

float learning_rate(const SolverParameter& param, int iteration, LrState* state) {
  const std::string& policy = param.lr_policy();
  const double base = param.base_lr();
  const double gamma = param.gamma();
  const double power = param.power();
  if (policy == "fixed") return base;
  if (policy == "step") {
    ENGINE_REQUIRE(param.stepsize() > 0, "lr_policy step needs a positive stepsize");
    return base * std::pow(gamma, iteration / param.stepsize());
  }
  if (policy == "exp") return base * std::pow(gamma, iteration);
  if (policy == "inv") return base * std::pow(1 + gamma * iteration, -power);
  if (policy == "multistep") {
    while (state->multistep_index < param.stepvalue_size() &&
           iteration >= param.stepvalue(state->multistep_index)) {
      ++state->multistep_index;
    }
    return base * std::pow(gamma, state->multistep_index);
  }
  if (policy == "poly") {
    ENGINE_REQUIRE(param.max_iter() > 0, "lr_policy poly needs a positive max_iter");
    return base * std::pow(1.0 - double(iteration) / param.max_iter(), power);
  }
  if (policy == "sigmoid") {
    return base * (1.0 / (1.0 + std::exp(-gamma * (double(iteration) - param.stepsize()))));
  }
  if (policy == "plateau") {
    ENGINE_REQUIRE(!param.plateau_output().empty(),
                   "lr_policy plateau needs plateau_output: the test output to watch");
    return base * std::pow(gamma, state->plateau_reductions);
  }
  ENGINE_FAIL("unknown lr_policy '" << policy
                                    << "'; known: fixed, step, exp, inv, multistep, poly, "
                                       "sigmoid, plateau");
}

bool plateau_observe(const SolverParameter& param, float value, LrState* state) {
  const bool maximize = param.plateau_mode() == SolverParameter::MAXIMIZE;
  const float margin = std::fabs(state->plateau_best) * param.plateau_threshold();
  const bool improved =
      !state->plateau_has_best ||
      (maximize ? value > state->plateau_best + margin : value < state->plateau_best - margin);
  if (improved) {
    state->plateau_best = value;
    state->plateau_has_best = true;
    state->plateau_stale_rounds = 0;
    return false;
  }
  if (++state->plateau_stale_rounds < param.plateau_patience()) return false;
  ++state->plateau_reductions;
  state->plateau_stale_rounds = 0;
  return true;
}

}  // namespace engine
