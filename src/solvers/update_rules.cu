// The update rules on the GPU (update_steps.hpp): one fused kernel per rule.
#include <cuda_runtime.h>

#include <cmath>

#include "core/errors.hpp"
#include "math/cuda_kernel.cuh"
#include "solvers/update_steps.hpp"

namespace engine {
namespace gpu {
namespace {

__global__ void sgd_kernel(int64_t n, float rate, float momentum, float* velocity, float* diff) {
  ENGINE_CUDA_KERNEL_LOOP(i, n) {
    const float v = rate * diff[i] + momentum * velocity[i];
    velocity[i] = v;
    diff[i] = v;
  }
}

__global__ void nesterov_kernel(int64_t n, float rate, float momentum, float* velocity,
                                float* diff) {
  ENGINE_CUDA_KERNEL_LOOP(i, n) {
    const float previous = velocity[i];
    const float v = momentum * previous + rate * diff[i];
    velocity[i] = v;
    diff[i] = (1 + momentum) * v - momentum * previous;
  }
}

__global__ void adaptive_kernel(int64_t n, float rate, float keep, float add, float delta,
                                float* squares, float* diff) {
  ENGINE_CUDA_KERNEL_LOOP(i, n) {
    const float g = diff[i];
    const float h = keep * squares[i] + add * g * g;
    squares[i] = h;
    diff[i] = rate * g / (sqrtf(h) + delta);
  }
}

__global__ void adadelta_kernel(int64_t n, float rate, float momentum, float delta,
                                float* gradient_squares, float* update_squares, float* diff) {
  ENGINE_CUDA_KERNEL_LOOP(i, n) {
    const float g = diff[i];
    const float h = momentum * gradient_squares[i] + (1 - momentum) * g * g;
    gradient_squares[i] = h;
    const float update = g * sqrtf((update_squares[i] + delta) / (h + delta));
    update_squares[i] = momentum * update_squares[i] + (1 - momentum) * update * update;
    diff[i] = rate * update;
  }
}

__global__ void adam_kernel(int64_t n, float rate, float beta1, float beta2, float epsilon,
                            float* first, float* second, float* diff) {
  ENGINE_CUDA_KERNEL_LOOP(i, n) {
    const float g = diff[i];
    const float m = beta1 * first[i] + (1 - beta1) * g;
    const float v = beta2 * second[i] + (1 - beta2) * g * g;
    first[i] = m;
    second[i] = v;
    diff[i] = rate * m / (sqrtf(v) + epsilon);
  }
}

__global__ void l1_kernel(int64_t n, float decay, const float* data, float* diff) {
  ENGINE_CUDA_KERNEL_LOOP(i, n) {
    const float x = data[i];
    diff[i] += decay * static_cast<float>((x > 0) - (x < 0));
  }
}

void check_launch() { ENGINE_CUDA_CHECK(cudaPeekAtLastError()); }

}  // namespace

void sgd_update(int64_t n, float rate, float momentum, float* velocity, float* diff) {
  if (n == 0) return;
  sgd_kernel<<<cuda_blocks(n), kCudaThreads>>>(n, rate, momentum, velocity, diff);
  check_launch();
}

void nesterov_update(int64_t n, float rate, float momentum, float* velocity, float* diff) {
  if (n == 0) return;
  nesterov_kernel<<<cuda_blocks(n), kCudaThreads>>>(n, rate, momentum, velocity, diff);
  check_launch();
}

void adaptive_update(int64_t n, float rate, float keep, float add, float delta, float* squares,
                     float* diff) {
  if (n == 0) return;
  adaptive_kernel<<<cuda_blocks(n), kCudaThreads>>>(n, rate, keep, add, delta, squares, diff);
  check_launch();
}

void adadelta_update(int64_t n, float rate, float momentum, float delta, float* gradient_squares,
                     float* update_squares, float* diff) {
  if (n == 0) return;
  adadelta_kernel<<<cuda_blocks(n), kCudaThreads>>>(n, rate, momentum, delta, gradient_squares,
                                                    update_squares, diff);
  check_launch();
}

void adam_update(int64_t n, float rate, float beta1, float beta2, float epsilon, float* first,
                 float* second, float* diff) {
  if (n == 0) return;
  adam_kernel<<<cuda_blocks(n), kCudaThreads>>>(n, rate, beta1, beta2, epsilon, first, second,
                                                diff);
  check_launch();
}

void l1_regularize(int64_t n, float decay, const float* data, float* diff) {
  if (n == 0) return;
  l1_kernel<<<cuda_blocks(n), kCudaThreads>>>(n, decay, data, diff);
  check_launch();
}

}  // namespace gpu
}  // namespace engine
