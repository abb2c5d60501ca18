#include "core/fastest_layer.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <memory>
#include <mutex>
#include <random>
#include <sstream>

#include <glog/logging.h>

#include "core/context.hpp"
#include "layers/conv.hpp"
#include "math/onednn.hpp"
#include "math/random.hpp"

namespace engine {
namespace {

// Layers whose bottoms and tops hold fewer values than this keep the preferred implementation:
// their passes take microseconds, where a timing tells more about the machine's other load
// than about the code, and a choice that changed from run to run would change the numbers.
constexpr int64_t kFewestValuesMeasured = 32768;
// Scratch copies larger than this are not made; the preferred implementation runs.
constexpr int64_t kMostScratchBytes = int64_t{1} << 30;
// Another implementation replaces the preferred one only when at least this much faster, so
// that equal ones (both paths of a depthwise convolution run the same kernels) do not flip.
constexpr double kFasterBy = 0.95;
// The first round warms caches and buffers and checks agreement; the others are timed. After
// the first timed round, a candidate this much faster than all the others has won already.
constexpr int kRounds = 3;
constexpr double kClearWin = 1.3;
// Results agree when they differ by at most this fraction of the largest magnitude among the
// preferred implementation's (fp32 rounding in another summation order is far below it).
constexpr float kAgreement = 1e-3f;
constexpr int kChoiceVersion = 8;

int engine_of(const LayerParameter& param) {
  const std::string& type = param.type();
  if (type == "Convolution" || type == "Deconvolution") return param.convolution_param().engine();
  if (type == "InnerProduct") return param.inner_product_param().engine();
  if (type == "Pooling") return param.pooling_param().engine();
  if (type == "LRN") return param.lrn_param().engine();
  return -1;
}

LayerParameter with_engine(LayerParameter param, int engine) {
  const std::string& type = param.type();
  if (type == "Convolution" || type == "Deconvolution") {
    param.mutable_convolution_param()->set_engine(static_cast<ConvolutionParameter::Engine>(engine));
  } else if (type == "InnerProduct") {
    param.mutable_inner_product_param()->set_engine(
        static_cast<InnerProductParameter::Engine>(engine));
  } else if (type == "Pooling") {
    param.mutable_pooling_param()->set_engine(static_cast<PoolingParameter::Engine>(engine));
  } else if (type == "LRN") {
    param.mutable_lrn_param()->set_engine(static_cast<LRNParameter::Engine>(engine));
  }
  return param;
}

struct Decision {
  int chosen = 0;
  std::vector<double> milliseconds;  // per candidate; negative: not measured or excluded
  std::string why;                   // when nothing was measured, or a candidate was excluded
};

// The choices of this process, by layer settings, shapes and the passes that run.
class DecisionCache {
 public:
  bool find(const std::string& key, Decision* decision) {
    std::lock_guard<std::mutex> lock(mutex_);
    const auto found = decisions_.find(key);
    if (found == decisions_.end()) return false;
    *decision = found->second;
    return true;
  }
  void store(const std::string& key, const Decision& decision) {
    std::lock_guard<std::mutex> lock(mutex_);
    decisions_[key] = decision;
  }

 private:
  std::mutex mutex_;
  std::map<std::string, Decision> decisions_;
};

DecisionCache& decision_cache() {
  static DecisionCache cache;
  return cache;
}

// Choices kept across processes, so that every run on a machine makes the same ones: two runs
// that chose differently between near-equal implementations would differ in the last bits (a
// resumed run from an uninterrupted one, pycaffe from the command line). The file is
// $ENGINE_CHOICES, else $XDG_CACHE_HOME/engine/choices, else ~/.cache/engine/choices;
// ENGINE_CHOICES=off keeps choices in the process only. One line per choice, keyed by a hash of
// the processor, the layer settings and the shapes: "KEY CHOSEN MS..." (-1: not measured). A
// lock on the file is held while a choice is looked up, measured and written, so concurrent
// runs never disagree.
class ChoiceFile {
 public:
  ChoiceFile() {
    const char* explicit_path = std::getenv("ENGINE_CHOICES");
    if (explicit_path != nullptr) {
      if (std::string(explicit_path) != "off") path_ = explicit_path;
    } else if (const char* cache = std::getenv("XDG_CACHE_HOME"); cache && *cache) {
      path_ = std::string(cache) + "/engine/choices";
    } else if (const char* home = std::getenv("HOME"); home && *home) {
      path_ = std::string(home) + "/.cache/engine/choices";
    }
  }

