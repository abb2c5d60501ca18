#include "math/precision.hpp"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstring>
#include <fstream>
#include <sstream>

#include "core/errors.hpp"
#include "math/parallel.hpp"
#include "math/simd.hpp"

namespace engine {
namespace {

// The processor's feature flags from /proc/cpuinfo ("" where there is none).
std::string cpu_flags() {
  std::ifstream cpuinfo("/proc/cpuinfo");
  std::string line;
  while (std::getline(cpuinfo, line)) {
    if (line.rfind("flags", 0) == 0) return line.substr(line.find(':') + 1) + " ";
  }
  return "";
}

bool has_flag(const std::string& flags, const char* flag) {
  return flags.find(std::string(" ") + flag + " ") != std::string::npos;
}

// Round to nearest even on the bit pattern: add half an ulp of bf16 (less one when the kept
// bit is even), then drop the low 16 bits. NaNs keep a set quiet bit so they stay NaN.
ENGINE_VECTORIZED void round_to_bf16(int64_t n, const float* x, float* y) {
  for (int64_t i = 0; i < n; ++i) {
    uint32_t bits;
    std::memcpy(&bits, &x[i], sizeof bits);
    const bool nan = (bits & 0x7fffffffu) > 0x7f800000u;
    const uint32_t rounded = (bits + 0x7fffu + ((bits >> 16) & 1u)) & 0xffff0000u;
    bits = nan ? (bits | 0x00400000u) & 0xffff0000u : rounded;
    std::memcpy(&y[i], &bits, sizeof bits);
  }
}

// fp16 keeps 11 significant bits down to 2^-14, multiples of 2^-24 below (subnormals), and
// rounds magnitudes from 65520 (halfway past its largest value, 65504) to infinity. Written
// with integer and float operations every compiler vectorizes (not every one has _Float16).
ENGINE_VECTORIZED void round_to_fp16(int64_t n, const float* x, float* y) {
  constexpr uint32_t kSmallestNormal = 0x38800000u;  // 2^-14
  constexpr uint32_t kOverflow = 0x477ff000u;        // 65520
  for (int64_t i = 0; i < n; ++i) {
    uint32_t bits;
    std::memcpy(&bits, &x[i], sizeof bits);
    const uint32_t magnitude = bits & 0x7fffffffu;
    const uint32_t kept = (bits + 0xfffu + ((bits >> 13) & 1u)) & 0xffffe000u;
    float normal;
    std::memcpy(&normal, &kept, sizeof normal);
    const float subnormal = std::nearbyint(x[i] * 0x1p24f) * 0x1p-24f;
    float rounded = magnitude < kSmallestNormal ? subnormal : normal;
    rounded = magnitude >= kOverflow ? std::copysign(HUGE_VALF, x[i]) : rounded;
    y[i] = magnitude > 0x7f800000u ? x[i] : rounded;  // NaN stays NaN
  }
}

}  // namespace

std::string precision_name(Precision precision) {
  switch (precision) {
    case BF16:
      return "bf16";
    case FP16:
      return "fp16";
    case FP32:
    default:
      return "fp32";
  }
}

Precision parse_precision(const std::string& text, const std::string& who) {
  std::string lower = text;
  std::transform(lower.begin(), lower.end(), lower.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  for (Precision precision : {FP32, BF16, FP16}) {
    if (lower == precision_name(precision)) return precision;
  }
  ENGINE_FAIL(who << ": precision must be fp32, bf16 or fp16, got '" << text << "'");
}

bool cpu_has_bf16_arithmetic() {
  static const bool has = [] {
    const std::string flags = cpu_flags();
    return has_flag(flags, "avx512_bf16") || has_flag(flags, "amx_bf16");
  }();
  return has;
}

std::string cpu_bf16_support() {
  const std::string flags = cpu_flags();
  std::string found;
  for (const char* flag : {"avx512_bf16", "amx_bf16"}) {
    if (has_flag(flags, flag)) found += std::string(found.empty() ? "" : ", ") + flag;
  }
  return found.empty() ? "no bf16 hardware (bf16 rounds the operands and multiplies in fp32)"
                       : "bf16 in hardware (" + found + ")";
}

namespace cpu {

void round_to(Precision precision, int64_t n, const float* x, float* y) {
  if (precision == FP32) {
    if (x != y) std::copy(x, x + n, y);
    return;
  }
  parallel_chunks(n, [&](int64_t begin, int64_t end) {
    if (precision == BF16) {
      round_to_bf16(end - begin, x + begin, y + begin);
    } else {
      round_to_fp16(end - begin, x + begin, y + begin);
    }
  });
}

}  // namespace cpu
}  // namespace engine
