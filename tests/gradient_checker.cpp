#include "gradient_checker.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>

#include "core/context.hpp"
#include "io/prototxt.hpp"
#include "math/onednn.hpp"
#include "math/random.hpp"

namespace engine {
namespace testing {

void fill_gaussian(Blob& blob, float stddev, float mean) {
  rng_gaussian(blob.count(), mean, stddev, blob.mutable_cpu_data());
}

void fill_uniform(Blob& blob, float low, float high) {
  rng_uniform(blob.count(), low, high, blob.mutable_cpu_data());
}

LayerParameter layer_param(const std::string& text) {
  LayerParameter param;
  parse_text(text, "<test layer>", &param);
  return param;
}

void replace_data_layers(const std::vector<int>& data_shape, int labels, NetParameter* param) {
  for (LayerParameter& layer : *param->mutable_layer()) {
    if (layer.type() != "Data") continue;
    layer.set_type("Input");
    layer.clear_data_param();
    layer.clear_transform_param();
    BlobShape* data = layer.mutable_input_param()->add_shape();
    for (int d : data_shape) data->add_dim(d);
    layer.mutable_input_param()->add_shape()->add_dim(labels);
  }
}

std::vector<std::string> engines() {
  std::vector<std::string> result = {"CAFFE"};
  if (onednn_available()) result.push_back("ONEDNN");
  return result;
}

void EngineTest::SetUp() {
  if (engine().rfind("ONEDNN", 0) == 0 && !onednn_available()) {
    GTEST_SKIP() << "no oneDNN in this build";
  }
}

void set_blob(Blob& blob, const std::vector<int>& shape, const std::vector<float>& values) {
  blob.reshape(shape);
  ASSERT_EQ(static_cast<int64_t>(values.size()), blob.count())
      << "values for " << blob.shape_string();
  std::copy(values.begin(), values.end(), blob.mutable_cpu_data());
}

void set_blob(Blob& blob, const std::vector<float>& values) {
  set_blob(blob, blob.shape(), values);
}

std::vector<float> data_of(const Blob& blob) {
  return std::vector<float>(blob.cpu_data(), blob.cpu_data() + blob.count());
}

std::vector<float> diff_of(const Blob& blob) {
  return std::vector<float>(blob.cpu_diff(), blob.cpu_diff() + blob.count());
}

void expect_near(const std::vector<float>& actual, const std::vector<float>& expected,
                 float tolerance) {
  ASSERT_EQ(actual.size(), expected.size());
  for (size_t i = 0; i < actual.size(); ++i) {
    EXPECT_NEAR(actual[i], expected[i], tolerance) << "element " << i;
  }
}

void expect_close(const std::vector<float>& actual, const std::vector<float>& expected,
                  const std::string& what, float tolerance) {
  ASSERT_EQ(actual.size(), expected.size()) << what;
  for (size_t i = 0; i < actual.size(); ++i) {
    EXPECT_NEAR(actual[i], expected[i], tolerance * std::max(1.0f, std::fabs(expected[i])))
        << what << " element " << i;
  }
}

void expect_agree(const std::vector<float>& reference, const std::vector<float>& fast,
                  const std::string& what, float tolerance) {
  ASSERT_EQ(reference.size(), fast.size()) << what;
  float scale = 1e-3f, worst = 0;
  for (size_t i = 0; i < reference.size(); ++i) {
    scale = std::max(scale, std::fabs(reference[i]));
    worst = std::max(worst, std::fabs(reference[i] - fast[i]));
  }
  EXPECT_LE(worst / scale, tolerance)
      << what << ": worst difference " << worst << " at scale " << scale;
}

void share_parameters(const Layer& from, Layer& to) {
  for (const auto& blob : from.blobs()) {
    to.blobs().push_back(std::make_shared<Blob>(blob->shape()));
    to.blobs().back()->share_data(*blob);
  }
}

void same_random_diff(Blob& a, Blob& b) {
  ASSERT_EQ(a.count(), b.count());
  rng_gaussian(a.count(), 0, 1, a.mutable_cpu_diff());
  std::copy(a.cpu_diff(), a.cpu_diff() + a.count(), b.mutable_cpu_diff());
}

std::string error_of(const std::function<void()>& action) {
  try {
    action();
  } catch (const Error& error) {
    return error.what();
  }
  return "";
}

std::string setup_error(Layer& layer, const Blobs& bottom, const Blobs& top) {
  return error_of([&] { layer.setup(bottom, top); });
}

::testing::AssertionResult contains(const std::string& text, const std::string& part) {
  if (text.find(part) != std::string::npos) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << "\"" << text << "\" does not contain \"" << part << "\"";
}

void expect_error(const std::function<void()>& action, const std::vector<std::string>& parts) {
  const std::string message = error_of(action);
  if (message.empty()) {
    ADD_FAILURE() << "expected an engine::Error";
    return;
  }
  for (const std::string& part : parts) EXPECT_TRUE(contains(message, part));
}

namespace {

class Objective {
 public:
  Objective(Layer& layer, const Blobs& bottom, const Blobs& top, unsigned seed)
      : layer_(layer), bottom_(bottom), top_(top), seed_(seed) {
    for (Blob* blob : bottom) {
      saved_.emplace_back(blob->cpu_data(), blob->cpu_data() + blob->count());
    }
    for (Blob* blob : top) {
      projection_.emplace_back(blob->count());
      rng_uniform(blob->count(), -1, 1, projection_.back().data());
    }
  }

