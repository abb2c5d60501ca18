#include "parallel/training.hpp"

#include <algorithm>
#include <cstdlib>
#include <exception>
#include <memory>
#include <mutex>
#include <sstream>
#include <set>
#include <thread>

#include <glog/logging.h>

#include "core/context.hpp"
#include "core/errors.hpp"
#include "io/prototxt.hpp"
#include "io/caffemodel.hpp"
#include "io/upgrade.hpp"
#include "parallel/data_parallel.hpp"
#include "parallel/model_parallel.hpp"
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
  std::string identity = param.SerializeAsString() + options.identity + options.resume + "|" +
                         std::to_string(options.model_parallel) + "|" +
                         std::to_string(options.bucket_bytes);
  for (const std::string& file : options.weights) identity += "|" + file;
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

// Where one worker stands among the others.
struct Worker {
  Communicator* world = nullptr;     // every worker; null when training alone
  Communicator* group = nullptr;     // its model-parallel group; null without
  Communicator* replicas = nullptr;  // its counterparts in the other groups
  int shard = 0, shards = 1;         // its part of the training data
  int member = 0, workers = 1;       // its place in its model-parallel group
  std::set<std::string> split_layers;
  bool fully_connected_only = false;  // the hybrid
};

// The solver's nets, read into the parameter and rewritten for a model-parallel worker.
SolverParameter split_solver(const SolverParameter& param, int workers, int worker,
                             bool fully_connected_only, std::set<std::string>* split_layers) {
  SolverParameter result = param;
  auto split = [&](const NetParameter& net, const std::string& source) {
    SplitNet part = split_net(net, workers, worker, source, fully_connected_only);
    split_layers->insert(part.split_layers.begin(), part.split_layers.end());
    if (worker == 0) {
      for (const std::string& line : part.exchanges) LOG(INFO) << "  exchange before " << line;
    }
    return part.net;
  };
  if (param.has_net()) {
    *result.mutable_net_param() = split(read_net_text_file(param.net()), param.net());
    result.clear_net();
  } else if (param.has_net_param()) {
    *result.mutable_net_param() = split(param.net_param(), "the solver's net_param");
  }
  if (param.has_train_net()) {
    *result.mutable_train_net_param() =
        split(read_net_text_file(param.train_net()), param.train_net());
    result.clear_train_net();
  } else if (param.has_train_net_param()) {
    *result.mutable_train_net_param() =
        split(param.train_net_param(), "the solver's train_net_param");
  }
  // Test nets: test_net_param entries, then test_net files, as the solver orders them.
  result.clear_test_net_param();
  result.clear_test_net();
  for (const NetParameter& net : param.test_net_param()) {
    *result.add_test_net_param() = split(net, "the solver's test_net_param");
  }
  for (const std::string& file : param.test_net()) {
    *result.add_test_net_param() = split(read_net_text_file(file), file);
  }
  return result;
}

// A model-parallel worker starts from its slices of the weights a lone run would start from
// (the same on every rank), not from fillers run on its slices: those would repeat one
// worker's filters on the others and see a fan-out divided by the workers.
NetParameter initial_whole_model(const TrainingOptions& options) {
  Context::set_data_shard(0, 1);
  Context::set_model_group(nullptr);
  NetParameter whole;
  make_solver(options.param, options.solver_file)->net().to_proto(&whole);
  return whole;
}

