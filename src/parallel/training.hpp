// Training with workers: what `engine train` runs.
//
// A lone process trains by itself. Under mpirun every rank is a data-parallel worker on its own
// shard of the data (one GPU each when devices are given, with NCCL between them; MPI between
// CPU ranks). With several devices and no mpirun, one thread per GPU is a worker, NCCL between
// them. Before training the ranks compare a hash of their solver and net files and refuse to
// start when they differ. Only the root (rank 0) logs, tests and snapshots; an error on any
// worker ends every worker with one message naming the rank (or GPU) and the cause.
//
// With model_parallel = W > 1 (under mpirun, on the CPU) the ranks form groups of W: each group
// trains one copy of the model split W ways (parallel/model_parallel.hpp), and the groups are
// data parallel with each other. Snapshots hold the whole model.
#pragma once

#include <cstddef>
#include <functional>
#include <string>
#include <vector>

#include "engine.pb.h"
#include "solvers/solver.hpp"

namespace engine {

struct TrainingOptions {
  SolverParameter param;
  std::string solver_file;
  std::string resume;     // a .solverstate to continue from, or ""
  std::vector<int> gpus;  // the devices to train on; empty: the CPU (or the device already set)
  // Makes the calling thread compute on a GPU (mode, device, cuDNN settings).
  std::function<void(int device)> use_device;
  // Pretrained weights (.caffemodel files) to start from, applied in order.
  std::vector<std::string> weights;
  // Workers per model-parallel group; 0 takes the solver's model_parallel.
  int model_parallel = 0;
  // Polled by the root once per iteration (signals); its answer goes to every worker.
  std::function<SolverAction()> root_actions;
  double collective_timeout_seconds = 300;
  size_t bucket_bytes = size_t(4) << 20;
  // Extra text whose difference between ranks must stop the run (command-line flags).
  std::string identity;
};

void train(const TrainingOptions& options);

}  // namespace engine
