// MpiCommunicator: the Communicator over MPI ranks (Debian's OpenMPI), for training under mpirun.
//
// Collectives are MPI's non-blocking ones, completed by polling with a deadline, so that a rank
// that never arrives cannot hang the others: when the timeout passes, the ranks that are waiting
// tell each other (on a duplicate of the communicator, so no collective's traffic mixes in) which
// collective they wait at, and the lowest of them ends the job with MPI_Abort and one message
// naming the collective, the ranks that never arrived and where those that arrived elsewhere
// wait. MPI itself ends every rank when one dies (mpirun's default).
//
// mpi_initialize() asks for MPI_THREAD_MULTIPLE: with model parallelism the solver's thread
// exchanges activations while the data-parallel exchange thread reduces gradients, each on its
// own communicator. Built without MPI, world() throws.
#pragma once

#include <memory>
#include <string>

#include "parallel/communicator.hpp"

namespace engine {

// Whether mpirun (or another PMI launcher) started this process.
bool launched_by_mpi();
// Initialises MPI once per process; MPI_Finalize runs at exit. Throws engine::Error when the
// engine was built without MPI.
void mpi_initialize();
// Whether several threads may be inside MPI at once (MPI_THREAD_MULTIPLE was granted).
bool mpi_threads_concurrent();

class MpiCommunicator : public Communicator {
 public:
  // Every rank of the job. `timeout_seconds` bounds every collective.
  static std::unique_ptr<MpiCommunicator> world(double timeout_seconds);
  ~MpiCommunicator() override;

  // Members with the same `color` form one communicator, ranked by `key`.
  std::unique_ptr<MpiCommunicator> split(int color, int key) const;

  int rank() const override;
  int size() const override;
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
  [[noreturn]] void abort(const std::string& message) override;
  double seconds_communicating() const override;

 private:
  struct State;
  explicit MpiCommunicator(std::unique_ptr<State> state);
  std::unique_ptr<State> state_;
};

}  // namespace engine
