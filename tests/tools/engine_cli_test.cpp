// End-to-end runs of the engine command: train, snapshot, resume, test, signals, failures.
#include <gtest/gtest.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "core/net.hpp"
#include "io/prototxt.hpp"
#include "math/onednn.hpp"

namespace engine {
namespace {

namespace fs = std::filesystem;

const std::string kEngine = std::string(ENGINE_BINARY_DIR) + "/bin/engine";

// A small classifier on DummyData: random features, labels fixed at 2, dropout so that the
// random generator matters for exact resumes.
const char* kNet = R"(
name: "tiny"
layer { name: "data" type: "DummyData" top: "data" top: "label"
  dummy_data_param { shape { dim: 8 dim: 4 } shape { dim: 8 }
    data_filler { type: "gaussian" std: 1 } data_filler { type: "constant" value: 2 } } }
layer { name: "ip1" type: "InnerProduct" bottom: "data" top: "ip1"
  inner_product_param { num_output: 16 weight_filler { type: "xavier" } } }
layer { name: "relu" type: "ReLU" bottom: "ip1" top: "ip1" }
layer { name: "drop" type: "Dropout" bottom: "ip1" top: "ip1" dropout_param { dropout_ratio: 0.3 } }
layer { name: "ip2" type: "InnerProduct" bottom: "ip1" top: "ip2"
  inner_product_param { num_output: 3 weight_filler { type: "xavier" } } }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "ip2" bottom: "label" top: "loss" }
layer { name: "accuracy" type: "Accuracy" bottom: "ip2" bottom: "label" top: "accuracy"
  include { phase: TEST } }
)";

class EngineCli : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("engine_cli_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_ / "snaps");
    write("net.prototxt", kNet);
  }
  void TearDown() override { fs::remove_all(dir_); }

  void write(const std::string& name, const std::string& text) {
    std::ofstream(dir_ / name) << text;
  }
  std::string path(const std::string& name) const { return (dir_ / name).string(); }

  std::string solver(int max_iter, const std::string& extra = "") {
    return "net: \"" + path("net.prototxt") + "\"\n" +
           "test_iter: 4\ntest_interval: 100\nbase_lr: 0.05\nmomentum: 0.9\n"
           "weight_decay: 0.0005\nlr_policy: \"step\"\ngamma: 0.5\nstepsize: 150\n"
           "display: 50\nmax_iter: " + std::to_string(max_iter) + "\nsnapshot: 100\n" +
           "snapshot_prefix: \"" + path("snaps/tiny") + "\"\nrandom_seed: 42\n" + extra;
  }

  // Runs the engine with arguments; returns its exit code and fills `output` (stdout+stderr).
  int run(const std::string& arguments, std::string* output, const std::string& environment = "") {
    const std::string log = path("log.txt");
    const int status = std::system(
        (environment + " " + kEngine + " " + arguments + " >" + log + " 2>&1").c_str());
    *output = read_file(log);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  }

  fs::path dir_;
};

#define EXPECT_CONTAINS(text, part) \
  EXPECT_NE((text).find(part), std::string::npos) << "expected '" << (part) << "' in:\n" << (text)

TEST_F(EngineCli, TrainsSnapshotsResumesAndTests) {
  write("solver.prototxt", solver(300));
  std::string log;
  ASSERT_EQ(run("train --solver=" + path("solver.prototxt"), &log), 0) << log;
  EXPECT_CONTAINS(log, "Iteration 0, Testing net (#0)");
  EXPECT_CONTAINS(log, "Test net output #0: accuracy = ");
  EXPECT_CONTAINS(log, "Iteration 50 (");
  EXPECT_CONTAINS(log, "images/s), loss = ");
  EXPECT_CONTAINS(log, "Iteration 150, lr = 0.025");
  EXPECT_CONTAINS(log, "Snapshotting to binary proto file " + path("snaps/tiny_iter_200.caffemodel"));
  EXPECT_CONTAINS(log, "Optimization Done.");
  for (int iteration : {100, 200, 300}) {
    EXPECT_TRUE(fs::exists(path("snaps/tiny_iter_" + std::to_string(iteration) + ".caffemodel")));
    EXPECT_TRUE(fs::exists(path("snaps/tiny_iter_" + std::to_string(iteration) + ".solverstate")));
  }
  // The training loss fell: the last display's loss is far below log(3) of a fresh net.
  const size_t last = log.rfind("Iteration 250 (");
  ASSERT_NE(last, std::string::npos);
  const float loss = std::stof(log.substr(log.find("loss = ", last) + 7));
  EXPECT_LT(loss, 0.1f);

  // Resume from iteration 100 and run to 300: the final weights are byte-identical.
  const std::string straight = read_file(path("snaps/tiny_iter_300.caffemodel"));
  ASSERT_EQ(run("train --solver=" + path("solver.prototxt") +
                    " --snapshot=" + path("snaps/tiny_iter_100.solverstate"),
                &log),
            0)
      << log;
  EXPECT_CONTAINS(log, "Restoring previous solver status");
  EXPECT_EQ(read_file(path("snaps/tiny_iter_300.caffemodel")), straight)
      << "a resumed run must end with the same weights";

  // Score the snapshot.
  ASSERT_EQ(run("test --model=" + path("net.prototxt") +
                    " --weights=" + path("snaps/tiny_iter_300.caffemodel") + " --iterations=5",
                &log),
            0)
      << log;
  EXPECT_CONTAINS(log, "Batch 4, accuracy = ");
  EXPECT_CONTAINS(log, "accuracy = 1");
  EXPECT_CONTAINS(log, "loss = ");
}

