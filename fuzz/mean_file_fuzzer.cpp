// A mean file (.binaryproto, a BlobProto) as transform_param's mean_file loads it, then used on
// a 3 x 8 x 8 record.
#include <vector>

#include "data/transformer.hpp"
#include "engine.pb.h"
#include "fuzz_target.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  engine::fuzz::expect_clean([&] {
    engine::TransformationParameter param;
    param.set_mean_file(engine::fuzz::as_file(data, size, "mean.binaryproto"));
    param.set_crop_size(6);
    const engine::DataTransformer transformer(param, engine::TEST, "input");
    engine::Datum datum;
    datum.set_channels(3);
    datum.set_height(8);
    datum.set_width(8);
    datum.set_data(std::string(3 * 8 * 8, '\x40'));
    const std::vector<int> slot = transformer.slot_shape(datum);
    std::vector<float> out(size_t(slot[0]) * slot[1] * slot[2] * transformer.crops_per_image());
    transformer.transform(datum, slot, out.data());
  });
  return 0;
}
