// Solver: trains a Net by Caffe's loop. Each iteration clears the gradients, tests when due,
// runs forward/backward iter_size times, reports, then applies the update rule (clipping,
// normalisation by iter_size, L1/L2 regularisation, the rule's own history) and snapshots when
// due. Update rules (SGD, Nesterov, AdaGrad, RMSProp, AdaDelta, Adam) are subclasses, listed
// once in update_rules.cpp and made by make_solver().
//
// Snapshots write PREFIX_iter_N.caffemodel then PREFIX_iter_N.solverstate, each atomically; a
// resume from the .solverstate continues exactly (weights, history, iteration, lr-policy state
// and the random generator). Not thread-safe; one solver per thread.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "core/net.hpp"
#include "engine.pb.h"
#include "solvers/lr_policy.hpp"

namespace engine {

// What a signal (or any other outside request) asks the running solver to do.
enum class SolverAction { NONE, STOP, SNAPSHOT };

// The other workers of a data-parallel run, as a solver sees them (parallel/data_parallel.hpp
// implements it over MPI ranks or NCCL devices; parallel/model_parallel.hpp for workers that
// each hold a slice of the model). Every worker's solver calls these at the same points of the
// same iterations. Worker 0 is the root: it alone logs, answers signals and writes snapshots,
// which carry every worker's random state and data position.
class SolverPeers {
 public:
  virtual ~SolverPeers() = default;
  virtual int rank() const = 0;
  virtual int size() const = 0;
  // Whether this worker runs the test nets: the root, or with model parallelism every worker
  // of the root's group, which compute them together.
  virtual bool runs_tests() const { return rank() == 0; }
  // How many copies of the model train side by side (images/s count all of them).
  virtual int replicas() const { return size(); }
  // The rank whose weights worker `rank`'s must equal (its counterpart in the root's group).
  virtual int weights_twin(int rank) const { return 0; }
  // Whether each worker holds only a slice of the model: its solver history then stays with
  // the worker's state in snapshots.
  virtual bool holds_slices() const { return false; }
  // Turns this worker's model into the whole one (collective among those that run tests).
  virtual void whole_model(NetParameter* model) {}
  // Loads a whole model's weights into this worker's net.
  virtual void load_model(const NetParameter& model, Net* net) {
    net->copy_trained_layers_from(model);
  }
  // Before the last forward/backward pass of an iteration: gradients may start travelling as
  // backward completes them.
  virtual void backward_starting() = 0;
  // After it: returns when every learnable parameter's diff holds the mean over the workers.
  virtual void average_gradients() = 0;
  // Whether this worker's own gradients, before averaging, were finite: known when the
  // exchange checked them (then the solver must not read the diffs while it runs).
  virtual bool checks_gradients() const { return false; }
  virtual bool own_gradients_finite() const { return true; }
  // Makes every worker's weights the root's.
  virtual void broadcast_weights() = 0;
  // Makes every worker's bytes the root's. `after_root_work`: the others may wait here for the
  // root's tests or snapshot files, however long they take (no timeout).
  virtual void broadcast(std::string* bytes, const std::string& what,
                         bool after_root_work = false) = 0;
  // Every worker's bytes, in rank order.
  virtual std::vector<std::string> allgather(const std::string& bytes,
                                             const std::string& what) = 0;
};

class Solver {
 public:
  // `source` names the solver file for default snapshot prefixes and messages ("" if none).
  explicit Solver(const SolverParameter& param, const std::string& source = "");
  virtual ~Solver() = default;

  // Trains to max_iter (from a snapshot if resume_file is given), then snapshots and tests as
  // Caffe does. resume_file "latest": from the newest snapshot under snapshot_prefix, or from
  // the start when there is none (a job that may be killed and restarted runs this way).
  void solve(const std::string& resume_file = "");
  // Runs `iterations` training iterations.
  void step(int iterations);
  // Runs every test net; returns, per test net, its outputs' mean values.
  std::vector<std::vector<float>> test_all();
  void snapshot();
  void restore(const std::string& solverstate_file);

  // One update from the gradients now in the net's parameter diffs (clip, normalise,
  // regularise, rule); then advances nothing. Public for tests.
  void apply_update();
  float learning_rate() { return engine::learning_rate(param_, iter_, &lr_state_); }

  Net& net() { return *net_; }
  const std::vector<std::unique_ptr<Net>>& test_nets() const { return test_nets_; }
  int iter() const { return iter_; }
  const SolverParameter& param() const { return param_; }
  // Stop requested by action (or a signal); solve() reports it.
  bool stopped_early() const { return stopped_early_; }
  float smoothed_loss() const { return smoothed_loss_; }
  // fp16 training's current loss scale (1 in other precisions).
  float loss_scale() const { return loss_scale_; }

