#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "core/layer_registry.hpp"
#include "gradient_checker.hpp"

namespace engine {
namespace {

using namespace testing;

// Runs an Accuracy layer configured by `accuracy_param` and returns top 0.
float accuracy(Blob& scores, Blob& labels, const std::string& accuracy_param,
               Blob* per_class = nullptr) {
  LayerPtr layer = create_layer(
      layer_param("name: 'acc' type: 'Accuracy' accuracy_param { " + accuracy_param + " }"));
  Blob top;
  Blobs tops = {&top};
  if (per_class) tops.push_back(per_class);
  layer->setup({&scores, &labels}, tops);
  EXPECT_EQ(layer->loss(0), 0.0f) << "a metric, not a loss";
  layer->forward({&scores, &labels}, tops);
  EXPECT_EQ(top.num_axes(), 0);
  return top.cpu_data()[0];
}

// Five samples, four classes. Ranks of the true class (1 = best):
//   sample 0: scores (0.1, 0.7, 0.15, 0.05) label 1  -> rank 1
//   sample 1: scores (0.4, 0.3, 0.2, 0.1)   label 2  -> rank 3
//   sample 2: scores (0.2, 0.1, 0.15, 0.4)  label 0  -> rank 2
//   sample 3: scores (0.25, 0.25, 0.25, 0.25) label 3 -> three ties count against it: rank 4
//   sample 4: scores (0.5, 0.1, 0.2, 0.2)   label 3  -> the tie with class 2 counts: rank 3
class AccuracyByHand : public ::testing::Test {
 protected:
  void SetUp() override {
    set_blob(scores_, {5, 4}, {0.1f,  0.7f, 0.15f, 0.05f, 0.4f,  0.3f,  0.2f, 0.1f, 0.2f, 0.1f,
                               0.15f, 0.4f, 0.25f, 0.25f, 0.25f, 0.25f, 0.5f, 0.1f, 0.2f, 0.2f});
    set_blob(labels_, {5}, {1, 2, 0, 3, 3});
  }
  Blob scores_, labels_;
};

TEST_F(AccuracyByHand, TopOne) {
  // Only sample 0: the all-tied sample 3 is wrong, since ties count against the label.
  EXPECT_FLOAT_EQ(accuracy(scores_, labels_, ""), 1.0f / 5);
}

TEST_F(AccuracyByHand, TopTwoAndThree) {
  // Top 2 adds sample 2; top 3 adds samples 1 and 4; top 4 all.
  EXPECT_FLOAT_EQ(accuracy(scores_, labels_, "top_k: 2"), 2.0f / 5);
  EXPECT_FLOAT_EQ(accuracy(scores_, labels_, "top_k: 3"), 4.0f / 5);
  EXPECT_FLOAT_EQ(accuracy(scores_, labels_, "top_k: 4"), 1.0f);
}

TEST_F(AccuracyByHand, TiesCountAgainstTheLabel) {
  // All four scores equal: every label has three classes scoring as high.
  Blob scores, labels;
  set_blob(scores, {4, 4}, std::vector<float>(16, 1.0f));
  set_blob(labels, {4}, {0, 1, 2, 3});
  EXPECT_FLOAT_EQ(accuracy(scores, labels, "top_k: 1"), 0.0f);
  EXPECT_FLOAT_EQ(accuracy(scores, labels, "top_k: 3"), 0.0f);
  EXPECT_FLOAT_EQ(accuracy(scores, labels, "top_k: 4"), 1.0f);
  // A tie counts against the label whichever class index it has.
  set_blob(scores, {1, 3}, {2, 2, 1});
  for (float label : {0.0f, 1.0f}) {
    set_blob(labels, {1}, {label});
    EXPECT_FLOAT_EQ(accuracy(scores, labels, ""), 0.0f);
    EXPECT_FLOAT_EQ(accuracy(scores, labels, "top_k: 2"), 1.0f);
  }
}

TEST_F(AccuracyByHand, IgnoreLabelLeavesSamplesOut) {
  // Ignoring label 3 leaves samples 0, 1, 2: top 1 gets sample 0 only.
  EXPECT_FLOAT_EQ(accuracy(scores_, labels_, "ignore_label: 3"), 1.0f / 3);
  EXPECT_FLOAT_EQ(accuracy(scores_, labels_, "ignore_label: 3 top_k: 2"), 2.0f / 3);
  // Everything ignored: 0 (Caffe 1.0 would divide 0 by 0).
  Blob all_ignored;
  set_blob(all_ignored, {5}, {3, 3, 3, 3, 3});
  EXPECT_EQ(accuracy(scores_, all_ignored, "ignore_label: 3"), 0.0f);
}

TEST_F(AccuracyByHand, PerClassSecondTop) {
  Blob per_class;
  EXPECT_FLOAT_EQ(accuracy(scores_, labels_, "", &per_class), 1.0f / 5);
  ASSERT_EQ(per_class.shape(), (std::vector<int>{4}));
  // Class 0: sample 2 wrong. Class 1: sample 0 right. Class 2: sample 1 wrong.
  // Class 3: samples 3 and 4 wrong.
  EXPECT_EQ(data_of(per_class), (std::vector<float>{0, 1, 0, 0}));

  EXPECT_FLOAT_EQ(accuracy(scores_, labels_, "top_k: 3 ignore_label: 1", &per_class), 3.0f / 4);
  // Class 1 has no samples left: 0. Class 3: sample 4 right, sample 3 wrong.
  EXPECT_EQ(data_of(per_class), (std::vector<float>{1, 0, 1, 0.5f}));
}

TEST(AccuracyLayer, SpatialLabelsAlongAnAxis) {
  // Scores [1, 3, 2] (classes on axis 1, two locations); labels [1, 2].
  // Location 0 scores (1, 5, 2) label 1: right. Location 1 scores (4, 0, 3) label 2: wrong.
  Blob scores, labels;
  set_blob(scores, {1, 3, 2}, {1, 4, 5, 0, 2, 3});
  set_blob(labels, {1, 2}, {1, 2});
  EXPECT_FLOAT_EQ(accuracy(scores, labels, ""), 0.5f);
  EXPECT_FLOAT_EQ(accuracy(scores, labels, "top_k: 2"), 1.0f);

  // With the classes on the last axis: rows (1, 4), (5, 0), (2, 3) with labels (1, 0, 0).
  Blob row_labels;
  set_blob(row_labels, {1, 3}, {1, 0, 0});
  EXPECT_FLOAT_EQ(accuracy(scores, row_labels, "axis: -1"), 2.0f / 3);
  EXPECT_FLOAT_EQ(accuracy(scores, row_labels, "axis: 2"), 2.0f / 3);
}

// Expects setup or forward to fail with a message that names the layer and holds parts.
void expect_accuracy_error(const std::string& accuracy_param, Blob& scores, Blob& labels,
                           std::vector<std::string> parts) {
  LayerPtr layer = create_layer(
      layer_param("name: 'top5' type: 'Accuracy' accuracy_param { " + accuracy_param + " }"));
  Blob top;
  parts.push_back("layer top5 (Accuracy)");
  expect_error(
      [&] {
        layer->setup({&scores, &labels}, {&top});
        layer->forward({&scores, &labels}, {&top});
      },
      parts);
}

TEST(AccuracyLayer, BadParametersAndLabelsNameTheLayer) {
  Blob scores({2, 3}), labels;
  set_blob(labels, {2}, {0, 3});
  expect_accuracy_error("", scores, labels, {"label 3 of sample 1", "outside [0, 3)"});
  set_blob(labels, {2}, {-2, 0});
  expect_accuracy_error("ignore_label: -1", scores, labels, {"label -2 of sample 0"});
  set_blob(labels, {2}, {0, 1});
  expect_accuracy_error("top_k: 4", scores, labels, {"top_k (4)", "number of classes (3)"});
  expect_accuracy_error("top_k: 0", scores, labels, {"top_k must be at least 1"});
  expect_accuracy_error("axis: 2", scores, labels, {"axis 2 is out of range"});
  Blob wrong_count({3});
  expect_accuracy_error("", scores, wrong_count, {"2 labels, got 3"});
}

}  // namespace
}  // namespace engine
