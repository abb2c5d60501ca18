// Model parallelism: where the rewrite puts the exchanges (the AlexNet paper's figure), its
// refusals, the loss and every gradient of a split net against the whole net (this program run
// under mpirun by the model_parallel_mpi test), and `engine train --model_parallel` with worker
// groups against one process.
#include <random>

#include "core/context.hpp"
#include "core/net.hpp"
#include "io/upgrade.hpp"
#include "parallel/model_parallel.hpp"
#include "parallel/mpi_communicator.hpp"
#include "parallel_fixture.hpp"

namespace engine {
namespace {

using namespace parallel_test;

const std::string kAlexNet = std::string(ENGINE_SOURCE_DIR) + "/models/alexnet/train_val.prototxt";

const LayerParameter* find_layer(const NetParameter& net, const std::string& name) {
  for (const LayerParameter& layer : net.layer()) {
    if (layer.name() == name) return &layer;
  }
  return nullptr;
}

// The layer that feeds `name`'s first bottom, or null.
const LayerParameter* producer_of_input(const NetParameter& net, const std::string& name) {
  const LayerParameter* consumer = find_layer(net, name);
  if (!consumer) return nullptr;
  const LayerParameter* producer = nullptr;
  for (const LayerParameter& layer : net.layer()) {
    if (&layer == consumer) break;
    for (const std::string& top : layer.top()) {
      if (top == consumer->bottom(0)) producer = &layer;
    }
  }
  return producer;
}

TEST(ModelParallelSplit, AlexNetOverTwoWorkersIsThePapersFigure) {
  const NetParameter net = read_net_text_file(kAlexNet);
  const SplitNet part = split_net(net, 2, 1, kAlexNet);
  // conv2, conv4 and conv5 read only their worker's channels: no exchange before them.
  for (const std::string name : {"conv2", "conv4", "conv5"}) {
    const LayerParameter* producer = producer_of_input(part.net, name);
    ASSERT_NE(producer, nullptr) << name;
    EXPECT_NE(producer->type(), "GatherChannels") << name;
    EXPECT_EQ(find_layer(part.net, name)->convolution_param().group(), 1u) << name;
  }
  // conv3, fc6, fc7 and fc8 read every channel: an all-gather before each.
  for (const std::string name : {"conv3", "fc6", "fc7", "fc8"}) {
    const LayerParameter* producer = producer_of_input(part.net, name);
    ASSERT_NE(producer, nullptr) << name;
    EXPECT_EQ(producer->type(), "GatherChannels") << name;
    EXPECT_TRUE(producer->channel_exchange_param().partial_gradients()) << name;
    EXPECT_EQ(producer->channel_exchange_param().worker(), 1);
  }
  // The input is every worker's whole: conv1 reads it directly.
  EXPECT_EQ(producer_of_input(part.net, "conv1")->type(), "Data");
  // Every worker holds half of each layer's filters.
  EXPECT_EQ(find_layer(part.net, "conv1")->convolution_param().num_output(), 48u);
  EXPECT_EQ(find_layer(part.net, "conv2")->convolution_param().num_output(), 128u);
  EXPECT_EQ(find_layer(part.net, "fc6")->inner_product_param().num_output(), 2048u);
  EXPECT_EQ(find_layer(part.net, "fc8")->inner_product_param().num_output(), 500u);
  EXPECT_EQ(part.split_layers,
            (std::set<std::string>{"conv1", "conv2", "conv3", "conv4", "conv5", "fc6", "fc7",
                                   "fc8"}));
  // LRN across channels needs its neighbours' edge channels only: a halo of size / 2, then
  // the worker's slice of the result.
  const LayerParameter* halo = producer_of_input(part.net, "norm1");
  EXPECT_EQ(halo->type(), "HaloChannels");
  EXPECT_EQ(halo->channel_exchange_param().halo(), 2);
  EXPECT_EQ(producer_of_input(part.net, "pool1")->type(), "KeepChannels");
  // The loss runs whole on every worker, so its gradient is complete: no reduce-scatter.
  const LayerParameter* gather = producer_of_input(part.net, "loss");
  ASSERT_EQ(gather->type(), "GatherChannels");
  EXPECT_FALSE(gather->channel_exchange_param().partial_gradients());
  // Both phases build.
  for (Phase phase : {TRAIN, TEST}) {
    NetParameter filtered = part.net;
    filtered.mutable_state()->set_phase(phase);
    EXPECT_GT(filter_net(filtered).layer_size(), 0);
  }
}

// Krizhevsky's hybrid: convolutions whole on each worker's images, the fully connected layers
// split over the group's images.
TEST(ModelParallelSplit, TheHybridSplitsOnlyTheFullyConnectedLayers) {
  const NetParameter net = read_net_text_file(kAlexNet);
  const SplitNet part = split_net(net, 2, 0, kAlexNet, true);
  EXPECT_EQ(part.split_layers, (std::set<std::string>{"fc6", "fc7", "fc8"}));
  EXPECT_EQ(find_layer(part.net, "conv2")->convolution_param().group(), 2u);
  EXPECT_EQ(find_layer(part.net, "conv2")->convolution_param().num_output(), 256u);
  for (const std::string name : {"conv1", "norm1", "conv2", "conv3", "conv4", "conv5"}) {
    EXPECT_NE(producer_of_input(part.net, name)->type(), "GatherChannels") << name;
  }
  const LayerParameter* images = producer_of_input(part.net, "fc6");
  ASSERT_EQ(images->type(), "GatherChannels");
  EXPECT_EQ(images->channel_exchange_param().axis(), 0);
  EXPECT_TRUE(images->channel_exchange_param().partial_gradients());
  for (const std::string name : {"fc7", "fc8"}) {
    EXPECT_EQ(producer_of_input(part.net, name)->channel_exchange_param().axis(), 1) << name;
  }
  // The loss reads the group's labels too.
  const LayerParameter* loss = find_layer(part.net, "loss");
  EXPECT_EQ(loss->bottom(1), "label_all_images");
}

TEST(ModelParallelSplit, RefusesWhatItCannotDivide) {
  const NetParameter net = read_net_text_file(kAlexNet);
  try {
    split_net(net, 3, 0, kAlexNet);
    FAIL() << "three workers cannot divide conv2's 256 filters";
  } catch (const Error& error) {
    EXPECT_CONTAINS(std::string(error.what()),
                    "layer conv2 (Convolution) cannot be split over 3 workers: its num_output "
                    "256 is not a multiple of 3");
  }
  NetParameter batch_norm;
  parse_text(
      "layer { name: 'in' type: 'Input' top: 'x' input_param { shape { dim: 2 dim: 4 } } }\n"
      "layer { name: 'bn' type: 'BatchNorm' bottom: 'x' top: 'y' }\n",
      "bn.prototxt", &batch_norm);
  try {
    split_net(batch_norm, 2, 0, "bn.prototxt");
    FAIL() << "BatchNorm cannot be split";
  } catch (const Error& error) {
    EXPECT_CONTAINS(std::string(error.what()), "bn.prototxt: layer bn (BatchNorm) cannot be split");
  }
}

// ---- under mpirun: the split net against the whole net ------------------------------------

const char* kSmallAlexNet = R"(
name: "small_alexnet"
layer { name: "data" type: "Input" top: "data" top: "label"
  input_param { shape { dim: 4 dim: 3 dim: 15 dim: 15 } shape { dim: 4 } } }
layer { name: "conv1" type: "Convolution" bottom: "data" top: "conv1"
  convolution_param { num_output: 8 kernel_size: 3 weight_filler { type: "xavier" }
    bias_filler { type: "constant" value: 0.1 } } }
layer { name: "relu1" type: "ReLU" bottom: "conv1" top: "conv1" }
layer { name: "norm1" type: "LRN" bottom: "conv1" top: "norm1"
  lrn_param { local_size: 3 alpha: 0.5 beta: 0.75 k: 2 } }
layer { name: "pool1" type: "Pooling" bottom: "norm1" top: "pool1"
  pooling_param { pool: MAX kernel_size: 3 stride: 2 } }
layer { name: "conv2" type: "Convolution" bottom: "pool1" top: "conv2"
  convolution_param { num_output: 8 kernel_size: 3 pad: 1 group: 2
    weight_filler { type: "xavier" } bias_filler { type: "constant" value: 0.1 } } }
layer { name: "relu2" type: "ReLU" bottom: "conv2" top: "conv2" }
layer { name: "conv3" type: "Convolution" bottom: "conv2" top: "conv3"
  convolution_param { num_output: 8 kernel_size: 3 pad: 1 weight_filler { type: "xavier" } } }
layer { name: "relu3" type: "ReLU" bottom: "conv3" top: "conv3" }
layer { name: "conv4" type: "Convolution" bottom: "conv3" top: "conv4"
  convolution_param { num_output: 8 kernel_size: 3 pad: 1 group: 2
    weight_filler { type: "xavier" } } }
layer { name: "pool4" type: "Pooling" bottom: "conv4" top: "pool4"
  pooling_param { pool: MAX kernel_size: 2 stride: 2 } }
layer { name: "fc6" type: "InnerProduct" bottom: "pool4" top: "fc6"
  inner_product_param { num_output: 16 weight_filler { type: "xavier" }
    bias_filler { type: "constant" value: 0.1 } } }
layer { name: "relu6" type: "ReLU" bottom: "fc6" top: "fc6" }
layer { name: "fc7" type: "InnerProduct" bottom: "fc6" top: "fc7"
  inner_product_param { num_output: 12 weight_filler { type: "xavier" } } }
layer { name: "fc8" type: "InnerProduct" bottom: "fc7" top: "fc8"
  inner_product_param { num_output: 4 weight_filler { type: "xavier" } } }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "fc8" bottom: "label" top: "loss" }
)";

