// Context: where the engine computes (CPU or one GPU) and the per-thread state that goes with it:
// the random generator (seedable, so fills and dropout masks repeat) and the cuBLAS/cuDNN handles.
//
// Each thread has its own Context (Context::get()); a thread that trains or tests sets the mode
// and device at its start. Not shared between threads, so no locking.
#pragma once

#include <cstdint>
#include <random>

#ifdef ENGINE_USE_CUDA
#include <cublas_v2.h>
#include <cudnn.h>
#endif

namespace engine {

class Communicator;

enum class Mode { CPU, GPU };

class Context {
 public:
  static Context& get();

  static Mode mode() { return get().mode_; }
  static void set_mode(Mode mode) { get().mode_ = mode; }

  // Reseeds this thread's generator: the same seed gives the same fills and dropout masks.
  static void set_seed(uint64_t seed);
  static std::mt19937& rng() { return get().rng_; }

  // Number of CUDA devices present (0 when none or when built without CUDA).
  static int device_count();
  // Selects the GPU this thread computes on; throws engine::Error when it does not exist.
  static void set_device(int device);
  static int device() { return get().device_; }

  // Deterministic mode: GPU code picks only algorithms whose results repeat bit for bit (cuDNN
  // convolution algorithms without atomics), at some cost in speed. Off by default; the CPU
  // path is deterministic either way. Per thread, like the mode.
  static bool deterministic() { return get().deterministic_; }
  static void set_deterministic(bool value) { get().deterministic_ = value; }

  // The part of the training data this thread's nets read in a data-parallel run: shard
  // `index` of `count` (Caffe's solver_rank and solver_count). A TRAIN-phase data layer made
  // here reads records index, index + count, index + 2 count, ... of its epoch order, so no two
  // workers see the same record in an epoch, and draws its own augmentation stream.
  static void set_data_shard(int index, int count);
  static int data_shard() { return get().data_shard_; }
  static int data_shards() { return get().data_shards_; }

  // The model-parallel group this thread's nets belong to (parallel/model_parallel.hpp): the
  // exchange layers made here use it. Not owned; null outside model-parallel training.
  static void set_model_group(Communicator* group) { get().model_group_ = group; }
  static Communicator* model_group() { return get().model_group_; }

#ifdef ENGINE_USE_CUDA
  static cublasHandle_t cublas();
  static cudnnHandle_t cudnn();
#endif

  Context(const Context&) = delete;
  Context& operator=(const Context&) = delete;
  ~Context();

 private:
  Context();

  Mode mode_ = Mode::CPU;
  int device_ = 0;
  bool deterministic_ = false;
  int data_shard_ = 0, data_shards_ = 1;
  Communicator* model_group_ = nullptr;
  std::mt19937 rng_;
#ifdef ENGINE_USE_CUDA
  cublasHandle_t cublas_ = nullptr;
  cudnnHandle_t cudnn_ = nullptr;
#endif
};

}  // namespace engine
