// The engine binary's interpreter for type: "Python" layers, started when the first one is made,
// so that runs without Python layers never pay for it. The binary defines engine._engine itself
// (bindings.cpp) and registers it in sys.modules before `import engine`: the Python package then
// wraps this process's engine rather than loading a second copy from the extension module.
#include "embedded_python.hpp"

#include <pybind11/embed.h>

#include <filesystem>
#include <mutex>

#include "bindings.hpp"
#include "core/errors.hpp"
#include "layers/python_layer.hpp"

namespace py = pybind11;

namespace engine {
namespace {

PyModuleDef module_definition;

void start_interpreter() {
  // No signal handlers: SIGINT and SIGHUP stay the solver's (--sigint_effect, --sighup_effect).
  py::initialize_interpreter(/*init_signal_handlers=*/false);
  try {
    py::module_ compiled =
        py::module_::create_extension_module("engine._engine", nullptr, &module_definition);
    define_python_module(compiled);
    py::module_ sys = py::module_::import("sys");
    sys.attr("modules")["engine._engine"] = compiled;
    // Layer modules are found as `python` finds a script's: the working directory first, then
    // PYTHONPATH; the engine package last, so that an installed copy is preferred.
    py::list path = sys.attr("path");
    path.insert(0, std::filesystem::current_path().string());
    path.append(ENGINE_PYTHON_PACKAGE_DIR);
    py::module_::import("engine");
  } catch (py::error_already_set& error) {
    ENGINE_FAIL("cannot start Python for the Python layers: " << error.what());
  }
  // Layers run on the solver's threads (one per GPU): each takes the GIL when it calls Python.
  PyEval_SaveThread();
}

LayerPtr make_layer_in_embedded_python(const LayerParameter& param) {
  static std::once_flag started;
  std::call_once(started, start_interpreter);
  return make_python_layer(param);
}

}  // namespace

void use_embedded_python() { set_python_layer_factory(make_layer_in_embedded_python); }

}  // namespace engine
