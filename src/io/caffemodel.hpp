// Weights files (.caffemodel): a binary NetParameter whose layers carry their parameter blobs,
// matched to a net's layers by name.
//
// Reading accepts what BVLC Caffe wrote in any version (V0/V1 `layers`, legacy 4-D blob shapes,
// double_data; io/upgrade.hpp brings the layers up to date) and files of any size up to 2 GB
// (protobuf's default 64 MB limit is lifted). Writing produces files BVLC Caffe reads: every
// field and enum value numbered >= 1000 (our schema's additions) is stripped first. Writes are
// atomic. Errors name the file. Stateless; thread-safe.
#pragma once

#include <string>

#include <google/protobuf/message.h>

#include "engine.pb.h"

namespace engine {

class Net;

// Removes, recursively, every field numbered >= 1000 and every enum value >= 1000 (set back to
// the field's default) and all unknown fields, leaving only what Caffe's schema defines. The
// legacy V1/V0 layer messages keep their fields 1001/1002, which are Caffe's own.
void strip_engine_fields(google::protobuf::Message* message);

// Reads and upgrades a weights file; a truncated or corrupt file, or one with no layers, fails
// naming the file.
NetParameter read_caffemodel(const std::string& path);
// Writes `param`, stripped of our additions, as a binary NetParameter.
void write_caffemodel(NetParameter param, const std::string& path);
// Writes the net's layers and their parameter blobs (and diffs when asked).
void write_caffemodel(const Net& net, const std::string& path, bool write_diff = false);
// Copies the weights in `path` into the net's layers of the same names (Net::
// copy_trained_layers_from): layers the net lacks are logged and ignored.
void copy_weights_from_file(const std::string& path, Net* net);

}  // namespace engine
