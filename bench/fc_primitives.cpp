// Fully connected passes at AlexNet's shapes (fc6: 9216 -> 4096, fc7: 4096 -> 4096, fc8:
// 4096 -> 1000, batch 32 by default), each computed four ways, timed in the same run:
//   - oneDNN's inner_product primitives (forward, backward data, backward weights with the bias),
//     in the weights format oneDNN picks (`any`, reordered from the plain blob at each training
//     step, since the solver writes plain weights) and in the plain [N, K] format;
//   - oneDNN's matmul, as InnerProductLayer runs it (plain operands, transposes as strides);
//   - oneDNN's sgemm (dnnl_sgemm), the reference path's products on oneDNN;
//   - OpenBLAS sgemm, as the reference path runs it.
// Gradients accumulate into the parameter diffs, as Caffe's do: matmul and sgemm do it inside
// the product (beta 1), inner_product writes its own buffer that a reorder with a sum adds.
// Prints one table of the best of ROUNDS runs (ms) per pass and in all.
// Build and run: bench/fc_primitives.sh
#include <cblas.h>

#include <oneapi/dnnl/dnnl.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <string>
#include <unordered_map>
#include <vector>

namespace {

using dnnl::memory;
using Tag = memory::format_tag;
constexpr auto kFloat = memory::data_type::f32;

int rounds() {
  const char* text = std::getenv("ROUNDS");
  return text ? std::max(1, std::atoi(text)) : 10;
}

double best_ms(const std::function<void()>& pass) {
  pass();  // warm-up: first-touch page faults, oneDNN's kernel generation
  double best = 1e30;
  for (int i = 0; i < rounds(); ++i) {
    const auto start = std::chrono::steady_clock::now();
    pass();
    best = std::min(best, std::chrono::duration<double, std::milli>(
                              std::chrono::steady_clock::now() - start)
                              .count());
  }
  return best;
}

struct Times {
  double forward, data, weights;
  std::string note;
};

struct Shape {
  const char* name;
  int64_t m, n, k;
};

struct Buffers {
  explicit Buffers(const Shape& s)
      : src(s.m * s.k, 0.5f), weights(s.n * s.k, 0.01f), bias(s.n, 0.1f), dst(s.m * s.n),
        diff_dst(s.m * s.n, 0.02f), diff_src(s.m * s.k), diff_weights(s.n * s.k),
        diff_bias(s.n), ones(s.m, 1.0f) {}
  std::vector<float> src, weights, bias, dst, diff_dst, diff_src, diff_weights, diff_bias, ones;
};

memory wrap(const memory::desc& desc, std::vector<float>& data, dnnl::engine& engine) {
  return memory(desc, engine, data.data());
}

Times inner_product(const Shape& s, Buffers& b, bool any_weights, dnnl::engine& engine,
                    dnnl::stream& stream) {
  const memory::desc src({s.m, s.k}, kFloat, Tag::ab), dst({s.m, s.n}, kFloat, Tag::ab);
  const memory::desc plain_weights({s.n, s.k}, kFloat, Tag::ab), bias({s.n}, kFloat, Tag::x);
  const memory::desc weights = any_weights ? memory::desc({s.n, s.k}, kFloat, Tag::any)
                                           : plain_weights;
  const dnnl::inner_product_forward::primitive_desc forward_pd(
      {dnnl::prop_kind::forward_training, src, weights, bias, dst}, engine);
  const dnnl::inner_product_backward_data::primitive_desc data_pd({src, weights, dst}, engine,
                                                                  forward_pd);
  const dnnl::inner_product_backward_weights::primitive_desc weights_pd(
      {src, weights, bias, dst}, engine, forward_pd);
  memory plain = wrap(plain_weights, b.weights, engine);
  memory forward_weights(forward_pd.weights_desc(), engine);
  memory data_weights(data_pd.weights_desc(), engine);
  memory inner_diff(weights_pd.diff_weights_desc(), engine);
  memory diff_bias(bias, engine);
  memory diff_weights = wrap(plain_weights, b.diff_weights, engine);
  dnnl::primitive_attr sum;
  dnnl::post_ops operations;
  operations.append_sum(1.0f);
  sum.set_post_ops(operations);
  dnnl::reorder accumulate(inner_diff, diff_weights, sum);
  dnnl::reorder to_forward(plain, forward_weights), to_data(plain, data_weights);
  const bool reorders = forward_pd.weights_desc() != plain_weights;
  dnnl::inner_product_forward forward(forward_pd);
  dnnl::inner_product_backward_data data(data_pd);
  dnnl::inner_product_backward_weights weights_pass(weights_pd);
  memory src_m = wrap(src, b.src, engine), dst_m = wrap(dst, b.dst, engine);
  memory bias_m = wrap(bias, b.bias, engine), diff_dst = wrap(dst, b.diff_dst, engine);
  memory diff_src = wrap(src, b.diff_src, engine);
  Times t;
  t.forward = best_ms([&] {
    if (reorders) to_forward.execute(stream, plain, forward_weights);
    forward.execute(stream, {{DNNL_ARG_SRC, src_m},
                             {DNNL_ARG_WEIGHTS, reorders ? forward_weights : plain},
                             {DNNL_ARG_BIAS, bias_m},
                             {DNNL_ARG_DST, dst_m}});
    stream.wait();
  });
  t.data = best_ms([&] {
    const bool own = data_pd.weights_desc() != plain_weights;
    if (own) to_data.execute(stream, plain, data_weights);
    data.execute(stream, {{DNNL_ARG_DIFF_DST, diff_dst},
                          {DNNL_ARG_WEIGHTS, own ? data_weights : plain},
                          {DNNL_ARG_DIFF_SRC, diff_src}});
    stream.wait();
  });
  t.weights = best_ms([&] {
    weights_pass.execute(stream, {{DNNL_ARG_SRC, src_m},
                                  {DNNL_ARG_DIFF_DST, diff_dst},
                                  {DNNL_ARG_DIFF_WEIGHTS, inner_diff},
                                  {DNNL_ARG_DIFF_BIAS, diff_bias}});
    accumulate.execute(stream, inner_diff, diff_weights);
    stream.wait();
  });
  t.note = forward_pd.impl_info_str();
  if (reorders) t.note += ", weights reordered";
  return t;
}

Times matmul(const Shape& s, Buffers& b, dnnl::engine& engine, dnnl::stream& stream) {
  auto make = [&](const memory::desc& a, const memory::desc& w, const memory::desc* bias,
                  const memory::desc& c, bool accumulate) {
    dnnl::primitive_attr attr;
    if (accumulate) {
      dnnl::post_ops operations;
      operations.append_sum(1.0f);
      attr.set_post_ops(operations);
    }
    const dnnl::matmul::desc desc = bias ? dnnl::matmul::desc(a, w, *bias, c)
                                         : dnnl::matmul::desc(a, w, c);
    return dnnl::matmul(dnnl::matmul::primitive_desc(desc, attr, engine));
  };
  const memory::desc src({s.m, s.k}, kFloat, Tag::ab), dst({s.m, s.n}, kFloat, Tag::ab);
  const memory::desc weights_t({s.k, s.n}, kFloat, Tag::ba), weights({s.n, s.k}, kFloat, Tag::ab);
  const memory::desc bias({1, s.n}, kFloat, Tag::ab), diff_dst_t({s.n, s.m}, kFloat, Tag::ba);
  const memory::desc ones({1, s.m}, kFloat, Tag::ab);
  dnnl::matmul forward = make(src, weights_t, &bias, dst, false);
  dnnl::matmul data = make(dst, weights, nullptr, src, false);
  dnnl::matmul weight_grad = make(diff_dst_t, src, nullptr, weights, true);
  dnnl::matmul bias_grad = make(ones, dst, nullptr, bias, true);
  memory src_m = wrap(src, b.src, engine), dst_m = wrap(dst, b.dst, engine);
  memory weights_t_m = wrap(weights_t, b.weights, engine), bias_m = wrap(bias, b.bias, engine);
  memory diff_dst = wrap(dst, b.diff_dst, engine), weights_m = wrap(weights, b.weights, engine);
  memory diff_src = wrap(src, b.diff_src, engine);
  memory diff_dst_t_m = wrap(diff_dst_t, b.diff_dst, engine);
  memory diff_weights = wrap(weights, b.diff_weights, engine), ones_m = wrap(ones, b.ones, engine);
  memory diff_bias = wrap(bias, b.diff_bias, engine);
  Times t;
  t.forward = best_ms([&] {
    forward.execute(stream, {{DNNL_ARG_SRC, src_m},
                             {DNNL_ARG_WEIGHTS, weights_t_m},
                             {DNNL_ARG_BIAS, bias_m},
                             {DNNL_ARG_DST, dst_m}});
    stream.wait();
  });
  t.data = best_ms([&] {
    data.execute(stream, {{DNNL_ARG_SRC, diff_dst},
                          {DNNL_ARG_WEIGHTS, weights_m},
                          {DNNL_ARG_DST, diff_src}});
    stream.wait();
  });
  t.weights = best_ms([&] {
    weight_grad.execute(stream, {{DNNL_ARG_SRC, diff_dst_t_m},
                                 {DNNL_ARG_WEIGHTS, src_m},
                                 {DNNL_ARG_DST, diff_weights}});
    bias_grad.execute(stream, {{DNNL_ARG_SRC, ones_m},
                               {DNNL_ARG_WEIGHTS, diff_dst},
                               {DNNL_ARG_DST, diff_bias}});
    stream.wait();
  });
  return t;
}

Times openblas(const Shape& s, Buffers& b) {
  const int m = s.m, n = s.n, k = s.k;
  Times t;
  t.forward = best_ms([&] {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, m, n, k, 1, b.src.data(), k,
                b.weights.data(), k, 0, b.dst.data(), n);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, m, n, 1, 1, b.ones.data(), 1,
                b.bias.data(), n, 1, b.dst.data(), n);
  });
  t.data = best_ms([&] {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, m, k, n, 1, b.diff_dst.data(), n,
                b.weights.data(), k, 0, b.diff_src.data(), k);
  });
  t.weights = best_ms([&] {
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, n, k, m, 1, b.diff_dst.data(), n,
                b.src.data(), k, 1, b.diff_weights.data(), k);
    cblas_sgemv(CblasRowMajor, CblasTrans, m, n, 1, b.diff_dst.data(), n, b.ones.data(), 1, 1,
                b.diff_bias.data(), 1);
  });
  return t;
}

