// A .npy file, as engine forward --input and pycaffe's helpers read it.
#include "fuzz_target.hpp"
#include "io/npy.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  engine::fuzz::expect_clean(
      [&] { engine::read_npy(engine::fuzz::as_file(data, size, "input.npy")); });
  return 0;
}
