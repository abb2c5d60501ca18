// Data layer: batches of records from an LMDB database (Datum values, raw or encoded), through
// the DataTransformer, prefetched by the shared mechanism (data/prefetch.hpp). Records are read
// in key order and wrap around at the end; rand_skip skips a random number of records (below
// rand_skip) at the start. The tops' shape comes from the first record. Tops: data, and
// optionally label.
#include <memory>

#include "core/context.hpp"
#include "core/layer_registry.hpp"
#include "data/db.hpp"
#include "data/prefetch.hpp"
#include "data/transformer.hpp"

namespace engine {

namespace {

// What every reader of one layer shares; immutable once made.
struct DbSource {
  std::string owner;  // the layer's describe()
  std::string path;
  uint64_t entries = 0;
  std::shared_ptr<const DataTransformer> transformer;
  std::vector<int> slot_shape;
};

std::string record_name(std::string_view key, const std::string& path) {
  return "record '" + std::string(key) + "' of " + path;
}

void parse_datum(std::string_view value, std::string_view key, const DbSource& source,
                 Datum* datum) {
  ENGINE_REQUIRE(datum->ParseFromArray(value.data(), static_cast<int>(value.size())),
                 source.owner << ": " << record_name(key, source.path)
                              << ": the value is not a serialized Datum (" << value.size()
                              << " bytes)");
}

// One per prefetch thread: its own database handle and cursor, which it moves forward to the
// records it is asked for (a thread's batches are `threads` batches apart).
class DbRecordReader : public RecordReader {
 public:
  explicit DbRecordReader(std::shared_ptr<const DbSource> source)
      : source_(std::move(source)), db_(source_->path) {}

  int read(uint64_t record, float* out) override {
    seek(record % source_->entries);
    parse_datum(db_.value(), db_.key(), *source_, &datum_);
    try {
      source_->transformer->transform(datum_, source_->slot_shape, out);
    } catch (const std::exception&) {
      rethrow_for_record(source_->owner, record_name(db_.key(), source_->path));
    }
    return datum_.label();
  }

 private:
  void seek(uint64_t entry) {
    const uint64_t entries = source_->entries;
    uint64_t ahead = (entry + entries - position_) % entries;
    if (ahead > entry) {  // quicker from the first record
      db_.seek_to_first();
      position_ = 0;
      ahead = entry;
    }
    for (; ahead > 0; --ahead) db_.next_wrapping();
    position_ = entry;
  }

  std::shared_ptr<const DbSource> source_;
  DbReader db_;
  uint64_t position_ = 0;  // the entry under the cursor
  Datum datum_;
};

class DataLayer : public PrefetchingDataLayer {
 public:
  using PrefetchingDataLayer::PrefetchingDataLayer;
  int min_tops() const override { return 1; }
  int max_tops() const override { return 2; }

 protected:
  void layer_setup(const Blobs& bottom, const Blobs& top) override {
    const DataParameter& data = param_.data_param();
    LAYER_REQUIRE(!(data.has_backend() && data.backend() == DataParameter::LEVELDB),
                  "backend LEVELDB is not supported, only LMDB (convert the data with "
                  "convert_imageset --backend=lmdb)");
    LAYER_REQUIRE(!data.source().empty(), "data_param.source (the LMDB folder) is not given");
    LAYER_REQUIRE(data.batch_size() > 0, "data_param.batch_size must be positive");
    LAYER_REQUIRE(data.prefetch() > 0, "data_param.prefetch must be positive");

    auto source = std::make_shared<DbSource>();
    source->owner = describe();
    source->path = data.source();
    source->transformer =
        std::make_shared<const DataTransformer>(transform_param(), param_.phase(), describe());
    std::unique_ptr<DbReader> db;
    try {
      db = std::make_unique<DbReader>(source->path);
    } catch (const std::exception&) {
      rethrow_for_record(describe(), "data_param.source");
    }
    source->entries = db->entries();
    LAYER_REQUIRE(source->entries > 0, "the database " << source->path << " is empty");
    const uint64_t first_record = data.rand_skip() > 0 ? Context::rng()() % data.rand_skip() : 0;
    for (uint64_t i = 0; i < first_record % source->entries; ++i) db->next();
    Datum first;
    parse_datum(db->value(), db->key(), *source, &first);
    try {
      source->slot_shape = source->transformer->slot_shape(first);
    } catch (const std::exception&) {
      rethrow_for_record(describe(), record_name(db->key(), source->path));
    }
    db.reset();

    Layout layout;
    layout.batch_size = static_cast<int>(data.batch_size());
    layout.crops_per_image = source->transformer->crops_per_image();
    layout.slot_shape = source->slot_shape;
    layout.first_record = first_record;
    layout.threads = prefetch_threads(data.threads());
    layout.depth = static_cast<int>(data.prefetch());
    std::shared_ptr<const DbSource> shared = source;
    layout.make_reader = [shared](uint64_t) { return std::make_unique<DbRecordReader>(shared); };
    start_prefetching(layout, top);
  }

 private:
  // transform_param, with the legacy data_param fields (scale, mean_file, crop_size, mirror,
  // force_encoded_color) where transform_param does not set them.
  TransformationParameter transform_param() const {
    const DataParameter& data = param_.data_param();
    TransformationParameter transform = param_.transform_param();
    if (data.has_scale() && !transform.has_scale()) transform.set_scale(data.scale());
    if (data.has_mean_file() && !transform.has_mean_file()) {
      transform.set_mean_file(data.mean_file());
    }
    if (data.has_crop_size() && !transform.has_crop_size()) {
      transform.set_crop_size(data.crop_size());
    }
    if (data.has_mirror() && !transform.has_mirror()) transform.set_mirror(data.mirror());
    if (data.force_encoded_color() && !transform.has_force_color()) {
      transform.set_force_color(true);
    }
    return transform;
  }
};

}  // namespace

}  // namespace engine

ENGINE_LAYER_FACTORY(Data, DataLayer)
