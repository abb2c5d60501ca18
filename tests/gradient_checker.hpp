// The one gradient checker: compares a layer's backward pass with central finite differences,
// for its bottoms and its learnable parameters, on the current Context mode (CPU or GPU).
//
// The objective is a fixed random projection of every top, L = sum_k sum_j r_kj * top_k[j], so
// d(L)/d(top) = r is known exactly and every element of every top takes part. The layer's random
// state (dropout masks) is reseeded before each forward pass so that all passes see the same
// masks. In-place layers (top == bottom) work: bottoms are restored before each pass.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "core/blob.hpp"
#include "core/layer.hpp"

namespace engine {
namespace testing {

struct GradientCheckOptions {
  float step = 1e-2f;
  float threshold = 1e-2f;  // relative to max(|analytic|, |numeric|, 1)
  // Inputs within kink_range of kink are skipped: the function is not differentiable there
  // (ReLU at 0, for example). A negative range disables this.
  float kink = 0.0f;
  float kink_range = -1.0f;
  // Bottoms to check (empty: all); parameters are checked when check_params is set.
  std::vector<int> bottoms;
  bool check_params = true;
  unsigned seed = 1701;
};

// Sets the layer up on bottom/top, then checks. Failures are reported through gtest.
void check_gradient(Layer& layer, const Blobs& bottom, const Blobs& top,
                    const GradientCheckOptions& options = {});

// Fill helpers for test inputs, drawn from the Context generator.
void fill_gaussian(Blob& blob, float stddev = 1.0f, float mean = 0.0f);
void fill_uniform(Blob& blob, float low, float high);

// A LayerParameter from prototxt text (throws on a parse error).
LayerParameter layer_param(const std::string& text);

// Shapes blob and sets its data to values (which must hold blob.count() numbers).
void set_blob(Blob& blob, const std::vector<int>& shape, const std::vector<float>& values);
std::vector<float> data_of(const Blob& blob);
std::vector<float> diff_of(const Blob& blob);

// Runs layer.setup and returns the engine::Error message it throws ("" when it does not throw),
// for tests that check what a message says.
std::string setup_error(Layer& layer, const Blobs& bottom, const Blobs& top);
// Runs action and returns the engine::Error message it throws ("" when it does not throw).
std::string thrown_message(const std::function<void()>& action);
// EXPECT_TRUE(contains(message, "expected words")) prints the whole message when it fails.
::testing::AssertionResult contains(const std::string& text, const std::string& part);

}  // namespace testing
}  // namespace engine
