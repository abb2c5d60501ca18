#include "parallel/data_parallel.hpp"

#include <algorithm>
#include <chrono>
#include <limits>
#include <numeric>
#include <set>
#include <sstream>

#include "core/context.hpp"
#include "core/errors.hpp"
#include "math/blas.hpp"

namespace engine {

namespace {

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

}  // namespace

DataParallel::DataParallel(Communicator& comm, Net& net, size_t bucket_bytes, bool overlap,
                           Router router)
    : comm_(comm), net_(net), overlap_(overlap && Context::mode() == Mode::CPU) {
  if (!router) {
    router = [&comm](int) { return Route{&comm, 1.0f / static_cast<float>(comm.size())}; };
  }
  plan_buckets(bucket_bytes, router);
  net_.set_after_backward_step([this](int layer) { on_backward_step(layer); });
  if (overlap_) exchanger_ = std::thread([this] { exchange_loop(); });
}

DataParallel::~DataParallel() {
  net_.set_after_backward_step(nullptr);
  if (!exchanger_.joinable()) return;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
  }
  work_.notify_all();
  exchanger_.join();
}

void DataParallel::plan_buckets(size_t bucket_bytes, const Router& router) {
  const auto& learnable = net_.learnable_params();
  const int count = static_cast<int>(learnable.size());
  for (int id = 0; id < count; ++id) routes_.push_back(router(id));
  // The layer whose backward step completes each learnable parameter: the first of the layers
  // that use it (a shared parameter collects gradient from each).
  std::vector<int> learnable_of_param(net_.params().size(), -1);
  for (int id = 0; id < count; ++id) learnable_of_param[net_.learnable_param_ids()[id]] = id;
  std::vector<int> completing_layer(count, std::numeric_limits<int>::max());
  std::vector<std::string> names(count);
  for (size_t j = 0; j < net_.params().size(); ++j) {
    const int owner = net_.param_owners()[j] < 0 ? static_cast<int>(j) : net_.param_owners()[j];
    const int id = learnable_of_param[owner];
    if (id < 0) continue;
    const int layer = net_.param_layer_indices()[j].first;
    completing_layer[id] = std::min(completing_layer[id], layer);
    if (names[id].empty()) names[id] = net_.layer_names()[layer];
  }
  for (size_t j = 0; j < net_.params().size(); ++j) {
    const int layer = net_.param_layer_indices()[j].first;
    if (net_.layers()[layer]->type() == "BatchNorm") statistics_.push_back(net_.params()[j].get());
  }

  std::vector<int> order(count);
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(),
                   [&](int a, int b) { return completing_layer[a] > completing_layer[b]; });
  completed_by_layer_.assign(net_.layers().size(), {});
  bucket_of_.assign(count, -1);
  for (int id : order) {
    // Frozen parameters and BatchNorm's statistics do not move; some are a worker's own.
    if (net_.params_lr()[id] == 0 || !routes_[id].comm) continue;
    const int64_t elements = learnable[id]->count();
    if (buckets_.empty() || buckets_.back().route.comm != routes_[id].comm ||
        buckets_.back().route.scale != routes_[id].scale ||
        (buckets_.back().count > 0 &&
         sizeof(float) * size_t(buckets_.back().count + elements) > bucket_bytes)) {
      buckets_.emplace_back();
      buckets_.back().route = routes_[id];
    }
    Bucket& bucket = buckets_.back();
    bucket.params.push_back(id);
    bucket.count += elements;
    bucket_of_[id] = static_cast<int>(buckets_.size()) - 1;
    completed_by_layer_[completing_layer[id]].push_back(id);
  }
  non_finite_flag_.reshape({1});
  for (size_t b = 0; b < buckets_.size(); ++b) {
    Bucket& bucket = buckets_[b];
    bucket.buffer.reshape({static_cast<int>(bucket.count)});
    bucket.buffer.mutable_data();  // now, not between collectives (NCCL in several threads)
    std::string last;
    for (int id : bucket.params) {
      if (names[id] == last) continue;
      bucket.layers += (last.empty() ? "" : ", ") + names[id];
      last = names[id];
    }
    bucket.name = "the allreduce of gradient bucket " + std::to_string(b) + " of " +
                  std::to_string(buckets_.size()) + " (" + bucket.layers + ")";
  }
}

std::string DataParallel::describe_buckets() const {
  std::ostringstream out;
  out.precision(3);
  for (size_t b = 0; b < buckets_.size(); ++b) {
    out << (b ? "; " : "") << "bucket " << b << ": " << buckets_[b].layers << " ("
        << buckets_[b].count * 4e-6 << " MB)";
  }
  return out.str();
}

void DataParallel::backward_starting() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    own_finite_ = true;
  }
  non_finite_flag_.set_data(0);
  if (!overlap_) return;
  for (Bucket& bucket : buckets_) bucket.pending = static_cast<int>(bucket.params.size());
  launched_ = 0;
  armed_ = true;
}

void DataParallel::on_backward_step(int layer) {
  if (!armed_) return;
  for (int id : completed_by_layer_[layer]) {
    const int b = bucket_of_[id];
    if (--buckets_[b].pending == 0) {
      // Buckets complete in index order (they were filled in completion order); launching in
      // that order keeps every worker's sequence of collectives the same.
      for (; launched_ <= b; ++launched_) launch(launched_);
    }
  }
}

