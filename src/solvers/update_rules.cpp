// The update rules, as Caffe defines them. Each turns a parameter's gradient g (already clipped,
// divided by iter_size and regularised) into the step the net subtracts, using its history:
//   SGD       v = momentum v + rate g;                            step v
//   Nesterov  v' = momentum v + rate g;                           step (1 + momentum) v' - momentum v
//   AdaGrad   h += g^2;                                           step rate g / (sqrt(h) + delta)
//   RMSProp   h = rms_decay h + (1 - rms_decay) g^2;              step rate g / (sqrt(h) + delta)
//   AdaDelta  h = m h + (1 - m) g^2; u = g sqrt((s + delta) / (h + delta));
//             s = m s + (1 - m) u^2;                              step rate u
//   Adam      m1 = b1 m1 + (1 - b1) g; m2 = b2 m2 + (1 - b2) g^2;
//             step rate sqrt(1 - b2^t) / (1 - b1^t) m1 / (sqrt(m2) + delta), t = iter + 1
// where rate is the policy's rate times the parameter's lr_mult. Each rule computes its rates
// here and runs its step on the mode's side (update_steps.hpp): the CPU loops below, the
// reference, or one fused kernel on the GPU.
#include <cmath>

#include "core/errors.hpp"
#include "io/prototxt.hpp"
#include "io/upgrade.hpp"
#include "core/context.hpp"
#include "math/blas.hpp"
#include "math/parallel.hpp"
#include "math/simd.hpp"
#include "solvers/solver.hpp"
#include "solvers/update_steps.hpp"

namespace engine {
namespace cpu {

void sgd_update(int64_t n, float rate, float momentum, float* velocity, float* diff) {
  axpby(n, rate, diff, momentum, velocity);
  copy(n, velocity, diff);
}

void nesterov_update(int64_t n, float rate, float momentum, float* velocity, float* diff) {
  for (int64_t i = 0; i < n; ++i) {
    const float previous = velocity[i];
    velocity[i] = momentum * previous + rate * diff[i];
    diff[i] = (1 + momentum) * velocity[i] - momentum * previous;
  }
}

void adaptive_update(int64_t n, float rate, float keep, float add, float delta, float* squares,
                     float* diff) {
  for (int64_t i = 0; i < n; ++i) {
    squares[i] = keep * squares[i] + add * diff[i] * diff[i];
    diff[i] = rate * diff[i] / (std::sqrt(squares[i]) + delta);
  }
}

void adadelta_update(int64_t n, float rate, float momentum, float delta, float* gradient_squares,
                     float* update_squares, float* diff) {
  for (int64_t i = 0; i < n; ++i) {
    gradient_squares[i] = momentum * gradient_squares[i] + (1 - momentum) * diff[i] * diff[i];
    const float update =
        diff[i] * std::sqrt((update_squares[i] + delta) / (gradient_squares[i] + delta));
    update_squares[i] = momentum * update_squares[i] + (1 - momentum) * update * update;
    diff[i] = rate * update;
  }
}

void adam_update(int64_t n, float rate, float beta1, float beta2, float epsilon, float* first,
                 float* second, float* diff) {
  for (int64_t i = 0; i < n; ++i) {
    first[i] = beta1 * first[i] + (1 - beta1) * diff[i];
    second[i] = beta2 * second[i] + (1 - beta2) * diff[i] * diff[i];
    diff[i] = rate * first[i] / (std::sqrt(second[i]) + epsilon);
  }
}

void l1_regularize(int64_t n, float decay, const float* data, float* diff) {
  for (int64_t i = 0; i < n; ++i) diff[i] += decay * ((data[i] > 0) - (data[i] < 0));
}

}  // namespace cpu

namespace {

// SgdSolver's whole CPU step; the expressions are those of the separate steps (normalize,
// regularize, sgd_update, Blob::update), so the numbers are theirs.
ENGINE_VECTORIZED void sgd_step(int64_t n, float rate, float momentum, float gradient_scale,
                                float decay, float* weights, float* diff, float* velocity) {
  for (int64_t i = 0; i < n; ++i) {
    const float gradient = gradient_scale * diff[i] + decay * weights[i];
    const float step = rate * gradient + momentum * velocity[i];
    velocity[i] = step;
    diff[i] = step;
    weights[i] -= step;
  }
}

class SgdSolver : public Solver {
 public:
  using Solver::Solver;

 protected:
  void compute_update(int param_id, float rate) override {
    Blob& param = *net().learnable_params()[param_id];
    ENGINE_ON_DEVICE(sgd_update(param.count(), local_rate(param_id, rate), param_.momentum(),
                                history(param_id).mutable_data(), param.mutable_diff()));
  }

