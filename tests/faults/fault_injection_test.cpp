// Faults during training, on the engine command: killed with SIGKILL at random moments,
// snapshots that cannot be written (a file-size limit, a full file system), a database that is
// truncated or holds a bad record mid-epoch, and memory refused by `ulimit -v`. What must hold:
// every snapshot on disk loads, a run resumed after kills ends with weights byte-identical to
// an uninterrupted run's, each error names the file, record or layer, and no half-written
// snapshot is left behind.
//
// ENGINE_FAULT_KILLS sets the number of kills (4 by default; scripts/faults.sh runs 50) and
// ENGINE_FAULT_SEED the random moments.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <opencv2/core.hpp>
#include <random>
#include <thread>

#include "data/datum.hpp"
#include "data/db.hpp"
#include "engine.pb.h"
#include "gradient_checker.hpp"
#include "io/caffemodel.hpp"
#include "io/prototxt.hpp"

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define ENGINE_UNDER_SANITIZER 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define ENGINE_UNDER_SANITIZER 1
#endif
#endif

namespace engine {
namespace {

namespace fs = std::filesystem;
using testing::contains;

const std::string kEngine = std::string(ENGINE_BINARY_DIR) + "/bin/engine";

int env_int(const char* name, int fallback) {
  const char* value = std::getenv(name);
  return value ? std::atoi(value) : fallback;
}

// Crops, mirrors and dropout draw random numbers, and prefetch threads read ahead: an exact
// resume needs the data position and every random stream restored.
std::string net_text(const std::string& source) {
  return R"(
name: "faulty"
layer { name: "data" type: "Data" top: "data" top: "label"
  transform_param { scale: 0.00390625 mirror: true crop_size: 12 }
  data_param { source: ")" +
         source + R"(" backend: LMDB batch_size: 8 } }
layer { name: "conv" type: "Convolution" bottom: "data" top: "conv"
  convolution_param { num_output: 8 kernel_size: 3 weight_filler { type: "xavier" } } }
layer { name: "relu" type: "ReLU" bottom: "conv" top: "conv" }
layer { name: "pool" type: "Pooling" bottom: "conv" top: "pool"
  pooling_param { pool: MAX kernel_size: 2 stride: 2 } }
layer { name: "ip1" type: "InnerProduct" bottom: "pool" top: "ip1"
  inner_product_param { num_output: 1024 weight_filler { type: "xavier" } } }
layer { name: "drop" type: "Dropout" bottom: "ip1" top: "ip1" dropout_param { dropout_ratio: 0.3 } }
layer { name: "ip2" type: "InnerProduct" bottom: "ip1" top: "ip2"
  inner_product_param { num_output: 4 weight_filler { type: "xavier" } } }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "ip2" bottom: "label" top: "loss" }
)";
}

struct Finished {
  int status;  // exit status, or 128 + signal
  std::string log;
};

