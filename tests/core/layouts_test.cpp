// Layouts kept between layers (core/synced_memory.hpp, math/onednn.hpp): a memory's arranged
// copy and when it is converted, then nets whose oneDNN layers pass blocked blobs to each other
// computing what the same nets compute on plain blobs (ENGINE_LAYOUTS=plain), forward and
// backward, with every blob read plainly by the user.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <string>

#include "core/context.hpp"
#include "core/net.hpp"
#include "gradient_checker.hpp"
#include "io/prototxt.hpp"
#include "math/onednn.hpp"

namespace engine {
namespace {

using testing::data_of;
using testing::diff_of;
using testing::expect_agree;

// A toy arrangement: the values reversed, then two padding floats; it counts its conversions.
class Reversed : public HostLayout {
 public:
  explicit Reversed(size_t count) : count_(count) {}
  size_t bytes() const override { return (count_ + 2) * sizeof(float); }
  size_t plain_bytes() const override { return count_ * sizeof(float); }
  bool same_as(const HostLayout& other) const override {
    const auto* reversed = dynamic_cast<const Reversed*>(&other);
    return reversed && reversed->count_ == count_;
  }
  std::string name() const override { return "reversed"; }
  void to_plain(const void* arranged, void* plain) const override {
    const auto* from = static_cast<const float*>(arranged);
    auto* to = static_cast<float*>(plain);
    for (size_t i = 0; i < count_; ++i) to[i] = from[count_ - 1 - i];
    ++to_plain_calls;
  }
  void from_plain(const void* plain, void* arranged) const override {
    const auto* from = static_cast<const float*>(plain);
    auto* to = static_cast<float*>(arranged);
    for (size_t i = 0; i < count_; ++i) to[count_ - 1 - i] = from[i];
    to[count_] = to[count_ + 1] = 0;
  }
  mutable int to_plain_calls = 0;

