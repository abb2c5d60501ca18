#include "parallel/training.hpp"

#include <algorithm>
#include <cstdlib>
#include <exception>
#include <memory>
#include <mutex>
#include <sstream>
#include <thread>

#include <glog/logging.h>

#include "core/context.hpp"
#include "core/errors.hpp"
#include "io/prototxt.hpp"
#include "parallel/data_parallel.hpp"
#include "parallel/mpi_communicator.hpp"
#include "parallel/nccl_communicator.hpp"

namespace engine {

namespace {

uint64_t fnv1a(const std::string& bytes) {
  uint64_t hash = 0xcbf29ce484222325ull;
  for (unsigned char c : bytes) hash = (hash ^ c) * 0x100000001b3ull;
  return hash;
}

// What every rank must agree on: the solver's settings, the text of its net files and the
// flags the tool passes.
std::string training_identity(const TrainingOptions& options) {
  const SolverParameter& param = options.param;
  std::string identity = param.SerializeAsString() + options.identity + options.resume;
  std::vector<std::string> files = {param.net(), param.train_net()};
  files.insert(files.end(), param.test_net().begin(), param.test_net().end());
  for (const std::string& file : files) {
    if (!file.empty()) identity += read_file(file);
  }
  return std::to_string(fnv1a(identity));
}

void check_same_training(Communicator& comm, const TrainingOptions& options) {
  const std::vector<std::string> hashes =
      comm.allgather_bytes(training_identity(options), "the comparison of the ranks' files");
  std::vector<int> differing;
  for (size_t q = 1; q < hashes.size(); ++q) {
    if (hashes[q] != hashes[0]) differing.push_back(static_cast<int>(q));
  }
  if (differing.empty() || comm.rank() != 0) return;  // the root alone reports
  std::ostringstream ranks;
  for (size_t i = 0; i < differing.size(); ++i) ranks << (i ? ", " : "") << differing[i];
  ENGINE_FAIL("rank" << (differing.size() > 1 ? "s " : " ") << ranks.str()
                     << " would train something else than rank 0: their solver file ("
                     << options.solver_file
                     << "), its net files or the train flags differ; every rank must run the "
                        "same model");
}

int first_batch_size(const Net& net) {
  for (const Blobs& tops : net.top_vecs()) {
    if (!tops.empty() && tops[0]->num_axes() > 0) return tops[0]->shape(0);
  }
  return 1;
}

// One worker: shard `shard` of the data, `comm` (null or of size 1: alone).
void run_worker(const TrainingOptions& options, Communicator* comm) {
  const bool together = comm && comm->size() > 1;
  Context::set_data_shard(together ? comm->rank() : 0, together ? comm->size() : 1);
  std::unique_ptr<Solver> solver = make_solver(options.param, options.solver_file);
  std::unique_ptr<DataParallel> peers;
  if (together) {
    // The same seed made the same initial weights everywhere; from here each worker draws its
    // own dropout masks.
    if (options.param.random_seed() >= 0 && comm->rank() > 0) {
      Context::set_seed(static_cast<uint64_t>(options.param.random_seed()) * 1000003u +
                        static_cast<uint64_t>(comm->rank()));
    }
    peers = std::make_unique<DataParallel>(*comm, solver->net(), options.bucket_bytes,
                                           options.param.layer_wise_reduce());
    solver->set_peers(peers.get());
    const int batch = first_batch_size(solver->net());
    LOG(INFO) << "Data parallel: world size " << comm->size() << ", effective batch "
              << comm->size() << " x " << batch << " x " << options.param.iter_size()
              << " (workers x batch_size x iter_size) = "
              << comm->size() * batch * options.param.iter_size();
    LOG(INFO) << "Gradient buckets (" << (options.param.layer_wise_reduce() ? "" : "not ")
              << "overlapped with backward): " << peers->describe_buckets();
  }
  if (solver->is_root() && options.root_actions) solver->set_action_source(options.root_actions);
  if (options.prepare) options.prepare(*solver);
  LOG(INFO) << "Starting Optimization";
  const int start_iter = solver->iter();
  solver->solve(options.resume);
  if (peers) {
    const DataParallel::Costs costs = peers->costs();
    const double iterations = std::max(costs.iterations, 1);
    LOG(INFO) << "Gradient exchange over " << costs.iterations << " iterations (from "
              << start_iter << "): " << costs.bytes / iterations / 1e6
              << " MB per iteration handed to collectives, "
              << 1e3 * costs.exchange_seconds / iterations << " ms per iteration in them, "
              << 1e3 * costs.wait_seconds / iterations
              << " ms per iteration waited for by the solver";
  }
}

void train_under_mpi(const TrainingOptions& options) {
  std::unique_ptr<MpiCommunicator> world =
      MpiCommunicator::world(options.collective_timeout_seconds);
  // Only the root logs; warnings and errors still come from every rank.
  if (world->rank() > 0) FLAGS_minloglevel = std::max(FLAGS_minloglevel, 1);
  try {
    check_same_training(*world, options);
    if (options.gpus.empty()) return run_worker(options, world.get());
    // One GPU per rank: the ranks on one machine take the listed devices in turn.
    const char* local = std::getenv("OMPI_COMM_WORLD_LOCAL_RANK");
    const int local_rank = local ? std::atoi(local) : world->rank();
    const int device = options.gpus[local_rank % options.gpus.size()];
    options.use_device(device);
    std::unique_ptr<NcclCommunicator> nccl =
        NcclCommunicator::across(*world, device, options.collective_timeout_seconds);
    run_worker(options, nccl.get());
  } catch (const std::exception& error) {
    if (world->size() == 1) throw;
    world->abort("engine train: error: rank " + std::to_string(world->rank()) + ": " +
                 error.what());
  }
}

void train_on_devices(const TrainingOptions& options) {
  std::vector<std::unique_ptr<NcclCommunicator>> members =
      NcclCommunicator::clique(options.gpus, options.collective_timeout_seconds);
  std::vector<std::thread> threads;
  for (size_t i = 0; i < options.gpus.size(); ++i) {
    threads.emplace_back([&, i] {
      try {
        options.use_device(options.gpus[i]);
        run_worker(options, members[i].get());
      } catch (const std::exception& error) {
        // The other threads may wait in a collective forever: end the process.
        members[i]->abort("engine train: error: GPU " + std::to_string(options.gpus[i]) + ": " +
                          error.what());
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
}

}  // namespace

void train(const TrainingOptions& options) {
  if (launched_by_mpi()) return train_under_mpi(options);
  if (options.gpus.size() > 1) return train_on_devices(options);
  if (options.gpus.size() == 1) options.use_device(options.gpus[0]);
  run_worker(options, nullptr);
}

}  // namespace engine
