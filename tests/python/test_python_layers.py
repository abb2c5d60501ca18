"""type: "Python" layers: values, gradients against finite differences and against the engine's
own EuclideanLoss, a Python data layer feeding a solver, and the errors."""
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest

import engine as caffe

BINARY = Path(os.environ.get("ENGINE_BINARY_DIR", Path(__file__).parents[2] / "build"))

SCALE_NET = """
force_backward: true
layer { name: "x" type: "Input" top: "x" input_param { shape { dim: 2 dim: 3 } } }
layer { name: "scale" type: "Python" bottom: "x" top: "y"
  python_param { module: "pylayers" layer: "Scale" param_str: "2.5" } }
"""

LOSS_NET = """
force_backward: true
layer { name: "in" type: "Input" top: "a" top: "b"
  input_param { shape { dim: 4 dim: 3 } shape { dim: 4 dim: 3 } } }
layer { name: "ours" type: "Python" bottom: "a" bottom: "b" top: "python_loss" loss_weight: 1
  python_param { module: "pylayers" layer: "EuclideanLoss" } }
layer { name: "theirs" type: "EuclideanLoss" bottom: "a" bottom: "b" top: "engine_loss"
  loss_weight: 0 }
"""


def net_from(tmp_path, text, phase=caffe.TEST):
    path = tmp_path / "net.prototxt"
    path.write_text(text)
    return caffe.Net(str(path), phase)


def test_a_python_layer_runs_forward_and_backward(tmp_path):
    net = net_from(tmp_path, SCALE_NET)
    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    np.testing.assert_allclose(net.forward(x=x)["y"], 2.5 * x)
    top_diff = np.ones((2, 3), np.float32) * 4
    np.testing.assert_allclose(net.backward(y=top_diff)["x"], 10.0)
    assert net.layer_dict["scale"].type == "Python"


def test_a_python_loss_matches_the_engines(tmp_path):
    net = net_from(tmp_path, LOSS_NET)
    rng = np.random.RandomState(2)
    a, b = rng.randn(4, 3).astype(np.float32), rng.randn(4, 3).astype(np.float32)
    out = net.forward(a=a, b=b)
    np.testing.assert_allclose(out["python_loss"], out["engine_loss"], rtol=1e-5)
    diffs = net.backward()
    # Finite differences of the Python loss for a few entries of a.
    for index in [(0, 0), (2, 1), (3, 2)]:
        step = 1e-3
        up, down = a.copy(), a.copy()
        up[index] += step
        down[index] -= step
        numeric = (float(net.forward(a=up, b=b)["python_loss"][0]) -
                   float(net.forward(a=down, b=b)["python_loss"][0])) / (2 * step)
        assert abs(numeric - diffs["a"][index]) <= 1e-2 * abs(numeric) + 1e-4
    np.testing.assert_allclose(diffs["a"], -diffs["b"], rtol=1e-6)


POINTS_NET = """
layer { name: "points" type: "Python" top: "x" top: "label"
  python_param { module: "pylayers" layer: "Points" param_str: "32" } }
layer { name: "ip" type: "InnerProduct" bottom: "x" top: "ip"
  inner_product_param { num_output: 2 weight_filler { type: "gaussian" std: 0.01 } } }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "ip" bottom: "label" top: "loss" }
"""


def write_points_solver(folder, max_iter):
    (folder / "net.prototxt").write_text(POINTS_NET)
    solver_file = folder / "solver.prototxt"
    solver_file.write_text('net: "%s"\nbase_lr: 0.1\nmomentum: 0.9\nlr_policy: "fixed"\n'
                           'max_iter: %d\nrandom_seed: 1\ndisplay: 10\nsnapshot_prefix: "%s"\n'
                           % (folder / "net.prototxt", max_iter, folder / "points"))
    return solver_file


def test_a_python_data_layer_feeds_a_solver(tmp_path):
    solver = caffe.SGDSolver(str(write_points_solver(tmp_path, 100)))
    first = float(solver.net.forward()["loss"])
    solver.step(100)
    last = float(solver.net.forward()["loss"])
    assert first > 0.6 and last < 0.2, (first, last)


CHANNEL_SCALE_NET = """
force_backward: true
layer { name: "x" type: "Input" top: "x" input_param { shape { dim: 5 dim: 3 } } }
layer { name: "scale" type: "Python" bottom: "x" top: "y"
  python_param { module: "pylayers" layer: "ChannelScale" } }
"""


def test_python_layer_parameters_are_the_nets(tmp_path):
    net = net_from(tmp_path, CHANNEL_SCALE_NET)
    assert list(net.params) == ["scale"] and net.params["scale"][0].shape == [3]
    weights = net.params["scale"][0]
    weights.data[...] = [0.5, -2.0, 3.0]
    rng = np.random.RandomState(4)
    x, top_diff = rng.randn(5, 3).astype(np.float32), rng.randn(5, 3).astype(np.float32)
    np.testing.assert_allclose(net.forward(x=x)["y"], x * [0.5, -2.0, 3.0], rtol=1e-6)
    net.clear_param_diffs()
    net.backward(y=top_diff)
    analytic = weights.diff.copy()
    # Finite differences of sum(y * top_diff) in each weight.
    for c in range(3):
        step = 1e-2
        objective = []
        for sign in (1, -1):
            weights.data[c] += sign * step
            objective.append(float((net.forward(x=x)["y"] * top_diff).sum()))
            weights.data[c] -= sign * step
        assert abs((objective[0] - objective[1]) / (2 * step) - analytic[c]) < 1e-3

    saved = str(tmp_path / "scale.caffemodel")
    net.save(saved)
    again = caffe.Net(str(tmp_path / "net.prototxt"), saved, caffe.TEST)
    np.testing.assert_array_equal(again.params["scale"][0].data, [0.5, -2.0, 3.0])
    with pytest.raises(IndexError):
        again.layer_dict["scale"].blobs[1]


