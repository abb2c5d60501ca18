#include "data/prefetch.hpp"

#include <algorithm>
#include <cstring>

#include "core/context.hpp"
#include "core/errors.hpp"
#include "math/blas.hpp"

#ifdef ENGINE_USE_CUDA
#include <cuda_runtime.h>
#endif

namespace engine {

// ---- Prefetcher ----------------------------------------------------------------------------

Prefetcher::Prefetcher(int threads, int depth, const std::vector<std::vector<int>>& shapes,
                       Producer producer)
    : threads_(threads), producer_(std::move(producer)), slots_(depth) {
  CHECK_GE(threads, 1);
  CHECK_GE(depth, 1);
  for (Slot& slot : slots_) {
    for (const auto& shape : shapes) {
      slot.batch.blobs.emplace_back(shape);
      // Allocate here, on the owning thread, not lazily on a worker.
      slot.batch.blobs.back().mutable_cpu_data();
    }
  }
}

void Prefetcher::start(uint64_t first) {
  CHECK(workers_.empty()) << "the prefetcher is already running";
  cancelled_ = false;
  first_ = first;
  next_ = first;
  held_ = -1;
  for (Slot& slot : slots_) {
    slot.state = SlotState::FREE;
    slot.error = nullptr;
  }
  for (int t = 0; t < threads_; ++t) workers_.emplace_back(&Prefetcher::work, this, t);
}

void Prefetcher::stop() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    cancelled_ = true;
  }
  slot_freed_.notify_all();
  for (std::thread& worker : workers_) worker.join();
  workers_.clear();
}

void Prefetcher::work(int worker) {
  for (uint64_t index = first_ + worker;; index += threads_) {
    Slot* slot = nullptr;
    {
      std::unique_lock<std::mutex> lock(mutex_);
      // Within the window [next_, next_ + depth) every index has its own slot, so a free one
      // exists whenever the window admits this index.
      slot_freed_.wait(lock, [&] { return cancelled_ || index < next_ + slots_.size(); });
      if (cancelled_) return;
      for (Slot& candidate : slots_) {
        if (candidate.state == SlotState::FREE) {
          slot = &candidate;
          break;
        }
      }
      CHECK(slot != nullptr) << "prefetch window admitted a batch without a free slot";
      slot->state = SlotState::FILLING;
      slot->index = index;
      slot->error = nullptr;
    }
    std::exception_ptr error;
    try {
      producer_(worker, index, &slot->batch, cancelled_);
    } catch (...) {
      error = std::current_exception();
    }
    {
      std::lock_guard<std::mutex> lock(mutex_);
      if (cancelled_) return;
      slot->error = error;
      slot->state = SlotState::READY;
    }
    batch_ready_.notify_all();
    // After a failure this worker's later batches would never be consumed: the consumer stops
    // at the failed one.
    if (error) return;
  }
}

const Batch& Prefetcher::acquire() {
  CHECK_EQ(held_, -1) << "acquire() twice without release()";
  CHECK(!workers_.empty()) << "the prefetcher is not running";
  std::unique_lock<std::mutex> lock(mutex_);
  Slot* ready = nullptr;
  batch_ready_.wait(lock, [&] {
    for (Slot& slot : slots_) {
      if (slot.state == SlotState::READY && slot.index == next_) {
        ready = &slot;
        return true;
      }
    }
    return false;
  });
  if (ready->error) std::rethrow_exception(ready->error);
  held_ = static_cast<int>(ready - slots_.data());
  return ready->batch;
}

const Batch* Prefetcher::try_acquire() {
  CHECK_EQ(held_, -1) << "acquire() twice without release()";
  CHECK(!workers_.empty()) << "the prefetcher is not running";
  std::lock_guard<std::mutex> lock(mutex_);
  for (Slot& slot : slots_) {
    if (slot.state == SlotState::READY && slot.index == next_) {
      if (slot.error) return nullptr;
      held_ = static_cast<int>(&slot - slots_.data());
      return &slot.batch;
    }
  }
  return nullptr;
}

