// Data-parallel training: the data shards, then end-to-end runs of `engine train` under mpirun
// against one process -- the same weights as one process with the whole batch, exact resumes,
// and the faults (differing files, a corrupt record, a NaN, a stopped rank, a killed rank).
#include <limits>

#include "core/context.hpp"
#include "core/net.hpp"
#include "parallel_fixture.hpp"

namespace engine {
namespace {

using namespace parallel_test;

class DataParallelRun : public TrainingRun {};

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

// --gpu naming devices that are not there: one line saying so, exit status 1.
TEST_F(DataParallelRun, MissingGpusAreNamed) {
  make_db(16);
  const std::string solver = make_solver("gpus", 4, 5);
  std::string output;
  EXPECT_EQ(shell(kEngine + " train --solver=" + solver + " --gpu=0,7", &output), 1);
  EXPECT_TRUE(output.find("--gpu=0,7: no CUDA device is available") != std::string::npos ||
              output.find("--gpu=0,7: GPU 7 does not exist") != std::string::npos)
      << output;
  EXPECT_EQ(shell(kEngine + " train --solver=" + solver + " --gpu=first", &output), 1);
  EXPECT_CONTAINS(output, "--gpu must be device ids (0 or 0,1) or all, got 'first'");
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