  // Runs `decide` unless the file holds the choice; returns whichever, and records a new one.
  // Without a usable file (none set, a read-only folder) it only runs `decide`.
  template <class Decide>
  Decision find_or_make(const std::string& key, size_t candidates, Decide decide) {
    const int fd = path_.empty() ? -1 : open_locked();
    if (fd < 0) return decide();
    Decision decision;
    if (!read(key, candidates, &decision)) {
      decision = decide();
      std::ofstream out(path_, std::ios::app);
      out << key << ' ' << decision.chosen;
      for (double ms : decision.milliseconds) out << ' ' << ms;
      out << '\n';
    }
    ::close(fd);  // releases the lock
    return decision;
  }

 private:
  int open_locked() const {
    const size_t slash = path_.rfind('/');
    if (slash != std::string::npos && slash > 0) {
      const std::string folder = path_.substr(0, slash);
      // mkdir -p, quietly: a folder that cannot be made means no file.
      for (size_t at = folder.find('/', 1);; at = folder.find('/', at + 1)) {
        ::mkdir(folder.substr(0, at).c_str(), 0755);
        if (at == std::string::npos) break;
      }
    }
    const int fd = ::open(path_.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) return -1;
    if (::flock(fd, LOCK_EX) != 0) {
      ::close(fd);
      return -1;
    }
    return fd;
  }

  bool read(const std::string& key, size_t candidates, Decision* decision) const {
    std::ifstream in(path_);
    std::string line;
    while (std::getline(in, line)) {
      std::istringstream fields(line);
      std::string line_key;
      Decision found;
      if (!(fields >> line_key >> found.chosen) || line_key != key) continue;
      double ms;
      while (fields >> ms) found.milliseconds.push_back(ms);
      // A line cut short by a killed run, or from another version of the candidates: ignored.
      if (found.milliseconds.size() != candidates || found.chosen < 0 ||
          found.chosen >= static_cast<int>(candidates)) {
        continue;
      }
      found.why = "measured by an earlier run";
      *decision = found;
      return true;
    }
    return false;
  }

  std::string path_;
};

// FNV-1a, written out: the key must hash the same in every build.
std::string stable_hash(const std::string& text) {
  uint64_t hash = 14695981039346656037ull;
  for (unsigned char c : text) hash = (hash ^ c) * 1099511628211ull;
  char hex[17];
  std::snprintf(hex, sizeof hex, "%016llx", static_cast<unsigned long long>(hash));
  return hex;
}

// The processor and the library versions: a choice holds for the machine that measured it.
std::string machine_identity() {
  std::ifstream cpuinfo("/proc/cpuinfo");
  std::string line, model;
  while (std::getline(cpuinfo, line)) {
    if (line.rfind("model name", 0) == 0) {
      model = line;
      break;
    }
  }
  std::ostringstream identity;
  identity << model << '|' << sysconf(_SC_NPROCESSORS_ONLN);
#ifdef ENGINE_USE_ONEDNN
  const dnnl_version_t* version = dnnl_version();
  identity << "|dnnl " << version->major << '.' << version->minor << '.' << version->patch;
#endif
  return identity.str();
}

bool agree(const std::vector<float>& expected, const std::vector<float>& actual) {
  if (expected.size() != actual.size()) return false;
  float scale = 0;
  for (float value : expected) scale = std::max(scale, std::fabs(value));
  const float tolerance = kAgreement * scale + 1e-6f;
  for (size_t i = 0; i < expected.size(); ++i) {
    if (!(std::fabs(expected[i] - actual[i]) <= tolerance)) return false;
  }
  return true;
}

double milliseconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start)
      .count();
}

class FastestLayer : public Layer {
 public:
  FastestLayer(const LayerParameter& param, std::vector<Implementation> implementations,
               LayerPtr (*create)(const LayerParameter&))
      : Layer(param) {
    for (Implementation& implementation : implementations) {
      // On the GPU the oneDNN-engine layer runs what DEFAULT runs there (cuDNN); CAFFE would
      // switch to the reference kernels.
      if (engine_of(implementation.param) == kEngineOnednn) gpu_ = candidates_.size();
      candidates_.push_back({implementation.name, create(implementation.param)});
    }
  }

