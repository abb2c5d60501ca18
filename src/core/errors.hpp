// Errors: one exception type for everything a user supplies, and the checking macros.
//
// ENGINE_REQUIRE(cond, message) validates user input (files, flags, shapes, records) and throws
// engine::Error with the message; tools print it and exit 1. The message is a stream expression:
//   ENGINE_REQUIRE(k > 0, "layer " << name << ": kernel_size must be positive, got " << k);
// Internal invariants, which only a bug in the engine can break, use glog's CHECK macros.
#pragma once

#include <sstream>
#include <stdexcept>
#include <string>

#include <glog/logging.h>

namespace engine {

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& message) : std::runtime_error(message) {}
};

// Memory refused (by the system, or past set_host_memory_limit): the net adds the layer's name.
class OutOfMemory : public Error {
 public:
  explicit OutOfMemory(const std::string& message) : Error(message) {}
};

}  // namespace engine

#define ENGINE_FAIL(message)                   \
  do {                                         \
    std::ostringstream engine_error_stream_;   \
    engine_error_stream_ << message;           \
    throw ::engine::Error(engine_error_stream_.str()); \
  } while (0)

#define ENGINE_REQUIRE(condition, message) \
  do {                                     \
    if (!(condition)) ENGINE_FAIL(message); \
  } while (0)

#ifdef ENGINE_USE_CUDA
#define ENGINE_CUDA_CHECK(call)                                                  \
  do {                                                                           \
    cudaError_t engine_cuda_status_ = (call);                                    \
    CHECK_EQ(engine_cuda_status_, cudaSuccess)                                   \
        << #call << ": " << cudaGetErrorString(engine_cuda_status_);             \
  } while (0)
#define ENGINE_CUBLAS_CHECK(call)                                                \
  do {                                                                           \
    cublasStatus_t engine_cublas_status_ = (call);                               \
    CHECK_EQ(engine_cublas_status_, CUBLAS_STATUS_SUCCESS)                       \
        << #call << ": " << cublasGetStatusString(engine_cublas_status_);        \
  } while (0)
#define ENGINE_CUDNN_CHECK(call)                                                 \
  do {                                                                           \
    cudnnStatus_t engine_cudnn_status_ = (call);                                 \
    CHECK_EQ(engine_cudnn_status_, CUDNN_STATUS_SUCCESS)                         \
        << #call << ": " << cudnnGetErrorString(engine_cudnn_status_);           \
  } while (0)
#endif
