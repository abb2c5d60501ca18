#include "io/npy.hpp"

#include <cctype>
#include <cstdint>
#include <cstring>
#include <map>
#include <sstream>

#include "core/blob.hpp"
#include "core/errors.hpp"
#include "io/prototxt.hpp"

static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__,
              ".npy data is read and written as little-endian float32 by plain copies");

namespace engine {

namespace {

constexpr char kMagic[] = "\x93NUMPY";
constexpr size_t kMagicSize = 6;
// NumPy pads the header so that the data starts at a multiple of 64 bytes.
constexpr size_t kAlignment = 64;

// One value of the header's Python dict literal.
struct HeaderValue {
  enum Kind { STRING, BOOLEAN, TUPLE } kind = STRING;
  std::string text;
  bool boolean = false;
  std::vector<int64_t> tuple;
};

// Parses the header, a Python dict literal such as
//   {'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }
class HeaderParser {
 public:
  HeaderParser(const std::string& text, const std::string& path) : text_(text), path_(path) {}

  std::map<std::string, HeaderValue> parse() {
    std::map<std::string, HeaderValue> entries;
    expect('{');
    while (true) {
      skip_space();
      if (peek() == '}') break;
      const std::string key = string_literal();
      expect(':');
      HeaderValue value = parse_value();
      if (!entries.emplace(key, value).second) fail("the key '" + key + "' appears twice");
      skip_space();
      if (peek() == ',') {
        ++at_;
        continue;
      }
      if (peek() != '}') fail("expected ',' or '}'");
    }
    ++at_;
    skip_space();
    if (at_ != text_.size()) fail("unexpected text after the closing '}'");
    return entries;
  }

 private:
  [[noreturn]] void fail(const std::string& what) const {
    ENGINE_FAIL(path_ << ": bad .npy header (" << what << " at character " << at_ << "): "
                      << text_);
  }
  void skip_space() {
    while (at_ < text_.size() && std::isspace(static_cast<unsigned char>(text_[at_]))) ++at_;
  }
  char peek() const { return at_ < text_.size() ? text_[at_] : '\0'; }
  void expect(char c) {
    skip_space();
    if (peek() != c) fail(std::string("expected '") + c + "'");
    ++at_;
  }
  std::string string_literal() {
    skip_space();
    const char quote = peek();
    if (quote != '\'' && quote != '"') fail("expected a quoted string");
    const size_t end = text_.find(quote, at_ + 1);
    if (end == std::string::npos) fail("unterminated string");
    std::string value = text_.substr(at_ + 1, end - at_ - 1);
    at_ = end + 1;
    return value;
  }
  int64_t integer() {
    skip_space();
    const size_t start = at_;
    while (std::isdigit(static_cast<unsigned char>(peek()))) ++at_;
    if (at_ == start) fail("expected a non-negative integer");
    if (at_ - start > 18) fail("dimension too large");
    const int64_t value = std::stoll(text_.substr(start, at_ - start));
    if (peek() == 'L') ++at_;  // Python 2 wrote long integers so
    return value;
  }
  HeaderValue parse_value() {
    skip_space();
    HeaderValue value;
    const char c = peek();
    if (c == '\'' || c == '"') {
      value.kind = HeaderValue::STRING;
      value.text = string_literal();
    } else if (text_.compare(at_, 4, "True") == 0 || text_.compare(at_, 5, "False") == 0) {
      value.kind = HeaderValue::BOOLEAN;
      value.boolean = c == 'T';
      at_ += value.boolean ? 4 : 5;
    } else if (c == '(') {
      value.kind = HeaderValue::TUPLE;
      ++at_;
      skip_space();
      while (peek() != ')') {
        value.tuple.push_back(integer());
        skip_space();
        if (peek() == ',') {
          ++at_;
          skip_space();
        } else if (peek() != ')') {
          fail("expected ',' or ')' in the shape");
        }
      }
      ++at_;
    } else {
      fail("expected a string, True, False or a tuple");
    }
    return value;
  }

