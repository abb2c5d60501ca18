// engine: the command-line front of the engine, in the manner of Caffe's `caffe` tool.
//   engine train --solver=SOLVER.prototxt [--weights=W | --snapshot=S.solverstate|latest] ...
//   engine test --model=NET.prototxt --weights=W.caffemodel [--iterations=50]
//   engine time --model=NET.prototxt [--iterations=50] [--phase=TRAIN|TEST] ...
//   engine forward --model=NET.prototxt [--weights=W] [--input=x.npy | --input=a:x.npy,b:y.npy]
//                  [--dump=DIR] [--phase=TEST]
//   engine device_query [--gpu=0]
//   engine upgrade_net_proto_text IN OUT, upgrade_net_proto_binary IN OUT,
//          upgrade_solver_proto_text IN OUT
// Every command takes --help. User errors print one line and exit 1.
#include <algorithm>
#include <charconv>
#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <iostream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include <gflags/gflags.h>
#include <glog/logging.h>

#ifdef ENGINE_USE_CUDA
#include <cuda_runtime.h>
#include <cudnn.h>
#endif

#include "core/context.hpp"
#include "core/errors.hpp"
#include "core/fastest_layer.hpp"
#include "core/net.hpp"
#include "io/caffemodel.hpp"
#include "io/npy.hpp"
#include "io/prototxt.hpp"
#include "io/upgrade.hpp"
#include "math/cudnn.hpp"
#include "math/precision.hpp"
#include "parallel/training.hpp"
#ifdef ENGINE_HAVE_ONNX
#include "onnx/onnx_export.hpp"
#include "onnx/onnx_import.hpp"
#endif
#include "solvers/solver.hpp"

#ifdef ENGINE_EMBED_PYTHON
#include "embedded_python.hpp"
#endif

DEFINE_string(solver, "", "The solver definition (prototxt).");
DEFINE_string(model, "", "The net definition (prototxt).");
DEFINE_string(weights, "",
              "Trained weights (.caffemodel) to start from; several, comma-separated, are "
              "applied in order. Not with --snapshot.");
DEFINE_string(snapshot, "",
              "A .solverstate to resume training from; 'latest': the newest under the solver's "
              "snapshot_prefix, or a fresh start when there is none.");
DEFINE_int32(iterations, 50,
             "Iterations to run (test, time); for train, overrides the solver's max_iter.");
DEFINE_string(sigint_effect, "stop",
              "What SIGINT (Ctrl-C) does during training: stop, snapshot or none.");
DEFINE_string(sighup_effect, "snapshot",
              "What SIGHUP does during training: stop, snapshot or none.");
DEFINE_string(phase, "TRAIN", "The net's phase: TRAIN or TEST.");
DEFINE_int32(level, 0, "The net's level (for include/exclude rules).");
DEFINE_string(stage, "", "Comma-separated stages of the net (for include/exclude rules).");
DEFINE_string(gpu, "",
              "Run on this GPU (a device id); empty for the CPU. train also takes several "
              "(0,1) or all: data parallel, one worker per GPU.");
DEFINE_double(collective_timeout, 300,
              "train with workers: seconds a collective (a gradient exchange, say) may wait for "
              "the other workers before the run is ended naming those that never arrived.");
DEFINE_int32(model_parallel, 0,
             "train under mpirun: workers per model-parallel group (the AlexNet paper's split "
             "of every layer's channels); the groups are data parallel with each other. 0 takes "
             "the solver's model_parallel (default 1: data parallel only).");
DEFINE_string(model_parallel_scope, "",
              "train with --model_parallel: ALL (every Convolution and InnerProduct split) or "
              "FULLY_CONNECTED (Krizhevsky's hybrid: convolutions data parallel, InnerProducts "
              "split over the group's images); empty takes the solver's.");
DEFINE_int32(bucket_mb, 4,
             "train with workers: the most gradient MiB exchanged in one collective; smaller "
             "buckets start sooner during backward.");
DEFINE_bool(deterministic, false,
            "GPU: only cuDNN algorithms whose results repeat bit for bit from run to run.");
DEFINE_int32(cudnn_workspace_mb, 1024,
             "GPU: the most scratch memory one cuDNN convolution pass may use, in MiB; "
             "algorithms needing more are skipped, and a smaller one is taken when the device "
             "cannot allocate even that.");
DEFINE_string(engine, "",
              "Override every layer's computation engine: CAFFE (reference code), ONEDNN, "
              "CUDNN or DEFAULT (the fastest available).");
