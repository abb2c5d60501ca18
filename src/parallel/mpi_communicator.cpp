#include "parallel/mpi_communicator.hpp"

#include <algorithm>
#include <chrono>
#include <climits>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <sstream>
#include <thread>
#include <vector>

#include "core/errors.hpp"

#ifdef ENGINE_HAVE_MPI
#include <mpi.h>
#endif

namespace engine {

bool launched_by_mpi() {
  for (const char* variable : {"OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_SIZE"}) {
    if (std::getenv(variable)) return true;
  }
  return false;
}

#ifndef ENGINE_HAVE_MPI

void mpi_initialize() {
  ENGINE_FAIL("this engine was built without MPI; install libopenmpi-dev and rebuild");
}
bool mpi_threads_concurrent() { return false; }
struct MpiCommunicator::State {};
MpiCommunicator::MpiCommunicator(std::unique_ptr<State> state) : state_(std::move(state)) {}
MpiCommunicator::~MpiCommunicator() = default;
std::unique_ptr<MpiCommunicator> MpiCommunicator::world(double) { mpi_initialize(); return {}; }
std::unique_ptr<MpiCommunicator> MpiCommunicator::split(int, int) const { return {}; }
int MpiCommunicator::rank() const { return 0; }
int MpiCommunicator::size() const { return 1; }
int MpiCommunicator::global_rank() const { return 0; }
void MpiCommunicator::allreduce_sum(float*, size_t, const std::string&) {}
void MpiCommunicator::allgather(const float*, float*, size_t, const std::string&) {}
void MpiCommunicator::reduce_scatter_sum(const float*, float*, size_t, const std::string&) {}
void MpiCommunicator::broadcast(float*, size_t, int, const std::string&) {}
std::vector<std::string> MpiCommunicator::allgather_bytes(const std::string& mine,
                                                          const std::string&) {
  return {mine};
}
void MpiCommunicator::broadcast_bytes(std::string*, int, const std::string&, bool) {}
double MpiCommunicator::seconds_communicating() const { return 0; }
void MpiCommunicator::abort(const std::string& message) {
  std::fprintf(stderr, "%s\n", message.c_str());
  std::exit(1);
}

#else

namespace {

using Clock = std::chrono::steady_clock;

// MPI counts are ints: larger buffers travel in pieces of this many elements.
constexpr size_t kChunk = size_t(1) << 28;
constexpr int kTimeoutTag = 7001;

void finalize_at_exit() {
  int finalized = 0;
  MPI_Finalized(&finalized);
  if (!finalized) MPI_Finalize();
}

std::string join(const std::vector<int>& ranks) {
  std::ostringstream out;
  for (size_t i = 0; i < ranks.size(); ++i) out << (i ? ", " : "") << ranks[i];
  return out.str();
}

}  // namespace

static int thread_level = 0;  // what MPI_Init_thread granted

void mpi_initialize() {
  int initialized = 0;
  MPI_Initialized(&initialized);
  if (initialized) return;
  MPI_Init_thread(nullptr, nullptr, MPI_THREAD_MULTIPLE, &thread_level);
  // SERIALIZED is enough for data parallelism; model parallelism then exchanges gradients
  // after backward instead of during it (mpi_threads_concurrent()).
  ENGINE_REQUIRE(thread_level >= MPI_THREAD_SERIALIZED,
                 "this MPI library does not support MPI_THREAD_SERIALIZED (it provides level "
                     << thread_level << ")");
  std::atexit(finalize_at_exit);
}

bool mpi_threads_concurrent() { return thread_level >= MPI_THREAD_MULTIPLE; }

struct MpiCommunicator::State {
  MPI_Comm comm = MPI_COMM_NULL;
  MPI_Comm control = MPI_COMM_NULL;  // timeout reports only
  int rank = 0, size = 1;
  std::vector<int> world_ranks;  // of each member
  double timeout = 0;
  uint64_t sequence = 0;  // collectives issued on this communicator
  double seconds = 0;     // spent in complete()

  State(MPI_Comm from, double timeout_seconds) : timeout(timeout_seconds) {
    MPI_Comm_dup(from, &comm);
    MPI_Comm_dup(from, &control);
    MPI_Comm_rank(comm, &rank);
    MPI_Comm_size(comm, &size);
    world_ranks.resize(size);
    MPI_Group group, world_group;
    MPI_Comm_group(comm, &group);
    MPI_Comm_group(MPI_COMM_WORLD, &world_group);
    std::vector<int> members(size);
    for (int i = 0; i < size; ++i) members[i] = i;
    MPI_Group_translate_ranks(group, size, members.data(), world_group, world_ranks.data());
    MPI_Group_free(&group);
    MPI_Group_free(&world_group);
  }
  ~State() {
    int finalized = 0;
    MPI_Finalized(&finalized);
    if (finalized) return;
    MPI_Comm_free(&control);
    MPI_Comm_free(&comm);
  }