std::vector<Blob*> Prefetcher::slot_blobs() {
  CHECK(workers_.empty()) << "slot_blobs() while the workers run";
  std::vector<Blob*> blobs;
  for (Slot& slot : slots_) {
    for (Blob& blob : slot.batch.blobs) blobs.push_back(&blob);
  }
  return blobs;
}

void Prefetcher::release() {
  CHECK_GE(held_, 0) << "release() without acquire()";
  {
    std::lock_guard<std::mutex> lock(mutex_);
    slots_[held_].state = SlotState::FREE;
    held_ = -1;
    ++next_;
  }
  slot_freed_.notify_all();
}

int prefetch_threads(unsigned requested) {
  if (requested > 0) return static_cast<int>(requested);
  const int cores = static_cast<int>(std::thread::hardware_concurrency());
  return std::clamp(cores / 2, 1, 8);
}

uint32_t batch_seed(uint64_t layer_seed, uint64_t index) {
  // splitmix64's finaliser over the pair: nearby batch numbers get unrelated seeds.
  uint64_t z = layer_seed + 0x9e3779b97f4a7c15ull * (index + 1);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  z ^= z >> 31;
  return static_cast<uint32_t>(z >> 32);
}

void rethrow_for_record(const std::string& owner, const std::string& where) {
  std::string message;
  try {
    throw;
  } catch (const std::exception& error) {
    message = error.what();
  }
  const std::string prefix = owner + ": ";
  if (message.compare(0, prefix.size(), prefix) == 0) message.erase(0, prefix.size());
  ENGINE_FAIL(prefix << where << ": " << message);
}

// ---- PrefetchingDataLayer --------------------------------------------------------------------

namespace {

uint64_t draw_seed() {
  std::mt19937& rng = Context::rng();
  const uint64_t high = rng();
  return (high << 32) | rng();
}

}  // namespace

PrefetchingDataLayer::PrefetchingDataLayer(const LayerParameter& param) : Layer(param) {
  seed_ = draw_seed();
  shuffle_seed_ = draw_seed();
}

