// Upgrades of legacy net and solver definitions to the current schema, as BVLC Caffe 1.0 applies
// them when it reads a file.
//
// A net is upgraded in this order:
//   1. V0 -> V1: `layers { layer { type: "conv" ... } }` (V0LayerParameter, lower-case string
//      types, flat settings) becomes a V1 layer with an enum type and per-type messages; a V0
//      "padding" layer is folded into the pad of the convolution or pooling that reads it.
//   2. Old data transformation fields (scale, mean_file, crop_size, mirror in data_param,
//      image_data_param, window_data_param) move to transform_param.
//   3. V1 -> V2: `layers` (enum types, blobs_lr, weight_decay, param names, blob_share_mode)
//      become `layer` (string types, `param { lr_mult decay_mult name share_mode }`).
//   4. The net's input/input_dim/input_shape fields become an Input layer at the front.
//   5. A BatchNorm layer declaring 3 param specs gets lr_mult 0 and decay_mult 0 on each (its
//      blobs are statistics, not learned weights).
// A net that has both `layer` and `layers` is an error. Everything a user's file supplies goes
// through upgrade_net: Net's constructors, the solver's net files, weights files and the
// upgrade tools. Stateless; thread-safe.
#pragma once

#include <string>

#include "engine.pb.h"

namespace engine {

// Whether upgrade_net would change `param`.
bool net_needs_upgrade(const NetParameter& param);
// Applies every upgrade `param` needs; returns whether it changed anything. Logs one
// "<source>: upgraded ..." line per step taken; throws engine::Error naming `source` for a file
// that cannot be upgraded (both `layer` and `layers`, an unknown V0 type, a misplaced padding
// layer, inconsistent input fields).
bool upgrade_net(NetParameter* param, const std::string& source);

// The individual steps (exposed for tests); each returns whether it changed anything.
bool upgrade_v0_net(NetParameter* param, const std::string& source);
bool upgrade_data_transformation(NetParameter* param, const std::string& source);
bool upgrade_v1_net(NetParameter* param, const std::string& source);
bool upgrade_net_input(NetParameter* param, const std::string& source);
bool upgrade_batch_norm(NetParameter* param, const std::string& source);

// Reads a net prototxt / binary NetParameter (a .caffemodel) and upgrades it, naming the file in
// every error.
NetParameter read_net_text_file(const std::string& path);
NetParameter read_net_binary_file(const std::string& path);

// The legacy solver_type enum becomes the `type` string; returns whether it changed anything.
// solver_type and a different type together are an error.
bool upgrade_solver(SolverParameter* param, const std::string& source);

}  // namespace engine