  int exact_bottoms() const override { return first().exact_bottoms(); }
  int min_bottoms() const override { return first().min_bottoms(); }
  int max_bottoms() const override { return first().max_bottoms(); }
  int exact_tops() const override { return first().exact_tops(); }
  int min_tops() const override { return first().min_tops(); }
  int max_tops() const override { return first().max_tops(); }
  bool allow_force_backward(int bottom_index) const override {
    return first().allow_force_backward(bottom_index);
  }
  bool accepts_epilogue() const override { return first().accepts_epilogue(); }
  bool epilogue_takes_affine() const override { return first().epilogue_takes_affine(); }
  void set_epilogue(const ChannelEpilogue* epilogue) override {
    for (Candidate& candidate : candidates_) candidate.layer->set_epilogue(epilogue);
  }
  void set_backward_plan(bool runs, const std::vector<bool>& bottoms) override {
    Layer::set_backward_plan(runs, bottoms);
    for (Candidate& candidate : candidates_) candidate.layer->set_backward_plan(runs, bottoms);
  }
  // Each candidate rounds its own operands, or computes the precision natively.
  void set_precision(Precision precision) override {
    Layer::set_precision(precision);
    for (Candidate& candidate : candidates_) candidate.layer->set_precision(precision);
  }

  // Runs before every forward pass: for unchanged bottoms it does nothing, since the candidate
  // that runs reshapes itself in its own forward.
  void reshape(const Blobs& bottom, const Blobs& top) override {
    bool unchanged = bottom.size() == decided_for_.size();
    for (size_t i = 0; unchanged && i < bottom.size(); ++i) {
      unchanged = bottom[i]->shape() == decided_for_[i];
    }
    if (unchanged) return;
    decided_ = false;
    decided_for_.clear();
    for (const Blob* blob : bottom) decided_for_.push_back(blob->shape());
    synced(running()).reshape(bottom, top);
  }

  // The candidate that runs now: the chosen one (the preferred one before the choice), or on
  // the GPU the one whose device code DEFAULT runs.
  size_t running() const {
    if (Context::mode() == Mode::GPU) return gpu_;
    return decided_ ? decision_.chosen : 0;
  }
  const Layer& running_layer() const { return *candidates_[running()].layer; }

  std::string report() const {
    if (!decided_) return "";
    std::ostringstream out;
    out << candidates_[decision_.chosen].name;
    std::string details;
    for (size_t i = 0; i < candidates_.size(); ++i) {
      if (decision_.milliseconds[i] < 0) continue;
      char text[64];
      std::snprintf(text, sizeof text, "%s%s %.3f ms", details.empty() ? "" : ", ",
                    candidates_[i].name.c_str(), decision_.milliseconds[i]);
      details += text;
    }
    if (!decision_.why.empty()) details += (details.empty() ? "" : "; ") + decision_.why;
    if (!details.empty()) out << " (" << details << ")";
    return out.str();
  }

 protected:
  void layer_setup(const Blobs& bottom, const Blobs& top) override {
    candidates_[0].layer->setup(bottom, top);
    blobs_ = candidates_[0].layer->blobs();
    for (size_t i = 1; i < candidates_.size(); ++i) {
      // The others' fillers must not draw from the generator: that would shift the initial
      // weights of every later layer away from the ones a single implementation gets.
      const std::mt19937 generator = Context::rng();
      candidates_[i].layer->setup(bottom, top);
      Context::rng() = generator;
      candidates_[i].layer->blobs() = blobs_;
    }
  }

  void forward_cpu(const Blobs& bottom, const Blobs& top) override {
    if (!decided_) decide(bottom, top);
    synced(running()).forward(bottom, top);
  }
  void forward_gpu(const Blobs& bottom, const Blobs& top) override {
    synced(running()).forward(bottom, top);
  }
  void backward_cpu(const Blobs& top, const std::vector<bool>& propagate_down,
                    const Blobs& bottom) override {
    synced(running()).backward(top, propagate_down, bottom);
  }
  void backward_gpu(const Blobs& top, const std::vector<bool>& propagate_down,
                    const Blobs& bottom) override {
    synced(running()).backward(top, propagate_down, bottom);
  }

 private:
  struct Candidate {
    std::string name;
    LayerPtr layer;
  };

  const Layer& first() const { return *candidates_[0].layer; }

