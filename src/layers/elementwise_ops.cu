// The one CUDA kernel pair behind every ElementwiseLayer: the Op's own host-device functions
// (elementwise_ops.hpp) applied by a grid-stride loop.
#include <cuda_runtime.h>

#include "core/errors.hpp"
#include "layers/elementwise_ops.hpp"
#include "math/cuda_kernel.cuh"

namespace engine {
namespace {

// The Op travels by value in the kernel's parameters: a few floats.
template <class Op>
__global__ void forward_kernel(int64_t n, const float* x, float* y, Op op) {
  ENGINE_CUDA_KERNEL_LOOP(i, n) { y[i] = op.forward(x[i]); }
}

template <class Op>
__global__ void gradient_kernel(int64_t n, const float* dy, const float* x, const float* y,
                                float* dx, Op op) {
  ENGINE_CUDA_KERNEL_LOOP(i, n) { dx[i] = op.gradient(dy[i], x[i], y[i]); }
}

}  // namespace

template <class Op>
void elementwise_forward_gpu(int64_t n, const float* x, float* y, const Op& op) {
  if (n == 0) return;
  forward_kernel<Op><<<cuda_blocks(n), kCudaThreads>>>(n, x, y, op);
  ENGINE_CUDA_CHECK(cudaPeekAtLastError());
}

template <class Op>
void elementwise_gradient_gpu(int64_t n, const float* dy, const float* x, const float* y,
                              float* dx, const Op& op) {
  if (n == 0) return;
  gradient_kernel<Op><<<cuda_blocks(n), kCudaThreads>>>(n, dy, x, y, dx, op);
  ENGINE_CUDA_CHECK(cudaPeekAtLastError());
}

#define ENGINE_INSTANTIATE_ELEMENTWISE(OP)                                                     \
  template void elementwise_forward_gpu<OP>(int64_t, const float*, float*, const OP&);        \
  template void elementwise_gradient_gpu<OP>(int64_t, const float*, const float*, const float*, \
                                             float*, const OP&);
ENGINE_ELEMENTWISE_OPS(ENGINE_INSTANTIATE_ELEMENTWISE)
#undef ENGINE_INSTANTIATE_ELEMENTWISE

}  // namespace engine
