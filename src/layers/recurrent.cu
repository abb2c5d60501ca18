// The CUDA kernels of the recurrent layers (recurrent.cpp): the pointwise steps of a timestep,
// one thread per element or cell. The matrix products are gpu:: calls of the shared code.
#include <cuda_runtime.h>

#include "core/errors.hpp"
#include "layers/lstm_cell.hpp"
#include "math/cuda_kernel.cuh"

namespace engine {
namespace {

__global__ void scale_rows_kernel(int64_t n, int width, const float* scale, const float* rows,
                                  float* out) {
  ENGINE_CUDA_KERNEL_LOOP(j, n) { out[j] = rows[j] * scale[j / width]; }
}

// Thread j serves cell j of the N x H state: stream j / H, unit j % H.
__global__ void lstm_unit_forward_kernel(int64_t n, int H, const float* c_prev, const float* gates,
                                         const float* cont, float* acts, float* c, float* h) {
  ENGINE_CUDA_KERNEL_LOOP(j, n) {
    const int64_t stream = j / H;
    const int d = static_cast<int>(j - stream * H);
    lstm_cell_forward(H, d, gates + stream * 4 * H, cont[stream], c_prev[j],
                      acts + stream * 4 * H, c + j, h + j);
  }
}

__global__ void lstm_unit_backward_kernel(int64_t n, int H, const float* c_prev,
                                          const float* acts, const float* c, const float* c_diff,
                                          const float* h_diff, float* c_prev_diff,
                                          float* gates_diff) {
  ENGINE_CUDA_KERNEL_LOOP(j, n) {
    const int64_t stream = j / H;
    const int d = static_cast<int>(j - stream * H);
    lstm_cell_backward(H, d, acts + stream * 4 * H, c_prev[j], c[j], c_diff ? c_diff[j] : 0.0f,
                       h_diff[j], c_prev_diff ? c_prev_diff + j : nullptr,
                       gates_diff ? gates_diff + stream * 4 * H : nullptr);
  }
}

}  // namespace

void scale_rows_gpu(int N, int H, const float* scale, const float* rows, float* out) {
  const int64_t n = int64_t(N) * H;
  if (n == 0) return;
  scale_rows_kernel<<<cuda_blocks(n), kCudaThreads>>>(n, H, scale, rows, out);
  ENGINE_CUDA_CHECK(cudaPeekAtLastError());
}

void lstm_unit_forward_gpu(int N, int H, const float* c_prev, const float* gates,
                           const float* cont, float* acts, float* c, float* h) {
  const int64_t n = int64_t(N) * H;
  if (n == 0) return;
  lstm_unit_forward_kernel<<<cuda_blocks(n), kCudaThreads>>>(n, H, c_prev, gates, cont, acts, c,
                                                             h);
  ENGINE_CUDA_CHECK(cudaPeekAtLastError());
}

void lstm_unit_backward_gpu(int N, int H, const float* c_prev, const float* acts, const float* c,
                            const float* c_diff, const float* h_diff, float* c_prev_diff,
                            float* gates_diff) {
  const int64_t n = int64_t(N) * H;
  if (n == 0) return;
  lstm_unit_backward_kernel<<<cuda_blocks(n), kCudaThreads>>>(n, H, c_prev, acts, c, c_diff,
                                                              h_diff, c_prev_diff, gates_diff);
  ENGINE_CUDA_CHECK(cudaPeekAtLastError());
}

}  // namespace engine
