// The compiled half of the Python package (python/engine): the definitions of the module
// `engine._engine`, which the extension module (_engine.cpp) and the engine binary, when it embeds
// the interpreter for Python layers (embedded_python.cpp), both make. A thin layer over the public
// C++ API -- Blob, Layer, Net, Solver, the Context settings -- that pycaffe.py dresses in
// pycaffe's names. Blob data and diffs reach Python as numpy arrays over the blob's own host
// memory (no copy), each holding a reference that keeps its blob alive. engine::Error becomes
// the Python exception engine.Error with the engine's message.
#include <pybind11/functional.h>
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <glog/logging.h>

#include <algorithm>
#include <memory>
#include <string>
#include <vector>

#include "core/context.hpp"
#include "core/errors.hpp"
#include "core/layer_registry.hpp"
#include "core/net.hpp"
#include "io/caffemodel.hpp"
#include "io/upgrade.hpp"
#include "layers/python_layer.hpp"
#include "parallel/data_parallel.hpp"
#include "parallel/nccl_communicator.hpp"
#ifdef ENGINE_HAVE_ONNX
#include "onnx/onnx_export.hpp"
#endif
#include "solvers/solver.hpp"
#include "bindings.hpp"

namespace py = pybind11;

// Nets and solvers own their layers: never copied (pybind11 would otherwise try).
namespace pybind11::detail {
template <>
struct is_copy_constructible<engine::Net> : std::false_type {};
template <>
struct is_copy_constructible<engine::Solver> : std::false_type {};
}  // namespace pybind11::detail

namespace engine {
namespace {

// A numpy array over the blob's data (or diff) in host memory. Asking for it moves the values to
// the host, as pycaffe's blob.data does, and keeps them plain from then on (no blocked layout:
// the array stays current); the array keeps the blob alive.
py::array host_view(const std::shared_ptr<Blob>& blob, bool diff) {
  std::vector<py::ssize_t> shape(blob->shape().begin(), blob->shape().end());
  float* values = diff ? blob->mutable_cpu_diff() : blob->mutable_cpu_data();
  // The array may be read or written at any time, as in pycaffe: the blob stays plain.
  (diff ? blob->diff_memory() : blob->data_memory())->expose_host();
  auto* owner = new std::shared_ptr<Blob>(blob);
  py::capsule keep(owner, [](void* p) { delete static_cast<std::shared_ptr<Blob>*>(p); });
  return py::array_t<float>(shape, values, keep);
}

Phase phase_of(int phase) {
  ENGINE_REQUIRE(phase == TRAIN || phase == TEST,
                 "phase must be engine.TRAIN (0) or engine.TEST (1), got " << phase);
  return static_cast<Phase>(phase);
}

std::unique_ptr<Net> make_net(const std::string& file, int phase, int level,
                              const std::vector<std::string>& stages,
                              const std::string& weights) {
  auto net = std::make_unique<Net>(file, phase_of(phase), level, stages);
  if (!weights.empty()) copy_weights_from_file(weights, net.get());
  return net;
}

// The learnable parameters' blobs of a layer, shared with the net.
std::vector<std::shared_ptr<Blob>> layer_blobs(Layer& layer) { return layer.blobs(); }

// Blobs as Python sees them in a Python layer: shared pointers that do not own (the net does).
py::list python_blobs(const Blobs& blobs) {
  py::list list;
  for (Blob* blob : blobs) list.append(std::shared_ptr<Blob>(blob, [](Blob*) {}));
  return list;
}

// type: "Python": setup, reshape, forward and backward are the methods of a Python object, an
// instance of python_param's module.layer made with the layer's LayerParameter message.
class PythonLayer : public Layer {
 public:
  PythonLayer(const LayerParameter& param, py::object self) : Layer(param), self_(std::move(self)) {}
  ~PythonLayer() override {
    py::gil_scoped_acquire gil;
    self_ = py::object();
  }
  void reshape(const Blobs& bottom, const Blobs& top) override { call("reshape", bottom, top); }

