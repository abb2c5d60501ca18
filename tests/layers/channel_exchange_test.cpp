// The model-parallel exchange layers on one process: KeepChannels' slices and halo drop,
// HaloChannels' zero halos at the edges of a lone worker, GatherChannels with one worker; exact
// values and the gradient checker. Several workers: tests/parallel/model_parallel_test.cpp
// (under mpirun, against the whole net).
#include <gtest/gtest.h>

#include "core/layer_registry.hpp"
#include "gradient_checker.hpp"

namespace engine {
namespace {

using namespace testing;

using Values = std::vector<float>;

Values values_of(const Blob& blob) { return {blob.cpu_data(), blob.cpu_data() + blob.count()}; }

Values forward(const std::string& param, Blob& in) {
  Blob out;
  LayerPtr layer = create_layer(layer_param(param));
  layer->setup({&in}, {&out});
  layer->forward({&in}, {&out});
  return values_of(out);
}

TEST(KeepChannels, KeepsTheWorkersSlice) {
  Blob in;
  set_blob(in, {2, 4, 1, 1}, {1, 2, 3, 4, 5, 6, 7, 8});
  EXPECT_EQ(forward("name: 'k' type: 'KeepChannels' "
                    "channel_exchange_param { workers: 2 worker: 1 }", in),
            (Values{3, 4, 7, 8}));
  EXPECT_EQ(forward("name: 'k' type: 'KeepChannels' channel_exchange_param { halo: 1 }", in),
            (Values{2, 3, 6, 7}));
}

TEST(HaloChannels, ALoneWorkersHalosAreZeros) {
  Blob in;
  set_blob(in, {1, 2, 1, 1}, {1, 2});
  EXPECT_EQ(forward("name: 'h' type: 'HaloChannels' channel_exchange_param { halo: 2 }", in),
            (Values{0, 0, 1, 2, 0, 0}));
}

TEST(GatherChannels, OneWorkerCopies) {
  Blob in;
  set_blob(in, {2, 3}, {1, 2, 3, 4, 5, 6});
  EXPECT_EQ(forward("name: 'g' type: 'GatherChannels'", in), (Values{1, 2, 3, 4, 5, 6}));
}

TEST(ChannelExchange, GradientsMatchFiniteDifferences) {
  for (const char* param :
       {"name: 'k' type: 'KeepChannels' channel_exchange_param { workers: 2 worker: 1 }",
        "name: 'k' type: 'KeepChannels' channel_exchange_param { halo: 1 }",
        "name: 'h' type: 'HaloChannels' channel_exchange_param { halo: 2 }",
        "name: 'g' type: 'GatherChannels'",
        "name: 'g' type: 'GatherChannels' channel_exchange_param { axis: 0 }"}) {
    SCOPED_TRACE(param);
    Blob in({2, 4, 3, 2}), out;
    fill_gaussian(in);
    LayerPtr layer = create_layer(layer_param(param));
    check_gradient(*layer, {&in}, {&out});
  }
}

TEST(ChannelExchange, SeveralWorkersNeedTheirGroup) {
  Blob in({2, 4}), out;
  LayerPtr layer = create_layer(
      layer_param("name: 'g' type: 'GatherChannels' channel_exchange_param { workers: 2 }"));
  layer->setup({&in}, {&out});
  EXPECT_THROW(
      {
        try {
          layer->forward({&in}, {&out});
        } catch (const Error& error) {
          EXPECT_NE(std::string(error.what()).find("needs the communicator of a model-parallel "
                                                   "group"),
                    std::string::npos)
              << error.what();
          throw;
        }
      },
      Error);
}

}  // namespace
}  // namespace engine
