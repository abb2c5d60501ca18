// Eltwise: elementwise PROD, SUM (weighted by coeff) or MAX of bottoms of one shape. A SUM
// computes the ReLU (or Clip) a net fused after it (a residual block's) in the same pass.
#include <algorithm>
#include <vector>

#include "core/channel_epilogue.hpp"
#include "core/layer.hpp"
#include "core/layer_registry.hpp"
#include "core/synced_memory.hpp"
#include "math/blas.hpp"
#include "math/parallel.hpp"

namespace engine {

#ifdef ENGINE_USE_CUDA
// eltwise.cu: MAX over `count` bottoms (device pointers listed on the host), recording the
// winning bottom of each element; and its gradient for bottom `index`.
void eltwise_max_forward_gpu(int64_t n, const float* const* bottoms, int count, float* out,
                             int* winner);
void eltwise_max_backward_gpu(int64_t n, const float* top_diff, const int* winner, int index,
                              float* diff);
#endif

namespace {

class EltwiseLayer : public Layer {
 public:
  using Layer::Layer;
  int min_bottoms() const override { return 2; }
  int exact_tops() const override { return 1; }
  bool accepts_epilogue() const override {
    return param_.eltwise_param().operation() == EltwiseParameter::SUM;
  }
  bool epilogue_takes_affine() const override { return false; }
  void set_epilogue(const ChannelEpilogue* epilogue) override { epilogue_ = epilogue; }

  void layer_setup(const Blobs& bottom, const Blobs& top) override {
    const EltwiseParameter& p = param_.eltwise_param();
    op_ = p.operation();
    const int bottoms = static_cast<int>(bottom.size());
    LAYER_REQUIRE(p.coeff_size() == 0 || p.coeff_size() == bottoms,
                  "eltwise_param needs one coeff per bottom (" << bottoms << "), got "
                                                               << p.coeff_size());
    LAYER_REQUIRE(p.coeff_size() == 0 || op_ == EltwiseParameter::SUM,
                  "coeff applies to operation SUM only, not "
                      << EltwiseParameter::EltwiseOp_Name(op_));
    coeffs_.assign(bottoms, 1.0f);
    for (int i = 0; i < p.coeff_size(); ++i) coeffs_[i] = p.coeff(i);
    stable_prod_grad_ = p.stable_prod_grad();
  }

  void reshape(const Blobs& bottom, const Blobs& top) override {
    for (size_t i = 1; i < bottom.size(); ++i) {
      LAYER_REQUIRE(bottom[i]->shape() == bottom[0]->shape(),
                    "bottoms must have one shape: bottom 0 is "
                        << bottom[0]->shape_string() << ", bottom " << i << " is "
                        << bottom[i]->shape_string());
    }
    top[0]->reshape_like(*bottom[0]);
    if (op_ == EltwiseParameter::MAX) {
      winner_.resize(bottom[0]->count());
      winner_gpu_.resize(sizeof(int) * bottom[0]->count());
    }
  }

 protected:
  // One implementation for both devices: PROD and SUM are math:: primitives, MAX a loop here and
  // kernels in eltwise.cu.
  void forward_cpu(const Blobs& bottom, const Blobs& top) override {
    if (op_ == EltwiseParameter::SUM && !math::on_gpu()) return sum_on_cpu(bottom, top);
    const int64_t count = top[0]->count();
    float* out = top[0]->mutable_data();
    switch (op_) {
      case EltwiseParameter::PROD:
        math::mul(count, bottom[0]->data(), bottom[1]->data(), out);
        for (size_t i = 2; i < bottom.size(); ++i) math::mul(count, out, bottom[i]->data(), out);
        break;
      case EltwiseParameter::SUM:
        math::scale(count, coeffs_[0], bottom[0]->data(), out);
        for (size_t i = 1; i < bottom.size(); ++i) {
          math::axpy(count, coeffs_[i], bottom[i]->data(), out);
        }
        break;
      case EltwiseParameter::MAX:
        max_forward(bottom, out);
        break;
    }
  }

  void backward_cpu(const Blobs& top, const std::vector<bool>& propagate_down,
                    const Blobs& bottom) override {
    if (op_ == EltwiseParameter::SUM && !math::on_gpu() &&
        arranged_sum_gradient(top, propagate_down, bottom)) {
      return;
    }
    const int64_t count = top[0]->count();
    const float* top_diff = top[0]->diff();
    const float* top_data = top[0]->data();
    for (size_t i = 0; i < bottom.size(); ++i) {
      if (!propagate_down[i]) continue;
      float* diff = bottom[i]->mutable_diff();
      switch (op_) {
        case EltwiseParameter::PROD:
          if (stable_prod_grad_) {
            // The product of the other bottoms: exact even where bottom i is zero.
            bool started = false;
            for (size_t j = 0; j < bottom.size(); ++j) {
              if (j == i) continue;
              if (!started) {
                math::copy(count, bottom[j]->data(), diff);
                started = true;
              } else {
                math::mul(count, diff, bottom[j]->data(), diff);
              }
            }
          } else {
            math::div(count, top_data, bottom[i]->data(), diff);
          }
          math::mul(count, diff, top_diff, diff);
          break;
        case EltwiseParameter::SUM:
          if (coeffs_[i] == 1.0f) {
            math::copy(count, top_diff, diff);
          } else {
            math::scale(count, coeffs_[i], top_diff, diff);
          }
          break;
        case EltwiseParameter::MAX:
          max_backward(count, top_diff, static_cast<int>(i), diff);
          break;
      }
    }
  }

