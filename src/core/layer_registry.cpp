#include "core/layer_registry.hpp"

#include <sstream>

#include "core/fastest_layer.hpp"

namespace engine {

std::vector<std::string> registered_layer_types() {
  std::vector<std::string> types;
  for (const LayerEntry& entry : layer_registry()) types.emplace_back(entry.type);
  return types;
}

LayerPtr create_layer(const LayerParameter& param) {
  for (const LayerEntry& entry : layer_registry()) {
    if (param.type() != entry.type) continue;
    std::vector<Implementation> implementations = implementations_to_measure(param);
    if (implementations.size() < 2) return entry.create(param);
    return create_fastest_layer(param, std::move(implementations), entry.create);
  }
  std::ostringstream known;
  for (const std::string& type : registered_layer_types()) known << " " << type;
  ENGINE_FAIL("layer " << param.name() << ": unknown layer type '" << param.type()
                       << "'; registered types:" << known.str());
}

}  // namespace engine
