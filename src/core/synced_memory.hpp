// SyncedMemory: a byte buffer that lives on the host, the current GPU, or both, copied lazily
// to whichever side asks for it. The head says where the newest copy is; a mutable_* access
// moves the head there, so the other side is copied only when it is next read.
//
// Capacity only grows: a smaller resize reuses the allocation. Not thread-safe.
#pragma once

#include <cstddef>

namespace engine {

// The most host memory that all buffers together may hold; 0 (the default) leaves the limit to
// the system. An allocation past it, or one the system refuses, throws engine::OutOfMemory.
void set_host_memory_limit(size_t bytes);
size_t host_memory_in_use();

class SyncedMemory {
 public:
  enum class Head { UNINITIALIZED, AT_HOST, AT_DEVICE, SYNCED };

  SyncedMemory() = default;
  explicit SyncedMemory(size_t bytes) { resize(bytes); }
  ~SyncedMemory();
  SyncedMemory(const SyncedMemory&) = delete;
  SyncedMemory& operator=(const SyncedMemory&) = delete;

  // Sets the logical size. Growing past the capacity drops the contents.
  void resize(size_t bytes);
  size_t size() const { return size_; }
  size_t capacity() const { return capacity_; }

  const void* host_data();
  void* mutable_host_data();
  const void* device_data();
  void* mutable_device_data();

  Head head() const { return head_; }
  // Number of host<->device copies made so far: tests use it to prove the hot path has none.
  size_t transfers() const { return transfers_; }

 private:
  void to_host();
  void to_device();
  void release();

  void* host_ = nullptr;
  void* device_ = nullptr;
  size_t size_ = 0;
  size_t capacity_ = 0;
  Head head_ = Head::UNINITIALIZED;
  size_t transfers_ = 0;
};

}  // namespace engine
