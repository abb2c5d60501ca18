// Layers that select or repeat parts of their bottoms: Crop (a window of bottom 0 the shape of
// bottom 1), Tile (copies along an axis), BatchReindex (items gathered by an index bottom) and
// Filter (the items a selector bottom marks non-zero).
#include <cstring>
#include <vector>

#include "core/layer.hpp"
#include "core/layer_registry.hpp"
#include "core/synced_memory.hpp"
#include "layers/gpu_kernels.hpp"
#include "math/blas.hpp"

namespace engine {

#ifdef ENGINE_USE_CUDA
// selection.cu. Crop: the window of `whole` at `offsets`, the top's shape, from the whole blob
// into the top (into_top), or from the top into the whole blob's window.
void crop_window_gpu(const std::vector<int>& whole, const std::vector<int>& top_shape,
                     const std::vector<int>& offsets, const float* from, float* to,
                     bool into_top);
// Tile: bottom_diff[i][j] = sum over t of top_diff[i][t][j], overwriting.
void tile_backward_gpu(int64_t outer, int tiles, int64_t inner, const float* top_diff,
                       float* bottom_diff);
// Filter: rows `kept` (device memory) of `from` into consecutive rows of `to` (into_top), or
// back (`to`'s other rows untouched).
void filter_move_rows_gpu(int64_t rows, int64_t width, const int* kept, const float* from,
                          float* to, bool into_top);
#endif

namespace {

// Axes from `axis` on take bottom 1's sizes, starting at `offset` (one for all those axes, or one
// per axis; none means 0). The gradient flows to bottom 0 only, zero outside the window.
class CropLayer : public Layer {
 public:
  using Layer::Layer;
  int exact_bottoms() const override { return 2; }
  int exact_tops() const override { return 1; }
  bool allow_force_backward(int bottom_index) const override { return bottom_index == 0; }

  void reshape(const Blobs& bottom, const Blobs& top) override {
    const CropParameter& p = param_.crop_param();
    const Blob& in = *bottom[0];
    const Blob& like = *bottom[1];
    LAYER_REQUIRE(like.num_axes() == in.num_axes(),
                  "bottom 1 (the shape to crop to) must have as many axes as bottom 0: bottom 0 is "
                      << in.shape_string() << ", bottom 1 is " << like.shape_string());
    const int start = canonical_axis(in, p.axis(), "axis");
    const int cropped = in.num_axes() - start;
    LAYER_REQUIRE(p.offset_size() <= 1 || p.offset_size() == cropped,
                  "needs one offset, or one per cropped axis (" << cropped << " from axis "
                                                                << start << "), got "
                                                                << p.offset_size());
    offsets_.assign(in.num_axes(), 0);
    top_shape_ = in.shape();
    for (int i = start; i < in.num_axes(); ++i) {
      const int64_t offset = p.offset_size() == 0   ? 0
                             : p.offset_size() == 1 ? p.offset(0)
                                                    : p.offset(i - start);
      LAYER_REQUIRE(offset + like.shape(i) <= in.shape(i),
                    "the crop of axis " << i << " (offset " << offset << ", size "
                                        << like.shape(i) << ") does not fit bottom 0 "
                                        << in.shape_string());
      offsets_[i] = static_cast<int>(offset);
      top_shape_[i] = like.shape(i);
    }
    top[0]->reshape(top_shape_);
  }

 protected:
  void forward_cpu(const Blobs& bottom, const Blobs& top) override {
    move_window(bottom[0]->shape(), bottom[0]->data(), top[0]->mutable_data(), true);
  }

  void backward_cpu(const Blobs& top, const std::vector<bool>& propagate_down,
                    const Blobs& bottom) override {
    LAYER_REQUIRE(!propagate_down[1], "has no gradient for bottom 1 (it gives only a shape)");
    if (!propagate_down[0]) return;
    float* diff = bottom[0]->mutable_diff();
    math::set(bottom[0]->count(), 0.0f, diff);
    move_window(bottom[0]->shape(), top[0]->diff(), diff, false);
  }