void fill_inputs(Net& net) {
  std::mt19937 rng(11);
  std::normal_distribution<float> normal;
  Blob& data = *net.blob_by_name("data");
  for (int64_t i = 0; i < data.count(); ++i) data.mutable_cpu_data()[i] = normal(rng);
  Blob& label = *net.blob_by_name("label");
  for (int64_t i = 0; i < label.count(); ++i) label.mutable_cpu_data()[i] = float(i % 4);
}

double relative(const float* a, const float* b, int64_t n) {
  double difference = 0, scale = 0;
  for (int64_t i = 0; i < n; ++i) {
    difference = std::max(difference, std::abs(double(a[i]) - b[i]));
    scale = std::max(scale, std::abs(double(b[i])));
  }
  return difference / std::max(scale, 1e-12);
}

// The whole net on 4 images against its split over the ranks: in the paper's split every worker
// runs the 4 images; in the hybrid each runs its share of them through the convolutions.
void expect_split_matches_whole(const char* net_text, bool hybrid) {
  std::unique_ptr<MpiCommunicator> world = MpiCommunicator::world(120);
  const int workers = world->size(), worker = world->rank();
  Context::set_mode(Mode::CPU);
  NetParameter param;
  parse_text(net_text, "small_alexnet", &param);
  param.mutable_state()->set_phase(TRAIN);

  Context::set_seed(5);
  Net whole(param);
  fill_inputs(whole);
  const float whole_loss = whole.forward_backward();
  NetParameter weights;
  whole.to_proto(&weights);

  if (hybrid) {
    for (BlobShape& shape : *param.mutable_layer(0)->mutable_input_param()->mutable_shape()) {
      shape.set_dim(0, shape.dim(0) / workers);
    }
  }
  const SplitNet part = split_net(param, workers, worker, "small_alexnet", hybrid);
  Context::set_model_group(world.get());
  Net mine(part.net);
  copy_weight_slices(weights, part.split_layers, workers, worker, &mine);
  if (hybrid) {
    // This worker's images: its rows of the whole batch.
    for (const std::string input : {"data", "label"}) {
      Blob& blob = *mine.blob_by_name(input);
      std::copy_n(whole.blob_by_name(input)->cpu_data() + worker * blob.count(), blob.count(),
                  blob.mutable_cpu_data());
    }
  } else {
    fill_inputs(mine);
  }
  const float loss = mine.forward_backward();
  EXPECT_NEAR(loss, whole_loss, 1e-5 * std::abs(whole_loss)) << "worker " << worker;

  // Every parameter's gradient against the whole net's: a split layer's slices concatenated;
  // in the hybrid a convolution's partial sums over the workers' images added up.
  for (size_t l = 0; l < mine.layers().size(); ++l) {
    const std::string& name = mine.layer_names()[l];
    for (size_t j = 0; j < mine.layers()[l]->blobs().size(); ++j) {
      const Blob& slice = *mine.layers()[l]->blobs()[j];
      const Blob& reference = *whole.layer_by_name(name).blobs()[j];
      std::vector<float> gathered(slice.cpu_diff(), slice.cpu_diff() + slice.count());
      if (part.split_layers.count(name)) {
        gathered.resize(size_t(slice.count()) * workers);
        world->allgather(slice.cpu_diff(), gathered.data(), slice.count(), "test gradients");
      } else {
        ASSERT_TRUE(hybrid) << name << " should be split";
        world->allreduce_sum(gathered.data(), gathered.size(), "test gradients");
      }
      ASSERT_EQ(int64_t(gathered.size()), reference.count()) << name;
      EXPECT_LE(relative(gathered.data(), reference.cpu_diff(), reference.count()), 1e-5)
          << name << " blob " << j << " on worker " << worker;
      const std::vector<float> zeros(reference.count(), 0.0f);
      EXPECT_GT(relative(reference.cpu_diff(), zeros.data(), reference.count()), 0)
          << name << ": the gradient should not vanish";
    }
  }
  Context::set_model_group(nullptr);
}

