// The update rules and the regularisation of update_rules.cpp and solver.cpp as CUDA kernels
// (update_rules.cu), for a net that trains on the GPU: each runs in place on device arrays of n
// floats, on the default stream, so an iteration's update never visits the host. The formulas
// are those of update_rules.cpp's header comment.
#pragma once

#include <cstdint>

#ifdef ENGINE_USE_CUDA
namespace engine {
namespace gpu {

void sgd_update(int64_t n, float rate, float momentum, float* velocity, float* diff);
void nesterov_update(int64_t n, float rate, float momentum, float* velocity, float* diff);
// AdaGrad (keep 1, add 1) and RMSProp (keep rms_decay, add 1 - rms_decay).
void adaptive_update(int64_t n, float rate, float keep, float add, float delta, float* squares,
                     float* diff);
void adadelta_update(int64_t n, float rate, float momentum, float delta, float* gradient_squares,
                     float* update_squares, float* diff);
// rate includes Adam's bias correction.
void adam_update(int64_t n, float rate, float beta1, float beta2, float epsilon, float* first,
                 float* second, float* diff);
// diff += decay * sign(data)
void l1_regularize(int64_t n, float decay, const float* data, float* diff);

}  // namespace gpu
}  // namespace engine
#endif
