#include "core/layer_registry.hpp"

#include <sstream>

namespace engine {

std::vector<std::string> registered_layer_types() {
  std::vector<std::string> types;
  for (const LayerEntry& entry : layer_registry()) types.emplace_back(entry.type);
  return types;
}

LayerPtr create_layer(const LayerParameter& param) {
  for (const LayerEntry& entry : layer_registry()) {
    if (param.type() == entry.type) return entry.create(param);
  }
  std::ostringstream known;
  for (const std::string& type : registered_layer_types()) known << " " << type;
  ENGINE_FAIL("layer " << param.name() << ": unknown layer type '" << param.type()
                       << "'; registered types:" << known.str());
}

}  // namespace engine
