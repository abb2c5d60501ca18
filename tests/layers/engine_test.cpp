#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "core/layer_registry.hpp"
#include "gradient_checker.hpp"
#include "math/onednn.hpp"

namespace engine {
namespace {

using namespace testing;

// Every layer with an oneDNN path, asked for it explicitly.
const std::vector<std::string> kOnednnLayers = {
    "type: 'Convolution' convolution_param { num_output: 2 kernel_size: 3 engine: ONEDNN }",
    "type: 'InnerProduct' inner_product_param { num_output: 2 engine: ONEDNN }",
    "type: 'Pooling' pooling_param { pool: MAX kernel_size: 2 engine: ONEDNN }",
    "type: 'LRN' lrn_param { local_size: 3 engine: ONEDNN }",
    "type: 'ReLU' relu_param { engine: ONEDNN }",
};

// engine: ONEDNN in a build without oneDNN is a user error that names the layer; with oneDNN the
// layer sets up.
TEST(EngineField, OnednnAskedForSetsUpOrNamesTheLayer) {
  for (const std::string& text : kOnednnLayers) {
    SCOPED_TRACE(text);
    Blob bottom({1, 2, 5, 5}), top;
    const std::string message = error_of([&] {
      LayerPtr layer = create_layer(layer_param("name: 'fast' " + text));
      layer->setup({&bottom}, {&top});
    });
    if (onednn_available()) {
      EXPECT_EQ(message, "");
    } else {
      EXPECT_TRUE(contains(message, "layer fast ("));
      EXPECT_TRUE(contains(message, "engine ONEDNN was asked for, but this build has no oneDNN"));
    }
  }
}

// engine: CAFFE always runs the reference code, whatever the build.
TEST(EngineField, CaffeSetsUpInEveryBuild) {
  for (std::string text : kOnednnLayers) {
    text.replace(text.find("ONEDNN"), 6, "CAFFE");
    SCOPED_TRACE(text);
    Blob bottom({1, 2, 5, 5}), top;
    EXPECT_EQ(error_of([&] {
                LayerPtr layer = create_layer(layer_param("name: 'ref' " + text));
                layer->setup({&bottom}, {&top});
              }),
              "");
  }
}

}  // namespace
}  // namespace engine