 private:
  size_t count_;
};

const float* floats(const void* pointer) { return static_cast<const float*>(pointer); }

// Writes `values` into the memory as `layout` arranges them; returns where.
float* write_arranged(SyncedMemory& memory, const std::shared_ptr<Reversed>& layout,
                      const std::vector<float>& values) {
  auto* arranged = static_cast<float*>(memory.mutable_arranged_data(layout));
  std::copy(values.begin(), values.end(), arranged);
  return arranged;
}

TEST(Arrangement, WrittenArrangedIsConvertedOnceForPlainReaders) {
  SyncedMemory memory(3 * sizeof(float));
  auto layout = std::make_shared<Reversed>(3);
  const float* arranged = write_arranged(memory, layout, {3, 2, 1});
  EXPECT_TRUE(memory.plain_stale());
  EXPECT_EQ(memory.arranged_data(*layout), arranged);
  const float* plain = floats(memory.host_data());
  EXPECT_EQ(plain[0], 1);
  EXPECT_EQ(plain[1], 2);
  EXPECT_EQ(plain[2], 3);
  EXPECT_FALSE(memory.plain_stale());
  memory.host_data();
  EXPECT_EQ(layout->to_plain_calls, 1);
  // Both copies hold the values now: a reader in the arrangement still finds it.
  EXPECT_EQ(memory.arranged_data(*layout), arranged);
  EXPECT_TRUE(memory.arranged_data(Reversed(4)) == nullptr) << "another arrangement";
}

TEST(Arrangement, PlainWritesDropTheArrangement) {
  SyncedMemory memory(2 * sizeof(float));
  auto layout = std::make_shared<Reversed>(2);
  memory.mutable_arranged_data(layout);
  static_cast<float*>(memory.mutable_host_data())[0] = 7;
  EXPECT_TRUE(memory.arranged_data(*layout) == nullptr);
  EXPECT_TRUE(memory.arranged_layout() == nullptr);
  EXPECT_FALSE(memory.plain_stale());
  EXPECT_EQ(floats(memory.host_data())[0], 7);
}

TEST(Arrangement, ACopyKeepsThePlainValuesCurrent) {
  SyncedMemory memory(2 * sizeof(float));
  auto* plain = static_cast<float*>(memory.mutable_host_data());
  plain[0] = 5;
  plain[1] = 6;
  auto layout = std::make_shared<Reversed>(2);
  void* copy = memory.arranged_copy(layout);
  layout->from_plain(memory.host_data(), copy);
  EXPECT_FALSE(memory.plain_stale());
  EXPECT_EQ(floats(memory.arranged_data(*layout))[0], 6);
  EXPECT_EQ(floats(memory.host_data())[1], 6);
  EXPECT_EQ(layout->to_plain_calls, 0) << "nothing to convert";
}

TEST(Arrangement, ResizingKeepsTheValuesPlain) {
  SyncedMemory memory(3 * sizeof(float));
  write_arranged(memory, std::make_shared<Reversed>(3), {30, 20, 10});
  memory.resize(2 * sizeof(float));
  EXPECT_TRUE(memory.arranged_layout() == nullptr);
  EXPECT_EQ(floats(memory.host_data())[0], 10);
  EXPECT_EQ(floats(memory.host_data())[1], 20);
}

TEST(Arrangement, AnArrangementOfAnotherSizeIsRefused) {
  SyncedMemory memory(3 * sizeof(float));
  EXPECT_DEATH(memory.mutable_arranged_data(std::make_shared<Reversed>(4)), "another size");
}

TEST(Arrangement, ZerosSetLazilyAreWrittenOnFirstUseOrSkippedByAnOverwrite) {
  SyncedMemory memory(3 * sizeof(float));
  auto* values = static_cast<float*>(memory.mutable_host_data());
  values[0] = values[1] = values[2] = 7;
  write_arranged(memory, std::make_shared<Reversed>(3), {1, 2, 3});
  memory.set_zero();
  EXPECT_TRUE(memory.zero_pending());
  EXPECT_TRUE(memory.arranged_layout() == nullptr) << "the arrangement is dropped";
  EXPECT_EQ(values[0], 7) << "no zeros written yet";
  EXPECT_EQ(memory.host_data(), values) << "the same buffer";
  EXPECT_EQ(values[0], 0);
  EXPECT_EQ(values[2], 0);
  EXPECT_FALSE(memory.zero_pending());
  // An overwrite takes the buffer as it is.
  values[1] = 5;
  memory.set_zero();
  const uint64_t stamp = memory.stamp();
  EXPECT_EQ(memory.host_data_to_overwrite(), values);
  EXPECT_EQ(values[1], 5) << "not zeroed first";
  EXPECT_FALSE(memory.zero_pending());
  EXPECT_TRUE(memory.changed_since(stamp));
  // Values handed out plainly are zeroed at once: their holder reads the buffer itself.
  memory.expose_host();
  memory.set_zero();
  EXPECT_FALSE(memory.zero_pending());
  EXPECT_EQ(values[1], 0);
}

TEST(Arrangement, AConvertedCopyHoldsUntilTheValuesChange) {
  SyncedMemory memory(2 * sizeof(float));
  write_arranged(memory, std::make_shared<Reversed>(2), {4, 3});
  auto other = std::make_shared<Reversed>(2);
  EXPECT_TRUE(memory.converted_data(*other) == nullptr);
  void* converted = memory.converted_copy(other);
  ASSERT_TRUE(converted != nullptr);
  EXPECT_EQ(memory.converted_data(*other), converted);
  EXPECT_TRUE(memory.converted_data(Reversed(3)) == nullptr) << "another arrangement";
  EXPECT_TRUE(memory.plain_stale()) << "the first arrangement still holds the values";
  // Reading the plain values changes none; writing them does.
  memory.host_data();
  EXPECT_EQ(memory.converted_data(*other), converted);
  memory.mutable_host_data();
  EXPECT_TRUE(memory.converted_data(*other) == nullptr);
  memory.converted_copy(other);
  write_arranged(memory, std::make_shared<Reversed>(2), {1, 2});
  EXPECT_TRUE(memory.converted_data(*other) == nullptr);
  memory.converted_copy(other);
  memory.expose_host();
  EXPECT_TRUE(memory.converted_data(*other) == nullptr);
  EXPECT_TRUE(memory.converted_copy(other) == nullptr);
}

#ifdef ENGINE_USE_ONEDNN

// Values a layer left in nChw8c, read by a primitive in nhwc bf16: reordered straight from the
// blocks (the plain values stay out of date), into what the reorder from the plain values gives.
TEST(OnednnLayout, AnInputInAnotherFormatConvertsFromTheBlocksDirectly) {
  using dnnl::memory;
  const memory::dims dims = {2, 12, 3, 5};
  const onednn::LayoutPtr blocked =
      onednn::make_layout(memory::desc(dims, memory::data_type::f32, memory::format_tag::nChw8c));
  const memory::desc wanted(dims, memory::data_type::bf16, memory::format_tag::nhwc);
  std::vector<float> values(2 * 12 * 3 * 5);
  for (size_t i = 0; i < values.size(); ++i) values[i] = static_cast<float>(i) * 0.37f - 20;
  SyncedMemory memory(values.size() * sizeof(float));
  blocked->from_plain(values.data(), memory.mutable_arranged_data(blocked));
  onednn::Input input;
  input.init(wanted);
  const auto* read = static_cast<const uint16_t*>(input.in(memory).get_data_handle());
  EXPECT_TRUE(memory.plain_stale());
  std::vector<uint16_t> expected(values.size());
  input.layout()->from_plain(values.data(), expected.data());
  EXPECT_EQ(std::vector<uint16_t>(read, read + values.size()), expected);
  // A second reader in that format finds the conversion; new values void it.
  EXPECT_EQ(input.in(memory).get_data_handle(), read);
  values[0] = 99;
  blocked->from_plain(values.data(), memory.mutable_arranged_data(blocked));
  expected[0] = static_cast<uint16_t>(0x42c6);  // 99 in bf16
  read = static_cast<const uint16_t*>(input.in(memory).get_data_handle());
  EXPECT_EQ(read[0], expected[0]);
}

TEST(OnednnLayout, BlockedRoundTripIsExact) {
  const dnnl::memory::dims dims = {2, 16, 3, 5};
  const dnnl::memory::desc blocked(dims, dnnl::memory::data_type::f32,
                                   dnnl::memory::format_tag::nChw8c);
  const onednn::LayoutPtr layout = onednn::make_layout(blocked);
  EXPECT_FALSE(layout->plain());
  EXPECT_TRUE(onednn::make_layout(onednn::plain_desc(dims))->plain());
  std::vector<float> values(2 * 16 * 3 * 5), arranged(layout->bytes() / sizeof(float)), back(values.size());
  for (size_t i = 0; i < values.size(); ++i) values[i] = static_cast<float>(i) * 0.5f - 3;
  layout->from_plain(values.data(), arranged.data());
  // nChw8c: channel c of image n at (h, w) is at ((n * 2 + c / 8) * 15 + h * 5 + w) * 8 + c % 8.
  EXPECT_EQ(arranged[((1 * 2 + 1) * 15 + 2 * 5 + 3) * 8 + 3], values[((1 * 16 + 11) * 3 + 2) * 5 + 3]);
  layout->to_plain(arranged.data(), back.data());
  EXPECT_EQ(back, values);
}

// AlexNet's pattern on a small scale, every layer on oneDNN: conv -> ReLU -> LRN -> pool ->
// grouped conv -> ReLU -> conv -> ReLU -> pool -> InnerProduct -> loss. 16 and 24 channels fill
// AVX2's and AVX-512's channel blocks; 20 does not (padding).
NetParameter chain_net(int middle_channels) {
  const std::string middle = std::to_string(middle_channels);
  NetParameter param;
  parse_text(
      "layer { name: 'in' type: 'Input' top: 'data' top: 'label' "
      "  input_param { shape { dim: 2 dim: 3 dim: 19 dim: 19 } shape { dim: 2 } } }\n"
      "layer { name: 'conv1' type: 'Convolution' bottom: 'data' top: 'conv1' "
      "  convolution_param { num_output: 16 kernel_size: 5 stride: 2 engine: ONEDNN "
      "  weight_filler { type: 'gaussian' std: 0.2 } bias_filler { type: 'gaussian' std: 0.1 } } }\n"
      "layer { name: 'relu1' type: 'ReLU' bottom: 'conv1' top: 'conv1' }\n"
      "layer { name: 'norm1' type: 'LRN' bottom: 'conv1' top: 'norm1' "
      "  lrn_param { local_size: 5 alpha: 0.001 beta: 0.75 engine: ONEDNN } }\n"
      "layer { name: 'pool1' type: 'Pooling' bottom: 'norm1' top: 'pool1' "
      "  pooling_param { pool: MAX kernel_size: 3 stride: 2 engine: ONEDNN } }\n"
      "layer { name: 'conv2' type: 'Convolution' bottom: 'pool1' top: 'conv2' "
      "  convolution_param { num_output: " + middle + " kernel_size: 3 pad: 1 group: 2 engine: ONEDNN "
      "  weight_filler { type: 'gaussian' std: 0.2 } bias_filler { type: 'gaussian' std: 0.1 } } }\n"
      "layer { name: 'relu2' type: 'ReLU' bottom: 'conv2' top: 'conv2' }\n"
      "layer { name: 'conv3' type: 'Convolution' bottom: 'conv2' top: 'conv3' "
      "  convolution_param { num_output: 16 kernel_size: 3 pad: 1 engine: ONEDNN "
      "  weight_filler { type: 'gaussian' std: 0.2 } bias_filler { type: 'gaussian' std: 0.1 } } }\n"
      "layer { name: 'relu3' type: 'ReLU' bottom: 'conv3' top: 'conv3' }\n"
      "layer { name: 'pool3' type: 'Pooling' bottom: 'conv3' top: 'pool3' "
      "  pooling_param { pool: AVE kernel_size: 2 stride: 2 engine: ONEDNN } }\n"
      "layer { name: 'ip' type: 'InnerProduct' bottom: 'pool3' top: 'ip' "
      "  inner_product_param { num_output: 3 weight_filler { type: 'gaussian' std: 0.1 } } }\n"
      "layer { name: 'loss' type: 'SoftmaxWithLoss' bottom: 'ip' bottom: 'label' top: 'loss' }\n",
      "<layouts test net>", &param);
  param.mutable_state()->set_phase(TRAIN);
  return param;
}

// Runs a pass with layouts kept or not.
class LayoutSetting {
 public:
  explicit LayoutSetting(bool keep) {
    if (!keep) setenv("ENGINE_LAYOUTS", "plain", 1);
  }
  ~LayoutSetting() { unsetenv("ENGINE_LAYOUTS"); }
};

void fill_inputs(Net& net) {
  Context::set_seed(5);
  testing::fill_gaussian(*net.blob_by_name("data"));
  if (!net.has_blob("label")) return;
  float* label = net.blob_by_name("label")->mutable_cpu_data();
  label[0] = 0;
  label[1] = 2;
}

// A oneDNN convolution layer's text.
std::string conv(const std::string& name, const std::string& bottom, int outputs,
                 const std::string& geometry) {
  return "layer { name: '" + name + "' type: 'Convolution' bottom: '" + bottom + "' top: '" +
         name + "' convolution_param { num_output: " + std::to_string(outputs) + " " + geometry +
         " engine: ONEDNN weight_filler { type: 'gaussian' std: 0.3 } "
         "bias_filler { type: 'gaussian' std: 0.1 } } }\n";
}

// data (2 x 3 x 9 x 9) -> conv1 (16 channels) -> `middle` -> conv3 (8 channels, from `last`)
// -> InnerProduct -> SoftmaxWithLoss, in TRAIN.
NetParameter small_net(const std::string& middle, const std::string& last) {
  NetParameter param;
  parse_text(
      "layer { name: 'in' type: 'Input' top: 'data' top: 'label' "
      "  input_param { shape { dim: 2 dim: 3 dim: 9 dim: 9 } shape { dim: 2 } } }\n" +
          conv("conv1", "data", 16, "kernel_size: 3 pad: 1") + middle +
          conv("conv3", last, 8, "kernel_size: 3") +
          "layer { name: 'ip' type: 'InnerProduct' bottom: 'conv3' top: 'ip' "
          "  inner_product_param { num_output: 3 weight_filler { type: 'gaussian' std: 0.1 } } }\n"
          "layer { name: 'loss' type: 'SoftmaxWithLoss' bottom: 'ip' bottom: 'label' top: 'loss' }\n",
      "<layouts test net>", &param);
  param.mutable_state()->set_phase(TRAIN);
  return param;
}

// A residual block: conv1 -> split -> (conv2a -> ReLU -> conv2b) + 0.5 conv1 -> ReLU -> conv3:
// the sum and the ReLUs compute on the blocked blobs.
NetParameter residual_net() {
  return small_net(conv("conv2a", "conv1", 16, "kernel_size: 1") +
                       "layer { name: 'relu2a' type: 'ReLU' bottom: 'conv2a' top: 'conv2a' }\n" +
                       conv("conv2b", "conv2a", 16, "kernel_size: 3 pad: 1") +
                       "layer { name: 'sum' type: 'Eltwise' bottom: 'conv2b' bottom: 'conv1' "
                       "  top: 'sum' eltwise_param { operation: SUM coeff: 1 coeff: 0.5 } }\n"
                       "layer { name: 'relu' type: 'ReLU' bottom: 'sum' top: 'sum' }\n",
                   "sum");
}

// An inception module: conv1 -> split -> 1x1 conv, 3x3 conv, 3x3 max pooling -> Concat -> conv3:
// the Concat joins the blocked branches as they are.
NetParameter inception_net() {
  return small_net(conv("a", "conv1", 8, "kernel_size: 1") +
                       "layer { name: 'relu_a' type: 'ReLU' bottom: 'a' top: 'a' }\n" +
                       conv("b", "conv1", 16, "kernel_size: 3 pad: 1") +
                       "layer { name: 'pool' type: 'Pooling' bottom: 'conv1' top: 'pool' "
                       "  pooling_param { pool: MAX kernel_size: 3 stride: 1 pad: 1 engine: ONEDNN } }\n"
                       "layer { name: 'joined' type: 'Concat' bottom: 'a' bottom: 'b' bottom: 'pool' "
                       "  top: 'joined' }\n",
                   "joined");
}

// Two nets of the same weights and inputs, one run with layouts kept and one on plain blobs,
// for two training steps (forward, backward, new weights): every blob in `compared`, its data
// and gradient, and every parameter gradient agree. The blobs in `blocked` must be left
// arranged by the forward pass (no layer read them plainly).
void expect_kept_layouts_agree(const NetParameter& param, const std::vector<std::string>& compared,
                               const std::vector<std::string>& blocked) {
  Context::set_seed(11);
  Net kept(param);
  Context::set_seed(11);
  Net plain(param);
  fill_inputs(kept);
  fill_inputs(plain);
  for (int step = 0; step < 2; ++step) {
    for (Net* net : {&kept, &plain}) {
      LayoutSetting setting(net == &kept);
      net->clear_param_diffs();
      net->forward();
      for (const std::string& name : blocked) {
        EXPECT_EQ(net->blob_by_name(name)->data_memory()->plain_stale(), net == &kept) << name;
      }
      net->backward();
    }
    for (const std::string& name : compared) {
      const Blob& a = *kept.blob_by_name(name);
      const Blob& b = *plain.blob_by_name(name);
      expect_agree(data_of(b), data_of(a), name + " data", 1e-5f);
      expect_agree(diff_of(b), diff_of(a), name + " diff", 1e-5f);
    }
    for (size_t p = 0; p < kept.learnable_params().size(); ++p) {
      expect_agree(diff_of(*plain.learnable_params()[p]), diff_of(*kept.learnable_params()[p]),
                   "parameter " + std::to_string(p) + " diff", 1e-5f);
    }
    // New weights, written plainly as a solver does: the arranged copies of the old ones (the
    // weights' memory keeps them between passes) must not be used.
    for (Net* net : {&kept, &plain}) {
      for (Blob* weights : net->learnable_params()) {
        float* values = weights->mutable_cpu_data();
        for (int64_t i = 0; i < weights->count(); ++i) values[i] *= -0.75f;
      }
    }
  }
}

class KeptLayouts : public ::testing::TestWithParam<int> {};

TEST_P(KeptLayouts, ANetComputesWhatItComputesOnPlainBlobs) {
  expect_kept_layouts_agree(chain_net(GetParam()),
                            {"conv1", "norm1", "pool1", "conv2", "conv3", "pool3", "ip"},
                            {"norm1", "conv3"});
}

INSTANTIATE_TEST_SUITE_P(Channels, KeptLayouts, ::testing::Values(24, 20));

TEST(KeptLayoutsTest, AResidualSumComputesOnTheBlocks) {
  expect_kept_layouts_agree(residual_net(), {"conv1", "conv2a", "conv2b", "sum", "conv3", "ip"},
                            {"conv2b", "sum"});
}

TEST(KeptLayoutsTest, AConcatJoinsTheBlocks) {
  expect_kept_layouts_agree(inception_net(), {"conv1", "a", "b", "pool", "joined", "conv3", "ip"},
                            {"a", "b", "pool", "joined"});
}

// MobileNetV2's pattern in inference: conv -> ReLU6 (Clip, in place) -> depthwise conv.
TEST(KeptLayoutsTest, AnInferenceClipComputesOnTheBlocks) {
  NetParameter param;
  parse_text(
      "layer { name: 'in' type: 'Input' top: 'data' "
      "  input_param { shape { dim: 2 dim: 3 dim: 9 dim: 9 } } }\n"
      "layer { name: 'conv1' type: 'Convolution' bottom: 'data' top: 'conv1' "
      "  convolution_param { num_output: 16 kernel_size: 3 pad: 1 engine: ONEDNN "
      "  weight_filler { type: 'gaussian' std: 2 } bias_filler { type: 'gaussian' std: 1 } } }\n"
      "layer { name: 'relu6' type: 'Clip' bottom: 'conv1' top: 'conv1' "
      "  clip_param { min: 0 max: 6 } }\n"
      "layer { name: 'dw' type: 'Convolution' bottom: 'conv1' top: 'dw' "
      "  convolution_param { num_output: 16 group: 16 kernel_size: 3 pad: 1 engine: ONEDNN "
      "  weight_filler { type: 'gaussian' std: 0.3 } bias_filler { type: 'gaussian' std: 0.1 } } }\n",
      "<clip test net>", &param);
  param.mutable_state()->set_phase(TEST);
  std::vector<float> results[2][2];
  // Unfused, so that the Clip layer itself runs (fused, the convolution would clip).
  setenv("ENGINE_FUSION", "off", 1);
  for (bool keep : {true, false}) {
    LayoutSetting setting(keep);
    Context::set_seed(11);
    Net net(param);
    fill_inputs(net);
    net.forward();
    EXPECT_EQ(net.blob_by_name("conv1")->data_memory()->plain_stale(), keep);
    results[keep][0] = data_of(*net.blob_by_name("conv1"));
    results[keep][1] = data_of(*net.blob_by_name("dw"));
  }
  unsetenv("ENGINE_FUSION");
  int clipped = 0;
  for (float v : results[false][0]) clipped += v == 0 || v == 6;
  EXPECT_GT(clipped, 0);
  expect_agree(results[false][0], results[true][0], "conv1 after Clip", 1e-6f);
  expect_agree(results[false][1], results[true][1], "dw", 1e-5f);
}

TEST(KeptLayoutsTest, AUserWriteBetweenPassesIsSeen) {
  Context::set_seed(11);
  Net net(chain_net(24));
  fill_inputs(net);
  net.forward();
  const int conv2 = 5;
  ASSERT_EQ(net.layer_names()[conv2], "conv2");
  net.forward_from_to(conv2, conv2);  // without its ReLU: W x + b
  const std::vector<float> before = data_of(*net.blob_by_name("conv2"));
  // conv2 keeps its blocked copy of pool1 in pool1's memory; the user's write must void it.
  Blob& pool1 = *net.blob_by_name("pool1");
  EXPECT_TRUE(pool1.data_memory()->arranged_layout() != nullptr);
  std::vector<float> halved = data_of(pool1);
  for (float& v : halved) v *= 0.5f;
  std::memcpy(pool1.mutable_cpu_data(), halved.data(), halved.size() * sizeof(float));
  net.forward_from_to(conv2, conv2);
  // W (x / 2) + b = (W x + b) / 2 + b / 2.
  const Blob& bias = *net.layer_by_name("conv2").blobs()[1];
  const int64_t plane = net.blob_by_name("conv2")->count(2);
  std::vector<float> expected(before.size());
  for (size_t i = 0; i < before.size(); ++i) {
    const int64_t channel = static_cast<int64_t>(i) / plane % bias.count();
    expected[i] = 0.5f * before[i] + 0.5f * bias.cpu_data()[channel];
  }
  expect_agree(expected, data_of(*net.blob_by_name("conv2")), "conv2 from the user's values", 1e-5f);
}

#endif  // ENGINE_USE_ONEDNN

}  // namespace
}  // namespace engine
