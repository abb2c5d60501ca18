// The layers model parallelism inserts where a layer reads channels that other workers hold
// (parallel/model_parallel.hpp). A blob's channels (axis 1) are divided among the W workers of a
// group in equal contiguous slices, worker w holding channels [w C/W, (w + 1) C/W); in the
// hybrid, GatherChannels with axis 0 joins the workers' images the same way.
//   GatherChannels: every worker's slice -> the whole blob (all-gather). Backward sums the
//     workers' partial gradients and keeps this worker's slice (reduce-scatter), or, when every
//     worker holds the complete gradient (a loss computed on each), just keeps the slice.
//   KeepChannels: a whole blob -> this worker's slice, no exchange; backward puts the slice's
//     gradient in place and zeros elsewhere (the other workers supply the rest). With a halo it
//     drops the halo instead.
//   HaloChannels: this worker's slice with `halo` channels of each neighbour's on either side
//     (an all-gather of every slice's edges); backward adds the halos' gradients to the edges'
//     owners. An LRN across channels needs only these, not the whole blob.
// The collectives run through Context::model_group(): MPI's on the CPU, NCCL's on GPUs. Written
// once for both devices.
#include "core/context.hpp"
#include "core/layer.hpp"
#include "core/layer_registry.hpp"
#include "math/blas.hpp"
#include "parallel/communicator.hpp"

namespace engine {
namespace {

class ChannelExchangeLayer : public Layer {
 public:
  using Layer::Layer;
  int exact_bottoms() const override { return 1; }
  int exact_tops() const override { return 1; }

 protected:
  void layer_setup(const Blobs& bottom, const Blobs& top) override {
    const ChannelExchangeParameter& p = param_.channel_exchange_param();
    workers_ = p.workers();
    worker_ = p.worker();
    LAYER_REQUIRE(workers_ >= 1 && worker_ >= 0 && worker_ < workers_,
                  "worker " << worker_ << " of " << workers_ << " does not exist");
    LAYER_REQUIRE(bottom[0] != top[0], "does not allow in-place computation");
  }

  // The geometry along the divided axis: `outer_` blocks (the axes before it) of a slice's or
  // the whole blob's extent times the inner size (the axes after it).
  void measure(const Blob& sliced, int64_t whole_extent) {
    const int axis = param_.channel_exchange_param().axis();
    LAYER_REQUIRE(axis >= 0 && axis < sliced.num_axes(),
                  "axis " << axis << " does not exist in a blob of shape "
                          << sliced.shape_string());
    outer_ = sliced.count(0, axis);
    inner_ = sliced.count(axis + 1);
    slice_ = sliced.shape(axis) * inner_;
    whole_ = whole_extent * inner_;
  }
  int axis() const { return param_.channel_exchange_param().axis(); }

  Communicator& group() {
    Communicator* group = Context::model_group();
    LAYER_REQUIRE(group, "needs the communicator of a model-parallel group (engine train "
                         "--model_parallel=W under mpirun)");
    LAYER_REQUIRE(group->size() == workers_ && group->rank() == worker_,
                  "is worker " << worker_ << " of " << workers_ << ", but this process is rank "
                               << group->rank() << " of a group of " << group->size());
    LAYER_REQUIRE(group->device_memory() == (Context::mode() == Mode::GPU),
                  "runs on the " << (Context::mode() == Mode::GPU ? "GPU" : "CPU")
                                 << " but its group exchanges "
                                 << (group->device_memory() ? "device" : "host") << " memory");
    return *group;
  }

  int workers_ = 1, worker_ = 0;
  int64_t outer_ = 0, inner_ = 0, slice_ = 0, whole_ = 0;
};

class GatherChannelsLayer : public ChannelExchangeLayer {
 public:
  using ChannelExchangeLayer::ChannelExchangeLayer;

  void reshape(const Blobs& bottom, const Blobs& top) override {
    LAYER_REQUIRE(axis() < bottom[0]->num_axes(), "axis " << axis() << " does not exist in "
                                                          << bottom[0]->shape_string());
    measure(*bottom[0], int64_t(bottom[0]->shape(axis())) * workers_);
    std::vector<int> shape = bottom[0]->shape();
    shape[axis()] *= workers_;
    top[0]->reshape(shape);
    if (workers_ > 1) staging_.reshape({static_cast<int>(workers_ * bottom[0]->count())});
  }