 private:
  // Copies the window: from the whole blob into the top when `into_top`, else from the top into
  // the whole blob's window. The CPU copies one run along the last axis at a time.
  void move_window(const std::vector<int>& whole, const float* from, float* to, bool into_top) {
#ifdef ENGINE_USE_CUDA
    if (math::on_gpu()) {
      crop_window_gpu(whole, top_shape_, offsets_, from, to, into_top);
      return;
    }
#endif
    const int axes = static_cast<int>(whole.size());
    int64_t count = 1;
    for (int d : top_shape_) count *= d;
    if (count == 0) return;
    if (axes == 0) {
      *to = *from;
      return;
    }
    const int64_t run = top_shape_[axes - 1];
    std::vector<int> index(axes, 0);  // the run's start in the top; index[axes - 1] stays 0
    for (int64_t r = 0; r < count / run; ++r) {
      int64_t at = 0;
      for (int a = 0; a < axes; ++a) at = at * whole[a] + index[a] + offsets_[a];
      if (into_top) {
        std::memcpy(to + r * run, from + at, sizeof(float) * run);
      } else {
        std::memcpy(to + at, from + r * run, sizeof(float) * run);
      }
      for (int a = axes - 2; a >= 0; --a) {
        if (++index[a] < top_shape_[a]) break;
        index[a] = 0;
      }
    }
  }

  std::vector<int> offsets_;
  std::vector<int> top_shape_;
};

// `tiles` copies of the bottom's block from `axis` on, side by side along that axis; the
// gradient sums the copies.
class TileLayer : public Layer {
 public:
  using Layer::Layer;
  int exact_bottoms() const override { return 1; }
  int exact_tops() const override { return 1; }

  void layer_setup(const Blobs& bottom, const Blobs& top) override {
    const TileParameter& p = param_.tile_param();
    LAYER_REQUIRE(p.has_tiles(), "tile_param needs tiles (the number of copies)");
    LAYER_REQUIRE(p.tiles() > 0, "tiles must be positive, got " << p.tiles());
  }

  void reshape(const Blobs& bottom, const Blobs& top) override {
    const TileParameter& p = param_.tile_param();
    const Blob& in = *bottom[0];
    const int axis = canonical_axis(in, p.axis(), "axis");
    tiles_ = p.tiles();
    std::vector<int> shape = in.shape();
    shape[axis] *= tiles_;
    top[0]->reshape(shape);
    outer_ = in.count(0, axis);
    inner_ = in.count(axis);
  }

 protected:
  // Copy t of every item's block is one strided copy.
  void forward_cpu(const Blobs& bottom, const Blobs& top) override {
    const float* in = bottom[0]->data();
    float* out = top[0]->mutable_data();
    for (int t = 0; t < tiles_; ++t) {
      math::copy_rows(outer_, inner_, in, inner_, out + t * inner_, tiles_ * inner_);
    }
  }

  void backward_cpu(const Blobs& top, const std::vector<bool>& propagate_down,
                    const Blobs& bottom) override {
    if (!propagate_down[0]) return;
#ifdef ENGINE_USE_CUDA
    if (math::on_gpu()) {
      tile_backward_gpu(outer_, tiles_, inner_, top[0]->gpu_diff(), bottom[0]->mutable_gpu_diff());
      return;
    }
#endif
    const float* out = top[0]->cpu_diff();
    float* in = bottom[0]->mutable_cpu_diff();
    for (int64_t i = 0; i < outer_; ++i) {
      const float* copies = out + i * tiles_ * inner_;
      cpu::copy(inner_, copies, in + i * inner_);
      for (int t = 1; t < tiles_; ++t) {
        cpu::axpy(inner_, 1.0f, copies + t * inner_, in + i * inner_);
      }
    }
  }