TEST(ModelParallelUnderMpi, LossAndEveryGradientMatchTheWholeNet) {
  if (!launched_by_mpi()) GTEST_SKIP() << "runs under mpirun (ctest's model_parallel_mpi)";
  expect_split_matches_whole(kSmallAlexNet, false);
}

TEST(ModelParallelUnderMpi, TheHybridMatchesTheWholeNet) {
  if (!launched_by_mpi()) GTEST_SKIP() << "runs under mpirun (ctest's model_parallel_mpi)";
  expect_split_matches_whole(kSmallAlexNet, true);
}

// Four workers, so that the middle ones take halos from both neighbours: 2 channels each,
// LRN over 5 (a halo of 2).
const char* kFourWays = R"(
name: "four_ways"
layer { name: "data" type: "Input" top: "data" top: "label"
  input_param { shape { dim: 4 dim: 3 dim: 7 dim: 7 } shape { dim: 4 } } }
layer { name: "conv1" type: "Convolution" bottom: "data" top: "conv1"
  convolution_param { num_output: 8 kernel_size: 3 weight_filler { type: "xavier" } } }
layer { name: "norm1" type: "LRN" bottom: "conv1" top: "norm1"
  lrn_param { local_size: 5 alpha: 0.5 beta: 0.75 k: 2 } }