 private:
  // The sum on the CPU, with the fused clamp. Bottoms that arrive arranged alike (blocked, from
  // oneDNN layers: a residual connection) are summed on the arrangement, which the top keeps,
  // when the clamp keeps the blocks' zero padding zero; others plainly.
  void sum_on_cpu(const Blobs& bottom, const Blobs& top) {
    const ChannelClamp* clamp = epilogue_ && epilogue_->clamps() ? &epilogue_->clamp() : nullptr;
    std::vector<const SyncedMemory*> memories;
    for (const Blob* blob : bottom) memories.push_back(blob->data_memory().get());
    HostLayoutPtr layout = shared_arrangement(memories);
    if (!top[0]->data_memory()->may_arrange() || (clamp && !clamp->keeps_zero())) layout.reset();
    std::vector<const float*> parts;
    for (const Blob* blob : bottom) {
      const SyncedMemory& values = *blob->data_memory();
      parts.push_back(layout ? static_cast<const float*>(values.arranged_data(*layout))
                             : blob->cpu_data());
    }
    // In place (top == bottom 0), the top's arranged buffer is bottom 0's.
    float* out = layout ? static_cast<float*>(top[0]->data_memory()->mutable_arranged_data(layout))
                        : top[0]->mutable_cpu_data();
    const int64_t count =
        layout ? static_cast<int64_t>(layout->bytes() / sizeof(float)) : top[0]->count();
    // A chunk per core, summed (and clamped) a cache-sized block at a time: one pass over memory.
    constexpr int64_t kBlock = 4096;
    cpu::parallel_chunks(count, [&](int64_t begin, int64_t end) {
      for (int64_t start = begin; start < end; start += kBlock) {
        const int64_t n = std::min(kBlock, end - start);
        cpu::scale(n, coeffs_[0], parts[0] + start, out + start);
        for (size_t i = 1; i < parts.size(); ++i) {
          cpu::axpy(n, coeffs_[i], parts[i] + start, out + start);
        }
        if (clamp) cpu::clamp(n, clamp->low, clamp->high, out + start);
      }
    });
  }

  bool arranged_sum_gradient(const Blobs& top, const std::vector<bool>& propagate_down,
                             const Blobs& bottom) {
    const SyncedMemory& top_diff = *top[0]->diff_memory();
    const HostLayoutPtr layout = shared_arrangement({&top_diff});
    if (!layout) return false;
    for (size_t i = 0; i < bottom.size(); ++i) {
      if (propagate_down[i] && !bottom[i]->diff_memory()->may_arrange()) return false;
    }
    const auto count = static_cast<int64_t>(layout->bytes() / sizeof(float));
    const auto* dy = static_cast<const float*>(top_diff.arranged_data(*layout));
    for (size_t i = 0; i < bottom.size(); ++i) {
      if (!propagate_down[i]) continue;
      auto* dx = static_cast<float*>(bottom[i]->diff_memory()->mutable_arranged_data(layout));
      if (dx == dy && coeffs_[i] == 1.0f) continue;
      cpu::parallel_chunks(count, [&](int64_t begin, int64_t end) {
        cpu::scale(end - begin, coeffs_[i], dy + begin, dx + begin);
      });
    }
    return true;
  }

  void max_forward(const Blobs& bottom, float* out) {
    const int64_t count = bottom[0]->count();
#ifdef ENGINE_USE_CUDA
    if (math::on_gpu()) {
      std::vector<const float*> data;
      for (Blob* blob : bottom) data.push_back(blob->gpu_data());
      eltwise_max_forward_gpu(count, data.data(), static_cast<int>(data.size()), out,
                              static_cast<int*>(winner_gpu_.mutable_device_data()));
      return;
    }
#endif
    // Tie-breaking as in Caffe: bottom 1 wins a tie with bottom 0, later bottoms must be
    // strictly greater to win.
    const float* a = bottom[0]->cpu_data();
    const float* b = bottom[1]->cpu_data();
    int* winner = winner_.data();
    for (int64_t j = 0; j < count; ++j) {
      const bool second = !(a[j] > b[j]);
      out[j] = second ? b[j] : a[j];
      winner[j] = second ? 1 : 0;
    }
    for (size_t i = 2; i < bottom.size(); ++i) {
      const float* c = bottom[i]->cpu_data();
      const int index = static_cast<int>(i);
      for (int64_t j = 0; j < count; ++j) {
        if (c[j] > out[j]) {
          out[j] = c[j];
          winner[j] = index;
        }
      }
    }
  }

  void max_backward(int64_t count, const float* top_diff, int index, float* diff) {
#ifdef ENGINE_USE_CUDA
    if (math::on_gpu()) {
      const int* winner = static_cast<const int*>(winner_gpu_.device_data());
      eltwise_max_backward_gpu(count, top_diff, winner, index, diff);
      return;
    }
#endif
    const int* winner = winner_.data();
    for (int64_t j = 0; j < count; ++j) diff[j] = winner[j] == index ? top_diff[j] : 0.0f;
  }

  EltwiseParameter::EltwiseOp op_ = EltwiseParameter::SUM;
  std::vector<float> coeffs_;
  const ChannelEpilogue* epilogue_ = nullptr;  // not owned: the net's
  bool stable_prod_grad_ = true;
  std::vector<int> winner_;  // MAX: which bottom each output came from
  SyncedMemory winner_gpu_;  // the same on the GPU (its own: the CPU's is not kept in step)
};

}  // namespace
}  // namespace engine

ENGINE_LAYER_FACTORY(Eltwise, EltwiseLayer)