  // On the CPU: v = momentum v + rate (scale g + decay w); g = v; w -= v, element by element in
  // one pass over the three arrays, spread over the cores (instead of four passes).
  bool update_in_one_pass(int param_id, float rate, float gradient_scale, float decay) override {
    if (Context::mode() != Mode::CPU) return false;
    Blob& param = *net().learnable_params()[param_id];
    const float step = local_rate(param_id, rate);
    const float momentum = param_.momentum();
    float* weights = param.mutable_cpu_data();
    float* diff = param.mutable_cpu_diff();
    float* velocity = history(param_id).mutable_cpu_data();
    cpu::parallel_chunks(param.count(), [&](int64_t begin, int64_t end) {
      sgd_step(end - begin, step, momentum, gradient_scale, decay, weights + begin,
               diff + begin, velocity + begin);
    });
    return true;
  }
};

class NesterovSolver : public Solver {
 public:
  using Solver::Solver;

 protected:
  void compute_update(int param_id, float rate) override {
    Blob& param = *net().learnable_params()[param_id];
    ENGINE_ON_DEVICE(nesterov_update(param.count(), local_rate(param_id, rate), param_.momentum(),
                                     history(param_id).mutable_data(), param.mutable_diff()));
  }
};

// AdaGrad and RMSProp: a running measure of g^2, h = keep h + add g^2, scales each coordinate's
// step.
class AdaptiveSolver : public Solver {
 public:
  AdaptiveSolver(const SolverParameter& param, const std::string& source, float keep, float add)
      : Solver(param, source), keep_(keep), add_(add) {
    ENGINE_REQUIRE(param.momentum() == 0,
                   source << ": momentum cannot be used with " << param.type());
  }

 protected:
  void compute_update(int param_id, float rate) override {
    Blob& param = *net().learnable_params()[param_id];
    ENGINE_ON_DEVICE(adaptive_update(param.count(), local_rate(param_id, rate), keep_, add_,
                                     param_.delta(), history(param_id).mutable_data(),
                                     param.mutable_diff()));
  }

 private:
  float keep_, add_;
};

class AdaGradSolver : public AdaptiveSolver {
 public:
  AdaGradSolver(const SolverParameter& param, const std::string& source)
      : AdaptiveSolver(param, source, 1.0f, 1.0f) {}
};

class RmsPropSolver : public AdaptiveSolver {
 public:
  RmsPropSolver(const SolverParameter& param, const std::string& source)
      : AdaptiveSolver(param, source, param.rms_decay(), 1.0f - param.rms_decay()) {}
};

class AdaDeltaSolver : public Solver {
 public:
  using Solver::Solver;

 protected:
  int history_per_param() const override { return 2; }
  void compute_update(int param_id, float rate) override {
    Blob& param = *net().learnable_params()[param_id];
    ENGINE_ON_DEVICE(adadelta_update(param.count(), local_rate(param_id, rate), param_.momentum(),
                                     param_.delta(), history(param_id, 0).mutable_data(),
                                     history(param_id, 1).mutable_data(), param.mutable_diff()));
  }
};

class AdamSolver : public Solver {
 public:
  using Solver::Solver;

 protected:
  int history_per_param() const override { return 2; }
  void compute_update(int param_id, float rate) override {
    Blob& param = *net().learnable_params()[param_id];
    const float beta1 = param_.momentum();
    const float beta2 = param_.momentum2();
    const double t = iter() + 1;
    const float correction =
        static_cast<float>(std::sqrt(1 - std::pow(beta2, t)) / (1 - std::pow(beta1, t)));
    ENGINE_ON_DEVICE(adam_update(param.count(), local_rate(param_id, rate) * correction, beta1,
                                 beta2, param_.delta(), history(param_id, 0).mutable_data(),
                                 history(param_id, 1).mutable_data(), param.mutable_diff()));
  }
};

template <typename Rule>
std::unique_ptr<Solver> make(const SolverParameter& param, const std::string& source) {
  return std::make_unique<Rule>(param, source);
}

struct SolverEntry {
  const char* type;
  std::unique_ptr<Solver> (*create)(const SolverParameter&, const std::string&);
};

// Every solver type, once.
const SolverEntry kSolvers[] = {
    {"SGD", make<SgdSolver>},
    {"Nesterov", make<NesterovSolver>},
    {"AdaGrad", make<AdaGradSolver>},
    {"RMSProp", make<RmsPropSolver>},
    {"AdaDelta", make<AdaDeltaSolver>},
    {"Adam", make<AdamSolver>},
};

}  // namespace

std::unique_ptr<Solver> make_solver(const SolverParameter& param, const std::string& source) {
  if (param.has_solver_type()) {
    SolverParameter upgraded = param;
    upgrade_solver(&upgraded, source.empty() ? "solver" : source);
    return make_solver(upgraded, source);
  }
  std::string known;
  for (const SolverEntry& entry : kSolvers) {
    if (param.type() == entry.type) return entry.create(param, source);
    known += std::string(" ") + entry.type;
  }
  ENGINE_FAIL((source.empty() ? "solver" : source) << ": unknown solver type '" << param.type()
                                                    << "'; known:" << known);
}

SolverParameter read_solver_file(const std::string& path) {
  SolverParameter param;
  read_text_file(path, &param);
  upgrade_solver(&param, path);
  return param;
}

}  // namespace engine
