// _engine: the compiled half of the Python package (python/engine). A thin layer over the public
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
#include "solvers/solver.hpp"

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
// the host, as pycaffe's blob.data does; the array keeps the blob alive.
py::array host_view(const std::shared_ptr<Blob>& blob, bool diff) {
  std::vector<py::ssize_t> shape(blob->shape().begin(), blob->shape().end());
  float* values = diff ? blob->mutable_cpu_diff() : blob->mutable_cpu_data();
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

std::vector<std::string> names_of(const Net& net, const Blobs& blobs) {
  std::vector<std::string> names;
  for (const Blob* blob : blobs) names.push_back(net.blob_name(blob));
  return names;
}

}  // namespace
}  // namespace engine

PYBIND11_MODULE(_engine, m) {
  using namespace engine;
  m.doc() = "The engine's compiled core; use the engine package, which wraps it as pycaffe.";
  static bool logging = false;
  if (!logging) {
    FLAGS_logtostderr = true;
    FLAGS_minloglevel = 1;  // warnings and errors; engine.set_log_level(0) shows Caffe's INFO log
    google::InitGoogleLogging("engine");
    logging = true;
  }
  py::register_exception<Error>(m, "Error", PyExc_RuntimeError);

  m.def("set_mode_cpu", [] { Context::set_mode(Mode::CPU); });
  m.def("set_mode_gpu", [] { Context::set_mode(Mode::GPU); });
  m.def("set_device", [](int device) { Context::set_device(device); });
  m.def("set_random_seed", [](uint64_t seed) { Context::set_seed(seed); });
  m.def("device_count", &Context::device_count);
  m.def("layer_type_list", &registered_layer_types);
  m.def("set_log_level", [](int level) { FLAGS_minloglevel = level; },
        "glog's minimum level: 0 INFO (the training log), 1 WARNING, 2 ERROR");
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

  py::class_<Layer>(m, "Layer")
      .def_property_readonly("type", &Layer::type)
      .def_property_readonly("name", &Layer::name)
      .def_property_readonly("blobs", &layer_blobs)
      .def("reshape", [](Layer&) {});

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
      .def("add_gradients_ready_callback", &Solver::add_gradients_ready_callback);
  // A solver from a file; a non-empty `type` replaces the file's (SGDSolver and the like).
  m.def("_solver",
        [](const std::string& file, const std::string& type) {
          SolverParameter param = read_solver_file(file);
          if (!type.empty()) param.set_type(type);
          return make_solver(param, file);
        },
        py::arg("solver_file"), py::arg("type") = std::string());
}