 private:
  int tiles_ = 1;
  int64_t outer_ = 0, inner_ = 0;
};

// Items (first-axis slices) of bottom 0 gathered in the order bottom 1 lists them (1-D, values
// truncated to integers as Caffe does); an item may appear any number of times. The gradient
// sums the top's items back into their sources; none flows to the indices.
class BatchReindexLayer : public Layer {
 public:
  using Layer::Layer;
  int exact_bottoms() const override { return 2; }
  int exact_tops() const override { return 1; }
  bool allow_force_backward(int bottom_index) const override { return bottom_index == 0; }

  void reshape(const Blobs& bottom, const Blobs& top) override {
    const Blob& in = *bottom[0];
    LAYER_REQUIRE(in.num_axes() >= 1, "bottom 0 needs at least one axis (the items)");
    LAYER_REQUIRE(bottom[1]->num_axes() == 1,
                  "bottom 1 (the indices) must be 1-D, got " << bottom[1]->shape_string());
    std::vector<int> shape = in.shape();
    shape[0] = bottom[1]->shape(0);
    top[0]->reshape(shape);
    inner_ = in.count(1);
  }

 protected:
  void forward_cpu(const Blobs& bottom, const Blobs& top) override {
    const int items = bottom[0]->shape(0);
#ifdef ENGINE_USE_CUDA
    if (math::on_gpu()) {
      // Checking the indices here would bring them to the host every pass: an invalid one
      // gives a NaN item instead (gather_rows).
      gpu::gather_rows(bottom[1]->shape(0), inner_, bottom[1]->gpu_data(), items, false,
                       bottom[0]->gpu_data(), nullptr, top[0]->mutable_gpu_data());
      return;
    }
#endif
    const float* in = bottom[0]->cpu_data();
    const float* index = bottom[1]->cpu_data();
    float* out = top[0]->mutable_cpu_data();
    for (int i = 0; i < bottom[1]->shape(0); ++i) {
      LAYER_REQUIRE(index[i] >= 0 && index[i] < items,
                    "index " << index[i] << " (at position " << i << " of bottom 1) is outside [0, "
                             << items << "), the items of bottom 0 " << bottom[0]->shape_string());
      std::memcpy(out + i * inner_, in + static_cast<int64_t>(index[i]) * inner_,
                  sizeof(float) * inner_);
    }
  }

  void backward_cpu(const Blobs& top, const std::vector<bool>& propagate_down,
                    const Blobs& bottom) override {
    LAYER_REQUIRE(!propagate_down[1], "has no gradient for bottom 1 (the indices)");
    if (!propagate_down[0]) return;
    float* in = bottom[0]->mutable_diff();
    math::set(bottom[0]->count(), 0.0f, in);
#ifdef ENGINE_USE_CUDA
    if (math::on_gpu()) {
      gpu::scatter_add_rows(bottom[1]->shape(0), inner_, bottom[1]->gpu_data(),
                            bottom[0]->shape(0), false, top[0]->gpu_diff(), in);
      return;
    }
#endif
    const float* index = bottom[1]->cpu_data();
    const float* out = top[0]->cpu_diff();
    for (int i = 0; i < bottom[1]->shape(0); ++i) {
      cpu::axpy(inner_, 1.0f, out + i * inner_, in + static_cast<int64_t>(index[i]) * inner_);
    }
  }

 private:
  int64_t inner_ = 0;
};

// Bottoms 0..K-1 filtered by the last bottom, the selector (N values, any further axes of size
// 1): top k keeps the items of bottom k whose selector value is non-zero, in order. The gradient
// returns to the kept items, zero elsewhere; none flows to the selector. As in Caffe, the tops
// keep all N items at setup, before any selector values exist.
class FilterLayer : public Layer {
 public:
  using Layer::Layer;
  int min_bottoms() const override { return 2; }
  int min_tops() const override { return 1; }
  bool allow_force_backward(int bottom_index) const override {
    return bottom_index + 1 < param_.bottom_size() || param_.bottom_size() == 0;
  }

  void layer_setup(const Blobs& bottom, const Blobs& top) override {
    LAYER_REQUIRE(top.size() + 1 == bottom.size(),
                  "needs one top per filtered bottom (all bottoms but the last, the selector): "
                  "got "
                      << bottom.size() << " bottoms and " << top.size() << " tops");
    first_reshape_ = true;
  }