DEFINE_string(precision, "",
              "The precision of the convolutions and inner products: fp32, bf16 or fp16 "
              "(operands rounded, fp32 accumulation, fp32 weights and update). Overrides the "
              "solver's and the net's `precision` fields.");
DECLARE_bool(help);  // gflags defines it; we print per-command help ourselves
DEFINE_string(batch, "",
              "Override the first axis of every Input blob (empty: keep the file's); "
              "export_onnx also takes 'dynamic' (a symbolic batch in the model).");
DEFINE_string(output, "", "export_onnx: the .onnx file to write.");
DEFINE_int32(opset, 13, "export_onnx: the ONNX opset (13 to 21).");
DEFINE_string(output_prototxt, "", "import_onnx: the net file to write.");
DEFINE_string(output_weights, "", "import_onnx: the weights (.caffemodel) to write.");
DEFINE_string(input, "",
              "forward: .npy arrays for the net's Input blobs: FILE.npy for a net with one, or "
              "NAME:FILE.npy,NAME2:FILE2.npy.");
DEFINE_string(dump, "",
              "forward: a folder to write every blob into, as NAME.npy, with index.txt.");

namespace engine {
namespace {

struct Command {
  std::function<int()> run;
  std::string usage;
  std::vector<std::string> flags;
  int arguments = 0;  // positional arguments after the command's name
};

// The command's positional arguments.
std::vector<std::string> arguments;

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

void use_gpu(int device) {
  Context::set_device(device);
  Context::set_mode(Mode::GPU);
  Context::set_deterministic(FLAGS_deterministic);
  ENGINE_REQUIRE(FLAGS_cudnn_workspace_mb >= 0,
                 "--cudnn_workspace_mb must be >= 0, got " << FLAGS_cudnn_workspace_mb);
#ifdef ENGINE_USE_CUDA
  cudnn::set_workspace_limit(size_t(FLAGS_cudnn_workspace_mb) << 20);
#endif
}

// --gpu's devices: ids, comma-separated, or all; each must exist.
std::vector<int> gpu_list() {
  std::vector<int> devices;
  if (FLAGS_gpu.empty()) return devices;
  const int count = Context::device_count();
  if (FLAGS_gpu == "all") {
    ENGINE_REQUIRE(count > 0, "--gpu=all: no CUDA device is available");
    for (int i = 0; i < count; ++i) devices.push_back(i);
    return devices;
  }
  for (const std::string& id : split(FLAGS_gpu, ',')) {
    size_t used = 0;
    int device = -1;
    try {
      device = std::stoi(id, &used);
    } catch (const std::exception&) {
    }
    ENGINE_REQUIRE(used == id.size() && device >= 0,
                   "--gpu must be device ids (0 or 0,1) or all, got '" << FLAGS_gpu << "'");
    ENGINE_REQUIRE(count > 0, "--gpu=" << FLAGS_gpu << ": no CUDA device is available");
    ENGINE_REQUIRE(device < count, "--gpu=" << FLAGS_gpu << ": GPU " << device
                                            << " does not exist; this machine has " << count);
    ENGINE_REQUIRE(std::find(devices.begin(), devices.end(), device) == devices.end(),
                   "--gpu=" << FLAGS_gpu << " names GPU " << device << " twice");
    devices.push_back(device);
  }
  return devices;
}

// test, time and forward: the CPU or one GPU.
void select_device() {
  const std::vector<int> devices = gpu_list();
  if (devices.empty()) {
    Context::set_mode(Mode::CPU);
    return;
  }
  ENGINE_REQUIRE(devices.size() == 1,
                 "--gpu=" << FLAGS_gpu << ": this command runs on one GPU; give one id");
  use_gpu(devices[0]);
}

bool flag_given(const char* name) {
  return !gflags::GetCommandLineFlagInfoOrDie(name).is_default;
}

std::vector<std::string> stages() { return split(FLAGS_stage, ','); }

// ---- signals: the handler only records; the solver polls between iterations ----------------

std::atomic<int> pending_sigint{0};
std::atomic<int> pending_sighup{0};

extern "C" void record_signal(int signal) {
  if (signal == SIGINT) pending_sigint = 1;
  if (signal == SIGHUP) pending_sighup = 1;
}

SolverAction parse_effect(const std::string& flag, const std::string& value) {
  if (value == "stop") return SolverAction::STOP;
  if (value == "snapshot") return SolverAction::SNAPSHOT;
  if (value == "none") return SolverAction::NONE;
  ENGINE_FAIL("--" << flag << " must be stop, snapshot or none, got '" << value << "'");
}

std::function<SolverAction()> signal_actions() {
  const SolverAction on_sigint = parse_effect("sigint_effect", FLAGS_sigint_effect);
  const SolverAction on_sighup = parse_effect("sighup_effect", FLAGS_sighup_effect);
  struct sigaction action = {};
  action.sa_handler = record_signal;
  sigemptyset(&action.sa_mask);
  sigaction(SIGINT, &action, nullptr);
  sigaction(SIGHUP, &action, nullptr);
  return [=]() {
    // A stop outranks a snapshot when both arrived.
    SolverAction result = SolverAction::NONE;
    for (auto [pending, effect] : {std::pair{&pending_sighup, on_sighup},
                                   std::pair{&pending_sigint, on_sigint}}) {
      if (pending->exchange(0) && effect != SolverAction::NONE) {
        if (result != SolverAction::STOP) result = effect;
      }
    }
    return result;
  };
}

void copy_weights(const std::string& files, Net& net) {
  for (const std::string& file : split(files, ',')) {
    copy_weights_from_file(file, &net);
    LOG(INFO) << "Copied weights from " << file;
  }
}

int train_command() {
  ENGINE_REQUIRE(!FLAGS_solver.empty(), "--solver is required (a solver prototxt)");
  ENGINE_REQUIRE(FLAGS_weights.empty() || FLAGS_snapshot.empty(),
                 "give --weights (to fine-tune) or --snapshot (to resume), not both");
  SolverParameter param = read_solver_file(FLAGS_solver);
  param.mutable_train_state()->set_level(FLAGS_level);
  for (const std::string& stage : stages()) param.mutable_train_state()->add_stage(stage);
  if (flag_given("iterations")) param.set_max_iter(FLAGS_iterations);
  if (!FLAGS_precision.empty()) param.set_precision(parse_precision(FLAGS_precision, "--precision"));

  ENGINE_REQUIRE(FLAGS_bucket_mb > 0, "--bucket_mb must be positive, got " << FLAGS_bucket_mb);

  TrainingOptions options;
  options.gpus = gpu_list();
  Context::set_mode(Mode::CPU);
  if (options.gpus.empty() && param.solver_mode() == SolverParameter::GPU &&
      param.has_solver_mode()) {
    if (Context::device_count() > 0) {
      options.gpus = {param.device_id()};
    } else {
      LOG(WARNING) << FLAGS_solver << ": solver_mode is GPU but no CUDA device is available; "
                                      "training on the CPU";
    }
  }
  options.param = param;
  options.solver_file = FLAGS_solver;
  options.resume = FLAGS_snapshot;
  options.use_device = use_gpu;
  for (const std::string& files : {FLAGS_weights}) {
    for (const std::string& file : split(files, ',')) options.weights.push_back(file);
  }
  for (const std::string& files : param.weights()) {
    for (const std::string& file : split(files, ',')) options.weights.push_back(file);
  }
  options.model_parallel = FLAGS_model_parallel;
  if (!FLAGS_model_parallel_scope.empty()) {
    SolverParameter::ModelParallelScope scope;
    ENGINE_REQUIRE(SolverParameter::ModelParallelScope_Parse(FLAGS_model_parallel_scope, &scope),
                   "--model_parallel_scope must be ALL or FULLY_CONNECTED, got '"
                       << FLAGS_model_parallel_scope << "'");
    options.param.set_model_parallel_scope(scope);
  }
  options.root_actions = signal_actions();
  options.collective_timeout_seconds = FLAGS_collective_timeout;
  options.bucket_bytes = size_t(FLAGS_bucket_mb) << 20;
  options.identity = FLAGS_gpu;
  train(options);
  return 0;
}

NetParameter load_net_param(Phase phase);

int test_command() {
  ENGINE_REQUIRE(!FLAGS_model.empty(), "--model is required (a net prototxt)");
  ENGINE_REQUIRE(!FLAGS_weights.empty(), "--weights is required: the trained weights to score");
  ENGINE_REQUIRE(FLAGS_iterations > 0, "--iterations must be positive");
  select_device();
  Net net(load_net_param(TEST));
  copy_weights(FLAGS_weights, net);
  LOG(INFO) << "Running for " << FLAGS_iterations << " iterations.";
  std::vector<double> sums;
  double loss = 0;
  for (int i = 0; i < FLAGS_iterations; ++i) {
    loss += net.forward();
    int index = 0;
    for (Blob* output : net.output_blobs()) {
      for (int64_t k = 0; k < output->count(); ++k, ++index) {
        if (static_cast<int>(sums.size()) <= index) sums.push_back(0);
        sums[index] += output->cpu_data()[k];
        LOG(INFO) << "Batch " << i << ", " << net.blob_name(output) << " = "
                  << output->cpu_data()[k];
      }
    }
  }
  LOG(INFO) << "Loss: " << loss / FLAGS_iterations;
  int index = 0;
  for (Blob* output : net.output_blobs()) {
    const float weight = net.output_loss_weight(output);
    for (int64_t k = 0; k < output->count(); ++k, ++index) {
      const double mean = sums[index] / FLAGS_iterations;
      std::ostringstream line;
      line << net.blob_name(output) << " = " << mean;
      if (weight != 0) line << " (* " << weight << " = " << weight * mean << " loss)";
      LOG(INFO) << line.str();
    }
  }
  return 0;
}

NetParameter load_net_param(Phase phase) {
  ENGINE_REQUIRE(!FLAGS_model.empty(), "--model is required (a net prototxt)");
  NetParameter param = read_net_text_file(FLAGS_model);
  param.mutable_state()->set_phase(phase);
  param.mutable_state()->set_level(FLAGS_level);
  for (const std::string& stage : stages()) param.mutable_state()->add_stage(stage);
  if (!FLAGS_engine.empty()) set_layer_engines(parse_engine(FLAGS_engine), &param);
  if (!FLAGS_precision.empty()) param.set_precision(parse_precision(FLAGS_precision, "--precision"));
  if (!FLAGS_batch.empty() && FLAGS_batch != "dynamic") {
    int batch = 0;
    const char* end = FLAGS_batch.data() + FLAGS_batch.size();
    const auto [stop, error] = std::from_chars(FLAGS_batch.data(), end, batch);
    ENGINE_REQUIRE(error == std::errc() && stop == end && batch > 0,
                   "--batch must be a positive number (or, for export_onnx, 'dynamic'), got '"
                       << FLAGS_batch << "'");
    set_input_batch(batch, &param);
  }
  return param;
}

double milliseconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start)
      .count();
}

