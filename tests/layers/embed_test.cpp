#include <gtest/gtest.h>
#include <cmath>

#include "core/layer_registry.hpp"
#include "gradient_checker.hpp"

namespace engine {
namespace {

using namespace testing;

using Values = std::vector<float>;
using Shape = std::vector<int>;

LayerPtr embed(const std::string& fields, const std::string& name = "embed") {
  return create_layer(
      layer_param("name: '" + name + "' type: 'Embed' embed_param { " + fields + " }"));
}

// ---- Embed ----------------------------------------------------------------------------------

// Weights rows (1, 2), (3, 4), (5, 6); bias (0.5, -0.5).
TEST(EmbedLayer, LooksUpRowsByHand) {
  Blob in, out;
  set_blob(in, {2, 2}, {2, 0, 1, 2});
  LayerPtr layer = embed("input_dim: 3 num_output: 2");
  layer->setup({&in}, {&out});
  EXPECT_EQ(layer->blobs()[0]->shape(), (Shape{3, 2}));
  set_blob(*layer->blobs()[0], {1, 2, 3, 4, 5, 6});
  set_blob(*layer->blobs()[1], {0.5f, -0.5f});
  layer->forward({&in}, {&out});
  EXPECT_EQ(out.shape(), (Shape{2, 2, 2}));
  EXPECT_EQ(data_of(out), (Values{5.5f, 5.5f, 1.5f, 1.5f, 3.5f, 3.5f, 5.5f, 5.5f}));
}

// The gradient of row r sums the top gradients of every position holding r; the bias's sums
// every position's; both accumulate onto what the diffs hold.
TEST(EmbedLayer, ParameterGradientsAccumulateByHand) {
  Blob in, out;
  set_blob(in, {3}, {2, 0, 2});
  LayerPtr layer = embed("input_dim: 3 num_output: 2");
  layer->setup({&in}, {&out});
  layer->forward({&in}, {&out});
  set_blob(out, {1, 2, 10, 20, 100, 200});
  std::copy(out.cpu_data(), out.cpu_data() + 6, out.mutable_cpu_diff());
  layer->blobs()[0]->set_diff(1);
  layer->blobs()[1]->set_diff(1);
  layer->backward({&out}, {false}, {&in});
  EXPECT_EQ(diff_of(*layer->blobs()[0]), (Values{11, 21, 1, 1, 102, 203}));
  EXPECT_EQ(diff_of(*layer->blobs()[1]), (Values{112, 223}));
}

// Finite differences for the parameters: the lookup is linear in them, so the numbers must
// match the analytic gradient closely; the indices are held fixed.
TEST(EmbedLayer, ParameterGradientsNumerically) {
  for (bool bias : {true, false}) {
    Blob in, out;
    set_blob(in, {2, 3}, {0, 4, 4, 1, 3, 0});
    LayerPtr layer =
        embed(std::string("input_dim: 5 num_output: 3 weight_filler { type: 'gaussian' } ") +
              (bias ? "bias_filler { type: 'gaussian' }" : "bias_term: false"));
    layer->setup({&in}, {&out});
    layer->forward({&in}, {&out});
    Blob direction(out.shape());
    fill_gaussian(direction);
    std::copy(direction.cpu_data(), direction.cpu_data() + direction.count(),
              out.mutable_cpu_diff());
    for (auto& blob : layer->blobs()) blob->set_diff(0);
    layer->backward({&out}, {false}, {&in});
    for (auto& blob : layer->blobs()) {
      for (int i = 0; i < blob->count(); ++i) {
        const float keep = blob->cpu_data()[i];
        auto objective = [&](float value) {
          blob->mutable_cpu_data()[i] = value;
          layer->forward({&in}, {&out});
          double sum = 0;
          for (int j = 0; j < out.count(); ++j) {
            sum += double(out.cpu_data()[j]) * direction.cpu_data()[j];
          }
          return sum;
        };
        const double numeric = (objective(keep + 0.01f) - objective(keep - 0.01f)) / 0.02;
        blob->mutable_cpu_data()[i] = keep;
        EXPECT_NEAR(blob->cpu_diff()[i], numeric, 1e-3 * (1 + std::fabs(numeric)));
      }
    }
  }
}

TEST(EmbedLayer, Errors) {
  Blob in, out;
  set_blob(in, {3}, {0, 3, 1});
  LayerPtr layer = embed("input_dim: 3 num_output: 2", "e1");
  layer->setup({&in}, {&out});
  expect_error([&] { layer->forward({&in}, {&out}); },
               {"layer e1 (Embed)", "bottom value 3 (element 1 of 3)", "[0, 3)"});
  set_blob(in, {1.5f, 0, 0});
  expect_error([&] { layer->forward({&in}, {&out}); }, {"bottom value 1.5", "not an index"});
  set_blob(in, {-1, 0, 0});
  expect_error([&] { layer->forward({&in}, {&out}); }, {"bottom value -1"});
  set_blob(in, {0, 0, 0});
  layer->forward({&in}, {&out});
  expect_error([&] { layer->backward({&out}, {true}, {&in}); },
               {"layer e1 (Embed)", "no gradient for its bottom"});
  expect_error([&] { embed("input_dim: 3", "e2")->setup({&in}, {&out}); },
               {"layer e2 (Embed)", "num_output > 0"});
  expect_error([&] { embed("num_output: 3", "e3")->setup({&in}, {&out}); },
               {"layer e3 (Embed)", "input_dim > 0"});
  LayerPtr loaded = embed("input_dim: 3 num_output: 2", "e4");
  loaded->blobs().push_back(std::make_shared<Blob>(Shape{2, 3}));
  loaded->blobs().push_back(std::make_shared<Blob>(Shape{2}));
  expect_error([&] { loaded->setup({&in}, {&out}); },
               {"layer e4 (Embed)", "weights should have shape 3 x 2", "got 2 x 3"});
}

// ---- Parameter ------------------------------------------------------------------------------

TEST(ParameterLayer, TheTopIsTheBlob) {
  Blob out;
  LayerPtr layer = create_layer(layer_param(
      "name: 'p' type: 'Parameter' parameter_param { shape { dim: 2 dim: 3 } }"));
  layer->setup({}, {&out});
  ASSERT_EQ(layer->blobs().size(), 1u);
  EXPECT_EQ(layer->blobs()[0]->shape(), (Shape{2, 3}));
  EXPECT_EQ(out.shape(), (Shape{2, 3}));
  EXPECT_EQ(data_of(out), Values(6, 0.0f));
  layer->blobs()[0]->mutable_cpu_data()[4] = 7;
  layer->forward({}, {&out});
  EXPECT_EQ(out.cpu_data()[4], 7);
  out.mutable_cpu_diff()[1] = 3;
  layer->backward({&out}, {}, {});
  EXPECT_EQ(layer->blobs()[0]->cpu_diff()[1], 3) << "the consumer's gradient is the parameter's";
}

TEST(ParameterLayer, LoadedBlobsAreCheckedAndKept) {
  Blob out;
  LayerPtr layer = create_layer(layer_param(
      "name: 'p' type: 'Parameter' parameter_param { shape { dim: 4 } }"));
  layer->blobs().push_back(std::make_shared<Blob>(Shape{4}));
  layer->blobs()[0]->set_data(2);
  layer->setup({}, {&out});
  EXPECT_EQ(data_of(out), Values(4, 2.0f));
  LayerPtr wrong = create_layer(layer_param(
      "name: 'q' type: 'Parameter' parameter_param { shape { dim: 4 } }"));
  wrong->blobs().push_back(std::make_shared<Blob>(Shape{5}));
  expect_error([&] { wrong->setup({}, {&out}); },
               {"layer q (Parameter)", "should have shape 4", "got 5"});
  LayerPtr no_shape = create_layer(layer_param("name: 'r' type: 'Parameter'"));
  expect_error([&] { no_shape->setup({}, {&out}); }, {"layer r (Parameter)", "needs a shape"});
}

}  // namespace
}  // namespace engine