  void reshape(const Blobs& bottom, const Blobs& top) override {
    const Blob& selector = *bottom.back();
    LAYER_REQUIRE(selector.num_axes() >= 1, "the selector (last bottom) needs an item axis");
    for (int a = 1; a < selector.num_axes(); ++a) {
      LAYER_REQUIRE(selector.shape(a) == 1, "the selector (last bottom) must hold one value per "
                                            "item: its axes after the first must be 1, got "
                                                << selector.shape_string());
    }
    const int items = selector.shape(0);
    for (size_t i = 0; i + 1 < bottom.size(); ++i) {
      LAYER_REQUIRE(bottom[i]->num_axes() >= 1 && bottom[i]->shape(0) == items,
                    "bottom " << i << " " << bottom[i]->shape_string() << " must have as many items"
                              << " as the selector " << selector.shape_string());
    }
    // The selector's values decide the tops' shapes, so they are read here on the host: in GPU
    // mode a copy of the selector whenever the device has changed it, the one host copy this
    // layer makes. The list of kept items goes to the device when a GPU pass first asks for it.
    const float* select = selector.cpu_data();
    kept_.resize(sizeof(int) * items);
    int* kept_items = items > 0 ? static_cast<int*>(kept_.mutable_host_data()) : nullptr;
    kept_count_ = 0;
    for (int n = 0; n < items; ++n) {
      if (select[n] != 0) kept_items[kept_count_++] = n;
    }
    const int kept = first_reshape_ ? items : static_cast<int>(kept_count_);
    first_reshape_ = false;
    for (size_t t = 0; t < top.size(); ++t) {
      std::vector<int> shape = bottom[t]->shape();
      shape[0] = kept;
      top[t]->reshape(shape);
    }
  }

 protected:
  void forward_cpu(const Blobs& bottom, const Blobs& top) override {
    for (size_t t = 0; t < top.size(); ++t) {
      move_kept(bottom[t]->count(1), bottom[t]->data(), top[t]->mutable_data(), true);
    }
  }

  void backward_cpu(const Blobs& top, const std::vector<bool>& propagate_down,
                    const Blobs& bottom) override {
    LAYER_REQUIRE(!propagate_down.back(), "has no gradient for the selector (last bottom)");
    for (size_t t = 0; t < top.size(); ++t) {
      if (!propagate_down[t]) continue;
      float* in = bottom[t]->mutable_diff();
      math::set(bottom[t]->count(), 0.0f, in);
      move_kept(bottom[t]->count(1), top[t]->diff(), in, false);
    }
  }

 private:
  // The kept items of `from` into consecutive items of `to` (into_top), or back.
  void move_kept(int64_t item, const float* from, float* to, bool into_top) {
    if (kept_count_ == 0 || item == 0) return;
#ifdef ENGINE_USE_CUDA
    if (math::on_gpu()) {
      filter_move_rows_gpu(kept_count_, item, static_cast<const int*>(kept_.device_data()), from,
                           to, into_top);
      return;
    }
#endif
    const int* kept = static_cast<const int*>(kept_.host_data());
    for (int64_t k = 0; k < kept_count_; ++k) {
      const int64_t at = kept[k] * item;
      if (into_top) {
        std::memcpy(to + k * item, from + at, sizeof(float) * item);
      } else {
        std::memcpy(to + at, from + k * item, sizeof(float) * item);
      }
    }
  }

  SyncedMemory kept_;  // int: the items whose selector value is non-zero, in order
  int64_t kept_count_ = 0;
  bool first_reshape_ = true;
};

}  // namespace
}  // namespace engine

ENGINE_LAYER_FACTORY(Crop, CropLayer)
ENGINE_LAYER_FACTORY(Tile, TileLayer)
ENGINE_LAYER_FACTORY(BatchReindex, BatchReindexLayer)
ENGINE_LAYER_FACTORY(Filter, FilterLayer)
