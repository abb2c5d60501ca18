// Caffe's image list files (convert_imageset's LIST, ImageData's source): one image per line,
// "FILE LABEL", the label an integer after the last space or tab (so file names may contain
// spaces); blank lines are skipped, trailing whitespace and Windows line ends ignored.
// Errors name the list, the line and what was expected. Stateless; thread-safe.
#pragma once

#include <istream>
#include <string>
#include <vector>

namespace engine {

struct ImageListEntry {
  std::string name;
  int label = 0;
  int line = 0;  // 1-based, for messages about the image
};

// `source` names the list in errors.
std::vector<ImageListEntry> parse_image_list(std::istream& in, const std::string& source);
std::vector<ImageListEntry> read_image_list(const std::string& path);

}  // namespace engine
