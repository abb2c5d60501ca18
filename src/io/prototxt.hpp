// Reading and writing protobuf messages as text (prototxt) and binary files.
//
// Every failure throws engine::Error naming the file, and for text the line and column and what
// the parser expected. Writes are atomic: a temporary file in the same folder, flushed, then
// renamed over the target, so a reader never sees half a file.
#pragma once

#include <string>

#include <google/protobuf/message.h>

namespace engine {

// Parses prototxt `text`; `source` names it in errors (a path, or "<string>").
void parse_text(const std::string& text, const std::string& source,
                google::protobuf::Message* message);
void read_text_file(const std::string& path, google::protobuf::Message* message);
// Reads a binary message of any size (a .caffemodel can exceed protobuf's default limit).
void read_binary_file(const std::string& path, google::protobuf::Message* message);

void write_text_file(const google::protobuf::Message& message, const std::string& path);
void write_binary_file(const google::protobuf::Message& message, const std::string& path);

// Reads a whole file; throws engine::Error naming the path if it cannot.
std::string read_file(const std::string& path);
// Writes `contents` to `path` atomically (temporary file, fsync, rename).
void write_file_atomic(const std::string& path, const std::string& contents);

}  // namespace engine
