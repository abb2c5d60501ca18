"""The compiled module through pycaffe's API: Net, blobs as numpy views, forward and backward,
net surgery, weights files, errors, and solvers against `engine train`."""
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest

import engine as caffe
from engine.proto import caffe_pb2
from google.protobuf import text_format

SOURCE = Path(os.environ.get("ENGINE_SOURCE_DIR", Path(__file__).parents[2]))
BINARY = Path(os.environ.get("ENGINE_BINARY_DIR", SOURCE / "build"))
MODELS = SOURCE.parent / "shared" / "caffe-models"
LENET = str(MODELS / "examples" / "mnist" / "lenet.prototxt")


@pytest.fixture(autouse=True)
def cpu():
    caffe.set_mode_cpu()
    caffe.set_random_seed(1701)


@pytest.fixture
def lenet():
    return caffe.Net(LENET, caffe.TEST)


def test_the_lenet_net_as_pycaffe_shows_it(lenet):
    assert list(lenet.blobs)[:2] == ["data", "conv1"]
    assert lenet.blobs["data"].shape == [64, 1, 28, 28]
    assert lenet.blobs["data"].num == 64 and lenet.blobs["data"].channels == 1
    assert list(lenet.params) == ["conv1", "conv2", "ip1", "ip2"]
    assert lenet.params["conv1"][0].data.shape == (20, 1, 5, 5)
    assert lenet.params["ip1"][1].count == 500
    assert lenet.inputs == ["data"] and lenet.outputs == ["prob"]
    assert lenet.layer_dict["conv1"].type == "Convolution"
    assert lenet.top_names["pool1"] == ["pool1"] and lenet.bottom_names["conv2"] == ["pool1"]
    assert "Convolution" in caffe.layer_type_list()


def test_blob_arrays_are_the_engines_memory(lenet):
    x = np.random.RandomState(0).rand(64, 1, 28, 28).astype(np.float32)
    view = lenet.blobs["data"].data
    view[...] = x  # written through the view: forward reads it
    through_view = lenet.forward()["prob"].copy()
    assert lenet.blobs["data"].data[0, 0, 0, 0] == x[0, 0, 0, 0]
    by_keyword = lenet.forward(data=x)["prob"]
    np.testing.assert_array_equal(through_view, by_keyword)
    np.testing.assert_allclose(by_keyword.sum(axis=1), 1, rtol=1e-5)


def test_arrays_held_across_passes_stay_current(lenet):
    # Blocked layouts between oneDNN layers must not leave a held array stale, whichever way it
    # is used: written before each pass, or read after it. The two nets may run different
    # implementations (DEFAULT chooses by the bottoms' layouts too, and held arrays keep them
    # plain), which agree to about 1e-5 of the values' scale; a stale array would be off by
    # the values themselves.
    data, conv1, pool2 = (lenet.blobs[name].data for name in ("data", "conv1", "pool2"))
    fresh = caffe.Net(LENET, caffe.TEST)
    for params_from, params_to in zip(lenet.params.values(), fresh.params.values()):
        for a, b in zip(params_from, params_to):
            b.data[...] = a.data
    for seed in (0, 1):
        x = np.random.RandomState(seed).rand(64, 1, 28, 28).astype(np.float32)
        data[...] = x
        prob = lenet.forward()["prob"].copy()
        expected = fresh.forward(data=x)["prob"]
        np.testing.assert_allclose(prob, expected, rtol=1e-5, atol=1e-7)
        for held, name in ((conv1, "conv1"), (pool2, "pool2")):
            expected = fresh.blobs[name].data
            np.testing.assert_allclose(held, expected, rtol=0, atol=1e-5 * np.abs(expected).max())


def test_net_surgery_changes_the_outputs(lenet):
    lenet.params["ip2"][0].data[...] = 0
    lenet.params["ip2"][1].data[...] = 0
    prob = lenet.forward(data=np.ones((64, 1, 28, 28), np.float32))["prob"]
    np.testing.assert_allclose(prob, 0.1, rtol=1e-6)


def test_backward_gives_the_finite_difference_gradient(tmp_path):
    # As in Caffe, an input gets a gradient only where the net asks for it (force_backward).
    forced = tmp_path / "lenet.prototxt"
    forced.write_text("force_backward: true\n" + open(LENET).read())
    lenet = caffe.Net(str(forced), caffe.TEST)
    rng = np.random.RandomState(1)
    x = rng.rand(64, 1, 28, 28).astype(np.float32)
    weights = rng.rand(64, 10).astype(np.float32)

    def objective(data):
        # Summed in float64 so that the difference quotient measures the net, not the sum.
        return float((lenet.forward(data=data)["prob"].astype(np.float64) * weights).sum())

    objective(x)
    gradient = lenet.backward(prob=weights)["data"].copy()
    for index in [(0, 0, 14, 14), (3, 0, 10, 17), (63, 0, 20, 8)]:
        step = 1e-2
        up, down = x.copy(), x.copy()
        up[index] += step
        down[index] -= step
        numeric = (objective(up) - objective(down)) / (2 * step)
        assert abs(numeric - gradient[index]) <= 2e-2 * abs(numeric) + 2e-5, index
        assert abs(gradient[index]) > 1e-4, "the gradient should not vanish"


