// SyncedMemory: a byte buffer that lives on the host, the current GPU, or both, copied lazily
// to whichever side asks for it. The head says where the newest copy is; a mutable_* access
// moves the head there, so the other side is copied only when it is next read.
//
// The host side may also hold the values in another arrangement (a HostLayout: oneDNN's
// blocked formats), so that consecutive layers computing in that arrangement pass it on without
// converting. A layer that writes an arrangement makes it the newest copy; whoever reads the plain
// host data or the device's gets it converted once, on first access, and the arrangement stays
// valid for later readers in it until the values change.
//
// Capacity only grows: a smaller resize reuses the allocation. Not thread-safe.
#pragma once

#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <string>
#include <vector>

namespace engine {

// The most host memory that all buffers together may hold; 0 (the default) leaves the limit to
// the system. An allocation past it, or one the system refuses, throws engine::OutOfMemory.
void set_host_memory_limit(size_t bytes);
size_t host_memory_in_use();

// An arrangement of a buffer's values other than the plain row-major one, made by the layers
// that compute in it (math/onednn.hpp). It knows its size and how to convert either way.
class HostLayout {
 public:
  virtual ~HostLayout() = default;
  // Bytes the arranged values take (blocked formats may pad), and the plain values' bytes.
  virtual size_t bytes() const = 0;
  virtual size_t plain_bytes() const = 0;
  virtual bool same_as(const HostLayout& other) const = 0;
  // A short description for reports and cache keys ("nChw8c 32x96x27x27").
  virtual std::string name() const = 0;
  virtual void to_plain(const void* arranged, void* plain) const = 0;
  virtual void from_plain(const void* plain, void* arranged) const = 0;
};
using HostLayoutPtr = std::shared_ptr<const HostLayout>;

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
  // Sets every value to zero lazily: the zeros are written on whichever side is accessed first
  // (at once for values handed out plainly, which their holder reads directly). Clearing a
  // gradient so costs nothing until it is used, and a writer that replaces all the values
  // skips it (host_data_to_overwrite).
  void set_zero();
  // Whether the values are zeros not yet written (set_zero, or a new memory).
  bool zero_pending() const { return head_ == Head::UNINITIALIZED; }
  // Where to write values replacing all of them on the host: mutable_host_data(), without the
  // pending zeros written first.
  void* host_data_to_overwrite();
  const void* device_data();
  void* mutable_device_data();

  // The values arranged as `layout`, if this memory holds them so; else null.
  const void* arranged_data(const HostLayout& layout) const;
  // The arrangement this memory holds the values in, if any (null: plain only).
  const HostLayoutPtr& arranged_layout() const { return layout_; }
  // Whether the arranged values are the only current ones (the plain copy is out of date).
  bool plain_stale() const { return plain_stale_; }
  // Where to write new values arranged as `layout`: they become the newest, and the plain host
  // copy (and the device's) is converted from them when next read.
  void* mutable_arranged_data(HostLayoutPtr layout);
  // Where to put a copy of the current plain host values arranged as `layout` (the caller
  // converts them): later readers in that arrangement find it until the values change. Null
  // for an exposed memory.
  void* arranged_copy(HostLayoutPtr layout);
  // A second arrangement beside the first, for a reader in another format while the first
  // holds the only current values (plain_stale): converting between the two directly saves the
  // pass through the plain values. converted_copy() says where the caller puts the values
  // converted as `layout` (null for an exposed memory); converted_data() finds them until the
  // values change.
  void* converted_copy(HostLayoutPtr layout);
  const void* converted_data(const HostLayout& layout) const;
  // Marks the host values as handed out (a numpy array over them): whoever holds them may read
  // or write them at any time, so from now on this memory keeps its values plain only (layers
  // check may_arrange() before writing an arrangement).
  void expose_host() { exposed_ = true; }
  bool may_arrange() const { return !exposed_; }

  // A number that changes whenever the values may have: every memory starts with a stamp of
  // its own, and every mutable access or resize takes a new one. Something derived from the
  // values at stamp s (folded weights) is current while changed_since(s) is false; exposed
  // values may change at any time, so they always count as changed.
  uint64_t stamp() const { return stamp_; }
  bool changed_since(uint64_t stamp) const { return exposed_ || stamp != stamp_; }

  Head head() const { return head_; }
  // Number of host<->device copies made so far: tests use it to prove the hot path has none.
  size_t transfers() const { return transfers_; }

 private:
  void to_host();
  void to_device();
  void release();
  // Makes *buffer hold at least `bytes` (its contents are dropped when it grows).
  static void grow(void** buffer, size_t* capacity, size_t bytes);

  void* arranged_ = nullptr;
  size_t arranged_capacity_ = 0;
  HostLayoutPtr layout_;       // non-null: arranged_ holds the current values so
  bool plain_stale_ = false;   // the arranged values are newer than host_ and the device's
  bool exposed_ = false;
  void* converted_ = nullptr;  // converted_layout_'s copy of the values at converted_stamp_
  size_t converted_capacity_ = 0;
  HostLayoutPtr converted_layout_;
  uint64_t converted_stamp_ = 0;

  void* host_ = nullptr;
  void* device_ = nullptr;
  size_t size_ = 0;
  size_t capacity_ = 0;
  Head head_ = Head::UNINITIALIZED;
  size_t transfers_ = 0;
  uint64_t stamp_ = next_stamp();
  static uint64_t next_stamp();
};

// The arrangement every one of `memories` holds its current values in, when at least one holds
// them only so (then written by a layer in it, in fp32); else null. A layer whose function works
// element by element and keeps zeros zero (ReLU, a sum) may compute on that arrangement as it
// is, padding included, and leave its output arranged the same way.
HostLayoutPtr shared_arrangement(std::initializer_list<const SyncedMemory*> memories);
HostLayoutPtr shared_arrangement(const std::vector<const SyncedMemory*>& memories);

}  // namespace engine
