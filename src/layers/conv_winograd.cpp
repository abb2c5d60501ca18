// Unit-stride 3x3 and 5x5 convolution by Winograd's minimal filtering (Lavin and Gray, "Fast
// Algorithms for Convolutional Neural Networks", 2015), F(4x4, 3x3) and F(4x4, 5x5): each block
// of 4x4 outputs, a tile, is A^T [(G g G^T) . (B^T d B)] A for the 6x6 (8x8) input window d
// under it, so the 144 (400) multiplications of a tile per channel pair become 36 (64), done as
// 36 (64) matrix products over all tiles (one per position of the transformed tile, each
// [outputs x channels] x [channels x tiles]). oneDNN 2.6 has Winograd for AVX-512 only; on AVX2
// its direct convolution runs near the machine's peak, so fewer multiplications are the way
// left to go faster there.
//
// The backward passes are the adjoints of the same three maps (no second algorithm): the top's
// gradient goes into the transformed domain by A dY A^T, the weight gradient is G^T (sum over
// tiles of dM V^T) G and the bottom's is B (U^T dM) B^T added back over the overlapping windows.
// The transforms scale by up to 8 (64) and by fractions such as 1/6 (1/90), so results differ
// from the direct sum by more roundings than another summation order would (relative errors
// around 1e-6 (1e-5), far inside DEFAULT's agreement check; the gradient checker passes).
//
// Data in the transformed domain, for T positions of a transformed tile (36 or 64): V [T]
// [channels][tiles] (the input windows), M [T][outputs][tiles] (the products), U [group][T]
// [outputs / group][channels / group] (the weights), so that every product reads and writes
// whole rows. Images go through in chunks that keep V and M under kScratchBytes. The transforms
// run on kLanes tiles (or kernels) at once, lane by lane, which the compiler vectorizes.
#include <algorithm>
#include <array>
#include <type_traits>
#include <vector>

#include "core/channel_epilogue.hpp"
#include "layers/conv.hpp"
#include "math/blas.hpp"
#include "math/onednn.hpp"
#include "math/parallel.hpp"
#include "math/simd.hpp"

namespace engine {
namespace winograd {
namespace {

constexpr int kMaxTile = 64;  // values of the largest transformed tile (8 x 8)
constexpr int kLanes = 16;    // tiles transformed at once
constexpr int64_t kScratchBytes = int64_t{64} << 20;

template <size_t R, size_t C>
using Matrix = std::array<std::array<float, C>, R>;

template <size_t R, size_t C>
constexpr Matrix<C, R> transpose(const Matrix<R, C>& m) {
  Matrix<C, R> t{};
  for (size_t i = 0; i < R; ++i) {
    for (size_t j = 0; j < C; ++j) t[j][i] = m[i][j];
  }
  return t;
}

// Winograd's F(M x M, K x K), on transformed tiles of kIn = M + K - 1, by Toom-Cook on the
// points 0, 1, -1, 2, -2, 1/2, -1/2 (the first kIn - 1 of them) and infinity. Correlation is the
// adjoint of polynomial multiplication, which evaluates both factors at the points (V_n: row t
// is (1, p_t, ..., p_t^(n-1)), infinity's (0, ..., 0, 1)), multiplies and interpolates
// (V_kIn^-1); so A^T = V_M^T, G = V_K and B^T = V_kIn^-T, with row t of B^T scaled by f_t, the
// product of (p_t - p_l) over the other finite points, and row t of G by 1 / f_t. On the six
// integral points that makes B^T integral (Lavin and Gray's matrices for F(4x4, 3x3)); with
// 1/2 and -1/2 its entries are quarters, exact in binary as well (NNPACK's F(6x6, 3x3)).
template <int M, int K>
struct Algorithm {
  static constexpr int kOut = M, kIn = M + K - 1, kTile = kIn * kIn;
  static_assert(kIn <= 8 && kTile <= kMaxTile, "points for tiles of up to 8 x 8");
  Matrix<kIn, kIn> BT{}, B{};
  Matrix<kIn, K> G{};
  Matrix<K, kIn> GT{};
  Matrix<M, kIn> AT{};
  Matrix<kIn, M> A{};

