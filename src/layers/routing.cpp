// Layers that route blobs without computing: Split (one bottom to several consumers), Concat and
// Slice (join or cut along an axis), Silence (swallow bottoms nobody reads). Each is written once
// for both devices (math:: and the mode-aware accessors): Concat and Slice are one strided copy
// per part, Split's backward sums the tops' gradients. Concat also joins blobs that arrive in
// oneDNN's blocked formats without converting them (math/onednn.hpp).
#include <algorithm>
#include <unordered_map>
#include <vector>

#include "core/layer.hpp"
#include "core/layer_registry.hpp"
#include "math/blas.hpp"
#include "math/onednn.hpp"

namespace engine {
namespace {

// Concat and Slice move [outer][rows][inner] blocks between one blob with `whole_rows` rows along
// the axis and one holding rows [offset, offset + part_rows) of it, on the mode's side.
void copy_part(int64_t outer, int64_t whole_rows, int64_t part_rows, int64_t offset, int64_t inner,
               const float* from, float* to, bool part_to_whole) {
  const int64_t part_block = part_rows * inner;
  const int64_t whole_block = whole_rows * inner;
  if (part_to_whole) {
    math::copy_rows(outer, part_block, from, part_block, to + offset * inner, whole_block);
  } else {
    math::copy_rows(outer, part_block, from + offset * inner, whole_block, to, part_block);
  }
}

// The Net inserts one of these wherever a blob feeds several layers, so forward is free (the
// tops alias the bottom's data) and backward is one blocked pass summing the tops' gradients.
class SplitLayer : public Layer {
 public:
  using Layer::Layer;
  int exact_bottoms() const override { return 1; }
  int min_tops() const override { return 1; }

  void reshape(const Blobs& bottom, const Blobs& top) override {
    for (Blob* blob : top) {
      LAYER_REQUIRE(blob != bottom[0], "does not allow in-place computation");
      blob->reshape_like(*bottom[0]);
      blob->share_data(*bottom[0]);
    }
  }

 protected:
  void forward_cpu(const Blobs& bottom, const Blobs& top) override {
    // reshape (run before every forward) already made the tops alias the bottom's data.
  }

  void backward_cpu(const Blobs& top, const std::vector<bool>& propagate_down,
                    const Blobs& bottom) override {
    if (!propagate_down[0]) return;
    const int64_t count = bottom[0]->count();
    float* sum = bottom[0]->mutable_diff();
    if (top.size() == 1) {
      math::copy(count, top[0]->diff(), sum);
      return;
    }
    // On the CPU, blocks small enough that the partial sum stays in cache while every top is
    // added; a GPU streams each top in one pass.
    const int64_t block = math::on_gpu() ? std::max<int64_t>(count, 1) : 8192;
    std::vector<const float*> diffs;
    for (Blob* blob : top) diffs.push_back(blob->diff());
    for (int64_t start = 0; start < count; start += block) {
      const int64_t n = std::min(block, count - start);
      math::add(n, diffs[0] + start, diffs[1] + start, sum + start);
      for (size_t k = 2; k < diffs.size(); ++k) math::axpy(n, 1.0f, diffs[k] + start, sum + start);
    }
  }
};

// The axis named by a Concat/Slice parameter: `axis`, or the legacy non-negative `*_dim`.
int routing_axis(const Layer& layer, const Blob& blob, bool has_legacy, uint32_t legacy, int axis,
                 const char* legacy_name) {
  if (!has_legacy) return layer.canonical_axis(blob, axis, "axis");
  ENGINE_REQUIRE(legacy < static_cast<uint32_t>(blob.num_axes()),
                 layer.describe() << ": " << legacy_name << " " << legacy
                                  << " is out of range for a bottom of shape "
                                  << blob.shape_string());
  return static_cast<int>(legacy);
}

class ConcatLayer : public Layer {
 public:
  using Layer::Layer;
  int min_bottoms() const override { return 1; }
  int exact_tops() const override { return 1; }

  void layer_setup(const Blobs& bottom, const Blobs& top) override {
    const ConcatParameter& p = param_.concat_param();
    LAYER_REQUIRE(!(p.has_axis() && p.has_concat_dim()),
                  "give concat_param either axis or concat_dim, not both");
  }

