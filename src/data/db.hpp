// LMDB datasets as Caffe's tools write them: a folder holding data.mdb and lock.mdb, each record
// a key (for convert_imageset: the line index zero-padded to 8 digits, "_", the file name) and a
// serialized Datum.
//
// DbReader walks the records in key order with a read-only cursor; several readers (threads)
// may read one database at once. DbWriter appends in batched transactions and commits the rest
// when closed. Errors throw engine::Error naming the database path.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

struct MDB_env;
struct MDB_txn;
struct MDB_cursor;

namespace engine {

class DbReader {
 public:
  explicit DbReader(const std::string& path);
  ~DbReader();
  DbReader(const DbReader&) = delete;
  DbReader& operator=(const DbReader&) = delete;

  size_t entries() const { return entries_; }
  const std::string& path() const { return path_; }

  void seek_to_first();
  void next();
  // Next record, going back to the first after the last.
  void next_wrapping();
  bool valid() const { return valid_; }
  // Views stay valid until the cursor moves.
  std::string_view key() const { return key_; }
  std::string_view value() const { return value_; }

 private:
  void open();
  void close();
  void read_current(int cursor_op);

  std::string path_;
  MDB_env* env_ = nullptr;
  MDB_txn* txn_ = nullptr;
  MDB_cursor* cursor_ = nullptr;
  unsigned dbi_ = 0;
  size_t entries_ = 0;
  bool valid_ = false;
  std::string_view key_, value_;
};

class DbWriter {
 public:
  // Creates the database folder; an existing non-empty database is an error unless `overwrite`.
  explicit DbWriter(const std::string& path, bool overwrite = false);
  ~DbWriter();
  DbWriter(const DbWriter&) = delete;
  DbWriter& operator=(const DbWriter&) = delete;

  void put(std::string_view key, std::string_view value);
  // Makes everything put so far durable.
  void commit();
  size_t written() const { return written_; }

 private:
  // One transaction of the records put since the last commit; an LMDB status.
  int write_batch();

  std::string path_;
  MDB_env* env_ = nullptr;
  size_t map_size_ = 0;
  std::vector<std::pair<std::string, std::string>> batch_;
  size_t written_ = 0;
};

}  // namespace engine