 protected:
  void forward_cpu(const Blobs& bottom, const Blobs& top) override {
    if (workers_ == 1) {
      math::copy(bottom[0]->count(), bottom[0]->data(), top[0]->mutable_data());
      return;
    }
    const int64_t count = bottom[0]->count();
    float* staging = staging_.mutable_data();
    group().allgather(bottom[0]->data(), staging, count, describe() + " forward");
    for (int q = 0; q < workers_; ++q) {
      math::copy_rows(outer_, slice_, staging + q * count, slice_,
                      top[0]->mutable_data() + q * slice_, whole_);
    }
  }

  void backward_cpu(const Blobs& top, const std::vector<bool>& propagate_down,
                    const Blobs& bottom) override {
    if (!propagate_down[0]) return;
    const float* top_diff = top[0]->diff();
    float* bottom_diff = bottom[0]->mutable_diff();
    if (workers_ > 1 && param_.channel_exchange_param().partial_gradients()) {
      const int64_t count = bottom[0]->count();
      float* staging = staging_.mutable_data();
      for (int q = 0; q < workers_; ++q) {
        math::copy_rows(outer_, slice_, top_diff + q * slice_, whole_, staging + q * count,
                        slice_);
      }
      group().reduce_scatter_sum(staging, bottom_diff, count, describe() + " backward");
      return;
    }
    math::copy_rows(outer_, slice_, top_diff + worker_ * slice_, whole_, bottom_diff, slice_);
  }

 private:
  Blob staging_;  // [worker][outer][slice]: the collectives' layout
};

class KeepChannelsLayer : public ChannelExchangeLayer {
 public:
  using ChannelExchangeLayer::ChannelExchangeLayer;

  void reshape(const Blobs& bottom, const Blobs& top) override {
    const int halo = param_.channel_exchange_param().halo();
    const int extent = bottom[0]->num_axes() > axis() ? bottom[0]->shape(axis()) : 0;
    std::vector<int> shape = bottom[0]->shape();
    if (halo > 0) {
      LAYER_REQUIRE(extent > 2 * halo, "cannot drop a halo of " << halo << " from "
                                                                << bottom[0]->shape_string());
      shape[axis()] -= 2 * halo;
    } else {
      LAYER_REQUIRE(extent > 0 && extent % workers_ == 0,
                    "cannot divide axis " << axis() << " of " << bottom[0]->shape_string()
                                          << " among " << workers_ << " workers");
      shape[axis()] /= workers_;
    }
    top[0]->reshape(shape);
    measure(*top[0], extent);
    offset_ = halo > 0 ? halo * inner_ : worker_ * slice_;
  }

 protected:
  void forward_cpu(const Blobs& bottom, const Blobs& top) override {
    math::copy_rows(outer_, slice_, bottom[0]->data() + offset_, whole_, top[0]->mutable_data(),
                    slice_);
  }

  void backward_cpu(const Blobs& top, const std::vector<bool>& propagate_down,
                    const Blobs& bottom) override {
    if (!propagate_down[0]) return;
    float* bottom_diff = bottom[0]->mutable_diff();
    math::set(bottom[0]->count(), 0.0f, bottom_diff);
    math::copy_rows(outer_, slice_, top[0]->diff(), slice_, bottom_diff + offset_, whole_);
  }

 private:
  int64_t offset_ = 0;  // where the kept part starts in a block of the bottom
};

class HaloChannelsLayer : public ChannelExchangeLayer {
 public:
  using ChannelExchangeLayer::ChannelExchangeLayer;

