// A net prototxt that parses, then built: every layer's parameters, shapes and blob wiring
// must fail cleanly. Inputs naming devices or kernel files are skipped (an endless source file
// is not a file-format question). Memory is capped lower than for the other targets: building
// a real net's weights and activations up to the common cap takes seconds under the sanitizers,
// and the wiring and shape checks under test come before the big allocations.

#include "core/net.hpp"
#include "core/synced_memory.hpp"
#include "engine.pb.h"
#include "fuzz_target.hpp"
#include "io/prototxt.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  for (const char* special : {"/dev", "/proc", "/sys"}) {
    if (text.find(special) != std::string::npos) return 0;
  }
  engine::fuzz::expect_clean([&] {
    engine::set_host_memory_limit(size_t(1) << 20);
    engine::NetParameter param;
    engine::parse_text(text, "input", &param);
    engine::Net net(param);
  });
  return 0;
}
