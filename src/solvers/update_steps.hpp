// The steps of the update rules and the regularisation (update_rules.cpp, solver.cpp), once per
// device with one signature: loops in namespace cpu (update_rules.cpp, the reference) and fused
// CUDA kernels in namespace gpu (update_rules.cu), so that in GPU mode an iteration's update
// never visits the host. Callers pick the side with ENGINE_ON_DEVICE (math/blas.hpp). Each runs
// in place on arrays of n floats (on the default stream on the GPU). The formulas are those of
// update_rules.cpp's header comment.
#pragma once

#include <cstdint>

namespace engine {

#define ENGINE_UPDATE_STEPS                                                                     \
  void sgd_update(int64_t n, float rate, float momentum, float* velocity, float* diff);         \
  void nesterov_update(int64_t n, float rate, float momentum, float* velocity, float* diff);    \
  /* AdaGrad (keep 1, add 1) and RMSProp (keep rms_decay, add 1 - rms_decay). */                \
  void adaptive_update(int64_t n, float rate, float keep, float add, float delta, float* squares, \
                       float* diff);                                                            \
  void adadelta_update(int64_t n, float rate, float momentum, float delta,                      \
                       float* gradient_squares, float* update_squares, float* diff);            \
  /* rate includes Adam's bias correction. */                                                   \
  void adam_update(int64_t n, float rate, float beta1, float beta2, float epsilon, float* first, \
                   float* second, float* diff);                                                 \
  /* diff += decay * sign(data) */                                                              \
  void l1_regularize(int64_t n, float decay, const float* data, float* diff);

namespace cpu {
ENGINE_UPDATE_STEPS
}  // namespace cpu

#ifdef ENGINE_USE_CUDA
namespace gpu {
ENGINE_UPDATE_STEPS
}  // namespace gpu
#endif

#undef ENGINE_UPDATE_STEPS

}  // namespace engine
