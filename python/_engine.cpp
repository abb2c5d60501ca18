// The extension module engine._engine, loaded by `import engine` in a Python process.
#include <glog/logging.h>

#include "bindings.hpp"

PYBIND11_MODULE(_engine, module) {
  // The interpreter's process has not started glog; the engine binary, which embeds Python
  // instead, has.
  FLAGS_logtostderr = true;
  FLAGS_minloglevel = 1;  // warnings and errors; engine.set_log_level(0) shows Caffe's INFO log
  if (!google::IsGoogleLoggingInitialized()) google::InitGoogleLogging("engine");
  engine::define_python_module(module);
}
