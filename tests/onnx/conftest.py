"""Shared helpers of the ONNX tests: nets with random weights, the engine's outputs, and
ONNX Runtime's on the exported model (run by the venv that scripts/onnx-venv.sh makes)."""
import os
import subprocess
from pathlib import Path

import numpy as np
import onnx
import onnxruntime
import pytest

import engine as caffe
from engine.proto import caffe_pb2
from google.protobuf import text_format

SOURCE = Path(os.environ.get("ENGINE_SOURCE_DIR", Path(__file__).parents[2]))
BINARY = Path(os.environ.get("ENGINE_BINARY_DIR", SOURCE / "build"))
MODELS = SOURCE / ".." / "shared" / "caffe-models"

# BVLC's deploy nets (path, the batch line, a smaller batch) and CIFAR-10's train/test nets:
# what export and import are checked on.
DEPLOY_NETS = [
    ("examples/mnist/lenet.prototxt", "dim: 64", "dim: 2"),
    ("models/bvlc_reference_caffenet/deploy.prototxt", "dim: 10", "dim: 2"),
    ("models/bvlc_alexnet/deploy.prototxt", "dim: 10", "dim: 2"),
    ("models/bvlc_googlenet/deploy.prototxt", "dim: 10", "dim: 1"),
]
CIFAR10_NETS = ["examples/cifar10/cifar10_quick_train_test.prototxt",
                "examples/cifar10/cifar10_full_train_test.prototxt",
                "examples/cifar10/cifar10_full_sigmoid_train_test_bn.prototxt"]


def randomize(net, seed):
    """Random weights everywhere (BatchNorm: positive variances, a scale factor of 2)."""
    rng = np.random.RandomState(seed)
    for name, blobs in net.params.items():
        kind = net.layer_dict[name].type
        for i, blob in enumerate(blobs):
            values = rng.randn(*blob.data.shape).astype(np.float32) * 0.5
            if kind == "BatchNorm":
                values = [values, np.abs(values) + 0.5, np.full(blob.data.shape, 2.0)][i]
            blob.data[...] = values


def onnx_outputs(path, inputs):
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    names = [output.name for output in session.get_outputs()]
    return dict(zip(names, session.run(None, inputs)))


def assert_close(got, want, what, tolerance=1e-4):
    """Within `tolerance` of the reference's largest magnitude (relative error of the tensor)."""
    got, want = np.asarray(got), np.asarray(want)
    assert got.shape == want.shape, (what, got.shape, want.shape)
    scale = max(float(np.abs(want).max()), 1e-30)
    error = float(np.abs(got - want).max()) / scale
    assert error <= tolerance, "%s: relative error %.3g" % (what, error)


def export_and_compare(tmp_path, prototxt_text, seed=0, inputs=None, dynamic_batch=False,
                       tolerance=1e-4):
    """Builds the net, randomizes it, exports it, checks the model with onnx's checker and
    compares ONNX Runtime's outputs with the engine's. Returns (model, report)."""
    net_file = tmp_path / "net.prototxt"
    net_file.write_text(prototxt_text)
    caffe.set_mode_cpu()
    net = caffe.Net(str(net_file), caffe.TEST)
    randomize(net, seed)
    rng = np.random.RandomState(seed + 1)
    feeds = inputs or {name: rng.randn(*net.blobs[name].data.shape).astype(np.float32)
                       for name in net.inputs}
    model_file = tmp_path / "model.onnx"
    report = caffe.export_onnx(net, str(model_file), dynamic_batch=dynamic_batch)
    model = onnx.load(str(model_file))
    onnx.checker.check_model(model, full_check=True)
    net.forward(**feeds)
    results = onnx_outputs(model_file, feeds)
    for name, blob in zip(report["outputs"], report["output_blobs"]):
        assert_close(results[name], net.blobs[blob].data, name, tolerance)
    return model, report, net, feeds


@pytest.fixture(autouse=True)
def cpu():
    caffe.set_mode_cpu()
    caffe.set_random_seed(3)


def deploy_from_train_test(path, shape):
    """A train/test net as deploy: data layers replaced by one Input of `shape`, the layers
    that read labels (losses, accuracy) removed."""
    param = caffe_pb2.NetParameter()
    text_format.Merge(Path(path).read_text(), param)
    deploy = caffe_pb2.NetParameter(name=param.name)
    data = deploy.layer.add(name="data", type="Input", top=["data"])
    data.input_param.shape.add(dim=shape)
    seen = set()
    for layer in param.layer:
        if layer.type in ("Data", "ImageData") or "label" in layer.bottom:
            continue
        if any(rule.phase == caffe_pb2.TRAIN for rule in layer.include):
            continue
        if layer.name in seen:
            continue
        seen.add(layer.name)
        del layer.include[:]
        deploy.layer.add().CopyFrom(layer)
    return text_format.MessageToString(deploy)


def run_cli(*arguments):
    return subprocess.run([str(BINARY / "bin" / "engine")] + list(arguments),
                          capture_output=True, text=True)
