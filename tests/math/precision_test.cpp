// Reduced precision (math/precision.hpp, core/rounded_operands.hpp): the rounding itself, worked
// out by hand; a bf16 or fp16 convolution and inner product compute exactly what the fp32 layer
// computes on operands rounded beforehand, forward and backward, on every engine; the net's
// blobs and the master weights keep their fp32 values; and a net's, a solver's and the command
// line's `precision` reach the layers.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "core/context.hpp"
#include "core/layer_registry.hpp"
#include "core/net.hpp"
#include "gradient_checker.hpp"
#include "io/prototxt.hpp"
#include "math/precision.hpp"
#include "solvers/solver.hpp"

namespace engine {
namespace {

using testing::data_of;
using testing::diff_of;
using testing::expect_agree;
using testing::fill_gaussian;
using testing::layer_param;

float rounded(Precision precision, float x) {
  float y = 0;
  cpu::round_to(precision, 1, &x, &y);
  return y;
}

TEST(RoundTo, Bf16KeepsEightSignificantBitsTiesToEven) {
  EXPECT_EQ(rounded(BF16, 1.0f), 1.0f);
  EXPECT_EQ(rounded(BF16, 1.0f + 1.0f / 128), 1.0f + 1.0f / 128);  // representable
  EXPECT_EQ(rounded(BF16, 1.0f + 1.0f / 256), 1.0f);  // halfway: to the even 1.0
  EXPECT_EQ(rounded(BF16, 1.0f + 3.0f / 256), 1.0f + 4.0f / 256);  // halfway: to the even 1 + 2^-6
  EXPECT_EQ(rounded(BF16, 1.0f + 1.0f / 256 + 1.0f / 4096), 1.0f + 1.0f / 128);  // above half
  EXPECT_EQ(rounded(BF16, -3.14159265f), -3.140625f);
  EXPECT_EQ(rounded(BF16, 1e-40f), 1e-40f - std::fmod(1e-40f, 0x1p-133f));  // subnormal kept
  EXPECT_EQ(rounded(BF16, std::numeric_limits<float>::infinity()),
            std::numeric_limits<float>::infinity());
  // The largest float lies past bf16's largest value by more than half a step: infinity.
  EXPECT_EQ(rounded(BF16, std::numeric_limits<float>::max()),
            std::numeric_limits<float>::infinity());
  EXPECT_TRUE(std::isnan(rounded(BF16, std::numeric_limits<float>::quiet_NaN())));
  // A NaN whose payload lies in the dropped bits must not become infinity.
  const float low_payload_nan = [] {
    const uint32_t bits = 0x7f800001u;
    float value;
    std::memcpy(&value, &bits, sizeof value);
    return value;
  }();
  EXPECT_TRUE(std::isnan(rounded(BF16, low_payload_nan)));
}

TEST(RoundTo, Fp16KeepsElevenSignificantBitsAndItsRange) {
  EXPECT_EQ(rounded(FP16, 1.0f + 1.0f / 1024), 1.0f + 1.0f / 1024);
  EXPECT_EQ(rounded(FP16, 1.0f + 1.0f / 2048), 1.0f);  // halfway: to even
  EXPECT_EQ(rounded(FP16, 1.0f + 3.0f / 2048), 1.0f + 2.0f / 1024);
  EXPECT_EQ(rounded(FP16, 65504.0f), 65504.0f);  // the largest fp16
  EXPECT_EQ(rounded(FP16, 65520.0f), std::numeric_limits<float>::infinity());
  EXPECT_EQ(rounded(FP16, 0x1p-24f), 0x1p-24f);  // the smallest subnormal
  EXPECT_EQ(rounded(FP16, 0x1p-26f), 0.0f);
  EXPECT_EQ(rounded(FP16, 0x1p-25f), 0.0f);                // halfway: to the even 0
  EXPECT_EQ(rounded(FP16, -0x3p-25f), -0x1p-23f);          // halfway: to the even 2 * 2^-24
  EXPECT_EQ(rounded(FP16, 0x1p-14f + 0x1p-25f), 0x1p-14f);  // normal: a quarter step dropped
  EXPECT_EQ(rounded(FP16, 65519.0f), 65504.0f);
  EXPECT_EQ(rounded(FP16, -1e6f), -std::numeric_limits<float>::infinity());
  EXPECT_TRUE(std::isnan(rounded(FP16, std::numeric_limits<float>::quiet_NaN())));
  EXPECT_EQ(rounded(FP32, 0.1f), 0.1f);
}

TEST(RoundTo, ManyValuesInPlaceMatchOneByOne) {
  Blob blob({3, 70000});  // several threads' chunks
  fill_gaussian(blob, 100.0f);
  const std::vector<float> original = data_of(blob);
  cpu::round_to(BF16, blob.count(), blob.cpu_data(), blob.mutable_cpu_data());
  for (int64_t i = 0; i < blob.count(); i += 997) {
    ASSERT_EQ(blob.cpu_data()[i], rounded(BF16, original[i])) << "at " << i;
  }
}

TEST(Precision, ParsesNamesAndRejectsOthers) {
  EXPECT_EQ(parse_precision("BF16", "--precision"), BF16);
  EXPECT_EQ(parse_precision("fp16", "--precision"), FP16);
  EXPECT_EQ(parse_precision("fp32", "--precision"), FP32);
  testing::expect_error([] { parse_precision("int8", "--precision"); },
                        {"--precision", "fp32, bf16 or fp16", "int8"});
}

// A layer in `precision` against the fp32 layer on operands rounded beforehand.
void expect_rounded_operands(const std::string& layer_text, const std::vector<int>& bottom_shape,
                             Precision precision, float tolerance) {
  SCOPED_TRACE(layer_text + " in " + precision_name(precision));
  LayerPtr reduced = create_layer(layer_param(layer_text));
  LayerPtr reference = create_layer(layer_param(layer_text));
  reduced->set_precision(precision);
  Blob bottom(bottom_shape), rounded_bottom(bottom_shape), top, reference_top;
  fill_gaussian(bottom);
  cpu::round_to(precision, bottom.count(), bottom.cpu_data(), rounded_bottom.mutable_cpu_data());
  reduced->setup({&bottom}, {&top});
  reference->setup({&rounded_bottom}, {&reference_top});
  // The reference gets the reduced layer's parameters, its weights rounded, as blobs of its own
  // (a DEFAULT layer hands them to the implementation it runs).
  const std::vector<float> master = data_of(*reduced->blobs()[0]);
  for (size_t i = 0; i < reduced->blobs().size(); ++i) {
    const Blob& from = *reduced->blobs()[i];
    auto copy = std::make_shared<Blob>(from.shape());
    cpu::round_to(i == 0 ? precision : FP32, from.count(), from.cpu_data(),
                  copy->mutable_cpu_data());
    reference->blobs()[i] = copy;
  }
  for (auto& blob : reduced->blobs()) blob->set_diff(0);
  for (auto& blob : reference->blobs()) blob->set_diff(0);

  const std::vector<float> bottom_values = data_of(bottom);
  reduced->forward({&bottom}, {&top});
  reference->forward({&rounded_bottom}, {&reference_top});
  expect_agree(data_of(reference_top), data_of(top), "top", tolerance);
  EXPECT_EQ(data_of(bottom), bottom_values) << "the bottom must keep its fp32 values";
  EXPECT_EQ(data_of(*reduced->blobs()[0]), master) << "the master weights must stay fp32";

  // Backward from a top gradient that the reference gets rounded.
  testing::same_random_diff(top, reference_top);
  cpu::round_to(precision, reference_top.count(), reference_top.cpu_diff(),
                reference_top.mutable_cpu_diff());
  const std::vector<float> top_diff = diff_of(top);
  for (int round = 0; round < 2; ++round) {  // the second adds to the parameters' gradients
    reduced->backward({&top}, {true}, {&bottom});
    reference->backward({&reference_top}, {true}, {&rounded_bottom});
    expect_agree(diff_of(rounded_bottom), diff_of(bottom), "bottom gradient", tolerance);
    expect_agree(diff_of(*reference->blobs()[0]), diff_of(*reduced->blobs()[0]),
                 "weight gradient (in the master weights' diff)", tolerance);
    if (reduced->blobs().size() > 1) {
      expect_agree(diff_of(*reference->blobs()[1]), diff_of(*reduced->blobs()[1]),
                   "bias gradient", tolerance);
    }
  }
  EXPECT_EQ(diff_of(top), top_diff) << "the top's gradient must keep its fp32 values";
  EXPECT_EQ(data_of(*reduced->blobs()[0]), master);
}

class ReducedPrecisionLayers : public testing::EngineTest {};

TEST_P(ReducedPrecisionLayers, ConvolutionComputesOnRoundedOperands) {
  const std::string text =
      "name: 'conv' type: 'Convolution' convolution_param { num_output: 6 kernel_size: 3 pad: 1 "
      "stride: 2 group: 2 engine: " + engine() +
      " weight_filler { type: 'gaussian' std: 0.3 } bias_filler { type: 'gaussian' } }";
  // Only the summation order may differ from the reference's: a native bf16 kernel
  // (oneDNN on a processor with bf16 arithmetic) sums in its own order.
  for (Precision precision : {BF16, FP16}) {
    expect_rounded_operands(text, {2, 4, 9, 9}, precision, 2e-5f);
  }
}

TEST_P(ReducedPrecisionLayers, InnerProductComputesOnRoundedOperands) {
  // With and without `transpose` (weights [K, N]: the native bf16 products read them, the
  // bottom and the top's gradient in both orientations).
  for (const char* transpose : {"false", "true"}) {
    const std::string text =
        "name: 'ip' type: 'InnerProduct' inner_product_param { num_output: 7 engine: " +
        engine() + " transpose: " + transpose +
        " weight_filler { type: 'gaussian' std: 0.3 } bias_filler { type: 'gaussian' } }";
    SCOPED_TRACE(text);
    for (Precision precision : {BF16, FP16}) {
      expect_rounded_operands(text, {5, 3, 4, 4}, precision, 2e-5f);
    }
  }
}

TEST_P(ReducedPrecisionLayers, DeconvolutionComputesOnRoundedOperands) {
  const std::string text =
      "name: 'deconv' type: 'Deconvolution' convolution_param { num_output: 4 kernel_size: 3 "
      "stride: 2 engine: " + engine() + " weight_filler { type: 'gaussian' std: 0.3 } }";
  expect_rounded_operands(text, {2, 3, 5, 5}, BF16, 2e-5f);
}

INSTANTIATE_TEST_SUITE_P(Engines, ReducedPrecisionLayers,
                         ::testing::Values("CAFFE", "ONEDNN", "DEFAULT"));

NetParameter small_net() {
  NetParameter param;
  parse_text(
      "layer { name: 'in' type: 'Input' top: 'data' top: 'label' "
      "  input_param { shape { dim: 4 dim: 3 dim: 12 dim: 12 } shape { dim: 4 } } }\n"
      "layer { name: 'conv' type: 'Convolution' bottom: 'data' top: 'conv' "
      "  convolution_param { num_output: 8 kernel_size: 3 "
      "  weight_filler { type: 'gaussian' std: 0.2 } } }\n"
      "layer { name: 'relu' type: 'ReLU' bottom: 'conv' top: 'conv' }\n"
      "layer { name: 'ip' type: 'InnerProduct' bottom: 'conv' top: 'ip' "
      "  inner_product_param { num_output: 3 weight_filler { type: 'gaussian' std: 0.05 } } }\n"
      "layer { name: 'loss' type: 'SoftmaxWithLoss' bottom: 'ip' bottom: 'label' top: 'loss' }\n",
      "<precision test net>", &param);
  param.mutable_state()->set_phase(TRAIN);
  return param;
}

TEST(Precision, ANetsFieldReachesItsLayersAndChangesOnlyTheLastBits) {
  NetParameter fp32_param = small_net();
  NetParameter bf16_param = small_net();
  bf16_param.set_precision(BF16);
  Context::set_seed(3);
  Net fp32(fp32_param);
  Context::set_seed(3);
  Net bf16(bf16_param);
  for (const auto& layer : bf16.layers()) EXPECT_EQ(layer->precision(), BF16) << layer->name();
  for (Net* net : {&fp32, &bf16}) {
    Context::set_seed(5);
    fill_gaussian(*net->blob_by_name("data"));
    float* label = net->blob_by_name("label")->mutable_cpu_data();
    for (int i = 0; i < 4; ++i) label[i] = static_cast<float>(i % 3);
  }
  const std::vector<float> data = data_of(*bf16.blob_by_name("data"));
  const float fp32_loss = fp32.forward_backward();
  const float bf16_loss = bf16.forward_backward();
  EXPECT_EQ(data_of(*bf16.blob_by_name("data")), data);
  // bf16 keeps 8 significant bits: a relative error near 2^-9 per operand.
  EXPECT_NEAR(bf16_loss, fp32_loss, 0.02f * std::fabs(fp32_loss));
  EXPECT_NE(bf16_loss, fp32_loss) << "bf16 must change something";
  const std::vector<float> g32 = diff_of(*fp32.layer_by_name("conv").blobs()[0]);
  const std::vector<float> g16 = diff_of(*bf16.layer_by_name("conv").blobs()[0]);
  // ReLU's mask may flip where a conv output is near 0: a looser bound than the layers' own.
  expect_agree(g32, g16, "conv weight gradient", 0.1f);
}

TEST(Precision, TheSolversFieldOverridesTheNets) {
  SolverParameter solver;
  *solver.mutable_net_param() = small_net();
  solver.mutable_net_param()->set_precision(FP16);
  solver.set_precision(BF16);
  solver.set_base_lr(0.01f);
  solver.set_lr_policy("fixed");
  solver.set_max_iter(1);
  std::unique_ptr<Solver> trainer = make_solver(solver);
  for (const auto& layer : trainer->net().layers()) EXPECT_EQ(layer->precision(), BF16);
}

SolverParameter fp16_solver(float initial_scale, int window) {
  SolverParameter solver;
  *solver.mutable_net_param() = small_net();
  solver.set_precision(FP16);
  solver.set_fp16_initial_scale(initial_scale);
  solver.set_fp16_scale_window(window);
  solver.set_base_lr(0.1f);
  solver.set_lr_policy("fixed");
  solver.set_max_iter(100);
  solver.set_random_seed(7);
  return solver;
}

void fill_inputs(Net& net) {
  Context::set_seed(5);
  fill_gaussian(*net.blob_by_name("data"));
  float* label = net.blob_by_name("label")->mutable_cpu_data();
  for (int i = 0; i < 4; ++i) label[i] = static_cast<float>(i % 3);
}

TEST(LossScaling, AScaleThatOverflowsIsHalvedAndItsStepsSkipped) {
  // A loss gradient of 2^40 overflows fp16 (whose largest value is 65504): steps are skipped,
  // each halving the scale, until the gradients fit.
  std::unique_ptr<Solver> solver = make_solver(fp16_solver(0x1p40f, 1000));
  fill_inputs(solver->net());
  const std::vector<float> initial = data_of(*solver->net().learnable_params()[0]);
  solver->step(1);
  EXPECT_EQ(solver->loss_scale(), 0x1p39f);
  EXPECT_EQ(data_of(*solver->net().learnable_params()[0]), initial) << "an overflowed step updates nothing";
  solver->step(40);
  // The loss gradient into fc is scale * (p - y) / 4 (a batch of 4), under 65504 from 2^18 on.
  EXPECT_LE(solver->loss_scale(), 0x1p18f);
  EXPECT_GE(solver->loss_scale(), 0x1p10f);
  EXPECT_NE(data_of(*solver->net().learnable_params()[0]), initial);
}

TEST(LossScaling, TheScaleDoublesAfterAWindowOfGoodSteps) {
  std::unique_ptr<Solver> solver = make_solver(fp16_solver(8, 2));
  fill_inputs(solver->net());
  solver->step(4);
  EXPECT_EQ(solver->loss_scale(), 32.0f);
}

TEST(LossScaling, TheUnscaledStepIsTheFp32Step) {
  // With the loss gradient scaled by 1024 and divided back, an fp16 step moves the weights as an
  // fp32 step does, up to fp16's rounding of the operands.
  SolverParameter fp32_param = fp16_solver(1024, 1000);
  fp32_param.set_precision(FP32);
  std::unique_ptr<Solver> fp16 = make_solver(fp16_solver(1024, 1000));
  std::unique_ptr<Solver> fp32 = make_solver(fp32_param);
  std::vector<float> moved16, moved32;
  for (auto [solver, moved] : {std::pair{fp16.get(), &moved16}, std::pair{fp32.get(), &moved32}}) {
    fill_inputs(solver->net());
    const std::vector<float> before = data_of(*solver->net().learnable_params()[0]);
    solver->step(1);
    const std::vector<float> after = data_of(*solver->net().learnable_params()[0]);
    for (size_t i = 0; i < before.size(); ++i) moved->push_back(after[i] - before[i]);
  }
  EXPECT_EQ(fp16->loss_scale(), 1024.0f);
  expect_agree(moved32, moved16, "conv weights' step", 0.02f);
}

}  // namespace
}  // namespace engine