  static constexpr double point(int t) {
    constexpr double points[] = {0, 1, -1, 2, -2, 0.5, -0.5};
    return points[t];
  }
  // V_n[t][k]; t == kIn - 1 is infinity.
  static constexpr double vandermonde(int t, int k, int n) {
    if (t == kIn - 1) return k == n - 1 ? 1 : 0;
    double power = 1;
    for (int i = 0; i < k; ++i) power *= point(t);
    return power;
  }
  constexpr Algorithm() {
    // V_kIn^-1 by Gauss-Jordan elimination with partial pivoting, in double.
    double v[kIn][2 * kIn] = {};
    for (int t = 0; t < kIn; ++t) {
      for (int k = 0; k < kIn; ++k) v[t][k] = vandermonde(t, k, kIn);
      v[t][kIn + t] = 1;
    }
    for (int col = 0; col < kIn; ++col) {
      int pivot = col;
      for (int r = col + 1; r < kIn; ++r) {
        if ((v[r][col] < 0 ? -v[r][col] : v[r][col]) >
            (v[pivot][col] < 0 ? -v[pivot][col] : v[pivot][col])) {
          pivot = r;
        }
      }
      for (int c = 0; c < 2 * kIn; ++c) {
        const double swap = v[col][c];
        v[col][c] = v[pivot][c];
        v[pivot][c] = swap;
      }
      const double diagonal = v[col][col];
      for (int c = 0; c < 2 * kIn; ++c) v[col][c] /= diagonal;
      for (int r = 0; r < kIn; ++r) {
        if (r == col) continue;
        const double factor = v[r][col];
        for (int c = 0; c < 2 * kIn; ++c) v[r][c] -= factor * v[col][c];
      }
    }
    for (int t = 0; t < kIn; ++t) {
      double f = 1;
      for (int l = 0; l < kIn - 1; ++l) {
        if (l != t && t != kIn - 1) f *= point(t) - point(l);
      }
      // B^T[t][j] = f_t V^-1[j][t], a multiple of 1/4: rounded to 1/64, so that zeros are zeros.
      for (int j = 0; j < kIn; ++j) {
        const double x = 64 * f * v[j][kIn + t];
        BT[t][j] = static_cast<float>(static_cast<long>(x < 0 ? x - 0.5 : x + 0.5)) / 64;
      }
      for (int k = 0; k < K; ++k) G[t][k] = static_cast<float>(vandermonde(t, k, K) / f);
      for (int i = 0; i < M; ++i) AT[i][t] = static_cast<float>(vandermonde(t, i, M));
    }
    B = transpose(BT);
    GT = transpose(G);
    A = transpose(AT);
  }
};

constexpr Algorithm<4, 3> kF4x4By3x3;
constexpr Algorithm<4, 5> kF4x4By5x5;
static_assert(kF4x4By3x3.BT[0][0] == 4 && kF4x4By3x3.BT[0][2] == -5 &&
                  kF4x4By3x3.BT[5][3] == -5 && kF4x4By3x3.BT[3][1] == -2 &&
                  kF4x4By3x3.G[3][2] == 1.0f / 6 && kF4x4By3x3.AT[3][3] == 8,
              "Lavin and Gray's F(4x4, 3x3)");
static_assert(kF4x4By5x5.BT[0][2] == 5.25f && kF4x4By5x5.BT[1][3] == -4.25f &&
                  kF4x4By5x5.BT[3][1] == 0.5f && kF4x4By5x5.BT[5][4] == -5 &&
                  kF4x4By5x5.BT[4][3] == 2.5f && kF4x4By5x5.AT[3][5] == 0.125f,
              "the input transform of NNPACK's F(6x6, 3x3), rows up to sign");

// The transformed tile's side for a kernel's side (3 or 5).
constexpr int tile_side(int kernel) {
  return kernel == 3 ? kF4x4By3x3.kIn : kF4x4By5x5.kIn;
}

// GCC unrolls the transforms' loops fully; clang, which would take minutes to compile them so
// under the sanitizers of the fuzz builds, is left to its own judgement.
#if defined(__clang__)
#define UNROLLED
#else
#define UNROLLED _Pragma("GCC unroll 8")
#endif

// out[i][j] = sum over k, l of left[i][k] in[k][l] right[j][l], for each of kLanes lanes
// (in [K][L][kLanes], out [R][C][kLanes]): the 2-D transforms. The matrices are constants, so
// the unrolled loops keep only their nonzero terms.
template <size_t R, size_t K, size_t C, size_t L>
__attribute__((always_inline)) inline void sandwich(const Matrix<R, K>& left,
                                                   const Matrix<C, L>& right, const float* in,
                                                   float* out) {
  float rows[R][L][kLanes];
  UNROLLED
  for (size_t i = 0; i < R; ++i) {
    UNROLLED
    for (size_t l = 0; l < L; ++l) {
      float* acc = rows[i][l];
      for (int lane = 0; lane < kLanes; ++lane) acc[lane] = 0;
      UNROLLED
      for (size_t k = 0; k < K; ++k) {
        if (left[i][k] == 0) continue;
        const float* x = in + (k * L + l) * kLanes;
        for (int lane = 0; lane < kLanes; ++lane) acc[lane] += left[i][k] * x[lane];
      }
    }
  }
  UNROLLED
  for (size_t i = 0; i < R; ++i) {
    UNROLLED
    for (size_t j = 0; j < C; ++j) {
      float* y = out + (i * C + j) * kLanes;
      for (int lane = 0; lane < kLanes; ++lane) y[lane] = 0;
      UNROLLED
      for (size_t l = 0; l < L; ++l) {
        if (right[j][l] == 0) continue;
        for (int lane = 0; lane < kLanes; ++lane) y[lane] += rows[i][l][lane] * right[j][l];
      }
    }
  }
}

// How a plane is cut into tiles of `out` x `out` outputs, each reading the `in` x `in` window at
// (out ty - pad_h, out tx - pad_w) of the input. The transforms go over one channel's planes of
// several images (`planes`, `image_stride` apart) at once, their tiles numbered image by image,
// kLanes tiles a batch, so that small planes fill the lanes too.
struct Tiling {
  int kernel, in, out;  // the kernel's side, the transformed tile's and the output tile's
  int height, width, pad_h, pad_w, out_h, out_w;
  int tiles_h, tiles_w;
  explicit Tiling(const ConvGeometry2d& g)
      : kernel(g.kernel_h), in(tile_side(kernel)), out(in + 1 - kernel), height(g.height),
        width(g.width),
        pad_h(g.pad_h), pad_w(g.pad_w), out_h(g.out_h()), out_w(g.out_w()),
        tiles_h((out_h + out - 1) / out), tiles_w((out_w + out - 1) / out) {}
  int tiles() const { return tiles_h * tiles_w; }
  int values() const { return in * in; }  // of a transformed tile

