#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "core/layer_registry.hpp"
#include "gradient_checker.hpp"

namespace engine {
namespace {

using namespace testing;

const float kLn2 = std::log(2.0f);
const float kLn5 = std::log(5.0f);

// ---- Softmax ----------------------------------------------------------------------------

TEST(SoftmaxLayer, KnownVectors) {
  // exp: 1, 2, 5 (sum 8); equal scores; and scores far apart that would overflow exp unshifted.
  Blob bottom, top;
  set_blob(bottom, {4, 3}, {0, kLn2, kLn5, 7, 7, 7, 1000, 1000, 1000, -1000, 0, 1000});
  LayerPtr layer = create_layer(layer_param("name: 'sm' type: 'Softmax'"));
  layer->setup({&bottom}, {&top});
  layer->forward({&bottom}, {&top});
  expect_near(data_of(top), {0.125f, 0.25f, 0.625f, 1 / 3.f, 1 / 3.f, 1 / 3.f, 1 / 3.f, 1 / 3.f,
                             1 / 3.f, 0, 0, 1});
}

TEST(SoftmaxLayer, AlongAMiddleAndTheLastAxis) {
  // Shape [1, 3, 2]: along axis 1 the columns (0, ln2, ln5) and (1, 1, 1) are normalized.
  Blob bottom, top;
  set_blob(bottom, {1, 3, 2}, {0, 1, kLn2, 1, kLn5, 1});
  LayerPtr middle = create_layer(layer_param("name: 'sm' type: 'Softmax'"));
  middle->setup({&bottom}, {&top});
  middle->forward({&bottom}, {&top});
  expect_near(data_of(top), {0.125f, 1 / 3.f, 0.25f, 1 / 3.f, 0.625f, 1 / 3.f});

  // Along the last axis the pairs (0, 1), (ln2, 1), (ln5, 1) are normalized.
  LayerPtr last =
      create_layer(layer_param("name: 'sm' type: 'Softmax' softmax_param { axis: -1 }"));
  last->setup({&bottom}, {&top});
  last->forward({&bottom}, {&top});
  const float e = std::exp(1.0f);
  expect_near(data_of(top),
              {1 / (1 + e), e / (1 + e), 2 / (2 + e), e / (2 + e), 5 / (5 + e), e / (5 + e)});
}

TEST(SoftmaxLayer, BackwardByHand) {
  // y = (0.125, 0.25, 0.625), dy = (1, 0, 0): dx = y * (dy - y.dy) = y * (dy - 0.125).
  Blob bottom, top;
  set_blob(bottom, {1, 3}, {0, kLn2, kLn5});
  LayerPtr layer = create_layer(layer_param("name: 'sm' type: 'Softmax'"));
  layer->setup({&bottom}, {&top});
  layer->forward({&bottom}, {&top});
  top.mutable_cpu_diff()[0] = 1;
  top.mutable_cpu_diff()[1] = 0;
  top.mutable_cpu_diff()[2] = 0;
  layer->backward({&top}, {true}, {&bottom});
  expect_near(diff_of(bottom), {0.125f * 0.875f, -0.25f * 0.125f, -0.625f * 0.125f});
}

TEST(SoftmaxLayer, GradientAtSeveralShapesAxesAndInPlace) {
  struct Case {
    std::vector<int> shape;
    int axis;
  };
  const std::vector<Case> cases = {{{2, 5}, 1},    {{2, 3, 4}, 1},  {{2, 3, 2, 3}, 1},
                                   {{3, 2, 5}, 0}, {{2, 3, 4}, -1}, {{7}, 0}};
  for (const Case& c : cases) {
    for (bool in_place : {false, true}) {
      SCOPED_TRACE("axis " + std::to_string(c.axis) + (in_place ? " in place" : ""));
      Blob bottom(c.shape), top;
      fill_gaussian(bottom, 2.0f);
      LayerPtr layer = create_layer(layer_param(
          "name: 'sm' type: 'Softmax' softmax_param { axis: " + std::to_string(c.axis) + " }"));
      check_gradient(*layer, {&bottom}, {in_place ? &bottom : &top});
    }
  }
}

TEST(SoftmaxLayer, BadAxisNamesTheLayer) {
  Blob bottom({2, 3, 4}), top;
  for (const char* axis : {"3", "-4"}) {
    LayerPtr layer = create_layer(layer_param(
        std::string("name: 'prob' type: 'Softmax' softmax_param { axis: ") + axis + " }"));
    expect_error(
        [&] { layer->setup({&bottom}, {&top}); },
        {"layer prob (Softmax)", std::string("axis ") + axis + " is out of range", "2 x 3 x 4"});
  }
}

// ---- SoftmaxWithLoss --------------------------------------------------------------------

// Scores [2, 3, 2]: two samples, three classes, two locations each. Per location (class
// scores), label, -log p:
//   (0, ln2, ln5) label 2: -log(5/8) = ln 1.6
//   (1, 1, 1)     label 0: ln 3
//   (ln5, 0, ln2) label 1: -log(1/8) = ln 8
//   (7, 7, 7)     label 255 (ignored)
class SoftmaxLossByHand : public ::testing::Test {
 protected:
  void SetUp() override {
    set_blob(scores_, {2, 3, 2}, {0, 1, kLn2, 1, kLn5, 1, kLn5, 7, 0, 7, kLn2, 7});
    set_blob(labels_, {2, 2}, {2, 0, 1, 255});
  }
  float loss(const std::string& loss_param, float* diff_scale_out = nullptr) {
    LayerPtr layer = create_layer(
        layer_param("name: 'loss' type: 'SoftmaxWithLoss' loss_param { ignore_label: 255 " +
                    loss_param + " }"));
    layer->setup({&scores_, &labels_}, {&loss_});
    return layer->forward({&scores_, &labels_}, {&loss_});
  }
  const double sum_ = std::log(1.6) + std::log(3.0) + std::log(8.0);
  Blob scores_, labels_, loss_;
};

TEST_F(SoftmaxLossByHand, EachNormalizationMode) {
  EXPECT_NEAR(loss(""), sum_ / 3, 1e-5) << "VALID is the default";
  EXPECT_NEAR(loss("normalization: VALID"), sum_ / 3, 1e-5);
  EXPECT_NEAR(loss("normalization: FULL"), sum_ / 4, 1e-5);
  EXPECT_NEAR(loss("normalization: BATCH_SIZE"), sum_ / 2, 1e-5);
  EXPECT_NEAR(loss("normalization: NONE"), sum_, 1e-5);
  EXPECT_NEAR(loss_.cpu_data()[0], sum_, 1e-5);
  EXPECT_EQ(loss_.num_axes(), 0) << "the loss is a scalar";
}

TEST_F(SoftmaxLossByHand, LegacyNormalizeFlag) {
  EXPECT_NEAR(loss("normalize: true"), sum_ / 3, 1e-5) << "true means VALID";
  EXPECT_NEAR(loss("normalize: false"), sum_ / 2, 1e-5) << "false means BATCH_SIZE";
  EXPECT_NEAR(loss("normalize: false normalization: FULL"), sum_ / 4, 1e-5)
      << "normalization, when given, wins";
}

TEST_F(SoftmaxLossByHand, WithoutIgnoreLabelEveryLabelCounts) {
  labels_.mutable_cpu_data()[3] = 2;  // (7, 7, 7) label 2: ln 3
  LayerPtr layer = create_layer(layer_param("name: 'loss' type: 'SoftmaxWithLoss'"));
  layer->setup({&scores_, &labels_}, {&loss_});
  EXPECT_NEAR(layer->forward({&scores_, &labels_}, {&loss_}), (sum_ + std::log(3.0)) / 4, 1e-5);
}

TEST_F(SoftmaxLossByHand, AllIgnoredGivesZeroNotNaN) {
  std::fill(labels_.mutable_cpu_data(), labels_.mutable_cpu_data() + 4, 255.0f);
  EXPECT_EQ(loss(""), 0.0f);
}

TEST_F(SoftmaxLossByHand, BackwardScalesByLossWeightOverNormalizer) {
  LayerPtr layer =
      create_layer(layer_param("name: 'loss' type: 'SoftmaxWithLoss' loss_weight: 3 "
                               "loss_param { ignore_label: 255 normalization: BATCH_SIZE }"));
  layer->setup({&scores_, &labels_}, {&loss_});
  EXPECT_NEAR(layer->forward({&scores_, &labels_}, {&loss_}), 3 * sum_ / 2, 1e-5);
  EXPECT_NEAR(loss_.cpu_data()[0], sum_ / 2, 1e-5);
  layer->backward({&loss_}, {true, false}, {&scores_, &labels_});
  // (p - onehot) * 3 / 2, by location; the ignored location gets 0. Layout [n][class][location].
  const float k = 1.5f;
  expect_near(diff_of(scores_),
              {k * 0.125f, k * (1 / 3.f - 1), k * 0.25f, k / 3, k * (0.625f - 1), k / 3, k * 0.625f,
               0, k * (0.125f - 1), 0, k * 0.25f, 0},
              1e-5f);
}

TEST_F(SoftmaxLossByHand, SecondTopIsTheProbabilities) {
  LayerPtr layer = create_layer(
      layer_param("name: 'loss' type: 'SoftmaxWithLoss' loss_param { ignore_label: 255 }"));
  Blob prob;
  layer->setup({&scores_, &labels_}, {&loss_, &prob});
  EXPECT_EQ(layer->loss(0), 1.0f) << "a loss layer's first top has weight 1";
  EXPECT_EQ(layer->loss(1), 0.0f);
  layer->forward({&scores_, &labels_}, {&loss_, &prob});
  EXPECT_NEAR(loss_.cpu_data()[0], sum_ / 3, 1e-5);
  ASSERT_EQ(prob.shape(), scores_.shape());
  expect_near(data_of(prob), {0.125f, 1 / 3.f, 0.25f, 1 / 3.f, 0.625f, 1 / 3.f, 0.625f, 1 / 3.f,
                              0.125f, 1 / 3.f, 0.25f, 1 / 3.f});
}

TEST(SoftmaxWithLossLayer, IsALossWithoutGradientForLabels) {
  LayerPtr layer = create_layer(layer_param("name: 'loss' type: 'SoftmaxWithLoss'"));
  EXPECT_TRUE(layer->is_loss());
  EXPECT_TRUE(layer->allow_force_backward(0));
  EXPECT_FALSE(layer->allow_force_backward(1));
}

TEST(SoftmaxWithLossLayer, GradientAtSeveralShapesAndModes) {
  struct Case {
    std::vector<int> scores;
    std::vector<int> labels;
    int axis;
    const char* loss_param;
  };
  const std::vector<Case> cases = {
      {{5, 4}, {5}, 1, ""},
      {{3, 5}, {3, 1}, 1, "ignore_label: 2"},
      {{2, 3, 2, 3}, {2, 1, 2, 3}, 1, "ignore_label: 1 normalization: FULL"},
      {{2, 4, 3}, {2, 3}, 1, "normalization: BATCH_SIZE"},
      {{2, 3, 4}, {2, 3}, -1, "ignore_label: 0 normalization: NONE"},
      {{2, 3, 4}, {2, 3}, 2, "normalize: false"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(std::string("loss_param { ") + c.loss_param + " } axis " + std::to_string(c.axis));
    Blob scores(c.scores), labels(c.labels), loss;
    fill_gaussian(scores, 2.0f);
    const int classes = scores.shape(c.axis);
    for (int64_t i = 0; i < labels.count(); ++i) {
      labels.mutable_cpu_data()[i] = static_cast<float>((i * 7 + 3) % classes);
    }
    LayerPtr layer = create_layer(layer_param(
        "name: 'loss' type: 'SoftmaxWithLoss' softmax_param { axis: " + std::to_string(c.axis) +
        " } loss_param { " + c.loss_param + " }"));
    GradientCheckOptions options;
    options.bottoms = {0};
    check_gradient(*layer, {&scores, &labels}, {&loss}, options);
  }
}

TEST(SoftmaxWithLossLayer, LabelOutOfRangeNamesLayerLabelAndSample) {
  Blob scores({3, 4}), labels, loss;
  fill_gaussian(scores);
  for (float bad : {4.0f, -1.0f}) {
    set_blob(labels, {3}, {0, 3, bad});
    LayerPtr layer = create_layer(
        layer_param("name: 'xent' type: 'SoftmaxWithLoss' loss_param { ignore_label: 255 }"));
    const std::string label = std::to_string(static_cast<int>(bad));
    expect_error(
        [&] {
          layer->setup({&scores, &labels}, {&loss});
          layer->forward({&scores, &labels}, {&loss});
        },
        {"layer xent (SoftmaxWithLoss)", "label " + label + " of sample 2", "outside [0, 4)"});
  }
}

TEST(SoftmaxWithLossLayer, LabelCountAndAxisMismatchesNameTheLayer) {
  Blob scores({3, 4, 2}), labels({3, 5}), loss;
  LayerPtr layer = create_layer(layer_param("name: 'xent' type: 'SoftmaxWithLoss'"));
  expect_error(
      [&] {
        layer->setup({&scores, &labels}, {&loss});
      },
      {"layer xent (SoftmaxWithLoss)", "6 labels, got 15"});

  Blob other_batch({2, 3});
  expect_error(
      [&] {
        layer->setup({&scores, &other_batch}, {&loss});
      },
      {"layer xent (SoftmaxWithLoss)", "same first dimension"});

  Blob good_labels({3, 2});
  LayerPtr bad_axis =
      create_layer(layer_param("name: 'xent' type: 'SoftmaxWithLoss' softmax_param { axis: 5 }"));
  expect_error(
      [&] {
        bad_axis->setup({&scores, &good_labels}, {&loss});
      },
      {"layer xent (SoftmaxWithLoss)", "axis 5 is out of range"});
}

}  // namespace
}  // namespace engine
