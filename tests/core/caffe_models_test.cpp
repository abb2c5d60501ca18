// Every deploy net of Caffe's model zoo folder builds from the unchanged file and runs forward
// and backward on the CPU with filled weights, with Caffe's output shapes.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>

#include "core/context.hpp"
#include "core/filler.hpp"
#include "core/net.hpp"
#include "gradient_checker.hpp"
#include "io/prototxt.hpp"
#include "math/random.hpp"

namespace engine {
namespace {

const std::string kModels = ENGINE_CAFFE_MODELS_DIR;

class CaffeModels : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!std::ifstream(kModels + "/LICENSE")) {
      GTEST_SKIP() << "Caffe's model files are not at " << kModels;
    }
  }
};

// Builds the file for TEST at a small batch with backward forced, fills the inputs, runs
// forward and backward, and returns the net.
std::unique_ptr<Net> run_deploy(const std::string& file, int batch) {
  NetParameter param;
  read_text_file(kModels + "/" + file, &param);
  param.mutable_state()->set_phase(TEST);
  set_input_batch(batch, &param);
  param.set_force_backward(true);
  Context::set_seed(7);
  auto net = std::make_unique<Net>(param);
  // Deploy files carry no fillers (their weights come from a .caffemodel): fill them so that
  // signals keep their scale through the depth of the net.
  FillerParameter msra;
  msra.set_type("msra");
  for (Blob* weights : net->learnable_params()) fill(msra, weights);
  for (Blob* input : net->input_blobs()) testing::fill_gaussian(*input);
  net->forward();
  // A random gradient at the outputs (a constant one would vanish through the softmax).
  for (Blob* output : net->output_blobs()) {
    rng_gaussian(output->count(), 0, 1, output->mutable_cpu_diff());
  }
  net->backward();
  return net;
}

void expect_finite_gradient(const Blob& blob) {
  double total = 0;
  for (int64_t i = 0; i < blob.count(); ++i) total += std::fabs(blob.cpu_diff()[i]);
  EXPECT_TRUE(std::isfinite(total));
  EXPECT_GT(total, 0) << "backward reached the input";
}

TEST_F(CaffeModels, AlexNetDeploy) {
  auto net = run_deploy("models/bvlc_alexnet/deploy.prototxt", 2);
  EXPECT_EQ(net->blob_by_name("pool5")->shape(), (std::vector<int>{2, 256, 6, 6}));
  EXPECT_EQ(net->blob_by_name("fc8")->shape(), (std::vector<int>{2, 1000}));
  EXPECT_EQ(net->blob_by_name("prob")->shape(), (std::vector<int>{2, 1000}));
  const Blob& prob = *net->blob_by_name("prob");
  double sum = 0;
  for (int i = 0; i < 1000; ++i) sum += prob.cpu_data()[i];
  EXPECT_NEAR(sum, 1.0, 1e-4);
  expect_finite_gradient(*net->blob_by_name("data"));
}

TEST_F(CaffeModels, CaffeNetDeploy) {
  auto net = run_deploy("models/bvlc_reference_caffenet/deploy.prototxt", 2);
  EXPECT_EQ(net->blob_by_name("pool5")->shape(), (std::vector<int>{2, 256, 6, 6}));
  EXPECT_EQ(net->blob_by_name("fc8")->shape(), (std::vector<int>{2, 1000}));
  expect_finite_gradient(*net->blob_by_name("data"));
}

TEST_F(CaffeModels, GoogLeNetDeploy) {
  auto net = run_deploy("models/bvlc_googlenet/deploy.prototxt", 1);
  EXPECT_EQ(net->blob_by_name("loss3/classifier")->shape(), (std::vector<int>{1, 1000}));
  EXPECT_EQ(net->blob_by_name("pool5/7x7_s1")->shape(), (std::vector<int>{1, 1024, 1, 1}));
  expect_finite_gradient(*net->blob_by_name("data"));
}

TEST_F(CaffeModels, LeNetDeploy) {
  auto net = run_deploy("examples/mnist/lenet.prototxt", 4);
  EXPECT_EQ(net->blob_by_name("pool2")->shape(), (std::vector<int>{4, 50, 4, 4}));
  EXPECT_EQ(net->blob_by_name("prob")->shape(), (std::vector<int>{4, 10}));
  expect_finite_gradient(*net->blob_by_name("data"));
}

