#include "core/synced_memory.hpp"

#include <algorithm>
#include <atomic>
#include <sstream>
#include <cstdlib>
#include <cstring>

#include "core/errors.hpp"

#ifdef ENGINE_USE_CUDA
#include <cuda_runtime.h>
#endif

namespace engine {

namespace {
// 64-byte alignment suits AVX-512 loads and oneDNN's preferred alignment.
constexpr size_t kHostAlignment = 64;

std::atomic<size_t> host_limit{0};
std::atomic<size_t> host_in_use{0};

size_t rounded_size(size_t bytes) {
  return std::max<size_t>(1, (bytes + kHostAlignment - 1) / kHostAlignment) * kHostAlignment;
}

void* allocate_host(size_t bytes) {
  const size_t rounded = rounded_size(bytes);
  const size_t limit = host_limit.load();
  const size_t before = host_in_use.fetch_add(rounded);
  void* pointer = nullptr;
  if (limit == 0 || before + rounded <= limit) pointer = std::aligned_alloc(kHostAlignment, rounded);
  if (!pointer) {
    host_in_use.fetch_sub(rounded);
    std::ostringstream message;
    message << "out of host memory: cannot allocate " << bytes << " bytes (" << before
            << " in use";
    if (limit) message << ", limit " << limit;
    throw OutOfMemory(message.str() + ")");
  }
  return pointer;
}

void free_host(void* pointer, size_t bytes) {
  std::free(pointer);
  host_in_use.fetch_sub(rounded_size(bytes));
}
}  // namespace

void set_host_memory_limit(size_t bytes) { host_limit = bytes; }
size_t host_memory_in_use() { return host_in_use.load(); }

SyncedMemory::~SyncedMemory() { release(); }

void SyncedMemory::release() {
  if (host_) free_host(host_, capacity_);
#ifdef ENGINE_USE_CUDA
  if (device_) cudaFree(device_);
#endif
  host_ = nullptr;
  device_ = nullptr;
  capacity_ = 0;
  head_ = Head::UNINITIALIZED;
}

void SyncedMemory::resize(size_t bytes) {
  if (bytes > capacity_) {
    release();
    capacity_ = bytes;
  }
  size_ = bytes;
}

void SyncedMemory::to_host() {
  switch (head_) {
    case Head::UNINITIALIZED:
      if (!host_) host_ = allocate_host(capacity_);
      std::memset(host_, 0, capacity_);
      head_ = Head::AT_HOST;
      break;
    case Head::AT_DEVICE:
#ifdef ENGINE_USE_CUDA
      if (!host_) host_ = allocate_host(capacity_);
      ENGINE_CUDA_CHECK(cudaMemcpy(host_, device_, size_, cudaMemcpyDeviceToHost));
      ++transfers_;
      head_ = Head::SYNCED;
#endif
      break;
    case Head::AT_HOST:
    case Head::SYNCED:
      break;
  }
}

void SyncedMemory::to_device() {
#ifdef ENGINE_USE_CUDA
  switch (head_) {
    case Head::UNINITIALIZED:
      if (!device_) ENGINE_CUDA_CHECK(cudaMalloc(&device_, capacity_));
      ENGINE_CUDA_CHECK(cudaMemset(device_, 0, capacity_));
      head_ = Head::AT_DEVICE;
      break;
    case Head::AT_HOST:
      if (!device_) ENGINE_CUDA_CHECK(cudaMalloc(&device_, capacity_));
      ENGINE_CUDA_CHECK(cudaMemcpy(device_, host_, size_, cudaMemcpyHostToDevice));
      ++transfers_;
      head_ = Head::SYNCED;
      break;
    case Head::AT_DEVICE:
    case Head::SYNCED:
      break;
  }
#else
  LOG(FATAL) << "device memory requested, but this engine was built without CUDA";
#endif
}

const void* SyncedMemory::host_data() {
  to_host();
  return host_;
}

void* SyncedMemory::mutable_host_data() {
  to_host();
  head_ = Head::AT_HOST;
  return host_;
}

const void* SyncedMemory::device_data() {
  to_device();
  return device_;
}

void* SyncedMemory::mutable_device_data() {
  to_device();
  head_ = Head::AT_DEVICE;
  return device_;
}

}  // namespace engine
