#include "math/onednn.hpp"

#include "core/errors.hpp"

namespace engine {

bool onednn_available() {
#ifdef ENGINE_USE_ONEDNN
  return true;
#else
  return false;
#endif
}

bool use_onednn(int engine_field, const std::string& layer_description) {
  switch (engine_field) {
    case kEngineCaffe:
      return false;
    case kEngineOnednn:
      ENGINE_REQUIRE(onednn_available(), layer_description
                                             << ": engine ONEDNN was asked for, but this build "
                                                "has no oneDNN (install libdnnl-dev and rebuild)");
      return true;
    case kEngineDefault:
    case kEngineCudnn:
    default:
      return onednn_available();
  }
}

#ifdef ENGINE_USE_ONEDNN
namespace onednn {

dnnl::engine& cpu_engine() {
  static dnnl::engine engine(dnnl::engine::kind::cpu, 0);
  return engine;
}

dnnl::stream& cpu_stream() {
  thread_local dnnl::stream stream(cpu_engine());
  return stream;
}

dnnl::memory& bind(dnnl::memory& memory, const float* data) {
  memory.set_data_handle(const_cast<float*>(data));
  return memory;
}

void run(const dnnl::primitive& primitive, const std::unordered_map<int, dnnl::memory>& args) {
  primitive.execute(cpu_stream(), args);
  cpu_stream().wait();
}

dnnl::memory::dims dims(const std::vector<int>& shape) {
  return dnnl::memory::dims(shape.begin(), shape.end());
}

}  // namespace onednn
#endif

}  // namespace engine
