#include "math/onednn.hpp"

#include <cstdlib>
#include <sstream>

#include "core/errors.hpp"

namespace engine {

bool onednn_available() {
#ifdef ENGINE_USE_ONEDNN
  return true;
#else
  return false;
#endif
}

bool use_onednn(int engine_field, const std::string& layer_description) {
  switch (engine_field) {
    case kEngineCaffe:
    case kEngineWinograd:
      return false;
    case kEngineOnednn:
    case kEngineOnednnNhwc:
    case kEngineOnednnSgemm:
      ENGINE_REQUIRE(onednn_available(),
                     layer_description << ": engine "
                                       << (engine_field == kEngineOnednn       ? "ONEDNN"
                                           : engine_field == kEngineOnednnNhwc ? "ONEDNN_NHWC"
                                                                               : "ONEDNN_SGEMM")
                                       << " was asked for, but this build has no oneDNN "
                                          "(install libdnnl-dev and rebuild)");
      return true;
    case kEngineDefault:
    case kEngineCudnn:
    default:
      return onednn_available();
  }
}

#ifdef ENGINE_USE_ONEDNN
namespace onednn {

dnnl::engine& cpu_engine() {
  static dnnl::engine engine(dnnl::engine::kind::cpu, 0);
  return engine;
}

dnnl::stream& cpu_stream() {
  thread_local dnnl::stream stream(cpu_engine());
  return stream;
}

dnnl::memory& bind(dnnl::memory& memory, const void* data) {
  memory.set_data_handle(const_cast<void*>(data));
  return memory;
}

void run(const dnnl::primitive& primitive, const std::unordered_map<int, dnnl::memory>& args) {
  primitive.execute(cpu_stream(), args);
  cpu_stream().wait();
}

dnnl::memory::dims dims(const std::vector<int>& shape) {
  return dnnl::memory::dims(shape.begin(), shape.end());
}

void gemm(bool transpose_a, bool transpose_b, int M, int N, int K, const float* A,
          const float* B, float beta, float* C) {
  const dnnl_status_t status =
      dnnl_sgemm(transpose_a ? 'T' : 'N', transpose_b ? 'T' : 'N', M, N, K, 1.0f, A,
                 transpose_a ? M : K, B, transpose_b ? K : N, beta, C, N);
  ENGINE_REQUIRE(status == dnnl_success, "oneDNN's sgemm failed (status " << status << ") on a "
                                             << M << " x " << K << " by " << K << " x " << N
                                             << " product");
}

bool keeps_layouts() {
  const char* setting = std::getenv("ENGINE_LAYOUTS");
  return !(setting && std::string(setting) == "plain");
}

dnnl::memory::desc plain_desc(const dnnl::memory::dims& dims, dnnl::memory::data_type type) {
  using Tag = dnnl::memory::format_tag;
  static const Tag tags[] = {Tag::a, Tag::ab, Tag::abc, Tag::abcd, Tag::abcde, Tag::abcdef};
  ENGINE_REQUIRE(!dims.empty() && dims.size() <= 6,
                 "oneDNN formats have 1 to 6 dimensions, not " << dims.size());
  return dnnl::memory::desc(dims, type, tags[dims.size() - 1]);
}

Layout::Layout(const dnnl::memory::desc& desc, const dnnl::memory::desc& plain)
    : desc_(desc), plain_desc_(plain), plain_(desc == plain) {
  if (plain_) return;
  arranged_memory_ = dnnl::memory(desc_, cpu_engine(), nullptr);
  plain_memory_ = dnnl::memory(plain_desc_, cpu_engine(), nullptr);
  to_plain_ = dnnl::reorder(arranged_memory_, plain_memory_);
  from_plain_ = dnnl::reorder(plain_memory_, arranged_memory_);
}

bool Layout::same_as(const HostLayout& other) const {
  const auto* layout = dynamic_cast<const Layout*>(&other);
  return layout != nullptr && layout->desc_ == desc_ && layout->plain_desc_ == plain_desc_;
}

std::string Layout::name() const {
  // The blocking: strides of the outer dimensions, then the inner blocks, e.g.
  // "f32 32x96x27x27 strides 69984,1,2592,96 blocks 1:8".
  const dnnl_memory_desc_t& raw = desc_.data;
  std::ostringstream out;
  out << (desc_.data_type() == dnnl::memory::data_type::f32 ? "f32 " : "reduced ");
  for (int i = 0; i < raw.ndims; ++i) out << (i ? "x" : "") << raw.dims[i];
  if (raw.format_kind != dnnl_blocked) return out.str() + " (not blocked)";
  out << " strides";
  for (int i = 0; i < raw.ndims; ++i) out << (i ? "," : " ") << raw.format_desc.blocking.strides[i];
  out << " blocks";
  for (int i = 0; i < raw.format_desc.blocking.inner_nblks; ++i) {
    out << ' ' << raw.format_desc.blocking.inner_idxs[i] << ':'
        << raw.format_desc.blocking.inner_blks[i];
  }
  return out.str();
}

void Layout::to_plain(const void* arranged, void* plain) const {
  arranged_memory_.set_data_handle(const_cast<void*>(arranged));
  plain_memory_.set_data_handle(plain);
  to_plain_.execute(cpu_stream(), arranged_memory_, plain_memory_);
  cpu_stream().wait();
}

void Layout::from_plain(const void* plain, void* arranged) const {
  plain_memory_.set_data_handle(const_cast<void*>(plain));
  arranged_memory_.set_data_handle(arranged);
  from_plain_.execute(cpu_stream(), plain_memory_, arranged_memory_);
  cpu_stream().wait();
}

LayoutPtr make_layout(const dnnl::memory::desc& desc) {
  return std::make_shared<Layout>(desc, plain_desc(desc.dims()));
}

dnnl::memory::desc held_desc(const SyncedMemory& values, const dnnl::memory::dims& dims) {
  const auto* held = dynamic_cast<const Layout*>(values.arranged_layout().get());
  if (held && held->desc().dims() == dims &&
      held->desc().data_type() == dnnl::memory::data_type::f32) {
    return held->desc();
  }
  return plain_desc(dims);
}

void Input::init(const dnnl::memory::desc& wanted) { init(wanted, plain_desc(wanted.dims())); }

void Input::init(const dnnl::memory::desc& wanted, const dnnl::memory::desc& plain) {
  layout_ = std::make_shared<Layout>(wanted, plain);
  memory_ = dnnl::memory(wanted, cpu_engine(), nullptr);
  scratch_ = dnnl::memory();
}

bool Input::convert_directly(SyncedMemory& values) {
  const auto* held = dynamic_cast<const Layout*>(values.arranged_layout().get());
  if (!values.plain_stale() || !held || held->plain_desc() != layout_->plain_desc()) return false;
  void* converted = values.converted_copy(layout_);
  if (!converted) return false;
  if (!direct_ || held->desc() != direct_from_) {
    direct_from_ = held->desc();
    direct_source_ = dnnl::memory(direct_from_, cpu_engine(), nullptr);
    direct_ = dnnl::reorder(direct_source_, memory_);
  }
  direct_source_.set_data_handle(const_cast<void*>(values.arranged_data(*held)));
  memory_.set_data_handle(converted);
  direct_.execute(cpu_stream(), direct_source_, memory_);
  cpu_stream().wait();
  return true;
}

const dnnl::memory& Input::in(SyncedMemory& values) {
  if (layout_->plain()) {
    memory_.set_data_handle(const_cast<void*>(values.host_data()));
  } else if (const void* arranged = values.arranged_data(*layout_)) {
    memory_.set_data_handle(const_cast<void*>(arranged));
  } else if (const void* converted = values.converted_data(*layout_)) {
    memory_.set_data_handle(const_cast<void*>(converted));
  } else if (!convert_directly(values)) {
    const void* plain = values.host_data();
    void* arranged = values.arranged_copy(layout_);
    if (!arranged) {
      // Values the user holds plainly: converted into a buffer of this input's own.
      if (!scratch_) scratch_ = dnnl::memory(layout_->desc(), cpu_engine());
      arranged = scratch_.get_data_handle();
    }
    layout_->from_plain(plain, arranged);
    memory_.set_data_handle(arranged);
  }
  return memory_;
}

void Output::init(const dnnl::memory::desc& format) {
  layout_ = make_layout(format);
  memory_ = dnnl::memory(format, cpu_engine(), nullptr);
  staging_ = dnnl::memory();
}

const dnnl::memory& Output::out(SyncedMemory& values) {
  staged_for_ = nullptr;
  if (layout_->plain()) {
    memory_.set_data_handle(values.mutable_host_data());
  } else if (keeps_layouts() && values.may_arrange()) {
    memory_.set_data_handle(values.mutable_arranged_data(layout_));
  } else {
    if (!staging_) staging_ = dnnl::memory(layout_->desc(), cpu_engine());
    staged_for_ = &values;
    return staging_;
  }
  return memory_;
}

void Output::finish() {
  if (!staged_for_) return;
  layout_->to_plain(staging_.get_data_handle(), staged_for_->mutable_host_data());
  staged_for_ = nullptr;
}

}  // namespace onednn
#endif

}  // namespace engine