class FaultInjection : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("engine_faults_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override {
    if (!mounted_.empty()) ::umount(mounted_.c_str());
    fs::remove_all(dir_);
  }
  std::string path(const std::string& name) const { return (dir_ / name).string(); }

  // 64 gray 14 x 14 records of random pixels, labels 0..3; record `odd_index` (if any) is
  // `odd_value` instead.
  std::string make_db(const std::string& name, int odd_index = -1,
                      const std::string& odd_value = "") {
    const std::string db = path(name);
    DbWriter writer(db);
    std::mt19937 random(5);
    for (int i = 0; i < 64; ++i) {
      char key[16];
      std::snprintf(key, sizeof(key), "%08d", i);
      if (i == odd_index) {
        writer.put(key, odd_value);
        continue;
      }
      cv::Mat image(14, 14, CV_8UC1);
      for (int p = 0; p < 14 * 14; ++p) image.data[p] = static_cast<uint8_t>(random() & 255);
      Datum datum;
      image_to_datum(image, i % 4, &datum);
      writer.put(key, datum.SerializeAsString());
    }
    writer.commit();
    return db;
  }

  // A solver file over the net on `db`; snapshots under `prefix` every `every` iterations.
  std::string write_solver(const std::string& name, const std::string& db,
                           const std::string& prefix, int max_iter, int every) {
    std::ofstream(path(name + ".net")) << net_text(db);
    std::ofstream(path(name)) << "net: \"" << path(name + ".net") << "\"\n"
                              << "base_lr: 0.01 momentum: 0.9 weight_decay: 0.0005\n"
                              << "lr_policy: \"step\" gamma: 0.5 stepsize: 20 display: 10\n"
                              << "max_iter: " << max_iter << " snapshot: " << every << "\n"
                              << "snapshot_prefix: \"" << prefix << "\" random_seed: 7\n";
    return path(name);
  }

  // Starts the engine with `arguments`, its output to `log`; `limit` (if not RLIM_INFINITY)
  // caps `resource` in the child, as ulimit would.
  pid_t spawn(const std::vector<std::string>& arguments, const std::string& log,
              int resource = RLIMIT_FSIZE, rlim_t limit = RLIM_INFINITY) {
    const pid_t pid = ::fork();
    if (pid == 0) {
      const int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      ::dup2(fd, 1);
      ::dup2(fd, 2);
      if (limit != RLIM_INFINITY) {
        const rlimit value{limit, limit};
        ::setrlimit(resource, &value);
      }
      std::vector<char*> argv{const_cast<char*>(kEngine.c_str())};
      for (const std::string& argument : arguments)
        argv.push_back(const_cast<char*>(argument.c_str()));
      argv.push_back(nullptr);
      ::execv(kEngine.c_str(), argv.data());
      ::_exit(127);
    }
    return pid;
  }

  Finished wait_for(pid_t pid, const std::string& log) {
    int status = 0;
    ::waitpid(pid, &status, 0);
    return {WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status), read_file(log)};
  }

  Finished run(const std::vector<std::string>& arguments, int resource = RLIMIT_FSIZE,
               rlim_t limit = RLIM_INFINITY) {
    const std::string log = path("run.log");
    return wait_for(spawn(arguments, log, resource, limit), log);
  }

  // The snapshot files under `folder` (half-written ones too, named *.tmp.PID).
  static std::vector<std::string> files_in(const std::string& folder, const std::string& part) {
    std::vector<std::string> found;
    for (const auto& entry : fs::directory_iterator(folder)) {
      const std::string name = entry.path().filename().string();
      if (name.find(part) != std::string::npos) found.push_back(entry.path().string());
    }
    std::sort(found.begin(), found.end());
    return found;
  }

  // Every complete snapshot under `folder` loads: weights parse, each state parses and names
  // weights that exist. Returns how many snapshots there are.
  static int expect_snapshots_load(const std::string& folder) {
    int states = 0;
    for (const auto& entry : fs::directory_iterator(folder)) {
      const std::string file = entry.path().string();
      if (file.find(".tmp.") != std::string::npos) continue;
      if (entry.path().extension() == ".caffemodel") {
        EXPECT_NO_THROW(read_caffemodel(file)) << file;
      } else if (entry.path().extension() == ".solverstate") {
        SolverState state;
        EXPECT_NO_THROW(read_binary_file(file, &state)) << file;
        EXPECT_TRUE(fs::exists(state.learned_net())) << file << " names " << state.learned_net();
        ++states;
      }
    }
    return states;
  }

  fs::path dir_;
  std::string mounted_;
};

#define EXPECT_CONTAINS(text, part) EXPECT_TRUE(contains(text, part))