  // The candidate with this layer's parameters (a net may have replaced them with shared
  // ones after setup) and their gradient switches.
  Layer& synced(size_t index) {
    Layer& candidate = *candidates_[index].layer;
    if (candidate.blobs() != blobs_) candidate.blobs() = blobs_;
    for (size_t i = 0; i < blobs_.size(); ++i) {
      candidate.set_param_propagate_down(static_cast<int>(i), param_propagate_down(i));
    }
    return candidate;
  }

  std::string cache_key(const Blobs& bottom) const {
    LayerParameter settings = param_;
    settings.clear_name();
    settings.clear_bottom();
    settings.clear_top();
    settings.clear_blobs();
    settings.clear_param();
    settings.clear_loss_weight();
    settings.clear_include();
    settings.clear_exclude();
    std::ostringstream key;
    static const std::string machine = machine_identity();
    // kChoiceVersion: raise it when an implementation changes enough to void old choices.
    // The backward plan too: layers that run none compute forward-only passes (pooling).
    key << kChoiceVersion << '|' << machine << '|' << settings.SerializeAsString() << '|'
        << runs_backward() << backward_runs_;
    for (const Blob* blob : bottom) key << '|' << blob->shape_string();
    for (const Blob* blob : bottom) {
      if (const HostLayoutPtr& layout = arrangement(*blob)) key << '|' << layout->name();
    }
    for (size_t i = 0; i < bottom.size(); ++i) key << (propagates_down(i) ? '1' : '0');
    if (precision_ != FP32) key << '|' << precision_;
    return stable_hash(key.str());
  }

  // The arrangement a bottom's newest values are in, if they are in one only.
  static const HostLayoutPtr& arrangement(const Blob& blob) {
    static const HostLayoutPtr none;
    const SyncedMemory& values = *blob.data_memory();
    return values.plain_stale() ? values.arranged_layout() : none;
  }

  bool runs_backward() const { return param_.phase() == TRAIN && backward_runs_; }
  bool propagates_down(size_t bottom_index) const {
    if (backward_bottoms_.empty()) return allow_force_backward(static_cast<int>(bottom_index));
    return bottom_index < backward_bottoms_.size() && backward_bottoms_[bottom_index];
  }

  void decide(const Blobs& bottom, const Blobs& top) {
    decided_ = true;
    decision_ = Decision();
    decision_.milliseconds.assign(candidates_.size(), -1.0);
    decision_.why = reason_not_to_measure(bottom, top);
    if (!decision_.why.empty()) return;
    const std::string key = cache_key(bottom);
    if (!decision_cache().find(key, &decision_)) {
      static ChoiceFile file;
      decision_ = file.find_or_make(key, candidates_.size(), [&] { return measure(bottom, top); });
      decision_cache().store(key, decision_);
    }
    VLOG(1) << describe() << ": " << report();
  }

  std::string reason_not_to_measure(const Blobs& bottom, const Blobs& top) const {
    int64_t values = 0, bytes = 0;
    for (const Blob* blob : bottom) values += blob->count();
    for (const Blob* blob : top) values += blob->count();
    for (const auto& param : blobs_) bytes += 3 * param->count() * int64_t{sizeof(float)};
    // Data and gradient of each scratch blob, and the preferred candidate's results.
    bytes += 3 * values * int64_t{sizeof(float)};
    if (values < kFewestValuesMeasured) return "small: not measured";
    if (bytes > kMostScratchBytes) return "too large to measure";
    return "";
  }

