// What the fuzz targets share. Each target feeds libFuzzer's bytes to one reader of outside
// data; the reader may succeed or throw engine::Error, and anything else (a crash, a CHECK, a
// sanitizer report, another exception, a hang, memory past the limit) is a finding.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "core/errors.hpp"
#include "core/synced_memory.hpp"

namespace engine::fuzz {

// Host memory caps, so that a file asking for a huge blob gets the engine's own error rather
// than the fuzzer's malloc limit. Targets that build nets use the small one: filling a real
// net's weights up to the large one takes seconds per input under the sanitizers.
constexpr size_t kMemoryLimit = size_t(64) << 20;
constexpr size_t kNetBuildingMemoryLimit = size_t(1) << 20;  // fuzz/small_net.prototxt fits

// Logging quiet, temporary files removed at exit. Called once, by the first input.
void set_up();

// The input as a file of this process's own (the readers under test take paths).
std::string as_file(const uint8_t* data, size_t size, const std::string& name = "input");

// fuzz/small_net.prototxt: the net that weights files and solver states are loaded into.
std::string small_net_text();

// How the inputs so far ended: read, or refused with engine::Error.
struct Outcomes {
  size_t read = 0, refused = 0;
};
Outcomes& outcomes();

// Runs `read` under `memory_limit`; engine::Error is the clean failure that every bad input
// must get.
template <class Read>
void expect_clean(Read&& read, size_t memory_limit = kMemoryLimit) {
  set_up();
  set_host_memory_limit(memory_limit);
  try {
    read();
    ++outcomes().read;
  } catch (const engine::Error&) {
    ++outcomes().refused;
  }
}

}  // namespace engine::fuzz
