// Communicator: the collectives that parallel training uses, one interface over MPI ranks
// (mpi_communicator.cpp) and NCCL devices (nccl_communicator.cpp).
//
// Every member calls the same collectives in the same order. Buffers are host memory for MPI
// and device memory for NCCL, whose calls are ordered on the device's compute stream. `what`
// names the collective ("gradient bucket 2 of 5 (conv5, fc6)") for the error a timeout raises:
// a collective that has not completed within the communicator's timeout ends every member's
// process with one message naming the ranks that never arrived. One thread at a time may use a
// communicator.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace engine {

class Communicator {
 public:
  virtual ~Communicator() = default;

  virtual int rank() const = 0;
  virtual int size() const = 0;
  // Whether the buffers are device memory (NCCL) rather than host memory (MPI).
  virtual bool device_memory() const { return false; }
  // This member's rank in the whole job (its MPI world rank; its device's index with NCCL
  // inside one process): what messages name.
  virtual int global_rank() const { return rank(); }

  // Elementwise sum over the members, in place.
  virtual void allreduce_sum(float* data, size_t count, const std::string& what) = 0;
  // `receive` holds size() * count values: member r's `send` lands at r * count.
  virtual void allgather(const float* send, float* receive, size_t count,
                         const std::string& what) = 0;
  // `send` holds size() * count values; member r receives the sum of every member's part r.
  virtual void reduce_scatter_sum(const float* send, float* receive, size_t count,
                                  const std::string& what) = 0;
  // Makes `data` on every member equal to the root's.
  virtual void broadcast(float* data, size_t count, int root, const std::string& what) = 0;
  // Host bytes: every member's `mine`, in rank order, on every member; and the root's bytes on
  // every member. For states, hashes and small messages, not for the hot path.
  virtual std::vector<std::string> allgather_bytes(const std::string& mine,
                                                   const std::string& what) = 0;
  // `unbounded`: the members may wait here while the root works alone (tests, writing or
  // reading snapshots), for any time: no timeout.
  virtual void broadcast_bytes(std::string* bytes, int root, const std::string& what,
                               bool unbounded = false) = 0;
  // Returns when every collective issued so far has completed (NCCL's run asynchronously; MPI's
  // have completed when their call returns).
  virtual void synchronize(const std::string& what) {}

  // Ends every member's process: prints `message` once and exits with status 1.
  [[noreturn]] virtual void abort(const std::string& message) = 0;

  // Payload bytes this member has handed to collectives so far (count * 4 for a float
  // allreduce): what the benchmarks report per iteration.
  uint64_t bytes_communicated() const { return bytes_communicated_; }
  // Seconds this member has spent waiting for collectives to complete (0 where not measured).
  virtual double seconds_communicating() const { return 0; }

 protected:
  uint64_t bytes_communicated_ = 0;
};

}  // namespace engine
