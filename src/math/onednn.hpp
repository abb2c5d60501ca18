// The oneDNN fast CPU path: the engine and stream every oneDNN layer shares, the choice between
// oneDNN and the reference code for a layer, and small conversions. oneDNN ignores OpenBLAS's
// settings and uses its own threads (OpenMP), one per core.
#pragma once

#include <string>
#include <unordered_map>
#include <vector>

#include "core/synced_memory.hpp"

#ifdef ENGINE_USE_ONEDNN
#include <oneapi/dnnl/dnnl.hpp>
#endif

namespace engine {

// The `engine` field of a layer parameter, whose values are the same in every message:
// DEFAULT (0) picks the fastest available path, CAFFE (1) the reference code, CUDNN (2) cuDNN on
// the GPU (on the CPU it means the default), ONEDNN (1000) oneDNN; Convolution's WINOGRAD (1001)
// is our own CPU code (conv_winograd.cpp), its ONEDNN_NHWC (1002) oneDNN on channels-last
// activations; InnerProduct's ONEDNN_SGEMM (1003) oneDNN with its sgemm for the backward pass.
enum EngineField : int {
  kEngineDefault = 0,
  kEngineCaffe = 1,
  kEngineCudnn = 2,
  kEngineOnednn = 1000,
  kEngineWinograd = 1001,
  kEngineOnednnNhwc = 1002,
  kEngineOnednnSgemm = 1003,
};
// Whether to use oneDNN; asking for it in a build without oneDNN throws, naming the layer.
bool use_onednn(int engine_field, const std::string& layer_description);
bool onednn_available();

#ifdef ENGINE_USE_ONEDNN
namespace onednn {

dnnl::engine& cpu_engine();
dnnl::stream& cpu_stream();
// Points memory at data and returns it, for argument lists (oneDNN takes a non-const handle
// for inputs too, and only reads them).
dnnl::memory& bind(dnnl::memory& memory, const void* data);
// Executes one primitive on the shared stream and waits for it: for a layer whose pass is that
// one primitive. (Passes of several primitives execute them all, then wait once.)
void run(const dnnl::primitive& primitive, const std::unordered_map<int, dnnl::memory>& args);
dnnl::memory::dims dims(const std::vector<int>& shape);
// C = op(A) op(B) + beta C, row-major, op(A) M x K and op(B) K x N (cpu::gemm's contract), by
// oneDNN's own sgemm: it writes a beta = 0 product without OpenBLAS's separate pass zeroing C,
// and packs short reductions better (Winograd's products: 15-25% faster on AVX2).
void gemm(bool transpose_a, bool transpose_b, int M, int N, int K, const float* A,
          const float* B, float beta, float* C);

// Layouts kept between layers. A layer writes its output in the format its primitive computes
// it in (blocked, usually) into the blob's memory as an arrangement (synced_memory.hpp); the
// next oneDNN layer reads it as it is, and anyone else (reference code, the GPU, net.blobs, a
// snapshot) gets the plain values converted once. ENGINE_LAYOUTS=plain turns this off: every
// output is reordered into the plain blob, as before, for comparison.
bool keeps_layouts();

// The plain (row-major) format of `dims`.
dnnl::memory::desc plain_desc(const dnnl::memory::dims& dims,
                              dnnl::memory::data_type type = dnnl::memory::data_type::f32);

// A oneDNN format as a blob arrangement: converts to and from the blob's plain fp32 values by
// reorders made once. `plain` is how the blob orders the same dims (row-major, except where
// oneDNN's dims are a permutation of the blob's axes: Deconvolution's weights).
class Layout : public HostLayout {
 public:
  Layout(const dnnl::memory::desc& desc, const dnnl::memory::desc& plain);
  const dnnl::memory::desc& desc() const { return desc_; }
  const dnnl::memory::desc& plain_desc() const { return plain_desc_; }
  // The plain fp32 format itself: reading or writing it needs no arrangement.
  bool plain() const { return plain_; }
  size_t bytes() const override { return desc_.get_size(); }
  size_t plain_bytes() const override { return plain_desc_.get_size(); }
  bool same_as(const HostLayout& other) const override;
  std::string name() const override;
  void to_plain(const void* arranged, void* plain) const override;
  void from_plain(const void* plain, void* arranged) const override;

 private:
  dnnl::memory::desc desc_, plain_desc_;
  bool plain_;
  dnnl::reorder to_plain_, from_plain_;
  // Handles set per conversion (a layout converts on one thread at a time, as a net runs).
  mutable dnnl::memory arranged_memory_, plain_memory_;
};
using LayoutPtr = std::shared_ptr<const Layout>;
LayoutPtr make_layout(const dnnl::memory::desc& desc);  // plain: row-major

// The format a memory holds its newest values in, when that is a oneDNN fp32 format of `dims`;
// else the plain format of `dims`.
dnnl::memory::desc held_desc(const SyncedMemory& values, const dnnl::memory::dims& dims);

// A primitive's input: a blob's values in the format the primitive reads. in() hands it the
// memory's own arrangement when it holds one in that format, else reorders the plain values
// into an arranged copy that the memory keeps for later readers (the backward pass), or, for
// values handed out plainly (SyncedMemory::expose_host), into a buffer of its own. Values held
// only in another oneDNN format (a layer before wrote them so) are reordered from it directly
// into the memory's second arrangement: one pass instead of two through the plain values.
class Input {
 public:
  void init(const dnnl::memory::desc& wanted);
  void init(const dnnl::memory::desc& wanted, const dnnl::memory::desc& plain);
  const dnnl::memory& in(SyncedMemory& values);
  const LayoutPtr& layout() const { return layout_; }

 private:
  // Values held only in another oneDNN format of the same dims: reordered from it into the
  // memory's second arrangement, to which memory_ then points. False where that cannot be.
  bool convert_directly(SyncedMemory& values);

  LayoutPtr layout_;
  dnnl::memory memory_, scratch_;
  // The direct reorder from the last format converted from.
  dnnl::memory::desc direct_from_;
  dnnl::memory direct_source_;
  dnnl::reorder direct_;
};

// A primitive's output: written straight into the blob's memory as an arrangement in the
// primitive's format (or plainly, when that format is plain); with ENGINE_LAYOUTS=plain, or for
// values handed out plainly, into a buffer that finish() reorders into the plain blob.
class Output {
 public:
  void init(const dnnl::memory::desc& format);
  const dnnl::memory& out(SyncedMemory& values);
  // Call after the primitive ran (on the shared stream).
  void finish();
  const LayoutPtr& layout() const { return layout_; }

 private:
  LayoutPtr layout_;
  dnnl::memory memory_, staging_;
  SyncedMemory* staged_for_ = nullptr;
};

}  // namespace onednn
#endif

}  // namespace engine