  Decision measure(const Blobs& bottom, const Blobs& top) {
    Decision decision;
    decision.milliseconds.assign(candidates_.size(), -1.0);

    // Scratch bottoms, tops and parameters: the measurement leaves the net's own untouched, and
    // the generator its random values come from as it found it.
    const std::mt19937 generator = Context::rng();
    auto fill_random = [](int64_t count, float* data) { rng_uniform(count, -1.0f, 1.0f, data); };
    std::vector<std::unique_ptr<Blob>> owned;
    Blobs scratch_bottom, scratch_top;
    std::vector<bool> down;
    for (size_t i = 0; i < bottom.size(); ++i) {
      owned.push_back(std::make_unique<Blob>(bottom[i]->shape()));
      fill_random(owned.back()->count(), owned.back()->mutable_cpu_data());
      scratch_bottom.push_back(owned.back().get());
      down.push_back(runs_backward() && propagates_down(i));
    }
    // Each candidate gets the bottoms as the net hands them over: arranged where the layer
    // before left them so (synced_memory.hpp), so that the time of converting them to what the
    // candidate reads counts.
    auto arrange_bottoms = [&] {
      for (size_t i = 0; i < bottom.size(); ++i) {
        const HostLayoutPtr& layout = arrangement(*bottom[i]);
        if (!layout) continue;
        // Arranging leaves the plain buffer in place (only out of date), so it is the source.
        SyncedMemory& values = *scratch_bottom[i]->data_memory();
        const void* plain = values.host_data();
        layout->from_plain(plain, values.mutable_arranged_data(layout));
      }
    };
    for (size_t i = 0; i < top.size(); ++i) {
      owned.push_back(std::make_unique<Blob>());
      scratch_top.push_back(owned.back().get());
    }
    std::vector<std::shared_ptr<Blob>> scratch_params;
    for (const auto& param : blobs_) {
      scratch_params.push_back(std::make_shared<Blob>(param->shape()));
      std::copy_n(param->cpu_data(), param->count(), scratch_params.back()->mutable_cpu_data());
    }

    std::vector<float> expected;
    std::vector<bool> usable(candidates_.size(), true);
    bool top_diffs_filled = false;
    for (int round = 0; round < kRounds && !clear_winner(decision.milliseconds, usable);
         ++round) {
      for (size_t i = 0; i < candidates_.size(); ++i) {
        if (!usable[i]) continue;
        Layer& layer = *candidates_[i].layer;
        layer.blobs() = scratch_params;
        for (size_t p = 0; p < scratch_params.size(); ++p) {
          layer.set_param_propagate_down(static_cast<int>(p), param_propagate_down(p));
          if (round == 0) scratch_params[p]->set_diff(0);
          // In training the solver rewrites the parameters before every pass: what a candidate
          // derives from them (Winograd's transformed weights) is remade in each timed pass too.
          if (runs_backward()) scratch_params[p]->mutable_cpu_data();
        }
        try {
          arrange_bottoms();
          auto start = std::chrono::steady_clock::now();
          layer.forward(scratch_bottom, scratch_top);
          double elapsed = milliseconds_since(start);
          if (!top_diffs_filled) {
            for (Blob* top : scratch_top) fill_random(top->count(), top->mutable_cpu_diff());
            top_diffs_filled = true;
          }
          if (runs_backward()) {
            arrange_top_diffs(scratch_top);
            start = std::chrono::steady_clock::now();
            layer.backward(scratch_top, down, scratch_bottom);
            elapsed += milliseconds_since(start);
          }
          if (round > 0) {
            double& best = decision.milliseconds[i];
            best = best < 0 ? elapsed : std::min(best, elapsed);
            continue;
          }
          std::vector<float> results = outcome(scratch_bottom, scratch_top, down, scratch_params);
          if (i == 0) {
            expected = std::move(results);
          } else if (!agree(expected, results)) {
            usable[i] = false;
            decision.why += candidates_[i].name + " disagreed with " + candidates_[0].name + "; ";
            LOG(WARNING) << describe() << ": its " << candidates_[i].name
                         << " implementation disagreed with " << candidates_[0].name
                         << " on scratch data; it will not run";
          }
        } catch (const std::exception& error) {
          if (i == 0) {
            restore(generator);
            throw;
          }
          usable[i] = false;
          decision.why += candidates_[i].name + " failed; ";
          LOG(WARNING) << describe() << ": its " << candidates_[i].name
                       << " implementation failed on scratch data (" << error.what()
                       << "); it will not run";
        }
      }
    }
    restore(generator);
    for (size_t i = 1; i < candidates_.size(); ++i) {
      if (!usable[i]) decision.milliseconds[i] = -1;
      if (usable[i] && decision.milliseconds[i] <
                           kFasterBy * decision.milliseconds[decision.chosen]) {
        decision.chosen = static_cast<int>(i);
      }
    }
    if (!decision.why.empty()) decision.why.resize(decision.why.size() - 2);
    return decision;
  }

