// The ImageNet pipeline end to end on a synthetic ImageNet: data/synthetic_imagenet.sh (JPEG
// tree, convert_imageset, compute_image_mean), then `engine train` of models/alexnet itself --
// its train_val.prototxt with only the data paths and batch sizes changed, and a solver derived
// from its solver.prototxt -- for a few iterations with a validation round and a snapshot, and
// `engine test --stage=ten_crop` on that snapshot.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>

#include "data/datum.hpp"
#include "data/db.hpp"
#include "engine.pb.h"
#include "io/prototxt.hpp"

namespace engine {
namespace {

namespace fs = std::filesystem;

#define EXPECT_CONTAINS(text, part) \
  EXPECT_NE((text).find(part), std::string::npos) << "expected '" << (part) << "' in:\n" << (text)

constexpr int kClasses = 4, kTrainPerClass = 60, kValPerClass = 10;
const std::string kSource = ENGINE_SOURCE_DIR;
const std::string kBin = std::string(ENGINE_BINARY_DIR) + "/bin";

// Runs a shell command line; returns its exit code and fills `output` (stdout and stderr).
int run(const std::string& command, const fs::path& log, std::string* output) {
  const int status = std::system((command + " >" + log.string() + " 2>&1").c_str());
  *output = read_file(log.string());
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

// Replaces every `from` in `text`; returns how many there were.
int replace_all(std::string* text, const std::string& from, const std::string& to) {
  int count = 0;
  for (size_t at = text->find(from); at != std::string::npos; at = text->find(from, at)) {
    text->replace(at, from.size(), to);
    at += to.size();
    ++count;
  }
  return count;
}

// The numbers after every "NAME = " in a log.
std::vector<double> values(const std::string& log, const std::string& name) {
  std::vector<double> found;
  const std::regex pattern(name + " = ([-+0-9.eEnainf]+)");
  for (auto it = std::sregex_iterator(log.begin(), log.end(), pattern);
       it != std::sregex_iterator(); ++it) {
    found.push_back(std::strtod((*it)[1].str().c_str(), nullptr));
  }
  return found;
}

// Everything the tests share is made once: the data set takes a second, training the most.
class AlexNetPipeline : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = fs::temp_directory_path() / ("engine_alexnet_pipeline_" + std::to_string(::getpid()));
    fs::remove_all(dir_);
    fs::create_directories(dir_ / "snaps");
    script_status_ =
        run("ENGINE_BIN=" + kBin + " " + kSource + "/data/synthetic_imagenet.sh " +
                (dir_ / "imagenet").string() + " " + std::to_string(kClasses) + " " +
                std::to_string(kTrainPerClass) + " " + std::to_string(kValPerClass),
            dir_ / "script.log", &script_log_);
  }
  static void TearDownTestSuite() { fs::remove_all(dir_); }

  void SetUp() override { ASSERT_EQ(script_status_, 0) << script_log_; }

  static std::string data(const std::string& name) { return (dir_ / "imagenet" / name).string(); }

  // models/alexnet/train_val.prototxt reading the synthetic set, at small batches.
  static std::string train_val_text(int* path_count, int* batch_count) {
    std::string text = read_file(kSource + "/models/alexnet/train_val.prototxt");
    *path_count = replace_all(&text, "data/ilsvrc12/", data(""));
    *batch_count = replace_all(&text, "batch_size: 128 ", "batch_size: 8 ") +
                   replace_all(&text, "batch_size: 50 ", "batch_size: 8 ");
    return text;
  }

