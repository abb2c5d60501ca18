// A database record: the bytes a Data layer reads from LMDB, parsed as a Datum (raw pixels,
// float_data, or an encoded image that OpenCV decodes) and transformed as for training
// (scale, mirror, random crop) and for ten-crop testing.
#include <vector>

#include "data/datum.hpp"
#include "data/transformer.hpp"
#include "engine.pb.h"
#include "fuzz_target.hpp"

namespace {

void transform(const engine::DataTransformer& transformer, const engine::Datum& datum) {
  const std::vector<int> slot = transformer.slot_shape(datum);
  std::vector<float> out(size_t(slot[0]) * slot[1] * slot[2] * transformer.crops_per_image());
  transformer.transform(datum, slot, out.data());
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  engine::fuzz::set_up();
  static const engine::DataTransformer train = [] {
    engine::TransformationParameter param;
    param.set_scale(1 / 255.0f);
    param.set_mirror(true);
    param.set_crop_size(4);
    return engine::DataTransformer(param, engine::TRAIN, "train");
  }();
  static const engine::DataTransformer ten_crop = [] {
    engine::TransformationParameter param;
    param.set_crop_size(4);
    param.set_ten_crop(true);
    param.add_mean_value(100);
    return engine::DataTransformer(param, engine::TEST, "test");
  }();
  engine::Datum datum;
  if (!datum.ParseFromArray(data, static_cast<int>(size))) return 0;  // as the Data layer
  engine::fuzz::expect_clean([&] { transform(train, datum); });
  engine::fuzz::expect_clean([&] { transform(ten_crop, datum); });
  engine::fuzz::expect_clean([&] { engine::datum_to_image(datum, true); });
  return 0;
}