  // The tops' gradients as the layers above hand them back, modelled as arranged like the
  // tops' values (a oneDNN layer's gradient takes its input's format): a candidate that wrote
  // its top in an arrangement is not charged for converting a plain gradient into it, which in
  // a chain of layers computing in that arrangement never happens. The plain copy stays current
  // for candidates computing on plain values.
  static void arrange_top_diffs(const Blobs& top) {
    for (Blob* blob : top) {
      const HostLayoutPtr& layout = arrangement(*blob);
      if (!layout) continue;
      SyncedMemory& gradient = *blob->diff_memory();
      if (gradient.arranged_data(*layout) != nullptr) continue;
      const void* plain = gradient.host_data();
      if (void* arranged = gradient.arranged_copy(layout)) layout->from_plain(plain, arranged);
    }
  }

  static bool clear_winner(const std::vector<double>& milliseconds,
                           const std::vector<bool>& usable) {
    double best = -1, second = -1;
    for (size_t i = 0; i < milliseconds.size(); ++i) {
      if (!usable[i]) continue;
      if (milliseconds[i] < 0) return false;  // not timed yet
      if (best < 0 || milliseconds[i] < best) {
        second = best;
        best = milliseconds[i];
      } else if (second < 0 || milliseconds[i] < second) {
        second = milliseconds[i];
      }
    }
    return best >= 0 && (second < 0 || second > kClearWin * best);
  }

  // Everything a pass computed: tops, the bottoms' gradients asked for, parameter gradients.
  std::vector<float> outcome(const Blobs& bottom, const Blobs& top, const std::vector<bool>& down,
                             const std::vector<std::shared_ptr<Blob>>& params) const {
    std::vector<float> all;
    auto append = [&all](const float* data, int64_t count) {
      all.insert(all.end(), data, data + count);
    };
    for (const Blob* blob : top) append(blob->cpu_data(), blob->count());
    if (!runs_backward()) return all;
    for (size_t i = 0; i < bottom.size(); ++i) {
      if (down[i]) append(bottom[i]->cpu_diff(), bottom[i]->count());
    }
    for (size_t p = 0; p < params.size(); ++p) {
      if (param_propagate_down(p)) append(params[p]->cpu_diff(), params[p]->count());
    }
    return all;
  }

  // Hands the candidates their real parameters again, and the generator its state.
  void restore(const std::mt19937& generator) {
    for (Candidate& candidate : candidates_) candidate.layer->blobs() = blobs_;
    Context::rng() = generator;
  }

  std::vector<Candidate> candidates_;
  size_t gpu_ = 0;
  std::vector<std::vector<int>> decided_for_;
  bool decided_ = false;
  Decision decision_;
};

}  // namespace

std::vector<Implementation> implementations_to_measure(const LayerParameter& param) {
  const int engine = engine_of(param);
  if (!onednn_available() || (engine != kEngineDefault && engine != kEngineCudnn)) return {};
  // Stochastic pooling draws from the generator in training; it has one implementation.
  if (param.type() == "Pooling" && param.pooling_param().pool() == PoolingParameter::STOCHASTIC) {
    return {};
  }
  Implementation onednn{"oneDNN", with_engine(param, kEngineOnednn)};
  Implementation caffe{"Caffe", with_engine(param, kEngineCaffe)};
  // LRN prefers its own code: oneDNN's backward on N x C x H x W blobs is a slow reference loop.
  if (param.type() == "LRN") return {caffe, onednn};
  if (param.type() == "Convolution" || param.type() == "Deconvolution") {
    std::vector<Implementation> all = {onednn, caffe,
                                       {"oneDNN NHWC", with_engine(param, kEngineOnednnNhwc)}};
    if (param.type() == "Convolution" && winograd::may_apply(param.convolution_param())) {
      all.push_back({"Winograd", with_engine(param, kEngineWinograd)});
    }
    return all;
  }
  if (param.type() == "InnerProduct") {
    return {onednn, caffe, {"oneDNN sgemm backward", with_engine(param, kEngineOnednnSgemm)}};
  }
  return {onednn, caffe};
}

LayerPtr create_fastest_layer(const LayerParameter& param,
                              std::vector<Implementation> implementations,
                              LayerPtr (*create)(const LayerParameter&)) {
  return std::make_unique<FastestLayer>(param, std::move(implementations), create);
}

const Layer& working_layer(const Layer& layer) {
  const auto* fastest = dynamic_cast<const FastestLayer*>(&layer);
  return fastest ? fastest->running_layer() : layer;
}

std::string implementation_choice(const Layer& layer) {
  const auto* fastest = dynamic_cast<const FastestLayer*>(&layer);
  return fastest ? fastest->report() : "";
}

}  // namespace engine
