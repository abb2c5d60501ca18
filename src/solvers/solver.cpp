#include "solvers/solver.hpp"

#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "core/context.hpp"
#include "core/errors.hpp"
#include "io/caffemodel.hpp"
#include "io/prototxt.hpp"
#include "io/upgrade.hpp"
#include "math/blas.hpp"
#include "solvers/update_steps.hpp"

namespace engine {

namespace {

// The net's state: the phase, then the file's own state, then the solver's override.
void set_state(Phase phase, const NetState* solver_state, NetParameter* net) {
  NetState state;
  state.set_phase(phase);
  state.MergeFrom(net->state());
  if (solver_state) state.MergeFrom(*solver_state);
  state.set_phase(phase);
  *net->mutable_state() = state;
}

// The solver's precision, where it gives one, is every net's.
void set_precision(const SolverParameter& solver, NetParameter* net) {
  if (solver.has_precision()) net->set_precision(solver.precision());
}

std::string directory_of(const std::string& path) {
  const size_t slash = path.find_last_of('/');
  return slash == std::string::npos ? "" : path.substr(0, slash + 1);
}

bool file_exists(const std::string& path) { return std::ifstream(path).good(); }

// Positions of layers that keep one (data layers): net 0 is the train net, net i the test net
// i - 1. A resume restores them, so the data continues where the snapshot left it.
template <typename Entries>
void save_layer_states(const Net& train, const std::vector<std::unique_ptr<Net>>& tests,
                       Entries* entries) {
  for (size_t n = 0; n <= tests.size(); ++n) {
    const Net& net = n == 0 ? train : *tests[n - 1];
    for (size_t i = 0; i < net.layers().size(); ++i) {
      std::string bytes;
      if (!net.layers()[i]->save_state(&bytes)) continue;
      LayerState* entry = entries->Add();
      entry->set_net(static_cast<int>(n));
      entry->set_layer(net.layer_names()[i]);
      entry->set_state(bytes);
    }
  }
}

template <typename Entries>
void restore_layer_states(const Entries& entries, Net& train,
                          const std::vector<std::unique_ptr<Net>>& tests,
                          const std::string& file) {
  for (const LayerState& entry : entries) {
    ENGINE_REQUIRE(entry.net() >= 0 && entry.net() <= static_cast<int>(tests.size()),
                   file << ": holds a position for layer '" << entry.layer() << "' of net "
                        << entry.net() << ", but the solver has " << tests.size()
                        << " test net(s)");
    Net& net = entry.net() == 0 ? train : *tests[entry.net() - 1];
    ENGINE_REQUIRE(net.has_layer(entry.layer()),
                   file << ": holds a position for layer '" << entry.layer()
                        << "', which net " << entry.net() << " does not have");
    net.layer_by_name(entry.layer()).restore_state(entry.state());
  }
}

// The learning-rate policy's position, in the solverstate's fields.
void save_lr_state(const LrState& lr, SolverState* state) {
  state->set_current_step(lr.multistep_index);
  state->set_plateau_reductions(lr.plateau_reductions);
  state->set_plateau_best(lr.plateau_best);
  state->set_plateau_has_best(lr.plateau_has_best);
  state->set_plateau_stale_rounds(lr.plateau_stale_rounds);
}

void restore_lr_state(const SolverState& state, LrState* lr) {
  lr->multistep_index = state.current_step();
  lr->plateau_reductions = state.plateau_reductions();
  lr->plateau_best = state.plateau_best();
  lr->plateau_has_best = state.plateau_has_best();
  lr->plateau_stale_rounds = state.plateau_stale_rounds();
}

std::string rng_state() {
  std::ostringstream rng;
  rng << Context::rng();
  return rng.str();
}

void restore_rng_state(const std::string& bytes, const std::string& file) {
  std::istringstream rng(bytes);
  rng >> Context::rng();
  ENGINE_REQUIRE(!rng.fail(), file << ": corrupt random generator state");
}

uint64_t weights_hash(const Net& net) {
  uint64_t hash = 0xcbf29ce484222325ull;  // FNV-1a
  for (Blob* param : net.learnable_params()) {
    const auto* bytes = reinterpret_cast<const unsigned char*>(param->cpu_data());
    for (size_t i = 0; i < sizeof(float) * param->count(); ++i) {
      hash = (hash ^ bytes[i]) * 0x100000001b3ull;
    }
  }
  return hash;
}

}  // namespace

Solver::Solver(const SolverParameter& param, const std::string& source)
    : param_(param), source_(source.empty() ? "solver" : source) {
  ENGINE_REQUIRE(param_.iter_size() >= 1,
                 source_ << ": iter_size must be at least 1, got " << param_.iter_size());
  ENGINE_REQUIRE(param_.average_loss() >= 1,
                 source_ << ": average_loss must be at least 1, got " << param_.average_loss());
  ENGINE_REQUIRE(param_.max_iter() >= 0,
                 source_ << ": max_iter must be 0 or more, got " << param_.max_iter());
  // As PyTorch's optimizers: a negative rate, momentum or decay climbs the loss (NaN never
  // passes a comparison).
  ENGINE_REQUIRE(param_.base_lr() >= 0 && std::isfinite(param_.base_lr()),
                 source_ << ": base_lr must be a finite number >= 0, got " << param_.base_lr());
  ENGINE_REQUIRE(param_.momentum() >= 0 && std::isfinite(param_.momentum()),
                 source_ << ": momentum must be a finite number >= 0, got " << param_.momentum());
  ENGINE_REQUIRE(param_.weight_decay() >= 0 && std::isfinite(param_.weight_decay()),
                 source_ << ": weight_decay must be a finite number >= 0, got "
                         << param_.weight_decay());
  if (param_.random_seed() >= 0) Context::set_seed(static_cast<uint64_t>(param_.random_seed()));
  init_nets();
  // Fail now, not after hours of training, if snapshots cannot be written.
  if (param_.snapshot() > 0 || param_.snapshot_after_train()) {
    const std::string folder = directory_of(snapshot_filename(0, ""));
    ENGINE_REQUIRE(folder.empty() || file_exists(folder),
                   source_ << ": the snapshot folder " << folder
                           << " does not exist (snapshot_prefix: \"" << param_.snapshot_prefix()
                           << "\")");
  }
  // Validate the policy now rather than at the first iteration.
  LrState probe;
  engine::learning_rate(param_, 0, &probe);
}

void Solver::init_nets() {
  const int train_sources = param_.has_net() + param_.has_net_param() + param_.has_train_net() +
                            param_.has_train_net_param();
  ENGINE_REQUIRE(train_sources == 1,
                 source_ << ": give exactly one of net, net_param, train_net, train_net_param (found "
                         << train_sources << ")");
  NetParameter train;
  if (param_.has_net()) train = read_net_text_file(param_.net());
  if (param_.has_net_param()) train = param_.net_param();
  if (param_.has_train_net()) train = read_net_text_file(param_.train_net());
  if (param_.has_train_net_param()) train = param_.train_net_param();
  set_state(TRAIN, param_.has_train_state() ? &param_.train_state() : nullptr, &train);
  set_precision(param_, &train);
  net_ = std::make_unique<Net>(train);
  scales_loss_ = train.precision() == FP16;
  if (scales_loss_) {
    ENGINE_REQUIRE(param_.fp16_initial_scale() > 0 && param_.fp16_scale_window() > 0,
                   source_ << ": fp16_initial_scale and fp16_scale_window must be positive");
    loss_scale_ = param_.fp16_initial_scale();
  }

  // Test nets: test_net_param entries, then test_net files, then the generic net for every
  // remaining test_iter.
  std::vector<NetParameter> tests(param_.test_net_param().begin(), param_.test_net_param().end());
  for (const std::string& file : param_.test_net()) tests.push_back(read_net_text_file(file));
  const int specific = static_cast<int>(tests.size());
  const bool generic = param_.has_net() || param_.has_net_param();
  ENGINE_REQUIRE(generic ? param_.test_iter_size() >= specific : param_.test_iter_size() == specific,
                 source_ << ": test_iter must be given once per test net (" << specific
                         << " test net(s), " << param_.test_iter_size() << " test_iter)");
  if (generic) {
    const NetParameter base =
        param_.has_net() ? read_net_text_file(param_.net()) : param_.net_param();
    for (int i = specific; i < param_.test_iter_size(); ++i) tests.push_back(base);
  }
  ENGINE_REQUIRE(param_.test_state_size() == 0 ||
                     param_.test_state_size() == static_cast<int>(tests.size()),
                 source_ << ": test_state must be given once per test net or not at all");
  ENGINE_REQUIRE(tests.empty() || param_.test_interval() > 0,
                 source_ << ": test nets need a positive test_interval");
  for (size_t i = 0; i < tests.size(); ++i) {
    set_state(TEST, param_.test_state_size() ? &param_.test_state(static_cast<int>(i)) : nullptr,
              &tests[i]);
    set_precision(param_, &tests[i]);
    test_nets_.push_back(std::make_unique<Net>(tests[i]));
    test_nets_.back()->share_trained_layers_with(*net_);
  }
}

// Made on first use, not in the constructor: history_per_param() is virtual, and during the
// base constructor it would answer for the base class (1), not for AdaDelta or Adam (2).
void Solver::ensure_history() {
  const size_t expected = history_per_param() * net_->learnable_params().size();
  if (history_.size() == expected) return;
  history_.clear();
  for (int which = 0; which < history_per_param(); ++which) {
    for (Blob* param : net_->learnable_params()) {
      history_.push_back(std::make_shared<Blob>(param->shape()));
    }
  }
}

// ---- the loop -------------------------------------------------------------------------------

void Solver::solve(const std::string& resume_file) {
  LOG(INFO) << "Solving " << net_->name();
  LOG(INFO) << "Learning Rate Policy: " << param_.lr_policy();
  stopped_early_ = false;
  const std::string resume = resume_file == "latest" ? latest_snapshot() : resume_file;
  if (!resume.empty()) {
    restore(resume);
  } else if (peers_) {
    peers_->broadcast_weights();
  }
  step(param_.max_iter() - iter_);
  const bool just_snapshotted = param_.snapshot() > 0 && iter_ % param_.snapshot() == 0;
  if ((param_.snapshot_after_train() || stopped_early_) && !just_snapshotted) snapshot();
  if (stopped_early_) {
    LOG(INFO) << "Optimization stopped early.";
    return;
  }
  if (peers_ && !peers_->runs_tests()) return;
  if (param_.display() && iter_ % param_.display() == 0) {
    const float loss = net_->forward();
    LOG(INFO) << "Iteration " << iter_ << ", loss = " << loss;
  }
  if (param_.test_interval() && iter_ % param_.test_interval() == 0) test_all();
  LOG(INFO) << "Optimization Done.";
}

void Solver::step(int iterations) {
  const int start_iter = iter_;
  const int stop_iter = iter_ + iterations;
  losses_.clear();
  smoothed_loss_ = 0;
  auto timer = std::chrono::steady_clock::now();
  int timed_iterations = 0;
  while (iter_ < stop_iter) {
    net_->clear_param_diffs();
    if (param_.test_interval() && iter_ % param_.test_interval() == 0 &&
        (iter_ > 0 || param_.test_initialization())) {
      if (!peers_ || peers_->runs_tests()) test_all();
      share_lr_state();
      // Testing takes time that is not training: restart the rate clock.
      timer = std::chrono::steady_clock::now();
      timed_iterations = 0;
    }
    for (auto& callback : iteration_start_callbacks_) callback();
    float loss = 0;
    if (scales_loss_) net_->set_loss_scale(loss_scale_);
    for (int i = 0; i < param_.iter_size(); ++i) {
      if (peers_ && i == param_.iter_size() - 1) peers_->backward_starting();
      loss += net_->forward_backward();
    }
    loss /= param_.iter_size();
    // With an exchange running during backward the diffs are the exchange's until it is done:
    // it checks this worker's own gradients itself.
    // fp16: overflowed gradients skip the step (unscale_gradients), after averaging, where every
    // worker sees the same ones.
    const bool exchange_checks = peers_ && peers_->checks_gradients();
    if (!exchange_checks) check_finite(loss, scales_loss_ || gradients_finite());
    if (peers_) peers_->average_gradients();
    if (exchange_checks) check_finite(loss, scales_loss_ || peers_->own_gradients_finite());
    update_smoothed_loss(loss, start_iter);
    ++timed_iterations;
    if (param_.display() && iter_ % param_.display() == 0) {
      const double seconds =
          std::chrono::duration<double>(std::chrono::steady_clock::now() - timer).count();
      display(seconds, timed_iterations);
      timer = std::chrono::steady_clock::now();
      timed_iterations = 0;
    }
    for (auto& callback : gradients_ready_callbacks_) callback();
    if (!scales_loss_ || unscale_gradients()) apply_update();
    ++iter_;

    const SolverAction action =
        agree_on(action_source_ && is_root() ? action_source_() : SolverAction::NONE);
    if ((param_.snapshot() > 0 && iter_ % param_.snapshot() == 0) ||
        action == SolverAction::SNAPSHOT) {
      snapshot();
    }
    if (action == SolverAction::STOP) {
      stopped_early_ = true;
      break;
    }
  }
}

void Solver::share_lr_state() {
  if (!peers_) return;
  SolverState lr;
  save_lr_state(lr_state_, &lr);
  std::string bytes = lr.SerializeAsString();
  peers_->broadcast(&bytes, "the learning-rate state after testing", true);
  CHECK(lr.ParseFromString(bytes));
  restore_lr_state(lr, &lr_state_);
}

SolverAction Solver::agree_on(SolverAction action) {
  if (!peers_) return action;
  std::string bytes(1, static_cast<char>(action));
  peers_->broadcast(&bytes, "the root's signal action");
  return static_cast<SolverAction>(bytes.at(0));
}

void Solver::update_smoothed_loss(float loss, int start_iter) {
  const int window = param_.average_loss();
  if (static_cast<int>(losses_.size()) < window) {
    losses_.push_back(loss);
    const float size = static_cast<float>(losses_.size());
    smoothed_loss_ = (smoothed_loss_ * (size - 1) + loss) / size;
  } else {
    const int index = (iter_ - start_iter) % window;
    smoothed_loss_ += (loss - losses_[index]) / window;
    losses_[index] = loss;
  }
}

void Solver::display(double seconds, int iterations) {
  const double per_second = iterations / (seconds > 0 ? seconds : 1);
  const int workers = peers_ ? peers_->replicas() : 1;
  const auto& first_layer_tops = net_->top_vecs().empty() ? Blobs() : net_->top_vecs()[0];
  const int batch = first_layer_tops.empty() || first_layer_tops[0]->num_axes() == 0
                        ? 1
                        : first_layer_tops[0]->shape(0);
  LOG(INFO) << "Iteration " << iter_ << " (" << per_second << " iter/s, "
            << per_second * batch * param_.iter_size() * workers
            << " images/s), loss = " << smoothed_loss_;
  int index = 0;
  for (Blob* output : net_->output_blobs()) {
    const std::string& name = net_->blob_name(output);
    const float weight = net_->output_loss_weight(output);
    for (int64_t k = 0; k < output->count(); ++k) {
      std::ostringstream line;
      line << "    Train net output #" << index++ << ": " << name << " = " << output->cpu_data()[k];
      if (weight != 0) line << " (* " << weight << " = " << weight * output->cpu_data()[k] << " loss)";
      LOG(INFO) << line.str();
    }
  }
}

bool Solver::gradients_finite() {
#ifdef ENGINE_USE_CUDA
  if (Context::mode() == Mode::GPU) {
    // One flag for all parameters: a single 4-byte read instead of every gradient.
    non_finite_flag_.reshape({1});
    non_finite_flag_.set_data(0);
    float* flag = non_finite_flag_.mutable_gpu_data();
    for (Blob* param : net_->learnable_params()) {
      gpu::flag_non_finite(param->count(), param->gpu_diff(), flag);
    }
    return non_finite_flag_.cpu_data()[0] == 0;
  }
#endif
  for (Blob* param : net_->learnable_params()) {
    if (!cpu::all_finite(param->count(), param->cpu_diff())) return false;
  }
  return true;
}

bool Solver::unscale_gradients() {
  if (!gradients_finite()) {
    // Below fp16's smallest normal value the scale no longer lifts anything: the gradients
    // overflow at any scale, and the net has diverged.
    const std::string first = net_->describe_first_non_finite();
    ENGINE_REQUIRE(loss_scale_ > 0x1p-14f,
                   "iteration " << iter_ << ": fp16 gradients overflow even at loss scale "
                                << loss_scale_ << "; " << first << ". Training stopped.");
    LOG(INFO) << "Iteration " << iter_ << ": fp16 gradients overflowed at loss scale "
              << loss_scale_ << " (" << first << "); step skipped, scale " << loss_scale_ / 2;
    loss_scale_ /= 2;
    loss_scale_good_steps_ = 0;
    return false;
  }
  for (Blob* param : net_->learnable_params()) scale_diff(param, 1.0f / loss_scale_);
  if (++loss_scale_good_steps_ >= param_.fp16_scale_window()) {
    loss_scale_ *= 2;
    loss_scale_good_steps_ = 0;
  }
  return true;
}

void Solver::check_finite(float loss, bool gradients_ok) {
  if (std::isfinite(loss) && gradients_ok) return;
  ENGINE_FAIL("iteration " << iter_ << ": the loss is " << loss << "; "
                           << net_->describe_first_non_finite()
                           << ". Training stopped; the last snapshot is kept.");
}

// ---- the update -----------------------------------------------------------------------------

void Solver::apply_update() {
  ensure_history();
  const float rate = learning_rate();
  if (param_.display() && iter_ % param_.display() == 0) {
    LOG(INFO) << "Iteration " << iter_ << ", lr = " << rate;
  }
  clip_gradients();
  const bool l2 = param_.regularization_type() == "L2";
  for (size_t i = 0; i < net_->learnable_params().size(); ++i) {
    const int id = static_cast<int>(i);
    if (l2 && update_in_one_pass(id, rate, 1.0f / param_.iter_size(), local_decay(id))) continue;
    normalize(id);
    regularize(id);
    compute_update(id, rate);
    net_->learnable_params()[id]->update();
  }
}

void Solver::clip_gradients() {
  const float threshold = param_.clip_gradients();
  if (threshold < 0) return;
  double sum_of_squares = 0;
  for (Blob* param : net_->learnable_params()) sum_of_squares += param->sum_of_squares_diff();
  const double norm = std::sqrt(sum_of_squares);
  if (norm <= threshold) return;
  LOG(INFO) << "Gradient clipping: scaling down gradients (L2 norm " << norm << " > " << threshold
            << ") by scale factor " << threshold / norm;
  const float factor = static_cast<float>(threshold / norm);
  for (Blob* param : net_->learnable_params()) scale_diff(param, factor);
}

void Solver::normalize(int param_id) {
  if (param_.iter_size() == 1) return;
  scale_diff(net_->learnable_params()[param_id], 1.0f / param_.iter_size());
}

void Solver::scale_diff(Blob* param, float factor) {
  math::scale(param->count(), factor, param->mutable_diff());
}

void Solver::regularize(int param_id) {
  Blob& param = *net_->learnable_params()[param_id];
  const float decay = local_decay(param_id);
  if (decay == 0) return;
  const std::string& type = param_.regularization_type();
  ENGINE_REQUIRE(type == "L1" || type == "L2",
                 source_ << ": unknown regularization_type '" << type << "'; known: L1, L2");
  if (type == "L2") {
    math::axpy(param.count(), decay, param.data(), param.mutable_diff());
  } else {
    ENGINE_ON_DEVICE(l1_regularize(param.count(), decay, param.data(), param.mutable_diff()));
  }
}

// ---- testing --------------------------------------------------------------------------------

std::vector<std::vector<float>> Solver::test_all() {
  std::vector<std::vector<float>> results(test_nets_.size());
  for (size_t i = 0; i < test_nets_.size(); ++i) test(static_cast<int>(i), &results[i]);
  if (param_.lr_policy() == "plateau") {
    const int watched = param_.plateau_test_net();
    ENGINE_REQUIRE(watched >= 0 && watched < static_cast<int>(test_nets_.size()),
                   source_ << ": plateau_test_net " << watched << " does not exist ("
                           << test_nets_.size() << " test net(s))");
    const Net& net = *test_nets_[watched];
    int index = 0;
    bool found = false;
    float value = 0;
    std::string known;
    for (Blob* output : net.output_blobs()) {
      const std::string& name = net.blob_name(output);
      known += " " + name;
      if (name == param_.plateau_output()) {
        value = results[watched][index];
        found = true;
      }
      index += static_cast<int>(output->count());
    }
    ENGINE_REQUIRE(found, source_ << ": plateau_output '" << param_.plateau_output()
                                  << "' is not an output of test net " << watched
                                  << "; its outputs:" << known);
    if (plateau_observe(param_, value, &lr_state_)) {
      LOG(INFO) << "Plateau: " << param_.plateau_output() << " has not improved for "
                << param_.plateau_patience() << " test round(s); learning rate now "
                << learning_rate();
    }
  }
  return results;
}

void Solver::test(int test_net_id, std::vector<float>* means) {
  LOG(INFO) << "Iteration " << iter_ << ", Testing net (#" << test_net_id << ")";
  Net& net = *test_nets_[test_net_id];
  const int iterations = param_.test_iter(test_net_id);
  std::vector<double> sums;
  double loss = 0;
  for (int i = 0; i < iterations; ++i) {
    loss += net.forward();
    int index = 0;
    for (Blob* output : net.output_blobs()) {
      for (int64_t k = 0; k < output->count(); ++k, ++index) {
        if (static_cast<int>(sums.size()) <= index) sums.push_back(0);
        sums[index] += output->cpu_data()[k];
      }
    }
  }
  if (param_.test_compute_loss()) LOG(INFO) << "Test loss: " << loss / std::max(iterations, 1);
  means->clear();
  int index = 0;
  for (Blob* output : net.output_blobs()) {
    const float weight = net.output_loss_weight(output);
    for (int64_t k = 0; k < output->count(); ++k, ++index) {
      const float mean = static_cast<float>(sums[index] / std::max(iterations, 1));
      means->push_back(mean);
      std::ostringstream line;
      line << "    Test net output #" << index << ": " << net.blob_name(output) << " = " << mean;
      if (weight != 0) line << " (* " << weight << " = " << weight * mean << " loss)";
      LOG(INFO) << line.str();
    }
  }
}

// ---- snapshots ------------------------------------------------------------------------------

std::string Solver::snapshot_filename(int iteration, const std::string& extension) const {
  std::string prefix = param_.snapshot_prefix();
  // Caffe's rule: no prefix, or a folder, takes the solver file's name.
  if (prefix.empty() || prefix.back() == '/') {
    std::string stem = source_.substr(source_.find_last_of('/') + 1);
    const size_t dot = stem.rfind('.');
    if (dot != std::string::npos) stem = stem.substr(0, dot);
    prefix = (prefix.empty() ? directory_of(source_) : prefix) + stem;
  }
  return prefix + "_iter_" + std::to_string(iteration) + extension;
}

std::string Solver::latest_snapshot() {
  std::string newest;
  if (is_root()) {
    const std::string stem = snapshot_filename(0, "");  // PREFIX_iter_0
    const std::string folder = directory_of(stem);
    const std::string name = stem.substr(folder.size(), stem.size() - folder.size() - 1);
    const std::string extension = ".solverstate";
    long newest_iteration = -1;
    std::error_code error;
    for (const auto& entry : std::filesystem::directory_iterator(folder.empty() ? "." : folder,
                                                                  error)) {
      const std::string file = entry.path().filename().string();
      if (file.compare(0, name.size(), name) != 0) continue;
      const std::string rest = file.substr(name.size());  // N.solverstate, N.caffemodel.tmp.PID
      const size_t digits = rest.find_first_not_of("0123456789");
      if (digits == 0 || digits == std::string::npos || digits > 9) continue;
      if (rest.find(".tmp.", digits) != std::string::npos) {
        LOG(INFO) << "Removing " << folder + file << ", left half-written by an interrupted run";
        std::filesystem::remove(entry.path(), error);
      } else if (rest.substr(digits) == extension && std::stol(rest) > newest_iteration) {
        newest_iteration = std::stol(rest);
        newest = folder + file;
      }
    }
    if (newest.empty()) {
      LOG(INFO) << "No snapshot " << folder + name << "N" << extension
                << " yet: starting from iteration 0";
    }
  }
  if (peers_) peers_->broadcast(&newest, "the newest snapshot", true);
  return newest;
}

WorkerState Solver::worker_state() {
  WorkerState state;
  // Model parallel: the history of each slice, once (the root group's; other groups hold the
  // same).
  if (peers_ && peers_->holds_slices() && peers_->runs_tests()) {
    ensure_history();
    for (const auto& blob : history_) blob->to_proto(state.add_history());
  }
  state.set_rng_state(rng_state());
  save_layer_states(*net_, test_nets_, state.mutable_layer_state());
  if (peers_) state.set_weights_hash(weights_hash(*net_));
  return state;
}

void Solver::snapshot() {
  ENGINE_REQUIRE(param_.snapshot_format() == SolverParameter::BINARYPROTO,
                 source_ << ": only snapshot_format BINARYPROTO is supported (HDF5 is not)");
  SolverState state;
  NetParameter whole;
  if (peers_) {
    const std::vector<std::string> workers =
        peers_->allgather(worker_state().SerializeAsString(), "the workers' snapshot states");
    if (peers_->holds_slices() && peers_->runs_tests()) {
      net_->to_proto(&whole, param_.snapshot_diff());
      peers_->whole_model(&whole);
    }
    if (!is_root()) return snapshot_written();
    state.set_world_size(peers_->size());
    for (size_t rank = 0; rank < workers.size(); ++rank) {
      WorkerState* worker = state.add_worker_state();
      CHECK(worker->ParseFromString(workers[rank]));
    }
    for (size_t rank = 0; rank < workers.size(); ++rank) {
      const int twin = peers_->weights_twin(static_cast<int>(rank));
      ENGINE_REQUIRE(state.worker_state(rank).weights_hash() ==
                         state.worker_state(twin).weights_hash(),
                     "iteration " << iter_ << ": worker " << rank << "'s weights differ from worker "
                                  << twin << "'s; the gradient exchange went wrong, so no "
                                     "snapshot is written");
    }
  }
  const std::string model = snapshot_filename(iter_, ".caffemodel");
  LOG(INFO) << "Snapshotting to binary proto file " << model;
  if (peers_ && peers_->holds_slices()) {
    write_caffemodel(std::move(whole), model);
  } else {
    write_caffemodel(*net_, model, param_.snapshot_diff());
  }

  state.set_iter(iter_);
  state.set_learned_net(model);
  save_lr_state(lr_state_, &state);
  if (scales_loss_) {
    state.set_loss_scale(loss_scale_);
    state.set_loss_scale_good_steps(loss_scale_good_steps_);
  }
  ensure_history();
  if (!peers_ || !peers_->holds_slices()) {
    for (const auto& blob : history_) blob->to_proto(state.add_history());
  }
  state.set_rng_state(rng_state());
  save_layer_states(*net_, test_nets_, state.mutable_layer_state());
  const std::string state_file = snapshot_filename(iter_, ".solverstate");
  LOG(INFO) << "Snapshotting solver state to binary proto file " << state_file;
  write_binary_file(state, state_file);
  snapshot_written();
}

void Solver::snapshot_written() {
  // The others wait for the root's files here, not in a later collective with a timeout.
  if (!peers_) return;
  std::string done;
  peers_->broadcast(&done, "the end of the root's snapshot", true);
}

void Solver::restore(const std::string& solverstate_file) {
  LOG(INFO) << "Restoring previous solver status from " << solverstate_file;
  SolverState state;
  if (is_root()) read_binary_file(solverstate_file, &state);
  if (peers_) {
    std::string bytes = state.SerializeAsString();
    peers_->broadcast(&bytes, "the solver state of " + solverstate_file, true);
    CHECK(state.ParseFromString(bytes));
  }
  const bool slices = peers_ && peers_->holds_slices();
  if (state.has_learned_net() && (is_root() || slices)) {
    // The path as written, or beside the solverstate if the snapshots were moved.
    std::string model = state.learned_net();
    if (!file_exists(model)) {
      const std::string beside =
          directory_of(solverstate_file) + model.substr(model.find_last_of('/') + 1);
      if (file_exists(beside)) model = beside;
    }
    if (slices) {
      peers_->load_model(read_caffemodel(model), net_.get());
    } else {
      copy_weights_from_file(model, net_.get());
    }
  }
  if (peers_ && !slices) peers_->broadcast_weights();
  ensure_history();
  const int workers = peers_ ? peers_->size() : 1;
  const int saved_workers = state.has_world_size() ? state.world_size() : 1;
  // With model parallelism each worker's history is its slice, kept in the state of its
  // counterpart in the root's group: it resumes only on the same layout.
  ENGINE_REQUIRE(!slices || (saved_workers == workers && state.worker_state_size() == workers),
                 solverstate_file << ": a model-parallel run resumes only on the layout that "
                                     "wrote it (the same number of ranks and --model_parallel); "
                                     "its .caffemodel holds the whole model, for --weights");
  if (saved_workers != workers) {
    LOG(WARNING) << solverstate_file << " was written by " << saved_workers
                 << " worker(s) and this run has " << workers
                 << ": the weights and solver history continue, the data positions and random "
                    "streams start afresh";
  }
  const auto& history = slices ? state.worker_state(peers_->weights_twin(peers_->rank())).history()
                               : state.history();
  ENGINE_REQUIRE(history.size() == static_cast<int>(history_.size()),
                 solverstate_file << ": holds " << history.size() << " history blobs"
                                  << (slices ? " for this worker" : "") << ", solver type "
                                  << param_.type() << " needs " << history_.size());
  for (size_t i = 0; i < history_.size(); ++i) {
    history_[i]->from_proto(history.Get(static_cast<int>(i)), false);
  }
  iter_ = state.iter();
  restore_lr_state(state, &lr_state_);
  if (scales_loss_ && state.has_loss_scale()) {
    loss_scale_ = state.loss_scale();
    loss_scale_good_steps_ = state.loss_scale_good_steps();
  }
  // Each worker continues its own random stream and data position, when the run has as many
  // workers as the one that wrote the snapshot.
  if (saved_workers != workers) return;
  if (workers > 1) {
    const int rank = peers_->rank();
    ENGINE_REQUIRE(state.worker_state_size() == workers,
                   solverstate_file << ": says " << workers << " workers but holds the state of "
                                    << state.worker_state_size());
    const WorkerState& mine = state.worker_state(rank);
    if (mine.has_rng_state()) restore_rng_state(mine.rng_state(), solverstate_file);
    restore_layer_states(mine.layer_state(), *net_, test_nets_, solverstate_file);
    return;
  }
  if (state.has_rng_state()) restore_rng_state(state.rng_state(), solverstate_file);
  restore_layer_states(state.layer_state(), *net_, test_nets_, solverstate_file);
}

}  // namespace engine