#ifdef ENGINE_USE_CUDA
// The GPU path's resources, made on the consumer thread's device at the first GPU forward.
struct PrefetchingDataLayer::DeviceStaging {
  explicit DeviceStaging(const std::vector<std::vector<int>>& shapes,
                         const std::vector<std::pair<void*, size_t>>& host_memory) {
    ENGINE_CUDA_CHECK(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
    ENGINE_CUDA_CHECK(cudaEventCreateWithFlags(&copied, cudaEventDisableTiming));
    ENGINE_CUDA_CHECK(cudaEventCreateWithFlags(&consumed, cudaEventDisableTiming));
    for (const auto& shape : shapes) {
      buffers.emplace_back(shape);
      buffers.back().mutable_gpu_data();  // allocate now, not on the copy path
    }
    // The allocation zero-fills on the default stream, which the non-blocking copy stream does
    // not wait for: the first copy waits for this event as every later one waits for the
    // previous batch's consumption.
    ENGINE_CUDA_CHECK(cudaEventRecord(consumed, 0));
    // Pinned pages let the copies run asynchronously; without them they still work, slower.
    for (const auto& [pointer, bytes] : host_memory) {
      if (cudaHostRegister(pointer, bytes, cudaHostRegisterDefault) == cudaSuccess) {
        pinned.push_back(pointer);
      } else {
        cudaGetLastError();
        LOG(WARNING) << "could not pin " << bytes << " bytes of prefetch memory; batches "
                     << "will be copied to the GPU from pageable memory";
      }
    }
  }
  ~DeviceStaging() {
    cudaStreamSynchronize(stream);
    for (void* pointer : pinned) cudaHostUnregister(pointer);
    cudaEventDestroy(copied);
    cudaEventDestroy(consumed);
    cudaStreamDestroy(stream);
  }

  cudaStream_t stream = nullptr;
  cudaEvent_t copied = nullptr;    // the pending batch has reached `buffers`
  cudaEvent_t consumed = nullptr;  // `buffers` are free: copied into the tops (or just made)
  std::vector<Blob> buffers;       // device copies of the pending batch, one per top
  std::vector<void*> pinned;
};
#else
struct PrefetchingDataLayer::DeviceStaging {};
#endif

PrefetchingDataLayer::~PrefetchingDataLayer() {
  // Workers first, then the copy in flight (it reads a slot), then the pinned pages.
  if (prefetcher_) prefetcher_->stop();
  drop_pending();
  staging_.reset();
  prefetcher_.reset();
}

void PrefetchingDataLayer::start_prefetching(const Layout& layout, const Blobs& top) {
  CHECK(!prefetcher_) << "start_prefetching twice";
  CHECK_EQ(layout.slot_shape.size(), 3u);
  layout_ = layout;
  const int items = layout.batch_size * layout.crops_per_image;
  data_shape_ = {items, layout.slot_shape[0], layout.slot_shape[1], layout.slot_shape[2]};
  // One label per image, crops or not: ten-crop nets average each image's crops first
  // (models/alexnet).
  label_shape_ = {layout.batch_size};
  std::vector<std::vector<int>> shapes = {data_shape_};
  if (top.size() > 1) shapes.push_back(label_shape_);
  base_batch_ = 0;
  base_record_ = layout.first_record;
  if (param_.phase() == TRAIN && Context::data_shards() > 1) {
    shard_ = static_cast<uint64_t>(Context::data_shard());
    shards_ = static_cast<uint64_t>(Context::data_shards());
    seed_ = batch_seed(seed_, ~shard_);  // the worker's own augmentation stream
  }
  for (int t = 0; t < layout.threads; ++t) readers_.push_back(layout.make_reader(shuffle_seed_));
  prefetcher_ = std::make_unique<Prefetcher>(
      layout.threads, std::max(layout.depth, layout.threads), shapes,
      [this](int worker, uint64_t index, Batch* batch, const std::atomic<bool>& cancelled) {
        produce(worker, index, batch, cancelled);
      });
  for (Blob* blob : prefetcher_->slot_blobs()) {
    slot_memory_.emplace_back(blob->mutable_cpu_data(), sizeof(float) * blob->count());
  }
  reshape({}, top);
  prefetcher_->start(0);
}

void PrefetchingDataLayer::produce(int worker, uint64_t index, Batch* batch,
                                   const std::atomic<bool>& cancelled) {
  // Every batch has its own random stream, so augmentation does not depend on which thread
  // made the batch, and a resume needs only the batch number.
  Context::set_seed(batch_seed(seed_, index));
  RecordReader& reader = *readers_[worker];
  const uint64_t first = base_record_ + (index - base_batch_) * layout_.batch_size;
  const std::vector<int>& slot = layout_.slot_shape;
  const size_t image_size = size_t(layout_.crops_per_image) * slot[0] * slot[1] * slot[2];
  float* data = batch->blobs[0].mutable_cpu_data();
  float* labels = batch->blobs.size() > 1 ? batch->blobs[1].mutable_cpu_data() : nullptr;
  for (int i = 0; i < layout_.batch_size; ++i) {
    if (cancelled) return;
    const int label = reader.read((first + i) * shards_ + shard_, data + i * image_size);
    if (labels) labels[i] = static_cast<float>(label);
  }
}

void PrefetchingDataLayer::reshape(const Blobs& bottom, const Blobs& top) {
  top[0]->reshape(data_shape_);
  if (top.size() > 1) top[1]->reshape(label_shape_);
}

const Batch& PrefetchingDataLayer::take_batch() {
  if (!pending_) return prefetcher_->acquire();
  const Batch& batch = *pending_;
#ifdef ENGINE_USE_CUDA
  ENGINE_CUDA_CHECK(cudaEventSynchronize(staging_->copied));
#endif
  pending_ = nullptr;
  return batch;
}

void PrefetchingDataLayer::drop_pending() {
  if (!pending_) return;
  take_batch();
  prefetcher_->release();
}

void PrefetchingDataLayer::forward_cpu(const Blobs& bottom, const Blobs& top) {
  // A batch acquired ahead by a GPU forward is still in its slot: hand that one out.
  const Batch& batch = take_batch();
  for (size_t i = 0; i < top.size(); ++i) {
    const Blob& ready = batch.blobs[i];
    std::memcpy(top[i]->mutable_cpu_data(), ready.cpu_data(), sizeof(float) * ready.count());
  }
  prefetcher_->release();
}

#ifdef ENGINE_USE_CUDA
void PrefetchingDataLayer::forward_gpu(const Blobs& bottom, const Blobs& top) {
  if (!staging_) {
    std::vector<std::vector<int>> shapes = {data_shape_};
    if (top.size() > 1) shapes.push_back(label_shape_);
    staging_ = std::make_unique<DeviceStaging>(shapes, slot_memory_);
  }
  DeviceStaging& staging = *staging_;
  // Starts copying a batch that is in its slot (the workers' window holds it until release).
  auto start_copy = [&](const Batch& batch) {
    ENGINE_CUDA_CHECK(cudaStreamWaitEvent(staging.stream, staging.consumed, 0));
    for (size_t i = 0; i < top.size(); ++i) {
      const Blob& ready = batch.blobs[i];
      ENGINE_CUDA_CHECK(cudaMemcpyAsync(staging.buffers[i].mutable_gpu_data(), ready.cpu_data(),
                                        sizeof(float) * ready.count(), cudaMemcpyHostToDevice,
                                        staging.stream));
    }
    ENGINE_CUDA_CHECK(cudaEventRecord(staging.copied, staging.stream));
    pending_ = &batch;
  };
  // This forward's batch: copied during the previous iteration, or now (first forward, or the
  // workers were behind).
  if (!pending_) start_copy(prefetcher_->acquire());
  take_batch();
  prefetcher_->release();
  for (size_t i = 0; i < top.size(); ++i) {
    gpu::copy(top[i]->count(), staging.buffers[i].gpu_data(), top[i]->mutable_gpu_data());
  }
  ENGINE_CUDA_CHECK(cudaEventRecord(staging.consumed, 0));
  // The next batch, if the workers have it, travels while the net computes on this one.
  if (const Batch* next = prefetcher_->try_acquire()) start_copy(*next);
}
#endif

bool PrefetchingDataLayer::save_state(std::string* state) const {
  if (!prefetcher_) return false;
  // The position of what the net has consumed, not of what the threads have prefetched.
  const uint64_t next_batch = prefetcher_->next();
  DataLayerState proto;
  proto.set_next_batch(next_batch);
  proto.set_next_record(base_record_ + (next_batch - base_batch_) * layout_.batch_size);
  proto.set_seed(seed_);
  proto.set_shuffle_seed(shuffle_seed_);
  return proto.SerializeToString(state);
}

void PrefetchingDataLayer::restore_state(const std::string& state) {
  DataLayerState proto;
  LAYER_REQUIRE(proto.ParseFromString(state) && proto.has_next_batch() &&
                    proto.has_next_record(),
                "the saved data position is not a data layer's state");
  CHECK(prefetcher_) << "restore_state before setup";
  drop_pending();
  prefetcher_->stop();
  base_batch_ = proto.next_batch();
  base_record_ = proto.next_record();
  seed_ = proto.seed();
  shuffle_seed_ = proto.shuffle_seed();
  // Readers keep a cursor; fresh ones start from a known place.
  for (auto& reader : readers_) reader = layout_.make_reader(shuffle_seed_);
  prefetcher_->start(base_batch_);
}

}  // namespace engine
