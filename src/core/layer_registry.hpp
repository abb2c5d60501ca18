// The layer registry: a layer type string ("Convolution") maps to a factory. Every type is
// listed once, in layers/layer_list.cpp, with the devices it has native code for.
#pragma once

#include <string>
#include <vector>

#include "core/layer.hpp"

namespace engine {

enum LayerDevices : unsigned { kCpuOnly = 1, kCpuAndGpu = 3 };

struct LayerEntry {
  const char* type;
  LayerPtr (*create)(const LayerParameter&);
  unsigned devices;
};

const std::vector<LayerEntry>& layer_registry();
std::vector<std::string> registered_layer_types();
// Builds a layer; an unknown type fails naming the layer, the type and the registered types.
LayerPtr create_layer(const LayerParameter& param);

}  // namespace engine

// Defines the factory that layer_list.cpp registers for TYPE: put it in the layer's own file.
#define ENGINE_LAYER_FACTORY(TYPE, CLASS)                                   \
  namespace engine {                                                        \
  LayerPtr create_##TYPE##_layer(const LayerParameter& param) {             \
    return std::make_unique<CLASS>(param);                                  \
  }                                                                         \
  }
