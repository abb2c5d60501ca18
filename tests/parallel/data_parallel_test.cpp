// Data-parallel training: the data shards, then end-to-end runs of `engine train` under mpirun
// against one process -- the same weights as one process with the whole batch, exact resumes,
// and the faults (differing files, a corrupt record, a NaN, a stopped rank, a killed rank).
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <limits>
#include <random>
#include <sstream>

#include "core/context.hpp"
#include "core/net.hpp"
#include "data/db.hpp"
#include "io/caffemodel.hpp"
#include "io/prototxt.hpp"

namespace engine {
namespace {

namespace fs = std::filesystem;

const std::string kEngine = std::string(ENGINE_BINARY_DIR) + "/bin/engine";

#define EXPECT_CONTAINS(text, part) \
  EXPECT_NE((text).find(part), std::string::npos) << "expected '" << (part) << "' in:\n" << (text)

bool have_mpirun() { return std::system("command -v mpirun >/dev/null 2>&1") == 0; }

// A 1 x 6 x 6 record whose pixels come from `seed`, labelled seed % 4.
Datum record(int seed) {
  std::mt19937 rng(seed);
  Datum datum;
  datum.set_channels(1);
  datum.set_height(6);
  datum.set_width(6);
  std::string pixels(36, '\0');
  for (char& pixel : pixels) pixel = static_cast<char>(rng() % 256);
  datum.set_data(pixels);
  datum.set_label(seed % 4);
  return datum;
}

std::string key_of(int i) {
  char key[16];
  std::snprintf(key, sizeof(key), "%08d", i);
  return key;
}

// A small convolutional classifier; `extra` goes inside the data layer's transform_param, and
// `dropout` adds a Dropout layer.
std::string net_text(const std::string& source, int batch, const std::string& transform,
                     bool dropout) {
  std::ostringstream net;
  net << "name: 'small'\n"
      << "layer { name: 'data' type: 'Data' top: 'data' top: 'label'\n"
      << "  transform_param { scale: 0.00390625 " << transform << " }\n"
      << "  data_param { source: '" << source << "' batch_size: " << batch
      << " backend: LMDB threads: 1 } }\n"
      << "layer { name: 'conv' type: 'Convolution' bottom: 'data' top: 'conv'\n"
      << "  convolution_param { num_output: 4 kernel_size: 3 weight_filler { type: 'xavier' }\n"
      << "    bias_filler { type: 'constant' value: 0.1 } } }\n"
      << "layer { name: 'relu' type: 'ReLU' bottom: 'conv' top: 'conv' }\n"
      << "layer { name: 'pool' type: 'Pooling' bottom: 'conv' top: 'pool'\n"
      << "  pooling_param { pool: MAX kernel_size: 2 stride: 2 } }\n"
      << "layer { name: 'ip1' type: 'InnerProduct' bottom: 'pool' top: 'ip1'\n"
      << "  inner_product_param { num_output: 12 weight_filler { type: 'xavier' } } }\n"
      << "layer { name: 'relu1' type: 'ReLU' bottom: 'ip1' top: 'ip1' }\n";
  if (dropout) {
    net << "layer { name: 'drop' type: 'Dropout' bottom: 'ip1' top: 'ip1'"
        << " dropout_param { dropout_ratio: 0.3 } }\n";
  }
  net << "layer { name: 'ip2' type: 'InnerProduct' bottom: 'ip1' top: 'ip2'\n"
      << "  inner_product_param { num_output: 4 weight_filler { type: 'xavier' } } }\n"
      << "layer { name: 'loss' type: 'SoftmaxWithLoss' bottom: 'ip2' bottom: 'label'"
      << " top: 'loss' }\n";
  return net.str();
}

class DataParallelRun : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("engine_dp_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_ / "snaps");
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::string path(const std::string& name) const { return (dir_ / name).string(); }
  void write(const std::string& name, const std::string& text) {
    std::ofstream(dir_ / name) << text;
  }

  // `count` records; `replace` swaps some records' values for others (corrupt ones).
  std::string make_db(int count, const std::map<int, std::string>& replace = {}) {
    const std::string db = path("db");
    DbWriter writer(db);
    for (int i = 0; i < count; ++i) {
      const auto found = replace.find(i);
      writer.put(key_of(i),
                 found != replace.end() ? found->second : record(i).SerializeAsString());
    }
    writer.commit();
    return db;
  }

  // Writes NAME.prototxt (the net, at batch `batch`) and NAME_solver.prototxt.
  std::string make_solver(const std::string& name, int batch, int max_iter,
                          const std::string& extra = "", const std::string& transform = "",
                          bool dropout = false) {
    write(name + ".prototxt", net_text(path("db"), batch, transform, dropout));
    write(name + "_solver.prototxt",
          "net: '" + path(name + ".prototxt") + "'\nbase_lr: 0.05\nmomentum: 0.9\n"
          "weight_decay: 0.0005\nlr_policy: 'fixed'\ndisplay: 5\nmax_iter: " +
              std::to_string(max_iter) + "\nsnapshot_prefix: '" + path("snaps/" + name) +
              "'\nrandom_seed: 7\n" + extra);
    return path(name + "_solver.prototxt");
  }

  // Runs a shell command line; returns its exit code and fills `output` (stdout and stderr).
  int shell(const std::string& command, std::string* output) {
    const std::string log = path("log.txt");
    write("run.sh", command + "\n");
    const int status =
        std::system(("timeout 170 bash " + path("run.sh") + " >" + log + " 2>&1").c_str());
    *output = read_file(log);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  }

  std::string mpirun(int ranks, const std::string& extra = "") {
    return "mpirun --allow-run-as-root --oversubscribe -np " + std::to_string(ranks) + " " +
           extra + " " + kEngine + " train ";
  }

  fs::path dir_;
};

// Largest |a - b| over a blob, relative to the largest |b|, across every blob of two weight files.
double relative_difference(const std::string& a_file, const std::string& b_file) {
  const NetParameter a = read_caffemodel(a_file), b = read_caffemodel(b_file);
  EXPECT_EQ(a.layer_size(), b.layer_size());
  double worst = 0;
  for (int l = 0; l < std::min(a.layer_size(), b.layer_size()); ++l) {
    EXPECT_EQ(a.layer(l).blobs_size(), b.layer(l).blobs_size()) << a.layer(l).name();
    for (int j = 0; j < std::min(a.layer(l).blobs_size(), b.layer(l).blobs_size()); ++j) {
      const BlobProto& x = a.layer(l).blobs(j);
      const BlobProto& y = b.layer(l).blobs(j);
      EXPECT_EQ(x.data_size(), y.data_size());
      double difference = 0, scale = 0;
      for (int k = 0; k < std::min(x.data_size(), y.data_size()); ++k) {
        difference = std::max(difference, std::abs(double(x.data(k)) - y.data(k)));
        scale = std::max(scale, std::abs(double(y.data(k))));
      }
      worst = std::max(worst, difference / std::max(scale, 1e-12));
    }
  }
  return worst;
}

TEST_F(DataParallelRun, TrainDataLayersReadTheirShardOnly) {
  const std::string db = make_db(10);
  std::vector<float> seen;
  for (int shard = 0; shard < 2; ++shard) {
    Context::set_data_shard(shard, 2);
    for (Phase phase : {TRAIN, TEST}) {
      NetParameter param;
      parse_text(net_text(db, 3, "", false), "net", &param);
      param.mutable_state()->set_phase(phase);
      Net net(param);
      std::vector<float> labels;
      for (int batch = 0; batch < 2; ++batch) {
        net.forward();
        const Blob& label = *net.blob_by_name("label");
        labels.insert(labels.end(), label.cpu_data(), label.cpu_data() + label.count());
      }
      // Records 0..9 are labelled i % 4; shard s of 2 reads records s, s + 2, ... (wrapping).
      std::vector<float> expected;
      for (int i = 0; i < 6; ++i) {
        const int record = phase == TRAIN ? (2 * i + shard) % 10 : i;
        expected.push_back(static_cast<float>(record % 4));
      }
      EXPECT_EQ(labels, expected) << "shard " << shard << " phase " << phase;
    }
  }
  Context::set_data_shard(0, 1);
}

// N ranks at batch b end where one process at batch N x b does, after 20 SGD iterations with
// momentum and weight decay; over shared memory and over TCP.
TEST_F(DataParallelRun, RanksMatchOneProcessWithTheWholeBatch) {
  if (!have_mpirun()) GTEST_SKIP() << "mpirun is not installed";
  make_db(64);
  const std::string end = "\nsnapshot_after_train: true\n";
  const std::string one = make_solver("one", 8, 20, end);
  const std::string two = make_solver("two", 4, 20, end);
  const std::string four = make_solver("four", 2, 20, end);
  std::string output;
  ASSERT_EQ(shell(kEngine + " train --solver=" + one, &output), 0) << output;
  ASSERT_EQ(shell(mpirun(2) + "--solver=" + two, &output), 0) << output;
  EXPECT_CONTAINS(output, "Data parallel: world size 2, effective batch 2 x 4 x 1");
  EXPECT_CONTAINS(output, "Gradient exchange over 20 iterations");
  ASSERT_EQ(shell(mpirun(4, "--mca btl tcp,self") + "--solver=" + four, &output), 0) << output;
  EXPECT_CONTAINS(output, "world size 4");
  const std::string reference = path("snaps/one_iter_20.caffemodel");
  EXPECT_LE(relative_difference(path("snaps/two_iter_20.caffemodel"), reference), 1e-5);
  EXPECT_LE(relative_difference(path("snaps/four_iter_20.caffemodel"), reference), 1e-5);
  // And the weights moved: the comparison is not of two untrained nets.
  const std::string untrained = make_solver("zero", 8, 0, end);
  ASSERT_EQ(shell(kEngine + " train --solver=" + untrained, &output), 0) << output;
  EXPECT_GT(relative_difference(path("snaps/zero_iter_0.caffemodel"), reference), 1e-3);
}

// A resumed 2-rank run ends with the same bytes as an uninterrupted one: every rank's data
// position, mirror draws and dropout masks continue.
TEST_F(DataParallelRun, ResumeOnTheSameRanksIsExact) {
  if (!have_mpirun()) GTEST_SKIP() << "mpirun is not installed";
  make_db(40);
  const std::string solver =
      make_solver("resume", 4, 20, "snapshot: 10\n", "mirror: true crop_size: 5", true);
  std::string output;
  ASSERT_EQ(shell(mpirun(2) + "--solver=" + solver, &output), 0) << output;
  const std::string final_weights = read_file(path("snaps/resume_iter_20.caffemodel"));
  SolverState state;
  read_binary_file(path("snaps/resume_iter_10.solverstate"), &state);
  EXPECT_EQ(state.world_size(), 2);
  EXPECT_EQ(state.worker_state_size(), 2);
  ASSERT_EQ(shell(mpirun(2) + "--solver=" + solver +
                      " --snapshot=" + path("snaps/resume_iter_10.solverstate"),
                  &output),
            0)
      << output;
  EXPECT_TRUE(read_file(path("snaps/resume_iter_20.caffemodel")) == final_weights)
      << "the resumed run's weights differ from the uninterrupted run's";
}

TEST_F(DataParallelRun, RanksWithDifferentFilesAreRefused) {
  if (!have_mpirun()) GTEST_SKIP() << "mpirun is not installed";
  make_db(16);
  const std::string a = make_solver("a", 4, 5);
  const std::string b = make_solver("b", 4, 5, "clip_gradients: 10\n");
  std::string output;
  EXPECT_NE(shell("mpirun --allow-run-as-root --oversubscribe -np 1 " + kEngine +
                      " train --solver=" + a + " : -np 1 " + kEngine + " train --solver=" + b,
                  &output),
            0);
  EXPECT_CONTAINS(output, "rank 1 would train something else than rank 0");
}

// A bad record that only rank 1 reads (odd entries are rank 1's) ends every rank with a message
// naming rank 1, the database and the key; so does a NaN in rank 1's data.
TEST_F(DataParallelRun, AFailingRankStopsEveryRank) {
  if (!have_mpirun()) GTEST_SKIP() << "mpirun is not installed";
  std::string output;
  make_db(16, {{5, "not a datum"}});
  const std::string solver = make_solver("bad", 4, 10);
  EXPECT_NE(shell(mpirun(2) + "--solver=" + solver, &output), 0);
  EXPECT_CONTAINS(output, "engine train: error: rank 1: ");
  EXPECT_CONTAINS(output, "record '00000005' of " + path("db"));

  fs::remove_all(path("db"));
  Datum nan = record(3);
  nan.clear_data();
  for (int i = 0; i < 36; ++i) nan.add_float_data(std::numeric_limits<float>::quiet_NaN());
  make_db(16, {{3, nan.SerializeAsString()}});
  EXPECT_NE(shell(mpirun(2) + "--solver=" + solver, &output), 0);
  EXPECT_CONTAINS(output, "engine train: error: rank 1: iteration 0: the loss is ");
  EXPECT_CONTAINS(output, "the first non-finite value is in the output 'data' of layer data");
}

// Shell lines that start a long 2-rank run in the background, wait for iteration 10 and set
// RANK1 to the process id of rank 1.
std::string start_and_find_rank1(const std::string& launch, const std::string& log) {
  return launch + " >" + log + " 2>&1 &\n"
         "MPIRUN=$!\n"
         "for i in $(seq 600); do grep -q 'Iteration 10 ' " + log + " && break; sleep 0.1; done\n"
         "RANK1=''\n"
         "for p in /proc/[0-9]*; do\n"
         "  [ \"$(cut -d' ' -f4 $p/stat 2>/dev/null)\" = \"$MPIRUN\" ] || continue\n"
         "  tr '\\0' '\\n' <$p/environ | grep -qx OMPI_COMM_WORLD_RANK=1 && RANK1=${p#/proc/}\n"
         "done\n"
         "[ -n \"$RANK1\" ] || { echo 'rank 1 not found'; kill $MPIRUN; exit 3; }\n";
}

// A rank that stops answering (SIGSTOP) makes the others' collective time out: the job ends
// with one message naming the rank that never arrived and what the others waited at.
TEST_F(DataParallelRun, AStalledRankTimesOutNamingIt) {
  if (!have_mpirun()) GTEST_SKIP() << "mpirun is not installed";
  make_db(64);
  const std::string solver = make_solver("stall", 4, 1000000);
  std::string output;
  const int status =
      shell(start_and_find_rank1(mpirun(2) + "--collective_timeout=3 --solver=" + solver,
                                 path("train.log")) +
                "kill -STOP $RANK1\n"
                "wait $MPIRUN; code=$?\n"
                "kill -KILL $RANK1 2>/dev/null\n"
                "cat " + path("train.log") + "\nexit $code\n",
            &output);
  EXPECT_NE(status, 0);
  EXPECT_NE(status, 3) << output;
  EXPECT_NE(status, 124) << "the job hung:\n" << output;
  EXPECT_CONTAINS(output, "rank 0: ");
  EXPECT_CONTAINS(output, "did not complete within 3 s (--collective_timeout); rank 1 never arrived");
}

// kill -9 of one rank mid-run ends the others: mpirun returns and no rank is left.
TEST_F(DataParallelRun, AKilledRankEndsTheJob) {
  if (!have_mpirun()) GTEST_SKIP() << "mpirun is not installed";
  make_db(64);
  const std::string solver = make_solver("killed", 4, 1000000);
  std::string output;
  const int status = shell(start_and_find_rank1(mpirun(2) + "--solver=" + solver,
                                                path("train.log")) +
                               "kill -KILL $RANK1\n"
                               "wait $MPIRUN; code=$?\n"
                               "sleep 1\n"
                               "for p in /proc/[0-9]*; do\n"
                               "  c=$(tr '\\0' ' ' <$p/cmdline 2>/dev/null)\n"
                               "  [[ \"$c\" == *'bin/engine train'*killed_solver* ]] && "
                               "echo 'a rank is left'\n"
                               "done\n"
                               "exit $code\n",
                           &output);
  EXPECT_NE(status, 0);
  EXPECT_NE(status, 3) << output;
  EXPECT_NE(status, 124) << "the job hung:\n" << output;
  EXPECT_EQ(output.find("a rank is left"), std::string::npos) << output;
}

}  // namespace
}  // namespace engine
