#include <gtest/gtest.h>

#include <cmath>

#include "core/layer_registry.hpp"
#include "gradient_checker.hpp"

namespace engine {
namespace {

using namespace testing;

using Values = std::vector<float>;

LayerPtr mvn(const std::string& fields, const std::string& name = "mvn") {
  return create_layer(layer_param("name: '" + name + "' type: 'MVN' mvn_param { " + fields + " }"));
}

// Channel (0, 2): mean 1, deviations -1 and 1, standard deviation 1. Caffe adds eps to the
// standard deviation: with eps 1 the outputs are -+1 / (1 + 1) = -+0.5 (eps on the variance
// would give 1 / sqrt(2)).
TEST(MvnLayer, EpsIsAddedToTheStandardDeviation) {
  Blob in, out;
  set_blob(in, {1, 2, 1, 2}, {0, 2, 10, 14});
  LayerPtr layer = mvn("eps: 1");
  layer->setup({&in}, {&out});
  layer->forward({&in}, {&out});
  // Channel (10, 14): deviations -+2, standard deviation 2: -+2 / 3.
  EXPECT_EQ(data_of(out), (Values{-0.5f, 0.5f, -2.0f / 3, 2.0f / 3}));
}

// Caffe's backward, dx = (dy - mean(dy) - y * mean(y dy)) / (sd + eps), treats eps as if it were
// part of sd, so it is not the exact gradient when eps matters; it is what Caffe computes.
// Channel (0, 2), eps 1: y = (-0.5, 0.5); with dy = (1, 0): sum(y dy) = -0.5, sum(dy) = 1,
//   dx0 = (1 - ((-0.5)(-0.5) + 1) / 2) / 2 = 0.1875,
//   dx1 = (0 - (0.5 (-0.5) + 1) / 2) / 2 = -0.1875.
TEST(MvnLayer, BackwardIsCaffesFormulaByHand) {
  Blob in, out;
  set_blob(in, {1, 1, 1, 2}, {0, 2});
  LayerPtr layer = mvn("eps: 1");
  layer->setup({&in}, {&out});
  layer->forward({&in}, {&out});
  out.mutable_cpu_diff()[0] = 1;
  out.mutable_cpu_diff()[1] = 0;
  layer->backward({&out}, {true}, {&in});
  EXPECT_EQ(diff_of(in), (Values{0.1875f, -0.1875f}));
}

TEST(MvnLayer, MeanOnlyPerChannelAndAcrossByHand) {
  Blob in, out;
  set_blob(in, {1, 2, 1, 2}, {0, 2, 4, 6});
  LayerPtr per_channel = mvn("normalize_variance: false");
  per_channel->setup({&in}, {&out});
  per_channel->forward({&in}, {&out});
  EXPECT_EQ(data_of(out), (Values{-1, 1, -1, 1}));
  LayerPtr across = mvn("normalize_variance: false across_channels: true");
  across->setup({&in}, {&out});
  across->forward({&in}, {&out});
  EXPECT_EQ(data_of(out), (Values{-3, -1, 1, 3}));
}

// Across channels: mean 3, deviations (-3, -1, 1, 3), variance 5.
TEST(MvnLayer, AcrossChannelsNormalizedByHand) {
  Blob in, out;
  set_blob(in, {1, 2, 1, 2}, {0, 2, 4, 6});
  LayerPtr layer = mvn("across_channels: true");
  layer->setup({&in}, {&out});
  layer->forward({&in}, {&out});
  const float sd = std::sqrt(5.0f);
  expect_near(data_of(out), {-3 / sd, -1 / sd, 1 / sd, 3 / sd}, 1e-6f);
}

TEST(MvnLayer, Gradients) {
  for (const std::string fields : {"", "across_channels: true", "normalize_variance: false",
                                   "normalize_variance: false across_channels: true"}) {
    SCOPED_TRACE(fields);
    Blob in({2, 3, 3, 4}), out;
    fill_gaussian(in);
    LayerPtr layer = mvn(fields);
    check_gradient(*layer, {&in}, {&out});
  }
  Blob flat({3, 7}), out;  // legacy num x channels: 3 groups of 7 across channels
  fill_gaussian(flat);
  LayerPtr layer = mvn("across_channels: true");
  check_gradient(*layer, {&flat}, {&out});
}

TEST(MvnLayer, InPlaceMatchesOutOfPlace) {
  Blob in({2, 2, 3, 3}), out, same;
  fill_gaussian(in);
  same.reshape_like(in);
  std::copy(in.cpu_data(), in.cpu_data() + in.count(), same.mutable_cpu_data());
  LayerPtr a = mvn(""), b = mvn("");
  a->setup({&in}, {&out});
  a->forward({&in}, {&out});
  b->setup({&same}, {&same});
  b->forward({&same}, {&same});
  EXPECT_EQ(data_of(same), data_of(out));
}

}  // namespace
}  // namespace engine
