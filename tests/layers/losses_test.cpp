// EuclideanLoss, SigmoidCrossEntropyLoss, HingeLoss, MultinomialLogisticLoss, ContrastiveLoss and
// InfogainLoss: losses and gradients worked by hand, normalization modes, gradient checks, and
// errors for bad labels, shapes and parameters.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

#include "core/layer_registry.hpp"
#include "gradient_checker.hpp"
#include "io/prototxt.hpp"
#include "math/blas.hpp"

namespace engine {
namespace {

using namespace testing;

LayerPtr make(const std::string& type, const std::string& params = "") {
  return create_layer(layer_param("name: 'loss' type: '" + type + "' " + params));
}

// Forward (returning the weighted loss) then backward to the bottoms listed in `down`.
float forward_backward(Layer& layer, const Blobs& bottom, Blob& top,
                       const std::vector<bool>& down) {
  layer.setup(bottom, {&top});
  const float loss = layer.forward(bottom, {&top});
  layer.backward({&top}, down, bottom);
  return loss;
}

float loss_of(const Blob& top) { return top.cpu_data()[0]; }

// Gradient-check options for the listed bottoms only (labels have no gradient).
GradientCheckOptions checking(std::vector<int> bottoms) {
  GradientCheckOptions options;
  options.bottoms = std::move(bottoms);
  return options;
}

// Labels uniformly in [0, classes).
void fill_labels(Blob& labels, int classes, unsigned seed) {
  float* data = labels.mutable_cpu_data();
  for (int64_t i = 0; i < labels.count(); ++i) {
    data[i] = static_cast<float>((i * 7 + seed) % classes);
  }
}

// ---- EuclideanLoss ------------------------------------------------------------------------

TEST(EuclideanLossLayer, ByHand) {
  Blob a, b, top;
  set_blob(a, {2, 2}, {1, 2, 3, 4});
  set_blob(b, {2, 2}, {0, 2, 1, 1});
  LayerPtr layer = make("EuclideanLoss", "loss_weight: 2");
  const float weighted = forward_backward(*layer, {&a, &b}, top, {true, true});
  // a - b = {1, 0, 2, 3}: (1 + 0 + 4 + 9) / (2 * 2) = 3.5; weighted by 2.
  EXPECT_EQ(top.num_axes(), 0);
  EXPECT_FLOAT_EQ(loss_of(top), 3.5f);
  EXPECT_FLOAT_EQ(weighted, 7.0f);
  // 2 * (a - b) / N, and the opposite for b.
  expect_near(diff_of(a), {1, 0, 2, 3});
  expect_near(diff_of(b), {-1, 0, -2, -3});
}

TEST(EuclideanLossLayer, GradientToBothBottoms) {
  for (const auto& shape : std::vector<std::vector<int>>{{4, 5}, {3, 2, 3, 2}, {5}}) {
    SCOPED_TRACE(shape_string(shape));
    Blob a(shape), b(shape), top;
    fill_gaussian(a);
    fill_gaussian(b);
    LayerPtr layer = make("EuclideanLoss");
    check_gradient(*layer, {&a, &b}, {&top});
  }
}

TEST(EuclideanLossLayer, MismatchedSizesNameTheLayer) {
  Blob a({2, 3}), b({2, 4}), top;
  LayerPtr layer = make("EuclideanLoss");
  const std::string message = setup_error(*layer, {&a, &b}, {&top});
  EXPECT_TRUE(contains(message, "layer loss (EuclideanLoss)"));
  EXPECT_TRUE(contains(message, "same size per sample"));
  Blob c({3, 3});
  EXPECT_TRUE(contains(setup_error(*layer, {&a, &c}, {&top}), "same first dimension"));
}

// ---- SigmoidCrossEntropyLoss --------------------------------------------------------------

// Predictions x and targets t for the hand-worked cases: per element, with s = sigmoid(x),
//   x = 0,     t = 1:   -log(1/2)                          = 0.6931472
//   x = ln 3,  t = 0:   -log(1 - 3/4) = log 4              = 1.3862944
//   x = -ln 3, t = 1:   -log(1/4)                          = 1.3862944
//   x = 2,     t = 0.5: -(log s + log(1 - s)) / 2, s = 0.8807971,
//                       = (0.1269280 + 2.1269280) / 2      = 1.1269280
// sum 4.5926640; gradients s - t = {-0.5, 0.75, -0.75, 0.3807971}.
void set_sigmoid_case(Blob& x, Blob& t) {
  const float ln3 = std::log(3.0f);
  set_blob(x, {2, 2}, {0.0f, ln3, -ln3, 2.0f});
  set_blob(t, {2, 2}, {1.0f, 0.0f, 1.0f, 0.5f});
}

TEST(SigmoidCrossEntropyLossLayer, ByHandDefaultsToBatchSize) {
  Blob x, t, top;
  set_sigmoid_case(x, t);
  LayerPtr layer = make("SigmoidCrossEntropyLoss");
  forward_backward(*layer, {&x, &t}, top, {true, false});
  // Divided by the batch size, 2.
  EXPECT_NEAR(loss_of(top), 4.5926640f / 2, 1e-6f);
  expect_close(diff_of(x), {-0.25f, 0.375f, -0.375f, 0.19039855f}, "dx", 1e-6f);
}

TEST(SigmoidCrossEntropyLossLayer, NormalizationModesAndIgnoreLabel) {
  // Target -1 at element 1 is ignored: the sum drops to 4.5926640 - 1.3862944 = 3.2063696 over
  // 3 valid, 4 locations, 2 samples.
  struct Case {
    std::string params;
    float normalizer;
  };
  const std::vector<Case> cases = {
      {"normalization: FULL", 4}, {"normalization: VALID", 3}, {"normalization: BATCH_SIZE", 2},
      {"normalization: NONE", 1}, {"normalize: true", 3},      {"normalize: false", 2}};
  for (const Case& c : cases) {
    SCOPED_TRACE(c.params);
    Blob x, t, top;
    set_sigmoid_case(x, t);
    t.mutable_cpu_data()[1] = -1;
    LayerPtr layer = make("SigmoidCrossEntropyLoss", "loss_param { ignore_label: -1 " + c.params + " }");
    forward_backward(*layer, {&x, &t}, top, {true, false});
    EXPECT_NEAR(loss_of(top), 3.2063696f / c.normalizer, 1e-6f);
    expect_close(diff_of(x),
                 {-0.5f / c.normalizer, 0.0f, -0.75f / c.normalizer, 0.38079708f / c.normalizer},
                 "dx", 1e-6f);
  }
}

TEST(SigmoidCrossEntropyLossLayer, LargeScoresStayFinite) {
  Blob x, t, top;
  set_blob(x, {1, 2}, {100.0f, -100.0f});
  set_blob(t, {1, 2}, {0.0f, 1.0f});
  LayerPtr layer = make("SigmoidCrossEntropyLoss");
  forward_backward(*layer, {&x, &t}, top, {true, false});
  // Each term is 100 + log(1 + e^-100) = 100.
  EXPECT_FLOAT_EQ(loss_of(top), 200.0f);
  expect_near(diff_of(x), {1, -1});
}

TEST(SigmoidCrossEntropyLossLayer, Gradient) {
  for (const auto& shape : std::vector<std::vector<int>>{{4, 5}, {2, 3, 2, 2}}) {
    SCOPED_TRACE(shape_string(shape));
    Blob x(shape), t(shape), top;
    fill_gaussian(x, 2.0f);
    fill_uniform(t, 0.0f, 1.0f);
    LayerPtr layer = make("SigmoidCrossEntropyLoss", "loss_param { normalization: VALID }");
    check_gradient(*layer, {&x, &t}, {&top}, checking({0}));
  }
}

TEST(SigmoidCrossEntropyLossLayer, ErrorsNameTheLayer) {
  Blob x({2, 3}), t({2, 4}), top;
  LayerPtr layer = make("SigmoidCrossEntropyLoss");
  EXPECT_TRUE(contains(setup_error(*layer, {&x, &t}, {&top}), "one target per prediction"));
  Blob good({2, 3});
  layer->setup({&x, &good}, {&top});
  layer->forward({&x, &good}, {&top});
  expect_error([&] { layer->backward({&top}, {true, true}, {&x, &good}); },
               {"layer loss (SigmoidCrossEntropyLoss)", "cannot backpropagate to the targets"});
}

// ---- HingeLoss ----------------------------------------------------------------------------

// Scores {2, 3}: sample 0 {0.5, -0.5, 2} with label 2, sample 1 {0.4, 0.2, -3} with label 0.
// Margins max(0, 1 - t x), t = +1 at the label and -1 elsewhere:
//   sample 0: 1.5, 0.5, max(0, 1 - 2) = 0;  sample 1: 1 - 0.4 = 0.6, 1.2, max(0, -2) = 0.
void set_hinge_case(Blob& x, Blob& labels) {
  set_blob(x, {2, 3}, {0.5f, -0.5f, 2.0f, 0.4f, 0.2f, -3.0f});
  set_blob(labels, {2}, {2.0f, 0.0f});
}

TEST(HingeLossLayer, L1ByHand) {
  Blob x, labels, top;
  set_hinge_case(x, labels);
  LayerPtr layer = make("HingeLoss");
  forward_backward(*layer, {&x, &labels}, top, {true, false});
  // (1.5 + 0.5 + 0 + 0.6 + 1.2 + 0) / 2.
  EXPECT_NEAR(loss_of(top), 1.9f, 1e-6f);
  // -t * [margin > 0] / N.
  expect_near(diff_of(x), {0.5f, 0.5f, 0, -0.5f, 0.5f, 0});
}

TEST(HingeLossLayer, L2ByHand) {
  Blob x, labels, top;
  set_hinge_case(x, labels);
  LayerPtr layer = make("HingeLoss", "hinge_loss_param { norm: L2 }");
  forward_backward(*layer, {&x, &labels}, top, {true, false});
  // (2.25 + 0.25 + 0 + 0.36 + 1.44 + 0) / 2.
  EXPECT_NEAR(loss_of(top), 2.15f, 1e-6f);
  // -2 t margin / N = -t margin.
  expect_near(diff_of(x), {1.5f, 0.5f, 0, -0.6f, 1.2f, 0}, 1e-6f);
}

TEST(HingeLossLayer, Gradient) {
  for (const char* norm : {"L1", "L2"}) {
    for (const auto& shape : std::vector<std::vector<int>>{{4, 5}, {3, 2, 2, 2}}) {
      SCOPED_TRACE(std::string(norm) + " " + shape_string(shape));
      Blob x(shape), labels({shape[0]}), top;
      fill_gaussian(x, 2.0f);
      // Away from the kinks at x = +-1, where a margin reaches 0.
      float* data = x.mutable_cpu_data();
      for (int64_t i = 0; i < x.count(); ++i) {
        if (std::fabs(std::fabs(data[i]) - 1) < 0.05f) data[i] += 0.1f;
      }
      fill_labels(labels, x.count() / shape[0], 3);
      LayerPtr layer = make("HingeLoss", std::string("hinge_loss_param { norm: ") + norm + " }");
      check_gradient(*layer, {&x, &labels}, {&top}, checking({0}));
    }
  }
}

TEST(HingeLossLayer, LabelOutOfRangeNamesTheLayer) {
  Blob x, labels, top;
  set_hinge_case(x, labels);
  labels.mutable_cpu_data()[1] = 3;
  LayerPtr layer = make("HingeLoss");
  layer->setup({&x, &labels}, {&top});
  expect_error([&] { layer->forward({&x, &labels}, {&top}); },
               {"layer loss (HingeLoss)", "label 3 of sample 1 is outside [0, 3)"});
  Blob two_per_sample({2, 2});
  EXPECT_TRUE(contains(setup_error(*layer, {&x, &two_per_sample}, {&top}), "one label per sample"));
}

// ---- MultinomialLogisticLoss --------------------------------------------------------------

TEST(MultinomialLogisticLossLayer, ByHand) {
  Blob prob, labels, top;
  set_blob(prob, {2, 3}, {0.2f, 0.5f, 0.3f, 0.1f, 0.1f, 0.8f});
  set_blob(labels, {2, 1, 1, 1}, {1.0f, 2.0f});
  LayerPtr layer = make("MultinomialLogisticLoss");
  forward_backward(*layer, {&prob, &labels}, top, {true, false});
  // -(log 0.5 + log 0.8) / 2 = (0.6931472 + 0.2231436) / 2.
  EXPECT_NEAR(loss_of(top), 0.4581454f, 1e-6f);
  // -1 / (N p) at the labels: -1 / (2 * 0.5), -1 / (2 * 0.8).
  expect_near(diff_of(prob), {0, -1, 0, 0, 0, -0.625f}, 1e-6f);
}

TEST(MultinomialLogisticLossLayer, ZeroProbabilityIsFloored) {
  Blob prob, labels, top;
  set_blob(prob, {1, 2}, {0.0f, 1.0f});
  set_blob(labels, {1}, {0.0f});
  LayerPtr layer = make("MultinomialLogisticLoss");
  forward_backward(*layer, {&prob, &labels}, top, {true, false});
  // -log(1e-20) = 46.0517019.
  EXPECT_NEAR(loss_of(top), 46.0517019f, 1e-4f);
  EXPECT_FLOAT_EQ(diff_of(prob)[0], -1e20f);
}

TEST(MultinomialLogisticLossLayer, Gradient) {
  Blob prob({5, 4}), labels({5}), top;
  fill_uniform(prob, 0.2f, 1.0f);
  fill_labels(labels, 4, 1);
  LayerPtr layer = make("MultinomialLogisticLoss");
  GradientCheckOptions options = checking({0});
  options.step = 1e-3f;
  check_gradient(*layer, {&prob, &labels}, {&top}, options);
}

TEST(MultinomialLogisticLossLayer, BadLabelsNameTheLayer) {
  Blob prob({2, 3}), labels, top;
  set_blob(labels, {2}, {1.0f, -1.0f});
  LayerPtr layer = make("MultinomialLogisticLoss");
  layer->setup({&prob, &labels}, {&top});
  expect_error([&] { layer->forward({&prob, &labels}, {&top}); },
               {"layer loss (MultinomialLogisticLoss)", "label -1 of sample 1 is outside [0, 3)"});
  Blob wide({2, 2});
  EXPECT_TRUE(contains(setup_error(*layer, {&prob, &wide}, {&top}), "one label per sample"));
  Blob ok({2});
  layer->setup({&prob, &ok}, {&top});
  layer->forward({&prob, &ok}, {&top});
  expect_error([&] { layer->backward({&top}, {true, true}, {&prob, &ok}); },
               {"cannot backpropagate to the labels (bottom 1)"});
}

// ---- ContrastiveLoss ----------------------------------------------------------------------

// Three pairs with margin 1: (1, 1) vs (0, 1), similar, d^2 = 1; (0, 0) vs (0.3, 0.4),
// dissimilar, d = 0.5; (2, 0) vs (0, 0), dissimilar, d = 2 (beyond the margin).
void set_contrastive_case(Blob& a, Blob& b, Blob& similar) {
  set_blob(a, {3, 2}, {1, 1, 0, 0, 2, 0});
  set_blob(b, {3, 2}, {0, 1, 0.3f, 0.4f, 0, 0});
  set_blob(similar, {3}, {1, 0, 0});
}

TEST(ContrastiveLossLayer, ByHand) {
  Blob a, b, similar, top;
  set_contrastive_case(a, b, similar);
  LayerPtr layer = make("ContrastiveLoss");
  forward_backward(*layer, {&a, &b, &similar}, top, {true, true, false});
  // (1 + max(1 - 0.5, 0)^2 + 0) / (2 * 3) = 1.25 / 6.
  EXPECT_NEAR(loss_of(top), 0.20833333f, 1e-6f);
  // Similar: (a - b) / N = {1/3, 0}. Dissimilar inside the margin: -(1/N) (m - d) / (d + 1e-4)
  // * (a - b) = -(1/3) 0.5 / 0.5001 * (-0.3, -0.4) = (0.0999800, 0.1333067). Outside: 0.
  expect_close(diff_of(a), {0.3333333f, 0, 0.0999800f, 0.1333067f, 0, 0}, "da", 1e-6f);
  expect_close(diff_of(b), {-0.3333333f, 0, -0.0999800f, -0.1333067f, 0, 0}, "db", 1e-6f);
}

TEST(ContrastiveLossLayer, LegacyByHand) {
  Blob a, b, similar, top;
  set_contrastive_case(a, b, similar);
  LayerPtr layer = make("ContrastiveLoss", "contrastive_loss_param { legacy_version: true }");
  forward_backward(*layer, {&a, &b, &similar}, top, {true, true, false});
  // (1 + max(1 - 0.25, 0) + max(1 - 4, 0)) / 6.
  EXPECT_NEAR(loss_of(top), 1.75f / 6, 1e-6f);
  // Dissimilar inside the margin: -(a - b) / N = (0.1, 0.1333333).
  expect_close(diff_of(a), {0.3333333f, 0, 0.1f, 0.1333333f, 0, 0}, "da", 1e-6f);
}

TEST(ContrastiveLossLayer, Gradient) {
  for (const char* legacy : {"false", "true"}) {
    for (const auto& shape : std::vector<std::vector<int>>{{6, 4}, {5, 3, 1, 1}}) {
      SCOPED_TRACE(std::string("legacy ") + legacy + " " + shape_string(shape));
      Blob a(shape), b(shape), similar({shape[0]}), top;
      fill_uniform(a, -0.6f, 0.6f);
      fill_uniform(b, -0.6f, 0.6f);
      for (int i = 0; i < shape[0]; ++i) similar.mutable_cpu_data()[i] = i % 2;
      LayerPtr layer = make("ContrastiveLoss", std::string("contrastive_loss_param { margin: 2 "
                                                           "legacy_version: ") + legacy + " }");
      check_gradient(*layer, {&a, &b, &similar}, {&top}, checking({0, 1}));
    }
  }
}

TEST(ContrastiveLossLayer, BadShapesNameTheLayer) {
  Blob a({3, 2}), b({3, 4}), similar({3}), top;
  LayerPtr layer = make("ContrastiveLoss");
  std::string message = setup_error(*layer, {&a, &b, &similar}, {&top});
  EXPECT_TRUE(contains(message, "layer loss (ContrastiveLoss)"));
  EXPECT_TRUE(contains(message, "two N x C (x 1 x 1) bottoms of the same shape"));
  Blob spatial({3, 2, 2, 2});
  EXPECT_TRUE(contains(setup_error(*layer, {&spatial, &spatial, &similar}, {&top}),
                       "two N x C"));
  Blob b2({3, 2}), flags({3, 2});
  EXPECT_TRUE(contains(setup_error(*layer, {&a, &b2, &flags}, {&top}),
                       "one similarity flag per pair"));
}

// ---- InfogainLoss -------------------------------------------------------------------------

// Scores {2, 3}: row 0 {0, 0, ln 2} -> p = {1, 1, 2} / 4; row 1 {ln 3, 0, 0} -> {3, 1, 1} / 5.
// Labels {2, 0}; H rows: 0 = {1, 0.5, 0}, 1 = {0, 1, 0}, 2 = {0.25, 0, 2}.
//   row 0: 0.25 log 0.25 + 2 log 0.5   = -0.3465736 - 1.3862944 = -1.7328680
//   row 1: log 0.6 + 0.5 log 0.2       = -0.5108256 - 0.8047190 = -1.3155446
// loss = 3.0484126 / 2 (VALID: 2 labelled) = 1.5242063.
// Gradients (p_k sum_m H[l, m] - H[l, k]) / 2:
//   row 0: {0.5625 - 0.25, 0.5625 - 0, 1.125 - 2} / 2 = {0.15625, 0.28125, -0.4375}
//   row 1: {0.9 - 1, 0.3 - 0.5, 0.3 - 0} / 2         = {-0.05, -0.1, 0.15}
const std::vector<float> kInfogain = {1, 0.5f, 0, 0, 1, 0, 0.25f, 0, 2};

void set_infogain_case(Blob& scores, Blob& labels, Blob& h) {
  const float ln2 = std::log(2.0f), ln3 = std::log(3.0f);
  set_blob(scores, {2, 3}, {0, 0, ln2, ln3, 0, 0});
  set_blob(labels, {2}, {2, 0});
  set_blob(h, {1, 1, 3, 3}, kInfogain);
}

TEST(InfogainLossLayer, ByHandWithTheMatrixAsABottom) {
  Blob scores, labels, h, top, prob;
  set_infogain_case(scores, labels, h);
  LayerPtr layer = make("InfogainLoss");
  layer->setup({&scores, &labels, &h}, {&top, &prob});
  layer->forward({&scores, &labels, &h}, {&top, &prob});
  layer->backward({&top, &prob}, {true, false, false}, {&scores, &labels, &h});
  EXPECT_NEAR(loss_of(top), 1.5242063f, 1e-6f);
  expect_close(data_of(prob), {0.25f, 0.25f, 0.5f, 0.6f, 0.2f, 0.2f}, "probabilities", 1e-6f);
  expect_close(diff_of(scores), {0.15625f, 0.28125f, -0.4375f, -0.05f, -0.1f, 0.15f}, "dx", 1e-6f);
}

TEST(InfogainLossLayer, ByHandWithTheMatrixFromAFile) {
  Blob scores, labels, h, top;
  set_infogain_case(scores, labels, h);
  BlobProto proto;
  h.to_proto(&proto);
  const std::string path = ::testing::TempDir() + "/zoo1_infogain_h.binaryproto";
  write_binary_file(proto, path);
  LayerPtr layer = make("InfogainLoss", "infogain_loss_param { source: '" + path + "' }");
  forward_backward(*layer, {&scores, &labels}, top, {true, false});
  std::remove(path.c_str());
  EXPECT_NEAR(loss_of(top), 1.5242063f, 1e-6f);
  expect_close(diff_of(scores), {0.15625f, 0.28125f, -0.4375f, -0.05f, -0.1f, 0.15f}, "dx", 1e-6f);
}

TEST(InfogainLossLayer, IgnoreLabelAndNormalization) {
  // Row 1 ignored: loss 1.7328680 over 1 valid (VALID), 2 locations (FULL), 1 (NONE).
  for (const auto& [mode, normalizer] :
       std::vector<std::pair<std::string, float>>{{"VALID", 1}, {"FULL", 2}, {"NONE", 1}, {"BATCH_SIZE", 2}}) {
    SCOPED_TRACE(mode);
    Blob scores, labels, h, top;
    set_infogain_case(scores, labels, h);
    labels.mutable_cpu_data()[1] = 7;
    LayerPtr layer =
        make("InfogainLoss", "loss_param { ignore_label: 7 normalization: " + mode + " }");
    forward_backward(*layer, {&scores, &labels, &h}, top, {true, false, false});
    EXPECT_NEAR(loss_of(top), 1.7328680f / normalizer, 1e-6f);
    const float k = 2 / normalizer;  // the by-hand row 0 gradients were halved
    expect_close(diff_of(scores), {0.15625f * k, 0.28125f * k, -0.4375f * k, 0, 0, 0}, "dx", 1e-6f);
  }
}

TEST(InfogainLossLayer, IdentityMatrixIsSoftmaxWithLoss) {
  Blob scores({2, 4, 3}), labels({2, 3}), h({4, 4}), top, reference_top;
  fill_gaussian(scores, 2.0f);
  fill_labels(labels, 4, 2);
  h.set_data(0);
  for (int i = 0; i < 4; ++i) h.mutable_cpu_data()[i * 5] = 1;
  LayerPtr infogain = make("InfogainLoss");
  forward_backward(*infogain, {&scores, &labels, &h}, top, {true, false, false});
  const std::vector<float> infogain_grad = diff_of(scores);
  LayerPtr softmax = make("SoftmaxWithLoss");
  forward_backward(*softmax, {&scores, &labels}, reference_top, {true, false});
  EXPECT_NEAR(loss_of(top), loss_of(reference_top), 1e-5f * std::fabs(loss_of(reference_top)));
  expect_agree(diff_of(scores), infogain_grad, "gradient", 1e-5f);
}

TEST(InfogainLossLayer, Gradient) {
  for (int axis : {1, 2, -1}) {
    SCOPED_TRACE("axis " + std::to_string(axis));
    Blob scores({2, 3, 4}), labels, h, top;
    const int canonical = axis < 0 ? 2 : axis;
    const int classes = scores.shape(canonical);
    h.reshape({classes, classes});
    std::vector<int> label_shape = scores.shape();
    label_shape.erase(label_shape.begin() + canonical);
    labels.reshape(label_shape);
    fill_gaussian(scores);
    fill_uniform(h, 0.0f, 2.0f);
    fill_labels(labels, classes, 5);
    LayerPtr layer = make("InfogainLoss", "infogain_loss_param { axis: " + std::to_string(axis) + " }");
    check_gradient(*layer, {&scores, &labels, &h}, {&top}, checking({0}));
  }
}

TEST(InfogainLossLayer, BadParametersNameTheLayer) {
  Blob scores, labels, h, top;
  set_infogain_case(scores, labels, h);
  Blob wrong({2, 4});
  LayerPtr layer = make("InfogainLoss");
  std::string message = setup_error(*layer, {&scores, &labels, &wrong}, {&top});
  EXPECT_TRUE(contains(message, "layer loss (InfogainLoss)"));
  EXPECT_TRUE(contains(message, "the infogain matrix H must be 3 x 3"));

  LayerPtr no_source = make("InfogainLoss");
  EXPECT_TRUE(contains(setup_error(*no_source, {&scores, &labels}, {&top}),
                       "set infogain_loss_param.source or give a third bottom"));

  LayerPtr missing = make("InfogainLoss", "infogain_loss_param { source: '/nonexistent/h.binaryproto' }");
  message = setup_error(*missing, {&scores, &labels}, {&top});
  EXPECT_TRUE(contains(message, "layer loss (InfogainLoss): cannot load the infogain matrix"));
  EXPECT_TRUE(contains(message, "/nonexistent/h.binaryproto"));

  LayerPtr legacy = make("InfogainLoss", "loss_param { normalize: true }");
  EXPECT_TRUE(contains(setup_error(*legacy, {&scores, &labels, &h}, {&top}),
                       "normalize is deprecated"));

  LayerPtr ranged = make("InfogainLoss");
  labels.mutable_cpu_data()[0] = 3;
  ranged->setup({&scores, &labels, &h}, {&top});
  expect_error([&] { ranged->forward({&scores, &labels, &h}, {&top}); },
               {"label 3 of sample 0 is outside [0, 3)"});

  Blob few_labels({3});
  EXPECT_TRUE(contains(setup_error(*ranged, {&scores, &few_labels, &h}, {&top}),
                       "first dimension"));
}

TEST(LossLayers, DefaultLossWeightAndNoLabelGradient) {
  for (const char* type : {"EuclideanLoss", "SigmoidCrossEntropyLoss", "HingeLoss",
                           "MultinomialLogisticLoss", "InfogainLoss", "ContrastiveLoss"}) {
    SCOPED_TRACE(type);
    LayerPtr layer = make(type);
    EXPECT_TRUE(layer->is_loss());
    EXPECT_TRUE(layer->allow_force_backward(0));
    EXPECT_EQ(layer->allow_force_backward(1), std::string(type) == "EuclideanLoss" ||
                                                  std::string(type) == "ContrastiveLoss");
  }
  Blob a({2, 3}), b({2, 3}), top;
  LayerPtr layer = make("EuclideanLoss");
  layer->setup({&a, &b}, {&top});
  EXPECT_EQ(layer->loss(0), 1.0f);
}

}  // namespace
}  // namespace engine