// The train/test files read LMDB data (a later layer); their structure is checked by building
// them with the Data layers swapped for Input layers of the documented shapes.
TEST_F(CaffeModels, TrainValNetsBuildWithInputsInPlaceOfData) {
  struct Case {
    std::string file;
    std::vector<int> data_shape;
    std::string output;
    std::vector<int> output_shape;
  };
  const Case cases[] = {
      {"models/bvlc_alexnet/train_val.prototxt", {2, 3, 227, 227}, "fc8", {2, 1000}},
      {"examples/cifar10/cifar10_quick_train_test.prototxt", {2, 3, 32, 32}, "ip2", {2, 10}},
      {"examples/cifar10/cifar10_full_train_test.prototxt", {2, 3, 32, 32}, "ip1", {2, 10}},
      {"examples/mnist/lenet_train_test.prototxt", {2, 1, 28, 28}, "ip2", {2, 10}},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.file);
    NetParameter param;
    read_text_file(kModels + "/" + c.file, &param);
    testing::replace_data_layers(c.data_shape, c.data_shape[0], &param);
    for (Phase phase : {TRAIN, TEST}) {
      param.mutable_state()->set_phase(phase);
      Net net(param);
      for (Blob* input : net.input_blobs()) input->set_data(0);
      Context::set_seed(1);
      testing::fill_uniform(*net.input_blobs()[0], -1, 1);
      const float loss = net.forward();
      EXPECT_TRUE(std::isfinite(loss));
      EXPECT_GT(loss, 0);
      net.backward();
      EXPECT_EQ(net.blob_by_name(c.output)->shape(), c.output_shape);
    }
  }
}

// The project's own AlexNet (the paper's): trains, validates, and averages ten crops per image.
TEST(ProjectModels, AlexNetTrainValAndTenCropTesting) {
  NetParameter param;
  read_text_file(std::string(ENGINE_SOURCE_DIR) + "/models/alexnet/train_val.prototxt", &param);
  NetParameter train = param;
  testing::replace_data_layers({2, 3, 227, 227}, 2, &train);
  train.mutable_state()->set_phase(TRAIN);
  Net net(train);
  EXPECT_EQ(net.layer_by_name("conv2").blobs()[0]->shape(), (std::vector<int>{256, 48, 5, 5}))
      << "conv2 is split in two groups";
  EXPECT_EQ(net.layer_by_name("conv3").blobs()[0]->shape(), (std::vector<int>{384, 256, 3, 3}))
      << "conv3 sees both halves";
  EXPECT_EQ(net.layer_by_name("conv4").blobs()[0]->cpu_data()[0] != 0, true);
  EXPECT_EQ(net.layer_by_name("conv4").blobs()[1]->cpu_data()[0], 1) << "the paper's bias 1";
  EXPECT_EQ(net.blob_by_name("pool5")->shape(), (std::vector<int>{2, 256, 6, 6}));

  // Ten crops of two images: 20 inputs, 2 labels, 2 averaged predictions.
  NetParameter ten = param;
  testing::replace_data_layers({20, 3, 227, 227}, 2, &ten);
  ten.mutable_state()->set_phase(TEST);
  ten.mutable_state()->add_stage("ten_crop");
  Net ten_crop(ten);
  ten_crop.share_trained_layers_with(net);
  Context::set_seed(3);
  testing::fill_uniform(*ten_crop.input_blobs()[0], -50, 50);
  ten_crop.input_blobs()[1]->set_data(0);
  ten_crop.forward();
  const Blob& averaged = *ten_crop.blob_by_name("averaged");
  const Blob& prob = *ten_crop.blob_by_name("prob");
  ASSERT_EQ(averaged.shape(), (std::vector<int>{2, 1000}));
  // Each averaged class probability is the mean over that image's ten crops.
  for (int image = 0; image < 2; ++image) {
    for (int c : {0, 17, 999}) {
      double mean = 0;
      for (int crop = 0; crop < 10; ++crop) mean += prob.cpu_data()[(image * 10 + crop) * 1000 + c];
      EXPECT_NEAR(averaged.cpu_data()[image * 1000 + c], mean / 10, 1e-7);
    }
  }
  EXPECT_TRUE(ten_crop.has_blob("accuracy_top5"));
  EXPECT_FALSE(ten_crop.has_layer("loss"));
}

}  // namespace
}  // namespace engine
