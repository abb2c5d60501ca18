// DataParallel: one worker of a data-parallel run, the SolverPeers of its solver.
//
// Each worker trains a replica of the net on its own shard of the data (Context::data_shard).
// After backward the gradients are summed over the workers and divided by their number, so every
// worker applies the same update and the replicas stay identical. As PyTorch's DDP does, the
// learnable parameters are grouped into buckets of at most `bucket_bytes` in the order backward
// completes them (the reverse of the layers'), each bucket packed into one buffer for one
// collective (Horovod's fusion). With `overlap` (the solver's layer_wise_reduce) a bucket's
// allreduce starts on an exchange thread the moment backward has finished its last parameter,
// while backward goes on through the layers below; otherwise, and always on the GPU, the buckets
// are reduced after backward. The layout fixes the order of every sum, so runs repeat bit for bit.
//
// Parameters with lr_mult 0 are not exchanged (they do not move); BatchNorm's statistics, which
// forward changes, are copied from the root after every backward, as DDP broadcasts buffers.
// A route can send each parameter's gradient through its own communicator with its own scale
// (model parallelism: a worker's slices go to its counterparts in the other groups).
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <exception>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "core/blob.hpp"
#include "core/net.hpp"
#include "parallel/communicator.hpp"
#include "solvers/solver.hpp"

namespace engine {

class DataParallel : public SolverPeers {
 public:
  // What the exchange has cost so far.
  struct Costs {
    int iterations = 0;
    double exchange_seconds = 0;  // spent inside the gradient collectives
    double wait_seconds = 0;      // the solver blocked in average_gradients()
    uint64_t bytes = 0;           // payload handed to the collectives, weights broadcast included
  };

  // Where a learnable parameter's gradient goes: summed over `comm` and multiplied by `scale`
  // (null: nowhere, and its weights are this worker's own).
  struct Route {
    Communicator* comm = nullptr;
    float scale = 1;
  };
  using Router = std::function<Route(int learnable_id)>;

  // Hooks into `net` (its after-backward step). `comm` and `net` must outlive this. Without a
  // router every parameter is averaged over `comm`.
  DataParallel(Communicator& comm, Net& net, size_t bucket_bytes, bool overlap,
               Router router = nullptr);
  ~DataParallel() override;

  int rank() const override { return comm_.rank(); }
  int size() const override { return comm_.size(); }
  void backward_starting() override;
  void average_gradients() override;
  void broadcast_weights() override;
  void broadcast(std::string* bytes, const std::string& what,
                 bool after_root_work = false) override;
  bool checks_gradients() const override { return true; }
  bool own_gradients_finite() const override;
  std::vector<std::string> allgather(const std::string& bytes, const std::string& what) override;

  Costs costs() const;
  // Whether buckets travel during backward (the solver's layer_wise_reduce, on the CPU).
  bool overlaps() const { return overlap_; }
  // The buckets, largest-first lines such as "bucket 0: fc8, fc7 (16.8 MB)".
  std::string describe_buckets() const;

 private:
  struct Bucket {
    std::vector<int> params;  // learnable parameter ids, in the order backward completes them
    int64_t count = 0;
    Blob buffer;
    Route route;
    int pending = 0;  // parameters backward has yet to complete in this pass
    std::string layers;  // "fc8, fc7"
    std::string name;    // for timeout messages
  };
  void plan_buckets(size_t bucket_bytes, const Router& router);
  void on_backward_step(int layer);
  void launch(int bucket);
  double reduce(int bucket);
  void exchange_loop();

  Communicator& comm_;
  Net& net_;
  const bool overlap_;
  std::vector<Bucket> buckets_;
  std::vector<std::vector<int>> completed_by_layer_;  // learnable ids each layer completes
  std::vector<int> bucket_of_;                        // per learnable id; -1: not exchanged
  std::vector<Route> routes_;                         // per learnable id
  std::vector<Blob*> statistics_;                      // BatchNorm's, copied from the root
  bool armed_ = false;
  int launched_ = 0;

  // The exchange thread's queue (overlap only).
  std::thread exchanger_;
  mutable std::mutex mutex_;
  std::condition_variable work_, done_;
  std::deque<int> queue_;
  int finished_ = 0;
  bool stopping_ = false;
  std::exception_ptr error_;
  bool own_finite_ = true;  // CPU: this worker's gradients before the sums, this iteration
  Blob non_finite_flag_;    // GPU: the same, set by gpu::flag_non_finite
  Costs costs_;
};

}  // namespace engine
