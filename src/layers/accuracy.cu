// Accuracy on the GPU: one thread ranks the true class of one location, then deterministic
// reductions (reduce_planes) count the hits overall and per class, and the ratios go to the tops
// on the device.
#include <cuda_runtime.h>
#include <math_constants.h>

#include <cstdint>

#include "core/errors.hpp"
#include "math/cuda_kernel.cuh"
#include "math/cuda_reduce.cuh"

namespace engine {
namespace {

// hit = 1 when fewer than top_k other classes score at least the true class's score (ties count
// against it, as on the CPU); counted = 0 where the label is ignored. A label out of range (the
// CPU throws) is counted with a NaN hit, so the accuracy reads NaN.
__global__ void rank_kernel(int64_t locations, int classes, int64_t inner, const float* scores,
                            const float* labels, int64_t top_k, bool has_ignore_label,
                            int ignore_label, float* hit, float* counted) {
  ENGINE_CUDA_KERNEL_LOOP(location, locations) {
    const int label = static_cast<int>(labels[location]);
    if (has_ignore_label && label == ignore_label) {
      hit[location] = 0;
      counted[location] = 0;
      continue;
    }
    counted[location] = 1;
    if (label < 0 || label >= classes) {
      hit[location] = CUDART_NAN_F;
      continue;
    }
    const int64_t j = location % inner;
    const float* at = scores + (location - j) * classes + j;
    const float true_score = at[int64_t(label) * inner];
    int64_t ranked_above = 0;
    for (int c = 0; c < classes && ranked_above < top_k; ++c) {
      ranked_above += c != label && at[int64_t(c) * inner] >= true_score;
    }
    hit[location] = ranked_above < top_k ? 1.0f : 0.0f;
  }
}

// values[location] where the location's label is class c, for index = c * locations + location.
struct ClassTerm {
  const float* labels;
  const float* values;
  int64_t locations;
  __device__ double operator()(int64_t index) const {
    const int64_t c = index / locations;
    const int64_t location = index - c * locations;
    return static_cast<int>(labels[location]) == c ? values[location] : 0.0f;
  }
};

// Nothing to score gives 0, as on the CPU.
__global__ void ratio_kernel(int64_t n, const float* numerator, const float* denominator,
                             float* ratio) {
  ENGINE_CUDA_KERNEL_LOOP(i, n) {
    ratio[i] = denominator[i] == 0 ? 0.0f : numerator[i] / denominator[i];
  }
}

}  // namespace

void accuracy_forward_gpu(int64_t outer, int classes, int64_t inner, const float* scores,
                          const float* labels, int64_t top_k, bool has_ignore_label,
                          int ignore_label, float* scratch, float* accuracy,
                          float* class_accuracy) {
  const int64_t locations = outer * inner;
  float* hit = scratch;
  float* counted = scratch + locations;
  float* sums = scratch + 2 * locations;  // hits, counted
  float* class_sums = sums + 2;           // hits per class, then counted per class
  if (locations > 0) {
    rank_kernel<<<cuda_blocks(locations), kCudaThreads>>>(locations, classes, inner, scores,
                                                          labels, top_k, has_ignore_label,
                                                          ignore_label, hit, counted);
    ENGINE_CUDA_CHECK(cudaPeekAtLastError());
  }
  // hit and counted are adjacent rows: one reduction sums both.
  reduce_planes(1, 2, locations, TermOf{scratch}, 1.0f, 0.0f, sums);
  ratio_kernel<<<1, 1>>>(1, sums, sums + 1, accuracy);
  ENGINE_CUDA_CHECK(cudaPeekAtLastError());
  if (class_accuracy == nullptr || classes == 0) return;
  reduce_planes(1, classes, locations, ClassTerm{labels, hit, locations}, 1.0f, 0.0f, class_sums);
  reduce_planes(1, classes, locations, ClassTerm{labels, counted, locations}, 1.0f, 0.0f,
                class_sums + classes);
  ratio_kernel<<<cuda_blocks(classes), kCudaThreads>>>(classes, class_sums, class_sums + classes,
                                                       class_accuracy);
  ENGINE_CUDA_CHECK(cudaPeekAtLastError());
}

}  // namespace engine
