// ImageData layer: batches of image files listed in a text file of "path label" lines (the
// label after the last space, so paths may hold spaces), read with OpenCV (resized to
// new_height x new_width when given, colour or gray by is_color), through the DataTransformer,
// prefetched by the shared mechanism (data/prefetch.hpp; depth and threads from data_param, as
// Caffe takes prefetch from there). With shuffle, every epoch visits the list in a fresh
// permutation drawn from the layer's shuffle seed and the epoch number. Wraps around; rand_skip
// skips a random number of lines (below rand_skip) at the start. Tops: data and label.
#include <algorithm>
#include <memory>
#include <numeric>

#include "core/context.hpp"
#include "core/layer_registry.hpp"
#include "data/datum.hpp"
#include "data/image_list.hpp"
#include "data/prefetch.hpp"
#include "data/transformer.hpp"

namespace engine {

namespace {

struct ImageList {
  std::string owner;  // the layer's describe()
  std::string file;   // the list file
  std::string root;
  std::vector<std::string> paths;
  std::vector<int> labels;
  std::vector<int> line_numbers;
  bool shuffle = false;
  bool color = true;
  int height = 0, width = 0;
  std::shared_ptr<const DataTransformer> transformer;
  std::vector<int> slot_shape;

  std::string where(size_t entry) const {
    return file + ":" + std::to_string(line_numbers[entry]) + " (" + root + paths[entry] + ")";
  }
  cv::Mat read(size_t entry) const {
    try {
      return read_image(root + paths[entry], color, height, width);
    } catch (const std::exception&) {
      rethrow_for_record(owner, where(entry));
    }
  }
};

void read_list(ImageList* list) {
  try {
    for (ImageListEntry& entry : read_image_list(list->file)) {
      list->paths.push_back(std::move(entry.name));
      list->labels.push_back(entry.label);
      list->line_numbers.push_back(entry.line);
    }
  } catch (const Error& error) {
    ENGINE_FAIL(list->owner << ": " << error.what());
  }
  ENGINE_REQUIRE(!list->paths.empty(), list->owner << ": the image list " << list->file
                                                   << " names no images");
}

// One per prefetch thread; keeps the permutation of the epoch it is in.
class ImageRecordReader : public RecordReader {
 public:
  ImageRecordReader(std::shared_ptr<const ImageList> list, uint64_t shuffle_seed)
      : list_(std::move(list)), shuffle_seed_(shuffle_seed) {}

  int read(uint64_t record, float* out) override {
    const size_t entry = entry_of(record);
    const cv::Mat image = list_->read(entry);
    try {
      list_->transformer->transform(image, list_->slot_shape, out);
    } catch (const std::exception&) {
      rethrow_for_record(list_->owner, list_->where(entry));
    }
    return list_->labels[entry];
  }

  // The list entry read as record `record`.
  size_t entry_of(uint64_t record) {
    const uint64_t size = list_->paths.size();
    if (!list_->shuffle) return record % size;
    const uint64_t epoch = record / size;
    if (epoch != epoch_ || order_.empty()) {
      order_.resize(size);
      std::iota(order_.begin(), order_.end(), 0);
      std::mt19937 rng(batch_seed(shuffle_seed_, epoch));
      std::shuffle(order_.begin(), order_.end(), rng);
      epoch_ = epoch;
    }
    return order_[record % size];
  }

 private:
  std::shared_ptr<const ImageList> list_;
  uint64_t shuffle_seed_;
  uint64_t epoch_ = 0;
  std::vector<size_t> order_;
};

class ImageDataLayer : public PrefetchingDataLayer {
 public:
  using PrefetchingDataLayer::PrefetchingDataLayer;
  int exact_tops() const override { return 2; }

 protected:
  void layer_setup(const Blobs& bottom, const Blobs& top) override {
    const ImageDataParameter& image = param_.image_data_param();
    LAYER_REQUIRE(!image.source().empty(), "image_data_param.source (the list file) is not given");
    LAYER_REQUIRE(image.batch_size() > 0, "image_data_param.batch_size must be positive");
    LAYER_REQUIRE((image.new_height() == 0) == (image.new_width() == 0),
                  "give new_height and new_width together (found " << image.new_height() << " and "
                                                                    << image.new_width() << ")");
    LAYER_REQUIRE(param_.data_param().prefetch() > 0, "data_param.prefetch must be positive");

    auto list = std::make_shared<ImageList>();
    list->owner = describe();
    list->file = image.source();
    list->root = image.root_folder();
    list->shuffle = image.shuffle();
    list->color = image.is_color();
    list->height = static_cast<int>(image.new_height());
    list->width = static_cast<int>(image.new_width());
    list->transformer =
        std::make_shared<const DataTransformer>(transform_param(), param_.phase(), describe());
    read_list(list.get());

    const uint64_t first_record =
        image.rand_skip() > 0 ? Context::rng()() % image.rand_skip() : 0;
    // The first image in reading order shapes the tops.
    const size_t entry = ImageRecordReader(list, shuffle_seed()).entry_of(first_record);
    const cv::Mat sample = list->read(entry);
    try {
      list->slot_shape = list->transformer->slot_shape(sample.channels(), sample.rows, sample.cols);
    } catch (const std::exception&) {
      rethrow_for_record(describe(), list->where(entry));
    }

    Layout layout;
    layout.batch_size = static_cast<int>(image.batch_size());
    layout.crops_per_image = list->transformer->crops_per_image();
    layout.slot_shape = list->slot_shape;
    layout.first_record = first_record;
    layout.threads = prefetch_threads(param_.data_param().threads());
    layout.depth = static_cast<int>(param_.data_param().prefetch());
    std::shared_ptr<const ImageList> shared = list;
    layout.make_reader = [shared](uint64_t shuffle_seed) {
      return std::make_unique<ImageRecordReader>(shared, shuffle_seed);
    };
    start_prefetching(layout, top);
  }

 private:
  TransformationParameter transform_param() const {
    const ImageDataParameter& image = param_.image_data_param();
    TransformationParameter transform = param_.transform_param();
    if (image.has_scale() && !transform.has_scale()) transform.set_scale(image.scale());
    if (image.has_mean_file() && !transform.has_mean_file()) {
      transform.set_mean_file(image.mean_file());
    }
    if (image.has_crop_size() && !transform.has_crop_size()) {
      transform.set_crop_size(image.crop_size());
    }
    if (image.has_mirror() && !transform.has_mirror()) transform.set_mirror(image.mirror());
    return transform;
  }
};

}  // namespace

}  // namespace engine

ENGINE_LAYER_FACTORY(ImageData, ImageDataLayer)
