#include "data/image_list.hpp"

#include <cctype>
#include <charconv>
#include <fstream>

#include "core/errors.hpp"

namespace engine {
namespace {

bool blank(char c) { return std::isspace(static_cast<unsigned char>(c)) != 0; }

}  // namespace

std::vector<ImageListEntry> parse_image_list(std::istream& in, const std::string& source) {
  std::vector<ImageListEntry> entries;
  std::string line;
  for (int number = 1; std::getline(in, line); ++number) {
    while (!line.empty() && blank(line.back())) line.pop_back();
    size_t start = 0;
    while (start < line.size() && blank(line[start])) ++start;
    if (start == line.size()) continue;  // blank lines carry nothing
    const size_t separator = line.find_last_of(" \t");
    ENGINE_REQUIRE(separator != std::string::npos && separator > start,
                   source << ":" << number << ": expected 'FILE LABEL', got '" << line << "'");
    const std::string label_text = line.substr(separator + 1);
    int label = 0;
    const auto [end, error] =
        std::from_chars(label_text.data(), label_text.data() + label_text.size(), label);
    ENGINE_REQUIRE(error == std::errc() && end == label_text.data() + label_text.size(),
                   source << ":" << number << ": the label '" << label_text
                          << "' is not an integer (expected 'FILE LABEL')");
    size_t name_end = separator;
    while (name_end > start && blank(line[name_end - 1])) --name_end;
    entries.push_back({line.substr(start, name_end - start), label, number});
  }
  ENGINE_REQUIRE(!in.bad(), source << ": read error");
  return entries;
}

std::vector<ImageListEntry> read_image_list(const std::string& path) {
  std::ifstream file(path);
  ENGINE_REQUIRE(file, path << ": cannot open the image list");
  return parse_image_list(file, path);
}

}  // namespace engine
