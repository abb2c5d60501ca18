// engine: the command-line front of the engine, in the manner of Caffe's `caffe` tool.
//   engine time --model=NET.prototxt [--iterations=50] [--phase=TRAIN|TEST] ...
//   engine device_query [--gpu=0]
// Every command takes --help. User errors print one line and exit 1.
#include <chrono>
#include <cstdio>
#include <functional>
#include <iostream>
#include <map>
#include <string>
#include <vector>

#include <gflags/gflags.h>
#include <glog/logging.h>

#include "core/context.hpp"
#include "core/errors.hpp"
#include "core/net.hpp"
#include "io/prototxt.hpp"

DEFINE_string(model, "", "The net definition (prototxt).");
DEFINE_int32(iterations, 50, "Number of iterations to run.");
DEFINE_string(phase, "TRAIN", "The net's phase: TRAIN or TEST.");
DEFINE_int32(level, 0, "The net's level (for include/exclude rules).");
DEFINE_string(stage, "", "Comma-separated stages of the net (for include/exclude rules).");
DEFINE_string(gpu, "", "Run on this GPU (a device id); empty for the CPU.");
DEFINE_string(engine, "",
              "Override every layer's computation engine: CAFFE (reference code), ONEDNN, "
              "CUDNN or DEFAULT (the fastest available).");
DECLARE_bool(help);  // gflags defines it; we print per-command help ourselves
DEFINE_int32(batch, 0, "Override the first axis of every Input blob (0: keep the file's).");

namespace engine {
namespace {

struct Command {
  std::function<int()> run;
  std::string usage;
  std::vector<std::string> flags;
};

std::vector<std::string> split(const std::string& text, char separator) {
  std::vector<std::string> parts;
  size_t start = 0;
  while (start <= text.size() && !text.empty()) {
    const size_t end = text.find(separator, start);
    parts.push_back(text.substr(start, end - start));
    if (end == std::string::npos) break;
    start = end + 1;
  }
  return parts;
}

Phase parse_phase(const std::string& name) {
  if (name == "TRAIN") return TRAIN;
  if (name == "TEST") return TEST;
  ENGINE_FAIL("--phase must be TRAIN or TEST, got '" << name << "'");
}

int parse_engine(const std::string& name) {
  static const std::map<std::string, int> engines = {
      {"DEFAULT", 0}, {"CAFFE", 1}, {"CUDNN", 2}, {"ONEDNN", 1000}};
  const auto found = engines.find(name);
  ENGINE_REQUIRE(found != engines.end(),
                 "--engine must be DEFAULT, CAFFE, CUDNN or ONEDNN, got '" << name << "'");
  return found->second;
}

void select_device() {
  if (FLAGS_gpu.empty()) {
    Context::set_mode(Mode::CPU);
    return;
  }
  int device = 0;
  try {
    device = std::stoi(FLAGS_gpu);
  } catch (const std::exception&) {
    ENGINE_FAIL("--gpu must be a device id, got '" << FLAGS_gpu << "'");
  }
  Context::set_device(device);
  Context::set_mode(Mode::GPU);
}

NetParameter load_net_param() {
  ENGINE_REQUIRE(!FLAGS_model.empty(), "--model is required (a net prototxt)");
  NetParameter param;
  read_text_file(FLAGS_model, &param);
  param.mutable_state()->set_phase(parse_phase(FLAGS_phase));
  param.mutable_state()->set_level(FLAGS_level);
  for (const std::string& stage : split(FLAGS_stage, ',')) param.mutable_state()->add_stage(stage);
  if (!FLAGS_engine.empty()) set_layer_engines(parse_engine(FLAGS_engine), &param);
  if (FLAGS_batch > 0) set_input_batch(FLAGS_batch, &param);
  return param;
}

double milliseconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start)
      .count();
}

