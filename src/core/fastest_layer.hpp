// engine: DEFAULT means the fastest implementation on the machine it runs on. A layer type with
// several CPU implementations that compute the same function (Caffe's reference code, oneDNN)
// is built as a FastestLayer holding one of each; the first time it runs forward on the CPU for
// a bottom shape it times each one on scratch blobs of that shape (forward, and backward where
// the net will run it), drops any whose results disagree with the first, and runs the fastest
// from then on. Choices are cached per process by layer settings and shapes, as cuDNN's
// algorithm search is, so a test net or a second net of the same shapes does not measure again.
// On the GPU every candidate runs the same device code, and the first one runs.
#pragma once

#include <string>
#include <vector>

#include "core/layer.hpp"

namespace engine {

// The implementations a DEFAULT (or CUDNN, which means DEFAULT on the CPU) layer chooses
// among, each as the layer parameter that selects it, the preferred one first; fewer than two
// when there is nothing to choose (another engine named, a build without oneDNN, a layer type
// with one CPU implementation).
struct Implementation {
  std::string name;
  LayerParameter param;
};
std::vector<Implementation> implementations_to_measure(const LayerParameter& param);

// Wraps the layers `create` makes from each implementation's parameter.
LayerPtr create_fastest_layer(const LayerParameter& param,
                              std::vector<Implementation> implementations,
                              LayerPtr (*create)(const LayerParameter&));

// The layer that does the work: the chosen implementation of a FastestLayer (the preferred one
// before the choice), else `layer` itself.
const Layer& working_layer(const Layer& layer);
// What a FastestLayer chose and what each candidate measured, as "oneDNN (oneDNN 12.1 ms,
// Caffe 20.4 ms)", or "" for other layers and before the choice.
std::string implementation_choice(const Layer& layer);

}  // namespace engine
