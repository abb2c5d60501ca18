// Data and ImageData layers, the prefetcher under them, and the solver's resume of their
// positions. Databases and images are made in a temporary folder.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <set>
#include <thread>
#include <opencv2/imgcodecs.hpp>

#include "core/context.hpp"
#include "core/layer_registry.hpp"
#include "data/datum.hpp"
#include "data/db.hpp"
#include "data/prefetch.hpp"
#include "gradient_checker.hpp"
#include "io/prototxt.hpp"
#include "solvers/solver.hpp"

namespace engine {
namespace {

namespace fs = std::filesystem;
using testing::contains;
using testing::data_of;
using testing::layer_param;

std::string key_of(int index, const std::string& name = "img") {
  char buffer[16];
  std::snprintf(buffer, sizeof(buffer), "%08d", index);
  return std::string(buffer) + "_" + name;
}

// A gray height x width record whose pixels all equal `value`, labelled `value`.
Datum gray_datum(int value, int height = 2, int width = 2) {
  cv::Mat image(height, width, CV_8UC1, cv::Scalar(value));
  Datum datum;
  image_to_datum(image, value, &datum);
  return datum;
}

struct Output {
  std::vector<float> data, labels;
  bool operator==(const Output& other) const {
    return data == other.data && labels == other.labels;
  }
};

class DataLayerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("engine_data_" + std::to_string(getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    Context::set_seed(1701);
  }
  void TearDown() override { fs::remove_all(dir_); }

  // `count` gray 2 x 2 records, record i all pixels i, label i.
  std::string make_db(int count, const std::string& name = "db") {
    const std::string path = (dir_ / name).string();
    DbWriter writer(path);
    for (int i = 0; i < count; ++i) writer.put(key_of(i), gray_datum(i).SerializeAsString());
    writer.commit();
    return path;
  }

  // `count` gray side x side records whose pixel p of record i is record_step * i + pixel_step * p
  // (distinct pixels: any difference in records, crops or mirrors shows), labelled i % classes.
  std::string make_pixel_db(int count, int side, int record_step, int pixel_step, int classes) {
    const std::string path = (dir_ / "db").string();
    DbWriter writer(path);
    for (int i = 0; i < count; ++i) {
      cv::Mat image(side, side, CV_8UC1);
      for (int p = 0; p < side * side; ++p) {
        image.at<uint8_t>(p / side, p % side) =
            static_cast<uint8_t>(record_step * i + pixel_step * p);
      }
      Datum datum;
      image_to_datum(image, i % classes, &datum);
      writer.put(key_of(i), datum.SerializeAsString());
    }
    writer.commit();
    return path;
  }

  LayerPtr data_layer(const std::string& source, const std::string& extra,
                      bool with_label = true) {
    return create_layer(layer_param(
        "name: 'data' type: 'Data' top: 'data' " + std::string(with_label ? "top: 'label' " : "") +
        "data_param { source: '" + source + "' backend: LMDB " + extra + " }"));
  }

  void setup(Layer& layer) { layer.setup({}, {&data_, &label_}); }
  Output next(Layer& layer) {
    layer.forward({}, {&data_, &label_});
    return {data_of(data_), data_of(label_)};
  }
  std::vector<float> labels_of(Layer& layer, int batches) {
    std::vector<float> labels;
    for (int b = 0; b < batches; ++b) {
      const Output out = next(layer);
      labels.insert(labels.end(), out.labels.begin(), out.labels.end());
    }
    return labels;
  }

  fs::path dir_;
  Blob data_, label_;
};

TEST_F(DataLayerTest, ShapesFromTheFirstRecordAndReadsInKeyOrderWrappingAround) {
  const std::string db = make_db(5);
  LayerPtr layer = data_layer(db, "batch_size: 2 threads: 1");
  setup(*layer);
  EXPECT_EQ(data_.shape(), (std::vector<int>{2, 1, 2, 2}));
  EXPECT_EQ(label_.shape(), (std::vector<int>{2}));
  const Output first = next(*layer);
  EXPECT_EQ(first.data, (std::vector<float>{0, 0, 0, 0, 1, 1, 1, 1}));
  EXPECT_EQ(first.labels, (std::vector<float>{0, 1}));
  // Two epochs and a bit: 2,3 | 4,0 | 1,2 | 3,4 | 0,1
  EXPECT_EQ(labels_of(*layer, 5), (std::vector<float>{2, 3, 4, 0, 1, 2, 3, 4, 0, 1}));
}

TEST_F(DataLayerTest, LabelTopIsOptional) {
  const std::string db = make_db(3);
  LayerPtr layer = data_layer(db, "batch_size: 3", false);
  layer->setup({}, {&data_});
  layer->forward({}, {&data_});
  EXPECT_EQ(data_of(data_), (std::vector<float>{0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2}));
}

TEST_F(DataLayerTest, BatchesDoNotDependOnTheThreadCount) {
  // Random crops and mirrors of distinct pixels, so any difference in records or draws shows.
  const std::string path = make_pixel_db(7, 4, 16, 1, 7);
  std::vector<std::vector<Output>> runs;
  for (int threads : {1, 3}) {
    Context::set_seed(42);
    LayerPtr layer = create_layer(layer_param(
        "name: 'data' type: 'Data' top: 'data' top: 'label' phase: TRAIN "
        "transform_param { crop_size: 2 mirror: true } "
        "data_param { source: '" + path + "' backend: LMDB batch_size: 3 prefetch: 2 threads: " +
        std::to_string(threads) + " }"));
    setup(*layer);
    runs.emplace_back();
    for (int b = 0; b < 6; ++b) runs.back().push_back(next(*layer));
  }
  ASSERT_EQ(runs[0].size(), runs[1].size());
  for (size_t b = 0; b < runs[0].size(); ++b) {
    EXPECT_TRUE(runs[0][b] == runs[1][b]) << "batch " << b;
  }
  EXPECT_FALSE(runs[0][0].data == runs[0][3].data) << "augmentation should vary";
}

TEST_F(DataLayerTest, RandSkipStartsBelowItThenContinuesInOrder) {
  const std::string db = make_db(10);
  std::set<float> starts;
  for (unsigned seed = 1; seed <= 6; ++seed) {
    Context::set_seed(seed);
    LayerPtr layer = data_layer(db, "batch_size: 4 rand_skip: 5");
    setup(*layer);
    const std::vector<float> labels = labels_of(*layer, 1);
    EXPECT_LT(labels[0], 5);
    for (int i = 1; i < 4; ++i) EXPECT_EQ(labels[i], std::fmod(labels[0] + i, 10.0f));
    starts.insert(labels[0]);
  }
  EXPECT_GT(starts.size(), 1u) << "the skip should be random";
}

TEST_F(DataLayerTest, EncodedColourRecordsAndTenCrops) {
  const std::string path = (dir_ / "db").string();
  {
    DbWriter writer(path);
    for (int i = 0; i < 2; ++i) {
      cv::Mat image(3, 4, CV_8UC3, cv::Scalar(i, 10 + i, 20 + i));
      std::vector<uint8_t> png;
      ASSERT_TRUE(cv::imencode(".png", image, png));
      Datum datum;
      datum.set_encoded(true);
      datum.set_label(7 + i);
      datum.set_data(std::string(png.begin(), png.end()));
      writer.put(key_of(i), datum.SerializeAsString());
    }
  }
  LayerPtr layer = create_layer(layer_param(
      "name: 'data' type: 'Data' top: 'data' top: 'label' phase: TEST "
      "transform_param { crop_size: 2 ten_crop: true } "
      "data_param { source: '" + path + "' backend: LMDB batch_size: 2 }"));
  setup(*layer);
  EXPECT_EQ(data_.shape(), (std::vector<int>{20, 3, 2, 2}));
  const Output out = next(*layer);
  EXPECT_EQ(label_.shape(), (std::vector<int>{2}));
  EXPECT_EQ(out.labels, (std::vector<float>{7, 8})) << "one label per image, not per crop";
  // Crop 13 of the batch is image 1's fourth crop: channel 1 is all 11.
  EXPECT_EQ(out.data[13 * 12 + 4], 11.0f);
}

TEST_F(DataLayerTest, RecordOfAnotherSizeFailsWithItsKeyAndBothSizes) {
  const std::string path = (dir_ / "db").string();
  {
    DbWriter writer(path);
    writer.put(key_of(0), gray_datum(0).SerializeAsString());
    writer.put(key_of(1), gray_datum(1).SerializeAsString());
    writer.put(key_of(2, "odd"), gray_datum(2, 3, 3).SerializeAsString());
  }
  LayerPtr layer = data_layer(path, "batch_size: 1 threads: 2");
  setup(*layer);
  next(*layer);
  next(*layer);
  try {
    next(*layer);
    FAIL() << "expected an error";
  } catch (const Error& error) {
    const std::string message = error.what();
    EXPECT_TRUE(contains(message, "layer data (Data): record '00000002_odd' of " + path));
    EXPECT_TRUE(contains(message, "an image of 1 x 3 x 3"));
    EXPECT_TRUE(contains(message, "the batch holds 1 x 2 x 2"));
  }
  // The failure stays put rather than hanging or skipping the record.
  EXPECT_THROW(next(*layer), Error);
}

// The writer starts with a 64 MB map and doubles it when a batch does not fit (Caffe reserves
// 1 TB, which `ulimit -v` refuses); 96 records of 1 MB need two doublings.
TEST_F(DataLayerTest, DatabaseGrowsPastItsFirstMap) {
  const std::string path = (dir_ / "big").string();
  constexpr int kRecords = 96;
  {
    DbWriter writer(path);
    for (int i = 0; i < kRecords; ++i) {
      writer.put(key_of(i), std::string(1 << 20, char('a' + i % 26)));
    }
  }
  DbReader reader(path);
  EXPECT_EQ(reader.entries(), size_t(kRecords));
  for (int i = 0; i < kRecords; ++i, reader.next()) {
    ASSERT_TRUE(reader.valid());
    EXPECT_EQ(reader.key(), key_of(i));
    EXPECT_EQ(reader.value(), std::string(1 << 20, char('a' + i % 26)));
  }
}

TEST_F(DataLayerTest, CorruptRecordsFailWithTheirKey) {
  const std::string path = (dir_ / "db").string();
  {
    DbWriter writer(path);
    writer.put(key_of(0), gray_datum(0).SerializeAsString());
    Datum broken;
    broken.set_encoded(true);
    broken.set_data("not an image at all");
    writer.put(key_of(1, "broken"), broken.SerializeAsString());
    writer.put(key_of(2, "garbage"), std::string("\xff\xff\xff\xff", 4));
  }
  LayerPtr layer = data_layer(path, "batch_size: 1");
  setup(*layer);
  next(*layer);
  try {
    next(*layer);
    FAIL() << "expected an error";
  } catch (const Error& error) {
    EXPECT_TRUE(contains(error.what(), "record '00000001_broken'"));
    EXPECT_TRUE(contains(error.what(), "does not decode"));
  }

  // A value that is no Datum at all, as the first record: setup fails.
  const std::string garbage = (dir_ / "garbage").string();
  {
    DbWriter writer(garbage);
    writer.put(key_of(0, "garbage"), std::string("\xff\xff\xff\xff", 4));
  }
  LayerPtr bad = data_layer(garbage, "batch_size: 1");
  const std::string message = testing::setup_error(*bad, {}, {&data_, &label_});
  EXPECT_TRUE(contains(message, "record '00000000_garbage' of " + garbage));
  EXPECT_TRUE(contains(message, "not a serialized Datum"));
}

TEST_F(DataLayerTest, BadParametersAreNamed) {
  const std::string db = make_db(2);
  LayerPtr leveldb = create_layer(layer_param(
      "name: 'data' type: 'Data' top: 'data' data_param { source: '" + db +
      "' backend: LEVELDB batch_size: 1 }"));
  EXPECT_TRUE(contains(testing::setup_error(*leveldb, {}, {&data_}),
                       "layer data (Data): backend LEVELDB is not supported, only LMDB"));
  LayerPtr missing = data_layer((dir_ / "nothing").string(), "batch_size: 1");
  EXPECT_TRUE(contains(testing::setup_error(*missing, {}, {&data_, &label_}),
                       "no such LMDB database"));
  LayerPtr no_batch = data_layer(db, "");
  EXPECT_TRUE(contains(testing::setup_error(*no_batch, {}, {&data_, &label_}),
                       "batch_size must be positive"));
  LayerPtr crop = create_layer(layer_param("name: 'data' type: 'Data' top: 'data' "
                                  "transform_param { crop_size: 3 } data_param { source: '" +
                                  db + "' backend: LMDB batch_size: 1 }"));
  const std::string message = testing::setup_error(*crop, {}, {&data_});
  EXPECT_TRUE(contains(message, "record '00000000_img'"));
  EXPECT_TRUE(contains(message, "crop_size 3 is larger than the image (1 x 2 x 2)"));
}

TEST_F(DataLayerTest, DestroyingTheLayerWithBatchesPendingDoesNotHang) {
  const std::string db = make_db(40);
  const auto start = std::chrono::steady_clock::now();
  for (int round = 0; round < 20; ++round) {
    LayerPtr layer = data_layer(db, "batch_size: 4 prefetch: 3 threads: 3");
    setup(*layer);
    if (round % 2) next(*layer);  // some rounds mid-way, some before the first batch
  }
  EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count(), 5.0);
}

TEST_F(DataLayerTest, SavedStateResumesTheSameBatches) {
  const std::string path = make_pixel_db(5, 3, 10, 1, 5);
  const std::string text =
      "name: 'data' type: 'Data' top: 'data' top: 'label' phase: TRAIN "
      "transform_param { crop_size: 2 mirror: true } "
      "data_param { source: '" + path + "' backend: LMDB batch_size: 2 rand_skip: 4 threads: 2 }";
  LayerPtr original = create_layer(layer_param(text));
  setup(*original);
  for (int b = 0; b < 3; ++b) next(*original);
  std::string state;
  ASSERT_TRUE(original->save_state(&state));
  std::vector<Output> expected;
  for (int b = 0; b < 4; ++b) expected.push_back(next(*original));

  Context::set_seed(999);  // another seed: the state must carry everything
  LayerPtr resumed = create_layer(layer_param(text));
  setup(*resumed);
  next(*resumed);
  resumed->restore_state(state);
  for (int b = 0; b < 4; ++b) EXPECT_TRUE(next(*resumed) == expected[b]) << "batch " << b;

  LayerPtr other = create_layer(layer_param("name: 'ip' type: 'ReLU' bottom: 'x' top: 'x'"));
  EXPECT_FALSE(other->save_state(&state));
}

// ---- the prefetcher alone ------------------------------------------------------------------

TEST(Prefetcher, HandsOutBatchesInOrderAndRethrowsAFailureAtItsPlace) {
  Prefetcher prefetcher(3, 2, {{1}}, [](int worker, uint64_t index, Batch* batch,
                                        const std::atomic<bool>&) {
    // Uneven work, so that threads finish out of order.
    std::this_thread::sleep_for(std::chrono::microseconds((index * 7919) % 300));
    if (index == 40) throw Error("batch 40 is broken");
    batch->blobs[0].mutable_cpu_data()[0] = static_cast<float>(index);
  });
  prefetcher.start(5);
  for (uint64_t index = 5; index < 40; ++index) {
    EXPECT_EQ(prefetcher.acquire().blobs[0].cpu_data()[0], static_cast<float>(index));
    prefetcher.release();
  }
  for (int again = 0; again < 2; ++again) {
    try {
      prefetcher.acquire();
      FAIL() << "expected the producer's error";
    } catch (const Error& error) {
      EXPECT_STREQ(error.what(), "batch 40 is broken");
    }
  }
  // Restarting elsewhere forgets the failure; stop() with full slots and blocked workers
  // returns.
  prefetcher.stop();
  prefetcher.start(100);
  EXPECT_EQ(prefetcher.acquire().blobs[0].cpu_data()[0], 100.0f);
  prefetcher.release();
  std::this_thread::sleep_for(std::chrono::milliseconds(5));
  prefetcher.stop();
}

// try_acquire (the GPU path's look-ahead) never blocks: null until the next batch in order is
// ready, the batch once it is, null for a failed batch (whose error acquire() then rethrows).
TEST(Prefetcher, TryAcquireTakesOnlyAReadyBatch) {
  std::atomic<bool> go{false};
  Prefetcher prefetcher(1, 2, {{1}}, [&](int, uint64_t index, Batch* batch,
                                         const std::atomic<bool>& cancelled) {
    while (!go && !cancelled) std::this_thread::yield();
    if (index == 2) throw Error("batch 2 is broken");
    batch->blobs[0].mutable_cpu_data()[0] = static_cast<float>(index);
  });
  EXPECT_EQ(prefetcher.slot_blobs().size(), 2u);
  prefetcher.start(0);
  EXPECT_EQ(prefetcher.try_acquire(), nullptr);
  go = true;
  const Batch* batch = nullptr;
  while (!(batch = prefetcher.try_acquire())) std::this_thread::yield();
  EXPECT_EQ(batch->blobs[0].cpu_data()[0], 0.0f);
  EXPECT_EQ(prefetcher.next(), 0u);  // held, not yet consumed
  prefetcher.release();
  EXPECT_EQ(prefetcher.acquire().blobs[0].cpu_data()[0], 1.0f);
  prefetcher.release();
  // Batch 2 fails: try_acquire leaves it to acquire(), which reports it.
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  EXPECT_EQ(prefetcher.try_acquire(), nullptr);
  EXPECT_THROW(prefetcher.acquire(), Error);
  prefetcher.stop();
}

// ---- ImageData --------------------------------------------------------------------------------

class ImageDataLayerTest : public DataLayerTest {
 protected:
  // `count` gray 2 x 3 PNGs, image i all pixels 10 i, listed with label i.
  std::string make_list(int count, const std::string& extra_line = "") {
    std::ofstream list(dir_ / "list.txt");
    for (int i = 0; i < count; ++i) {
      const std::string name = "image " + std::to_string(i) + ".png";
      cv::imwrite((dir_ / name).string(), cv::Mat(2, 3, CV_8UC1, cv::Scalar(10 * i)));
      list << name << " " << i << "\n";
      if (i == 0 && !extra_line.empty()) list << extra_line << "\n";
    }
    return (dir_ / "list.txt").string();
  }
  LayerPtr image_layer(const std::string& list, const std::string& extra,
                       const std::string& outside = "") {
    return create_layer(layer_param("name: 'images' type: 'ImageData' top: 'data' top: 'label' "
                                    "image_data_param { source: '" + list + "' root_folder: '" +
                                    dir_.string() + "/' " + extra + " } " + outside));
  }
};

TEST_F(ImageDataLayerTest, ReadsTheListInOrderWithLabelsAndWrapsAround) {
  const std::string list = make_list(3);
  LayerPtr layer = image_layer(list, "batch_size: 2 is_color: false");
  setup(*layer);
  EXPECT_EQ(data_.shape(), (std::vector<int>{2, 1, 2, 3}));
  const Output first = next(*layer);
  EXPECT_EQ(first.data, (std::vector<float>{0, 0, 0, 0, 0, 0, 10, 10, 10, 10, 10, 10}));
  EXPECT_EQ(labels_of(*layer, 2), (std::vector<float>{2, 0, 1, 2}));

  LayerPtr resized = image_layer(list, "batch_size: 1 new_height: 4 new_width: 5");
  setup(*resized);
  EXPECT_EQ(data_.shape(), (std::vector<int>{1, 3, 4, 5}));
}

TEST_F(ImageDataLayerTest, ShuffleVisitsEveryImageOncePerEpochInAFreshOrder) {
  const std::string list = make_list(8);
  std::vector<std::vector<float>> runs;
  for (int threads : {1, 2}) {
    Context::set_seed(5);
    LayerPtr layer = image_layer(list, "batch_size: 4 shuffle: true",
                                 "data_param { prefetch: 2 threads: " + std::to_string(threads) +
                                     " }");
    setup(*layer);
    runs.push_back(labels_of(*layer, 6));  // three epochs
  }
  EXPECT_EQ(runs[0], runs[1]) << "the order must not depend on the thread count";
  std::vector<std::vector<float>> epochs;
  for (int e = 0; e < 3; ++e) {
    epochs.emplace_back(runs[0].begin() + 8 * e, runs[0].begin() + 8 * (e + 1));
    std::vector<float> sorted = epochs.back();
    std::sort(sorted.begin(), sorted.end());
    EXPECT_EQ(sorted, (std::vector<float>{0, 1, 2, 3, 4, 5, 6, 7})) << "epoch " << e;
  }
  EXPECT_NE(epochs[0], epochs[1]);
  EXPECT_NE(epochs[1], epochs[2]);
  EXPECT_NE(epochs[0], (std::vector<float>{0, 1, 2, 3, 4, 5, 6, 7}));
}

TEST_F(ImageDataLayerTest, ErrorsNameTheListLine) {
  const std::string bad_line = make_list(2, "no_label_here.png");
  LayerPtr layer = image_layer(bad_line, "batch_size: 1");
  std::string message = testing::setup_error(*layer, {}, {&data_, &label_});
  EXPECT_TRUE(
      contains(message, "layer images (ImageData): " + bad_line + ":2: expected 'FILE LABEL'"));

  const std::string missing = make_list(2, "missing.png 5");
  layer = image_layer(missing, "batch_size: 1");
  setup(*layer);
  next(*layer);
  try {
    next(*layer);
    FAIL() << "expected an error";
  } catch (const Error& error) {
    EXPECT_TRUE(contains(error.what(), missing + ":2 (" + dir_.string() + "/missing.png)"));
    EXPECT_TRUE(contains(error.what(), "cannot read the image"));
  }

  layer = image_layer(missing, "batch_size: 1 new_height: 4");
  EXPECT_TRUE(contains(testing::setup_error(*layer, {}, {&data_, &label_}),
                       "give new_height and new_width together"));
}

// ---- the solver's resume ---------------------------------------------------------------------

TEST_F(DataLayerTest, SolverResumeContinuesTheDataExactly) {
  const std::string path = make_pixel_db(7, 3, 20, 3, 3);
  SolverParameter param;
  parse_text(
      "base_lr: 0.05 lr_policy: 'fixed' momentum: 0.9 max_iter: 6 snapshot: 3 random_seed: 3 "
      "type: 'SGD' display: 0 snapshot_prefix: '" + (dir_ / "snap").string() + "' "
      "net_param { name: 'n' "
      "  layer { name: 'data' type: 'Data' top: 'data' top: 'label' "
      "    transform_param { crop_size: 2 mirror: true scale: 0.01 } "
      "    data_param { source: '" + path + "' backend: LMDB batch_size: 2 threads: 2 } } "
      "  layer { name: 'ip' type: 'InnerProduct' bottom: 'data' top: 'ip' "
      "    inner_product_param { num_output: 3 weight_filler { type: 'gaussian' std: 0.1 } } } "
      "  layer { name: 'loss' type: 'SoftmaxWithLoss' bottom: 'ip' bottom: 'label' top: 'loss' } }",
      "<test>", &param);
  const std::string final_model = (dir_ / "snap_iter_6.caffemodel").string();
  make_solver(param)->solve();
  const std::string straight = read_file(final_model);
  fs::remove(final_model);

  make_solver(param)->solve((dir_ / "snap_iter_3.solverstate").string());
  EXPECT_TRUE(read_file(final_model) == straight) << "the resumed run's weights differ";

  SolverState state;
  read_binary_file((dir_ / "snap_iter_3.solverstate").string(), &state);
  ASSERT_EQ(state.layer_state_size(), 1);
  EXPECT_EQ(state.layer_state(0).layer(), "data");
  DataLayerState position;
  ASSERT_TRUE(position.ParseFromString(state.layer_state(0).state()));
  EXPECT_EQ(position.next_batch(), 3u);
  EXPECT_EQ(position.next_record(), 6u);
}

}  // namespace
}  // namespace engine
