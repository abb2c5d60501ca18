#include "core/ordered_parallel_map.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <stdexcept>
#include <thread>

namespace engine {
namespace {

// A source of 0..count-1.
struct Counter {
  int count, next = 0;
  bool operator()(int* item) {
    if (next == count) return false;
    *item = next++;
    return true;
  }
};

TEST(OrderedParallelMap, ResultsArriveInSourceOrder) {
  for (int threads : {1, 2, 5}) {
    for (size_t chunk : {1, 3, 64}) {
      std::vector<int> results;
      ordered_parallel_map<int, int>(
          threads, chunk, Counter{1000},
          [](int&& i) {
            // Uneven work, so that chunks finish out of order.
            if (i % 7 == 0) std::this_thread::sleep_for(std::chrono::microseconds(50));
            return i * i;
          },
          [&](int&& r) { results.push_back(r); });
      ASSERT_EQ(results.size(), 1000u) << threads << " threads, chunk " << chunk;
      for (int i = 0; i < 1000; ++i) ASSERT_EQ(results[i], i * i);
    }
  }
}

TEST(OrderedParallelMap, EmptySource) {
  int consumed = 0;
  ordered_parallel_map<int, int>(2, 4, Counter{0}, [](int&& i) { return i; },
                                 [&](int&&) { ++consumed; });
  EXPECT_EQ(consumed, 0);
}

TEST(OrderedParallelMap, FirstMapErrorInOrderWinsAfterEarlierResults) {
  std::vector<int> results;
  try {
    ordered_parallel_map<int, int>(
        3, 2, Counter{100},
        [](int&& i) {
          if (i == 41) {  // the later failure finishes first
            throw std::runtime_error("item 41");
          }
          if (i == 17) {
            std::this_thread::sleep_for(std::chrono::milliseconds(20));
            throw std::runtime_error("item 17");
          }
          return i;
        },
        [&](int&& r) { results.push_back(r); });
    FAIL() << "no exception";
  } catch (const std::runtime_error& error) {
    EXPECT_STREQ(error.what(), "item 17");
  }
  ASSERT_EQ(results.size(), 17u);
  for (int i = 0; i < 17; ++i) EXPECT_EQ(results[i], i);
}

TEST(OrderedParallelMap, SourceAndConsumerErrorsPropagate) {
  std::vector<int> results;
  int next = 0;
  auto failing_source = [&](int* item) {
    if (next == 10) throw std::runtime_error("source broke");
    *item = next++;
    return true;
  };
  auto identity = [](int&& i) { return i; };
  EXPECT_THROW((ordered_parallel_map<int, int>(2, 3, failing_source, identity,
                                               [&](int&& r) { results.push_back(r); })),
               std::runtime_error);
  EXPECT_EQ(results.size(), 10u);  // everything read before the failure was delivered

  std::atomic<int> mapped{0};
  EXPECT_THROW((ordered_parallel_map<int, int>(
                   2, 1, Counter{100000},
                   [&](int&& i) {
                     ++mapped;
                     return i;
                   },
                   [](int&& r) {
                     if (r == 5) throw std::runtime_error("consumer broke");
                   })),
               std::runtime_error);
  EXPECT_LT(mapped.load(), 100);  // the workers stopped: a bounded window ran ahead
}

}  // namespace
}  // namespace engine