TEST_F(FaultInjection, KilledAtRandomMomentsResumesToTheSameWeights) {
  const std::string db = make_db("db");
  constexpr int kMaxIter = 60;
  fs::create_directories(path("straight"));
  fs::create_directories(path("killed"));
  const std::string straight =
      write_solver("straight.prototxt", db, path("straight/net"), kMaxIter, 5);
  const std::string killed = write_solver("killed.prototxt", db, path("killed/net"), kMaxIter, 5);

  const auto start = std::chrono::steady_clock::now();
  const Finished whole = run({"train", "--solver=" + straight});
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  ASSERT_EQ(whole.status, 0) << whole.log;
  const std::string expected = read_file(path("straight/net_iter_60.caffemodel"));

  const int kills = env_int("ENGINE_FAULT_KILLS", 4);
  std::mt19937 random(static_cast<unsigned>(env_int("ENGINE_FAULT_SEED", 2026)));
  std::uniform_real_distribution<double> moment(0.0, seconds);
  int live = 0, mid_write = 0, lives = 0;
  const std::vector<std::string> resume = {"train", "--solver=" + killed, "--snapshot=latest"};
  const std::string log = path("killed.log");
  for (int k = 0; k < kills; ++k) {
    const pid_t pid = spawn(resume, log);
    std::this_thread::sleep_for(std::chrono::duration<double>(moment(random)));
    const bool running = ::kill(pid, SIGKILL) == 0 && ::waitpid(pid, nullptr, WNOHANG) == 0;
    const Finished end = wait_for(pid, log);
    if (end.status == 128 + SIGKILL) {
      live += running;
      mid_write += !files_in(path("killed"), ".tmp.").empty();
    } else {
      // It finished first: that life's weights must match, then training starts over.
      ASSERT_EQ(end.status, 0) << end.log;
      EXPECT_EQ(read_file(path("killed/net_iter_60.caffemodel")), expected)
          << "a run resumed after kills must end with the uninterrupted run's weights";
      ++lives;
      fs::remove_all(path("killed"));
      fs::create_directories(path("killed"));
    }
    expect_snapshots_load(path("killed"));
  }
  const Finished last = run(resume);
  ASSERT_EQ(last.status, 0) << last.log;
  ++lives;
  EXPECT_EQ(read_file(path("killed/net_iter_60.caffemodel")), expected)
      << "a run resumed after kills must end with the uninterrupted run's weights";
  EXPECT_EQ(expect_snapshots_load(path("killed")), kMaxIter / 5);
  EXPECT_TRUE(files_in(path("killed"), ".tmp.").empty()) << "half-written snapshots were left";
  std::printf(
      "kill -9 figures: %d kills (%d on a running engine, %d while a snapshot file was "
      "being written), %d runs completed after kills, all with the uninterrupted run's "
      "weights; a whole run takes %.2f s\n",
      kills, live, mid_write, lives, seconds);
}

TEST_F(FaultInjection, SnapshotThatCannotBeWrittenStopsTheRunAndKeepsThePreviousOne) {
  const std::string db = make_db("db");
  const std::string solver = write_solver("solver.prototxt", db, path("net"), 10, 5);
  ASSERT_EQ(run({"train", "--solver=" + solver}).status, 0);
  const std::string model = read_file(path("net_iter_10.caffemodel"));
  const std::string state = read_file(path("net_iter_10.solverstate"));

  // Files may not grow past 64 KB (the weights take about 820 KB): the next snapshot fails.
  const Finished full = run({"train", "--solver=" + solver, "--snapshot=latest", "--iterations=20"},
                            RLIMIT_FSIZE, 64 << 10);
  EXPECT_EQ(full.status, 1) << full.log;
  EXPECT_CONTAINS(full.log, "cannot write " + path("net_iter_15.caffemodel") + ": File too large");
  EXPECT_EQ(read_file(path("net_iter_10.caffemodel")), model);
  EXPECT_EQ(read_file(path("net_iter_10.solverstate")), state);
  EXPECT_FALSE(fs::exists(path("net_iter_15.caffemodel")));
  EXPECT_FALSE(fs::exists(path("net_iter_15.solverstate")));
  EXPECT_TRUE(files_in(dir_.string(), ".tmp.").empty()) << "a half-written snapshot was left";
  EXPECT_EQ(expect_snapshots_load(dir_.string()), 2);

  // Room again: the run goes on from iteration 10.
  const Finished resumed =
      run({"train", "--solver=" + solver, "--snapshot=latest", "--iterations=20"});
  EXPECT_EQ(resumed.status, 0) << resumed.log;
  EXPECT_CONTAINS(resumed.log,
                  "Restoring previous solver status from " + path("net_iter_10.solverstate"));
  EXPECT_TRUE(fs::exists(path("net_iter_20.caffemodel")));

  // A file system that is really full (a small tmpfs; mounting it needs root).
  const std::string small = path("small");
  fs::create_directories(small);
  const size_t room = model.size() + state.size() + (32 << 10);
  if (::mount("tmpfs", small.c_str(), "tmpfs", 0, ("size=" + std::to_string(room)).c_str()) != 0) {
    std::printf(
        "no tmpfs (mount needs root): the full-disk case ran with the file-size limit only\n");
    return;
  }
  mounted_ = small;
  const std::string on_tmpfs = write_solver("tmpfs.prototxt", db, small + "/net", 10, 5);
  const Finished no_space = run({"train", "--solver=" + on_tmpfs});
  EXPECT_EQ(no_space.status, 1) << no_space.log;
  EXPECT_CONTAINS(no_space.log, "cannot write " + small + "/net_iter_10.");
  EXPECT_CONTAINS(no_space.log, "No space left on device");
  EXPECT_TRUE(files_in(small, ".tmp.").empty()) << "a half-written snapshot was left";
  EXPECT_EQ(expect_snapshots_load(small), 1);
}

