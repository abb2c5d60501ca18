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


def test_a_python_data_layer_feeds_a_solver(tmp_path):
    (tmp_path / "net.prototxt").write_text("""
layer { name: "points" type: "Python" top: "x" top: "label"
  python_param { module: "pylayers" layer: "Points" param_str: "32" } }
layer { name: "ip" type: "InnerProduct" bottom: "x" top: "ip"
  inner_product_param { num_output: 2 weight_filler { type: "gaussian" std: 0.01 } } }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "ip" bottom: "label" top: "loss" }
""")
    solver_file = tmp_path / "solver.prototxt"
    solver_file.write_text('net: "%s"\nbase_lr: 0.1\nmomentum: 0.9\nlr_policy: "fixed"\n'
                           'max_iter: 100\nrandom_seed: 1\nsnapshot_prefix: "%s"\n'
                           % (tmp_path / "net.prototxt", tmp_path / "points"))
    solver = caffe.SGDSolver(str(solver_file))
    first = float(solver.net.forward()["loss"])
    solver.step(100)
    last = float(solver.net.forward()["loss"])
    assert first > 0.6 and last < 0.2, (first, last)


def test_python_layer_errors_name_the_layer(tmp_path):
    broken = SCALE_NET.replace('layer: "Scale" param_str: "2.5"', 'layer: "Broken"')
    with pytest.raises(caffe.Error, match=r"layer scale \(Python\): forward raised ValueError"):
        net_from(tmp_path, broken).forward(x=np.zeros((2, 3)))
    missing = SCALE_NET.replace('module: "pylayers"', 'module: "no_such_module"')
    with pytest.raises(caffe.Error, match=r"cannot make no_such_module.Scale"):
        net_from(tmp_path, missing)


def test_engine_train_says_python_layers_need_python(tmp_path):
    (tmp_path / "net.prototxt").write_text(SCALE_NET)
    solver = tmp_path / "solver.prototxt"
    solver.write_text('net: "%s"\nbase_lr: 0.1\nlr_policy: "fixed"\nmax_iter: 1\n'
                      % (tmp_path / "net.prototxt"))
    result = subprocess.run([str(BINARY / "bin" / "engine"), "train", "--solver=" + str(solver)],
                            capture_output=True, text=True)
    assert result.returncode == 1
    assert "layer scale (Python): Python layers run in nets made from Python" in result.stderr
