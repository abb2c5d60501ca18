// Sources that make their tops without bottoms: Input (shapes only; the caller or the legacy
// `input` fields of a net fill them) and DummyData (tops filled by fillers, for tests and timing).
#include "core/filler.hpp"
#include "core/layer.hpp"
#include "core/layer_registry.hpp"

namespace engine {
namespace {

class InputLayer : public Layer {
 public:
  using Layer::Layer;
  int exact_bottoms() const override { return 0; }
  int min_tops() const override { return 1; }

  void layer_setup(const Blobs& bottom, const Blobs& top) override {
    const auto& shapes = param_.input_param().shape();
    const int tops = static_cast<int>(top.size());
    LAYER_REQUIRE(shapes.size() == 1 || shapes.size() == tops,
                  "input_param needs one shape, or one per top (" << tops << "), got "
                                                                  << shapes.size());
    for (int i = 0; i < tops; ++i) top[i]->reshape(shapes.size() == 1 ? shapes[0] : shapes[i]);
  }
  // The shapes are the caller's to change after setup (Net::reshape follows them).
  void reshape(const Blobs& bottom, const Blobs& top) override {}

 protected:
  void forward_cpu(const Blobs& bottom, const Blobs& top) override {}
};

class DummyDataLayer : public Layer {
 public:
  using Layer::Layer;
  int exact_bottoms() const override { return 0; }
  int min_tops() const override { return 1; }

  void layer_setup(const Blobs& bottom, const Blobs& top) override {
    const DummyDataParameter& p = param_.dummy_data_param();
    const int tops = static_cast<int>(top.size());
    const int legacy = p.num_size();
    LAYER_REQUIRE(p.shape_size() == 0 || legacy == 0,
                  "give dummy_data_param either shape or num/channels/height/width, not both");
    const int shapes = p.shape_size() > 0 ? p.shape_size() : legacy;
    LAYER_REQUIRE(shapes == 1 || shapes == tops,
                  "dummy_data_param needs one shape, or one per top (" << tops << "), got "
                                                                       << shapes);
    LAYER_REQUIRE(legacy == 0 || (p.channels_size() == legacy && p.height_size() == legacy &&
                                  p.width_size() == legacy),
                  "dummy_data_param needs as many channels, height and width values as num");
    LAYER_REQUIRE(p.data_filler_size() <= 1 || p.data_filler_size() == tops,
                  "dummy_data_param needs no data_filler, one, or one per top");
    for (int i = 0; i < tops; ++i) {
      const int s = shapes == 1 ? 0 : i;
      if (p.shape_size() > 0) {
        top[i]->reshape(p.shape(s));
      } else {
        top[i]->reshape({static_cast<int>(p.num(s)), static_cast<int>(p.channels(s)),
                         static_cast<int>(p.height(s)), static_cast<int>(p.width(s))});
      }
    }
    fillers_.clear();
    for (int i = 0; i < tops; ++i) {
      FillerParameter filler;  // constant 0 by default, as in Caffe
      if (p.data_filler_size() == 1) filler = p.data_filler(0);
      if (p.data_filler_size() > 1) filler = p.data_filler(i);
      fillers_.push_back(filler);
    }
    // Constant tops are filled once (in GPU mode they reach the device once, when first read
    // there); random ones are refilled every forward pass.
    refill_ = false;
    for (int i = 0; i < tops; ++i) {
      fill(fillers_[i], top[i]);
      if (fillers_[i].type() != "constant") refill_ = true;
    }
  }
  void reshape(const Blobs& bottom, const Blobs& top) override {}

 protected:
  // Both modes: random fillers draw from the host's generator (Context::rng), so that a seed
  // gives the same tops on either device; in GPU mode a refilled top then travels to the device
  // every pass, as a data layer's batch does. Filling on the device would need a device
  // generator, whose values would differ from the CPU's.
  void forward_cpu(const Blobs& bottom, const Blobs& top) override {
    if (!refill_) return;
    for (size_t i = 0; i < top.size(); ++i) {
      if (fillers_[i].type() != "constant") fill(fillers_[i], top[i]);
    }
  }

 private:
  std::vector<FillerParameter> fillers_;
  bool refill_ = false;
};

}  // namespace
}  // namespace engine

ENGINE_LAYER_FACTORY(Input, InputLayer)
ENGINE_LAYER_FACTORY(DummyData, DummyDataLayer)
