#include <gtest/gtest.h>

#include <cmath>

#include "core/context.hpp"
#include "core/filler.hpp"
#include "gradient_checker.hpp"
#include "io/prototxt.hpp"

namespace engine {
namespace {

FillerParameter filler(const std::string& text) {
  FillerParameter param;
  parse_text(text, "<filler>", &param);
  return param;
}

std::vector<float> values(const Blob& blob) {
  return std::vector<float>(blob.cpu_data(), blob.cpu_data() + blob.count());
}

double mean(const std::vector<float>& v) {
  double total = 0;
  for (float x : v) total += x;
  return total / v.size();
}

double stddev(const std::vector<float>& v) {
  const double m = mean(v);
  double total = 0;
  for (float x : v) total += (x - m) * (x - m);
  return std::sqrt(total / v.size());
}

TEST(Filler, ConstantAndUniform) {
  Blob blob({10, 20});
  fill(filler("type: 'constant' value: 1.5"), &blob);
  for (float v : values(blob)) EXPECT_EQ(v, 1.5f);
  fill(filler("type: 'uniform' min: -2 max: 3"), &blob);
  for (float v : values(blob)) {
    EXPECT_GE(v, -2);
    EXPECT_LE(v, 3);
  }
  EXPECT_NEAR(mean(values(blob)), 0.5, 0.2);
}

TEST(Filler, GaussianAndSparse) {
  Blob blob({100, 100});
  fill(filler("type: 'gaussian' mean: 1 std: 2"), &blob);
  EXPECT_NEAR(mean(values(blob)), 1, 0.1);
  EXPECT_NEAR(stddev(values(blob)), 2, 0.1);
  // sparse: 10 of 100 outputs' inputs non-zero on average.
  fill(filler("type: 'gaussian' std: 1 sparse: 10"), &blob);
  int nonzero = 0;
  for (float v : values(blob)) nonzero += v != 0;
  EXPECT_NEAR(nonzero / 10000.0, 0.1, 0.02);
}

TEST(Filler, PositiveUnitballRowsSumToOne) {
  Blob blob({4, 3, 5});
  fill(filler("type: 'positive_unitball'"), &blob);
  for (int r = 0; r < 4; ++r) {
    double total = 0;
    for (int i = 0; i < 15; ++i) {
      const float v = blob.cpu_data()[r * 15 + i];
      EXPECT_GE(v, 0);
      total += v;
    }
    EXPECT_NEAR(total, 1, 1e-5);
  }
}

TEST(Filler, XavierAndMsraScaleByFan) {
  // fan_in = 50 * 3 * 3 = 450, fan_out = 100 * 3 * 3 = 900.
  Blob blob({100, 50, 3, 3});
  fill(filler("type: 'xavier'"), &blob);
  const float limit = std::sqrt(3.0f / 450);
  for (float v : values(blob)) EXPECT_LE(std::fabs(v), limit);
  EXPECT_NEAR(stddev(values(blob)), limit / std::sqrt(3.0f), 0.002);
  fill(filler("type: 'xavier' variance_norm: AVERAGE"), &blob);
  EXPECT_NEAR(stddev(values(blob)), std::sqrt(3.0f / 675) / std::sqrt(3.0f), 0.002);
  fill(filler("type: 'msra' variance_norm: FAN_OUT"), &blob);
  EXPECT_NEAR(stddev(values(blob)), std::sqrt(2.0f / 900), 0.002);
}

TEST(Filler, BilinearKernel) {
  // 4x4: f = 2, centre = 0.75, weight(x, y) = (1 - |x/2 - 0.75|)(1 - |y/2 - 0.75|).
  Blob blob({1, 1, 4, 4});
  fill(filler("type: 'bilinear'"), &blob);
  const float row[4] = {0.25f, 0.75f, 0.75f, 0.25f};
  for (int y = 0; y < 4; ++y) {
    for (int x = 0; x < 4; ++x) EXPECT_FLOAT_EQ(blob.cpu_data()[y * 4 + x], row[x] * row[y]);
  }
  Blob not_square({1, 1, 3, 4});
  EXPECT_THROW(fill(filler("type: 'bilinear'"), &not_square), Error);
}

TEST(Filler, SameSeedSameValues) {
  Blob a({50}), b({50});
  Context::set_seed(99);
  fill(filler("type: 'gaussian' std: 1"), &a);
  Context::set_seed(99);
  fill(filler("type: 'gaussian' std: 1"), &b);
  EXPECT_EQ(values(a), values(b));
}

TEST(Filler, UnknownTypeIsAnError) {
  Blob blob({3});
  try {
    fill(filler("type: 'gausian'"), &blob);
    FAIL();
  } catch (const Error& error) {
    EXPECT_NE(std::string(error.what()).find("unknown filler type 'gausian'"), std::string::npos);
  }
}

}  // namespace
}  // namespace engine