TEST_F(EngineCli, FineTunesFromWeightsAndOverridesIterations) {
  write("solver.prototxt", solver(100));
  std::string log;
  ASSERT_EQ(run("train --solver=" + path("solver.prototxt"), &log), 0) << log;
  fs::rename(path("snaps/tiny_iter_100.caffemodel"), path("start.caffemodel"));
  ASSERT_EQ(run("train --solver=" + path("solver.prototxt") + " --weights=" +
                    path("start.caffemodel") + " --iterations=20",
                &log),
            0)
      << log;
  EXPECT_CONTAINS(log, "Copied weights from " + path("start.caffemodel"));
  EXPECT_TRUE(fs::exists(path("snaps/tiny_iter_20.caffemodel")));
  // The fine-tuned net starts trained: its first test is already perfect.
  EXPECT_CONTAINS(log, "Test net output #0: accuracy = 1");
}

TEST_F(EngineCli, NonFiniteLossStopsNamingIterationAndLayer) {
  // A huge learning rate makes the weights overflow after the first update.
  write("solver.prototxt", solver(50));
  std::string text = read_file(path("solver.prototxt"));
  text.replace(text.find("base_lr: 0.05"), 13, "base_lr: 1e30");
  text.replace(text.find("snapshot: 100"), 13, "snapshot: 1");
  write("solver.prototxt", text);
  std::string log;
  EXPECT_EQ(run("train --solver=" + path("solver.prototxt"), &log), 1) << log;
  EXPECT_CONTAINS(log, "error: iteration ");
  EXPECT_CONTAINS(log, "the loss is ");
  EXPECT_CONTAINS(log, "(InnerProduct)");
  EXPECT_CONTAINS(log, "the last snapshot is kept");
  // The snapshot of iteration 1 is complete and readable.
  NetParameter weights;
  EXPECT_NO_THROW(read_binary_file(path("snaps/tiny_iter_1.caffemodel"), &weights));
}

TEST_F(EngineCli, BadInputGivesOneLineErrors) {
  std::string log;
  EXPECT_EQ(run("train --solver=" + path("missing.prototxt"), &log), 1);
  EXPECT_CONTAINS(log, "cannot open " + path("missing.prototxt"));
  write("typo.prototxt", "net: \"x\"\nbase_lrr: 0.1\n");
  EXPECT_EQ(run("train --solver=" + path("typo.prototxt"), &log), 1);
  EXPECT_CONTAINS(log, path("typo.prototxt") + ":2:");
  write("solver.prototxt", solver(10));
  EXPECT_EQ(run("train --solver=" + path("solver.prototxt") + " --weights=a --snapshot=b", &log), 1);
  EXPECT_CONTAINS(log, "not both");
  EXPECT_EQ(run("test --model=" + path("net.prototxt"), &log), 1);
  EXPECT_CONTAINS(log, "--weights is required");
  EXPECT_EQ(run("frobnicate", &log), 1);
  EXPECT_CONTAINS(log, "unknown command 'frobnicate'");
  EXPECT_EQ(run("train --help", &log), 0);
  EXPECT_CONTAINS(log, "--sigint_effect");
}

