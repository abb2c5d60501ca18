#include "layers/python_layer.hpp"

#include "core/errors.hpp"
#include "core/layer_registry.hpp"

namespace engine {

namespace {
PythonLayerFactory& python_layer_factory() {
  static PythonLayerFactory factory;
  return factory;
}
}  // namespace

void set_python_layer_factory(PythonLayerFactory factory) {
  python_layer_factory() = std::move(factory);
}

LayerPtr create_Python_layer(const LayerParameter& param) {
  ENGINE_REQUIRE(python_layer_factory(),
                 "layer " << param.name()
                          << " (Python): this engine was built without Python; Python layers "
                             "need pybind11-dev and python3-dev when it is configured");
  return python_layer_factory()(param);
}

}  // namespace engine