  // Waits for `request` by polling, so that a collective some rank never joins ends in a clear
  // error instead of a hang. A non-blocking collective advances only inside MPI_Test, round by
  // round, so for the first milliseconds it polls between yields (a yield hands the core to
  // the computation when it wants it); after that it sleeps in growing steps.
  void complete(MPI_Request* request, const std::string& what, bool unbounded = false) {
    ++sequence;
    const auto start = Clock::now();
    const auto deadline = unbounded ? Clock::time_point::max()
                                    : start + std::chrono::duration<double>(timeout);
    auto pause = std::chrono::microseconds(5);
    for (;;) {
      int done = 0;
      MPI_Test(request, &done, MPI_STATUS_IGNORE);
      if (done) {
        seconds += std::chrono::duration<double>(Clock::now() - start).count();
        return;
      }
      if (Clock::now() - start < std::chrono::milliseconds(20)) {
        std::this_thread::yield();
        continue;
      }
      if (Clock::now() > deadline) report_timeout(what);
      std::this_thread::sleep_for(pause);
      pause = std::min(pause * 2, std::chrono::microseconds(200));
    }
  }

  // Every waiting rank tells the others which collective it waits at, listens for a while, and
  // the lowest waiting rank ends the job naming who never came.
  [[noreturn]] void report_timeout(const std::string& what) {
    const int64_t mine = static_cast<int64_t>(sequence);
    std::vector<MPI_Request> sends;
    for (int q = 0; q < size; ++q) {
      if (q == rank) continue;
      sends.emplace_back();
      MPI_Isend(&mine, 1, MPI_INT64_T, q, kTimeoutTag, control, &sends.back());
    }
    std::map<int, int64_t> heard;
    const double grace = std::clamp(timeout / 2, 1.0, 10.0);
    const auto until = Clock::now() + std::chrono::duration<double>(grace);
    while (Clock::now() < until && static_cast<int>(heard.size()) < size - 1) {
      int flag = 0;
      MPI_Status status;
      MPI_Iprobe(MPI_ANY_SOURCE, kTimeoutTag, control, &flag, &status);
      if (!flag) {
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
        continue;
      }
      int64_t theirs = 0;
      MPI_Recv(&theirs, 1, MPI_INT64_T, status.MPI_SOURCE, kTimeoutTag, control,
               MPI_STATUS_IGNORE);
      heard[status.MPI_SOURCE] = theirs;
    }
    std::vector<int> absent, waiting = {world_ranks[rank]};
    std::ostringstream elsewhere;
    int lowest_waiting = rank;
    for (int q = 0; q < size; ++q) {
      if (q == rank) continue;
      const auto found = heard.find(q);
      if (found == heard.end()) {
        absent.push_back(world_ranks[q]);
      } else if (found->second == mine) {
        waiting.push_back(world_ranks[q]);
        lowest_waiting = std::min(lowest_waiting, q);
      } else {
        elsewhere << "; rank " << world_ranks[q] << " waits at collective #" << found->second
                  << " instead";
      }
    }
    std::sort(waiting.begin(), waiting.end());
    std::ostringstream message;
    message << "rank " << world_ranks[rank] << ": " << what << " (collective #" << mine
            << " among " << size << " ranks) did not complete within " << timeout
            << " s (--collective_timeout); ";
    if (absent.empty()) {
      message << "every rank reported in";
    } else {
      message << "rank" << (absent.size() > 1 ? "s " : " ") << join(absent) << " never arrived";
    }
    message << elsewhere.str() << " (waiting there: rank" << (waiting.size() > 1 ? "s " : " ")
            << join(waiting) << ")";
    // One message: the lowest waiting rank speaks; the others give it time to.
    if (lowest_waiting != rank) std::this_thread::sleep_for(std::chrono::duration<double>(grace));
    std::fprintf(stderr, "%s\n", message.str().c_str());
    std::fflush(stderr);
    MPI_Abort(MPI_COMM_WORLD, 1);
    std::exit(1);
  }
};

MpiCommunicator::MpiCommunicator(std::unique_ptr<State> state) : state_(std::move(state)) {}
MpiCommunicator::~MpiCommunicator() = default;

std::unique_ptr<MpiCommunicator> MpiCommunicator::world(double timeout_seconds) {
  mpi_initialize();
  ENGINE_REQUIRE(timeout_seconds > 0,
                 "--collective_timeout must be positive, got " << timeout_seconds);
  return std::unique_ptr<MpiCommunicator>(
      new MpiCommunicator(std::make_unique<State>(MPI_COMM_WORLD, timeout_seconds)));
}

std::unique_ptr<MpiCommunicator> MpiCommunicator::split(int color, int key) const {
  MPI_Comm part;
  MPI_Comm_split(state_->comm, color, key, &part);
  auto state = std::make_unique<State>(part, state_->timeout);
  MPI_Comm_free(&part);
  return std::unique_ptr<MpiCommunicator>(new MpiCommunicator(std::move(state)));
}

int MpiCommunicator::rank() const { return state_->rank; }
int MpiCommunicator::size() const { return state_->size; }
int MpiCommunicator::global_rank() const { return state_->world_ranks[state_->rank]; }

void MpiCommunicator::allreduce_sum(float* data, size_t count, const std::string& what) {
  bytes_communicated_ += count * sizeof(float);
  for (size_t start = 0; start < count; start += kChunk) {
    const int n = static_cast<int>(std::min(kChunk, count - start));
    MPI_Request request;
    MPI_Iallreduce(MPI_IN_PLACE, data + start, n, MPI_FLOAT, MPI_SUM, state_->comm, &request);
    state_->complete(&request, what);
  }
}

void MpiCommunicator::allgather(const float* send, float* receive, size_t count,
                                const std::string& what) {
  CHECK_LE(count * state_->size, size_t(INT_MAX)) << what;
  bytes_communicated_ += count * state_->size * sizeof(float);
  MPI_Request request;
  MPI_Iallgather(send, static_cast<int>(count), MPI_FLOAT, receive, static_cast<int>(count),
                 MPI_FLOAT, state_->comm, &request);
  state_->complete(&request, what);
}

void MpiCommunicator::reduce_scatter_sum(const float* send, float* receive, size_t count,
                                         const std::string& what) {
  CHECK_LE(count * state_->size, size_t(INT_MAX)) << what;
  bytes_communicated_ += count * state_->size * sizeof(float);
  MPI_Request request;
  MPI_Ireduce_scatter_block(send, receive, static_cast<int>(count), MPI_FLOAT, MPI_SUM,
                            state_->comm, &request);
  state_->complete(&request, what);
}

void MpiCommunicator::broadcast(float* data, size_t count, int root, const std::string& what) {
  bytes_communicated_ += count * sizeof(float);
  for (size_t start = 0; start < count; start += kChunk) {
    const int n = static_cast<int>(std::min(kChunk, count - start));
    MPI_Request request;
    MPI_Ibcast(data + start, n, MPI_FLOAT, root, state_->comm, &request);
    state_->complete(&request, what);
  }
}

std::vector<std::string> MpiCommunicator::allgather_bytes(const std::string& mine,
                                                          const std::string& what) {
  const int size = state_->size;
  int64_t length = static_cast<int64_t>(mine.size());
  std::vector<int64_t> lengths(size);
  MPI_Request request;
  MPI_Iallgather(&length, 1, MPI_INT64_T, lengths.data(), 1, MPI_INT64_T, state_->comm, &request);
  state_->complete(&request, what + " (sizes)");
  std::vector<int> counts(size), offsets(size);
  int64_t total = 0;
  for (int q = 0; q < size; ++q) {
    ENGINE_REQUIRE(total + lengths[q] <= INT_MAX, what << ": more than 2 GiB to gather");
    counts[q] = static_cast<int>(lengths[q]);
    offsets[q] = static_cast<int>(total);
    total += lengths[q];
  }
  std::string all(static_cast<size_t>(total), '\0');
  MPI_Iallgatherv(mine.data(), static_cast<int>(mine.size()), MPI_BYTE, all.data(), counts.data(),
                  offsets.data(), MPI_BYTE, state_->comm, &request);
  state_->complete(&request, what);
  bytes_communicated_ += static_cast<uint64_t>(total);
  std::vector<std::string> parts(size);
  for (int q = 0; q < size; ++q) parts[q] = all.substr(offsets[q], counts[q]);
  return parts;
}

void MpiCommunicator::broadcast_bytes(std::string* bytes, int root, const std::string& what,
                                      bool unbounded) {
  int64_t length = static_cast<int64_t>(bytes->size());
  MPI_Request request;
  MPI_Ibcast(&length, 1, MPI_INT64_T, root, state_->comm, &request);
  state_->complete(&request, what + " (size)", unbounded);
  bytes->resize(static_cast<size_t>(length));
  bytes_communicated_ += static_cast<uint64_t>(length);
  for (int64_t start = 0; start < length; start += int64_t(kChunk)) {
    const int n = static_cast<int>(std::min<int64_t>(kChunk, length - start));
    MPI_Ibcast(bytes->data() + start, n, MPI_BYTE, root, state_->comm, &request);
    state_->complete(&request, what);
  }
}

double MpiCommunicator::seconds_communicating() const { return state_->seconds; }

void MpiCommunicator::abort(const std::string& message) {
  std::fprintf(stderr, "%s\n", message.c_str());
  std::fflush(stderr);
  MPI_Abort(MPI_COMM_WORLD, 1);
  std::exit(1);
}

#endif  // ENGINE_HAVE_MPI

}  // namespace engine
