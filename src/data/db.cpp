#include "data/db.hpp"

#include <lmdb.h>
#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>

#include "core/errors.hpp"

namespace engine {

namespace {

// Records per write transaction: big enough to amortise commits, small enough to bound memory.
constexpr size_t kBatch = 1000;
// LMDB maps the whole database. Caffe reserves 1 TB up front and records it in the file, which
// fails under `ulimit -v` or ThreadSanitizer; the writer starts small and doubles the map when
// a batch does not fit, and the reader maps only the file.
constexpr size_t kFirstMapSize = size_t(64) << 20;

void check(int status, const std::string& path, const char* what) {
  ENGINE_REQUIRE(status == MDB_SUCCESS,
                 path << ": LMDB " << what << " failed: " << mdb_strerror(status));
}

}  // namespace

// ---- reading --------------------------------------------------------------------------------

DbReader::DbReader(const std::string& path) : path_(path) {
  ENGINE_REQUIRE(std::filesystem::is_directory(path),
                 path << ": no such LMDB database (expected a folder holding data.mdb)");
  ENGINE_REQUIRE(std::filesystem::exists(std::filesystem::path(path) / "data.mdb"),
                 path << ": not an LMDB database (no data.mdb in the folder)");
  try {
    open();
  } catch (...) {
    close();
    throw;
  }
}

void DbReader::open() {
  check(mdb_env_create(&env_), path_, "environment creation");
  const uintmax_t file_size = std::filesystem::file_size(std::filesystem::path(path_) / "data.mdb");
  check(mdb_env_set_mapsize(env_, std::max<uintmax_t>(file_size, 1)), path_, "map size");
  // NOTLS: transactions are not tied to threads, so prefetch threads can each own a reader.
  // NOLOCK: the database is read-only for us and may sit on a read-only file system.
  check(mdb_env_open(env_, path_.c_str(), MDB_RDONLY | MDB_NOTLS | MDB_NOLOCK, 0664), path_,
        "open");
  // LMDB maps the file and would take SIGBUS on a page past the end of a truncated copy.
  MDB_envinfo info;
  MDB_stat env_stat;
  check(mdb_env_info(env_, &info), path_, "environment info");
  check(mdb_env_stat(env_, &env_stat), path_, "environment stat");
  const uintmax_t needed = (uintmax_t(info.me_last_pgno) + 1) * env_stat.ms_psize;
  ENGINE_REQUIRE(file_size >= needed, path_ << ": data.mdb is truncated: " << file_size
                                       << " bytes, but its pages reach " << needed
                                       << " (an interrupted copy?)");
  check(mdb_txn_begin(env_, nullptr, MDB_RDONLY, &txn_), path_, "read transaction");
  MDB_dbi dbi;
  check(mdb_dbi_open(txn_, nullptr, 0, &dbi), path_, "database open");
  dbi_ = dbi;
  MDB_stat stat;
  check(mdb_stat(txn_, dbi_, &stat), path_, "stat");
  entries_ = stat.ms_entries;
  check(mdb_cursor_open(txn_, dbi_, &cursor_), path_, "cursor");
  seek_to_first();
}

void DbReader::close() {
  if (cursor_) mdb_cursor_close(cursor_);
  if (txn_) mdb_txn_abort(txn_);
  if (env_) mdb_env_close(env_);
  cursor_ = nullptr;
  txn_ = nullptr;
  env_ = nullptr;
}

DbReader::~DbReader() { close(); }

void DbReader::read_current(int cursor_op) {
  MDB_val key, value;
  const int status = mdb_cursor_get(cursor_, &key, &value, static_cast<MDB_cursor_op>(cursor_op));
  if (status == MDB_NOTFOUND) {
    valid_ = false;
    return;
  }
  check(status, path_, "cursor read");
  valid_ = true;
  key_ = std::string_view(static_cast<const char*>(key.mv_data), key.mv_size);
  value_ = std::string_view(static_cast<const char*>(value.mv_data), value.mv_size);
}

void DbReader::seek_to_first() { read_current(MDB_FIRST); }

void DbReader::next() { read_current(MDB_NEXT); }

void DbReader::next_wrapping() {
  next();
  if (!valid_) seek_to_first();
  ENGINE_REQUIRE(valid_, path_ << ": the database is empty");
}

// ---- writing --------------------------------------------------------------------------------

DbWriter::DbWriter(const std::string& path, bool overwrite) : path_(path) {
  namespace fs = std::filesystem;
  if (fs::exists(fs::path(path) / "data.mdb")) {
    ENGINE_REQUIRE(overwrite, path << ": a database already exists there; remove it first");
    fs::remove(fs::path(path) / "data.mdb");
    fs::remove(fs::path(path) / "lock.mdb");
  }
  std::error_code error;
  fs::create_directories(path, error);
  ENGINE_REQUIRE(!error, path << ": cannot create the database folder: " << error.message());
  check(mdb_env_create(&env_), path, "environment creation");
  map_size_ = kFirstMapSize;
  check(mdb_env_set_mapsize(env_, map_size_), path, "map size");
  const int status = mdb_env_open(env_, path.c_str(), 0, 0664);
  if (status != MDB_SUCCESS) {
    mdb_env_close(env_);
    env_ = nullptr;
    check(status, path, "open");
  }
}

void DbWriter::put(std::string_view key, std::string_view value) {
  batch_.emplace_back(key, value);
  ++written_;
  if (batch_.size() >= kBatch) commit();
}

void DbWriter::commit() {
  int status;
  while ((status = write_batch()) == MDB_MAP_FULL) {
    map_size_ *= 2;
    check(mdb_env_set_mapsize(env_, map_size_), path_, "map size");
  }
  check(status, path_, "write");
  batch_.clear();
}

int DbWriter::write_batch() {
  MDB_txn* txn = nullptr;
  int status = mdb_txn_begin(env_, nullptr, 0, &txn);
  if (status != MDB_SUCCESS) return status;
  MDB_dbi dbi;
  status = mdb_dbi_open(txn, nullptr, 0, &dbi);
  for (size_t i = 0; i < batch_.size() && status == MDB_SUCCESS; ++i) {
    MDB_val key{batch_[i].first.size(), batch_[i].first.data()};
    MDB_val value{batch_[i].second.size(), batch_[i].second.data()};
    status = mdb_put(txn, dbi, &key, &value, 0);
  }
  if (status != MDB_SUCCESS) {
    mdb_txn_abort(txn);
    return status;
  }
  return mdb_txn_commit(txn);
}

DbWriter::~DbWriter() {
  if (!batch_.empty()) {
    try {
      commit();
    } catch (const Error& error) {
      LOG(ERROR) << error.what();
    }
  }
  if (env_) mdb_env_close(env_);
}

}  // namespace engine