  const std::string& text_;
  const std::string& path_;
  size_t at_ = 0;
};

std::string shape_tuple(const std::vector<int64_t>& shape) {
  std::ostringstream out;
  out << "(";
  for (size_t i = 0; i < shape.size(); ++i) out << (i ? ", " : "") << shape[i];
  if (shape.size() == 1) out << ",";
  out << ")";
  return out.str();
}

int64_t element_count(const std::vector<int64_t>& shape) {
  int64_t count = 1;
  for (int64_t dim : shape) {
    CHECK_GE(dim, 0);
    count *= dim;
  }
  return count;
}

uint32_t little_endian(const std::string& bytes, size_t at, int size) {
  uint32_t value = 0;
  for (int i = size - 1; i >= 0; --i) {
    value = value << 8 | static_cast<unsigned char>(bytes[at + i]);
  }
  return value;
}

}  // namespace

std::string npy_bytes(const std::vector<int64_t>& shape, const float* data) {
  std::string header =
      "{'descr': '<f4', 'fortran_order': False, 'shape': " + shape_tuple(shape) + ", }";
  // Version 1.0 stores the header length in 2 bytes, 2.0 in 4; the header ends in a newline.
  auto padding = [&](size_t preamble) {
    return (kAlignment - (preamble + header.size() + 1) % kAlignment) % kAlignment;
  };
  int major = 1;
  size_t preamble = kMagicSize + 2 + 2;
  if (header.size() + 1 + padding(preamble) > 65535) {
    major = 2;
    preamble = kMagicSize + 2 + 4;
  }
  header.append(padding(preamble), ' ');
  header.push_back('\n');
  const int64_t count = element_count(shape);

  std::string bytes(kMagic, kMagicSize);
  bytes.push_back(static_cast<char>(major));
  bytes.push_back(0);
  const uint32_t length = static_cast<uint32_t>(header.size());
  for (int i = 0; i < (major == 1 ? 2 : 4); ++i) {
    bytes.push_back(static_cast<char>(length >> 8 * i));
  }
  bytes += header;
  bytes.append(reinterpret_cast<const char*>(data), sizeof(float) * count);
  return bytes;
}

void write_npy(const std::string& path, const std::vector<int64_t>& shape, const float* data) {
  for (int64_t dim : shape) {
    ENGINE_REQUIRE(dim >= 0, path << ": cannot write an array with a negative dimension");
  }
  write_file_atomic(path, npy_bytes(shape, data));
}

void write_npy(const std::string& path, const Blob& blob) {
  const std::vector<int64_t> shape(blob.shape().begin(), blob.shape().end());
  write_npy(path, shape, blob.cpu_data());
}

NpyArray read_npy(const std::string& path) {
  const std::string bytes = read_file(path);
  ENGINE_REQUIRE(bytes.size() >= kMagicSize + 2 && bytes.compare(0, kMagicSize, kMagic) == 0,
                 path << ": not a NumPy .npy file (it does not start with \\x93NUMPY)");
  const int major = static_cast<unsigned char>(bytes[kMagicSize]);
  const int minor = static_cast<unsigned char>(bytes[kMagicSize + 1]);
  ENGINE_REQUIRE(major >= 1 && major <= 3 && minor == 0,
                 path << ": .npy format version " << major << "." << minor
                      << " is not supported (1.0, 2.0 and 3.0 are)");
  const int length_size = major == 1 ? 2 : 4;
  const size_t header_start = kMagicSize + 2 + length_size;
  ENGINE_REQUIRE(bytes.size() >= header_start, path << ": truncated .npy header");
  const size_t header_length = little_endian(bytes, kMagicSize + 2, length_size);
  ENGINE_REQUIRE(bytes.size() >= header_start + header_length,
                 path << ": truncated .npy header (it claims " << header_length
                      << " bytes, the file has " << bytes.size() - header_start << " after the "
                      << "preamble)");
  const std::string header = bytes.substr(header_start, header_length);
  const auto entries = HeaderParser(header, path).parse();

  auto entry = [&](const char* key, HeaderValue::Kind kind) -> const HeaderValue& {
    const auto found = entries.find(key);
    ENGINE_REQUIRE(found != entries.end(),
                   path << ": bad .npy header (no '" << key << "'): " << header);
    ENGINE_REQUIRE(found->second.kind == kind,
                   path << ": bad .npy header ('" << key << "' has the wrong kind of value): "
                        << header);
    return found->second;
  };
  ENGINE_REQUIRE(entries.size() == 3,
                 path << ": bad .npy header (expected exactly the keys descr, fortran_order and "
                      << "shape): " << header);
  const std::string& descr = entry("descr", HeaderValue::STRING).text;
  ENGINE_REQUIRE(descr == "<f4", path << ": the array's dtype is '" << descr
                                      << "'; only little-endian float32 ('<f4') is supported "
                                      << "(convert with a.astype('<f4'))");
  ENGINE_REQUIRE(!entry("fortran_order", HeaderValue::BOOLEAN).boolean,
                 path << ": the array is in Fortran order; only C order is supported (save "
                      << "np.ascontiguousarray(a))");
  NpyArray array;
  array.shape = entry("shape", HeaderValue::TUPLE).tuple;

  const size_t payload = bytes.size() - header_start - header_length;
  int64_t count = 1;
  for (int64_t dim : array.shape) {
    if (dim == 0) count = 0;
  }
  for (int64_t dim : array.shape) {
    if (count == 0) break;
    ENGINE_REQUIRE(count <= INT64_MAX / int64_t(sizeof(float)) / dim,
                   path << ": the shape " << shape_tuple(array.shape) << " is too large");
    count *= dim;
  }
  ENGINE_REQUIRE(payload == sizeof(float) * static_cast<size_t>(count),
                 path << ": the shape " << shape_tuple(array.shape) << " needs " << count
                      << " float32 values (" << sizeof(float) * count << " bytes), the file holds "
                      << payload << " bytes of data" << (payload < sizeof(float) * count
                                                              ? " (truncated?)"
                                                              : ""));
  array.data.resize(count);
  const char* values = bytes.data() + header_start + header_length;
  if (count > 0) std::memcpy(array.data.data(), values, payload);
  return array;
}

}  // namespace engine
