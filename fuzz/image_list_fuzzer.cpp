// An image list file (convert_imageset's LIST, ImageData's source).
#include <sstream>

#include "data/image_list.hpp"
#include "fuzz_target.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  engine::fuzz::expect_clean([&] {
    std::istringstream in(std::string(reinterpret_cast<const char*>(data), size));
    engine::parse_image_list(in, "input");
  });
  return 0;
}
