// The oneDNN fast CPU path: the engine and stream every oneDNN layer shares, the choice between
// oneDNN and the reference code for a layer, and small conversions. oneDNN ignores OpenBLAS's
// settings and uses its own threads (OpenMP), one per core.
#pragma once

#include <string>
#include <unordered_map>
#include <vector>

#ifdef ENGINE_USE_ONEDNN
#include <oneapi/dnnl/dnnl.hpp>
#endif

namespace engine {

// The `engine` field of a layer parameter, whose values are the same in every message:
// DEFAULT (0) picks the fastest available path, CAFFE (1) the reference code, CUDNN (2) cuDNN on
// the GPU (on the CPU it means the default), ONEDNN (1000) oneDNN.
enum EngineField : int {
  kEngineDefault = 0,
  kEngineCaffe = 1,
  kEngineCudnn = 2,
  kEngineOnednn = 1000,
};
// Whether to use oneDNN; asking for it in a build without oneDNN throws, naming the layer.
bool use_onednn(int engine_field, const std::string& layer_description);
bool onednn_available();

#ifdef ENGINE_USE_ONEDNN
namespace onednn {

dnnl::engine& cpu_engine();
dnnl::stream& cpu_stream();
// Points memory at data and returns it, for argument lists (oneDNN takes a non-const handle
// for inputs too, and only reads them).
dnnl::memory& bind(dnnl::memory& memory, const float* data);
// Executes one primitive on the shared stream and waits for it: for a layer whose pass is that
// one primitive. (Passes of several primitives execute them all, then wait once.)
void run(const dnnl::primitive& primitive, const std::unordered_map<int, dnnl::memory>& args);
dnnl::memory::dims dims(const std::vector<int>& shape);

}  // namespace onednn
#endif

}  // namespace engine
