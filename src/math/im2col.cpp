#include "math/im2col.hpp"

#include <algorithm>
#include <cstring>

namespace engine {

ValidRange valid_outputs(int outputs, int stride, int offset, int size) {
  // Smallest o with o * stride + offset >= 0.
  const int begin = offset >= 0 ? 0 : (-offset + stride - 1) / stride;
  // One past the largest o with o * stride + offset <= size - 1.
  const int last = size - 1 - offset;
  const int end = last < 0 ? 0 : last / stride + 1;
  const int b = std::min(begin, outputs);
  return {b, std::max(b, std::min(end, outputs))};
}

void im2col(const ConvGeometry2d& g, const float* image, float* col, long row_stride) {
  const int out_h = g.out_h(), out_w = g.out_w();
  const long plane = static_cast<long>(g.height) * g.width;
  for (int c = 0; c < g.channels; ++c) {
    const float* channel = image + c * plane;
    for (int ki = 0; ki < g.kernel_h; ++ki) {
      const int offset_h = ki * g.dilation_h - g.pad_h;
      const ValidRange rows = valid_outputs(out_h, g.stride_h, offset_h, g.height);
      for (int kj = 0; kj < g.kernel_w; ++kj) {
        const int offset_w = kj * g.dilation_w - g.pad_w;
        const ValidRange cols = valid_outputs(out_w, g.stride_w, offset_w, g.width);
        float* out = col + ((static_cast<long>(c) * g.kernel_h + ki) * g.kernel_w + kj) * row_stride;
        std::fill(out, out + static_cast<long>(rows.begin) * out_w, 0.0f);
        for (int oh = rows.begin; oh < rows.end; ++oh) {
          float* dst = out + static_cast<long>(oh) * out_w;
          const float* src = channel + static_cast<long>(oh * g.stride_h + offset_h) * g.width;
          std::fill(dst, dst + cols.begin, 0.0f);
          if (g.stride_w == 1) {
            std::memcpy(dst + cols.begin, src + cols.begin + offset_w,
                        sizeof(float) * (cols.end - cols.begin));
          } else {
            const int s = g.stride_w;
            for (int ow = cols.begin; ow < cols.end; ++ow) dst[ow] = src[ow * s + offset_w];
          }
          std::fill(dst + cols.end, dst + out_w, 0.0f);
        }
        std::fill(out + static_cast<long>(rows.end) * out_w, out + static_cast<long>(out_h) * out_w,
                  0.0f);
      }
    }
  }
}

void col2im(const ConvGeometry2d& g, const float* col, long row_stride, float* image) {
  const int out_h = g.out_h(), out_w = g.out_w();
  const long plane = static_cast<long>(g.height) * g.width;
  std::fill(image, image + g.channels * plane, 0.0f);
  for (int c = 0; c < g.channels; ++c) {
    float* channel = image + c * plane;
    for (int ki = 0; ki < g.kernel_h; ++ki) {
      const int offset_h = ki * g.dilation_h - g.pad_h;
      const ValidRange rows = valid_outputs(out_h, g.stride_h, offset_h, g.height);
      for (int kj = 0; kj < g.kernel_w; ++kj) {
        const int offset_w = kj * g.dilation_w - g.pad_w;
        const ValidRange cols = valid_outputs(out_w, g.stride_w, offset_w, g.width);
        const float* in = col + ((static_cast<long>(c) * g.kernel_h + ki) * g.kernel_w + kj) * row_stride;
        for (int oh = rows.begin; oh < rows.end; ++oh) {
          const float* src = in + static_cast<long>(oh) * out_w;
          float* dst = channel + static_cast<long>(oh * g.stride_h + offset_h) * g.width;
          const int s = g.stride_w;
          if (s == 1) {
            for (int ow = cols.begin; ow < cols.end; ++ow) dst[ow + offset_w] += src[ow];
          } else {
            for (int ow = cols.begin; ow < cols.end; ++ow) dst[ow * s + offset_w] += src[ow];
          }
        }
      }
    }
  }
}

}  // namespace engine