int time_command() {
  ENGINE_REQUIRE(FLAGS_iterations > 0, "--iterations must be positive");
  select_device();
  Net net(load_net_param());
  const int layers = static_cast<int>(net.layers().size());
  std::printf("Timing %s: %d layers, %d iterations, %s\n", net.name().c_str(), layers,
              FLAGS_iterations, FLAGS_gpu.empty() ? "CPU" : ("GPU " + FLAGS_gpu).c_str());
  // One untimed pass allocates buffers and builds primitives.
  net.forward();
  net.backward();

  std::vector<double> forward_ms(layers, 0), backward_ms(layers, 0);
  double forward_total = 0, backward_total = 0;
  const auto all = std::chrono::steady_clock::now();
  for (int iteration = 0; iteration < FLAGS_iterations; ++iteration) {
    const auto iteration_start = std::chrono::steady_clock::now();
    auto pass = iteration_start;
    for (int i = 0; i < layers; ++i) {
      const auto start = std::chrono::steady_clock::now();
      net.forward_from_to(i, i);
      forward_ms[i] += milliseconds_since(start);
    }
    forward_total += milliseconds_since(pass);
    pass = std::chrono::steady_clock::now();
    for (int i = layers - 1; i >= 0; --i) {
      const auto start = std::chrono::steady_clock::now();
      net.backward_from_to(i, i);
      backward_ms[i] += milliseconds_since(start);
    }
    backward_total += milliseconds_since(pass);
    std::printf("Iteration: %d forward-backward time: %.2f ms.\n", iteration + 1,
                milliseconds_since(iteration_start));
  }
  const double total = milliseconds_since(all);
  const double n = FLAGS_iterations;
  std::printf("Average time per layer:\n");
  for (int i = 0; i < layers; ++i) {
    std::printf("%20s\tforward: %.3f ms.\n", net.layer_names()[i].c_str(), forward_ms[i] / n);
    std::printf("%20s\tbackward: %.3f ms.\n", net.layer_names()[i].c_str(), backward_ms[i] / n);
  }
  std::printf("Average Forward pass: %.3f ms.\n", forward_total / n);
  std::printf("Average Backward pass: %.3f ms.\n", backward_total / n);
  std::printf("Average Forward-Backward: %.3f ms.\n", (forward_total + backward_total) / n);
  std::printf("Total Time: %.3f ms.\n", total);
  return 0;
}

int device_query_command() {
  const int count = Context::device_count();
  ENGINE_REQUIRE(count > 0, "no CUDA device is available on this machine");
  select_device();
  std::printf("%d CUDA device(s); details come with the GPU layers.\n", count);
  return 0;
}

const std::map<std::string, Command>& commands() {
  static const std::map<std::string, Command> table = {
      {"time",
       {time_command,
        "engine time --model=NET.prototxt [--iterations=50] [--phase=TRAIN|TEST] [--level=0]\n"
        "            [--stage=a,b] [--engine=CAFFE|ONEDNN|DEFAULT] [--batch=N] [--gpu=ID]\n"
        "Runs forward and backward and prints each layer's average times and the totals.",
        {"model", "iterations", "phase", "level", "stage", "engine", "batch", "gpu"}}},
      {"device_query",
       {device_query_command, "engine device_query [--gpu=ID]\nPrints the CUDA devices.",
        {"gpu"}}},
  };
  return table;
}

void print_help(const std::string& name, const Command& command) {
  std::printf("usage: %s\n\nflags:\n", command.usage.c_str());
  for (const std::string& flag : command.flags) {
    gflags::CommandLineFlagInfo info;
    if (gflags::GetCommandLineFlagInfo(flag.c_str(), &info)) {
      std::printf("  --%s (%s) default: \"%s\"\n", flag.c_str(), info.description.c_str(),
                  info.default_value.c_str());
    }
  }
}

void print_usage() {
  std::printf("usage: engine <command> [flags]\n\ncommands:\n");
  for (const auto& [name, command] : commands()) {
    std::printf("  %-14s %s\n", name.c_str(), split(command.usage, '\n').back().c_str());
  }
  std::printf("\n'engine <command> --help' describes a command's flags.\n");
}

}  // namespace
}  // namespace engine

int main(int argc, char** argv) {
  using namespace engine;
  FLAGS_logtostderr = true;
  FLAGS_minloglevel = 1;
  gflags::ParseCommandLineNonHelpFlags(&argc, &argv, true);
  google::InitGoogleLogging(argv[0]);
  const std::string name = argc > 1 ? argv[1] : "";
  const auto found = commands().find(name);
  if (found == commands().end()) {
    print_usage();
    if (name.empty() || FLAGS_help) return FLAGS_help ? 0 : 1;
    std::fprintf(stderr, "engine: unknown command '%s'\n", name.c_str());
    return 1;
  }
  if (FLAGS_help) {
    print_help(name, found->second);
    return 0;
  }
  try {
    return found->second.run();
  } catch (const Error& error) {
    std::fprintf(stderr, "engine %s: error: %s\n", name.c_str(), error.what());
    return 1;
  }
}
