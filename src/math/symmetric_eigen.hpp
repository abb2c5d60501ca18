// Eigen-decomposition of a small dense symmetric matrix (cyclic Jacobi rotations), in double.
// Meant for the handful-of-rows matrices the tools meet (a C x C colour covariance); the cost
// grows as n^3 per sweep, so it is not a general linear-algebra routine.
#pragma once

#include <vector>

namespace engine {

struct SymmetricEigen {
  // Descending.
  std::vector<double> values;
  // Row-major n x n: row i is the unit eigenvector of values[i], signed so that its
  // largest-magnitude component is positive (a fixed choice, so results are reproducible).
  std::vector<double> vectors;
};

// `matrix` is row-major n x n and must be symmetric (only the upper triangle is read).
SymmetricEigen symmetric_eigen(int n, const std::vector<double>& matrix);

}  // namespace engine
