// im2col / col2im on the GPU, for the engine: CAFFE path of Convolution and Deconvolution (the
// lowered products run on cuBLAS). The geometry and the column layout are im2col.hpp's.
#include <cuda_runtime.h>

#include "core/errors.hpp"
#include "math/cuda_kernel.cuh"
#include "math/im2col.hpp"

namespace engine {
namespace gpu {
namespace {

// One thread per column entry: row (c, ki, kj), position (oh, ow). Consecutive threads write
// consecutive positions of a row.
__global__ void im2col_kernel(int64_t n, ConvGeometry2d g, int out_h, int out_w,
                              const float* image, float* col, int64_t row_stride) {
  const int64_t out_plane = static_cast<int64_t>(out_h) * out_w;
  ENGINE_CUDA_KERNEL_LOOP(i, n) {
    const int64_t row = i / out_plane;
    const int64_t position = i - row * out_plane;
    const int oh = static_cast<int>(position / out_w);
    const int ow = static_cast<int>(position - static_cast<int64_t>(oh) * out_w);
    const int kj = static_cast<int>(row % g.kernel_w);
    const int ki = static_cast<int>((row / g.kernel_w) % g.kernel_h);
    const int64_t c = row / (static_cast<int64_t>(g.kernel_h) * g.kernel_w);
    const int ih = oh * g.stride_h + ki * g.dilation_h - g.pad_h;
    const int iw = ow * g.stride_w + kj * g.dilation_w - g.pad_w;
    const bool inside = ih >= 0 && ih < g.height && iw >= 0 && iw < g.width;
    col[row * row_stride + position] =
        inside ? image[(c * g.height + ih) * g.width + iw] : 0.0f;
  }
}

// One thread per image pixel (c, ih, iw), summing the entries of the columns that read it: tap
// (ki, kj) reads it from output position (oh, ow) when oh * stride_h = ih + pad_h - ki *
// dilation_h (and likewise for w) has a solution inside the output.
__global__ void col2im_kernel(int64_t n, ConvGeometry2d g, int out_h, int out_w,
                              const float* col, int64_t row_stride, float* image) {
  const int64_t plane = static_cast<int64_t>(g.height) * g.width;
  ENGINE_CUDA_KERNEL_LOOP(i, n) {
    const int64_t c = i / plane;
    const int64_t pixel = i - c * plane;
    const int ih = static_cast<int>(pixel / g.width);
    const int iw = static_cast<int>(pixel - static_cast<int64_t>(ih) * g.width);
    float sum = 0.0f;
    for (int ki = 0; ki < g.kernel_h; ++ki) {
      const int h = ih + g.pad_h - ki * g.dilation_h;
      if (h < 0 || h % g.stride_h != 0 || h / g.stride_h >= out_h) continue;
      const int oh = h / g.stride_h;
      for (int kj = 0; kj < g.kernel_w; ++kj) {
        const int w = iw + g.pad_w - kj * g.dilation_w;
        if (w < 0 || w % g.stride_w != 0 || w / g.stride_w >= out_w) continue;
        const int ow = w / g.stride_w;
        const int64_t row = (c * g.kernel_h + ki) * g.kernel_w + kj;
        sum += col[row * row_stride + static_cast<int64_t>(oh) * out_w + ow];
      }
    }
    image[i] = sum;
  }
}

}  // namespace

void im2col(const ConvGeometry2d& g, const float* image, float* col, long row_stride) {
  const int out_h = g.out_h(), out_w = g.out_w();
  const int64_t n = static_cast<int64_t>(g.channels) * g.kernel_h * g.kernel_w * out_h * out_w;
  if (n <= 0) return;
  im2col_kernel<<<cuda_blocks(n), kCudaThreads>>>(n, g, out_h, out_w, image, col, row_stride);
  ENGINE_CUDA_CHECK(cudaPeekAtLastError());
}

void col2im(const ConvGeometry2d& g, const float* col, long row_stride, float* image) {
  const int64_t n = static_cast<int64_t>(g.channels) * g.height * g.width;
  if (n <= 0) return;
  col2im_kernel<<<cuda_blocks(n), kCudaThreads>>>(n, g, g.out_h(), g.out_w(), col, row_stride,
                                                  image);
  ENGINE_CUDA_CHECK(cudaPeekAtLastError());
}

}  // namespace gpu
}  // namespace engine