  static fs::path dir_;
  static int script_status_;
  static std::string script_log_;
};

fs::path AlexNetPipeline::dir_;
int AlexNetPipeline::script_status_ = -1;
std::string AlexNetPipeline::script_log_;

TEST_F(AlexNetPipeline, ScriptWritesAnImageNetShapedSet) {
  // The tree and its lists: ImageNet's layout, sides of 200-400 px before the resize.
  const std::vector<std::string> train = [] {
    std::vector<std::string> lines;
    std::istringstream list(read_file(data("train.txt")));
    for (std::string line; std::getline(list, line);) lines.push_back(line);
    return lines;
  }();
  ASSERT_EQ(train.size(), size_t(kClasses * kTrainPerClass));
  EXPECT_TRUE(std::regex_match(train[0], std::regex(R"(n\d{8}/n\d{8}_1\.JPEG 0)"))) << train[0];
  std::set<std::pair<int, int>> sizes;
  for (int i = 0; i < 12; ++i) {
    const std::string name = train[i * 20].substr(0, train[i * 20].find(' '));
    const cv::Mat image = cv::imread(data("train/" + name));
    ASSERT_FALSE(image.empty()) << name;
    EXPECT_GE(std::min(image.rows, image.cols), 200);
    EXPECT_LE(std::max(image.rows, image.cols), 400);
    sizes.insert({image.rows, image.cols});
  }
  EXPECT_GT(sizes.size(), 6u) << "the image sizes vary";
  EXPECT_TRUE(fs::exists(data("val/ILSVRC2012_val_00000040.JPEG")));

  // The content depends on the class: each validation image's mean colour is nearest to its
  // own class's mean training colour.
  std::map<int, cv::Scalar> class_colour;
  std::map<int, int> class_images;
  for (const std::string& line : train) {
    const int label = std::stoi(line.substr(line.rfind(' ') + 1));
    class_colour[label] += cv::mean(cv::imread(data("train/" + line.substr(0, line.rfind(' ')))));
    ++class_images[label];
  }
  std::istringstream val(read_file(data("val.txt")));
  int val_count = 0, nearest_right = 0;
  std::set<int> first_labels;
  for (std::string name; val >> name;) {
    int label = -1;
    val >> label;
    if (val_count < 8) first_labels.insert(label);
    const cv::Scalar colour = cv::mean(cv::imread(data("val/" + name)));
    int nearest = -1;
    double best = 1e300;
    for (const auto& [c, sum] : class_colour) {
      const double distance = cv::norm(colour - sum * (1.0 / class_images[c]));
      if (distance < best) best = distance, nearest = c;
    }
    nearest_right += nearest == label;
    ++val_count;
  }
  EXPECT_EQ(val_count, kClasses * kValPerClass);
  EXPECT_GE(nearest_right, val_count * 9 / 10);
  EXPECT_GT(first_labels.size(), 1u) << "validation images come in mixed class order";

  // The databases: training shuffled and encoded, validation in list order and raw, 256 x 256.
  std::set<int> train_labels_early;
  int records = 0;
  for (DbReader db(data("ilsvrc12_train_lmdb")); db.valid(); db.next(), ++records) {
    Datum datum;
    ASSERT_TRUE(datum.ParseFromArray(db.value().data(), static_cast<int>(db.value().size())));
    ASSERT_TRUE(datum.encoded()) << db.key();
    if (records < 8) train_labels_early.insert(datum.label());
    if (records == 0) {
      const cv::Mat image = datum_to_image(datum);
      EXPECT_EQ(image.rows, 256);
      EXPECT_EQ(image.cols, 256);
    }
  }
  EXPECT_EQ(records, kClasses * kTrainPerClass);
  EXPECT_GT(train_labels_early.size(), 1u) << "the training records are shuffled";
  records = 0;
  for (DbReader db(data("ilsvrc12_val_lmdb")); db.valid(); db.next(), ++records) {
    Datum datum;
    ASSERT_TRUE(datum.ParseFromArray(db.value().data(), static_cast<int>(db.value().size())));
    ASSERT_FALSE(datum.encoded());
    EXPECT_EQ(datum.channels(), 3);
    EXPECT_EQ(datum.height(), 256);
    EXPECT_EQ(datum.width(), 256);
    if (records == 0) {
      EXPECT_EQ(db.key(), "00000000_ILSVRC2012_val_00000001.JPEG");
    }
  }
  EXPECT_EQ(records, kClasses * kValPerClass);

  BlobProto mean;
  read_binary_file(data("imagenet_mean.binaryproto"), &mean);
  EXPECT_EQ(mean.data_size(), 3 * 256 * 256);
  EXPECT_EQ(mean.color_eigenvalues_size(), 3) << "the lighting noise needs the eigenvalues";
}

TEST_F(AlexNetPipeline, TheGeneratorIsDeterministic) {
  std::string log;
  for (const char* copy : {"a", "b"}) {
    ASSERT_EQ(run(kBin + "/make_synthetic_images " + (dir_ / copy).string() + " 3 2 1",
                  dir_ / "make.log", &log),
              0)
        << log;
  }
  int files = 0;
  for (const auto& entry : fs::recursive_directory_iterator(dir_ / "a")) {
    if (!entry.is_regular_file()) continue;
    const fs::path twin = dir_ / "b" / fs::relative(entry.path(), dir_ / "a");
    EXPECT_EQ(read_file(entry.path().string()), read_file(twin.string())) << twin;
    ++files;
  }
  EXPECT_EQ(files, 3 * 2 + 3 + 3) << "images, then train.txt, val.txt and synsets.txt";
}

TEST_F(AlexNetPipeline, TheTrainValDiffersOnlyInDataPathsAndBatchSizes) {
  int paths = 0, batches = 0;
  const std::string text = train_val_text(&paths, &batches);
  EXPECT_EQ(paths, 6) << "three sources and three mean files";
  EXPECT_EQ(batches, 2) << "the TRAIN and the single-crop TEST batch";
  NetParameter original, changed;
  read_text_file(kSource + "/models/alexnet/train_val.prototxt", &original);
  parse_text(text, "the changed train_val", &changed);
  ASSERT_EQ(original.layer_size(), changed.layer_size());
  const std::vector<std::pair<std::string, int>> expected = {
      {"ilsvrc12_train_lmdb", 8}, {"ilsvrc12_val_lmdb", 8}, {"ilsvrc12_val_lmdb", 10}};
  size_t data_layers = 0;
  for (int i = 0; i < changed.layer_size(); ++i) {
    LayerParameter* layer = changed.mutable_layer(i);
    LayerParameter* before = original.mutable_layer(i);
    if (layer->type() == "Data") {
      ASSERT_LT(data_layers, expected.size());
      EXPECT_EQ(layer->data_param().source(), data(expected[data_layers].first));
      EXPECT_EQ(layer->data_param().batch_size(), uint32_t(expected[data_layers].second));
      EXPECT_EQ(layer->transform_param().mean_file(), data("imagenet_mean.binaryproto"));
      ++data_layers;
      for (LayerParameter* l : {layer, before}) {
        l->mutable_data_param()->clear_source();
        l->mutable_data_param()->clear_batch_size();
        l->mutable_transform_param()->clear_mean_file();
      }
    }
    EXPECT_EQ(layer->DebugString(), before->DebugString()) << "layer " << i;
  }
  EXPECT_EQ(data_layers, expected.size());
  original.clear_layer();
  changed.clear_layer();
  EXPECT_EQ(changed.DebugString(), original.DebugString());
}

TEST_F(AlexNetPipeline, TrainsValidatesSnapshotsAndTestsTenCrops) {
  int paths = 0, batches = 0;
  write_file_atomic((dir_ / "train_val.prototxt").string(), train_val_text(&paths, &batches));

  SolverParameter solver;
  read_text_file(kSource + "/models/alexnet/solver.prototxt", &solver);
  solver.set_net((dir_ / "train_val.prototxt").string());
  solver.set_max_iter(4);
  solver.set_test_interval(4);
  solver.set_test_iter(0, 2);
  solver.set_display(1);
  solver.set_average_loss(1);
  solver.set_snapshot(4);
  solver.set_snapshot_prefix((dir_ / "snaps/alexnet").string());
  solver.set_random_seed(7);
  write_text_file(solver, (dir_ / "solver.prototxt").string());

  std::string log;
  ASSERT_EQ(run(kBin + "/engine train --solver=" + (dir_ / "solver.prototxt").string(),
                dir_ / "train.log", &log),
            0)
      << log;
  EXPECT_CONTAINS(log, "Iteration 3 (");
  EXPECT_CONTAINS(log, "Iteration 4, loss = ");
  const std::vector<double> losses = values(log, "images/s\\), loss");
  ASSERT_GE(losses.size(), 4u) << log;
  for (double loss : losses) {
    EXPECT_TRUE(std::isfinite(loss)) << log;
    EXPECT_GT(loss, 0);
  }
  EXPECT_CONTAINS(log, "Iteration 4, Testing net (#0)");
  const std::vector<double> accuracy = values(log, ": accuracy");
  const std::vector<double> top5 = values(log, ": accuracy_top5");
  ASSERT_FALSE(accuracy.empty()) << log;
  ASSERT_EQ(top5.size(), accuracy.size()) << log;
  for (size_t i = 0; i < accuracy.size(); ++i) {
    EXPECT_GE(accuracy[i], 0);
    EXPECT_LE(accuracy[i], top5[i]);
    EXPECT_LE(top5[i], 1);
  }
  const std::string snapshot = (dir_ / "snaps/alexnet_iter_4.caffemodel").string();
  EXPECT_CONTAINS(log, "Snapshotting to binary proto file " + snapshot);
  EXPECT_TRUE(fs::exists(dir_ / "snaps/alexnet_iter_4.solverstate"));
  EXPECT_CONTAINS(log, "Optimization Done.");

  // Ten crops of each of ten validation images, their predictions averaged per image.
  ASSERT_EQ(run(kBin + "/engine test --model=" + (dir_ / "train_val.prototxt").string() +
                    " --weights=" + snapshot + " --stage=ten_crop --iterations=1",
                dir_ / "test.log", &log),
            0)
      << log;
  const std::vector<double> ten_crop_accuracy = values(log, "\\baccuracy");
  const std::vector<double> ten_crop_top5 = values(log, "accuracy_top5");
  ASSERT_FALSE(ten_crop_accuracy.empty()) << log;
  ASSERT_FALSE(ten_crop_top5.empty()) << log;
  EXPECT_GE(ten_crop_accuracy.back(), 0);
  EXPECT_LE(ten_crop_accuracy.back(), 1);
  EXPECT_LE(ten_crop_top5.back(), 1);
  EXPECT_EQ(log.find("loss ="), std::string::npos) << "the ten-crop net has no loss layer";
  std::printf("ten-crop test of the snapshot on 10 images: accuracy %g, top-5 %g\n",
              ten_crop_accuracy.back(), ten_crop_top5.back());
}

}  // namespace
}  // namespace engine
