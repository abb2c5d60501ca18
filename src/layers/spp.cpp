// SPP: spatial pyramid pooling, as Caffe builds it: level i pools each channel into 2^i x 2^i
// bins with a Pooling layer of kernel ceil(size / 2^i), stride = kernel and pad
// (kernel * 2^i - size + 1) / 2 per axis, so Caffe's bin geometry (and its output size rules)
// come from Pooling itself. With pyramid_height 1 the top is that pooling's [N, C, 1, 1]; with
// more levels each image's pooled levels are flattened and concatenated: [N, sum of C x bins].
// Written once for both devices: the levels are Pooling layers, which take the mode's path, and
// the concatenation is a strided copy.
#include <cmath>
#include <string>
#include <vector>

#include "core/layer.hpp"
#include "core/layer_registry.hpp"
#include "math/blas.hpp"

namespace engine {
namespace {

class SppLayer : public Layer {
 public:
  using Layer::Layer;
  int exact_bottoms() const override { return 1; }
  int exact_tops() const override { return 1; }

  void layer_setup(const Blobs& bottom, const Blobs& top) override {
    const SPPParameter& p = param_.spp_param();
    LAYER_REQUIRE(p.pyramid_height() >= 1,
                  "spp_param needs pyramid_height >= 1, got " << p.pyramid_height());
    LAYER_REQUIRE(p.pyramid_height() <= 16,
                  "pyramid_height " << p.pyramid_height() << " is implausibly large (at most 16)");
    built_height_ = built_width_ = -1;
  }

  void reshape(const Blobs& bottom, const Blobs& top) override {
    const Blob& in = *bottom[0];
    LAYER_REQUIRE(in.num_axes() == 4, "needs a 4-axis bottom (num, channels, height, width), got "
                                          << in.shape_string());
    if (in.height() != built_height_ || in.width() != built_width_) build(in);
    const int levels = static_cast<int>(levels_.size());
    if (levels == 1) {
      levels_[0]->reshape(bottom, top);
      return;
    }
    level_bottom_.reshape_like(in);
    level_bottom_.share_data(in);
    sizes_.clear();
    int64_t total = 0;
    for (int i = 0; i < levels; ++i) {
      levels_[i]->reshape({&level_bottom_}, {&pooled_[i]});
      sizes_.push_back(pooled_[i].count(1));
      total += sizes_.back();
    }
    top[0]->reshape({in.num(), static_cast<int>(total)});
  }

 protected:
  void forward_cpu(const Blobs& bottom, const Blobs& top) override {
    if (levels_.size() == 1) {
      levels_[0]->forward(bottom, top);
      return;
    }
    const int num = bottom[0]->num();
    const int64_t total = top[0]->count(1);
    float* out = top[0]->mutable_data();
    int64_t offset = 0;
    for (size_t i = 0; i < levels_.size(); ++i) {
      levels_[i]->forward({&level_bottom_}, {&pooled_[i]});
      math::copy_rows(num, sizes_[i], pooled_[i].data(), sizes_[i], out + offset, total);
      offset += sizes_[i];
    }
  }

  // The levels' gradients are summed into the bottom in level order, as Caffe's Split does.
  void backward_cpu(const Blobs& top, const std::vector<bool>& propagate_down,
                    const Blobs& bottom) override {
    if (!propagate_down[0]) return;
    if (levels_.size() == 1) {
      levels_[0]->backward(top, propagate_down, bottom);
      return;
    }
    const int num = bottom[0]->num();
    const int64_t total = top[0]->count(1);
    const int64_t count = bottom[0]->count();
    const float* out = top[0]->diff();
    float* diff = bottom[0]->mutable_diff();
    int64_t offset = 0;
    for (size_t i = 0; i < levels_.size(); ++i) {
      math::copy_rows(num, sizes_[i], out + offset, total, pooled_[i].mutable_diff(), sizes_[i]);
      offset += sizes_[i];
      levels_[i]->backward({&pooled_[i]}, {true}, {&level_bottom_});
      if (i == 0) {
        math::copy(count, level_bottom_.diff(), diff);
      } else {
        math::axpy(count, 1.0f, level_bottom_.diff(), diff);
      }
    }
  }

 private:
  // One Pooling layer per level for a bottom of this height and width.
  void build(const Blob& in) {
    const SPPParameter& p = param_.spp_param();
    const int levels = static_cast<int>(p.pyramid_height());
    levels_.clear();
    pooled_ = std::vector<Blob>(levels);
    level_bottom_.reshape_like(in);
    level_bottom_.share_data(in);
    for (int i = 0; i < levels; ++i) {
      const int bins = 1 << i;
      const int kernel_h = static_cast<int>(std::ceil(in.height() / static_cast<double>(bins)));
      const int kernel_w = static_cast<int>(std::ceil(in.width() / static_cast<double>(bins)));
      LayerParameter level;
      level.set_name(name() + "/level" + std::to_string(i));
      level.set_type("Pooling");
      level.set_phase(param_.phase());
      PoolingParameter* pool = level.mutable_pooling_param();
      pool->set_pool(static_cast<PoolingParameter::PoolMethod>(p.pool()));
      pool->set_kernel_h(kernel_h);
      pool->set_kernel_w(kernel_w);
      pool->set_stride_h(kernel_h);
      pool->set_stride_w(kernel_w);
      pool->set_pad_h((kernel_h * bins - in.height() + 1) / 2);
      pool->set_pad_w((kernel_w * bins - in.width() + 1) / 2);
      pool->set_engine(static_cast<PoolingParameter::Engine>(p.engine()));
      levels_.push_back(create_layer(level));
      try {
        Blob* level_top = &pooled_[i];
        levels_.back()->setup({&level_bottom_}, {level_top});
      } catch (const Error& e) {
        ENGINE_FAIL(describe() << ": pyramid level " << i << " (" << bins << " x " << bins
                               << " bins) cannot pool a " << in.height() << " x " << in.width()
                               << " bottom: " << e.what());
      }
    }
    built_height_ = in.height();
    built_width_ = in.width();
  }

  std::vector<LayerPtr> levels_;
  std::vector<Blob> pooled_;  // each level's top (levels > 1)
  Blob level_bottom_;         // the bottom's data, with the diff of one level's gradient
  std::vector<int64_t> sizes_;  // values per image of each level
  int built_height_ = -1, built_width_ = -1;
};

}  // namespace
}  // namespace engine

ENGINE_LAYER_FACTORY(SPP, SppLayer)
