// Loops of the engine's own CPU code over independent items (samples, planes, chunks of an
// array) on the machine's cores. OpenMP, because oneDNN runs on OpenMP's threads: sharing its
// pool, our loops and oneDNN's never oversubscribe the cores. Each item must be independent of
// the others, so results do not depend on the number of threads. Without OpenMP (a compiler
// lacking it) the loops run on the calling thread.
#pragma once

#include <algorithm>
#include <cstdint>

#ifdef _OPENMP
#include <omp.h>
#endif

namespace engine {
namespace cpu {

// Threads parallel_for may use.
inline int threads() {
#ifdef _OPENMP
  return omp_get_max_threads();
#else
  return 1;
#endif
}

// body(item, thread) for item in [0, items), thread in [0, threads()); one thread when the
// whole loop is too small (`work` per item, in floats touched) to repay waking the others.
template <class Body>
void parallel_for(int64_t items, int64_t work, Body body) {
  constexpr int64_t kWorthAThread = 1 << 15;
#ifdef _OPENMP
  if (items > 1 && items * work >= 2 * kWorthAThread && threads() > 1) {
#pragma omp parallel for schedule(static)
    for (int64_t item = 0; item < items; ++item) body(item, omp_get_thread_num());
    return;
  }
#endif
  for (int64_t item = 0; item < items; ++item) body(item, 0);
}

// body(begin, end) over consecutive chunks of [0, n) of elementwise work, one per thread.
template <class Body>
void parallel_chunks(int64_t n, Body body) {
  const int64_t chunks = std::max<int64_t>(1, std::min<int64_t>(threads(), n >> 15));
  parallel_for(chunks, n / chunks, [&](int64_t chunk, int) {
    body(n * chunk / chunks, n * (chunk + 1) / chunks);
  });
}

}  // namespace cpu
}  // namespace engine
