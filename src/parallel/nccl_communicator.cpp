#include "parallel/nccl_communicator.hpp"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <thread>

#include "core/errors.hpp"
#include "parallel/mpi_communicator.hpp"

#ifdef ENGINE_HAVE_NCCL
#include <cuda_runtime.h>
#include <nccl.h>
#endif

namespace engine {

#ifndef ENGINE_HAVE_NCCL

namespace {
[[noreturn]] void unavailable() {
  ENGINE_FAIL("this engine was built without NCCL (the CUDA toolkit's libnccl), so it cannot "
              "train on several GPUs");
}
}  // namespace

struct NcclCommunicator::State {};
NcclCommunicator::NcclCommunicator(std::unique_ptr<State> state) : state_(std::move(state)) {}
NcclCommunicator::~NcclCommunicator() = default;
std::vector<std::unique_ptr<NcclCommunicator>> NcclCommunicator::clique(const std::vector<int>&,
                                                                        double) {
  unavailable();
}
std::unique_ptr<NcclCommunicator> NcclCommunicator::across(MpiCommunicator&, int, double) {
  unavailable();
}
std::string NcclCommunicator::new_unique_id() { unavailable(); }
std::unique_ptr<NcclCommunicator> NcclCommunicator::with_unique_id(const std::string&, int, int,
                                                                   int, double) {
  unavailable();
}
int NcclCommunicator::rank() const { return 0; }
int NcclCommunicator::size() const { return 1; }
int NcclCommunicator::global_rank() const { return 0; }
void NcclCommunicator::allreduce_sum(float*, size_t, const std::string&) { unavailable(); }
void NcclCommunicator::allgather(const float*, float*, size_t, const std::string&) {
  unavailable();
}
void NcclCommunicator::reduce_scatter_sum(const float*, float*, size_t, const std::string&) {
  unavailable();
}
void NcclCommunicator::broadcast(float*, size_t, int, const std::string&) { unavailable(); }
std::vector<std::string> NcclCommunicator::allgather_bytes(const std::string&,
                                                           const std::string&) {
  unavailable();
}
void NcclCommunicator::broadcast_bytes(std::string*, int, const std::string&, bool) {
  unavailable();
}
void NcclCommunicator::synchronize(const std::string&, bool) {}
void NcclCommunicator::abort(const std::string& message) {
  std::fprintf(stderr, "%s\n", message.c_str());
  std::exit(1);
}

#else

#define ENGINE_NCCL_REQUIRE(call)                                                       \
  do {                                                                                  \
    const ncclResult_t engine_nccl_status_ = (call);                                    \
    ENGINE_REQUIRE(engine_nccl_status_ == ncclSuccess,                                  \
                   #call << ": " << ncclGetErrorString(engine_nccl_status_));           \
  } while (0)

struct NcclCommunicator::State {
  ncclComm_t comm = nullptr;
  int rank = 0, size = 1, global_rank = 0, device = 0;
  double timeout = 0;
  MpiCommunicator* mpi = nullptr;  // across ranks: ends the whole job on abort
  char* staging = nullptr;         // device memory for host bytes
  size_t staging_bytes = 0;

  ~State() {
    if (comm) ncclCommDestroy(comm);
    if (staging) cudaFree(staging);
  }
  char* stage(size_t bytes) {
    if (bytes > staging_bytes) {
      if (staging) ENGINE_CUDA_CHECK(cudaFree(staging));
      ENGINE_CUDA_CHECK(cudaMalloc(&staging, bytes));
      staging_bytes = bytes;
    }
    return staging;
  }
};

NcclCommunicator::NcclCommunicator(std::unique_ptr<State> state) : state_(std::move(state)) {}
NcclCommunicator::~NcclCommunicator() = default;

std::vector<std::unique_ptr<NcclCommunicator>> NcclCommunicator::clique(
    const std::vector<int>& devices, double timeout_seconds) {
  std::vector<ncclComm_t> comms(devices.size());
  ENGINE_NCCL_REQUIRE(
      ncclCommInitAll(comms.data(), static_cast<int>(devices.size()), devices.data()));
  std::vector<std::unique_ptr<NcclCommunicator>> members;
  for (size_t i = 0; i < devices.size(); ++i) {
    auto state = std::make_unique<State>();
    state->comm = comms[i];
    state->rank = state->global_rank = static_cast<int>(i);
    state->size = static_cast<int>(devices.size());
    state->device = devices[i];
    state->timeout = timeout_seconds;
    members.emplace_back(new NcclCommunicator(std::move(state)));
  }
  return members;
}

std::unique_ptr<NcclCommunicator> NcclCommunicator::across(MpiCommunicator& mpi, int device,
                                                           double timeout_seconds) {
  ncclUniqueId id;
  if (mpi.rank() == 0) ENGINE_NCCL_REQUIRE(ncclGetUniqueId(&id));
  std::string bytes(reinterpret_cast<const char*>(&id), sizeof(id));
  mpi.broadcast_bytes(&bytes, 0, "the NCCL id");
  std::memcpy(&id, bytes.data(), sizeof(id));
  auto state = std::make_unique<State>();
  ENGINE_NCCL_REQUIRE(ncclCommInitRank(&state->comm, mpi.size(), id, mpi.rank()));
  state->rank = mpi.rank();
  state->size = mpi.size();
  state->global_rank = mpi.global_rank();
  state->device = device;
  state->timeout = timeout_seconds;
  state->mpi = &mpi;
  return std::unique_ptr<NcclCommunicator>(new NcclCommunicator(std::move(state)));
}

std::string NcclCommunicator::new_unique_id() {
  ncclUniqueId id;
  ENGINE_NCCL_REQUIRE(ncclGetUniqueId(&id));
  return std::string(reinterpret_cast<const char*>(&id), sizeof(id));
}

std::unique_ptr<NcclCommunicator> NcclCommunicator::with_unique_id(const std::string& id_bytes,
                                                                   int rank, int size, int device,
                                                                   double timeout_seconds) {
  ncclUniqueId id;
  ENGINE_REQUIRE(id_bytes.size() == sizeof(id),
                 "an NCCL id is " << sizeof(id) << " bytes (from NCCL.new_uid()), got "
                                  << id_bytes.size());
  ENGINE_REQUIRE(size >= 1 && rank >= 0 && rank < size,
                 "NCCL: rank " << rank << " of " << size << " solvers (set_solver_rank and "
                               "set_solver_count)");
  std::memcpy(&id, id_bytes.data(), sizeof(id));
  ENGINE_CUDA_CHECK(cudaSetDevice(device));
  auto state = std::make_unique<State>();
  ENGINE_NCCL_REQUIRE(ncclCommInitRank(&state->comm, size, id, rank));
  state->rank = state->global_rank = rank;
  state->size = size;
  state->device = device;
  state->timeout = timeout_seconds;
  return std::unique_ptr<NcclCommunicator>(new NcclCommunicator(std::move(state)));
}

int NcclCommunicator::rank() const { return state_->rank; }
int NcclCommunicator::size() const { return state_->size; }
int NcclCommunicator::global_rank() const { return state_->global_rank; }

void NcclCommunicator::allreduce_sum(float* data, size_t count, const std::string& what) {
  bytes_communicated_ += count * sizeof(float);
  ENGINE_NCCL_REQUIRE(ncclAllReduce(data, data, count, ncclFloat, ncclSum, state_->comm, 0));
}

void NcclCommunicator::allgather(const float* send, float* receive, size_t count,
                                 const std::string& what) {
  bytes_communicated_ += count * state_->size * sizeof(float);
  ENGINE_NCCL_REQUIRE(ncclAllGather(send, receive, count, ncclFloat, state_->comm, 0));
}

void NcclCommunicator::reduce_scatter_sum(const float* send, float* receive, size_t count,
                                          const std::string& what) {
  bytes_communicated_ += count * state_->size * sizeof(float);
  ENGINE_NCCL_REQUIRE(
      ncclReduceScatter(send, receive, count, ncclFloat, ncclSum, state_->comm, 0));
}

void NcclCommunicator::broadcast(float* data, size_t count, int root, const std::string& what) {
  bytes_communicated_ += count * sizeof(float);
  ENGINE_NCCL_REQUIRE(ncclBroadcast(data, data, count, ncclFloat, root, state_->comm, 0));
}

std::vector<std::string> NcclCommunicator::allgather_bytes(const std::string& mine,
                                                           const std::string& what) {
  const int size = state_->size;
  // Lengths first, then every member's bytes padded to the longest.
  int64_t length = static_cast<int64_t>(mine.size());
  auto* lengths_device = reinterpret_cast<int64_t*>(state_->stage(sizeof(int64_t) * (size + 1)));
  ENGINE_CUDA_CHECK(cudaMemcpy(lengths_device + size, &length, sizeof(length),
                               cudaMemcpyHostToDevice));
  ENGINE_NCCL_REQUIRE(
      ncclAllGather(lengths_device + size, lengths_device, 1, ncclInt64, state_->comm, 0));
  synchronize(what + " (sizes)");
  std::vector<int64_t> lengths(size);
  ENGINE_CUDA_CHECK(cudaMemcpy(lengths.data(), lengths_device, sizeof(int64_t) * size,
                               cudaMemcpyDeviceToHost));
  int64_t longest = 1;
  for (int64_t l : lengths) longest = std::max(longest, l);
  char* device = state_->stage(size_t(longest) * (size + 1));
  char* own = device + size_t(longest) * size;
  ENGINE_CUDA_CHECK(cudaMemcpy(own, mine.data(), mine.size(), cudaMemcpyHostToDevice));
  ENGINE_NCCL_REQUIRE(ncclAllGather(own, device, size_t(longest), ncclChar, state_->comm, 0));
  synchronize(what);
  std::string all(size_t(longest) * size, '\0');
  ENGINE_CUDA_CHECK(cudaMemcpy(all.data(), device, all.size(), cudaMemcpyDeviceToHost));
  bytes_communicated_ += all.size();
  std::vector<std::string> parts(size);
  for (int q = 0; q < size; ++q) parts[q] = all.substr(size_t(longest) * q, size_t(lengths[q]));
  return parts;
}

void NcclCommunicator::broadcast_bytes(std::string* bytes, int root, const std::string& what,
                                       bool unbounded) {
  int64_t length = static_cast<int64_t>(bytes->size());
  auto* length_device = reinterpret_cast<int64_t*>(state_->stage(sizeof(int64_t)));
  ENGINE_CUDA_CHECK(cudaMemcpy(length_device, &length, sizeof(length), cudaMemcpyHostToDevice));
  ENGINE_NCCL_REQUIRE(
      ncclBroadcast(length_device, length_device, 1, ncclInt64, root, state_->comm, 0));
  synchronize(what + " (size)", unbounded);
  ENGINE_CUDA_CHECK(cudaMemcpy(&length, length_device, sizeof(length), cudaMemcpyDeviceToHost));
  bytes->resize(static_cast<size_t>(length));
  if (length == 0) return;
  char* device = state_->stage(static_cast<size_t>(length));
  ENGINE_CUDA_CHECK(cudaMemcpy(device, bytes->data(), bytes->size(), cudaMemcpyHostToDevice));
  ENGINE_NCCL_REQUIRE(ncclBroadcast(device, device, bytes->size(), ncclChar, root,
                                    state_->comm, 0));
  synchronize(what);
  ENGINE_CUDA_CHECK(cudaMemcpy(bytes->data(), device, bytes->size(), cudaMemcpyDeviceToHost));
  bytes_communicated_ += bytes->size();
}

void NcclCommunicator::synchronize(const std::string& what, bool unbounded) {
  const auto deadline =
      unbounded ? std::chrono::steady_clock::time_point::max()
                : std::chrono::steady_clock::now() + std::chrono::duration<double>(state_->timeout);
  for (;;) {
    const cudaError_t status = cudaStreamQuery(0);
    if (status == cudaSuccess) return;
    if (status != cudaErrorNotReady) {
      abort("GPU " + std::to_string(state_->device) + " (rank " +
            std::to_string(state_->global_rank) + "): " + what + " failed: " +
            cudaGetErrorString(status));
    }
    ncclResult_t async = ncclSuccess;
    ncclCommGetAsyncError(state_->comm, &async);
    if (async != ncclSuccess && async != ncclInProgress) {
      ncclCommAbort(state_->comm);
      state_->comm = nullptr;
      abort("GPU " + std::to_string(state_->device) + " (rank " +
            std::to_string(state_->global_rank) + "): " + what + " failed: " +
            ncclGetErrorString(async));
    }
    if (std::chrono::steady_clock::now() > deadline) {
      ncclCommAbort(state_->comm);
      state_->comm = nullptr;
      abort("GPU " + std::to_string(state_->device) + " (rank " +
            std::to_string(state_->global_rank) + "): " + what + " did not complete within " +
            std::to_string(state_->timeout) +
            " s (--collective_timeout); a peer never arrived (NCCL does not say which)");
    }
    std::this_thread::sleep_for(std::chrono::microseconds(50));
  }
}

void NcclCommunicator::abort(const std::string& message) {
  if (state_->mpi) state_->mpi->abort(message);
  std::fprintf(stderr, "%s\n", message.c_str());
  std::fflush(stderr);
  std::_Exit(1);
}

#endif  // ENGINE_HAVE_NCCL

}  // namespace engine
