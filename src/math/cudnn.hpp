// The cuDNN path on the GPU: the choice between cuDNN and our own kernels for a layer, RAII
// descriptors, and the convolution workspace.
//
// Choice (use_cudnn): a layer's `engine` field DEFAULT, CUDNN (or ONEDNN, a CPU engine that
// means "the default" on the GPU) runs cuDNN where cuDNN computes what Caffe computes; CAFFE runs
// our own CUDA kernels (or, for a layer without any, its CPU code).
//
// Workspace: one device buffer per thread and device, shared by every layer that thread runs
// (the layers of a net run one after another), grown on demand and never shrunk, so after the
// first iteration no layer allocates. Its size per layer is bounded by workspace_limit().
//
// Numerics: descriptors are made with CUDNN_FMA_MATH, so float convolutions never drop to TF32
// tensor-core math (whose 10-bit mantissa would break parity with the CPU at 1e-4).
// Deterministic choices follow Context::deterministic().
#pragma once

#include <cstddef>
#include <string>
#include <vector>

#ifdef ENGINE_USE_CUDA
#include <cudnn.h>

#include "core/errors.hpp"
#endif

namespace engine {

// Whether a layer whose `engine` field is engine_field computes with cuDNN on the GPU. False in a
// build without CUDA.
bool use_cudnn(int engine_field, const std::string& layer_description);

#ifdef ENGINE_USE_CUDA
namespace cudnn {

// Owns one cuDNN descriptor of type T.
template <class T, cudnnStatus_t (*Create)(T*), cudnnStatus_t (*Destroy)(T)>
class Descriptor {
 public:
  Descriptor() { ENGINE_CUDNN_CHECK(Create(&descriptor_)); }
  ~Descriptor() { Destroy(descriptor_); }
  Descriptor(const Descriptor&) = delete;
  Descriptor& operator=(const Descriptor&) = delete;
  T get() const { return descriptor_; }
  operator T() const { return descriptor_; }

 private:
  T descriptor_ = nullptr;
};

using TensorDescriptor = Descriptor<cudnnTensorDescriptor_t, cudnnCreateTensorDescriptor,
                                    cudnnDestroyTensorDescriptor>;
using FilterDescriptor = Descriptor<cudnnFilterDescriptor_t, cudnnCreateFilterDescriptor,
                                    cudnnDestroyFilterDescriptor>;
using ConvolutionDescriptor = Descriptor<cudnnConvolutionDescriptor_t,
                                         cudnnCreateConvolutionDescriptor,
                                         cudnnDestroyConvolutionDescriptor>;
using PoolingDescriptor = Descriptor<cudnnPoolingDescriptor_t, cudnnCreatePoolingDescriptor,
                                     cudnnDestroyPoolingDescriptor>;
using LRNDescriptor =
    Descriptor<cudnnLRNDescriptor_t, cudnnCreateLRNDescriptor, cudnnDestroyLRNDescriptor>;
using ActivationDescriptor = Descriptor<cudnnActivationDescriptor_t,
                                        cudnnCreateActivationDescriptor,
                                        cudnnDestroyActivationDescriptor>;

// A dense float NCHW tensor.
void set_tensor(cudnnTensorDescriptor_t descriptor, int n, int c, int h, int w);
// A float KCRS filter (output channels, input channels per group, height, width).
void set_filter(cudnnFilterDescriptor_t descriptor, int k, int c, int h, int w);

// The scaling factors cuDNN takes by pointer: result = alpha * op + beta * result.
extern const float kOne;
extern const float kZero;

// The most workspace one convolution pass may use when choosing its algorithm (default 1 GiB).
// Process-wide; a change applies when a layer next chooses (its shapes change or it is new).
size_t workspace_limit();
void set_workspace_limit(size_t bytes);

// Makes this thread's workspace on the current device at least `bytes` large. Returns false when
// the device has not that much memory free (the previous workspace is kept), so that the caller
// can fall back to an algorithm that needs less.
bool reserve_workspace(size_t bytes);
// The workspace, at least `bytes` large (growing it if needed; running out of memory here is
// fatal: callers reserve first). nullptr for 0 bytes.
void* workspace(size_t bytes);

// For tests: makes reserve_workspace fail for any size above `bytes`, as if the device had only
// that much memory to spare (SIZE_MAX: no simulated limit).
void set_simulated_memory_limit(size_t bytes);

}  // namespace cudnn
#endif

}  // namespace engine