layer { name: "conv2" type: "Convolution" bottom: "norm1" top: "conv2"
  convolution_param { num_output: 8 kernel_size: 3 weight_filler { type: "xavier" } } }
layer { name: "fc" type: "InnerProduct" bottom: "conv2" top: "fc"
  inner_product_param { num_output: 4 weight_filler { type: "xavier" } } }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "fc" bottom: "label" top: "loss" }
)";

TEST(ModelParallelUnderMpi, HalosComeFromBothNeighbours) {
  if (!launched_by_mpi()) GTEST_SKIP() << "runs under mpirun (ctest's model_parallel_mpi4)";
  expect_split_matches_whole(kFourWays, false);
}

// ---- engine train --model_parallel ----------------------------------------------------------

class ModelParallelRun : public TrainingRun {
 protected:
  // The database, a starting point (returned as a --weights flag) and one process's 20
  // iterations from it at batch 8 (snaps/one_iter_20.caffemodel).
  std::string train_reference() {
    make_db(64);
    const std::string end = "snapshot_after_train: true\n";
    std::string output;
    const std::string start = make_solver("start", 8, 0, end, "", false, true);
    EXPECT_EQ(shell(kEngine + " train --solver=" + start, &output), 0) << output;
    const std::string weights = " --weights=" + path("snaps/start_iter_0.caffemodel");
    const std::string one = make_solver("one", 8, 20, end, "", false, true);
    EXPECT_EQ(shell(kEngine + " train --solver=" + one + weights, &output), 0) << output;
    return weights;
  }
};

