// The launchers of the layers' own CUDA kernels (activations.cu, pooling.cu, lrn.cu, softmax.cu,
// selection.cu),
// for the layer files that call them. Every pointer is device memory; every launcher runs on the
// default stream (the one cuBLAS and cuDNN use here) and checks the launch. Only in CUDA builds.
#pragma once

#ifdef ENGINE_USE_CUDA

#include <cstdint>

namespace engine {
namespace gpu {

// ---- activations.cu (Dropout) ---------------------------------------------------------------
// y = x * scale where element i is kept, else 0. Element i is kept when a counter-based hash of
// (seed, i), a uniform 32-bit integer, is at least `threshold` (= dropout ratio * 2^32). The mask
// is a function of the seed, so backward recomputes it instead of storing it.
void dropout(int64_t n, const float* x, float* y, uint64_t seed, uint32_t threshold, float scale);

// ---- pooling.cu ------------------------------------------------------------------------------
// Caffe's pooling geometry: windows start at p * stride - pad; AVE divides by the window clipped
// to [-pad, in + pad), every method pools over the window clipped to the input.
struct PoolShape {
  int num, channels, height, width;
  int kernel_h, kernel_w, stride_h, stride_w, pad_h, pad_w;
  int pooled_h, pooled_w;
};
// argmax: the index into the H x W plane of each output's first maximum; mask_top (optional)
// receives the same as floats.
void max_pool_forward(const PoolShape& s, const float* x, float* y, int* argmax, float* mask_top);
// Routes each output's gradient to the input its index names (MAX's argmax, STOCHASTIC's pick
// at TRAIN); overwrites dx.
void max_pool_backward(const PoolShape& s, const float* dy, const int* argmax, float* dx);
void ave_pool_forward(const PoolShape& s, const float* x, float* y);
void ave_pool_backward(const PoolShape& s, const float* dy, float* dx);
// STOCHASTIC at TRAIN: each output takes one element of its window, drawn with probability
// proportional to its value by the uniform in (0, 1) that the hash of (seed, output index)
// gives; chosen receives the element's index into the H x W plane.
void stochastic_pool_train_forward(const PoolShape& s, const float* x, float* y, int* chosen,
                                   uint64_t seed);
// STOCHASTIC at TEST: sum(x^2) / sum(x) over each window, and its derivative.
void stochastic_pool_test_forward(const PoolShape& s, const float* x, float* y);
void stochastic_pool_test_backward(const PoolShape& s, const float* dy, const float* x,
                                   const float* y, float* dx);

// ---- lrn.cu ----------------------------------------------------------------------------------
// across: the window runs over `size` channels, else over a size x size box of one plane (zero
// padded). scale = k + coefficient * (window sum of x^2); y = x * scale^-beta.
void lrn_forward(bool across, int num, int channels, int height, int width, int size,
                 float coefficient, float k, float beta, const float* x, float* scale, float* y);
// dx = dy * scale^-beta - cross * x * (window sum of dy * y / scale). ratio: scratch of x's size.
void lrn_backward(bool across, int num, int channels, int height, int width, int size, float beta,
                  float cross, const float* x, const float* y, const float* dy,
                  const float* scale, float* ratio, float* dx);

// ---- softmax.cu ------------------------------------------------------------------------------
// Over the middle axis of [outer, channels, inner]; in place allowed.
void softmax_forward(int64_t outer, int channels, int64_t inner, const float* x, float* y);
void softmax_backward(int64_t outer, int channels, int64_t inner, const float* y,
                      const float* dy, float* dx);
// Per location (outer x inner): loss = -log(max(prob[label], FLT_MIN)) and valid = 1, or both 0
// where the label is ignored; a label outside [0, channels) gives a NaN loss.
void softmax_loss_forward(int64_t outer, int channels, int64_t inner, const float* prob,
                          const float* labels, bool has_ignore_label, int ignore_label,
                          float* loss, float* valid);
// dx = (prob - onehot(label)) * (*loss_weight) * scale, 0 where ignored. loss_weight is device
// memory (the top's diff), so no value comes back to the host.
void softmax_loss_backward(int64_t outer, int channels, int64_t inner, const float* prob,
                           const float* labels, bool has_ignore_label, int ignore_label,
                           const float* loss_weight, float scale, float* dx);

// ---- selection.cu (BatchReindex; Embed) -----------------------------------------------------
// Rows looked up by indices that a bottom holds as floats. An index is valid in [0, limit) (and
// a whole number with whole_only); a valid one truncates to its row. The kernels cannot stop
// the pass on an invalid index as the CPU does, so they never read or write through one.
// dst row r = src row index[r] (+ bias, one value per column, when not null); NaN for an
// invalid index, so that the error shows in the results.
void gather_rows(int64_t rows, int64_t width, const float* index, int64_t limit, bool whole_only,
                 const float* src, const float* bias, float* dst);
// dst row index[r] += src row r (dst has `limit` rows); rows with an invalid index are skipped.
// Each element adds its sources in increasing r, as the CPU does: the sums repeat exactly.
void scatter_add_rows(int64_t rows, int64_t width, const float* index, int64_t limit,
                      bool whole_only, const float* src, float* dst);

}  // namespace gpu

// ---- scale_bias.cu (Scale, Bias; the bias of Convolution and Deconvolution on our kernels) ---
// Over arrays viewed as [outer][dim][inner], the operand spanning dim. y may be x.
// y[o][d][i] = x[o][d][i] * scale[d]
void broadcast_multiply_gpu(int64_t outer, int64_t dim, int64_t inner, const float* x,
                            const float* scale, float* y);
// y[o][d][i] = x[o][d][i] + bias[d]
void broadcast_add_gpu(int64_t outer, int64_t dim, int64_t inner, const float* x,
                       const float* bias, float* y);
// out[d] = sum over o and i of a[o][d][i] (times b[o][d][i] when b is given), added to out when
// accumulate is set; a fixed summation order (math/cuda_reduce.cuh), so runs repeat exactly.
void reduce_to_operand_gpu(int64_t outer, int64_t dim, int64_t inner, const float* a,
                           const float* b, bool accumulate, float* out);

}  // namespace engine

#endif  // ENGINE_USE_CUDA
