#include "math/symmetric_eigen.hpp"

#include <algorithm>
#include <cmath>
#include <numeric>

#include <glog/logging.h>

namespace engine {

SymmetricEigen symmetric_eigen(int n, const std::vector<double>& matrix) {
  CHECK_GE(n, 1);
  CHECK_EQ(matrix.size(), size_t(n) * n);
  std::vector<double> a(size_t(n) * n);
  for (int i = 0; i < n; ++i) {
    for (int j = i; j < n; ++j) a[i * n + j] = a[j * n + i] = matrix[i * n + j];
  }
  // Columns of v accumulate the rotations: they become the eigenvectors.
  std::vector<double> v(size_t(n) * n, 0.0);
  for (int i = 0; i < n; ++i) v[i * n + i] = 1.0;

  double scale = 0;
  for (double x : a) scale = std::max(scale, std::abs(x));
  // Jacobi converges quadratically; 50 sweeps is far beyond what double precision needs.
  for (int sweep = 0; sweep < 50 && scale > 0; ++sweep) {
    double off = 0;
    for (int p = 0; p < n; ++p)
      for (int q = p + 1; q < n; ++q) off += a[p * n + q] * a[p * n + q];
    if (std::sqrt(off) <= 1e-15 * scale) break;
    for (int p = 0; p < n; ++p) {
      for (int q = p + 1; q < n; ++q) {
        const double apq = a[p * n + q];
        if (apq == 0) continue;
        // The rotation angle that zeroes a[p][q], in the numerically stable form (smaller root).
        const double theta = (a[q * n + q] - a[p * n + p]) / (2 * apq);
        const double t =
            (theta >= 0 ? 1.0 : -1.0) / (std::abs(theta) + std::sqrt(theta * theta + 1));
        const double c = 1 / std::sqrt(t * t + 1), s = t * c;
        for (int k = 0; k < n; ++k) {  // A <- A J (columns p, q)
          const double akp = a[k * n + p], akq = a[k * n + q];
          a[k * n + p] = c * akp - s * akq;
          a[k * n + q] = s * akp + c * akq;
        }
        for (int k = 0; k < n; ++k) {  // A <- J^T A (rows p, q)
          const double apk = a[p * n + k], aqk = a[q * n + k];
          a[p * n + k] = c * apk - s * aqk;
          a[q * n + k] = s * apk + c * aqk;
        }
        for (int k = 0; k < n; ++k) {
          const double vkp = v[k * n + p], vkq = v[k * n + q];
          v[k * n + p] = c * vkp - s * vkq;
          v[k * n + q] = s * vkp + c * vkq;
        }
      }
    }
  }

  std::vector<int> order(n);
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(),
                   [&](int i, int j) { return a[i * n + i] > a[j * n + j]; });
  SymmetricEigen result;
  result.values.resize(n);
  result.vectors.resize(size_t(n) * n);
  for (int i = 0; i < n; ++i) {
    const int column = order[i];
    result.values[i] = a[column * n + column];
    int largest = 0;
    double norm = 0;
    for (int k = 0; k < n; ++k) {
      norm += v[k * n + column] * v[k * n + column];
      if (std::abs(v[k * n + column]) > std::abs(v[largest * n + column])) largest = k;
    }
    const double sign = v[largest * n + column] < 0 ? -1.0 : 1.0;
    for (int k = 0; k < n; ++k) {
      result.vectors[i * n + k] = sign * v[k * n + column] / std::sqrt(norm);
    }
  }
  return result;
}

}  // namespace engine
