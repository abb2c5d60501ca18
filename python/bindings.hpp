// The module engine._engine, defined once for the two places that make it: the extension
// module that `import engine` loads, and the engine binary's embedded interpreter.
#pragma once

#include <pybind11/pybind11.h>

#include "core/layer.hpp"

namespace engine {

// Fills `module` with the bindings and installs the Python-layer factory below.
void define_python_module(pybind11::module_& module);

// A type: "Python" layer: an instance of python_param's module.layer (needs the interpreter).
LayerPtr make_python_layer(const LayerParameter& param);

}  // namespace engine