// Starts `engine train` in the background, waits until its log shows `ready`, sends the signals
// and returns the exit code.
int train_with_signals(const std::string& solver, const std::string& log_path,
                       const std::vector<int>& signals, const std::string& ready,
                       std::vector<std::string> flags = {}) {
  flags.insert(flags.begin(), {"engine", "train", "--solver=" + solver});
  fs::remove(log_path);  // an old log must not look like the new run being ready
  const pid_t child = ::fork();
  if (child == 0) {
    const int fd = ::open(log_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    ::dup2(fd, 1);
    ::dup2(fd, 2);
    std::vector<char*> argv;
    for (std::string& flag : flags) argv.push_back(flag.data());
    argv.push_back(nullptr);
    ::execv(kEngine.c_str(), argv.data());
    ::_exit(127);
  }
  auto wait_for = [&](const std::string& text) {
    for (int i = 0; i < 600; ++i) {
      std::ifstream in(log_path);
      std::stringstream contents;
      contents << in.rdbuf();
      if (contents.str().find(text) != std::string::npos) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    return false;
  };
  EXPECT_TRUE(wait_for(ready)) << "the run never logged '" << ready << "'";
  for (int signal : signals) {
    ::kill(child, signal);
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
  }
  int status = 0;
  ::waitpid(child, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

TEST_F(EngineCli, SigintStopsWithASnapshotAndSighupSnapshots) {
  write("solver.prototxt", solver(100000000));
  std::string text = read_file(path("solver.prototxt"));
  text.replace(text.find("snapshot: 100"), 13, "snapshot: 0");
  write("solver.prototxt", text);
  const std::string log_path = path("signals.txt");
  const int code = train_with_signals(path("solver.prototxt"), log_path, {SIGHUP, SIGINT},
                                      "Iteration 50 (");
  const std::string log = read_file(log_path);
  EXPECT_EQ(code, 0) << log;
  EXPECT_CONTAINS(log, "Optimization stopped early.");
  // Two snapshots: SIGHUP's, and the one stopping writes.
  int snapshots = 0;
  for (const auto& entry : fs::directory_iterator(dir_ / "snaps")) {
    snapshots += entry.path().extension() == ".solverstate";
  }
  EXPECT_EQ(snapshots, 2) << log;

  // With --sigint_effect=none SIGINT is ignored; SIGHUP, set to stop, ends the run.
  fs::remove_all(dir_ / "snaps");
  fs::create_directories(dir_ / "snaps");
  const int stopped = train_with_signals(path("solver.prototxt"), log_path, {SIGINT, SIGHUP},
                                         "Iteration 50 (",
                                         {"--sigint_effect=none", "--sighup_effect=stop"});
  const std::string second = read_file(log_path);
  EXPECT_EQ(stopped, 0) << second;
  EXPECT_CONTAINS(second, "Optimization stopped early.");
  snapshots = 0;
  for (const auto& entry : fs::directory_iterator(dir_ / "snaps")) {
    snapshots += entry.path().extension() == ".solverstate";
  }
  EXPECT_EQ(snapshots, 1) << second;
}

// engine: DEFAULT layers time their implementations once per machine: `engine time` prints the
// choices, and a second run takes them from the ENGINE_CHOICES file instead of measuring.
TEST_F(EngineCli, TimePrintsImplementationChoicesThatLaterRunsReuse) {
  if (!onednn_available()) GTEST_SKIP() << "a build without oneDNN has one implementation";
  write("conv.prototxt", R"(
layer { name: "data" type: "Input" top: "data" input_param { shape { dim: 4 dim: 8 dim: 40 dim: 40 } } }
layer { name: "conv" type: "Convolution" bottom: "data" top: "conv"
  convolution_param { num_output: 8 kernel_size: 3 weight_filler { type: "xavier" } } }
layer { name: "pool" type: "Pooling" bottom: "conv" top: "pool"
  pooling_param { pool: MAX kernel_size: 2 stride: 2 } }
)");
  const std::string choices = path("choices");
  const std::string command =
      "time --model=" + path("conv.prototxt") + " --iterations=1";
  std::string first, second;
  ASSERT_EQ(run(command, &first, "ENGINE_CHOICES=" + choices), 0) << first;
  EXPECT_CONTAINS(first, "Implementations chosen (forward + backward, measured once):");
  EXPECT_CONTAINS(first, "conv\t");
  EXPECT_CONTAINS(first, "oneDNN ");
  EXPECT_CONTAINS(first, "Caffe ");
  const std::string measured = read_file(choices);
  EXPECT_EQ(std::count(measured.begin(), measured.end(), '\n'), 2) << measured;
  ASSERT_EQ(run(command, &second, "ENGINE_CHOICES=" + choices), 0) << second;
  EXPECT_CONTAINS(second, "measured by an earlier run");
  const std::string stored = read_file(choices);
  EXPECT_EQ(std::count(stored.begin(), stored.end(), '\n'), 2) << stored;
}

TEST_F(EngineCli, PrecisionFlagReachesTimeAndTrainAndIsChecked) {
  write("ip.prototxt", R"(
layer { name: "data" type: "Input" top: "data" top: "label"
  input_param { shape { dim: 4 dim: 20 } shape { dim: 4 } } }
layer { name: "ip" type: "InnerProduct" bottom: "data" top: "ip"
  inner_product_param { num_output: 3 weight_filler { type: "xavier" } } }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "ip" bottom: "label" top: "loss" }
)");
  std::string out;
  ASSERT_EQ(run("time --model=" + path("ip.prototxt") + " --iterations=1 --precision=bf16", &out),
            0)
      << out;
  EXPECT_CONTAINS(out, "Precision: bf16 for convolutions and inner products; this CPU: ");
  EXPECT_NE(run("time --model=" + path("ip.prototxt") + " --precision=int8", &out), 0);
  EXPECT_CONTAINS(out, "--precision: precision must be fp32, bf16 or fp16, got 'int8'");
  write("solver.prototxt", "net: \"" + path("ip.prototxt") +
                               "\"\nbase_lr: 0.1\nlr_policy: \"fixed\"\nmax_iter: 3\n"
                               "snapshot_after_train: false\nprecision: BF16\n");
  ASSERT_EQ(run("train --solver=" + path("solver.prototxt") + " --precision=fp16", &out), 0) << out;
  EXPECT_CONTAINS(out, "Optimization Done");
}

}  // namespace
}  // namespace engine
