// Model parallelism, the AlexNet paper's split. The W workers of a group run the same images,
// and each holds 1/W of every Convolution's and InnerProduct's output channels (their filters
// and biases). A layer that reads only channels its worker holds needs nothing from the others:
// a grouped convolution whose groups fall on one worker (AlexNet's conv2, conv4, conv5 at W = 2),
// a ReLU, a pooling. The rewrite inserts an exchange (GatherChannels: all-gather of the channel
// slices forward, reduce-scatter of the gradient backward) exactly where a layer reads channels
// that other workers hold: an ungrouped convolution or an inner product after a split layer
// (conv3, fc6, fc7, fc8), LRN across channels (HaloChannels brings it the size / 2 channels
// beyond each edge of the worker's slice), and the layers after the last split one (losses,
// accuracy), which every worker computes whole. Layers with parameters of other types cannot be split yet (an error
// names them).
//
// Worker groups: with R ranks and groups of W, ranks gW .. gW + W - 1 form group g; groups are
// data parallel with each other (each reads its shard of the data; worker w's gradients are
// averaged with worker w of every other group).
//
// The hybrid of Krizhevsky's "One weird trick" (scope FULLY_CONNECTED): only the InnerProducts
// are split. Every worker runs its own images through the convolutions (data parallel: their
// gradients are summed over the group and averaged over the groups); before the first
// InnerProduct the group's images are all-gathered (GatherChannels on axis 0), so each worker
// computes its slice of the fully connected layers on all of them, and backward reduce-scatters
// their gradient back to the images' owners.
#pragma once

#include <memory>
#include <set>
#include <string>
#include <vector>

#include "core/net.hpp"
#include "engine.pb.h"
#include "parallel/communicator.hpp"
#include "parallel/data_parallel.hpp"
#include "solvers/solver.hpp"

namespace engine {

struct SplitNet {
  NetParameter net;                    // the net of one worker
  std::set<std::string> split_layers;  // their parameter blobs hold the worker's rows (axis 0)
  std::vector<std::string> exchanges;  // one line per inserted exchange, for the log
};

// Rewrites `net` (any phase's layers; legacy forms are upgraded first) for worker `worker` of
// `workers`. Errors name the layer that cannot be split and why.
SplitNet split_net(const NetParameter& net, int workers, int worker, const std::string& source,
                   bool fully_connected_only = false);

// Copies a whole model's weights (a .caffemodel's NetParameter) into a worker's net: the
// worker's rows of the split layers' blobs, the others whole.
void copy_weight_slices(const NetParameter& whole, const std::set<std::string>& split_layers,
                        int workers, int worker, Net* net);

// The whole model from a group's slices (collective over `group`; every member gets it).
void gather_whole_model(Communicator& group, const std::set<std::string>& split_layers,
                        NetParameter* model);

// The SolverPeers of one worker of a model-parallel run: `world` is every rank, `group` the
// worker's model-parallel group, `replicas` its counterparts in the other groups (null with
// one group), between which the gradients are averaged.
class ModelParallel : public SolverPeers {
 public:
  // `copies`: how many batches of images one iteration trains on (the groups; every worker
  // with `fully_connected_only`).
  ModelParallel(Communicator& world, Communicator& group, Communicator* replicas, Net& net,
                std::set<std::string> split_layers, bool fully_connected_only, int copies,
                size_t bucket_bytes, bool overlap);

  int rank() const override { return world_.rank(); }
  int size() const override { return world_.size(); }
  bool runs_tests() const override { return world_.rank() < group_.size(); }
  int replicas() const override { return copies_; }
  int weights_twin(int rank) const override { return rank % group_.size(); }
  bool holds_slices() const override { return true; }
  void backward_starting() override;
  void average_gradients() override;
  void broadcast_weights() override;
  void broadcast(std::string* bytes, const std::string& what,
                 bool after_root_work = false) override;
  bool checks_gradients() const override { return data_parallel_ != nullptr; }
  bool own_gradients_finite() const override {
    return !data_parallel_ || data_parallel_->own_gradients_finite();
  }
  std::vector<std::string> allgather(const std::string& bytes, const std::string& what) override;
  void whole_model(NetParameter* model) override;
  void load_model(const NetParameter& model, Net* net) override;

  DataParallel* data_parallel() { return data_parallel_.get(); }

 private:
  Communicator& world_;
  Communicator& group_;
  std::set<std::string> split_layers_;
  int copies_;
  std::unique_ptr<DataParallel> data_parallel_;
};

}  // namespace engine