TEST_F(FaultInjection, BadDatabaseStopsTrainingNamingTheRecord) {
  // Record 40 (iteration 5 at batch 8) is a 9 x 9 image among 14 x 14 ones, too small for the
  // 12 x 12 crop; snapshots every 2.
  cv::Mat odd(9, 9, CV_8UC1, cv::Scalar(3));
  Datum datum;
  image_to_datum(odd, 1, &datum);
  const std::string db = make_db("db", 40, datum.SerializeAsString());
  const std::string solver = write_solver("solver.prototxt", db, path("net"), 20, 2);
  const Finished wrong_size = run({"train", "--solver=" + solver});
  EXPECT_EQ(wrong_size.status, 1) << wrong_size.log;
  EXPECT_CONTAINS(wrong_size.log, "layer data (Data)");
  EXPECT_CONTAINS(wrong_size.log, "record '00000040' of " + db);
  EXPECT_CONTAINS(wrong_size.log, "crop_size 12 is larger than the image (1 x 9 x 9)");
  EXPECT_TRUE(files_in(dir_.string(), ".tmp.").empty());
  EXPECT_EQ(expect_snapshots_load(dir_.string()), 2);  // iterations 2 and 4
  EXPECT_FALSE(fs::exists(path("net_iter_6.caffemodel")));

  // A value that is no Datum, mid-epoch.
  const std::string garbage = make_db("garbage", 40, std::string("\xff\xff\xff\xff", 4));
  const Finished not_datum =
      run({"train", "--solver=" + write_solver("garbage.prototxt", garbage, path("g"), 20, 2)});
  EXPECT_EQ(not_datum.status, 1) << not_datum.log;
  EXPECT_CONTAINS(not_datum.log, "record '00000040' of " + garbage);
  EXPECT_CONTAINS(not_datum.log, "not a serialized Datum");

  // A database cut short (an interrupted copy): refused when it is opened.
  const std::string cut = make_db("cut");
  const fs::path data = fs::path(cut) / "data.mdb";
  fs::resize_file(data, fs::file_size(data) / 2);
  const Finished truncated =
      run({"train", "--solver=" + write_solver("cut.prototxt", cut, path("c"), 20, 2)});
  EXPECT_EQ(truncated.status, 1) << truncated.log;
  EXPECT_CONTAINS(truncated.log, cut + ": data.mdb is truncated");
  EXPECT_TRUE(files_in(dir_.string(), ".tmp.").empty());
}

TEST_F(FaultInjection, MemoryRefusedByUlimitNamesTheLayer) {
#ifdef ENGINE_UNDER_SANITIZER
  GTEST_SKIP() << "the sanitizers reserve terabytes of address space; ulimit -v stops them first";
#endif
  // fc needs 4 GB for its weights; the process may map 3 GB, of which the engine's libraries
  // (CUDA's included) take about 1.4 GB.
  std::ofstream(path("wide.prototxt"))
      << "name: 'wide'\n"
         "layer { name: 'x' type: 'Input' top: 'x' input_param { shape { dim: 4 dim: 8192 } } }\n"
         "layer { name: 'fc' type: 'InnerProduct' bottom: 'x' top: 'y'\n"
         "        inner_product_param { num_output: 131072 } }\n";
  const Finished refused = run({"time", "--model=" + path("wide.prototxt"), "--iterations=1"},
                               RLIMIT_AS, rlim_t(3) << 30);
  EXPECT_EQ(refused.status, 1) << refused.log;
  EXPECT_CONTAINS(refused.log, "layer fc (InnerProduct): setup: out of host memory");
  EXPECT_CONTAINS(refused.log, "cannot allocate 4096 MB");
}

}  // namespace
}  // namespace engine
