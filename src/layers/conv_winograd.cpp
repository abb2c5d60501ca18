// 3x3 unit-stride convolution by Winograd's minimal filtering F(2x2, 3x3) (Lavin and Gray, "Fast
// Algorithms for Convolutional Neural Networks", 2015): each 2x2 block of outputs (a tile) is
// A^T [(G g G^T) . (B^T d B)] A for the 4x4 input window d under it, so the 36 multiplications of
// a tile per channel pair become 16, done as 16 matrix products over all tiles (one per position
// of the 4x4 transformed tile, each [outputs x channels] x [channels x tiles]). oneDNN 2.6 has
// Winograd for AVX-512 only; on AVX2 the direct convolution runs near the machine's peak, so
// fewer multiplications are the way left to go faster there.
//
// The backward passes are the adjoints of the same three maps (no second algorithm): the top's
// gradient goes into the transformed domain by A dY A^T, the weight gradient is G^T (sum over
// tiles of dM V^T) G and the bottom's is B (U^T dM) B^T added back over the overlapping windows.
// The transforms take sums, differences and halves, so results differ from the direct sum by a
// few roundings (well inside DEFAULT's agreement check; the gradient checker passes).
//
// Data in the transformed domain: V [16][channels][tiles] (the input windows), M [16][outputs]
// [tiles] (the products), U [group][16][outputs / group][channels / group] (the weights), so that
// every product reads and writes whole rows. Images go through in chunks that keep V and M under
// kScratchBytes.
#include <algorithm>
#include <vector>

#include "core/channel_epilogue.hpp"
#include "layers/conv.hpp"
#include "math/blas.hpp"
#include "math/parallel.hpp"
#include "math/simd.hpp"

