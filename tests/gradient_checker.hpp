// The one gradient checker: compares a layer's backward pass with central finite differences,
// for its bottoms and its learnable parameters, on the current Context mode (CPU or GPU).
//
// The objective is a fixed random projection of every top, L = sum_k sum_j r_kj * top_k[j], so
// d(L)/d(top) = r is known exactly and every element of every top takes part. The layer's random
// state (dropout masks) is reseeded before each forward pass so that all passes see the same
// masks. In-place layers (top == bottom) work: bottoms are restored before each pass.
#pragma once

#include <gtest/gtest.h>

#include <functional>
#include <string>
#include <vector>

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

// Swaps every Data layer of a train/test net for an Input layer with a data top of `data_shape`
// and a label top of `labels` labels, so that the net runs without its LMDB.
void replace_data_layers(const std::vector<int>& data_shape, int labels, NetParameter* param);

// The `engine` values a test runs a layer with: CAFFE (the reference code) always, ONEDNN where
// the build has it.
std::vector<std::string> engines();

// A fixture whose tests run once per engine, instantiated with
//   INSTANTIATE_TEST_SUITE_P(Engines, Fixture, ::testing::Values("CAFFE", "ONEDNN"));
// in a build without oneDNN the ONEDNN runs skip, saying why.
class EngineTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override;
  const std::string& engine() const { return GetParam(); }
};

// Shapes blob and sets its data to values (which must hold blob.count() numbers).
void set_blob(Blob& blob, const std::vector<int>& shape, const std::vector<float>& values);
// The same, keeping blob's shape.
void set_blob(Blob& blob, const std::vector<float>& values);
std::vector<float> data_of(const Blob& blob);
std::vector<float> diff_of(const Blob& blob);

// Element by element, |actual - expected| <= tolerance.
void expect_near(const std::vector<float>& actual, const std::vector<float>& expected,
                 float tolerance = 1e-6f);
// The same with the tolerance scaled by max(1, |expected|), for values of any magnitude; `what`
// starts each failure message.
void expect_close(const std::vector<float>& actual, const std::vector<float>& expected,
                  const std::string& what, float tolerance = 1e-6f);

// For two paths of one layer that round differently: the worst difference, relative to the
// largest |reference| (at least 1e-3), is at most tolerance.
void expect_agree(const std::vector<float>& reference, const std::vector<float>& fast,
                  const std::string& what, float tolerance = 2e-5f);

// Gives `to` learnable blobs that share `from`'s data, before to.setup (as a net that loaded
// weights would), so that two paths of one layer compute with the same parameters.
void share_parameters(const Layer& from, Layer& to);
// Fills a's diff with Gaussian noise and copies it into b's: the same top gradient for two paths,
// leaving the tops' data (which backward may read) intact.
void same_random_diff(Blob& a, Blob& b);

// Runs action and returns the engine::Error message it throws ("" when it does not throw),
// for tests that check what a message says.
std::string error_of(const std::function<void()>& action);
// error_of(layer.setup(bottom, top)).
std::string setup_error(Layer& layer, const Blobs& bottom, const Blobs& top);
// EXPECT_TRUE(contains(message, "expected words")) prints the whole message when it fails.
::testing::AssertionResult contains(const std::string& text, const std::string& part);
// Expects action to throw an engine::Error whose message contains every one of parts.
void expect_error(const std::function<void()>& action, const std::vector<std::string>& parts);

}  // namespace testing
}  // namespace engine