int time_command() {
  ENGINE_REQUIRE(FLAGS_iterations > 0, "--iterations must be positive");
  ENGINE_REQUIRE(FLAGS_batch != "dynamic", "--batch=dynamic is for export_onnx; time needs N");
  select_device();
  Net net(load_net_param(parse_phase(FLAGS_phase)));
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
    // A layer and the in-place layers fused into it run, and are timed, as one: as in a whole
    // forward pass, which this one is, layer by layer.
    for (int i = 0; i < layers; i = net.fused_until(i) + 1) {
      const auto start = std::chrono::steady_clock::now();
      net.forward_from_to(i, net.fused_until(i));
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
  std::vector<int> fused_into(layers);
  for (int i = 0; i < layers; i = net.fused_until(i) + 1) {
    for (int j = i; j <= net.fused_until(i); ++j) fused_into[j] = i;
  }
  std::printf("Average time per layer:\n");
  for (int i = 0; i < layers; ++i) {
    const int into = fused_into[i];
    if (into != i) {
      std::printf("%20s\tforward: fused into %s\n", net.layer_names()[i].c_str(),
                  net.layer_names()[into].c_str());
    } else {
      std::printf("%20s\tforward: %.3f ms.\n", net.layer_names()[i].c_str(), forward_ms[i] / n);
    }
    std::printf("%20s\tbackward: %.3f ms.\n", net.layer_names()[i].c_str(), backward_ms[i] / n);
  }
  // DEFAULT layers chose among their implementations by timing each at the first forward pass.
  bool chose = false;
  for (int i = 0; i < layers; ++i) {
    const std::string choice = implementation_choice(*net.layers()[i]);
    if (choice.empty()) continue;
    if (!chose) std::printf("Implementations chosen (forward%s, measured once):\n",
                            parse_phase(FLAGS_phase) == TRAIN ? " + backward" : "");
    chose = true;
    std::printf("%20s\t%s\n", net.layer_names()[i].c_str(), choice.c_str());
  }
  if (!FLAGS_precision.empty() && parse_precision(FLAGS_precision, "--precision") != FP32) {
    std::printf("Precision: %s for convolutions and inner products; this CPU: %s\n",
                FLAGS_precision.c_str(), cpu_bf16_support().c_str());
  }
  std::printf("Average Forward pass: %.3f ms.\n", forward_total / n);
  std::printf("Average Backward pass: %.3f ms.\n", backward_total / n);
  std::printf("Average Forward-Backward: %.3f ms.\n", (forward_total + backward_total) / n);
  std::printf("Total Time: %.3f ms.\n", total);
  return 0;
}

#ifdef ENGINE_USE_CUDA
// One device's properties, as Caffe's device_query prints them, plus the software versions.
void print_device(int device) {
  cudaDeviceProp prop;
  ENGINE_CUDA_CHECK(cudaGetDeviceProperties(&prop, device));
  // CUDA 13 dropped the clock fields from cudaDeviceProp; the attributes remain.
  int clock_khz = 0, memory_clock_khz = 0;
  ENGINE_CUDA_CHECK(cudaDeviceGetAttribute(&clock_khz, cudaDevAttrClockRate, device));
  ENGINE_CUDA_CHECK(cudaDeviceGetAttribute(&memory_clock_khz, cudaDevAttrMemoryClockRate, device));
  size_t free_bytes = 0, total_bytes = 0;
  ENGINE_CUDA_CHECK(cudaMemGetInfo(&free_bytes, &total_bytes));
  constexpr double kMiB = 1024.0 * 1024.0;
  std::printf("Device id:                     %d\n", device);
  std::printf("Name:                          %s\n", prop.name);
  std::printf("Compute capability:            %d.%d\n", prop.major, prop.minor);
  std::printf("Total global memory:           %.0f MiB (%.0f MiB free)\n",
              prop.totalGlobalMem / kMiB, free_bytes / kMiB);
  std::printf("Multiprocessors:               %d\n", prop.multiProcessorCount);
  std::printf("Clock rate:                    %d MHz\n", clock_khz / 1000);
  std::printf("Memory clock rate:             %d MHz\n", memory_clock_khz / 1000);
  std::printf("Memory bus width:              %d bits\n", prop.memoryBusWidth);
  std::printf("L2 cache:                      %d KiB\n", prop.l2CacheSize / 1024);
  std::printf("Shared memory per block:       %zu KiB\n", prop.sharedMemPerBlock / 1024);
  std::printf("Registers per block:           %d\n", prop.regsPerBlock);
  std::printf("Warp size:                     %d\n", prop.warpSize);
  std::printf("Max threads per block:         %d\n", prop.maxThreadsPerBlock);
  std::printf("Max threads per multiprocessor: %d\n", prop.maxThreadsPerMultiProcessor);
  std::printf("Max block dimensions:          %d x %d x %d\n", prop.maxThreadsDim[0],
              prop.maxThreadsDim[1], prop.maxThreadsDim[2]);
  std::printf("Max grid dimensions:           %d x %d x %d\n", prop.maxGridSize[0],
              prop.maxGridSize[1], prop.maxGridSize[2]);
  std::printf("Concurrent copy and execution: %s\n", prop.asyncEngineCount > 0 ? "yes" : "no");
  std::printf("ECC enabled:                   %s\n", prop.ECCEnabled ? "yes" : "no");
  std::printf("PCI bus / device / domain:     %d / %d / %d\n", prop.pciBusID, prop.pciDeviceID,
              prop.pciDomainID);
}
#endif

int device_query_command() {
  const int count = Context::device_count();
  ENGINE_REQUIRE(count > 0, "no CUDA device is available on this machine");
#ifdef ENGINE_USE_CUDA
  int driver = 0, runtime = 0;
  ENGINE_CUDA_CHECK(cudaDriverGetVersion(&driver));
  ENGINE_CUDA_CHECK(cudaRuntimeGetVersion(&runtime));
  const size_t cudnn = cudnnGetVersion();
  std::printf("CUDA devices:                  %d\n", count);
  std::printf("CUDA driver / runtime:         %d.%d / %d.%d\n", driver / 1000, driver % 1000 / 10,
              runtime / 1000, runtime % 1000 / 10);
  std::printf("cuDNN:                         %zu.%zu.%zu\n", cudnn / 10000, cudnn % 10000 / 100,
              cudnn % 100);
  // --gpu=N: that device; no --gpu: every device.
  std::vector<int> devices;
  if (FLAGS_gpu.empty()) {
    for (int d = 0; d < count; ++d) devices.push_back(d);
  } else {
    select_device();
    devices.push_back(Context::device());
  }
  for (int device : devices) {
    std::printf("\n");
    Context::set_device(device);
    print_device(device);
  }
#endif
  return 0;
}

// ---- export_onnx ----------------------------------------------------------------------------

int export_onnx_command() {
#ifdef ENGINE_HAVE_ONNX
  ENGINE_REQUIRE(!FLAGS_output.empty(), "--output is required (the .onnx file to write)");
  const Phase phase = flag_given("phase") ? parse_phase(FLAGS_phase) : TEST;
  Net net(load_net_param(phase));
  if (FLAGS_weights.empty()) {
    LOG(WARNING) << "no --weights: the model gets the net's initial (filler) weights";
  } else {
    copy_weights(FLAGS_weights, net);
  }
  OnnxExportOptions options;
  options.opset = FLAGS_opset;
  options.dynamic_batch = FLAGS_batch == "dynamic";
  const OnnxExportReport report = export_onnx(net, FLAGS_output, options);
  for (const std::string& note : report.notes) std::printf("%s\n", note.c_str());
  std::string inputs, outputs;
  for (const auto& name : report.inputs) inputs += " " + name;
  for (const auto& name : report.outputs) outputs += " " + name;
  std::printf("Wrote %s: opset %d, %d nodes; inputs:%s; outputs:%s\n", FLAGS_output.c_str(),
              options.opset, report.nodes, inputs.c_str(), outputs.c_str());
  return 0;
#else
  ENGINE_FAIL("this engine was built without ONNX (Debian's libonnx-dev provides its schema)");
#endif
}

int import_onnx_command() {
#ifdef ENGINE_HAVE_ONNX
  ENGINE_REQUIRE(!FLAGS_model.empty(), "--model is required (the .onnx file to read)");
  ENGINE_REQUIRE(!FLAGS_output_prototxt.empty() && !FLAGS_output_weights.empty(),
                 "--output_prototxt and --output_weights are required");
  OnnxImportOptions options;
  if (!FLAGS_batch.empty()) {
    const char* end = FLAGS_batch.data() + FLAGS_batch.size();
    const auto [stop, error] = std::from_chars(FLAGS_batch.data(), end, options.batch);
    ENGINE_REQUIRE(error == std::errc() && stop == end && options.batch > 0,
                   "--batch must be a positive number, got '" << FLAGS_batch << "'");
  }
  const OnnxImport imported = import_onnx(FLAGS_model, options);
  for (const std::string& note : imported.notes) std::printf("%s\n", note.c_str());
  write_text_file(imported.net, FLAGS_output_prototxt);
  write_caffemodel(imported.weights, FLAGS_output_weights);
  std::printf("Wrote %s (%d layers) and %s\n", FLAGS_output_prototxt.c_str(),
              imported.net.layer_size(), FLAGS_output_weights.c_str());
  return 0;
#else
  ENGINE_FAIL("this engine was built without ONNX (Debian's libonnx-dev provides its schema)");
#endif
}

// ---- forward -------------------------------------------------------------------------------

// Loads --input into the net's Input blobs. An array whose shape differs from its blob's reshapes
// the blob (and then the net), so one prototxt serves any batch size or image size.
void feed_inputs(Net& net) {
  const Blobs& inputs = net.input_blobs();
  std::string names;
  for (Blob* blob : inputs) names += " " + net.blob_name(blob);
  if (names.empty()) names = " (none)";
  bool reshaped = false;
  for (const std::string& entry : split(FLAGS_input, ',')) {
    const size_t colon = entry.find(':');
    std::string name, file = entry;
    if (colon == std::string::npos) {
      ENGINE_REQUIRE(inputs.size() == 1, "--input=" << entry << " names no blob, but the net has "
                                                    << inputs.size() << " Input blobs:" << names
                                                    << "; give NAME:FILE.npy");
      name = net.blob_name(inputs[0]);
    } else {
      name = entry.substr(0, colon);
      file = entry.substr(colon + 1);
    }
    Blob* blob = nullptr;
    for (Blob* input : inputs) {
      if (net.blob_name(input) == name) blob = input;
    }
    ENGINE_REQUIRE(blob, "--input: '" << name << "' is not an Input blob of net " << net.name()
                                      << "; its Input blobs are:" << names);
    const NpyArray array = read_npy(file);
    const std::vector<int> shape(array.shape.begin(), array.shape.end());
    for (int64_t dim : array.shape) {
      ENGINE_REQUIRE(dim <= INT32_MAX, file << ": dimension " << dim << " is too large");
    }
    if (shape != blob->shape()) {
      LOG(INFO) << "Input " << name << ": reshaped from " << blob->shape_string() << " to "
                << shape_string(shape) << " (the shape of " << file << ")";
      blob->reshape(shape);
      reshaped = true;
    }
    std::copy(array.data.begin(), array.data.end(), blob->mutable_cpu_data());
  }
  if (reshaped) net.reshape();
}

void dump_blobs(const Net& net, const std::string& folder) {
  std::error_code error;
  std::filesystem::create_directories(folder, error);
  ENGINE_REQUIRE(!error, "--dump: cannot create the folder " << folder << ": " << error.message());
  std::ostringstream index;
  for (size_t i = 0; i < net.blobs().size(); ++i) {
    std::string file = net.blob_names()[i];
    std::replace(file.begin(), file.end(), '/', '_');
    file += ".npy";
    const Blob& blob = *net.blobs()[i];
    write_npy(folder + "/" + file, blob);
    index << net.blob_names()[i] << " " << file;
    for (int dim : blob.shape()) index << " " << dim;
    index << "\n";
  }
  write_file_atomic(folder + "/index.txt", index.str());
}

int forward_command() {
  select_device();
  const Phase phase = flag_given("phase") ? parse_phase(FLAGS_phase) : TEST;
  Net net(load_net_param(phase));
  if (!FLAGS_weights.empty()) copy_weights(FLAGS_weights, net);
  if (!FLAGS_input.empty()) feed_inputs(net);
  const float loss = net.forward();
  for (Blob* output : net.output_blobs()) {
    std::printf("%s: %s", net.blob_name(output).c_str(), output->shape_string().c_str());
    if (output->count() <= 10) {
      for (int64_t k = 0; k < output->count(); ++k) std::printf(" %g", output->cpu_data()[k]);
    }
    std::printf("\n");
  }
  std::printf("Loss: %g\n", loss);
  if (!FLAGS_dump.empty()) {
    dump_blobs(net, FLAGS_dump);
    std::printf("Wrote %zu blobs to %s\n", net.blobs().size(), FLAGS_dump.c_str());
  }
  return 0;
}

// ---- upgrade tools --------------------------------------------------------------------------

int upgrade_net_text_command() {
  const std::string& in = arguments[0];
  const std::string& out = arguments[1];
  NetParameter param;
  read_text_file(in, &param);
  if (!upgrade_net(&param, in)) std::printf("%s: already in the current format\n", in.c_str());
  write_text_file(param, out);
  std::printf("Wrote the net to %s\n", out.c_str());
  return 0;
}

int upgrade_net_binary_command() {
  const std::string& in = arguments[0];
  const std::string& out = arguments[1];
  NetParameter param;
  read_binary_file(in, &param);
  if (!upgrade_net(&param, in)) std::printf("%s: already in the current format\n", in.c_str());
  write_caffemodel(std::move(param), out);
  std::printf("Wrote the net to %s\n", out.c_str());
  return 0;
}

int upgrade_solver_text_command() {
  const std::string& in = arguments[0];
  const std::string& out = arguments[1];
  SolverParameter param;
  read_text_file(in, &param);
  if (!upgrade_solver(&param, in)) std::printf("%s: already in the current format\n", in.c_str());
  write_text_file(param, out);
  std::printf("Wrote the solver to %s\n", out.c_str());
  return 0;
}

const std::map<std::string, Command>& commands() {
  static const std::map<std::string, Command> table = {
      {"train",
       {train_command,
        "engine train --solver=SOLVER.prototxt [--weights=W.caffemodel[,W2...] |\n"
        "             --snapshot=S.solverstate|latest] [--iterations=N] [--gpu=ID|ID,ID...|all]\n"
        "             [--level=0] [--stage=a,b] [--sigint_effect=stop] [--sighup_effect=snapshot]\n"
        "             [--collective_timeout=300] [--bucket_mb=4] [--model_parallel=W]\n"
        "             [--model_parallel_scope=ALL|FULLY_CONNECTED] [--precision=fp32|bf16|fp16]\n"
        "Data parallel: mpirun -np N engine train ... (each rank trains on its shard of the\n"
        "data; with --gpu, one GPU per rank), or --gpu=0,1 / all in one process. Model\n"
        "parallel: mpirun -np N engine train --model_parallel=W (groups of W ranks).\n"
        "Trains a net as the solver file says; snapshots as it goes and at the end.",
        {"solver", "weights", "snapshot", "iterations", "gpu", "deterministic",
         "cudnn_workspace_mb", "level", "stage", "sigint_effect", "sighup_effect",
         "collective_timeout", "bucket_mb", "model_parallel", "model_parallel_scope",
         "precision"}}},
      {"test",
       {test_command,
        "engine test --model=NET.prototxt --weights=W.caffemodel [--iterations=50] [--gpu=ID]\n"
        "            [--level=0] [--stage=a,b] [--precision=fp32|bf16|fp16]\n"
        "Scores trained weights: runs the TEST net and prints each output's mean.",
        {"model", "weights", "iterations", "gpu", "deterministic", "cudnn_workspace_mb", "level",
         "stage", "precision"}}},
      {"time",
       {time_command,
        "engine time --model=NET.prototxt [--iterations=50] [--phase=TRAIN|TEST] [--level=0]\n"
        "            [--stage=a,b] [--engine=CAFFE|ONEDNN|DEFAULT] [--batch=N] [--gpu=ID]\n"
        "            [--precision=fp32|bf16|fp16]\n"
        "Runs forward and backward and prints each layer's average times and the totals.",
        {"model", "iterations", "phase", "level", "stage", "engine", "batch", "gpu",
         "deterministic", "cudnn_workspace_mb", "precision"}}},
      {"forward",
       {forward_command,
        "engine forward --model=NET.prototxt [--weights=W.caffemodel[,W2...]]\n"
        "               [--input=x.npy | --input=NAME:x.npy,NAME2:y.npy] [--dump=DIR]\n"
        "               [--phase=TEST|TRAIN] [--level=0] [--stage=a,b] [--engine=...] [--gpu=ID]\n"
        "Without --input, Input blobs hold zeros and data layers read their sources. An input\n"
        "array of another shape than its blob's reshapes the blob and the net. --dump writes\n"
        "every blob as DIR/NAME.npy ('/' in a name becomes '_') and DIR/index.txt, one line\n"
        "per blob: NAME FILE DIM0 DIM1 ... The phase defaults to TEST.\n"
        "Runs one forward pass and prints the outputs' shapes.",
        {"model", "weights", "input", "dump", "phase", "level", "stage", "engine", "gpu",
         "deterministic", "cudnn_workspace_mb"}}},
      {"export_onnx",
       {export_onnx_command,
        "engine export_onnx --model=DEPLOY.prototxt [--weights=W.caffemodel[,W2...]]\n"
        "                   --output=M.onnx [--opset=13] [--batch=N|dynamic] [--phase=TEST]\n"
        "Losses, Accuracy and Silence are dropped and data layers become inputs (it says\n"
        "which); any other layer ONNX cannot express is an error naming it.\n"
        "Writes the net and its weights as an ONNX model for inference.",
        {"model", "weights", "output", "opset", "batch", "phase", "level", "stage"}}},
      {"import_onnx",
       {import_onnx_command,
        "engine import_onnx --model=M.onnx --output_prototxt=NET.prototxt\n"
        "                   --output_weights=W.caffemodel [--batch=1]\n"
        "--batch fixes a symbolic first dimension of the inputs. An operator without a\n"
        "layer is an error naming its node.\n"
        "Reads an ONNX model into a net and its weights.",
        {"model", "output_prototxt", "output_weights", "batch"}}},
      {"device_query",
       {device_query_command, "engine device_query [--gpu=ID]\nPrints the CUDA devices.",
        {"gpu"}}},
      {"upgrade_net_proto_text",
       {upgrade_net_text_command,
        "engine upgrade_net_proto_text IN.prototxt OUT.prototxt\n"
        "Upgrades a net prototxt (V0/V1 layers, input fields, ...) to the current form.",
        {},
        2}},
      {"upgrade_net_proto_binary",
       {upgrade_net_binary_command,
        "engine upgrade_net_proto_binary IN.caffemodel OUT.caffemodel\n"
        "Upgrades a binary net (weights) to the current form.",
        {},
        2}},
      {"upgrade_solver_proto_text",
       {upgrade_solver_text_command,
        "engine upgrade_solver_proto_text IN.prototxt OUT.prototxt\n"
        "Upgrades a solver prototxt (solver_type) to the current form.",
        {},
        2}},
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
    std::printf("  %-26s %s\n", name.c_str(), split(command.usage, '\n').back().c_str());
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
#ifdef ENGINE_EMBED_PYTHON
  use_embedded_python();
#endif
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
  for (int i = 2; i < argc; ++i) arguments.push_back(argv[i]);
  if (static_cast<int>(arguments.size()) != found->second.arguments) {
    std::fprintf(stderr, "engine %s: takes %d argument(s), got %zu\nusage: %s\n", name.c_str(),
                 found->second.arguments, arguments.size(), found->second.usage.c_str());
    return 1;
  }
  // train, test and the upgrades report through the log, in Caffe's words.
  if (name == "train" || name == "test" || name.rfind("upgrade_", 0) == 0) FLAGS_minloglevel = 0;
  // A write past `ulimit -f` fails with EFBIG and is reported like a full disk, rather than
  // killing the process mid-snapshot.
  std::signal(SIGXFSZ, SIG_IGN);
  try {
    return found->second.run();
  } catch (const Error& error) {
    std::fprintf(stderr, "engine %s: error: %s\n", name.c_str(), error.what());
  } catch (const std::bad_alloc&) {
    std::fprintf(stderr, "engine %s: error: out of host memory\n", name.c_str());
  } catch (const std::exception& error) {
    std::fprintf(stderr, "engine %s: error: %s\n", name.c_str(), error.what());
  }
  return 1;
}