  // A Side x Side window of each of tiles [first, first + count), lane by lane, from planes of
  // rows x columns, read from (out ty + offset_h, out tx + offset_w), zero outside the plane.
  template <int Side>
  void gather(const float* planes, int64_t image_stride, int rows, int columns, int offset_h,
              int offset_w, int first, int count, float* windows) const {
    for (int lane = 0; lane < count; ++lane) {
      const int tile = (first + lane) % tiles(), image = (first + lane) / tiles();
      const int top = out * (tile / tiles_w) + offset_h, left = out * (tile % tiles_w) + offset_w;
      const float* plane = planes + image * image_stride;
      if (top >= 0 && left >= 0 && top + Side <= rows && left + Side <= columns) {
        for (int i = 0; i < Side; ++i) {
          const float* row = plane + int64_t(top + i) * columns + left;
          for (int j = 0; j < Side; ++j) windows[(i * Side + j) * kLanes + lane] = row[j];
        }
        continue;
      }
      for (int i = 0; i < Side; ++i) {
        const int r = top + i;
        for (int j = 0; j < Side; ++j) {
          const int c = left + j;
          windows[(i * Side + j) * kLanes + lane] =
              r >= 0 && r < rows && c >= 0 && c < columns ? plane[int64_t(r) * columns + c] : 0.0f;
        }
      }
    }
  }
  // The inverse: each lane's window written to (`add` false, plus `bias`) or added into the
  // planes where it lies inside them.
  template <int Side>
  void scatter(const float* windows, int first, int count, bool add, float bias, float* planes,
               int64_t image_stride, int rows, int columns, int offset_h, int offset_w) const {
    for (int lane = 0; lane < count; ++lane) {
      const int tile = (first + lane) % tiles(), image = (first + lane) / tiles();
      const int top = out * (tile / tiles_w) + offset_h, left = out * (tile % tiles_w) + offset_w;
      float* plane = planes + image * image_stride;
      for (int i = std::max(0, -top); i < std::min(Side, rows - top); ++i) {
        float* row = plane + int64_t(top + i) * columns;
        for (int j = std::max(0, -left); j < std::min(Side, columns - left); ++j) {
          const float value = windows[(i * Side + j) * kLanes + lane];
          row[left + j] = add ? row[left + j] + value : value + bias;
        }
      }
    }
  }
};

// Rows of the transformed domain: `rows` rows of lanes [0, count) to x[t * stride + lane], or
// back.
__attribute__((always_inline)) inline void store_lanes(const float* lanes, int rows, int count,
                                                      int64_t stride, float* x) {
  for (int t = 0; t < rows; ++t) {
    if (count == kLanes) {
      for (int lane = 0; lane < kLanes; ++lane) x[t * stride + lane] = lanes[t * kLanes + lane];
    } else {
      for (int lane = 0; lane < count; ++lane) x[t * stride + lane] = lanes[t * kLanes + lane];
    }
  }
}
__attribute__((always_inline)) inline void load_lanes(const float* x, int64_t stride, int rows,
                                                     int count, float* lanes) {
  for (int t = 0; t < rows; ++t) {
    if (count == kLanes) {
      for (int lane = 0; lane < kLanes; ++lane) lanes[t * kLanes + lane] = x[t * stride + lane];
    } else {
      for (int lane = 0; lane < count; ++lane) lanes[t * kLanes + lane] = x[t * stride + lane];
    }
  }
}

// Calls body(algorithm) with the algorithm for the kernel side (3 or 5). The body must be an
// always_inline lambda, so that, inlined here, its matrices are constants and its transforms
// are made of their nonzero terms.
template <class Body>
__attribute__((always_inline)) inline void with_algorithm(int kernel, Body body) {
  if (kernel == 3) {
    body(kF4x4By3x3);
  } else {
    body(kF4x4By5x5);
  }
}
#define ALWAYS_INLINE_LAMBDA __attribute__((always_inline))
// The output tile's side, the transformed tile's and its values, of the algorithm a body gets
// (as decltype(f)).
template <class F>
constexpr int kOutOf = std::decay_t<F>::kOut;
template <class F>
constexpr int kInOf = std::decay_t<F>::kIn;
template <class F>
constexpr int kTileOf = std::decay_t<F>::kTile;

// Lanes past a batch's count hold earlier batches' values (or zeros): computed, never stored.
//
// In each of the four, `planes` is one channel's plane of the first of `images` images, the
// others `image_stride` after it, and `v` or `m` that channel's row of V or M (the position t's
// row `stride` after the first).

// V = B^T d B for each tile.
ENGINE_VECTORIZED void transform_input(const Tiling& t, const float* planes, int64_t image_stride,
                                       int images, int64_t stride, float* v) {
  with_algorithm(t.kernel, [&](const auto& f) ALWAYS_INLINE_LAMBDA {
    float windows[kMaxTile * kLanes] = {}, transformed[kMaxTile * kLanes] = {};
    const int tiles = images * t.tiles();
    for (int first = 0; first < tiles; first += kLanes) {
      const int count = std::min(kLanes, tiles - first);
      t.gather<kInOf<decltype(f)>>(planes, image_stride, t.height, t.width, -t.pad_h, -t.pad_w, first, count,
                    windows);
      sandwich(f.BT, f.BT, windows, transformed);
      store_lanes(transformed, kTileOf<decltype(f)>, count, stride, v + first);
    }
  });
}

// The output planes from M (A^T m A per tile) plus `bias`.
ENGINE_VECTORIZED void transform_output(const Tiling& t, const float* m, int64_t stride,
                                        float bias, int images, int64_t image_stride,
                                        float* planes) {
  with_algorithm(t.kernel, [&](const auto& f) ALWAYS_INLINE_LAMBDA {
    float lanes[kMaxTile * kLanes] = {}, outputs[kMaxTile * kLanes] = {};
    const int tiles = images * t.tiles();
    for (int first = 0; first < tiles; first += kLanes) {
      const int count = std::min(kLanes, tiles - first);
      load_lanes(m + first, stride, kTileOf<decltype(f)>, count, lanes);
      sandwich(f.AT, f.AT, lanes, outputs);
      t.scatter<kOutOf<decltype(f)>>(outputs, first, count, false, bias, planes, image_stride,
                                  t.out_h, t.out_w, 0, 0);
    }
  });
}

// dM = A dY A^T for each tile of the output planes' gradient (the adjoint of transform_output).
ENGINE_VECTORIZED void transform_output_gradient(const Tiling& t, const float* planes,
                                                 int64_t image_stride, int images,
                                                 int64_t stride, float* m) {
  with_algorithm(t.kernel, [&](const auto& f) ALWAYS_INLINE_LAMBDA {
    float windows[kMaxTile * kLanes] = {}, transformed[kMaxTile * kLanes] = {};
    const int tiles = images * t.tiles();
    for (int first = 0; first < tiles; first += kLanes) {
      const int count = std::min(kLanes, tiles - first);
      t.gather<kOutOf<decltype(f)>>(planes, image_stride, t.out_h, t.out_w, 0, 0, first, count,
                                 windows);
      sandwich(f.A, f.A, windows, transformed);
      store_lanes(transformed, kTileOf<decltype(f)>, count, stride, m + first);
    }
  });
}

// The input planes' gradient = the sum over the windows of B dV B^T (the adjoint of
// transform_input), overwriting the planes.
ENGINE_VECTORIZED void transform_input_gradient(const Tiling& t, const float* v, int64_t stride,
                                                int images, int64_t image_stride,
                                                float* planes) {
  const int64_t plane = int64_t(t.height) * t.width;
  for (int image = 0; image < images; ++image) {
    std::fill(planes + image * image_stride, planes + image * image_stride + plane, 0.0f);
  }
  with_algorithm(t.kernel, [&](const auto& f) ALWAYS_INLINE_LAMBDA {
    float lanes[kMaxTile * kLanes] = {}, windows[kMaxTile * kLanes] = {};
    const int tiles = images * t.tiles();
    for (int first = 0; first < tiles; first += kLanes) {
      const int count = std::min(kLanes, tiles - first);
      load_lanes(v + first, stride, kTileOf<decltype(f)>, count, lanes);
      sandwich(f.B, f.B, lanes, windows);
      t.scatter<kInOf<decltype(f)>>(windows, first, count, true, 0.0f, planes, image_stride, t.height, t.width,
                     -t.pad_h, -t.pad_w);
    }
  });
}

// U = G g G^T for each kernel, into U [group][T][outputs / group][channels / group]; the
// kernels of one output row go kLanes channels at a time.
ENGINE_VECTORIZED void transform_weights(int kernel, int outputs, int group,
                                         int channels_per_group, const float* weights, float* u) {
  const int per_group = outputs / group, taps = kernel * kernel;
  const int64_t plane = int64_t(per_group) * channels_per_group;
  with_algorithm(kernel, [&](const auto& f) ALWAYS_INLINE_LAMBDA {
    constexpr int kTile = kTileOf<decltype(f)>;
    cpu::parallel_for(outputs, int64_t(channels_per_group) * kTile, [&](int64_t o, int) {
      float kernels[kMaxTile * kLanes] = {}, transformed[kMaxTile * kLanes] = {};
      const int64_t base = (o / per_group) * kTile * plane + (o % per_group) * channels_per_group;
      for (int first = 0; first < channels_per_group; first += kLanes) {
        const int count = std::min(kLanes, channels_per_group - first);
        for (int lane = 0; lane < count; ++lane) {
          const float* g = weights + (o * channels_per_group + first + lane) * taps;
          for (int k = 0; k < taps; ++k) kernels[k * kLanes + lane] = g[k];
        }
        sandwich(f.G, f.G, kernels, transformed);
        store_lanes(transformed, kTile, count, plane, u + base + first);
      }
    });
  });
}

// weight_diff += G^T dU G for each kernel (the adjoint of transform_weights).
ENGINE_VECTORIZED void accumulate_weight_gradient(int kernel, int outputs, int group,
                                                  int channels_per_group, const float* du,
                                                  float* weight_diff) {
  const int per_group = outputs / group, taps = kernel * kernel;
  const int64_t plane = int64_t(per_group) * channels_per_group;
  with_algorithm(kernel, [&](const auto& f) ALWAYS_INLINE_LAMBDA {
    constexpr int kTile = kTileOf<decltype(f)>;
    cpu::parallel_for(outputs, int64_t(channels_per_group) * kTile, [&](int64_t o, int) {
      float transformed[kMaxTile * kLanes] = {}, kernels[kMaxTile * kLanes] = {};
      const int64_t base = (o / per_group) * kTile * plane + (o % per_group) * channels_per_group;
      for (int first = 0; first < channels_per_group; first += kLanes) {
        const int count = std::min(kLanes, channels_per_group - first);
        load_lanes(du + base + first, plane, kTile, count, transformed);
        sandwich(f.GT, f.GT, transformed, kernels);
        for (int lane = 0; lane < count; ++lane) {
          float* g = weight_diff + (o * channels_per_group + first + lane) * taps;
          for (int k = 0; k < taps; ++k) g[k] += kernels[k * kLanes + lane];
        }
      }
    });
  });
}

// C = op(A) op(B) + beta C: oneDNN's sgemm where the build has it (onednn.hpp: faster here).
void multiply(bool transpose_a, bool transpose_b, int M, int N, int K, const float* A,
              const float* B, float beta, float* C) {
#ifdef ENGINE_USE_ONEDNN
  onednn::gemm(transpose_a, transpose_b, M, N, K, A, B, beta, C);
#else
  cpu::gemm(transpose_a, transpose_b, M, N, K, 1.0f, A, B, beta, C);
#endif
}

// Scratch within a pass (M, the weight gradient in the transformed domain, and V where no
// backward pass will want it), so one room of each per thread serves every layer: a net runs its
// layers one at a time, and nets on other threads have their own.
enum Room { kProducts, kWeightGradient, kTiles };
float* scratch(Room which, size_t count) {
  thread_local std::vector<float> rooms[3];
  std::vector<float>& room = rooms[which];
  if (room.size() < count) room.resize(count);
  return room.data();
}

// The shapes of one layer's pass and the chunks its images go through.
struct Pass {
  Tiling tiling;
  int num, channels, outputs, group;
  int images_per_chunk;
  Pass(const ConvGeometry2d& g, int num, int outputs, int group)
      : tiling(g), num(num), channels(g.channels), outputs(outputs), group(group) {
    const int64_t per_image = int64_t(tiling.values()) * (channels + outputs) * tiling.tiles() * 4;
    images_per_chunk = int(std::clamp<int64_t>(kScratchBytes / std::max<int64_t>(per_image, 1), 1,
                                               num));
  }
  int64_t in_plane() const { return int64_t(tiling.height) * tiling.width; }
  int64_t out_plane() const { return int64_t(tiling.out_h) * tiling.out_w; }
  int channels_per_group() const { return channels / group; }
  int outputs_per_group() const { return outputs / group; }
  // Floats of U, and of V and M for a chunk of images.
  size_t weight_values() const { return size_t(tiling.values()) * outputs * channels_per_group(); }
  size_t tile_values() const {
    return size_t(tiling.values()) * channels * tiling.tiles() * images_per_chunk;
  }
  size_t product_values() const {
    return size_t(tiling.values()) * outputs * tiling.tiles() * images_per_chunk;
  }

