// im2col / col2im: the lowering of a 2-D convolution to a matrix product, shared by Convolution
// and Deconvolution (their reference path, on either device). One image of C x H x W becomes a
// column matrix of (C * kernel_h * kernel_w) rows by (out_h * out_w) columns, row r = (c, ki, kj)
// holding the input pixel each output position sees through kernel tap (ki, kj) of channel c (0
// in the padding).
//
// `row_stride` is the distance between consecutive column rows (>= out_h * out_w), so that the
// columns of several images can sit side by side in one matrix of row_stride = images * out_h *
// out_w and be multiplied in one product. Pure functions, thread-safe.
#pragma once

namespace engine {

struct ConvGeometry2d {
  int channels = 0;
  int height = 0, width = 0;
  int kernel_h = 1, kernel_w = 1;
  int pad_h = 0, pad_w = 0;
  int stride_h = 1, stride_w = 1;
  int dilation_h = 1, dilation_w = 1;

  // Caffe's output size: floor((in + 2p - (d(k-1)+1)) / s) + 1.
  int out_h() const { return (height + 2 * pad_h - (dilation_h * (kernel_h - 1) + 1)) / stride_h + 1; }
  int out_w() const { return (width + 2 * pad_w - (dilation_w * (kernel_w - 1) + 1)) / stride_w + 1; }
  int col_rows() const { return channels * kernel_h * kernel_w; }
};

// The output positions [begin, end) along one axis whose input coordinate o * stride + offset
// falls inside [0, size); the others read padding. Hoisted out of pixel loops per kernel tap.
struct ValidRange {
  int begin, end;
};
ValidRange valid_outputs(int outputs, int stride, int offset, int size);

// col[r * row_stride + o] = image value (or 0) for row r and output position o.
void im2col(const ConvGeometry2d& g, const float* image, float* col, long row_stride);
// The adjoint: image = sum over the column entries that read each pixel. Overwrites image.
void col2im(const ConvGeometry2d& g, const float* col, long row_stride, float* image);

#ifdef ENGINE_USE_CUDA
namespace gpu {
// The same on device memory (im2col.cu), asynchronous on the default stream. col2im gathers each
// pixel's taps in the CPU's order (ki, then kj) instead of scattering into it: no atomics, and
// the same sums as the CPU's, bit for bit.
void im2col(const ConvGeometry2d& g, const float* image, float* col, long row_stride);
void col2im(const ConvGeometry2d& g, const float* col, long row_stride, float* image);
}  // namespace gpu
#endif

}  // namespace engine