namespace engine {
namespace winograd {
namespace {

constexpr int kTile = 16;  // values of a transformed 4x4 tile
constexpr int64_t kScratchBytes = int64_t{64} << 20;

// How a plane is cut into 2x2 output tiles, each reading the 4x4 window at (2 ty - pad_h,
// 2 tx - pad_w) of the input.
struct Tiling {
  int height, width, pad_h, pad_w, out_h, out_w;
  int tiles_h, tiles_w;
  explicit Tiling(const ConvGeometry2d& g)
      : height(g.height), width(g.width), pad_h(g.pad_h), pad_w(g.pad_w), out_h(g.out_h()),
        out_w(g.out_w()), tiles_h((out_h + 1) / 2), tiles_w((out_w + 1) / 2) {}
  int tiles() const { return tiles_h * tiles_w; }
  // Columns of the input windows of one tile row: 2 per tile and 2 more.
  int span() const { return 2 * tiles_w + 2; }
};

// V[t * stride + tile] = (B^T d B)[t] for each tile of one input plane; `rows` holds 8 * span().
ENGINE_VECTORIZED void transform_input(const Tiling& t, const float* plane, int64_t stride,
                                       float* rows, float* v) {
  const int span = t.span();
  float* window = rows;            // 4 rows of the input windows, zero outside the plane
  float* column = rows + 4 * span; // B^T applied down each column of them
  const int first = std::max(0, t.pad_w), last = std::min(span, t.pad_w + t.width);
  for (int ty = 0; ty < t.tiles_h; ++ty) {
    for (int r = 0; r < 4; ++r) {
      float* row = window + r * span;
      const int ih = 2 * ty - t.pad_h + r;
      if (ih < 0 || ih >= t.height || first >= last) {
        std::fill(row, row + span, 0.0f);
        continue;
      }
      std::fill(row, row + first, 0.0f);
      std::copy(plane + int64_t(ih) * t.width + first - t.pad_w,
                plane + int64_t(ih) * t.width + last - t.pad_w, row + first);
      std::fill(row + last, row + span, 0.0f);
    }
    const float *r0 = window, *r1 = window + span, *r2 = window + 2 * span, *r3 = window + 3 * span;
    float *c0 = column, *c1 = column + span, *c2 = column + 2 * span, *c3 = column + 3 * span;
    for (int x = 0; x < span; ++x) {
      c0[x] = r0[x] - r2[x];
      c1[x] = r1[x] + r2[x];
      c2[x] = r2[x] - r1[x];
      c3[x] = r1[x] - r3[x];
    }
    float* out = v + int64_t(ty) * t.tiles_w;
    for (int i = 0; i < 4; ++i) {
      const float* c = column + i * span;
      float *v0 = out + (4 * i) * stride, *v1 = v0 + stride, *v2 = v1 + stride, *v3 = v2 + stride;
      for (int tx = 0; tx < t.tiles_w; ++tx) {
        const float* a = c + 2 * tx;
        v0[tx] = a[0] - a[2];
        v1[tx] = a[1] + a[2];
        v2[tx] = a[2] - a[1];
        v3[tx] = a[1] - a[3];
      }
    }
  }
}

// One output plane from M (A^T m A per tile) plus `bias`; `rows` holds 2 * 2 * tiles_w.
ENGINE_VECTORIZED void transform_output(const Tiling& t, const float* m, int64_t stride,
                                        float bias, float* rows, float* plane) {
  const int width = 2 * t.tiles_w;
  float *y0 = rows, *y1 = rows + width;
  for (int ty = 0; ty < t.tiles_h; ++ty) {
    const float* in = m + int64_t(ty) * t.tiles_w;
    for (int tx = 0; tx < t.tiles_w; ++tx) {
      float s[4], d[4];  // A^T applied down each column: the tile's two output rows
      for (int j = 0; j < 4; ++j) {
        const float m0 = in[j * stride + tx], m1 = in[(4 + j) * stride + tx],
                    m2 = in[(8 + j) * stride + tx], m3 = in[(12 + j) * stride + tx];
        s[j] = m0 + m1 + m2;
        d[j] = m1 - m2 - m3;
      }
      y0[2 * tx] = s[0] + s[1] + s[2] + bias;
      y0[2 * tx + 1] = s[1] - s[2] - s[3] + bias;
      y1[2 * tx] = d[0] + d[1] + d[2] + bias;
      y1[2 * tx + 1] = d[1] - d[2] - d[3] + bias;
    }
    float* out = plane + int64_t(2 * ty) * t.out_w;
    std::copy(y0, y0 + t.out_w, out);
    if (2 * ty + 1 < t.out_h) std::copy(y1, y1 + t.out_w, out + t.out_w);
  }
}

// dM = A dY A^T per tile of one output plane's gradient (the adjoint of transform_output);
// `rows` holds 4 * 2 * tiles_w.
ENGINE_VECTORIZED void transform_output_gradient(const Tiling& t, const float* plane,
                                                 int64_t stride, float* rows, float* m) {
  const int width = 2 * t.tiles_w;
  float *u0 = rows, *u1 = rows + width, *u2 = rows + 2 * width, *u3 = rows + 3 * width;
  for (int ty = 0; ty < t.tiles_h; ++ty) {
    const float* y0 = plane + int64_t(2 * ty) * t.out_w;
    const float* y1 = 2 * ty + 1 < t.out_h ? y0 + t.out_w : nullptr;
    for (int x = 0; x < width; ++x) {
      const float a = x < t.out_w ? y0[x] : 0.0f;
      const float b = x < t.out_w && y1 ? y1[x] : 0.0f;
      u0[x] = a;
      u1[x] = a + b;
      u2[x] = a - b;
      u3[x] = -b;
    }
    float* out = m + int64_t(ty) * t.tiles_w;
    for (int i = 0; i < 4; ++i) {
      const float* u = rows + i * width;
      float *m0 = out + (4 * i) * stride, *m1 = m0 + stride, *m2 = m1 + stride, *m3 = m2 + stride;
      for (int tx = 0; tx < t.tiles_w; ++tx) {
        const float a = u[2 * tx], b = u[2 * tx + 1];
        m0[tx] = a;
        m1[tx] = a + b;
        m2[tx] = a - b;
        m3[tx] = -b;
      }
    }
  }
}

// One input plane's gradient = the sum over the windows of B dV B^T (the adjoint of
// transform_input), overwriting `plane`; `window` holds (2 * tiles_h + 2) * span().
void transform_input_gradient(const Tiling& t, const float* v, int64_t stride, float* window,
                              float* plane) {
  const int span = t.span();
  std::fill(window, window + int64_t(2 * t.tiles_h + 2) * span, 0.0f);
  for (int ty = 0; ty < t.tiles_h; ++ty) {
    for (int tx = 0; tx < t.tiles_w; ++tx) {
      const int64_t tile = int64_t(ty) * t.tiles_w + tx;
      float w[4][4];  // B applied along each row of the tile
      for (int i = 0; i < 4; ++i) {
        const float v0 = v[(4 * i) * stride + tile], v1 = v[(4 * i + 1) * stride + tile],
                    v2 = v[(4 * i + 2) * stride + tile], v3 = v[(4 * i + 3) * stride + tile];
        w[i][0] = v0;
        w[i][1] = v1 - v2 + v3;
        w[i][2] = v1 + v2 - v0;
        w[i][3] = -v3;
      }
      float* at = window + int64_t(2 * ty) * span + 2 * tx;
      for (int l = 0; l < 4; ++l) {
        at[l] += w[0][l];
        at[span + l] += w[1][l] - w[2][l] + w[3][l];
        at[2 * span + l] += w[1][l] + w[2][l] - w[0][l];
        at[3 * span + l] -= w[3][l];
      }
    }
  }
  for (int ih = 0; ih < t.height; ++ih) {
    const float* from = window + int64_t(ih + t.pad_h) * span + t.pad_w;
    std::copy(from, from + t.width, plane + int64_t(ih) * t.width);
  }
}

// U = G g G^T for each 3x3 kernel, into U [group][16][outputs / group][channels / group].
void transform_weights(int outputs, int group, int channels_per_group, const float* weights,
                       float* u) {
  const int per_group = outputs / group;
  const int64_t plane = int64_t(per_group) * channels_per_group;
  cpu::parallel_for(outputs, int64_t(channels_per_group) * 9, [&](int64_t o, int) {
    const int64_t base = (o / per_group) * kTile * plane + (o % per_group) * channels_per_group;
    for (int c = 0; c < channels_per_group; ++c) {
      const float* g = weights + (o * channels_per_group + c) * 9;
      float t[4][3];  // G g
      for (int j = 0; j < 3; ++j) {
        t[0][j] = g[j];
        t[1][j] = 0.5f * (g[j] + g[3 + j] + g[6 + j]);
        t[2][j] = 0.5f * (g[j] - g[3 + j] + g[6 + j]);
        t[3][j] = g[6 + j];
      }
      float* out = u + base + c;
      for (int i = 0; i < 4; ++i) {
        out[(4 * i) * plane] = t[i][0];
        out[(4 * i + 1) * plane] = 0.5f * (t[i][0] + t[i][1] + t[i][2]);
        out[(4 * i + 2) * plane] = 0.5f * (t[i][0] - t[i][1] + t[i][2]);
        out[(4 * i + 3) * plane] = t[i][2];
      }
    }
  });
}

// weight_diff += G^T dU G for each kernel (the adjoint of transform_weights).
void accumulate_weight_gradient(int outputs, int group, int channels_per_group, const float* du,
                                float* weight_diff) {
  const int per_group = outputs / group;
  const int64_t plane = int64_t(per_group) * channels_per_group;
  cpu::parallel_for(outputs, int64_t(channels_per_group) * 16, [&](int64_t o, int) {
    const int64_t base = (o / per_group) * kTile * plane + (o % per_group) * channels_per_group;
    for (int c = 0; c < channels_per_group; ++c) {
      const float* in = du + base + c;
      float s[3][4];  // G^T dU
      for (int j = 0; j < 4; ++j) {
        const float u0 = in[j * plane], u1 = in[(4 + j) * plane], u2 = in[(8 + j) * plane],
                    u3 = in[(12 + j) * plane];
        s[0][j] = u0 + 0.5f * (u1 + u2);
        s[1][j] = 0.5f * (u1 - u2);
        s[2][j] = 0.5f * (u1 + u2) + u3;
      }
      float* g = weight_diff + (o * channels_per_group + c) * 9;
      for (int i = 0; i < 3; ++i) {
        g[3 * i] += s[i][0] + 0.5f * (s[i][1] + s[i][2]);
        g[3 * i + 1] += 0.5f * (s[i][1] - s[i][2]);
        g[3 * i + 2] += 0.5f * (s[i][1] + s[i][2]) + s[i][3];
      }
    }
  });
}

// The shapes of one layer's pass and the chunks its images go through.
struct Pass {
  Tiling tiling;
  int num, channels, outputs, group;
  int images_per_chunk;
  Pass(const ConvGeometry2d& g, int num, int outputs, int group)
      : tiling(g), num(num), channels(g.channels), outputs(outputs), group(group) {
    const int64_t per_image = int64_t(kTile) * (channels + outputs) * tiling.tiles() * 4;
    images_per_chunk = int(std::clamp<int64_t>(kScratchBytes / std::max<int64_t>(per_image, 1), 1,
                                               num));
  }
  int64_t in_plane() const { return int64_t(tiling.height) * tiling.width; }
  int64_t out_plane() const { return int64_t(tiling.out_h) * tiling.out_w; }
  int channels_per_group() const { return channels / group; }
  int outputs_per_group() const { return outputs / group; }