  // Restores the bottoms, applies one perturbation, runs forward and returns L.
  double evaluate(Blob* perturbed = nullptr, int64_t index = 0, float delta = 0) {
    restore_bottoms();
    float* target = nullptr;
    float original = 0;
    if (perturbed) {
      target = perturbed->mutable_cpu_data() + index;
      original = *target;
      *target += delta;
    }
    Context::set_seed(seed_);
    layer_.forward(bottom_, top_);
    double total = 0;
    for (size_t k = 0; k < top_.size(); ++k) {
      const float* data = top_[k]->cpu_data();
      for (int64_t j = 0; j < top_[k]->count(); ++j) total += double(projection_[k][j]) * data[j];
    }
    // Parameters are not restored by restore_bottoms: put the value back.
    if (target && !is_bottom(perturbed)) *target = original;
    return total;
  }

  // Forward, then backward from d(L)/d(top) = projection.
  void backward(const std::vector<bool>& propagate_down) {
    evaluate();
    // Clear first, then write the tops' diffs: an in-place top, or a top that shares its diff
    // with the bottom (Flatten, Reshape), must keep the projection.
    for (auto& param : layer_.blobs()) param->set_diff(0);
    for (Blob* blob : bottom_) blob->set_diff(0);
    for (size_t k = 0; k < top_.size(); ++k) {
      std::copy(projection_[k].begin(), projection_[k].end(), top_[k]->mutable_cpu_diff());
    }
    layer_.backward(top_, propagate_down, bottom_);
  }

  float saved_bottom(size_t i, int64_t j) const { return saved_[i][j]; }

 private:
  bool is_bottom(const Blob* blob) const {
    return std::find(bottom_.begin(), bottom_.end(), blob) != bottom_.end();
  }
  void restore_bottoms() {
    for (size_t i = 0; i < bottom_.size(); ++i) {
      std::copy(saved_[i].begin(), saved_[i].end(), bottom_[i]->mutable_cpu_data());
    }
  }

  Layer& layer_;
  Blobs bottom_, top_;
  unsigned seed_;
  std::vector<std::vector<float>> saved_;
  std::vector<std::vector<float>> projection_;
};

void compare(const std::string& what, int64_t index, double analytic, double numeric,
             float threshold) {
  const double scale = std::max({std::fabs(analytic), std::fabs(numeric), 1.0});
  EXPECT_NEAR(analytic, numeric, threshold * scale)
      << what << " element " << index << ": analytic " << analytic << ", numeric " << numeric;
}

}  // namespace

void check_gradient(Layer& layer, const Blobs& bottom, const Blobs& top,
                    const GradientCheckOptions& options) {
  Context::set_seed(options.seed);
  layer.setup(bottom, top);
  Objective objective(layer, bottom, top, options.seed);

  std::vector<int> bottoms = options.bottoms;
  if (bottoms.empty()) {
    for (size_t i = 0; i < bottom.size(); ++i) bottoms.push_back(static_cast<int>(i));
  }
  std::vector<bool> propagate_down(bottom.size(), false);
  for (int i : bottoms) propagate_down[i] = true;

  // The analytic gradients, copied out before the numeric passes overwrite the diffs.
  objective.backward(propagate_down);
  std::vector<std::vector<float>> bottom_grad, param_grad;
  for (Blob* blob : bottom) bottom_grad.emplace_back(blob->cpu_diff(), blob->cpu_diff() + blob->count());
  for (auto& blob : layer.blobs()) {
    param_grad.emplace_back(blob->cpu_diff(), blob->cpu_diff() + blob->count());
  }

  const float h = options.step;
  for (int i : bottoms) {
    Blob* blob = bottom[i];
    for (int64_t j = 0; j < blob->count(); ++j) {
      const float x = objective.saved_bottom(i, j);
      if (options.kink_range >= 0 && std::fabs(x - options.kink) < options.kink_range) continue;
      const double plus = objective.evaluate(blob, j, h);
      const double minus = objective.evaluate(blob, j, -h);
      compare(layer.describe() + " bottom " + std::to_string(i), j, bottom_grad[i][j],
              (plus - minus) / (2 * h), options.threshold);
    }
  }
  if (options.check_params) {
    for (size_t p = 0; p < layer.blobs().size(); ++p) {
      if (!layer.param_propagate_down(static_cast<int>(p))) continue;
      Blob* blob = layer.blobs()[p].get();
      for (int64_t j = 0; j < blob->count(); ++j) {
        const double plus = objective.evaluate(blob, j, h);
        const double minus = objective.evaluate(blob, j, -h);
        compare(layer.describe() + " parameter " + std::to_string(p), j, param_grad[p][j],
                (plus - minus) / (2 * h), options.threshold);
      }
    }
  }
}

}  // namespace testing
}  // namespace engine
