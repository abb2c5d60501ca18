// type: "Python": a layer written in Python (python_param { module layer param_str }). The
// Python package (python/_engine.cpp) installs the factory when it is imported; a net built
// without it -- by `engine train`, say -- gets a clear error naming the layer.
#pragma once

#include <functional>

#include "core/layer.hpp"

namespace engine {

using PythonLayerFactory = std::function<LayerPtr(const LayerParameter&)>;
void set_python_layer_factory(PythonLayerFactory factory);

}  // namespace engine