void run_worker(const TrainingOptions& options, const SolverParameter& param,
                const Worker& worker) {
  const bool together = worker.world && worker.world->size() > 1;
  ENGINE_REQUIRE(!worker.group || param.clip_gradients() < 0,
                 options.solver_file << ": clip_gradients does not work with model parallelism "
                                        "yet (each worker would clip by its own slices' norm)");
  const NetParameter whole = worker.group ? initial_whole_model(options) : NetParameter();
  Context::set_data_shard(worker.shard, worker.shards);
  Context::set_model_group(worker.group);
  std::unique_ptr<Solver> solver = make_solver(param, options.solver_file);
  if (worker.group) {
    copy_weight_slices(whole, worker.split_layers, worker.workers, worker.member, &solver->net());
  }
  std::unique_ptr<SolverPeers> peers;
  DataParallel* data_parallel = nullptr;
  if (together) {
    // The same seed made the same initial weights everywhere; from here each copy of the model
    // draws its own dropout masks (a group's workers, which run the same images, share theirs).
    if (worker.shard > 0) {
      const uint64_t seed =
          param.random_seed() >= 0 ? static_cast<uint64_t>(param.random_seed()) : 1701u;
      Context::set_seed(seed * 1000003u + static_cast<uint64_t>(worker.shard));
    }
    if (worker.group) {
      // Gradients during backward need a second thread inside MPI while the solver's exchanges
      // activations: only where MPI allows concurrent calls.
      const bool overlap = param.layer_wise_reduce() &&
                           (mpi_threads_concurrent() || worker.group->device_memory());
      auto model_parallel = std::make_unique<ModelParallel>(
          *worker.world, *worker.group, worker.replicas, solver->net(), worker.split_layers,
          worker.fully_connected_only, worker.shards, options.bucket_bytes, overlap);
      data_parallel = model_parallel->data_parallel();
      peers = std::move(model_parallel);
    } else {
      auto alone = std::make_unique<DataParallel>(*worker.world, solver->net(),
                                                  options.bucket_bytes, param.layer_wise_reduce());
      data_parallel = alone.get();
      peers = std::move(alone);
    }
    solver->set_peers(peers.get());
    const int batch = first_batch_size(solver->net());
    LOG(INFO) << "Data parallel: world size " << worker.world->size() << ", effective batch "
              << worker.shards << " x " << batch << " x " << param.iter_size()
              << " (copies of the model x batch_size x iter_size) = "
              << worker.shards * batch * param.iter_size();
    if (data_parallel) {
      LOG(INFO) << "Gradient buckets (" << (data_parallel->overlaps() ? "" : "not ")
                << "overlapped with backward): " << data_parallel->describe_buckets();
    }
  }
  if (solver->is_root() && options.root_actions) solver->set_action_source(options.root_actions);
  for (const std::string& file : options.weights) {
    if (peers && peers->holds_slices()) {
      peers->load_model(read_caffemodel(file), &solver->net());
    } else {
      copy_weights_from_file(file, &solver->net());
    }
    LOG(INFO) << "Copied weights from " << file;
  }
  LOG(INFO) << "Starting Optimization";
  const int start_iter = solver->iter();
  solver->solve(options.resume);
  if (worker.group) {
    // The activations' exchanges, inside forward and backward.
    const double iterations = std::max(solver->iter() - start_iter, 1);
    LOG(INFO) << "Model-parallel exchange over " << solver->iter() - start_iter
              << " iterations: " << worker.group->bytes_communicated() / iterations / 1e6
              << " MB per iteration handed to collectives, "
              << 1e3 * worker.group->seconds_communicating() / iterations
              << " ms per iteration in them (tests and snapshots included)";
  }
  if (data_parallel) {
    const DataParallel::Costs costs = data_parallel->costs();
    const double iterations = std::max(costs.iterations, 1);
    LOG(INFO) << "Gradient exchange over " << costs.iterations << " iterations (from "
              << start_iter << "): " << costs.bytes / iterations / 1e6
              << " MB per iteration handed to collectives, "
              << 1e3 * costs.exchange_seconds / iterations << " ms per iteration in them, "
              << 1e3 * costs.wait_seconds / iterations
              << " ms per iteration waited for by the solver";
  }
  Context::set_model_group(nullptr);
}

int model_parallel_of(const TrainingOptions& options) {
  const int workers = options.model_parallel > 0 ? options.model_parallel
                                                 : options.param.model_parallel();
  ENGINE_REQUIRE(workers >= 1, "--model_parallel must be at least 1, got " << workers);
  return workers;
}

// A model-parallel worker's solver, with its log lines: member `member` of group `group` (of
// `groups`) of `workers`. Every worker reads its own images in the hybrid (the shard the caller
// set); otherwise a group's workers share the group's.
SolverParameter model_parallel_solver(const TrainingOptions& options, int workers, int member,
                                      int group, int groups, Worker* worker) {
  worker->fully_connected_only =
      options.param.model_parallel_scope() == SolverParameter::FULLY_CONNECTED;
  worker->member = member;
  worker->workers = workers;
  if (worker->fully_connected_only) {
    // The hybrid: every worker its own images, through the convolutions.
    LOG(INFO) << "Model parallel, hybrid: " << groups << " group(s) of " << workers
              << " workers; convolutions data parallel, each worker holds 1/" << workers
              << " of every InnerProduct and computes it on the group's images";
  } else {
    worker->shard = group;
    worker->shards = groups;
    LOG(INFO) << "Model parallel: " << groups << " group(s) of " << workers
              << " workers; each worker holds 1/" << workers
              << " of every Convolution and InnerProduct";
  }
  return split_solver(options.param, workers, member, worker->fully_connected_only,
                      &worker->split_layers);
}