def test_weights_files_round_trip(lenet, tmp_path):
    lenet.params["conv1"][0].data[...] = 0.25
    weights = str(tmp_path / "w.caffemodel")
    lenet.save(weights)
    for net in (caffe.Net(LENET, weights, caffe.TEST),
                caffe.Net(LENET, caffe.TEST, weights=weights)):
        np.testing.assert_array_equal(net.params["conv1"][0].data, 0.25)
    fresh = caffe.Net(LENET, caffe.TEST)
    fresh.copy_from(weights)
    np.testing.assert_array_equal(fresh.params["conv1"][0].data, 0.25)


def test_errors_are_python_exceptions(tmp_path, lenet):
    bad = tmp_path / "bad.prototxt"
    bad.write_text('name: "bad"\nlayer {\n  name: "x" type: "Input" top: "x" oops\n}\n')
    with pytest.raises(caffe.Error, match=r"bad.prototxt:\d+:\d+: "):
        caffe.Net(str(bad), caffe.TEST)
    with pytest.raises(caffe.Error, match=r"\['nothing'\] are not inputs of net LeNet"):
        lenet.forward(nothing=np.zeros(3))
    with pytest.raises(caffe.Error, match="shape"):
        lenet.forward(data=np.zeros((1, 1, 28, 28)))
    with pytest.raises(caffe.Error):
        caffe.Net(str(tmp_path / "missing.prototxt"), caffe.TEST)


def test_the_schema_module_reads_caffe_files():
    net = caffe_pb2.NetParameter()
    text_format.Merge(open(LENET).read(), net)
    assert [layer.name for layer in net.layer][:2] == ["data", "conv1"]


SMALL_NET = """
name: "small"
layer { name: "data" type: "DummyData" top: "data" top: "label"
  dummy_data_param { shape { dim: 8 dim: 6 } shape { dim: 8 }
    data_filler { type: "gaussian" std: 1 } data_filler { type: "constant" value: 1 } } }
layer { name: "ip1" type: "InnerProduct" bottom: "data" top: "ip1"
  inner_product_param { num_output: 5 weight_filler { type: "xavier" } } }
layer { name: "relu" type: "ReLU" bottom: "ip1" top: "ip1" }
layer { name: "ip2" type: "InnerProduct" bottom: "ip1" top: "ip2"
  inner_product_param { num_output: 3 weight_filler { type: "xavier" } } }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "ip2" bottom: "label" top: "loss" }
"""


def write_solver(tmp_path, name, solver_type="SGD"):
    (tmp_path / "net.prototxt").write_text(SMALL_NET)
    path = tmp_path / (name + ".prototxt")
    path.write_text('net: "%s"\nbase_lr: 0.05\nmomentum: 0.9\nweight_decay: 0.0005\n'
                    'lr_policy: "fixed"\nmax_iter: 20\nsnapshot_after_train: true\n'
                    'random_seed: 5\ntype: "%s"\nsnapshot_prefix: "%s"\n'
                    % (tmp_path / "net.prototxt", solver_type, tmp_path / name))
    return str(path)


def test_solver_steps_like_engine_train(tmp_path):
    command = [str(BINARY / "bin" / "engine"), "train", "--solver=" + write_solver(tmp_path, "cli")]
    subprocess.run(command, check=True, capture_output=True)
    solver = caffe.get_solver(write_solver(tmp_path, "python"))
    assert solver.iter == 0 and solver.type == "SGD"
    solver.step(20)
    assert solver.iter == 20
    solver.snapshot()
    trained = caffe.Net(str(tmp_path / "net.prototxt"),
                        str(tmp_path / "cli_iter_20.caffemodel"), caffe.TRAIN)
    for name, blobs in solver.net.params.items():
        for mine, theirs in zip(blobs, trained.params[name]):
            np.testing.assert_array_equal(mine.data, theirs.data)
    assert (tmp_path / "python_iter_20.solverstate").exists()


def test_solver_classes_choose_the_update_rule(tmp_path):
    adam = caffe.AdamSolver(write_solver(tmp_path, "adam"))
    assert adam.type == "Adam"
    before = adam.net.params["ip1"][0].data.copy()
    calls = []
    adam.add_gradients_ready_callback(lambda: calls.append(adam.iter))
    starts = []
    adam.add_callback(lambda: starts.append(adam.iter), lambda: None)
    adam.step(3)
    assert calls == [0, 1, 2] and starts == [0, 1, 2]
    assert not np.array_equal(before, adam.net.params["ip1"][0].data)


