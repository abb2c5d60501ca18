// A binary NetParameter (.caffemodel, any Caffe version, upgraded on reading), then copied into
// fuzz/small_net.prototxt's layers as weights are.
#include "core/net.hpp"
#include "engine.pb.h"
#include "fuzz_target.hpp"
#include "io/caffemodel.hpp"
#include "io/prototxt.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  engine::fuzz::set_up();
  static engine::Net net = [] {
    engine::NetParameter param;
    engine::parse_text(engine::fuzz::small_net_text(), "small_net", &param);
    return engine::Net(param);
  }();
  engine::fuzz::expect_clean([&] {
    engine::copy_weights_from_file(engine::fuzz::as_file(data, size, "input.caffemodel"), &net);
  });
  return 0;
}