void DataParallel::launch(int bucket) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    queue_.push_back(bucket);
  }
  work_.notify_one();
}

void DataParallel::exchange_loop() {
  for (;;) {
    int bucket = -1;
    {
      std::unique_lock<std::mutex> lock(mutex_);
      work_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
      if (queue_.empty()) return;
      bucket = queue_.front();
      queue_.pop_front();
    }
    std::exception_ptr error;
    double seconds = 0;
    try {
      seconds = reduce(bucket);
    } catch (...) {
      error = std::current_exception();
    }
    {
      std::lock_guard<std::mutex> lock(mutex_);
      if (error && !error_) error_ = error;
      costs_.exchange_seconds += seconds;
      ++finished_;
    }
    done_.notify_all();
  }
}

// Packs the bucket's gradients, sums them over the workers, and writes back their mean; returns
// the seconds it took.
double DataParallel::reduce(int b) {
  const auto start = std::chrono::steady_clock::now();
  Bucket& bucket = buckets_[b];
  float* buffer = bucket.buffer.mutable_data();
  int64_t offset = 0;
  for (int id : bucket.params) {
    const Blob& param = *net_.learnable_params()[id];
    math::copy(param.count(), param.diff(), buffer + offset);
    offset += param.count();
  }
  // The worker's own gradients, checked here where nothing else touches them: a NaN names the
  // worker that made it, not every worker after the sums spread it. On the GPU one flag
  // collects every bucket's check and is read once, after the exchange.
#ifdef ENGINE_USE_CUDA
  if (Context::mode() == Mode::GPU) {
    gpu::flag_non_finite(bucket.count, buffer, non_finite_flag_.mutable_gpu_data());
  }
#endif
  if (Context::mode() == Mode::CPU && !cpu::all_finite(bucket.count, buffer)) {
    std::lock_guard<std::mutex> lock(mutex_);
    own_finite_ = false;
  }
  bucket.route.comm->allreduce_sum(buffer, static_cast<size_t>(bucket.count), bucket.name);
  offset = 0;
  for (int id : bucket.params) {
    Blob& param = *net_.learnable_params()[id];
    math::scale(param.count(), bucket.route.scale, buffer + offset, param.mutable_diff());
    offset += param.count();
  }
  return seconds_since(start);
}

void DataParallel::average_gradients() {
  const auto start = std::chrono::steady_clock::now();
  if (overlap_) {
    armed_ = false;
    // Buckets whose layers backward did not reach (a partial pass) go now, in order.
    for (; launched_ < static_cast<int>(buckets_.size()); ++launched_) launch(launched_);
    std::unique_lock<std::mutex> lock(mutex_);
    done_.wait(lock, [this] { return finished_ == static_cast<int>(buckets_.size()); });
    finished_ = 0;
    if (error_) std::rethrow_exception(std::exchange(error_, nullptr));
  } else {
    for (size_t b = 0; b < buckets_.size(); ++b) {
      costs_.exchange_seconds += reduce(static_cast<int>(b));
    }
  }
  for (Blob* statistic : statistics_) {
    comm_.broadcast(statistic->mutable_data(), static_cast<size_t>(statistic->count()), 0,
                    "the broadcast of BatchNorm statistics");
  }
  for (const Bucket& bucket : buckets_) bucket.route.comm->synchronize("the gradient exchange");
  std::lock_guard<std::mutex> lock(mutex_);
  costs_.wait_seconds += seconds_since(start);
  ++costs_.iterations;
}

void DataParallel::broadcast_weights() {
  const auto& learnable = net_.learnable_params();
  for (size_t id = 0; id < learnable.size(); ++id) {
    Communicator* comm = routes_[id].comm;
    if (!comm) continue;
    comm->broadcast(learnable[id]->mutable_data(), static_cast<size_t>(learnable[id]->count()),
                    0, "the broadcast of the root's weights (parameter " + std::to_string(id) + ")");
    comm->synchronize("the broadcast of the root's weights");
  }
}

void DataParallel::broadcast(std::string* bytes, const std::string& what,
                             bool after_root_work) {
  comm_.broadcast_bytes(bytes, 0, what, after_root_work);
}

bool DataParallel::own_gradients_finite() const {
  if (Context::mode() == Mode::GPU) return non_finite_flag_.cpu_data()[0] == 0;
  std::lock_guard<std::mutex> lock(mutex_);
  return own_finite_;
}

std::vector<std::string> DataParallel::allgather(const std::string& bytes,
                                                 const std::string& what) {
  return comm_.allgather_bytes(bytes, what);
}

DataParallel::Costs DataParallel::costs() const {
  std::lock_guard<std::mutex> lock(mutex_);
  Costs costs = costs_;
  std::set<const Communicator*> comms = {&comm_};
  for (const Bucket& bucket : buckets_) comms.insert(bucket.route.comm);
  for (const Communicator* comm : comms) costs.bytes += comm->bytes_communicated();
  return costs;
}

}  // namespace engine
