// Depthwise convolution (group == channels) computed directly on N x C x H x W blobs: each output
// plane is a sum of kernel taps, each tap a shifted (and for stride > 1, subsampled) row of its
// one input plane scaled by a weight. Kernel-tap bounds are hoisted out of the pixel loops, so the
// inner loops are unit-stride multiply-adds the compiler vectorizes (for stride 1).
#include <algorithm>
#include <vector>

#include "core/channel_epilogue.hpp"
#include "layers/conv.hpp"
#include "math/blas.hpp"

namespace engine {

bool is_depthwise(const ConvSpec& spec, int channels) {
  // group == channels == 1 is an ordinary convolution, which the lowered path serves well.
  return spec.group > 1 && spec.group == channels;
}

namespace depthwise {
namespace {

// The per-tap column ranges and offsets of one geometry, computed once per call.
struct Taps {
  std::vector<ValidRange> columns;  // per kj
  std::vector<int> column_offset;   // per kj: kj * dilation - pad
  explicit Taps(const ConvGeometry2d& g) {
    for (int kj = 0; kj < g.kernel_w; ++kj) {
      column_offset.push_back(kj * g.dilation_w - g.pad_w);
      columns.push_back(valid_outputs(g.out_w(), g.stride_w, column_offset.back(), g.width));
    }
  }
};

// The input row output row oh reads through kernel row ki, or -1 in the padding.
inline int input_row(const ConvGeometry2d& g, int oh, int ki) {
  const int ih = oh * g.stride_h + ki * g.dilation_h - g.pad_h;
  return ih >= 0 && ih < g.height ? ih : -1;
}

}  // namespace

void forward(const ConvGeometry2d& g, int num, int multiplier, const float* bottom,
             const float* weights, const float* bias, float* top) {
  const Taps taps(g);
  const int out_h = g.out_h(), out_w = g.out_w(), sw = g.stride_w;
  const long in_plane = static_cast<long>(g.height) * g.width;
  const long out_plane = static_cast<long>(out_h) * out_w;
  const int kernel = g.kernel_h * g.kernel_w;
  const int outputs = g.channels * multiplier;
  for (int n = 0; n < num; ++n) {
    for (int o = 0; o < outputs; ++o) {
      const float* in = bottom + (static_cast<long>(n) * g.channels + o / multiplier) * in_plane;
      float* out = top + (static_cast<long>(n) * outputs + o) * out_plane;
      const float* w = weights + static_cast<long>(o) * kernel;
      for (int oh = 0; oh < out_h; ++oh) {
        float* dst = out + static_cast<long>(oh) * out_w;
        std::fill(dst, dst + out_w, 0.0f);
        for (int ki = 0; ki < g.kernel_h; ++ki) {
          const int ih = input_row(g, oh, ki);
          if (ih < 0) continue;
          const float* src_row = in + static_cast<long>(ih) * g.width;
          for (int kj = 0; kj < g.kernel_w; ++kj) {
            const float wv = w[ki * g.kernel_w + kj];
            const ValidRange r = taps.columns[kj];
            const int off = taps.column_offset[kj];
            if (sw == 1) {
              for (int ow = r.begin; ow < r.end; ++ow) dst[ow] += wv * src_row[ow + off];
            } else {
              for (int ow = r.begin; ow < r.end; ++ow) dst[ow] += wv * src_row[ow * sw + off];
            }
          }
        }
        if (bias) {
          const float b = bias[o];
          for (int ow = 0; ow < out_w; ++ow) dst[ow] += b;
        }
      }
    }
  }
}

void backward_data(const ConvGeometry2d& g, int num, int multiplier, const float* top_diff,
                   const float* weights, float* bottom_diff) {
  const Taps taps(g);
  const int out_h = g.out_h(), out_w = g.out_w(), sw = g.stride_w;
  const long in_plane = static_cast<long>(g.height) * g.width;
  const long out_plane = static_cast<long>(out_h) * out_w;
  const int kernel = g.kernel_h * g.kernel_w;
  const int outputs = g.channels * multiplier;
  std::fill(bottom_diff, bottom_diff + num * g.channels * in_plane, 0.0f);
  for (int n = 0; n < num; ++n) {
    for (int o = 0; o < outputs; ++o) {
      float* in = bottom_diff + (static_cast<long>(n) * g.channels + o / multiplier) * in_plane;
      const float* out = top_diff + (static_cast<long>(n) * outputs + o) * out_plane;
      const float* w = weights + static_cast<long>(o) * kernel;
      for (int oh = 0; oh < out_h; ++oh) {
        const float* diff = out + static_cast<long>(oh) * out_w;
        for (int ki = 0; ki < g.kernel_h; ++ki) {
          const int ih = input_row(g, oh, ki);
          if (ih < 0) continue;
          float* dst_row = in + static_cast<long>(ih) * g.width;
          for (int kj = 0; kj < g.kernel_w; ++kj) {
            const float wv = w[ki * g.kernel_w + kj];
            const ValidRange r = taps.columns[kj];
            const int off = taps.column_offset[kj];
            if (sw == 1) {
              for (int ow = r.begin; ow < r.end; ++ow) dst_row[ow + off] += wv * diff[ow];
            } else {
              for (int ow = r.begin; ow < r.end; ++ow) dst_row[ow * sw + off] += wv * diff[ow];
            }
          }
        }
      }
    }
  }
}

void backward_weights(const ConvGeometry2d& g, int num, int multiplier, const float* bottom,
                      const float* top_diff, float* weight_diff) {
  const Taps taps(g);
  const int out_h = g.out_h(), out_w = g.out_w(), sw = g.stride_w;
  const long in_plane = static_cast<long>(g.height) * g.width;
  const long out_plane = static_cast<long>(out_h) * out_w;
  const int kernel = g.kernel_h * g.kernel_w;
  const int outputs = g.channels * multiplier;
  // One row of partial sums per tap: elementwise multiply-adds vectorize where a running scalar
  // sum would not; each row is summed once per output plane.
  std::vector<float> partial(static_cast<size_t>(kernel) * out_w);
  for (int o = 0; o < outputs; ++o) {
    std::fill(partial.begin(), partial.end(), 0.0f);
    for (int n = 0; n < num; ++n) {
      const float* in = bottom + (static_cast<long>(n) * g.channels + o / multiplier) * in_plane;
      const float* out = top_diff + (static_cast<long>(n) * outputs + o) * out_plane;
      for (int oh = 0; oh < out_h; ++oh) {
        const float* diff = out + static_cast<long>(oh) * out_w;
        for (int ki = 0; ki < g.kernel_h; ++ki) {
          const int ih = input_row(g, oh, ki);
          if (ih < 0) continue;
          const float* src_row = in + static_cast<long>(ih) * g.width;
          for (int kj = 0; kj < g.kernel_w; ++kj) {
            float* acc = partial.data() + static_cast<long>(ki * g.kernel_w + kj) * out_w;
            const ValidRange r = taps.columns[kj];
            const int off = taps.column_offset[kj];
            if (sw == 1) {
              for (int ow = r.begin; ow < r.end; ++ow) acc[ow] += diff[ow] * src_row[ow + off];
            } else {
              for (int ow = r.begin; ow < r.end; ++ow) acc[ow] += diff[ow] * src_row[ow * sw + off];
            }
          }
        }
      }
    }
    float* wd = weight_diff + static_cast<long>(o) * kernel;
    for (int t = 0; t < kernel; ++t) {
      const float* acc = partial.data() + static_cast<long>(t) * out_w;
      float sum = 0;
      for (int ow = 0; ow < out_w; ++ow) sum += acc[ow];
      wd[t] += sum;
    }
  }
}

}  // namespace depthwise

void ConvolutionLayerBase::depthwise_forward(const Blobs& bottom, const Blobs& top) {
  const bool fold = epilogue_ && epilogue_->has_affine();
  FoldedParameters* folded = fold ? &folded_parameters() : nullptr;
  const float* weights =
      fold ? static_cast<const float*>(folded->weights.host_data()) : blobs_[0]->cpu_data();
  const float* bias = fold ? folded->bias.data()
                           : spec_.bias_term ? blobs_[1]->cpu_data() : nullptr;
  const int multiplier = spec_.num_output / channels_;
  for (size_t i = 0; i < bottom.size(); ++i) {
    depthwise::forward(geometry_, num_, multiplier, bottom[i]->cpu_data(), weights, bias,
                       top[i]->mutable_cpu_data());
  }
  finish_forward(top, fold);
}

void ConvolutionLayerBase::depthwise_backward(const Blobs& top,
                                              const std::vector<bool>& propagate_down,
                                              const Blobs& bottom) {
  const int multiplier = spec_.num_output / channels_;
  for (size_t i = 0; i < top.size(); ++i) {
    const float* top_diff = top[i]->cpu_diff();
    if (spec_.bias_term && param_propagate_down(1)) accumulate_bias_gradient(top_diff);
    if (param_propagate_down(0)) {
      depthwise::backward_weights(geometry_, num_, multiplier, bottom[i]->cpu_data(), top_diff,
                                  blobs_[0]->mutable_cpu_diff());
    }
    if (propagate_down[i]) {
      depthwise::backward_data(geometry_, num_, multiplier, top_diff, blobs_[0]->cpu_data(),
                               bottom[i]->mutable_cpu_diff());
    }
  }
}

}  // namespace engine
