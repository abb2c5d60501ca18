// A .solverstate restored into an SGD solver with momentum over fuzz/small_net.prototxt (its
// history blobs, iteration, learning-rate state, and the weights file it names).
#include "engine.pb.h"
#include "fuzz_target.hpp"
#include "io/prototxt.hpp"
#include "solvers/solver.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  engine::fuzz::set_up();
  static std::unique_ptr<engine::Solver> solver = [] {
    engine::SolverParameter param;
    param.set_type("SGD");
    param.set_base_lr(0.01f);
    param.set_momentum(0.9f);
    param.set_lr_policy("fixed");
    param.set_snapshot_after_train(false);
    engine::parse_text(engine::fuzz::small_net_text(), "small_net", param.mutable_net_param());
    return engine::make_solver(param, "small_solver");
  }();
  engine::fuzz::expect_clean(
      [&] { solver->restore(engine::fuzz::as_file(data, size, "input.solverstate")); });
  return 0;
}
