// type: "Python": a layer written in Python (python_param { module layer param_str }). The
// Python package installs the factory when it is imported (python/bindings.cpp), and the engine
// binary when it embeds the interpreter (python/embedded_python.cpp); a build without Python
// gets a clear error naming the layer.
#pragma once

#include <functional>

#include "core/layer.hpp"

namespace engine {

using PythonLayerFactory = std::function<LayerPtr(const LayerParameter&)>;
void set_python_layer_factory(PythonLayerFactory factory);

}  // namespace engine