  // For each group and each of the 16 positions: the rows of V (channels) and M (outputs) the
  // group owns, `tiles` columns each, and its block of U.
  template <class Product>
  void for_each_product(int tiles, Product product) const {
    const int cg = channels_per_group(), og = outputs_per_group();
    for (int t = 0; t < kTile; ++t) {
      for (int grp = 0; grp < group; ++grp) {
        product(int64_t(t) * channels * tiles + int64_t(grp) * cg * tiles,
                int64_t(t) * outputs * tiles + int64_t(grp) * og * tiles,
                (int64_t(grp) * kTile + t) * og * cg);
      }
    }
  }

  // Each thread's rows for the transforms.
  std::vector<std::vector<float>> thread_rows(int64_t count) const {
    return std::vector<std::vector<float>>(cpu::threads(), std::vector<float>(count));
  }

  // V for images [first, first + n) of `bottom`.
  void transform_inputs(const float* bottom, int first, int n, float* v) const {
    const int tiles = n * tiling.tiles();
    auto rows = thread_rows(8 * tiling.span());
    cpu::parallel_for(channels, n * in_plane(), [&](int64_t c, int thread) {
      for (int image = 0; image < n; ++image) {
        transform_input(tiling, bottom + ((first + image) * channels + c) * in_plane(),
                        int64_t(channels) * tiles, rows[thread].data(),
                        v + c * tiles + image * tiling.tiles());
      }
    });
  }
};

}  // namespace

bool applies(const ConvSpec& spec, int channels) {
  return spec.kernel_h == 3 && spec.kernel_w == 3 && spec.stride_h == 1 && spec.stride_w == 1 &&
         spec.dilation_h == 1 && spec.dilation_w == 1 && !is_depthwise(spec, channels);
}

bool may_apply(const ConvolutionParameter& param) {
  try {
    return applies(ConvSpec::parse(param, "Convolution"), 0);
  } catch (const Error&) {
    return false;
  }
}

void forward(const ConvGeometry2d& g, int num, int outputs, int group, const float* bottom,
             const float* weights, const float* bias, Workspace* work, float* top) {
  const Pass pass(g, num, outputs, group);
  const int cg = pass.channels_per_group(), og = pass.outputs_per_group();
  work->weights.resize(size_t(kTile) * outputs * cg);
  transform_weights(outputs, group, cg, weights, work->weights.data());
  const int64_t tiles_per_image = pass.tiling.tiles();
  work->tiles.resize(size_t(kTile) * pass.channels * tiles_per_image * pass.images_per_chunk);
  work->products.resize(size_t(kTile) * outputs * tiles_per_image * pass.images_per_chunk);
  float *v = work->tiles.data(), *m = work->products.data();
  for (int first = 0; first < num; first += pass.images_per_chunk) {
    const int n = std::min(pass.images_per_chunk, num - first);
    const int tiles = int(n * tiles_per_image);
    pass.transform_inputs(bottom, first, n, v);
    work->tiles_whole = n == num;
    pass.for_each_product(tiles, [&](int64_t v_at, int64_t m_at, int64_t u_at) {
      cpu::gemm(false, false, og, tiles, cg, 1.0f, work->weights.data() + u_at, v + v_at, 0.0f,
                m + m_at);
    });
    auto rows = pass.thread_rows(4 * pass.tiling.tiles_w);
    cpu::parallel_for(outputs, n * pass.out_plane(), [&](int64_t o, int thread) {
      for (int image = 0; image < n; ++image) {
        transform_output(pass.tiling, m + o * tiles + image * tiles_per_image,
                         int64_t(outputs) * tiles, bias ? bias[o] : 0.0f, rows[thread].data(),
                         top + ((first + image) * outputs + o) * pass.out_plane());
      }
    });
  }
}

void backward(const ConvGeometry2d& g, int num, int outputs, int group, const float* bottom,
              const float* top_diff, const float* weights, bool tiles_ready, Workspace* work,
              float* weight_diff, float* bottom_diff) {
  const Pass pass(g, num, outputs, group);
  const int cg = pass.channels_per_group(), og = pass.outputs_per_group();
  const int64_t tiles_per_image = pass.tiling.tiles();
  work->tiles.resize(size_t(kTile) * pass.channels * tiles_per_image * pass.images_per_chunk);
  work->products.resize(size_t(kTile) * outputs * tiles_per_image * pass.images_per_chunk);
  float *v = work->tiles.data(), *m = work->products.data();
  if (bottom_diff) {
    work->weights.resize(size_t(kTile) * outputs * cg);
    transform_weights(outputs, group, cg, weights, work->weights.data());
  }
  if (weight_diff) work->weight_gradient.assign(size_t(kTile) * outputs * cg, 0.0f);
  for (int first = 0; first < num; first += pass.images_per_chunk) {
    const int n = std::min(pass.images_per_chunk, num - first);
    const int tiles = int(n * tiles_per_image);
    auto rows = pass.thread_rows(8 * pass.tiling.tiles_w);
    cpu::parallel_for(outputs, n * pass.out_plane(), [&](int64_t o, int thread) {
      for (int image = 0; image < n; ++image) {
        transform_output_gradient(pass.tiling,
                                  top_diff + ((first + image) * outputs + o) * pass.out_plane(),
                                  int64_t(outputs) * tiles, rows[thread].data(),
                                  m + o * tiles + image * tiles_per_image);
      }
    });
    if (weight_diff) {
      if (!(tiles_ready && n == num)) {
        pass.transform_inputs(bottom, first, n, v);
        work->tiles_whole = false;  // now of this pass's bottom, which may be another
      }
      pass.for_each_product(tiles, [&](int64_t v_at, int64_t m_at, int64_t u_at) {
        cpu::gemm(false, true, og, cg, tiles, 1.0f, m + m_at, v + v_at, 1.0f,
                  work->weight_gradient.data() + u_at);
      });
    }
    if (!bottom_diff) continue;
    work->tiles_whole = false;  // V's room takes the bottom's gradient
    pass.for_each_product(tiles, [&](int64_t v_at, int64_t m_at, int64_t u_at) {
      cpu::gemm(true, false, cg, tiles, og, 1.0f, work->weights.data() + u_at, m + m_at, 0.0f,
                v + v_at);
    });
    auto windows = pass.thread_rows(int64_t(2 * pass.tiling.tiles_h + 2) * pass.tiling.span());
    cpu::parallel_for(pass.channels, n * pass.in_plane(), [&](int64_t c, int thread) {
      for (int image = 0; image < n; ++image) {
        transform_input_gradient(
            pass.tiling, v + c * tiles + image * tiles_per_image, int64_t(pass.channels) * tiles,
            windows[thread].data(),
            bottom_diff + ((first + image) * pass.channels + c) * pass.in_plane());
      }
    });
  }
  if (weight_diff) {
    accumulate_weight_gradient(outputs, group, cg, work->weight_gradient.data(), weight_diff);
  }
}

}  // namespace winograd

void ConvolutionLayerBase::winograd_forward(const Blobs& bottom, const Blobs& top) {
  const bool fold = epilogue_ && epilogue_->has_affine();
  FoldedParameters* folded = fold ? &folded_parameters() : nullptr;
  const float* weights =
      fold ? static_cast<const float*>(folded->weights.host_data()) : blobs_[0]->cpu_data();
  const float* bias = fold ? folded->bias.data()
                           : spec_.bias_term ? blobs_[1]->cpu_data() : nullptr;
  for (size_t i = 0; i < bottom.size(); ++i) {
    winograd::forward(geometry_, num_, spec_.num_output, spec_.group, bottom[i]->cpu_data(),
                      weights, bias, &winograd_, top[i]->mutable_cpu_data());
  }
  winograd_.tiles_source = bottom.back()->data_memory().get();
  winograd_.tiles_stamp = winograd_.tiles_source->stamp();
  finish_forward(top, fold);
}

void ConvolutionLayerBase::winograd_backward(const Blobs& top,
                                             const std::vector<bool>& propagate_down,
                                             const Blobs& bottom) {
  for (size_t i = 0; i < top.size(); ++i) {
    const float* top_diff = top[i]->cpu_diff();
    if (spec_.bias_term && param_propagate_down(1)) accumulate_bias_gradient(top_diff);
    if (!param_propagate_down(0) && !propagate_down[i]) continue;
    const float* bottom_data = bottom[i]->cpu_data();
    const SyncedMemory* source = bottom[i]->data_memory().get();
    const bool tiles_ready = winograd_.tiles_whole && winograd_.tiles_source == source &&
                             !source->changed_since(winograd_.tiles_stamp);
    winograd::backward(geometry_, num_, spec_.num_output, spec_.group, bottom_data, top_diff,
                       blobs_[0]->cpu_data(), tiles_ready, &winograd_,
                       param_propagate_down(0) ? blobs_[0]->mutable_cpu_diff() : nullptr,
                       propagate_down[i] ? bottom[i]->mutable_cpu_diff() : nullptr);
  }
}

}  // namespace engine