DEPLOY_NETS = [("models/bvlc_alexnet/deploy.prototxt", [10, 1000]),
               ("models/bvlc_reference_caffenet/deploy.prototxt", [10, 1000]),
               ("models/bvlc_googlenet/deploy.prototxt", [10, 1000])]


@pytest.mark.parametrize("path,shape", DEPLOY_NETS)
def test_bvlc_deploy_nets_load_with_their_shapes(path, shape):
    net = caffe.Net(str(MODELS / path), caffe.TEST)
    assert net.outputs == ["prob"]
    assert net.blobs["prob"].shape == shape
    assert len(net.params) > 5


def test_bvlc_alexnet_runs_forward_at_batch_one():
    net = caffe.Net(str(MODELS / "models/bvlc_alexnet/deploy.prototxt"), caffe.TEST)
    net.blobs["data"].reshape(1, 3, 227, 227)
    net.reshape()
    prob = net.forward(data=np.random.RandomState(0).rand(1, 3, 227, 227))["prob"]
    assert prob.shape == (1, 1000)
    np.testing.assert_allclose(prob.sum(), 1, rtol=1e-4)


FC_NET = """
layer { name: "data" type: "Input" top: "data" input_param { shape { dim: 2 dim: 3 dim: 4 dim: 4 } } }
layer { name: "fc" type: "InnerProduct" bottom: "data" top: "fc"
  inner_product_param { num_output: 5 weight_filler { type: "gaussian" std: 0.5 }
    bias_filler { type: "gaussian" std: 0.5 } } }
"""
CONV_NET = """
layer { name: "data" type: "Input" top: "data" input_param { shape { dim: 2 dim: 3 dim: 4 dim: 4 } } }
layer { name: "fc-conv" type: "Convolution" bottom: "data" top: "fc-conv"
  convolution_param { num_output: 5 kernel_size: 4 } }
"""


def test_net_surgery_convolutionalizes_a_fully_connected_layer(tmp_path):
    (tmp_path / "fc.prototxt").write_text(FC_NET)
    (tmp_path / "conv.prototxt").write_text(CONV_NET)
    fc = caffe.Net(str(tmp_path / "fc.prototxt"), caffe.TEST)
    conv = caffe.Net(str(tmp_path / "conv.prototxt"), caffe.TEST)
    # pycaffe's classic surgery: the fc weights, reshaped, are the convolution's filters.
    conv.params["fc-conv"][0].data.flat = fc.params["fc"][0].data.flat
    conv.params["fc-conv"][1].data[...] = fc.params["fc"][1].data
    x = np.random.RandomState(5).randn(2, 3, 4, 4)
    np.testing.assert_allclose(conv.forward(data=x)["fc-conv"].reshape(2, 5),
                               fc.forward(data=x)["fc"], rtol=1e-5, atol=1e-6)


def test_timer_measures_milliseconds():
    import time
    timer = caffe.Timer()
    timer.start()
    time.sleep(0.02)
    timer.stop()
    assert 15 <= timer.ms < 1000


def test_nccl_needs_the_gpu_and_a_consistent_rank(tmp_path):
    caffe.set_solver_count(2)
    caffe.set_solver_rank(1)
    try:
        assert (caffe.solver_count(), caffe.solver_rank()) == (2, 1)
        solver = caffe.SGDSolver(write_solver(tmp_path, "nccl"))
        assert solver.param.base_lr == pytest.approx(0.05)
        with pytest.raises(caffe.Error, match="NCCL works on GPUs|built without NCCL"):
            caffe.NCCL(solver, b"\0" * 128)
        caffe.set_solver_rank(2)
        with pytest.raises(caffe.Error, match="solver rank 2 is not below the solver count 2"):
            caffe.NCCL(solver, b"\0" * 128)
        with pytest.raises(caffe.Error):
            caffe.set_solver_count(0)
    finally:
        caffe.set_solver_count(1)
        caffe.set_solver_rank(0)
    caffe.set_multiprocess(True)
    assert caffe.multiprocess()
    caffe.set_multiprocess(False)


@pytest.mark.skipif(not caffe.has_nccl() or caffe.device_count() < 1,
                    reason="needs a GPU and an engine built with NCCL")
def test_nccl_with_one_process_trains_as_without(tmp_path):
    caffe.set_mode_gpu()
    caffe.set_device(0)
    try:
        plain = caffe.SGDSolver(write_solver(tmp_path, "plain"))
        plain.step(5)
        solver = caffe.SGDSolver(write_solver(tmp_path, "nccl"))
        nccl = caffe.NCCL(solver, caffe.NCCL.new_uid())
        nccl.bcast()
        solver.add_callback(nccl)
        solver.net.after_backward(nccl)
        solver.step(5)
        for name in plain.net.params:
            for got, want in zip(solver.net.params[name], plain.net.params[name]):
                np.testing.assert_allclose(got.data, want.data, rtol=1e-5, atol=1e-6)
    finally:
        caffe.set_mode_cpu()
