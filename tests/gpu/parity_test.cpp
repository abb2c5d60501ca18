// The CPU-vs-GPU parity harness: every registered layer type has a case here, and on a machine
// with a CUDA device each case runs forward and backward on the CPU and on the GPU with the same
// inputs, parameters and top gradients; tops, bottom gradients and parameter gradients must
// agree to 1e-4 relative. Without a device the cases skip, but the table's completeness is
// still checked, so a new layer type fails here until it has a case.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <set>

#include "core/context.hpp"
#include "core/layer_registry.hpp"
#include "gradient_checker.hpp"
#include "math/random.hpp"

namespace engine {
namespace {

struct ParityCase {
  std::string layer;                    // the LayerParameter text (name and type included)
  std::vector<std::vector<int>> bottoms;
  // bottom index -> number of classes, for bottoms that hold integer labels or indices
  std::vector<std::pair<int, int>> labels = {};
  bool backward = true;
  int tops = 1;
};

std::string type_of(const ParityCase& c) {
  const size_t start = c.layer.find("type: '") + 7;
  return c.layer.substr(start, c.layer.find('\'', start) - start);
}

const std::vector<ParityCase>& cases() {
  static const std::vector<ParityCase> table = {
      {"name: 'in' type: 'Input' top: 'a' input_param { shape { dim: 2 dim: 3 } }", {}, {}, false},
      {"name: 'd' type: 'DummyData' top: 'a' dummy_data_param { shape { dim: 2 dim: 3 } "
       "data_filler { type: 'constant' value: 2 } }", {}, {}, false},
      {"name: 'r' type: 'ReLU' relu_param { negative_slope: 0.1 }", {{2, 3, 5, 4}}},
      {"name: 's' type: 'Sigmoid'", {{2, 3, 5, 4}}},
      {"name: 't' type: 'TanH'", {{2, 3, 5, 4}}},
      // Dropout draws its mask from different generators on the two devices: TEST only.
      {"name: 'd' type: 'Dropout' phase: TEST", {{2, 3, 5, 4}}},
      {"name: 's' type: 'Softmax'", {{2, 7, 3, 2}}},
      {"name: 's' type: 'Softmax' softmax_param { engine: CAFFE axis: 2 }", {{2, 3, 5, 2}}},
      {"name: 's' type: 'SoftmaxWithLoss'", {{6, 4}, {6}}, {{1, 4}}},
      {"name: 's' type: 'SoftmaxWithLoss' loss_param { ignore_label: 1 }", {{4, 5, 2, 3}, {4, 1, 2, 3}}, {{1, 5}}},
      {"name: 'a' type: 'Accuracy' accuracy_param { top_k: 2 }", {{6, 5}, {6}}, {{1, 5}}, false},
      {"name: 'c' type: 'Convolution' convolution_param { num_output: 6 kernel_size: 3 pad: 1 "
       "stride: 2 group: 2 weight_filler { type: 'gaussian' std: 0.3 } "
       "bias_filler { type: 'gaussian' std: 0.3 } }", {{2, 4, 7, 6}}},
      {"name: 'c' type: 'Convolution' convolution_param { num_output: 4 kernel_size: 3 dilation: 2 "
       "engine: CAFFE weight_filler { type: 'gaussian' std: 0.3 } }", {{2, 3, 9, 8}}},
      {"name: 'i' type: 'InnerProduct' inner_product_param { num_output: 5 "
       "weight_filler { type: 'gaussian' std: 0.3 } bias_filler { type: 'gaussian' std: 0.3 } }",
       {{3, 2, 2, 3}}},
      {"name: 'i' type: 'InnerProduct' inner_product_param { num_output: 4 transpose: true "
       "weight_filler { type: 'gaussian' std: 0.3 } bias_filler { type: 'gaussian' std: 0.3 } }",
       {{5, 6}}},
      {"name: 's' type: 'Split'", {{2, 3, 4}}, {}, true, 2},
      {"name: 'c' type: 'Concat' concat_param { axis: 1 }", {{2, 3, 4}, {2, 2, 4}}},
      {"name: 's' type: 'Slice' slice_param { axis: 1 slice_point: 1 }", {{2, 3, 4}}, {}, true, 2},
      {"name: 's' type: 'Silence'", {{2, 3}}, {}, true, 0},
      {"name: 'f' type: 'Flatten'", {{2, 3, 4, 5}}},
      {"name: 'r' type: 'Reshape' reshape_param { shape { dim: 0 dim: -1 } }", {{2, 3, 4}}},
      {"name: 'e' type: 'Eltwise' eltwise_param { operation: SUM coeff: 1 coeff: -2 }",
       {{2, 3, 4}, {2, 3, 4}}},
      {"name: 'e' type: 'Eltwise' eltwise_param { operation: PROD }", {{2, 3, 4}, {2, 3, 4}}},
      {"name: 'e' type: 'Eltwise' eltwise_param { operation: MAX }", {{2, 3, 4}, {2, 3, 4}}},
      {"name: 'b' type: 'BatchNorm' phase: TRAIN", {{4, 3, 5, 2}}},
      {"name: 'b' type: 'BatchNorm' phase: TEST", {{4, 3, 5, 2}}},
      {"name: 's' type: 'Scale' scale_param { bias_term: true filler { type: 'gaussian' std: 1 } "
       "bias_filler { type: 'gaussian' std: 1 } }", {{2, 3, 4, 5}}},
      {"name: 'b' type: 'Bias' bias_param { filler { type: 'gaussian' std: 1 } }", {{2, 3, 4}}},
      {"name: 'p' type: 'Pooling' pooling_param { pool: MAX kernel_size: 3 stride: 2 pad: 1 }",
       {{2, 3, 7, 8}}},
      {"name: 'p' type: 'Pooling' pooling_param { pool: AVE kernel_size: 3 stride: 2 pad: 1 }",
       {{2, 3, 7, 8}}},
      {"name: 'p' type: 'Pooling' pooling_param { pool: MAX global_pooling: true }", {{2, 3, 5, 4}}},
      // Geometries whose floor rounding is Caffe's run on cuDNN; the same with engine: CAFFE on
      // our kernels.
      {"name: 'p' type: 'Pooling' pooling_param { pool: MAX kernel_size: 3 stride: 2 }",
       {{2, 3, 7, 7}}},
      {"name: 'p' type: 'Pooling' pooling_param { pool: AVE kernel_size: 3 stride: 2 pad: 1 }",
       {{2, 3, 7, 7}}},
      {"name: 'p' type: 'Pooling' pooling_param { pool: MAX kernel_size: 3 stride: 2 "
       "engine: CAFFE }", {{2, 3, 7, 7}}},
      {"name: 'p' type: 'Pooling' pooling_param { pool: AVE global_pooling: true }", {{2, 3, 5, 4}}},
      // MAX with the argmax mask as a second top: our kernels.
      {"name: 'p' type: 'Pooling' pooling_param { pool: MAX kernel_size: 3 stride: 2 }",
       {{2, 3, 7, 7}}, {}, true, 2},
      {"name: 'l' type: 'LRN' lrn_param { local_size: 5 alpha: 0.1 beta: 0.75 k: 2 }",
       {{2, 7, 4, 3}}},
      {"name: 'l' type: 'LRN' lrn_param { local_size: 3 alpha: 0.1 norm_region: WITHIN_CHANNEL }",
       {{2, 3, 5, 4}}},
      {"name: 'l' type: 'LRN' lrn_param { local_size: 3 alpha: 0.2 beta: 0.6 engine: CAFFE }",
       {{2, 6, 4, 3}}},
      {"name: 'p' type: 'PReLU' prelu_param { filler { type: 'uniform' min: 0 max: 0.5 } }",
       {{2, 3, 4, 5}}},
      {"name: 'e' type: 'ELU' elu_param { alpha: 0.7 }", {{2, 3, 4}}},
      {"name: 'a' type: 'AbsVal'", {{2, 3, 4}}},
      {"name: 'b' type: 'BNLL'", {{2, 3, 4}}},
      {"name: 'p' type: 'Power' power_param { power: 2 scale: 0.5 shift: 3 }", {{2, 3, 4}}},
      {"name: 'e' type: 'Exp' exp_param { base: 2 scale: 0.5 }", {{2, 3, 4}}},
      {"name: 'l' type: 'Log' log_param { shift: 10 }", {{2, 3, 4}}},
      {"name: 't' type: 'Threshold' threshold_param { threshold: 0.2 }", {{2, 3, 4}}, {}, false},
      {"name: 'c' type: 'Clip' clip_param { min: -0.5 max: 0.5 }", {{2, 3, 4}}},
      {"name: 's' type: 'Swish' swish_param { beta: 1.5 }", {{2, 3, 4}}},
      {"name: 'e' type: 'EuclideanLoss'", {{4, 3}, {4, 3}}},
      {"name: 's' type: 'SigmoidCrossEntropyLoss'", {{4, 3}, {4, 3}}, {{1, 2}}},
      {"name: 'h' type: 'HingeLoss'", {{4, 5}, {4}}, {{1, 5}}},
      {"name: 'm' type: 'MultinomialLogisticLoss'", {{4, 5}, {4}}, {{1, 5}}},
      {"name: 'i' type: 'InfogainLoss'", {{4, 5}, {4}, {1, 1, 5, 5}}, {{1, 5}}},
      {"name: 'c' type: 'ContrastiveLoss' contrastive_loss_param { margin: 2 }",
       {{4, 3}, {4, 3}, {4}}, {{2, 2}}},
      // cont (bottom 1) alternates 0, 1: sequences restart mid-way.
      {"name: 'r' type: 'RNN' recurrent_param { num_output: 3 "
       "weight_filler { type: 'gaussian' std: 0.5 } bias_filler { type: 'gaussian' std: 0.5 } }",
       {{3, 2, 4}, {3, 2}}, {{1, 2}}},
      {"name: 'l' type: 'LSTM' recurrent_param { num_output: 3 "
       "weight_filler { type: 'gaussian' std: 0.5 } bias_filler { type: 'gaussian' std: 0.5 } }",
       {{3, 2, 4}, {3, 2}}, {{1, 2}}},
      {"name: 'u' type: 'LSTMUnit'", {{1, 2, 3}, {1, 2, 12}, {1, 2}}, {{2, 2}}, true, 2},
      {"name: 'd' type: 'Deconvolution' convolution_param { num_output: 4 kernel_size: 3 "
       "stride: 2 pad: 1 group: 2 weight_filler { type: 'gaussian' std: 0.3 } "
       "bias_filler { type: 'gaussian' std: 0.3 } }", {{2, 4, 4, 3}}},
      {"name: 'c' type: 'Convolution' convolution_param { num_output: 8 kernel_size: 3 pad: 1 "
       "group: 4 weight_filler { type: 'gaussian' std: 0.3 } }", {{2, 4, 6, 5}}},  // depthwise
      // Convolution and Deconvolution: the lowered reference path on our im2col / col2im kernels
      // and cuBLAS (engine: CAFFE), and Deconvolution on cuDNN (the default) with dilation,
      // stride and padding; batches of several images exercise the gathered products.
      {"name: 'd' type: 'Deconvolution' convolution_param { num_output: 4 kernel_size: 3 "
       "stride: 2 pad: 1 group: 2 engine: CAFFE weight_filler { type: 'gaussian' std: 0.3 } "
       "bias_filler { type: 'gaussian' std: 0.3 } }", {{3, 4, 4, 3}}},
      {"name: 'd' type: 'Deconvolution' convolution_param { num_output: 3 kernel_h: 3 "
       "kernel_w: 2 dilation: 2 stride_h: 2 stride_w: 1 pad_h: 2 pad_w: 1 engine: CAFFE "
       "weight_filler { type: 'gaussian' std: 0.3 } bias_filler { type: 'gaussian' std: 0.3 } }",
       {{2, 2, 4, 5}}},
      {"name: 'd' type: 'Deconvolution' convolution_param { num_output: 3 kernel_size: 3 "
       "dilation: 2 stride: 2 pad: 1 bias_term: false "
       "weight_filler { type: 'gaussian' std: 0.3 } }", {{2, 4, 3, 4}}},
      {"name: 'd' type: 'Deconvolution' convolution_param { num_output: 2 kernel_size: 1 "
       "engine: CAFFE weight_filler { type: 'gaussian' std: 0.3 } }", {{1, 3, 4, 3}}},
      {"name: 'c' type: 'Convolution' convolution_param { num_output: 6 kernel_size: 3 pad: 1 "
       "stride: 2 group: 3 engine: CAFFE weight_filler { type: 'gaussian' std: 0.3 } "
       "bias_filler { type: 'gaussian' std: 0.3 } }", {{3, 6, 7, 6}}},
      {"name: 'c' type: 'Convolution' convolution_param { num_output: 4 kernel_h: 2 kernel_w: 3 "
       "pad_h: 0 pad_w: 2 stride_h: 3 stride_w: 2 engine: CAFFE "
       "weight_filler { type: 'gaussian' std: 0.3 } bias_filler { type: 'gaussian' std: 0.3 } }",
       {{2, 3, 8, 7}}},
      {"name: 'c' type: 'Convolution' convolution_param { num_output: 8 kernel_size: 3 pad: 1 "
       "group: 4 engine: CAFFE weight_filler { type: 'gaussian' std: 0.3 } }", {{2, 4, 6, 5}}},
      {"name: 'c' type: 'Convolution' convolution_param { num_output: 5 kernel_size: 1 "
       "engine: CAFFE weight_filler { type: 'gaussian' std: 0.3 } "
       "bias_filler { type: 'gaussian' std: 0.3 } }", {{1, 4, 3, 5}}},
      {"name: 'a' type: 'ArgMax' argmax_param { top_k: 2 out_max_val: true }", {{3, 5}}, {}, false},
      {"name: 'r' type: 'Reduction' reduction_param { operation: SUMSQ axis: 1 coeff: 0.5 }",
       {{2, 3, 4}}},
      {"name: 'c' type: 'Crop' crop_param { axis: 2 offset: 1 }", {{2, 3, 6, 5}, {2, 3, 4, 3}},
       {{1, 2}}},
      {"name: 't' type: 'Tile' tile_param { axis: 1 tiles: 3 }", {{2, 3, 4}}},
      {"name: 'b' type: 'BatchReindex'", {{4, 3}, {5}}, {{1, 4}}},
      {"name: 'f' type: 'Filter'", {{4, 3}, {4}}, {{1, 2}}},
      {"name: 'm' type: 'MVN' mvn_param { across_channels: false }", {{2, 3, 4, 5}}},
      {"name: 'e' type: 'Embed' embed_param { input_dim: 5 num_output: 3 "
       "weight_filler { type: 'gaussian' std: 1 } bias_filler { type: 'gaussian' std: 1 } }",
       {{4}}, {{0, 5}}},
      {"name: 'p' type: 'Parameter' parameter_param { shape { dim: 2 dim: 3 } }", {}},
      {"name: 's' type: 'SPP' spp_param { pyramid_height: 2 pool: MAX }", {{2, 3, 6, 5}}},
      // The losses' and Accuracy's own GPU passes, in the settings the rows above leave out:
      // Hinge L2 and a sample spread over several axes, legacy Contrastive and one whose margin
      // keeps every dissimilar pair inside it, InfogainLoss over an inner axis with ignore_label
      // in each normalization (VALID counts labels on the device), our softmax kernel and the
      // probabilities as a second top, Accuracy with ignore_label, an inner axis and the
      // per-class second top.
      {"name: 'h' type: 'HingeLoss' hinge_loss_param { norm: L2 }", {{4, 5}, {4}}, {{1, 5}}},
      {"name: 'h' type: 'HingeLoss' hinge_loss_param { norm: L1 }", {{3, 2, 2, 2}, {3}}, {{1, 8}}},
      {"name: 'm' type: 'MultinomialLogisticLoss'", {{3, 2, 3}, {3, 1}}, {{1, 6}}},
      {"name: 'c' type: 'ContrastiveLoss' contrastive_loss_param { margin: 4 legacy_version: true }",
       {{6, 3, 1, 1}, {6, 3, 1, 1}, {6}}, {{2, 2}}},
      {"name: 'c' type: 'ContrastiveLoss' contrastive_loss_param { margin: 20 }",
       {{4, 3}, {4, 3}, {4}}, {{2, 2}}},
      {"name: 'i' type: 'InfogainLoss' loss_param { ignore_label: 1 normalization: VALID }",
       {{3, 4, 2, 2}, {3, 1, 2, 2}, {4, 4}}, {{1, 4}}},
      {"name: 'i' type: 'InfogainLoss' loss_param { ignore_label: 1 normalization: FULL }",
       {{3, 4, 2, 2}, {3, 1, 2, 2}, {4, 4}}, {{1, 4}}},
      {"name: 'i' type: 'InfogainLoss' loss_param { ignore_label: 3 normalization: BATCH_SIZE }",
       {{3, 4, 2, 2}, {3, 2, 2}, {4, 4}}, {{1, 4}}},
      {"name: 'i' type: 'InfogainLoss' loss_param { normalization: NONE } "
       "infogain_loss_param { axis: 2 } softmax_param { engine: CAFFE }",
       {{2, 3, 5}, {2, 3}, {5, 5}}, {{1, 5}}, true, 2},
      {"name: 'a' type: 'Accuracy' accuracy_param { top_k: 3 ignore_label: 2 }", {{12, 5}, {12}},
       {{1, 5}}, false, 2},
      {"name: 'a' type: 'Accuracy' accuracy_param { axis: 1 top_k: 2 ignore_label: 0 }",
       {{2, 4, 3}, {2, 3}}, {{1, 4}}, false, 2},
      // Further settings of ArgMax, Reduction, MVN, Crop, Tile, BatchReindex, Filter and Embed.
      // A label bottom holds k % n: ArgMax on one sees many equal values (their order), and
      // repeated indices make BatchReindex and Embed add several rows into one.
      {"name: 'a' type: 'ArgMax' argmax_param { top_k: 4 out_max_val: true }", {{3, 8}},
       {{0, 3}}, false},
      {"name: 'a' type: 'ArgMax'", {{4, 2, 3}}, {}, false},
      {"name: 'a' type: 'ArgMax' argmax_param { axis: 1 top_k: 2 }", {{2, 5, 3}}, {}, false},
      {"name: 'a' type: 'ArgMax' argmax_param { axis: -2 top_k: 3 out_max_val: true }",
       {{2, 6, 4}}, {{0, 4}}, false},
      {"name: 'r' type: 'Reduction'", {{2, 3}}},
      {"name: 'r' type: 'Reduction' reduction_param { operation: SUM axis: 1 coeff: -2 }",
       {{2, 3, 4}}},
      {"name: 'r' type: 'Reduction' reduction_param { operation: ASUM axis: 2 }", {{2, 3, 4, 2}}},
      {"name: 'r' type: 'Reduction' reduction_param { operation: MEAN axis: -1 coeff: 3 }",
       {{3, 5}}},
      {"name: 'm' type: 'MVN'", {{2, 3, 10}}},
      {"name: 'm' type: 'MVN' mvn_param { normalize_variance: false }", {{2, 3, 4, 5}}},
      {"name: 'm' type: 'MVN' mvn_param { across_channels: true eps: 0.01 }", {{2, 3, 4, 5}}},
      {"name: 'c' type: 'Crop' crop_param { axis: 1 offset: 0 offset: 1 offset: 2 }",
       {{2, 4, 5, 6}, {2, 3, 3, 4}}, {{1, 2}}},
      {"name: 't' type: 'Tile' tile_param { axis: 0 tiles: 2 }", {{3, 4}}},
      {"name: 't' type: 'Tile' tile_param { axis: -1 tiles: 4 }", {{2, 3}}},
      {"name: 'b' type: 'BatchReindex'", {{3, 2, 2}, {7}}, {{1, 3}}},
      {"name: 'f' type: 'Filter'", {{5, 2, 3}, {5, 1}, {5}}, {{2, 2}}, true, 2},
      {"name: 'e' type: 'Embed' embed_param { input_dim: 4 num_output: 5 bias_term: false "
       "weight_filler { type: 'gaussian' std: 1 } }", {{2, 6}}, {{0, 4}}},
      // The recurrent layers' other bottoms and tops: x_static (bottom 2), and with
      // expose_hidden the initial state (h0, c0) as bottoms and the final one (h_T, c_T) as tops,
      // whose gradients flow too. SPP with a single level (the Pooling layer's top itself) and
      // averaging levels.
      {"name: 'r' type: 'RNN' recurrent_param { num_output: 3 "
       "weight_filler { type: 'gaussian' std: 0.5 } bias_filler { type: 'gaussian' std: 0.5 } }",
       {{3, 2, 4}, {3, 2}, {2, 5}}, {{1, 2}}},
      {"name: 'r' type: 'RNN' recurrent_param { num_output: 3 expose_hidden: true "
       "weight_filler { type: 'gaussian' std: 0.5 } bias_filler { type: 'gaussian' std: 0.5 } }",
       {{3, 2, 4}, {3, 2}, {2, 5}, {1, 2, 3}}, {{1, 2}}, true, 2},
      {"name: 'l' type: 'LSTM' recurrent_param { num_output: 3 expose_hidden: true "
       "weight_filler { type: 'gaussian' std: 0.5 } bias_filler { type: 'gaussian' std: 0.5 } }",
       {{3, 2, 4}, {3, 2}, {1, 2, 3}, {1, 2, 3}}, {{1, 2}}, true, 3},
      {"name: 'l' type: 'LSTM' recurrent_param { num_output: 3 expose_hidden: true "
       "weight_filler { type: 'gaussian' std: 0.5 } bias_filler { type: 'gaussian' std: 0.5 } }",
       {{3, 2, 4}, {3, 2}, {2, 5}, {1, 2, 3}, {1, 2, 3}}, {{1, 2}}, true, 3},
      {"name: 's' type: 'SPP' spp_param { pyramid_height: 1 pool: MAX }", {{2, 3, 6, 5}}},
      {"name: 's' type: 'SPP' spp_param { pyramid_height: 1 pool: AVE }", {{2, 3, 6, 5}}},
      {"name: 's' type: 'SPP' spp_param { pyramid_height: 3 pool: AVE }", {{2, 3, 9, 7}}},
      // One worker: the gather is a copy (several need a model-parallel group under mpirun).
      {"name: 'g' type: 'GatherChannels'", {{2, 3, 4, 5}}},
      {"name: 'k' type: 'KeepChannels' channel_exchange_param { workers: 2 worker: 1 }",
       {{2, 4, 3, 3}}},
      {"name: 'k' type: 'KeepChannels' channel_exchange_param { halo: 1 }", {{2, 5, 3, 3}}},
      {"name: 'h' type: 'HaloChannels' channel_exchange_param { halo: 2 }", {{2, 3, 4, 5}}},
  };
  return table;
}

// Layer types that read files or databases, and Python layers (they need the Python package):
// their own tests cover them.
const std::set<std::string> kDataSources = {"Data", "ImageData", "Python"};

TEST(ParityHarness, EveryRegisteredLayerTypeHasACase) {
  std::set<std::string> covered;
  for (const ParityCase& c : cases()) covered.insert(type_of(c));
  std::string missing;
  for (const LayerEntry& entry : layer_registry()) {
    if (!covered.count(entry.type) && !kDataSources.count(entry.type)) {
      missing += std::string(" ") + entry.type;
    }
  }
  EXPECT_TRUE(missing.empty()) << "layer types without a CPU-vs-GPU parity case:" << missing;
}

struct DeviceRun {
  std::vector<std::vector<float>> tops, bottom_diffs, param_diffs;
};

std::vector<float> values(const float* data, int64_t n) { return {data, data + n}; }

// Runs one case on `mode`. Inputs, parameters and top gradients come from `seed`, so both
// devices see the same ones.
DeviceRun run_case(const ParityCase& c, Mode mode, unsigned seed) {
  Context::set_mode(Mode::CPU);
  Context::set_seed(seed);
  std::vector<std::unique_ptr<Blob>> bottom_blobs, top_blobs;
  Blobs bottom, top;
  for (size_t i = 0; i < c.bottoms.size(); ++i) {
    bottom_blobs.push_back(std::make_unique<Blob>(c.bottoms[i]));
    Blob& blob = *bottom_blobs.back();
    const auto label = std::find_if(c.labels.begin(), c.labels.end(),
                                    [&](const auto& l) { return l.first == static_cast<int>(i); });
    if (label != c.labels.end()) {
      float* data = blob.mutable_cpu_data();
      for (int64_t k = 0; k < blob.count(); ++k) data[k] = static_cast<float>(k % label->second);
    } else if (type_of(c) == "InfogainLoss" || type_of(c) == "MultinomialLogisticLoss") {
      testing::fill_uniform(blob, 0.05f, 1.0f);  // probabilities / gains
    } else if (type_of(c) == "Log") {
      testing::fill_uniform(blob, 0.5f, 3.0f);
    } else {
      testing::fill_gaussian(blob);
    }
    bottom.push_back(&blob);
  }
  LayerParameter param = testing::layer_param(c.layer);
  for (int i = 0; i < c.tops; ++i) {
    top_blobs.push_back(std::make_unique<Blob>());
    top.push_back(top_blobs.back().get());
  }
  LayerPtr layer = create_layer(param);
  layer->setup(bottom, top);
  Context::set_mode(mode);
  layer->forward(bottom, top);
  DeviceRun run;
  for (Blob* blob : top) run.tops.push_back(values(blob->cpu_data(), blob->count()));
  if (c.backward) {
    Context::set_seed(seed + 1);
    for (Blob* blob : top) rng_gaussian(blob->count(), 0, 1, blob->mutable_cpu_diff());
    for (Blob* blob : bottom) blob->set_diff(0);
    for (auto& blob : layer->blobs()) blob->set_diff(0);
    std::vector<bool> propagate(bottom.size(), true);
    for (size_t i = 0; i < bottom.size(); ++i) {
      propagate[i] = layer->allow_force_backward(static_cast<int>(i));
    }
    for (const auto& label : c.labels) propagate[label.first] = false;
    layer->backward(top, propagate, bottom);
    for (size_t i = 0; i < bottom.size(); ++i) {
      if (propagate[i]) run.bottom_diffs.push_back(values(bottom[i]->cpu_diff(), bottom[i]->count()));
    }
    for (auto& blob : layer->blobs()) run.param_diffs.push_back(values(blob->cpu_diff(), blob->count()));
  }
  Context::set_mode(Mode::CPU);
  return run;
}

void expect_close(const std::vector<std::vector<float>>& cpu,
                  const std::vector<std::vector<float>>& gpu, const std::string& what) {
  ASSERT_EQ(cpu.size(), gpu.size()) << what;
  for (size_t i = 0; i < cpu.size(); ++i) {
    ASSERT_EQ(cpu[i].size(), gpu[i].size()) << what << " " << i;
    for (size_t k = 0; k < cpu[i].size(); ++k) {
      const double scale = std::max({1e-3, std::fabs(double(cpu[i][k])), std::fabs(double(gpu[i][k]))});
      EXPECT_LE(std::fabs(double(cpu[i][k]) - gpu[i][k]) / scale, 1e-4)
          << what << " " << i << " element " << k << ": CPU " << cpu[i][k] << ", GPU " << gpu[i][k];
    }
  }
}

// Each case runs on the CPU and repeats itself exactly: the harness is sound (and every layer is
// deterministic on the CPU) before any device compares against it.
class CpuRepeat : public ::testing::TestWithParam<size_t> {};

TEST_P(CpuRepeat, RunsTwiceTheSame) {
  const ParityCase& c = cases()[GetParam()];
  SCOPED_TRACE(c.layer);
  const DeviceRun first = run_case(c, Mode::CPU, 11);
  const DeviceRun second = run_case(c, Mode::CPU, 11);
  EXPECT_EQ(first.tops, second.tops);
  EXPECT_EQ(first.bottom_diffs, second.bottom_diffs);
  EXPECT_EQ(first.param_diffs, second.param_diffs);
  EXPECT_FALSE(first.tops.empty() && type_of(c) != "Silence");
}

class Parity : public ::testing::TestWithParam<size_t> {
 protected:
  void SetUp() override {
    if (Context::device_count() == 0) GTEST_SKIP() << "no CUDA device on this machine";
    Context::set_device(0);
  }
};

TEST_P(Parity, CpuAndGpuAgree) {
  const ParityCase& c = cases()[GetParam()];
  SCOPED_TRACE(c.layer);
  const DeviceRun cpu = run_case(c, Mode::CPU, 11);
  const DeviceRun gpu = run_case(c, Mode::GPU, 11);
  expect_close(cpu.tops, gpu.tops, "top");
  expect_close(cpu.bottom_diffs, gpu.bottom_diffs, "bottom gradient");
  expect_close(cpu.param_diffs, gpu.param_diffs, "parameter gradient");
}

std::string case_name(const ::testing::TestParamInfo<size_t>& info) {
  return type_of(cases()[info.param]) + "_" + std::to_string(info.param);
}

INSTANTIATE_TEST_SUITE_P(AllLayers, CpuRepeat, ::testing::Range<size_t>(0, cases().size()),
                         case_name);
INSTANTIATE_TEST_SUITE_P(AllLayers, Parity, ::testing::Range<size_t>(0, cases().size()), case_name);

// The gradient checker on the GPU, for the layers with their own GPU code.
class GpuGradient : public Parity {};

TEST_P(GpuGradient, MatchesFiniteDifferences) {
  const ParityCase& c = cases()[GetParam()];
  if (!c.backward || !c.labels.empty() || c.bottoms.empty()) GTEST_SKIP() << "no plain gradient";
  SCOPED_TRACE(c.layer);
  Context::set_mode(Mode::GPU);
  Context::set_seed(5);
  std::vector<std::unique_ptr<Blob>> owned;
  Blobs bottom, top;
  for (const auto& shape : c.bottoms) {
    owned.push_back(std::make_unique<Blob>(shape));
    testing::fill_gaussian(*owned.back());
    bottom.push_back(owned.back().get());
  }
  owned.push_back(std::make_unique<Blob>());
  top.push_back(owned.back().get());
  LayerPtr layer = create_layer(testing::layer_param(c.layer));
  testing::GradientCheckOptions options;
  if (type_of(c) == "ReLU" || type_of(c) == "AbsVal" || type_of(c) == "Clip" ||
      type_of(c) == "Reduction") {  // Reduction's ASUM bends at 0
    options.kink_range = 0.05f;
  }
  if (type_of(c) != "Split" && type_of(c) != "Slice" && type_of(c) != "Silence" &&
      type_of(c) != "Eltwise" && type_of(c) != "Pooling") {
    testing::check_gradient(*layer, bottom, top, options);
  }
  Context::set_mode(Mode::CPU);
}

INSTANTIATE_TEST_SUITE_P(AllLayers, GpuGradient, ::testing::Range<size_t>(0, cases().size()),
                         case_name);

// Layers registered with native GPU code keep a GPU pass on the device: once a first pass has
// run, and with every input's newest copy on the device, a second forward and backward copies
// none of the bottoms, tops or parameters between host and device.
size_t transfers(const Blob& blob) {
  return blob.data_memory()->transfers() + blob.diff_memory()->transfers();
}

// Layers whose last bottom's values decide the tops' shapes (Filter's selector), so that
// reshape must read that bottom on the host.
const std::set<std::string> kShapeDecidedByLastBottom = {"Filter"};

class StaysOnDevice : public Parity {};

TEST_P(StaysOnDevice, SecondPassMakesNoHostCopies) {
  const ParityCase& c = cases()[GetParam()];
  const auto entry = std::find_if(layer_registry().begin(), layer_registry().end(),
                                  [&](const LayerEntry& e) { return type_of(c) == e.type; });
  ASSERT_NE(entry, layer_registry().end());
  if (entry->devices != kCpuAndGpu) GTEST_SKIP() << type_of(c) << " has no native GPU code";
  SCOPED_TRACE(c.layer);
  Context::set_mode(Mode::CPU);
  Context::set_seed(3);
  std::vector<std::unique_ptr<Blob>> owned;
  Blobs bottom, top;
  for (size_t i = 0; i < c.bottoms.size(); ++i) {
    owned.push_back(std::make_unique<Blob>(c.bottoms[i]));
    float* data = owned.back()->mutable_cpu_data();
    for (int64_t k = 0; k < owned.back()->count(); ++k) data[k] = static_cast<float>(k % 2);
    bottom.push_back(owned.back().get());
  }
  for (int i = 0; i < c.tops; ++i) {
    owned.push_back(std::make_unique<Blob>());
    top.push_back(owned.back().get());
  }
  LayerPtr layer = create_layer(testing::layer_param(c.layer));
  layer->setup(bottom, top);
  Context::set_mode(Mode::GPU);
  std::vector<bool> propagate(bottom.size(), false);
  for (size_t i = 0; i < bottom.size(); ++i) {
    propagate[i] = layer->allow_force_backward(static_cast<int>(i));
  }
  for (const auto& label : c.labels) propagate[label.first] = false;
  const auto newest_on_device = [&] {
    for (Blob* blob : bottom) blob->mutable_gpu_data();
    for (Blob* blob : top) blob->mutable_gpu_diff();
    for (auto& blob : layer->blobs()) {
      blob->mutable_gpu_data();
      blob->mutable_gpu_diff();
    }
  };
  const auto counted = [&] {
    size_t total = 0;
    for (size_t i = 0; i < bottom.size(); ++i) {
      const bool exempt =
          kShapeDecidedByLastBottom.count(type_of(c)) && i + 1 == bottom.size();
      total += exempt ? bottom[i]->diff_memory()->transfers() : transfers(*bottom[i]);
    }
    for (Blob* blob : top) total += transfers(*blob);
    for (auto& blob : layer->blobs()) total += transfers(*blob);
    return total;
  };
  for (int pass = 0; pass < 2; ++pass) {
    const size_t before = counted();
    layer->forward(bottom, top);
    newest_on_device();
    if (c.backward) layer->backward(top, propagate, bottom);
    if (pass == 1) {
      EXPECT_EQ(counted(), before) << type_of(c) << " copied blobs between host and device";
    }
    newest_on_device();
  }
  Context::set_mode(Mode::CPU);
}

INSTANTIATE_TEST_SUITE_P(AllLayers, StaysOnDevice, ::testing::Range<size_t>(0, cases().size()),
                         case_name);

}  // namespace
}  // namespace engine
