// A streaming map over a serial source on several threads, results delivered in source order:
// the shape of the dataset tools (read a list or a database in order, decode on every core,
// write or accumulate in order).
//
// Workers take the source in chunks of `chunk_size` items (next() runs under a lock, so the
// source needs no thread-safety of its own), apply map() concurrently, and the calling thread
// receives each result through consume(), in the order next() produced the items. At most
// 2 x threads chunks are in flight, so memory stays bounded however long the source is.
//
// An exception from next() or map() is rethrown on the calling thread when its place in the
// order comes (results before it are consumed first, so the first failing item wins); one from
// consume() stops the workers and propagates. Every thread is joined before this returns.
#pragma once

#include <algorithm>
#include <condition_variable>
#include <cstddef>
#include <exception>
#include <map>
#include <mutex>
#include <thread>
#include <utility>
#include <vector>

namespace engine {

// next: bool(In*), false at the end. map: Out(In&&). consume: void(Out&&).
// threads <= 0 uses every core.
template <typename In, typename Out, typename Next, typename Map, typename Consume>
void ordered_parallel_map(int threads, size_t chunk_size, Next&& next, Map&& map,
                          Consume&& consume) {
  if (threads <= 0) threads = std::max(1u, std::thread::hardware_concurrency());
  chunk_size = std::max<size_t>(chunk_size, 1);
  struct Chunk {
    std::vector<Out> results;
    std::exception_ptr error;
    bool last = false;
  };

  std::mutex source_mutex;  // serialises next() and the numbering of chunks
  size_t issued = 0;        // chunks handed out (under source_mutex)
  bool source_done = false;  // (under source_mutex)

  std::mutex mutex;  // guards the fields below
  std::condition_variable produced, consumed;
  std::map<size_t, Chunk> ready;
  size_t consumed_upto = 0;
  bool stop = false;
  const size_t window = 2 * size_t(threads);

  auto work = [&] {
    for (;;) {
      Chunk chunk;
      std::vector<In> inputs;
      size_t id;
      {
        std::unique_lock<std::mutex> source_lock(source_mutex);
        if (source_done) return;
        {
          std::unique_lock<std::mutex> lock(mutex);
          consumed.wait(lock, [&] { return stop || issued < consumed_upto + window; });
          if (stop) return;
        }
        id = issued++;
        try {
          In item;
          while (inputs.size() < chunk_size) {
            if (!next(&item)) {
              chunk.last = source_done = true;
              break;
            }
            inputs.push_back(std::move(item));
          }
        } catch (...) {
          chunk.error = std::current_exception();
          chunk.last = source_done = true;
        }
      }
      chunk.results.reserve(inputs.size());
      try {
        for (In& input : inputs) chunk.results.push_back(map(std::move(input)));
      } catch (...) {
        // An error in map() comes before any error the source reported after this chunk's items.
        chunk.error = std::current_exception();
        chunk.last = true;
      }
      std::lock_guard<std::mutex> lock(mutex);
      ready.emplace(id, std::move(chunk));
      produced.notify_all();
    }
  };

  std::vector<std::thread> workers;
  // Stops and joins the workers on every way out, exceptions included.
  struct Joiner {
    std::vector<std::thread>& workers;
    std::mutex& mutex;
    std::condition_variable& consumed;
    bool& stop;
    ~Joiner() {
      {
        std::lock_guard<std::mutex> lock(mutex);
        stop = true;
      }
      consumed.notify_all();
      for (std::thread& worker : workers) worker.join();
    }
  } joiner{workers, mutex, consumed, stop};
  for (int t = 0; t < threads; ++t) workers.emplace_back(work);

  for (size_t id = 0;; ++id) {
    Chunk chunk;
    {
      std::unique_lock<std::mutex> lock(mutex);
      produced.wait(lock, [&] { return ready.count(id) > 0; });
      chunk = std::move(ready[id]);
      ready.erase(id);
      consumed_upto = id + 1;
    }
    consumed.notify_all();
    for (Out& result : chunk.results) consume(std::move(result));
    if (chunk.error) std::rethrow_exception(chunk.error);
    if (chunk.last) break;
  }
}

}  // namespace engine