  // Polled once per iteration: signals map to actions here.
  void set_action_source(std::function<SolverAction()> source) { action_source_ = source; }
  // Called when the gradients of an iteration are complete, before the update: the hook for
  // exchanging gradients across devices or processes.
  void add_gradients_ready_callback(std::function<void()> callback) {
    gradients_ready_callbacks_.push_back(callback);
  }
  // Called at the start of every iteration, after any testing, before forward (pycaffe's
  // on_start).
  void add_iteration_start_callback(std::function<void()> callback) {
    iteration_start_callbacks_.push_back(callback);
  }

  // Makes this solver one worker of a data-parallel run (not owned; null for a lone solver).
  void set_peers(SolverPeers* peers) { peers_ = peers; }
  bool is_root() const { return !peers_ || peers_->rank() == 0; }

  // Snapshot file names for iteration `iteration`.
  std::string snapshot_filename(int iteration, const std::string& extension) const;
  // The newest PREFIX_iter_N.solverstate ("" when there is none), as the root sees it. Files
  // an interrupted snapshot left half-written (PREFIX_iter_N.*.tmp.PID) are removed first.
  std::string latest_snapshot();

 protected:
  // The rule's history blobs: for each learnable parameter, history_per_param() blobs of its
  // shape, laid out as Caffe's solverstate stores them (all first blobs, then all second).
  virtual int history_per_param() const { return 1; }
  // Turns the parameter's (clipped, normalised, regularised) gradient into the step to subtract.
  virtual void compute_update(int param_id, float rate) = 0;
  // The parameter's whole step in one pass (normalisation by `gradient_scale`, L2 decay, the
  // rule, the subtraction), where the rule has such a pass for the current device; returns
  // false to have the steps run one by one.
  virtual bool update_in_one_pass(int param_id, float rate, float gradient_scale, float decay) {
    return false;
  }
  // The learning rate of one parameter: the solver's times its lr_mult.
  float local_rate(int param_id, float rate) { return rate * net_->params_lr()[param_id]; }
  // The weight decay of one parameter: the solver's times its decay_mult.
  float local_decay(int param_id) {
    return param_.weight_decay() * net_->params_weight_decay()[param_id];
  }
  Blob& history(int param_id, int which = 0) {
    return *history_[which * net_->learnable_params().size() + param_id];
  }

  SolverParameter param_;

 private:
  void init_nets();
  void ensure_history();
  void clip_gradients();
  void normalize(int param_id);
  // diff *= factor, on the side the mode computes on.
  void scale_diff(Blob* param, float factor);
  void regularize(int param_id);
  void update_smoothed_loss(float loss, int start_iter);
  void display(double seconds, int iterations);
  // Fails naming the first layer with a NaN or infinity unless the loss and gradients are finite.
  void check_finite(float loss, bool gradients_ok);
  // Workers: every one waits here until the root's snapshot files are written.
  void snapshot_written();
  bool gradients_finite();
  // fp16: divides the gradients by the loss scale and returns true, or, when they overflowed,
  // halves the scale and returns false (the step is skipped); doubles the scale after
  // fp16_scale_window good steps in a row.
  bool unscale_gradients();
  void test(int test_net_id, std::vector<float>* means);
  // Workers: the root's test results decide the plateau policy, and its signals every action.
  void share_lr_state();
  SolverAction agree_on(SolverAction action);
  // This worker's random state and data positions (and a hash of its weights, to check that
  // every worker holds the same).
  WorkerState worker_state();

  std::string source_;
  std::unique_ptr<Net> net_;
  std::vector<std::unique_ptr<Net>> test_nets_;
  std::vector<std::shared_ptr<Blob>> history_;
  Blob non_finite_flag_;  // GPU: set by check_finite's kernels
  int iter_ = 0;
  LrState lr_state_;
  // fp16's dynamic loss scaling (scales_loss_: the train net computes in fp16).
  bool scales_loss_ = false;
  float loss_scale_ = 1;
  int loss_scale_good_steps_ = 0;
  std::vector<float> losses_;
  float smoothed_loss_ = 0;
  bool stopped_early_ = false;
  std::function<SolverAction()> action_source_;
  std::vector<std::function<void()>> gradients_ready_callbacks_;
  std::vector<std::function<void()>> iteration_start_callbacks_;
  SolverPeers* peers_ = nullptr;
};

// Makes the solver SolverParameter.type names (a legacy solver_type is upgraded first).
std::unique_ptr<Solver> make_solver(const SolverParameter& param, const std::string& source = "");
// Reads a solver prototxt, upgrading the legacy solver_type field (io/upgrade.hpp).
SolverParameter read_solver_file(const std::string& path);

}  // namespace engine
