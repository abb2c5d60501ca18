#include "math/symmetric_eigen.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <random>

namespace engine {
namespace {

// Checks A v_i = lambda_i v_i, orthonormal rows, descending values, the sign convention.
void expect_decomposes(int n, const std::vector<double>& a, const SymmetricEigen& e) {
  ASSERT_EQ(e.values.size(), size_t(n));
  ASSERT_EQ(e.vectors.size(), size_t(n) * n);
  double scale = 1e-300;
  for (double x : a) scale = std::max(scale, std::abs(x));
  for (int i = 0; i < n; ++i) {
    if (i > 0) {
      EXPECT_GE(e.values[i - 1], e.values[i]);
    }
    const double* v = &e.vectors[i * n];
    for (int r = 0; r < n; ++r) {
      double av = 0;
      for (int k = 0; k < n; ++k) av += a[r * n + k] * v[k];
      EXPECT_NEAR(av, e.values[i] * v[r], 1e-12 * scale) << "eigenpair " << i << " row " << r;
    }
    for (int j = 0; j < n; ++j) {
      double dot = 0;
      for (int k = 0; k < n; ++k) dot += v[k] * e.vectors[j * n + k];
      EXPECT_NEAR(dot, i == j ? 1.0 : 0.0, 1e-12);
    }
    int largest = 0;
    for (int k = 0; k < n; ++k)
      if (std::abs(v[k]) > std::abs(v[largest])) largest = k;
    EXPECT_GT(v[largest], 0);
  }
}

TEST(SymmetricEigen, OneByOne) {
  const SymmetricEigen e = symmetric_eigen(1, {-4.5});
  EXPECT_EQ(e.values, std::vector<double>{-4.5});
  EXPECT_EQ(e.vectors, std::vector<double>{1.0});
}

TEST(SymmetricEigen, DiagonalIsSortedDescending) {
  const SymmetricEigen e = symmetric_eigen(3, {2, 0, 0, 0, 7, 0, 0, 0, -1});
  EXPECT_EQ(e.values, (std::vector<double>{7, 2, -1}));
  EXPECT_EQ(e.vectors, (std::vector<double>{0, 1, 0, 1, 0, 0, 0, 0, 1}));
}

TEST(SymmetricEigen, TwoByTwoByHand) {
  // [[2, 1], [1, 2]]: 3 along (1, 1)/sqrt2, 1 along (1, -1)/sqrt2 (sign: first largest positive).
  const SymmetricEigen e = symmetric_eigen(2, {2, 1, 1, 2});
  EXPECT_NEAR(e.values[0], 3, 1e-14);
  EXPECT_NEAR(e.values[1], 1, 1e-14);
  EXPECT_NEAR(e.vectors[0], std::sqrt(0.5), 1e-14);
  EXPECT_NEAR(e.vectors[1], std::sqrt(0.5), 1e-14);
  EXPECT_NEAR(std::abs(e.vectors[2]), std::sqrt(0.5), 1e-14);
  EXPECT_NEAR(e.vectors[2], -e.vectors[3], 1e-14);
}

TEST(SymmetricEigen, RankOneRecoversTheDirection) {
  const double d[3] = {1.0 / 3, 2.0 / 3, 2.0 / 3};
  std::vector<double> a(9);
  for (int i = 0; i < 3; ++i)
    for (int j = 0; j < 3; ++j) a[i * 3 + j] = 50 * d[i] * d[j];
  const SymmetricEigen e = symmetric_eigen(3, a);
  expect_decomposes(3, a, e);
  EXPECT_NEAR(e.values[0], 50, 1e-12);
  EXPECT_NEAR(e.values[1], 0, 1e-12);
  EXPECT_NEAR(e.values[2], 0, 1e-12);
  for (int k = 0; k < 3; ++k) EXPECT_NEAR(e.vectors[k], d[k], 1e-14);
}

TEST(SymmetricEigen, RandomMatricesOfSeveralSizes) {
  std::mt19937 generator(7);
  std::normal_distribution<double> normal(0, 100);
  for (int n : {2, 3, 4, 7}) {
    std::vector<double> a(size_t(n) * n);
    for (int i = 0; i < n; ++i)
      for (int j = i; j < n; ++j) a[i * n + j] = a[j * n + i] = normal(generator);
    SCOPED_TRACE(n);
    expect_decomposes(n, a, symmetric_eigen(n, a));
  }
}

TEST(SymmetricEigen, RepeatedEigenvalues) {
  // 4 I + rank one: eigenvalue 4 twice.
  std::vector<double> a = {5, 1, 0, 1, 5, 0, 0, 0, 4};
  const SymmetricEigen e = symmetric_eigen(3, a);
  expect_decomposes(3, a, e);
  EXPECT_NEAR(e.values[0], 6, 1e-13);
  EXPECT_NEAR(e.values[1], 4, 1e-13);
  EXPECT_NEAR(e.values[2], 4, 1e-13);
}

}  // namespace
}  // namespace engine
