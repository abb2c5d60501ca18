// Fillers: initial values of learnable parameters (and of DummyData tops), as Caffe defines them:
// constant, uniform, gaussian (with sparse), positive_unitball, xavier, msra, bilinear.
// Random fillers draw from the calling thread's Context generator.
#pragma once

#include "core/blob.hpp"
#include "engine.pb.h"

namespace engine {

// Fills blob's data; an unknown type or a shape the filler cannot serve throws engine::Error.
void fill(const FillerParameter& filler, Blob* blob);

}  // namespace engine