// oneDNN's own sgemm (dnnl_sgemm, row-major), the products as the reference path writes them.
Times onednn_sgemm(const Shape& s, Buffers& b) {
  const int64_t m = s.m, n = s.n, k = s.k;
  Times t;
  t.forward = best_ms([&] {
    dnnl_sgemm('N', 'T', m, n, k, 1, b.src.data(), k, b.weights.data(), k, 0, b.dst.data(), n);
    dnnl_sgemm('N', 'N', m, n, 1, 1, b.ones.data(), 1, b.bias.data(), n, 1, b.dst.data(), n);
  });
  t.data = best_ms([&] {
    dnnl_sgemm('N', 'N', m, k, n, 1, b.diff_dst.data(), n, b.weights.data(), k, 0,
               b.diff_src.data(), k);
  });
  t.weights = best_ms([&] {
    dnnl_sgemm('T', 'N', n, k, m, 1, b.diff_dst.data(), n, b.src.data(), k, 1,
               b.diff_weights.data(), k);
    dnnl_sgemm('T', 'N', 1, n, m, 1, b.ones.data(), 1, b.diff_dst.data(), n, 1,
               b.diff_bias.data(), n);
  });
  return t;
}

}  // namespace

int main(int argc, char** argv) {
  const int64_t batch = argc > 1 ? std::atoll(argv[1]) : 32;
  dnnl::engine engine(dnnl::engine::kind::cpu, 0);
  dnnl::stream stream(engine);
  const Shape shapes[] = {{"fc6", batch, 4096, 9216}, {"fc7", batch, 4096, 4096},
                          {"fc8", batch, 1000, 4096}};
  std::printf("best of %d runs, ms; batch %lld; ratio = total / OpenBLAS total\n", rounds(),
              static_cast<long long>(batch));
  std::printf("%-5s %-36s %8s %9s %9s %8s %6s\n", "layer", "implementation", "forward",
              "bwd data", "bwd wts", "total", "ratio");
  std::printf("%s\n", std::string(87, '-').c_str());
  for (const Shape& shape : shapes) {
    Buffers buffers(shape);
    struct Row {
      std::string name;
      Times times;
    };
    const Times blas = openblas(shape, buffers);
    const Times ip_any = inner_product(shape, buffers, true, engine, stream);
    const Times ip_plain = inner_product(shape, buffers, false, engine, stream);
    const Row rows[] = {{"OpenBLAS sgemm (reference path)", blas},
                        {"oneDNN matmul (our oneDNN path)", matmul(shape, buffers, engine, stream)},
                        {"oneDNN sgemm", onednn_sgemm(shape, buffers)},
                        {"oneDNN inner_product, weights any", ip_any},
                        {"oneDNN inner_product, weights [N,K]", ip_plain}};
    const double reference = blas.forward + blas.data + blas.weights;
    for (const Row& row : rows) {
      const double total = row.times.forward + row.times.data + row.times.weights;
      std::printf("%-5s %-36s %8.2f %9.2f %9.2f %8.2f %6.2f%s%s\n", shape.name, row.name.c_str(),
                  row.times.forward, row.times.data, row.times.weights, total, total / reference,
                  row.times.note.empty() ? "" : "  ", row.times.note.c_str());
    }
  }
  return 0;
}