 protected:
  void layer_setup(const Blobs& bottom, const Blobs& top) override { call("setup", bottom, top); }
  void forward_cpu(const Blobs& bottom, const Blobs& top) override {
    call("forward", bottom, top);
  }
  void backward_cpu(const Blobs& top, const std::vector<bool>& propagate_down,
                    const Blobs& bottom) override {
    py::gil_scoped_acquire gil;
    try {
      self_.attr("backward")(python_blobs(top), propagate_down, python_blobs(bottom));
    } catch (py::error_already_set& error) {
      ENGINE_FAIL(describe() << ": backward raised " << error.what());
    }
  }

 private:
  void call(const char* method, const Blobs& bottom, const Blobs& top) {
    py::gil_scoped_acquire gil;
    try {
      self_.attr(method)(python_blobs(bottom), python_blobs(top));
    } catch (py::error_already_set& error) {
      ENGINE_FAIL(describe() << ": " << method << " raised " << error.what());
    }
  }

  py::object self_;
};

// A Python layer's learnable parameters, `self.blobs` as pycaffe has it: a sequence of the C++
// layer's blobs that setup() extends with add_blob(*shape). The net collects them after setup,
// so the solver trains them and caffemodels save and load them like any layer's.
struct PythonLayerBlobs {
  Layer* layer;

  std::shared_ptr<Blob> at(py::ssize_t index) const {
    const auto count = static_cast<py::ssize_t>(layer->blobs().size());
    if (index < 0) index += count;
    if (index < 0 || index >= count) throw py::index_error(layer->describe() + ": no blob " +
                                                           std::to_string(index));
    return layer->blobs()[index];
  }
};

// Caffe's solver_count and solver_rank: which shard of the data this process's TRAIN nets read,
// and its member number in NCCL. Either may be set first.
struct SolverCounts {
  int count = 1, rank = 0;

  void apply() const {
    if (count >= 1 && rank >= 0 && rank < count) Context::set_data_shard(rank, count);
  }
};
SolverCounts solver_counts;

// pycaffe's NCCL: data parallelism with one process per GPU. Each process sets its device,
// solver count and rank, makes its solver, and joins with the id one of them made by
// NCCL.new_uid(); bcast() gives every replica the root's weights and solver.add_callback(nccl)
// averages the gradients over the processes before each update (DataParallel's buckets).
class PythonNccl {
 public:
  // As --bucket_mb's default.
  static constexpr size_t kBucketBytes = size_t(4) << 20;
  static constexpr double kTimeoutSeconds = 300;

  PythonNccl(Solver& solver, const std::string& id)
      : solver_(solver),
        comm_(join(id)),
        peers_(*comm_, solver.net(), kBucketBytes, solver.param().layer_wise_reduce()) {}

  void broadcast_weights() { peers_.broadcast_weights(); }
  void attach() { solver_.set_peers(&peers_); }

 private:
  static std::unique_ptr<NcclCommunicator> join(const std::string& id) {
    ENGINE_REQUIRE(solver_counts.rank < solver_counts.count,
                   "NCCL: solver rank " << solver_counts.rank << " is not below the solver count "
                                        << solver_counts.count
                                        << " (engine.set_solver_count, set_solver_rank)");
    ENGINE_REQUIRE(Context::mode() == Mode::GPU,
                   "NCCL works on GPUs: call engine.set_mode_gpu() and set_device() first");
    return NcclCommunicator::with_unique_id(id, solver_counts.rank, solver_counts.count,
                                            Context::device(), kTimeoutSeconds);
  }

