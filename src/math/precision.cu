// The GPU side of precision.hpp: the operands' rounding as CUDA's own conversions (round to
// nearest even, NaN kept, fp16 overflow to infinity).
#include <cublas_v2.h>
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include "core/context.hpp"
#include "core/errors.hpp"
#include "math/blas.hpp"
#include "math/cuda_kernel.cuh"
#include "math/precision.hpp"

namespace engine {
namespace gpu {
namespace {

__global__ void round_to_bf16_kernel(int64_t n, const float* x, float* y) {
  ENGINE_CUDA_KERNEL_LOOP(i, n) { y[i] = __bfloat162float(__float2bfloat16_rn(x[i])); }
}

__global__ void round_to_fp16_kernel(int64_t n, const float* x, float* y) {
  ENGINE_CUDA_KERNEL_LOOP(i, n) { y[i] = __half2float(__float2half_rn(x[i])); }
}

}  // namespace

void round_to(Precision precision, int64_t n, const float* x, float* y) {
  if (precision == FP32) {
    if (x != y) copy(n, x, y);
    return;
  }
  if (precision == BF16) {
    ENGINE_CUDA_LAUNCH(round_to_bf16_kernel, n, x, y);
  } else {
    ENGINE_CUDA_LAUNCH(round_to_fp16_kernel, n, x, y);
  }
}

TensorCoreGemms::TensorCoreGemms() {
  cublasMath_t mode;
  ENGINE_CUBLAS_CHECK(cublasGetMathMode(Context::cublas(), &mode));
  previous_ = static_cast<int>(mode);
  ENGINE_CUBLAS_CHECK(cublasSetMathMode(Context::cublas(), CUBLAS_TF32_TENSOR_OP_MATH));
}

TensorCoreGemms::~TensorCoreGemms() {
  cublasSetMathMode(Context::cublas(), static_cast<cublasMath_t>(previous_));
}

}  // namespace gpu
}  // namespace engine
