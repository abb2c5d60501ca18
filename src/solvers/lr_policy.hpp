// Learning-rate policies: Caffe's fixed, step, exp, inv, multistep, poly and sigmoid, and our
// plateau policy (the AlexNet paper's rule: divide the rate when validation stops improving).
#pragma once

#include "engine.pb.h"

namespace engine {

// What a policy remembers between iterations; saved in snapshots so a resumed run continues.
struct LrState {
  int multistep_index = 0;  // Caffe's current_step: stepvalue entries already passed
  int plateau_reductions = 0;
  bool plateau_has_best = false;
  float plateau_best = 0;
  int plateau_stale_rounds = 0;
};

// The rate at `iteration`; advances state.multistep_index as Caffe does. Throws engine::Error for
// an unknown policy or missing parameters.
float learning_rate(const SolverParameter& param, int iteration, LrState* state);

// Feeds one test round's value of plateau_output to the plateau policy; returns true when it cut
// the rate.
bool plateau_observe(const SolverParameter& param, float value, LrState* state);

}  // namespace engine