  void reshape(const Blobs& bottom, const Blobs& top) override {
    const ConcatParameter& p = param_.concat_param();
    const Blob& first = *bottom[0];
    axis_ = routing_axis(*this, first, p.has_concat_dim(), p.concat_dim(), p.axis(), "concat_dim");
    std::vector<int> shape = first.shape();
    for (size_t i = 1; i < bottom.size(); ++i) {
      const Blob& other = *bottom[i];
      bool compatible = other.num_axes() == first.num_axes();
      for (int j = 0; compatible && j < first.num_axes(); ++j) {
        compatible = j == axis_ || other.shape(j) == first.shape(j);
      }
      LAYER_REQUIRE(compatible, "bottoms must have the same shape except along axis "
                                    << axis_ << ": bottom 0 is " << first.shape_string()
                                    << ", bottom " << i << " is " << other.shape_string());
      shape[axis_] += other.shape(axis_);
    }
    top[0]->reshape(shape);
    if (bottom.size() == 1) {
      top[0]->share_data(first);
      top[0]->share_diff(first);
    }
  }

 protected:
  void forward_cpu(const Blobs& bottom, const Blobs& top) override {
    if (bottom.size() == 1) return;
#ifdef ENGINE_USE_ONEDNN
    if (onednn_concat(bottom, top)) return;
#endif
    const Blob& out = *top[0];
    const int64_t outer = out.count(0, axis_);
    const int64_t inner = out.count(axis_ + 1);
    float* data = top[0]->mutable_data();
    int64_t offset = 0;
    for (Blob* blob : bottom) {
      const int rows = blob->shape(axis_);
      copy_part(outer, out.shape(axis_), rows, offset, inner, blob->data(), data, true);
      offset += rows;
    }
  }

  void backward_cpu(const Blobs& top, const std::vector<bool>& propagate_down,
                    const Blobs& bottom) override {
    if (bottom.size() == 1) return;
    const Blob& out = *top[0];
    const int64_t outer = out.count(0, axis_);
    const int64_t inner = out.count(axis_ + 1);
    const float* diff = out.diff();
    int64_t offset = 0;
    for (size_t i = 0; i < bottom.size(); ++i) {
      const int rows = bottom[i]->shape(axis_);
      if (propagate_down[i]) {
        copy_part(outer, out.shape(axis_), rows, offset, inner, diff, bottom[i]->mutable_diff(),
                  false);
      }
      offset += rows;
    }
  }


 private:
#ifdef ENGINE_USE_ONEDNN
  // Bottoms that all arrive in one oneDNN format (the branches of an inception module) are
  // joined by oneDNN's concat, and the top keeps that format. False where they do not share one,
  // or where oneDNN refuses the join.
  bool onednn_concat(const Blobs& bottom, const Blobs& top) {
    if (math::on_gpu()) return false;
    std::vector<dnnl::memory::desc> formats;
    for (const Blob* blob : bottom) {
      const SyncedMemory& values = *blob->data_memory();
      const dnnl::memory::dims dims = onednn::dims(blob->shape());
      if (!values.plain_stale() || dims.empty() || dims.size() > 6) return false;
      formats.push_back(onednn::held_desc(values, dims));
      if (formats.back() == onednn::plain_desc(dims)) return false;
    }
    if (formats != built_for_) {
      // The top in the bottoms' format where they share one: oneDNN then joins them by copies.
      // (Left to itself it may pick a layout only its reference code writes.)
      std::vector<int> shape = bottom[0]->shape();
      shape[axis_] = top[0]->shape(axis_);
      dnnl::memory::desc joined_format;
      using Tag = dnnl::memory::format_tag;
      for (Tag tag : {Tag::nChw16c, Tag::nChw8c, Tag::nhwc}) {
        bool shared = bottom[0]->num_axes() == 4;
        for (size_t i = 0; shared && i < formats.size(); ++i) {
          shared = formats[i] == dnnl::memory::desc(formats[i].dims(), formats[i].data_type(), tag);
        }
        if (!shared) continue;
        joined_format = dnnl::memory::desc(onednn::dims(shape), formats[0].data_type(), tag);
        break;
      }
      if (joined_format == dnnl::memory::desc()) return false;
      try {
        const dnnl::concat::primitive_desc joined(joined_format, axis_, formats,
                                                  onednn::cpu_engine());
        concat_ = dnnl::concat(joined);
        out_.init(joined.dst_desc());
      } catch (const dnnl::error&) {
        return false;
      }
      parts_.resize(formats.size());
      for (size_t i = 0; i < formats.size(); ++i) parts_[i].init(formats[i]);
      built_for_ = formats;
    }
    std::unordered_map<int, dnnl::memory> args = {{DNNL_ARG_DST, out_.out(*top[0]->data_memory())}};
    for (size_t i = 0; i < bottom.size(); ++i) {
      args[DNNL_ARG_MULTIPLE_SRC + static_cast<int>(i)] = parts_[i].in(*bottom[i]->data_memory());
    }
    onednn::run(concat_, args);
    out_.finish();
    return true;
  }

