// Solver prototxt text, parsed, upgraded and made into a solver (its settings validated) over
// fuzz/small_net.prototxt, whatever net the input names (its test settings may still ask for
// many test nets).
#include "engine.pb.h"
#include "fuzz_target.hpp"
#include "io/prototxt.hpp"
#include "io/upgrade.hpp"
#include "solvers/solver.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::string net = engine::fuzz::small_net_text();
  engine::fuzz::expect_clean([&] {
    engine::SolverParameter param;
    engine::parse_text(std::string(reinterpret_cast<const char*>(data), size), "input", &param);
    engine::upgrade_solver(&param, "input");
    param.clear_net();
    param.clear_train_net();
    param.clear_train_net_param();
    param.clear_test_net();
    param.clear_test_net_param();
    param.clear_snapshot_prefix();
    param.set_snapshot_after_train(false);
    engine::parse_text(net, "small_net", param.mutable_net_param());
    engine::make_solver(param, "input");
  }, engine::fuzz::kNetBuildingMemoryLimit);
  return 0;
}