  void reshape(const Blobs& bottom, const Blobs& top) override {
    halo_ = param_.channel_exchange_param().halo();
    LAYER_REQUIRE(halo_ >= 0, "halo must not be negative, got " << halo_);
    LAYER_REQUIRE(bottom[0]->num_axes() > axis() && bottom[0]->shape(axis()) >= halo_,
                  "a worker's slice " << bottom[0]->shape_string() << " is thinner than the "
                                      << "halo of " << halo_ << " channels");
    std::vector<int> shape = bottom[0]->shape();
    shape[axis()] += 2 * halo_;
    top[0]->reshape(shape);
    measure(*bottom[0], shape[axis()]);
    edge_ = halo_ * inner_;
    edges_.reshape({static_cast<int>(2 * edge_ * outer_)});
    all_edges_.reshape({static_cast<int>(2 * edge_ * outer_ * workers_)});
  }

 protected:
  // Block b of the bottom is [slice_]; of the top, [edge_ | slice_ | edge_] (whole_ long).
  void forward_cpu(const Blobs& bottom, const Blobs& top) override {
    const float* in = bottom[0]->data();
    float* out = top[0]->mutable_data();
    math::set(top[0]->count(), 0.0f, out);
    math::copy_rows(outer_, slice_, in, slice_, out + edge_, whole_);
    if (workers_ == 1 || edge_ == 0) return;
    // Every worker's first and last `halo` channels, for its neighbours.
    float* edges = edges_.mutable_data();
    math::copy_rows(outer_, edge_, in, slice_, edges, 2 * edge_);
    math::copy_rows(outer_, edge_, in + slice_ - edge_, slice_, edges + edge_, 2 * edge_);
    const float* all = exchange(edges, " forward");
    const int64_t per_worker = 2 * edge_ * outer_;
    if (worker_ > 0) {  // the left neighbour's last channels
      math::copy_rows(outer_, edge_, all + (worker_ - 1) * per_worker + edge_, 2 * edge_, out,
                      whole_);
    }
    if (worker_ + 1 < workers_) {  // the right neighbour's first channels
      math::copy_rows(outer_, edge_, all + (worker_ + 1) * per_worker, 2 * edge_,
                      out + edge_ + slice_, whole_);
    }
  }

  void backward_cpu(const Blobs& top, const std::vector<bool>& propagate_down,
                    const Blobs& bottom) override {
    if (!propagate_down[0]) return;
    const float* diff = top[0]->diff();
    float* bottom_diff = bottom[0]->mutable_diff();
    math::copy_rows(outer_, slice_, diff + edge_, whole_, bottom_diff, slice_);
    if (workers_ == 1 || edge_ == 0) return;
    // The halos' gradients belong to the neighbours' edges: swap them and add.
    float* edges = edges_.mutable_data();
    math::copy_rows(outer_, edge_, diff, whole_, edges, 2 * edge_);
    math::copy_rows(outer_, edge_, diff + edge_ + slice_, whole_, edges + edge_, 2 * edge_);
    const float* all = exchange(edges, " backward");
    const int64_t per_worker = 2 * edge_ * outer_;
    for (int64_t n = 0; n < outer_; ++n) {
      if (worker_ > 0) {  // the left neighbour's right halo is my first channels
        math::axpy(edge_, 1.0f, all + (worker_ - 1) * per_worker + n * 2 * edge_ + edge_,
                   bottom_diff + n * slice_);
      }
      if (worker_ + 1 < workers_) {  // the right neighbour's left halo is my last channels
        math::axpy(edge_, 1.0f, all + (worker_ + 1) * per_worker + n * 2 * edge_,
                   bottom_diff + n * slice_ + slice_ - edge_);
      }
    }
  }

 private:
  const float* exchange(const float* edges, const char* pass) {
    float* all = all_edges_.mutable_data();
    group().allgather(edges, all, static_cast<size_t>(2 * edge_ * outer_), describe() + pass);
    return all;
  }

  int halo_ = 0;
  int64_t edge_ = 0;        // halo channels times the inner size
  Blob edges_, all_edges_;  // [outer][first edge | last edge], and every worker's
};


}  // namespace
}  // namespace engine

ENGINE_LAYER_FACTORY(GatherChannels, GatherChannelsLayer)
ENGINE_LAYER_FACTORY(KeepChannels, KeepChannelsLayer)
ENGINE_LAYER_FACTORY(HaloChannels, HaloChannelsLayer)
