// An ONNX model, as engine import_onnx reads it (the net it makes is built and checked).
#include "fuzz_target.hpp"
#include "onnx/onnx_import.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  engine::fuzz::expect_clean([&] {
    engine::OnnxImportOptions options;
    engine::import_onnx(engine::fuzz::as_file(data, size, "input.onnx"), options);
  });
  return 0;
}
