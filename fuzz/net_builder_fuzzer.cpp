// A net prototxt that parses, then built: every layer's parameters, shapes and blob wiring
// must fail cleanly. Inputs naming devices or kernel files are skipped (an endless source file
// is not a file-format question).

#include "core/net.hpp"
#include "engine.pb.h"
#include "fuzz_target.hpp"
#include "io/prototxt.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  for (const char* special : {"/dev", "/proc", "/sys"}) {
    if (text.find(special) != std::string::npos) return 0;
  }
  engine::fuzz::expect_clean([&] {
    engine::NetParameter param;
    engine::parse_text(text, "input", &param);
    engine::Net net(param);
  }, engine::fuzz::kNetBuildingMemoryLimit);
  return 0;
}
