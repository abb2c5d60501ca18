// Net prototxt text, parsed and upgraded (V0 and V1 files included) as every net file is read.
#include "engine.pb.h"
#include "fuzz_target.hpp"
#include "io/prototxt.hpp"
#include "io/upgrade.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  engine::fuzz::expect_clean([&] {
    engine::NetParameter param;
    engine::parse_text(std::string(reinterpret_cast<const char*>(data), size), "input", &param);
    engine::upgrade_net(&param, "input");
  });
  return 0;
}
