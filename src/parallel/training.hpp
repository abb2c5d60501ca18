// Training with workers: what `engine train` runs.
//
// A lone process trains by itself. Under mpirun every rank is a data-parallel worker on its own
// shard of the data (one GPU each when devices are given, with NCCL between them; MPI between
// CPU ranks). With several devices and no mpirun, one thread per GPU is a worker, NCCL between
// them. Before training the ranks compare a hash of their solver and net files and refuse to
// start when they differ. Only the root (rank 0) logs, tests and snapshots; an error on any
// worker ends every worker with one message naming the rank (or GPU) and the cause.
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
  // Per worker, once its solver exists: copies pretrained weights, say.
  std::function<void(Solver&)> prepare;
  // Polled by the root once per iteration (signals); its answer goes to every worker.
  std::function<SolverAction()> root_actions;
  double collective_timeout_seconds = 300;
  size_t bucket_bytes = size_t(4) << 20;
  // Extra text whose difference between ranks must stop the run (command-line flags).
  std::string identity;
};

void train(const TrainingOptions& options);

}  // namespace engine
