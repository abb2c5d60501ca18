#include "core/context.hpp"

#include "core/errors.hpp"

#ifdef ENGINE_USE_CUDA
#include <cuda_runtime.h>
#endif

namespace engine {

namespace {
constexpr uint64_t kDefaultSeed = 1701;
}

Context& Context::get() {
  thread_local Context context;
  return context;
}

Context::Context() : rng_(kDefaultSeed) {}

Context::~Context() {
#ifdef ENGINE_USE_CUDA
  if (cublas_) cublasDestroy(cublas_);
  if (cudnn_) cudnnDestroy(cudnn_);
#endif
}

void Context::set_seed(uint64_t seed) { get().rng_.seed(seed); }

void Context::set_data_shard(int index, int count) {
  CHECK(count >= 1 && index >= 0 && index < count) << index << " of " << count;
  get().data_shard_ = index;
  get().data_shards_ = count;
}

int Context::device_count() {
#ifdef ENGINE_USE_CUDA
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess) {
    cudaGetLastError();  // clear the sticky "no device" error
    return 0;
  }
  return count;
#else
  return 0;
#endif
}

void Context::set_device(int device) {
  const int count = device_count();
  ENGINE_REQUIRE(count > 0, "no CUDA device is available"
#ifndef ENGINE_USE_CUDA
                                << " (this engine was built without CUDA)"
#endif
  );
  ENGINE_REQUIRE(device >= 0 && device < count,
                 "GPU " << device << " does not exist; this machine has " << count);
#ifdef ENGINE_USE_CUDA
  Context& context = get();
  if (context.device_ == device) return;
  ENGINE_CUDA_CHECK(cudaSetDevice(device));
  // Handles belong to the device that was current when they were made.
  if (context.cublas_) cublasDestroy(context.cublas_);
  if (context.cudnn_) cudnnDestroy(context.cudnn_);
  context.cublas_ = nullptr;
  context.cudnn_ = nullptr;
  context.device_ = device;
#endif
}

#ifdef ENGINE_USE_CUDA
cublasHandle_t Context::cublas() {
  Context& context = get();
  if (!context.cublas_) ENGINE_CUBLAS_CHECK(cublasCreate(&context.cublas_));
  return context.cublas_;
}

cudnnHandle_t Context::cudnn() {
  Context& context = get();
  if (!context.cudnn_) ENGINE_CUDNN_CHECK(cudnnCreate(&context.cudnn_));
  return context.cudnn_;
}
#endif

}  // namespace engine