// One group of 2 and two groups of 2 end where one process does (the same starting weights,
// 20 iterations with momentum and weight decay); a resumed run of the groups ends byte for byte
// where the uninterrupted one does.
TEST_F(ModelParallelRun, GroupsMatchOneProcess) {
  if (!have_mpirun()) GTEST_SKIP() << "mpirun is not installed";
  const std::string weights = train_reference();
  const std::string end = "snapshot_after_train: true\n";
  std::string output;
  const std::string pair = make_solver("pair", 8, 20, end, "", false, true);
  ASSERT_EQ(shell(mpirun(2) + "--model_parallel=2 --solver=" + pair + weights, &output), 0)
      << output;
  EXPECT_CONTAINS(output, "Model parallel: 1 group(s) of 2 workers");
  EXPECT_CONTAINS(output, "exchange before norm: 1 channels of conv from each neighbouring "
                          "worker (LRN across channels)");
  EXPECT_CONTAINS(output, "exchange before ip1: all-gather of pool");
  EXPECT_EQ(output.find("exchange before conv2"), std::string::npos) << "conv2 has two groups";
  const std::string groups = make_solver("groups", 4, 20, "snapshot: 10\n", "", false, true);
  ASSERT_EQ(shell(mpirun(4) + "--model_parallel=2 --solver=" + groups + weights, &output), 0)
      << output;
  EXPECT_CONTAINS(output, "Model parallel: 2 group(s) of 2 workers");
  const std::string reference = path("snaps/one_iter_20.caffemodel");
  EXPECT_LE(relative_difference(path("snaps/pair_iter_20.caffemodel"), reference), 1e-5);
  EXPECT_LE(relative_difference(path("snaps/groups_iter_20.caffemodel"), reference), 1e-5);
  EXPECT_GT(relative_difference(path("snaps/start_iter_0.caffemodel"), reference), 1e-3);

  // Without --weights the workers start from their slices of a lone run's initial weights.
  const std::string fresh = make_solver("fresh", 8, 5, end, "", false, true);
  ASSERT_EQ(shell(kEngine + " train --solver=" + fresh, &output), 0) << output;
  const std::string lone = read_file(path("snaps/fresh_iter_5.caffemodel"));
  ASSERT_EQ(shell(mpirun(2) + "--model_parallel=2 --solver=" + fresh, &output), 0) << output;
  write("lone.caffemodel", lone);
  EXPECT_LE(relative_difference(path("snaps/fresh_iter_5.caffemodel"), path("lone.caffemodel")),
            1e-5);

  const std::string uninterrupted = read_file(path("snaps/groups_iter_20.caffemodel"));
  ASSERT_EQ(shell(mpirun(4) + "--model_parallel=2 --solver=" + groups +
                      " --snapshot=" + path("snaps/groups_iter_10.solverstate"),
                  &output),
            0)
      << output;
  EXPECT_TRUE(read_file(path("snaps/groups_iter_20.caffemodel")) == uninterrupted)
      << "the resumed groups' weights differ from the uninterrupted run's";
}

// The hybrid on 2 ranks at batch 4 each, and on 2 groups of 2 at batch 2 each, ends where one
// process at batch 8 does.
TEST_F(ModelParallelRun, TheHybridMatchesOneProcess) {
  if (!have_mpirun()) GTEST_SKIP() << "mpirun is not installed";
  const std::string weights = train_reference();
  const std::string end = "snapshot_after_train: true\n";
  std::string output;
  const std::string hybrid = " --model_parallel=2 --model_parallel_scope=FULLY_CONNECTED";
  const std::string pair = make_solver("pair", 4, 20, end, "", false, true);
  ASSERT_EQ(shell(mpirun(2) + "--solver=" + pair + hybrid + weights, &output), 0) << output;
  EXPECT_CONTAINS(output, "Model parallel, hybrid: 1 group(s) of 2 workers");
  EXPECT_CONTAINS(output, "exchange before ip1: all-gather of pool's images");
  EXPECT_CONTAINS(output, "effective batch 2 x 4 x 1");
  const std::string groups = make_solver("groups", 2, 20, end, "", false, true);
  ASSERT_EQ(shell(mpirun(4) + "--solver=" + groups + hybrid + weights, &output), 0) << output;
  const std::string reference = path("snaps/one_iter_20.caffemodel");
  EXPECT_LE(relative_difference(path("snaps/pair_iter_20.caffemodel"), reference), 1e-5);
  EXPECT_LE(relative_difference(path("snaps/groups_iter_20.caffemodel"), reference), 1e-5);
}

TEST_F(ModelParallelRun, BadLayoutsAreRefused) {
  if (!have_mpirun()) GTEST_SKIP() << "mpirun is not installed";
  make_db(16);
  const std::string solver = make_solver("bad", 4, 5, "", "", false, true);
  std::string output;
  EXPECT_EQ(shell(kEngine + " train --model_parallel=2 --solver=" + solver, &output), 1);
  EXPECT_CONTAINS(output, "--model_parallel=2 needs 2 MPI ranks: run it under mpirun -np 2");
  EXPECT_NE(shell(mpirun(3) + "--model_parallel=2 --solver=" + solver, &output), 0);
  EXPECT_CONTAINS(output, "--model_parallel=2 does not divide the 3 ranks of this job");
  EXPECT_NE(shell(mpirun(3) + "--model_parallel=3 --solver=" + solver, &output), 0);
  EXPECT_CONTAINS(output, "layer conv (Convolution) cannot be split over 3 workers: its "
                          "num_output 4 is not a multiple of 3");
}

}  // namespace
}  // namespace engine
