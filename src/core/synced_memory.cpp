#include "core/synced_memory.hpp"

#include <algorithm>
#include <atomic>
#include <sstream>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>

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

// Allocations this big are first compared with what the machine has free: Linux grants more
// than it holds, and the memset that follows would wake the OOM killer instead of an error.
constexpr size_t kCheckedAllocation = size_t(256) << 20;

// MemAvailable plus SwapFree from /proc/meminfo, in bytes; SIZE_MAX where it cannot be read.
size_t memory_available() {
  std::ifstream meminfo("/proc/meminfo");
  std::string key;
  size_t kilobytes = 0, total = 0;
  bool found = false;
  while (meminfo >> key >> kilobytes) {
    if (key == "MemAvailable:" || key == "SwapFree:") {
      total += kilobytes * 1024;
      found = true;
    }
    meminfo.ignore(64, '\n');
  }
  return found ? total : SIZE_MAX;
}

std::string size_text(size_t bytes) {
  if (bytes < (size_t(1) << 20)) return std::to_string(bytes) + " bytes";
  return std::to_string((bytes + (size_t(1) << 19)) >> 20) + " MB";
}

void* allocate_host(size_t bytes) {
  const size_t rounded = rounded_size(bytes);
  const size_t limit = host_limit.load();
  const size_t before = host_in_use.fetch_add(rounded);
  const size_t available = rounded >= kCheckedAllocation ? memory_available() : SIZE_MAX;
  void* pointer = nullptr;
  if ((limit == 0 || before + rounded <= limit) && rounded <= available) {
    pointer = std::aligned_alloc(kHostAlignment, rounded);
  }
  if (!pointer) {
    host_in_use.fetch_sub(rounded);
    std::ostringstream message;
    message << "out of host memory: cannot allocate " << size_text(bytes) << " (the engine holds "
            << size_text(before);
    if (limit) message << ", its limit is " << size_text(limit);
    if (available != SIZE_MAX) message << ", the machine has " << size_text(available) << " free";
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

uint64_t SyncedMemory::next_stamp() {
  // Shared by all memories, so that no two ever hold the same stamp (a layer may be handed
  // another memory, as when parameters are shared), and atomic for data-parallel workers.
  static std::atomic<uint64_t> last{0};
  return last.fetch_add(1, std::memory_order_relaxed) + 1;
}

void SyncedMemory::release() {
  if (host_) free_host(host_, capacity_);
  if (arranged_) free_host(arranged_, arranged_capacity_);
  arranged_ = nullptr;
  arranged_capacity_ = 0;
  layout_.reset();
  if (converted_) free_host(converted_, converted_capacity_);
  converted_ = nullptr;
  converted_capacity_ = 0;
  converted_layout_.reset();
  plain_stale_ = false;
#ifdef ENGINE_USE_CUDA
  if (device_) cudaFree(device_);
#endif
  host_ = nullptr;
  device_ = nullptr;
  capacity_ = 0;
  head_ = Head::UNINITIALIZED;
}

void SyncedMemory::resize(size_t bytes) {
  stamp_ = next_stamp();
  if (bytes != size_ && layout_) {
    // The arrangement describes the old size: keep the values plain.
    if (plain_stale_) to_host();
    layout_.reset();
  }
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
  if (plain_stale_) {
    if (!host_) host_ = allocate_host(capacity_);
    layout_->to_plain(arranged_, host_);
    plain_stale_ = false;
  }
}

void SyncedMemory::to_device() {
  if (plain_stale_) to_host();
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
  stamp_ = next_stamp();
  head_ = Head::AT_HOST;
  layout_.reset();
  return host_;
}

void SyncedMemory::set_zero() {
  if (exposed_) {
    std::memset(mutable_host_data(), 0, size_);
    return;
  }
  layout_.reset();
  plain_stale_ = false;
  stamp_ = next_stamp();
  head_ = Head::UNINITIALIZED;
}

void* SyncedMemory::host_data_to_overwrite() {
  if (head_ != Head::UNINITIALIZED) return mutable_host_data();
  if (!host_) host_ = allocate_host(capacity_);
  stamp_ = next_stamp();
  head_ = Head::AT_HOST;
  return host_;
}

const void* SyncedMemory::device_data() {
  to_device();
  return device_;
}

void* SyncedMemory::mutable_device_data() {
  to_device();
  stamp_ = next_stamp();
  head_ = Head::AT_DEVICE;
  layout_.reset();
  return device_;
}

void SyncedMemory::grow(void** buffer, size_t* capacity, size_t bytes) {
  if (bytes <= *capacity) return;
  if (*buffer) free_host(*buffer, *capacity);
  *buffer = nullptr;
  *capacity = 0;
  *buffer = allocate_host(bytes);
  *capacity = bytes;
}

const void* SyncedMemory::arranged_data(const HostLayout& layout) const {
  return layout_ && layout_->same_as(layout) ? arranged_ : nullptr;
}

void* SyncedMemory::mutable_arranged_data(HostLayoutPtr layout) {
  CHECK_EQ(layout->plain_bytes(), size_) << "an arrangement of another size";
  CHECK(!exposed_) << "an arrangement of values handed out plainly";
  layout_.reset();
  plain_stale_ = false;
  grow(&arranged_, &arranged_capacity_, layout->bytes());
  layout_ = std::move(layout);
  plain_stale_ = true;
  stamp_ = next_stamp();
  head_ = Head::AT_HOST;
  return arranged_;
}

void* SyncedMemory::arranged_copy(HostLayoutPtr layout) {
  CHECK_EQ(layout->plain_bytes(), size_) << "an arrangement of another size";
  if (exposed_) return nullptr;
  to_host();
  layout_.reset();
  grow(&arranged_, &arranged_capacity_, layout->bytes());
  layout_ = std::move(layout);
  return arranged_;
}

void* SyncedMemory::converted_copy(HostLayoutPtr layout) {
  CHECK_EQ(layout->plain_bytes(), size_) << "an arrangement of another size";
  if (exposed_) return nullptr;
  grow(&converted_, &converted_capacity_, layout->bytes());
  converted_layout_ = std::move(layout);
  converted_stamp_ = stamp_;
  return converted_;
}

const void* SyncedMemory::converted_data(const HostLayout& layout) const {
  const bool current = converted_layout_ && converted_stamp_ == stamp_ && !exposed_;
  return current && converted_layout_->same_as(layout) ? converted_ : nullptr;
}

HostLayoutPtr shared_arrangement(const std::vector<const SyncedMemory*>& memories) {
  HostLayoutPtr layout;
  for (const SyncedMemory* memory : memories) {
    if (memory->plain_stale()) {
      layout = memory->arranged_layout();
      break;
    }
  }
  if (!layout) return nullptr;
  for (const SyncedMemory* memory : memories) {
    if (!memory->arranged_data(*layout)) return nullptr;
  }
  return layout;
}

HostLayoutPtr shared_arrangement(std::initializer_list<const SyncedMemory*> memories) {
  return shared_arrangement(std::vector<const SyncedMemory*>(memories));
}

}  // namespace engine
