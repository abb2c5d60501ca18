// Prefetching: the one mechanism by which data layers keep batches ready ahead of the net.
//
// Prefetcher: `depth` preallocated batch slots filled by `threads` background threads and handed
// to one consumer strictly in batch order. Batch numbers are dealt round-robin (worker t makes
// batches first + t, first + t + threads, ...), and a worker starts batch b only while
// b < next-to-consume + depth, so the slots never run out and the order never depends on which
// thread is faster. An exception thrown while making batch b is stored and rethrown by the
// consumer's acquire() when it reaches b. stop() (and the destructor) cancels the workers,
// joins them and discards the pending batches; it never waits for the consumer.
//
// PrefetchingDataLayer: the base of the Data and ImageData layers. Each subclass describes its
// records with a RecordReader factory; the base makes the batches from consecutive records,
// seeds the worker's Context generator for every batch from (layer seed, batch number), copies
// the next ready batch into the tops on forward, and saves/restores its position (batches and
// records consumed, seeds) for exact resumes. So the batches -- their records, order and random
// augmentation -- are the same whatever the thread count, and a resume continues them exactly.
// A TRAIN-phase layer of a data-parallel worker reads only its shard (Context::data_shard).
//
// In GPU mode the layer pins the slots' host memory (cudaHostRegister) and copies each batch to
// device buffers on a stream of its own as soon as the batch is ready (try_acquire), while the
// net computes on the previous one; forward then waits only for that copy's event and moves the
// batch into the tops on the compute stream. acquire/release bracket the copy: a slot returns to
// the workers once its batch is on the device. CPU mode, and builds without CUDA, copy on forward
// as before.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <utility>
#include <vector>

#include "core/blob.hpp"
#include "core/layer.hpp"

namespace engine {

struct Batch {
  std::vector<Blob> blobs;  // the tops' contents: data, then (optionally) label
};

class Prefetcher {
 public:
  // Fills `batch` with batch number `index`, on worker thread `worker` (0 <= worker < threads;
  // one worker's calls come from one thread, with increasing indices). May return early,
  // leaving the batch unfinished, once `cancelled` is set.
  using Producer = std::function<void(int worker, uint64_t index, Batch* batch,
                                      const std::atomic<bool>& cancelled)>;

  // Allocates `depth` slots holding blobs of `shapes`; starts nothing.
  Prefetcher(int threads, int depth, const std::vector<std::vector<int>>& shapes,
             Producer producer);
  ~Prefetcher() { stop(); }
  Prefetcher(const Prefetcher&) = delete;
  Prefetcher& operator=(const Prefetcher&) = delete;

  // Starts the workers; the first batch handed out will be number `first`.
  void start(uint64_t first);
  // Cancels and joins the workers, discarding pending batches. Idempotent.
  void stop();

  // Blocks until the next batch in order is ready and returns it; it stays valid until
  // release(). Rethrows the producer's exception for that batch (again on every call).
  const Batch& acquire();
  // acquire() without blocking: null when the next batch is not ready yet, or failed (acquire()
  // then rethrows its error).
  const Batch* try_acquire();
  void release();
  // The slots' blobs, for pinning their host memory; call before start().
  std::vector<Blob*> slot_blobs();
  // The number of the batch acquire() returns next.
  uint64_t next() const { return next_; }
  int threads() const { return threads_; }

 private:
  enum class SlotState { FREE, FILLING, READY };
  struct Slot {
    Batch batch;
    SlotState state = SlotState::FREE;
    uint64_t index = 0;
    std::exception_ptr error;
  };
  void work(int worker);

