#include "io/prototxt.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <sstream>

#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/io/tokenizer.h>
#include <google/protobuf/io/zero_copy_stream_impl_lite.h>
#include <google/protobuf/text_format.h>

#include "core/errors.hpp"

namespace engine {

namespace {

// Collects the parser's complaints with 1-based line and column numbers.
class TextErrorCollector : public google::protobuf::io::ErrorCollector {
 public:
  void AddError(int line, int column, const std::string& message) override {
    if (!first_.empty()) return;
    std::ostringstream out;
    out << (line + 1) << ":" << (column + 1) << ": " << message;
    first_ = out.str();
  }
  void AddWarning(int line, int column, const std::string& message) override {}
  const std::string& first() const { return first_; }

 private:
  std::string first_;
};

}  // namespace

void parse_text(const std::string& text, const std::string& source,
                google::protobuf::Message* message) {
  google::protobuf::TextFormat::Parser parser;
  TextErrorCollector errors;
  parser.RecordErrorsTo(&errors);
  if (!parser.ParseFromString(text, message)) {
    ENGINE_FAIL(source << ":" << errors.first() << " (while reading a "
                       << message->GetDescriptor()->name() << ")");
  }
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  ENGINE_REQUIRE(in, "cannot open " << path << ": " << std::strerror(errno));
  // A device or a pipe could be endless (a weights file naming /dev/zero).
  std::error_code error;
  ENGINE_REQUIRE(std::filesystem::is_regular_file(path, error),
                 "cannot read " << path << ": not a regular file");
  std::ostringstream contents;
  contents << in.rdbuf();
  ENGINE_REQUIRE(!in.bad(), "error reading " << path);
  return contents.str();
}

namespace {

// Protobuf counts a message's bytes in an int, so neither form can exceed 2 GB (as in Caffe):
// refused before the file is read into memory.
void require_protobuf_size(const std::string& path, const google::protobuf::Message& message) {
  std::error_code error;
  const uintmax_t size = std::filesystem::file_size(path, error);
  ENGINE_REQUIRE(error || size <= static_cast<uintmax_t>(std::numeric_limits<int>::max()),
                 path << ": " << size << " bytes; a " << message.GetDescriptor()->name()
                      << " file (protobuf) cannot exceed 2 GB (2147483647 bytes)");
}

}  // namespace

void read_text_file(const std::string& path, google::protobuf::Message* message) {
  require_protobuf_size(path, *message);
  parse_text(read_file(path), path, message);
}

void read_binary_file(const std::string& path, google::protobuf::Message* message) {
  require_protobuf_size(path, *message);
  const std::string contents = read_file(path);
  google::protobuf::io::ArrayInputStream array(contents.data(), static_cast<int>(contents.size()));
  google::protobuf::io::CodedInputStream coded(&array);
  coded.SetTotalBytesLimit(std::numeric_limits<int>::max());
  ENGINE_REQUIRE(message->ParseFromCodedStream(&coded) && coded.ConsumedEntireMessage(),
                 path << ": not a valid binary " << message->GetDescriptor()->name()
                      << " (truncated or corrupt)");
}

void write_file_atomic(const std::string& path, const std::string& contents) {
  const std::string temporary = path + ".tmp." + std::to_string(::getpid());
  const int fd = ::open(temporary.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  ENGINE_REQUIRE(fd >= 0, "cannot create " << temporary << ": " << std::strerror(errno));
  size_t written = 0;
  while (written < contents.size()) {
    const ssize_t n = ::write(fd, contents.data() + written, contents.size() - written);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      const int error = errno;
      ::close(fd);
      ::unlink(temporary.c_str());
      ENGINE_FAIL("cannot write " << path << ": " << std::strerror(error));
    }
    written += static_cast<size_t>(n);
  }
  const bool synced = ::fsync(fd) == 0;
  const bool closed = ::close(fd) == 0;
  if (!synced || !closed || ::rename(temporary.c_str(), path.c_str()) != 0) {
    const int error = errno;
    ::unlink(temporary.c_str());
    ENGINE_FAIL("cannot write " << path << ": " << std::strerror(error));
  }
  // The rename itself survives a power cut only once the folder is synced.
  const size_t slash = path.find_last_of('/');
  const std::string folder = slash == std::string::npos ? "." : path.substr(0, slash + 1);
  const int folder_fd = ::open(folder.c_str(), O_RDONLY | O_DIRECTORY);
  if (folder_fd >= 0) {
    ::fsync(folder_fd);
    ::close(folder_fd);
  }
}

void write_text_file(const google::protobuf::Message& message, const std::string& path) {
  std::string text;
  CHECK(google::protobuf::TextFormat::PrintToString(message, &text));
  write_file_atomic(path, text);
}

void write_binary_file(const google::protobuf::Message& message, const std::string& path) {
  const size_t size = message.ByteSizeLong();
  ENGINE_REQUIRE(size <= static_cast<size_t>(std::numeric_limits<int>::max()),
                 "cannot write " << path << ": the " << message.GetDescriptor()->name() << " takes "
                                 << size << " bytes, and a protobuf file cannot exceed 2 GB");
  std::string bytes;
  ENGINE_REQUIRE(message.SerializeToString(&bytes),
                 "cannot serialize " << message.GetDescriptor()->name() << " for " << path);
  write_file_atomic(path, bytes);
}

}  // namespace engine