def test_a_solver_trains_python_layer_parameters(tmp_path):
    (tmp_path / "net.prototxt").write_text("""
layer { name: "x" type: "DummyData" top: "x" top: "target"
  dummy_data_param { shape { dim: 8 dim: 3 } shape { dim: 8 dim: 3 }
                     data_filler { type: "constant" value: 1 } data_filler { type: "constant" value: 4 } } }
layer { name: "scale" type: "Python" bottom: "x" top: "y"
  python_param { module: "pylayers" layer: "ChannelScale" } }
layer { name: "loss" type: "EuclideanLoss" bottom: "y" bottom: "target" top: "loss" }
""")
    (tmp_path / "solver.prototxt").write_text(
        'net: "%s"\nbase_lr: 0.05\nlr_policy: "fixed"\nmax_iter: 200\n'
        'snapshot_prefix: "%s"\n' % (tmp_path / "net.prototxt", tmp_path / "s"))
    solver = caffe.SGDSolver(str(tmp_path / "solver.prototxt"))
    solver.step(200)
    # y = w * 1 is pulled to the target 4.
    np.testing.assert_allclose(solver.net.params["scale"][0].data, 4.0, rtol=1e-3)


def test_python_layer_errors_name_the_layer(tmp_path):
    broken = SCALE_NET.replace('layer: "Scale" param_str: "2.5"', 'layer: "Broken"')
    with pytest.raises(caffe.Error, match=r"layer scale \(Python\): forward raised ValueError"):
        net_from(tmp_path, broken).forward(x=np.zeros((2, 3)))
    missing = SCALE_NET.replace('module: "pylayers"', 'module: "no_such_module"')
    with pytest.raises(caffe.Error, match=r"cannot make no_such_module.Scale"):
        net_from(tmp_path, missing)


def test_engine_train_runs_a_python_data_layer_as_python_does(tmp_path):
    """The binary embeds the interpreter: the same Python data layer trains the same weights
    under `engine train` as under solver.step."""
    solver_file = write_points_solver(tmp_path, 60)
    environment = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [str(Path(__file__).parent), os.environ.get("PYTHONPATH", "")]))
    result = subprocess.run([str(BINARY / "bin" / "engine"), "train", "--solver=" + str(solver_file)],
                            capture_output=True, text=True, env=environment, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "Iteration 50" in result.stderr
    trained = caffe.Net(str(tmp_path / "net.prototxt"), str(tmp_path / "points_iter_60.caffemodel"),
                        caffe.TEST)

    solver = caffe.SGDSolver(str(solver_file))
    solver.step(60)
    for got, want in zip(trained.params["ip"], solver.net.params["ip"]):
        np.testing.assert_allclose(got.data, want.data, rtol=1e-6, atol=1e-7)
    assert float(solver.net.forward()["loss"]) < 0.3


def test_engine_train_finds_layer_modules_in_the_working_directory(tmp_path):
    (tmp_path / "local_layers.py").write_text(
        "import engine\n"
        "class Twice(engine.Layer):\n"
        "    def reshape(self, bottom, top):\n"
        "        top[0].reshape(*bottom[0].shape)\n"
        "    def forward(self, bottom, top):\n"
        "        top[0].data[...] = 2 * bottom[0].data\n"
        "    def backward(self, top, propagate_down, bottom):\n"
        "        bottom[0].diff[...] = 2 * top[0].diff\n")
    (tmp_path / "net.prototxt").write_text("""
layer { name: "x" type: "DummyData" top: "x" top: "label"
  dummy_data_param { shape { dim: 4 dim: 3 } shape { dim: 4 }
                     data_filler { type: "gaussian" } } }
layer { name: "twice" type: "Python" bottom: "x" top: "y"
  python_param { module: "local_layers" layer: "Twice" } }
layer { name: "ip" type: "InnerProduct" bottom: "y" top: "ip"
  inner_product_param { num_output: 2 weight_filler { type: "xavier" } } }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "ip" bottom: "label" top: "loss" }
""")
    (tmp_path / "solver.prototxt").write_text(
        'net: "net.prototxt"\nbase_lr: 0.01\nlr_policy: "fixed"\nmax_iter: 3\n'
        'snapshot_after_train: false\n')
    result = subprocess.run([str(BINARY / "bin" / "engine"), "train", "--solver=solver.prototxt"],
                            capture_output=True, text=True, cwd=tmp_path,
                            env=dict(os.environ, PYTHONPATH=""))
    assert result.returncode == 0, result.stderr[-2000:]
    assert "Optimization Done" in result.stderr


def test_engine_train_reports_a_missing_layer_module(tmp_path):
    (tmp_path / "net.prototxt").write_text(SCALE_NET.replace('"pylayers"', '"no_such_module"'))
    solver = tmp_path / "solver.prototxt"
    solver.write_text('net: "%s"\nbase_lr: 0.1\nlr_policy: "fixed"\nmax_iter: 1\n'
                      % (tmp_path / "net.prototxt"))
    result = subprocess.run([str(BINARY / "bin" / "engine"), "train", "--solver=" + str(solver)],
                            capture_output=True, text=True)
    assert result.returncode == 1
    assert "layer scale (Python): cannot make no_such_module.Scale" in result.stderr
    assert "No module named 'no_such_module'" in result.stderr