  Solver& solver_;
  std::unique_ptr<NcclCommunicator> comm_;
  DataParallel peers_;
};

}  // namespace

LayerPtr make_python_layer(const LayerParameter& param) {
  py::gil_scoped_acquire gil;
  const PythonParameter& python = param.python_param();
  const std::string where = "layer " + param.name() + " (Python)";
  ENGINE_REQUIRE(!python.module().empty() && !python.layer().empty(),
                 where << ": python_param needs a module and a layer (class) name");
  py::object made;
  try {
    py::object type = py::module_::import(python.module().c_str()).attr(python.layer().c_str());
    py::object message = py::module_::import("engine.proto.caffe_pb2").attr("LayerParameter")();
    message.attr("ParseFromString")(py::bytes(param.SerializeAsString()));
    made = type(message);
    made.attr("param_str") = python.param_str();
    made.attr("phase") = static_cast<int>(param.phase());
  } catch (py::error_already_set& error) {
    ENGINE_FAIL(where << ": cannot make " << python.module() << "." << python.layer() << ": "
                      << error.what());
  }
  auto layer = std::make_unique<PythonLayer>(param, made);
  made.attr("blobs") = PythonLayerBlobs{layer.get()};
  return layer;
}

namespace {

std::vector<std::string> names_of(const Net& net, const Blobs& blobs) {
  std::vector<std::string> names;
  for (const Blob* blob : blobs) names.push_back(net.blob_name(blob));
  return names;
}

}  // namespace

void define_python_module(py::module_& m) {
  m.doc() = "The engine's compiled core; use the engine package, which wraps it as pycaffe.";
  py::register_exception<Error>(m, "Error", PyExc_RuntimeError);
  set_python_layer_factory(make_python_layer);

  m.def("set_mode_cpu", [] { Context::set_mode(Mode::CPU); });
  m.def("set_mode_gpu", [] { Context::set_mode(Mode::GPU); });
  m.def("set_device", [](int device) { Context::set_device(device); });
  m.def("set_random_seed", [](uint64_t seed) { Context::set_seed(seed); });
  m.def("device_count", &Context::device_count);
  m.def("layer_type_list", &registered_layer_types);
  m.def("set_log_level", [](int level) { FLAGS_minloglevel = level; },
        "glog's minimum level: 0 INFO (the training log), 1 WARNING, 2 ERROR");
  m.def("set_solver_count", [](int count) {
    ENGINE_REQUIRE(count >= 1, "set_solver_count: the count must be at least 1, got " << count);
    solver_counts.count = count;
    solver_counts.apply();
  });
  m.def("set_solver_rank", [](int rank) {
    ENGINE_REQUIRE(rank >= 0, "set_solver_rank: the rank must not be negative, got " << rank);
    solver_counts.rank = rank;
    solver_counts.apply();
  });
  m.def("solver_count", [] { return solver_counts.count; });
  m.def("solver_rank", [] { return solver_counts.rank; });
  m.def("has_nccl", [] {
#ifdef ENGINE_HAVE_NCCL
    return true;
#else
    return false;
#endif
  });

  py::class_<Blob, std::shared_ptr<Blob>>(m, "Blob")
      .def(py::init([](std::vector<int> shape) { return std::make_shared<Blob>(shape); }),
           py::arg("shape") = std::vector<int>())
      .def_property_readonly("shape", [](const Blob& b) { return b.shape(); })
      .def_property_readonly("count", [](const Blob& b) { return b.count(); })
      .def_property_readonly("num", &Blob::num)
      .def_property_readonly("channels", &Blob::channels)
      .def_property_readonly("height", &Blob::height)
      .def_property_readonly("width", &Blob::width)
      .def_property_readonly("data", [](std::shared_ptr<Blob> b) { return host_view(b, false); })
      .def_property_readonly("diff", [](std::shared_ptr<Blob> b) { return host_view(b, true); })
      .def("reshape", [](Blob& b, py::args dims) {
        std::vector<int> shape;
        for (const auto& dim : dims) shape.push_back(dim.cast<int>());
        ENGINE_REQUIRE(std::all_of(shape.begin(), shape.end(), [](int d) { return d >= 0; }),
                       "Blob.reshape: dimensions must not be negative");
        b.reshape(shape);
      });

  py::class_<PythonLayerBlobs>(m, "PythonLayerBlobs")
      .def("add_blob",
           [](PythonLayerBlobs& blobs, py::args dims) {
             std::vector<int> shape;
             for (const auto& dim : dims) shape.push_back(dim.cast<int>());
             ENGINE_REQUIRE(std::all_of(shape.begin(), shape.end(), [](int d) { return d >= 0; }),
                            blobs.layer->describe() << ": add_blob: negative dimension");
             blobs.layer->blobs().push_back(std::make_shared<Blob>(shape));
           })
      .def("__len__", [](const PythonLayerBlobs& blobs) { return blobs.layer->blobs().size(); })
      .def("__getitem__", &PythonLayerBlobs::at)
      .def("__iter__", [](const PythonLayerBlobs& blobs) {
        return py::iter(py::cast(blobs.layer->blobs()));
      });

  py::class_<Layer>(m, "Layer")
      .def_property_readonly("type", &Layer::type)
      .def_property_readonly("name", &Layer::name)
      .def_property_readonly("blobs", &layer_blobs);

  py::class_<Net>(m, "Net")
      .def(py::init(&make_net), py::arg("network_file"), py::arg("phase"),
           py::arg("level") = 0, py::arg("stages") = std::vector<std::string>(),
           py::arg("weights") = std::string())
      .def(py::init([](const std::string& file, const std::string& weights, int phase) {
             return make_net(file, phase, 0, {}, weights);
           }),
           py::arg("network_file"), py::arg("weights"), py::arg("phase"))
      .def("_forward", &Net::forward_from_to)
      .def("_backward", &Net::backward_from_to)
      .def("reshape", &Net::reshape)
      // pycaffe's scripts hand NCCL to the net for layer-wise reduction; here the solver's
      // layer_wise_reduce already has NCCL's buckets start during backward where that helps.
      .def("after_backward", [](Net&, PythonNccl&) {}, py::arg("nccl"))
      .def("clear_param_diffs", &Net::clear_param_diffs)
      .def("copy_from", [](Net& net, const std::string& file) { copy_weights_from_file(file, &net); })
      .def("share_with", [](Net& net, const Net& other) { net.share_trained_layers_with(other); })
      .def("save", [](const Net& net, const std::string& file, bool diff) {
             write_caffemodel(net, file, diff);
           },
           py::arg("filename"), py::arg("save_diff") = false)
      .def_property_readonly("name", &Net::name)
      .def_property_readonly("phase", [](const Net& net) { return static_cast<int>(net.phase()); })
      .def_property_readonly("layers",
                             [](const Net& net) {
                               std::vector<Layer*> layers;
                               for (const auto& layer : net.layers()) layers.push_back(layer.get());
                               return layers;
                             },
                             py::return_value_policy::reference_internal)
      .def_property_readonly("_layer_names", &Net::layer_names)
      .def_property_readonly("_blob_names", &Net::blob_names)
      .def_property_readonly("_blobs", &Net::blobs)
      .def_property_readonly("_inputs", [](const Net& n) { return names_of(n, n.input_blobs()); })
      .def_property_readonly("_outputs", [](const Net& n) { return names_of(n, n.output_blobs()); })
      .def_property_readonly("_bottom_names",
                             [](const Net& n) {
                               std::vector<std::vector<std::string>> names;
                               for (const Blobs& b : n.bottom_vecs()) names.push_back(names_of(n, b));
                               return names;
                             })
      .def_property_readonly("_top_names",
                             [](const Net& n) {
                               std::vector<std::vector<std::string>> names;
                               for (const Blobs& t : n.top_vecs()) names.push_back(names_of(n, t));
                               return names;
                             })
      .def_property_readonly("_blob_loss_weights", [](const Net& n) {
        std::vector<float> weights;
        for (const auto& blob : n.blobs()) weights.push_back(n.output_loss_weight(blob.get()));
        return weights;
      });

  m.def(
      "export_onnx",
      [](const Net& net, const std::string& path, int opset, bool dynamic_batch) {
#ifdef ENGINE_HAVE_ONNX
        OnnxExportOptions options;
        options.opset = opset;
        options.dynamic_batch = dynamic_batch;
        const OnnxExportReport report = export_onnx(net, path, options);
        py::dict result;
        result["notes"] = report.notes;
        result["inputs"] = report.inputs;
        result["outputs"] = report.outputs;
        result["output_blobs"] = report.output_blobs;
        result["nodes"] = report.nodes;
        return result;
#else
        ENGINE_FAIL("this engine was built without ONNX (libonnx-dev)");
        return py::dict();
#endif
      },
      py::arg("net"), py::arg("path"), py::arg("opset") = 13, py::arg("dynamic_batch") = false,
      "Writes the net and its weights as an ONNX model; returns the notes (dropped layers, data "
      "layers made inputs), the inputs, the outputs and the node count.");

  py::class_<Solver>(m, "Solver")
      .def_property_readonly("net", &Solver::net, py::return_value_policy::reference_internal)
      .def_property_readonly("test_nets",
                             [](const Solver& s) {
                               std::vector<Net*> nets;
                               for (const auto& net : s.test_nets()) nets.push_back(net.get());
                               return nets;
                             },
                             py::return_value_policy::reference_internal)
      .def_property_readonly("iter", &Solver::iter)
      .def_property_readonly("type", [](const Solver& s) { return s.param().type(); })
      .def("step", &Solver::step, py::arg("iterations"))
      .def("solve", [](Solver& s, const std::string& resume) { s.solve(resume); },
           py::arg("resume_file") = std::string())
      .def("snapshot", &Solver::snapshot)
      .def("restore", &Solver::restore, py::arg("solverstate_file"))
      .def("test_all", &Solver::test_all)
      .def("apply_update", &Solver::apply_update)
      .def("add_gradients_ready_callback", &Solver::add_gradients_ready_callback)
      .def("add_callback", [](Solver&, PythonNccl& nccl) { nccl.attach(); }, py::arg("nccl"),
           py::keep_alive<1, 2>(),
           "pycaffe's form for NCCL: average the gradients over the processes before each "
           "update; the root alone tests and snapshots")
      .def_property_readonly("param",
                             [](const Solver& s) {
                               py::object message = py::module_::import("engine.proto.caffe_pb2")
                                                        .attr("SolverParameter")();
                               message.attr("ParseFromString")(
                                   py::bytes(s.param().SerializeAsString()));
                               return message;
                             })
      .def("add_callback",
           [](Solver& s, std::function<void()> on_start, std::function<void()> on_gradients_ready) {
             s.add_iteration_start_callback(on_start);
             s.add_gradients_ready_callback(on_gradients_ready);
           },
           py::arg("on_start"), py::arg("on_gradients_ready"),
           "pycaffe's form: on_start() before every iteration's forward, on_gradients_ready() "
           "before its update");
  py::class_<PythonNccl>(m, "NCCL")
      .def(py::init<Solver&, const std::string&>(), py::arg("solver"), py::arg("uid"),
           py::keep_alive<1, 2>())
      .def_static("new_uid", [] { return py::bytes(NcclCommunicator::new_unique_id()); })
      .def("bcast", &PythonNccl::broadcast_weights,
           "Gives every process the root's weights (call it before training).");
  // A solver from a file; a non-empty `type` replaces the file's (SGDSolver and the like).
  m.def("_solver",
        [](const std::string& file, const std::string& type) {
          SolverParameter param = read_solver_file(file);
          if (!type.empty()) param.set_type(type);
          return make_solver(param, file);
        },
        py::arg("solver_file"), py::arg("type") = std::string());
}

}  // namespace engine