  const int threads_;
  Producer producer_;
  std::vector<Slot> slots_;
  std::vector<std::thread> workers_;
  std::mutex mutex_;
  std::condition_variable slot_freed_, batch_ready_;
  std::atomic<bool> cancelled_{false};
  uint64_t first_ = 0;
  uint64_t next_ = 0;   // guarded by mutex_ while workers run
  int held_ = -1;       // the slot the consumer holds between acquire and release
};

// Threads for DataParameter.threads: the given number, or for 0 half the machine's cores,
// at least 1 and at most 8 (decoding JPEGs is the work, about 0.8 ms per 256 x 256 image on one
// core; the net needs the other half).
int prefetch_threads(unsigned requested);

// Reads one record of a data layer into an image slot; each prefetch thread owns one (and with
// it, say, its own database cursor). Records are numbered over epochs: the reader maps number r
// to entry r % entries (through the epoch's shuffle where there is one).
class RecordReader {
 public:
  virtual ~RecordReader() = default;
  // Writes the record's crops (DataTransformer slots) at `out` and returns its label. Errors
  // name the record (its key, or the list file's line).
  virtual int read(uint64_t record, float* out) = 0;
};

class PrefetchingDataLayer : public Layer {
 public:
  explicit PrefetchingDataLayer(const LayerParameter& param);
  ~PrefetchingDataLayer() override;

  void reshape(const Blobs& bottom, const Blobs& top) override;
  int exact_bottoms() const override { return 0; }
  bool save_state(std::string* state) const override;
  void restore_state(const std::string& state) override;

 protected:
  // How a subclass describes its batches, at the end of its layer_setup.
  struct Layout {
    int batch_size = 0;
    int crops_per_image = 1;
    std::vector<int> slot_shape;  // C x H x W of one crop
    uint64_t first_record = 0;    // rand_skip
    int threads = 1;
    int depth = 4;  // slots; raised to `threads` so that every thread can work at once
    // Makes one reader per worker thread, for the given shuffle seed. Readers must own what
    // they use (shared_ptr to immutable data): the base stops them after the subclass is gone.
    std::function<std::unique_ptr<RecordReader>(uint64_t shuffle_seed)> make_reader;
  };
  // Shapes the tops (data: batch * crops x slot, an image's crops consecutive; label: batch)
  // and starts prefetching.
  void start_prefetching(const Layout& layout, const Blobs& top);

  // Seeds drawn once at setup from the constructing thread's Context generator.
  uint64_t seed() const { return seed_; }
  uint64_t shuffle_seed() const { return shuffle_seed_; }

  void forward_cpu(const Blobs& bottom, const Blobs& top) override;
#ifdef ENGINE_USE_CUDA
  void forward_gpu(const Blobs& bottom, const Blobs& top) override;
#endif

 private:
  void produce(int worker, uint64_t index, Batch* batch, const std::atomic<bool>& cancelled);
  // Hands back a batch acquired ahead (GPU mode) once its copy has finished; the next forward
  // (or a restart) then starts from a clean prefetcher.
  const Batch& take_batch();
  void drop_pending();

  Layout layout_;
  std::vector<int> data_shape_, label_shape_;
  uint64_t seed_ = 0, shuffle_seed_ = 0;
  // Batch b starts at record base_record_ + (b - base_batch_) * batch_size, counted in this
  // worker's shard: its record r is record r * shards_ + shard_ of the whole epoch order.
  uint64_t base_batch_ = 0, base_record_ = 0;
  uint64_t shard_ = 0, shards_ = 1;
  std::vector<std::unique_ptr<RecordReader>> readers_;
  // Host memory of the slots (pinned on first GPU use) and the GPU path's stream, events and
  // device buffers (prefetch.cpp).
  std::vector<std::pair<void*, size_t>> slot_memory_;
  struct DeviceStaging;
  std::unique_ptr<DeviceStaging> staging_;
  // GPU mode: the batch acquired ahead of its forward, its copy to the device in flight.
  const Batch* pending_ = nullptr;
  // Declared last: destroyed first, so the workers stop before anything they use goes.
  std::unique_ptr<Prefetcher> prefetcher_;
};

// The seed of batch `index`'s random draws (also of epoch `index`'s shuffle).
uint32_t batch_seed(uint64_t layer_seed, uint64_t index);

// Inside a catch block: rethrows the exception being handled as an engine::Error that says which
// record failed, "OWNER: WHERE: what went wrong" (dropping the message's own OWNER prefix).
[[noreturn]] void rethrow_for_record(const std::string& owner, const std::string& where);

}  // namespace engine
