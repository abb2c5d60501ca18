// NcclCommunicator: the Communicator over NCCL, one member per GPU: the threads of one process
// (clique) or MPI ranks with one device each (across). Buffers are device memory; collectives
// are enqueued on the legacy default stream, in order with the computation, and return at once.
// synchronize() waits for them with the timeout, watching ncclCommGetAsyncError; when the
// timeout passes it aborts the NCCL communicator and ends the job with a message naming the
// member and the collective (NCCL cannot say which peer is missing, unlike MPI). Host bytes
// travel through a device buffer. Built without NCCL, the factories throw engine::Error.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "parallel/communicator.hpp"

namespace engine {

class MpiCommunicator;

class NcclCommunicator : public Communicator {
 public:
  // One member per device, in device order, all in this process; each is then used by its own
  // thread, which has made its device current.
  static std::vector<std::unique_ptr<NcclCommunicator>> clique(const std::vector<int>& devices,
                                                               double timeout_seconds);
  // This rank's member, on `device` (current on the calling thread), across the ranks of `mpi`.
  static std::unique_ptr<NcclCommunicator> across(MpiCommunicator& mpi, int device,
                                                  double timeout_seconds);
  // pycaffe's way: each process, one per GPU, joins with the same id (new_unique_id() made it in
  // one of them and the caller passed it on) and its own rank.
  static std::string new_unique_id();
  static std::unique_ptr<NcclCommunicator> with_unique_id(const std::string& id, int rank,
                                                          int size, int device,
                                                          double timeout_seconds);
  ~NcclCommunicator() override;

  int rank() const override;
  int size() const override;
  bool device_memory() const override { return true; }
  int global_rank() const override;
  void allreduce_sum(float* data, size_t count, const std::string& what) override;
  void allgather(const float* send, float* receive, size_t count,
                 const std::string& what) override;
  void reduce_scatter_sum(const float* send, float* receive, size_t count,
                          const std::string& what) override;
  void broadcast(float* data, size_t count, int root, const std::string& what) override;
  std::vector<std::string> allgather_bytes(const std::string& mine,
                                           const std::string& what) override;
  void broadcast_bytes(std::string* bytes, int root, const std::string& what,
                       bool unbounded = false) override;
  void synchronize(const std::string& what) override { synchronize(what, false); }
  void synchronize(const std::string& what, bool unbounded);
  [[noreturn]] void abort(const std::string& message) override;

 private:
  struct State;
  explicit NcclCommunicator(std::unique_ptr<State> state);
  std::unique_ptr<State> state_;
};

}  // namespace engine
