#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "core/context.hpp"
#include "core/layer_registry.hpp"
#include "gradient_checker.hpp"
#include "math/blas.hpp"
#include "math/onednn.hpp"
#include "math/random.hpp"

namespace engine {
namespace {

using namespace testing;

LayerPtr make_ip(const std::string& engine, const std::string& fields,
                 const std::string& name = "fc") {
  return create_layer(layer_param("name: '" + name + "' type: 'InnerProduct' inner_product_param { " +
                                  fields + " engine: " + engine + " }"));
}

class IpPaths : public EngineTest {
 protected:
  LayerPtr ip(const std::string& fields, const std::string& name = "fc") {
    return make_ip(engine(), fields, name);
  }
};

// bottom [[1, 2, 3], [4, 5, 6]], W [[1, 0, -1], [0.5, 1, 2]], bias [10, 20]:
//   row 0: 1 - 3 + 10 = 8,  0.5 + 2 + 6 + 20 = 28.5
//   row 1: 4 - 6 + 10 = 8,  2 + 5 + 12 + 20 = 39
TEST_P(IpPaths, ForwardByHand) {
  Blob bottom({2, 3}), top;
  set_blob(bottom, {1, 2, 3, 4, 5, 6});
  LayerPtr layer = ip("num_output: 2");
  layer->setup({&bottom}, {&top});
  ASSERT_EQ(layer->blobs()[0]->shape(), (std::vector<int>{2, 3}));
  set_blob(*layer->blobs()[0], {1, 0, -1, 0.5f, 1, 2});
  set_blob(*layer->blobs()[1], {10, 20});
  layer->forward({&bottom}, {&top});
  EXPECT_EQ(top.shape(), (std::vector<int>{2, 2}));
  EXPECT_EQ(data_of(top), (std::vector<float>{8, 28.5f, 8, 39}));
}

TEST_P(IpPaths, TransposedWeightsByHand) {
  Blob bottom({2, 3}), top;
  set_blob(bottom, {1, 2, 3, 4, 5, 6});
  LayerPtr layer = ip("num_output: 2 transpose: true");
  layer->setup({&bottom}, {&top});
  ASSERT_EQ(layer->blobs()[0]->shape(), (std::vector<int>{3, 2}));
  set_blob(*layer->blobs()[0], {1, 0.5f, 0, 1, -1, 2});
  set_blob(*layer->blobs()[1], {10, 20});
  layer->forward({&bottom}, {&top});
  EXPECT_EQ(data_of(top), (std::vector<float>{8, 28.5f, 8, 39}));
}

// With axis 2, a [2, 3, 2, 2] bottom is 6 rows of 4 inputs; the top is [2, 3, num_output].
TEST_P(IpPaths, AxisFlattensTheTrailingAxes) {
  Blob bottom({2, 3, 2, 2}), top;
  for (int i = 0; i < 24; ++i) bottom.mutable_cpu_data()[i] = static_cast<float>(i);
  LayerPtr layer = ip("num_output: 1 axis: 2 bias_term: false weight_filler { type: 'constant' value: 1 }");
  layer->setup({&bottom}, {&top});
  EXPECT_EQ(layer->blobs().size(), 1u);
  EXPECT_EQ(layer->blobs()[0]->shape(), (std::vector<int>{1, 4}));
  layer->forward({&bottom}, {&top});
  EXPECT_EQ(top.shape(), (std::vector<int>{2, 3, 1}));
  // Row r sums 4r .. 4r+3 = 16r + 6.
  EXPECT_EQ(data_of(top), (std::vector<float>{6, 22, 38, 54, 70, 86}));

  LayerPtr negative = ip("num_output: 5 axis: -1");
  negative->setup({&bottom}, {&top});
  EXPECT_EQ(top.shape(), (std::vector<int>{2, 3, 2, 5}));
}

TEST_P(IpPaths, BatchMayChange) {
  Blob bottom({4, 3, 2}), top;
  fill_gaussian(bottom);
  LayerPtr layer = ip("num_output: 5 weight_filler { type: 'gaussian' }");
  layer->setup({&bottom}, {&top});
  layer->forward({&bottom}, {&top});
  const std::vector<float> first_row(top.cpu_data(), top.cpu_data() + 5);
  std::vector<float> saved(bottom.cpu_data(), bottom.cpu_data() + 6);
  bottom.reshape({1, 3, 2});
  std::copy(saved.begin(), saved.end(), bottom.mutable_cpu_data());
  layer->forward({&bottom}, {&top});
  EXPECT_EQ(top.shape(), (std::vector<int>{1, 5}));
  for (int i = 0; i < 5; ++i) EXPECT_NEAR(top.cpu_data()[i], first_row[i], 1e-5f);
}

const char* kFillers =
    " weight_filler { type: 'gaussian' std: 0.5 } bias_filler { type: 'gaussian' std: 0.5 }";

TEST_P(IpPaths, Gradient) {
  Blob bottom({3, 2, 3, 2}), top;
  fill_gaussian(bottom);
  LayerPtr layer = ip(std::string("num_output: 5") + kFillers);
  check_gradient(*layer, {&bottom}, {&top});
}

TEST_P(IpPaths, GradientTransposedNoBias) {
  Blob bottom({4, 7}), top;
  fill_gaussian(bottom);
  LayerPtr layer = ip(std::string("num_output: 3 transpose: true bias_term: false") + kFillers);
  check_gradient(*layer, {&bottom}, {&top});
}

TEST_P(IpPaths, GradientAxisTwo) {
  Blob bottom({2, 3, 5}), top;
  fill_gaussian(bottom);
  LayerPtr layer = ip(std::string("num_output: 4 axis: 2 transpose: true") + kFillers);
  check_gradient(*layer, {&bottom}, {&top});
}

TEST_P(IpPaths, ParameterGradientsAccumulate) {
  Blob bottom({3, 4}), top;
  fill_gaussian(bottom);
  LayerPtr layer = ip(std::string("num_output: 2") + kFillers);
  layer->setup({&bottom}, {&top});
  layer->forward({&bottom}, {&top});
  rng_gaussian(top.count(), 0, 1, top.mutable_cpu_diff());
  for (auto& blob : layer->blobs()) blob->set_diff(0);
  layer->backward({&top}, {true}, {&bottom});
  const std::vector<float> weights_once = diff_of(*layer->blobs()[0]);
  const std::vector<float> bias_once = diff_of(*layer->blobs()[1]);
  const std::vector<float> bottom_once = diff_of(bottom);
  layer->backward({&top}, {true}, {&bottom});
  for (size_t i = 0; i < weights_once.size(); ++i) {
    EXPECT_NEAR(layer->blobs()[0]->cpu_diff()[i], 2 * weights_once[i], 1e-5f * (1 + std::fabs(weights_once[i])));
  }
  for (size_t i = 0; i < bias_once.size(); ++i) {
    EXPECT_NEAR(layer->blobs()[1]->cpu_diff()[i], 2 * bias_once[i], 1e-5f * (1 + std::fabs(bias_once[i])));
  }
  EXPECT_EQ(diff_of(bottom), bottom_once);
}

TEST_P(IpPaths, LoadedWeights) {
  Blob bottom({2, 6}), top;
  LayerPtr good = ip("num_output: 3 weight_filler { type: 'gaussian' }");
  good->blobs().push_back(std::make_shared<Blob>(std::vector<int>{3, 6}));
  good->blobs().push_back(std::make_shared<Blob>(std::vector<int>{3}));
  good->blobs()[0]->set_data(0.5f);
  good->setup({&bottom}, {&top});
  EXPECT_EQ(good->blobs()[0]->cpu_data()[7], 0.5f) << "loaded weights must not be refilled";

  LayerPtr bad = ip("num_output: 3 transpose: true", "fc9");
  bad->blobs().push_back(std::make_shared<Blob>(std::vector<int>{3, 6}));
  bad->blobs().push_back(std::make_shared<Blob>(std::vector<int>{3}));
  expect_error([&] { bad->setup({&bottom}, {&top}); },
               {"layer fc9 (InnerProduct)", "weights should have shape 6 x 3", "got 3 x 6"});
}

TEST_P(IpPaths, BadParametersAndShapes) {
  Blob bottom({2, 6}), top;
  expect_error([&] { ip("num_output: 0", "fcx")->setup({&bottom}, {&top}); },
               {"layer fcx (InnerProduct)", "num_output > 0"});
  expect_error([&] { ip("num_output: 2 axis: 2", "fcx")->setup({&bottom}, {&top}); },
               {"layer fcx (InnerProduct)", "axis 2 is out of range"});
  LayerPtr layer = ip("num_output: 2", "fcx");
  layer->setup({&bottom}, {&top});
  Blob wider({2, 7});
  expect_error([&] { layer->forward({&wider}, {&top}); },
               {"layer fcx (InnerProduct)", "7 inputs", "weights take 6"});
}

INSTANTIATE_TEST_SUITE_P(Engines, IpPaths, ::testing::Values("CAFFE", "ONEDNN", "ONEDNN_SGEMM"));

// `backward_planned` false: the fast layer is told that no backward pass will run (its forward
// pass reads the weights in a format of its own), and is then asked for one anyway. Both oneDNN
// engines: the matmuls throughout, and sgemm for the backward products.
void expect_paths_agree(const std::vector<int>& shape, const std::string& fields,
                        bool backward_planned = true, const std::string& engine = "ONEDNN") {
  if (!onednn_available()) GTEST_SKIP() << "no oneDNN in this build";
  if (engine == "ONEDNN") expect_paths_agree(shape, fields, backward_planned, "ONEDNN_SGEMM");
  SCOPED_TRACE(fields + " engine " + engine);
  Context::set_seed(11);
  Blob bottom_ref(shape), bottom_fast(shape), top_ref, top_fast;
  fill_gaussian(bottom_ref);
  bottom_fast.share_data(bottom_ref);
  LayerPtr reference = make_ip("CAFFE", fields + kFillers), fast = make_ip(engine, fields + kFillers);
  reference->setup({&bottom_ref}, {&top_ref});
  share_parameters(*reference, *fast);
  fast->setup({&bottom_fast}, {&top_fast});
  if (!backward_planned) fast->set_backward_plan(false, {false});
  reference->forward({&bottom_ref}, {&top_ref});
  fast->forward({&bottom_fast}, {&top_fast});
  expect_agree(data_of(top_ref), data_of(top_fast), "forward");
  // New weights must be seen (the fast layer may keep them in another format).
  Blob& weights = *reference->blobs()[0];
  cpu::scale(weights.count(), -0.5f, weights.mutable_cpu_data());
  reference->forward({&bottom_ref}, {&top_ref});
  fast->forward({&bottom_fast}, {&top_fast});
  expect_agree(data_of(top_ref), data_of(top_fast), "forward with new weights");
  same_random_diff(top_ref, top_fast);
  // Gradients added to, then gradients cleared as a net clears them (lazily: the fast paths
  // write them instead of adding).
  for (const bool cleared : {false, true}) {
    SCOPED_TRACE(cleared ? "cleared gradients" : "gradients added to");
    for (auto* layer : {reference.get(), fast.get()}) {
      for (const auto& blob : layer->blobs()) {
        if (cleared) {
          blob->clear_diff();
        } else {
          blob->set_diff(0.25f);
        }
      }
    }
    reference->backward({&top_ref}, {true}, {&bottom_ref});
    fast->backward({&top_fast}, {true}, {&bottom_fast});
    expect_agree(diff_of(bottom_ref), diff_of(bottom_fast), "bottom gradient");
    for (size_t i = 0; i < reference->blobs().size(); ++i) {
      expect_agree(diff_of(*reference->blobs()[i]), diff_of(*fast->blobs()[i]),
                   "parameter " + std::to_string(i) + " gradient");
    }
  }
}

TEST(IpPathsAgree, FcLike) { expect_paths_agree({8, 16, 3, 3}, "num_output: 40"); }
TEST(IpPathsAgree, Transposed) { expect_paths_agree({5, 33}, "num_output: 17 transpose: true"); }
TEST(IpPathsAgree, WithoutABackwardPassPlanned) {
  expect_paths_agree({1, 64}, "num_output: 40", false);
  expect_paths_agree({6, 33}, "num_output: 17 transpose: true", false);
}
TEST(IpPathsAgree, AxisTwoNoBias) {
  expect_paths_agree({3, 4, 10}, "num_output: 9 axis: 2 bias_term: false");
}

}  // namespace
}  // namespace engine
