// Reduced precision (bf16, fp16) for the convolutions and inner products: the rounding of their
// operands, and what the processor offers. Rounding an operand to bf16 or fp16 and multiplying in
// fp32 gives exactly the products that bf16 or fp16 hardware forms (a product of two such values
// is exact in fp32); sums accumulate in fp32 as they do there. So a layer without a native
// reduced-precision path computes what one with it computes, in fp32's time (reduced_precision.hpp).
#pragma once

#include <cstdint>
#include <string>

#include "engine.pb.h"
#include "math/blas.hpp"

namespace engine {

// "fp32", "bf16", "fp16".
std::string precision_name(Precision precision);
// Reads "fp32", "bf16" or "fp16" (any case); throws engine::Error naming `who` otherwise.
Precision parse_precision(const std::string& text, const std::string& who);
// Whether this processor multiplies bf16 in hardware (AVX512-BF16 or AMX-BF16).
bool cpu_has_bf16_arithmetic();
// The processor's line for benchmarks: "bf16 in hardware (avx512_bf16)" or "no bf16 hardware".
std::string cpu_bf16_support();

namespace cpu {
// y = x rounded to the nearest value of the precision, ties to even (x and y may alias). NaN
// stays NaN; fp16 rounds magnitudes beyond its range to infinity, as fp16 storage does.
void round_to(Precision precision, int64_t n, const float* x, float* y);
}  // namespace cpu

#ifdef ENGINE_USE_CUDA
namespace gpu {
void round_to(Precision precision, int64_t n, const float* x, float* y);

// While alive, this thread's cuBLAS float products may run on TF32 tensor cores: exact for
// operands rounded to bf16 or fp16, whose significands fit TF32's.
class TensorCoreGemms {
 public:
  TensorCoreGemms();
  ~TensorCoreGemms();
  TensorCoreGemms(const TensorCoreGemms&) = delete;
  TensorCoreGemms& operator=(const TensorCoreGemms&) = delete;

 private:
  int previous_ = 0;
};
}  // namespace gpu
#endif

namespace math {
inline void round_to(Precision precision, int64_t n, const float* x, float* y) {
  ENGINE_ON_DEVICE(round_to(precision, n, x, y));
}
}  // namespace math

}  // namespace engine