void train_under_mpi(const TrainingOptions& options) {
  std::unique_ptr<MpiCommunicator> world =
      MpiCommunicator::world(options.collective_timeout_seconds);
  // Only the root logs; warnings and errors still come from every rank.
  if (world->rank() > 0) FLAGS_minloglevel = std::max(FLAGS_minloglevel, 1);
  try {
    check_same_training(*world, options);
    const int workers = model_parallel_of(options);
    ENGINE_REQUIRE(world->size() % workers == 0,
                   "--model_parallel=" << workers << " does not divide the " << world->size()
                                       << " ranks of this job: every group needs " << workers
                                       << " ranks (mpirun -np " << workers << ", "
                                       << 2 * workers << ", ...)");
    const int groups = world->size() / workers;
    const int group = world->rank() / workers, member = world->rank() % workers;
    std::unique_ptr<MpiCommunicator> group_mpi, replicas_mpi;
    if (workers > 1) {
      group_mpi = world->split(group, member);
      replicas_mpi = world->split(member, group);
    }
    Worker worker;
    worker.world = world.get();
    worker.group = group_mpi.get();
    worker.replicas = replicas_mpi.get();
    // On GPUs, one per rank (the ranks of a machine take the listed devices in turn), and NCCL
    // over the same members.
    std::unique_ptr<NcclCommunicator> world_nccl, group_nccl, replicas_nccl;
    if (!options.gpus.empty()) {
      const char* local = std::getenv("OMPI_COMM_WORLD_LOCAL_RANK");
      const char* local_size = std::getenv("OMPI_COMM_WORLD_LOCAL_SIZE");
      const int local_rank = local ? std::atoi(local) : world->rank();
      const int ranks_here = local_size ? std::atoi(local_size) : 1;
      ENGINE_REQUIRE(ranks_here <= static_cast<int>(options.gpus.size()),
                     ranks_here << " ranks run on this machine but --gpu names "
                                << options.gpus.size() << " GPU(s): one GPU per rank");
      const int device = options.gpus[local_rank];
      options.use_device(device);
      const double timeout = options.collective_timeout_seconds;
      world_nccl = NcclCommunicator::across(*world, device, timeout);
      worker.world = world_nccl.get();
      if (workers > 1) {
        group_nccl = NcclCommunicator::across(*group_mpi, device, timeout);
        replicas_nccl = NcclCommunicator::across(*replicas_mpi, device, timeout);
        worker.group = group_nccl.get();
        worker.replicas = replicas_nccl.get();
      }
    }
    worker.shard = world->rank();
    worker.shards = world->size();
    const SolverParameter param =
        workers > 1 ? model_parallel_solver(options, workers, member, group, groups, &worker)
                    : options.param;
    run_worker(options, param, worker);
  } catch (const std::exception& error) {
    if (world->size() == 1) throw;
    world->abort("engine train: error: rank " + std::to_string(world->rank()) + ": " +
                 error.what());
  }
}

// One thread per GPU, NCCL between them; with model parallelism, the GPUs are one group.
void train_on_devices(const TrainingOptions& options) {
  const int devices = static_cast<int>(options.gpus.size());
  const int workers = model_parallel_of(options);
  ENGINE_REQUIRE(workers == 1 || workers == devices,
                 "--model_parallel=" << workers << " with " << devices
                                     << " GPUs in one process: the GPUs form one group, so give "
                                        "--model_parallel=" << devices
                                     << " (several groups need mpirun, one GPU per rank)");
  std::vector<std::unique_ptr<NcclCommunicator>> members =
      NcclCommunicator::clique(options.gpus, options.collective_timeout_seconds);
  std::vector<std::thread> threads;
  for (int i = 0; i < devices; ++i) {
    threads.emplace_back([&, i] {
      try {
        options.use_device(options.gpus[i]);
        Worker worker;
        worker.world = members[i].get();
        worker.shard = i;
        worker.shards = devices;
        SolverParameter param = options.param;
        if (workers > 1) {
          worker.group = members[i].get();
          param = model_parallel_solver(options, workers, i, 0, 1, &worker);
        }
        run_worker(options, param, worker);
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
  const int workers = model_parallel_of(options);
  ENGINE_REQUIRE(workers == 1, "--model_parallel=" << workers << " needs " << workers
                                                   << " MPI ranks: run it under mpirun -np "
                                                   << workers);
  if (options.gpus.size() > 1) return train_on_devices(options);
  if (options.gpus.size() == 1) options.use_device(options.gpus[0]);
  run_worker(options, options.param, Worker());
}

}  // namespace engine