  std::vector<dnnl::memory::desc> built_for_;  // the bottoms' formats the primitive joins
  dnnl::concat concat_;
  std::vector<onednn::Input> parts_;
  onednn::Output out_;
#endif
  int axis_ = 1;
};

class SliceLayer : public Layer {
 public:
  using Layer::Layer;
  int exact_bottoms() const override { return 1; }
  int min_tops() const override { return 1; }

  void layer_setup(const Blobs& bottom, const Blobs& top) override {
    const SliceParameter& p = param_.slice_param();
    LAYER_REQUIRE(!(p.has_axis() && p.has_slice_dim()),
                  "give slice_param either axis or slice_dim, not both");
  }

  void reshape(const Blobs& bottom, const Blobs& top) override {
    const SliceParameter& p = param_.slice_param();
    const Blob& in = *bottom[0];
    axis_ = routing_axis(*this, in, p.has_slice_dim(), p.slice_dim(), p.axis(), "slice_dim");
    const int length = in.shape(axis_);
    const int tops = static_cast<int>(top.size());
    std::vector<int> sizes;
    if (p.slice_point_size() > 0) {
      LAYER_REQUIRE(p.slice_point_size() == tops - 1,
                    "needs one slice_point fewer than its " << tops << " tops, got "
                                                            << p.slice_point_size());
      int64_t previous = 0;
      for (uint32_t point : p.slice_point()) {
        LAYER_REQUIRE(point > previous && point <= static_cast<uint32_t>(length),
                      "slice_point values must increase strictly within (0, "
                          << length << "] (axis " << axis_ << " of bottom "
                          << in.shape_string() << "), got " << point << " after " << previous);
        sizes.push_back(static_cast<int>(point - previous));
        previous = point;
      }
      sizes.push_back(length - static_cast<int>(previous));
    } else {
      LAYER_REQUIRE(length % tops == 0, "cannot cut axis " << axis_ << " of bottom "
                                                           << in.shape_string() << " (length "
                                                           << length << ") into " << tops
                                                           << " equal parts; give slice_point");
      sizes.assign(tops, length / tops);
    }
    std::vector<int> shape = in.shape();
    for (int i = 0; i < tops; ++i) {
      shape[axis_] = sizes[i];
      top[i]->reshape(shape);
    }
    if (tops == 1) {
      top[0]->share_data(in);
      top[0]->share_diff(in);
    }
  }

 protected:
  void forward_cpu(const Blobs& bottom, const Blobs& top) override {
    if (top.size() == 1) return;
    const Blob& in = *bottom[0];
    const int64_t outer = in.count(0, axis_);
    const int64_t inner = in.count(axis_ + 1);
    int64_t offset = 0;
    for (Blob* blob : top) {
      const int rows = blob->shape(axis_);
      copy_part(outer, in.shape(axis_), rows, offset, inner, in.data(), blob->mutable_data(),
                false);
      offset += rows;
    }
  }

  void backward_cpu(const Blobs& top, const std::vector<bool>& propagate_down,
                    const Blobs& bottom) override {
    if (!propagate_down[0] || top.size() == 1) return;
    Blob& in = *bottom[0];
    const int64_t outer = in.count(0, axis_);
    const int64_t inner = in.count(axis_ + 1);
    float* diff = in.mutable_diff();
    int64_t offset = 0;
    for (Blob* blob : top) {
      const int rows = blob->shape(axis_);
      copy_part(outer, in.shape(axis_), rows, offset, inner, blob->diff(), diff, true);
      offset += rows;
    }
  }


 private:
  int axis_ = 1;
};

// Consumes outputs nobody needs so that the net does not report them; gradients are zero.
class SilenceLayer : public Layer {
 public:
  using Layer::Layer;
  int min_bottoms() const override { return 1; }
  int exact_tops() const override { return 0; }

  void reshape(const Blobs& bottom, const Blobs& top) override {}

 protected:
  void forward_cpu(const Blobs& bottom, const Blobs& top) override {}

  void backward_cpu(const Blobs& top, const std::vector<bool>& propagate_down,
                    const Blobs& bottom) override {
    for (size_t i = 0; i < bottom.size(); ++i) {
      if (propagate_down[i]) bottom[i]->set_diff(0);
    }
  }
};

}  // namespace
}  // namespace engine

ENGINE_LAYER_FACTORY(Split, SplitLayer)
ENGINE_LAYER_FACTORY(Concat, ConcatLayer)
ENGINE_LAYER_FACTORY(Slice, SliceLayer)
ENGINE_LAYER_FACTORY(Silence, SilenceLayer)