  // For each group and each position of the transformed tile: the rows of V (channels) and M (outputs) the
  // group owns, `tiles` columns each, and its block of U.
  template <class Product>
  void for_each_product(int tiles, Product product) const {
    const int cg = channels_per_group(), og = outputs_per_group();
    for (int t = 0; t < tiling.values(); ++t) {
      for (int grp = 0; grp < group; ++grp) {
        product(int64_t(t) * channels * tiles + int64_t(grp) * cg * tiles,
                int64_t(t) * outputs * tiles + int64_t(grp) * og * tiles,
                (int64_t(grp) * tiling.values() + t) * og * cg);
      }
    }
  }

  // V for images [first, first + n) of `bottom`, a channel's planes on one thread.
  void transform_inputs(const float* bottom, int first, int n, float* v) const {
    const int tiles = n * tiling.tiles();
    cpu::parallel_for(channels, n * in_plane(), [&](int64_t c, int) {
      transform_input(tiling, bottom + (first * int64_t(channels) + c) * in_plane(),
                      channels * in_plane(), n, int64_t(channels) * tiles, v + c * tiles);
    });
  }
};

}  // namespace

bool applies(const ConvSpec& spec, int channels) {
  return (spec.kernel_h == 3 || spec.kernel_h == 5) && spec.kernel_w == spec.kernel_h &&
         spec.stride_h == 1 && spec.stride_w == 1 &&
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
             const float* weights, const float* bias, bool weights_ready, bool keep_tiles,
             Workspace* work, float* top) {
  const Pass pass(g, num, outputs, group);
  const int cg = pass.channels_per_group(), og = pass.outputs_per_group();
  if (!weights_ready) {
    work->weights.resize(pass.weight_values());
    transform_weights(g.kernel_h, outputs, group, cg, weights, work->weights.data());
  }
  const int64_t tiles_per_image = pass.tiling.tiles();
  if (keep_tiles) work->tiles.resize(pass.tile_values());
  float* v = keep_tiles ? work->tiles.data() : scratch(kTiles, pass.tile_values());
  float* m = scratch(kProducts, pass.product_values());
  for (int first = 0; first < num; first += pass.images_per_chunk) {
    const int n = std::min(pass.images_per_chunk, num - first);
    const int tiles = int(n * tiles_per_image);
    pass.transform_inputs(bottom, first, n, v);
    work->tiles_whole = keep_tiles && n == num;
    pass.for_each_product(tiles, [&](int64_t v_at, int64_t m_at, int64_t u_at) {
      multiply(false, false, og, tiles, cg, work->weights.data() + u_at, v + v_at, 0.0f,
                 m + m_at);
    });
    cpu::parallel_for(outputs, n * pass.out_plane(), [&](int64_t o, int) {
      transform_output(pass.tiling, m + o * tiles, int64_t(outputs) * tiles, bias ? bias[o] : 0.0f,
                       n, outputs * pass.out_plane(),
                       top + (first * int64_t(outputs) + o) * pass.out_plane());
    });
  }
}

void backward(const ConvGeometry2d& g, int num, int outputs, int group, const float* bottom,
              const float* top_diff, const float* weights, bool weights_ready, bool tiles_ready,
              Workspace* work, float* weight_diff, float* bottom_diff) {
  const Pass pass(g, num, outputs, group);
  const int cg = pass.channels_per_group(), og = pass.outputs_per_group();
  const int64_t tiles_per_image = pass.tiling.tiles();
  work->tiles.resize(pass.tile_values());
  float *v = work->tiles.data(), *m = scratch(kProducts, pass.product_values());
  if (bottom_diff && !weights_ready) {
    work->weights.resize(pass.weight_values());
    transform_weights(g.kernel_h, outputs, group, cg, weights, work->weights.data());
  }
  const size_t transformed_weights = pass.weight_values();
  float* weight_gradient = weight_diff ? scratch(kWeightGradient, transformed_weights) : nullptr;
  if (weight_diff) std::fill(weight_gradient, weight_gradient + transformed_weights, 0.0f);
  for (int first = 0; first < num; first += pass.images_per_chunk) {
    const int n = std::min(pass.images_per_chunk, num - first);
    const int tiles = int(n * tiles_per_image);
    cpu::parallel_for(outputs, n * pass.out_plane(), [&](int64_t o, int) {
      transform_output_gradient(pass.tiling,
                                top_diff + (first * int64_t(outputs) + o) * pass.out_plane(),
                                outputs * pass.out_plane(), n, int64_t(outputs) * tiles,
                                m + o * tiles);
    });
    if (weight_diff) {
      if (!(tiles_ready && n == num)) {
        pass.transform_inputs(bottom, first, n, v);
        work->tiles_whole = false;  // now of this pass's bottom, which may be another
      }
      pass.for_each_product(tiles, [&](int64_t v_at, int64_t m_at, int64_t u_at) {
        multiply(false, true, og, cg, tiles, m + m_at, v + v_at, 1.0f,
                   weight_gradient + u_at);
      });
    }
    if (!bottom_diff) continue;
    work->tiles_whole = false;  // V's room takes the bottom's gradient
    pass.for_each_product(tiles, [&](int64_t v_at, int64_t m_at, int64_t u_at) {
      multiply(true, false, cg, tiles, og, work->weights.data() + u_at, m + m_at, 0.0f,
                 v + v_at);
    });
    cpu::parallel_for(pass.channels, n * pass.in_plane(), [&](int64_t c, int) {
      transform_input_gradient(
          pass.tiling, v + c * tiles, int64_t(pass.channels) * tiles, n,
          pass.channels * pass.in_plane(),
          bottom_diff + (first * int64_t(pass.channels) + c) * pass.in_plane());
    });
  }
  if (weight_diff) {
    accumulate_weight_gradient(g.kernel_h, outputs, group, cg, weight_gradient, weight_diff);
  }
}

}  // namespace winograd

void ConvolutionLayerBase::winograd_forward(const Blobs& bottom, const Blobs& top) {
  const bool fold = epilogue_ && epilogue_->has_affine();
  FoldedParameters* folded = fold ? &folded_parameters() : nullptr;
  const SyncedMemory* weights = fold ? &folded->weights : blobs_[0]->data_memory().get();
  const float* weight_data =
      fold ? static_cast<const float*>(folded->weights.host_data()) : blobs_[0]->cpu_data();
  const float* bias = fold ? folded->bias.data()
                           : spec_.bias_term ? blobs_[1]->cpu_data() : nullptr;
  for (size_t i = 0; i < bottom.size(); ++i) {
    winograd::forward(geometry_, num_, spec_.num_output, spec_.group, bottom[i]->cpu_data(),
                      weight_data, bias, winograd_.weights_made.holds(weights), backward_runs_,
                      &winograd_, top[i]->mutable_cpu_data());
    winograd_.weights_made.set(weights);
  }
  winograd_.tiles_made.set(bottom.back()->data_memory().get());
  finish_forward(top, fold);
}

void ConvolutionLayerBase::winograd_backward(const Blobs& top,
                                             const std::vector<bool>& propagate_down,
                                             const Blobs& bottom) {
  const SyncedMemory* weights = blobs_[0]->data_memory().get();
  for (size_t i = 0; i < top.size(); ++i) {
    const float* top_diff = top[i]->cpu_diff();
    if (spec_.bias_term && param_propagate_down(1)) accumulate_bias_gradient(top_diff);
    if (!param_propagate_down(0) && !propagate_down[i]) continue;
    const float* bottom_data = bottom[i]->cpu_data();
    const bool tiles_ready =
        winograd_.tiles_whole && winograd_.tiles_made.holds(bottom[i]->data_memory().get());
    float* weight_diff = param_propagate_down(0) ? blobs_[0]->mutable_cpu_diff() : nullptr;
    float* bottom_diff = propagate_down[i] ? bottom[i]->mutable_cpu_diff() : nullptr;
    winograd::backward(geometry_, num_, spec_.num_output, spec_.group, bottom_data, top_diff,
                       blobs_[0]->cpu_data(), winograd_.weights_made.holds(weights), tiles_ready,
                       &winograd_, weight_diff, bottom_diff);
    if (propagate_down[i]) winograd_.weights_made.set(weights);  // transformed if they were not
  }
}

}  // namespace engine
