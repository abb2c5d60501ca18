// What the parallel-training tests share: a small LMDB of 1 x 6 x 6 records, a small
// convolutional classifier over it, a fixture with a scratch folder and a shell runner, and the
// comparison of two weight files.
#pragma once

#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <sstream>
#include <string>

#include "data/db.hpp"
#include "io/caffemodel.hpp"
#include "io/prototxt.hpp"

namespace engine {
namespace parallel_test {

namespace fs = std::filesystem;

const std::string kEngine = std::string(ENGINE_BINARY_DIR) + "/bin/engine";

#define EXPECT_CONTAINS(text, part) \
  EXPECT_NE((text).find(part), std::string::npos) << "expected '" << (part) << "' in:\n" << (text)

inline bool have_mpirun() { return std::system("command -v mpirun >/dev/null 2>&1") == 0; }

// A 1 x 6 x 6 record whose pixels come from `seed`, labelled seed % 4.
inline Datum record(int seed) {
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

inline std::string key_of(int i) {
  char key[16];
  std::snprintf(key, sizeof(key), "%08d", i);
  return key;
}

// A small convolutional classifier; `transform` goes inside the data layer's transform_param,
// `dropout` adds a Dropout layer, `alexnet_parts` an LRN across channels and a two-group
// convolution (what model parallelism splits or exchanges around).
inline std::string net_text(const std::string& source, int batch, const std::string& transform,
                            bool dropout, bool alexnet_parts = false) {
  std::ostringstream net;
  net << "name: 'small'\n"
      << "layer { name: 'data' type: 'Data' top: 'data' top: 'label'\n"
      << "  transform_param { scale: 0.00390625 " << transform << " }\n"
      << "  data_param { source: '" << source << "' batch_size: " << batch
      << " backend: LMDB threads: 1 } }\n"
      << "layer { name: 'conv' type: 'Convolution' bottom: 'data' top: 'conv'\n"
      << "  convolution_param { num_output: 4 kernel_size: 3 weight_filler { type: 'xavier' }\n"
      << "    bias_filler { type: 'constant' value: 0.1 } } }\n"
      << "layer { name: 'relu' type: 'ReLU' bottom: 'conv' top: 'conv' }\n";
  std::string pooled = "conv";
  if (alexnet_parts) {
    net << "layer { name: 'norm' type: 'LRN' bottom: 'conv' top: 'norm'\n"
        << "  lrn_param { local_size: 3 alpha: 0.5 beta: 0.75 k: 2 } }\n"
        << "layer { name: 'conv2' type: 'Convolution' bottom: 'norm' top: 'conv2'\n"
        << "  convolution_param { num_output: 4 kernel_size: 1 group: 2\n"
        << "    weight_filler { type: 'xavier' } } }\n";
    pooled = "conv2";
  }
  net << "layer { name: 'pool' type: 'Pooling' bottom: '" << pooled << "' top: 'pool'\n"
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

class TrainingRun : public ::testing::Test {
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
                          bool dropout = false, bool alexnet_parts = false) {
    write(name + ".prototxt", net_text(path("db"), batch, transform, dropout, alexnet_parts));
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

// Largest |a - b| over a blob, relative to the largest |b|, across the parameter blobs of two
// weight files; layers are matched by name, and both must hold the same parameterized layers.
inline double relative_difference(const std::string& a_file, const std::string& b_file) {
  const NetParameter a = read_caffemodel(a_file), b = read_caffemodel(b_file);
  std::map<std::string, const LayerParameter*> b_layers;
  for (const LayerParameter& layer : b.layer()) {
    if (layer.blobs_size() > 0) b_layers[layer.name()] = &layer;
  }
  double worst = 0;
  size_t matched = 0;
  for (const LayerParameter& x_layer : a.layer()) {
    if (x_layer.blobs_size() == 0) continue;
    const auto found = b_layers.find(x_layer.name());
    EXPECT_NE(found, b_layers.end()) << x_layer.name() << " is missing from " << b_file;
    if (found == b_layers.end()) continue;
    ++matched;
    const LayerParameter& y_layer = *found->second;
    EXPECT_EQ(x_layer.blobs_size(), y_layer.blobs_size()) << x_layer.name();
    for (int j = 0; j < std::min(x_layer.blobs_size(), y_layer.blobs_size()); ++j) {
      const BlobProto& x = x_layer.blobs(j);
      const BlobProto& y = y_layer.blobs(j);
      EXPECT_EQ(x.data_size(), y.data_size()) << x_layer.name() << " blob " << j;
      double difference = 0, scale = 0;
      for (int k = 0; k < std::min(x.data_size(), y.data_size()); ++k) {
        difference = std::max(difference, std::abs(double(x.data(k)) - y.data(k)));
        scale = std::max(scale, std::abs(double(y.data(k))));
      }
      worst = std::max(worst, difference / std::max(scale, 1e-12));
    }
  }
  EXPECT_EQ(matched, b_layers.size()) << a_file << " lacks layers of " << b_file;
  return worst;
}

}  // namespace parallel_test
}  // namespace engine
