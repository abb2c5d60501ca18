#include "math/cudnn.hpp"

#include <atomic>
#include <cstdint>
#include <map>

#include "core/context.hpp"
#include "math/onednn.hpp"

#ifdef ENGINE_USE_CUDA
#include <cuda_runtime.h>
#endif

namespace engine {

bool use_cudnn(int engine_field, const std::string& layer_description) {
#ifdef ENGINE_USE_CUDA
  return engine_field != kEngineCaffe;
#else
  return false;
#endif
}

#ifdef ENGINE_USE_CUDA
namespace cudnn {

const float kOne = 1.0f;
const float kZero = 0.0f;

namespace {

std::atomic<size_t> limit{size_t(1) << 30};
std::atomic<size_t> simulated_memory{SIZE_MAX};

struct Workspace {
  void* data = nullptr;
  size_t bytes = 0;
  Workspace() = default;
  Workspace(const Workspace&) = delete;
  Workspace& operator=(const Workspace&) = delete;
  // At exit the CUDA runtime may already be gone: nothing to check then.
  ~Workspace() {
    if (data) cudaFree(data);
  }
};

Workspace& this_thread_workspace() {
  thread_local std::map<int, Workspace> workspaces;
  return workspaces[Context::device()];
}

// Replaces the buffer by one of `bytes`; false (and no buffer) when the memory is not there.
bool reallocate(Workspace& workspace, size_t bytes) {
  if (workspace.data) ENGINE_CUDA_CHECK(cudaFree(workspace.data));
  workspace.data = nullptr;
  workspace.bytes = 0;
  if (bytes > simulated_memory.load()) return false;
  const cudaError_t status = cudaMalloc(&workspace.data, bytes);
  if (status == cudaErrorMemoryAllocation) {
    cudaGetLastError();  // clear the error so that later calls do not report it
    workspace.data = nullptr;
    return false;
  }
  ENGINE_CUDA_CHECK(status);
  workspace.bytes = bytes;
  return true;
}

}  // namespace

void set_tensor(cudnnTensorDescriptor_t descriptor, int n, int c, int h, int w) {
  ENGINE_CUDNN_CHECK(
      cudnnSetTensor4dDescriptor(descriptor, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, n, c, h, w));
}

void set_filter(cudnnFilterDescriptor_t descriptor, int k, int c, int h, int w) {
  ENGINE_CUDNN_CHECK(
      cudnnSetFilter4dDescriptor(descriptor, CUDNN_DATA_FLOAT, CUDNN_TENSOR_NCHW, k, c, h, w));
}

size_t workspace_limit() { return limit.load(); }
void set_workspace_limit(size_t bytes) { limit.store(bytes); }
void set_simulated_memory_limit(size_t bytes) { simulated_memory.store(bytes); }

bool reserve_workspace(size_t bytes) {
  Workspace& workspace = this_thread_workspace();
  if (bytes <= workspace.bytes) return true;
  const size_t previous = workspace.bytes;
  if (reallocate(workspace, bytes)) return true;
  // Other layers chose their algorithms for the old size: get it back (it was just freed).
  if (previous > 0) CHECK(reallocate(workspace, previous)) << "lost the cuDNN workspace";
  return false;
}

void* workspace(size_t bytes) {
  if (bytes == 0) return nullptr;
  Workspace& workspace = this_thread_workspace();
  if (bytes > workspace.bytes) {
    CHECK(reallocate(workspace, bytes)) << "out of GPU memory for a cuDNN workspace of " << bytes
                                        << " bytes";
  }
  return workspace.data;
}

}  // namespace cudnn
#endif

}  // namespace engine
