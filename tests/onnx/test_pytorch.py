"""ONNX files written by PyTorch's torch.onnx.export (torchvision's AlexNet, ResNet-18 and
MobileNetV2, by the TorchScript and the dynamo exporters; tests/onnx/pytorch/make_models.py
made them) import and give ONNX Runtime's outputs. The files keep PyTorch's graphs with their
weights emptied; each weight is refilled here with fixed random values of the distribution
that its doc_string notes."""
from pathlib import Path

import numpy as np
import onnx
import pytest

import engine as caffe
from conftest import assert_close, onnx_outputs
from test_import import import_model

FOLDER = Path(__file__).parent / "pytorch"


def refill_weights(model, seed):
    rng = np.random.RandomState(seed)
    for tensor in model.graph.initializer:
        if not tensor.doc_string:
            continue
        kind, a, b = tensor.doc_string.split()
        draw = rng.uniform if kind == "uniform" else rng.normal
        values = draw(float(a), float(b), tuple(tensor.dims)).astype(np.float32)
        tensor.raw_data = values.tobytes()
        tensor.doc_string = ""
    return model


@pytest.mark.parametrize("name", sorted(path.stem for path in FOLDER.glob("*.onnx")))
def test_a_pytorch_export_imports_and_matches_onnx_runtime(tmp_path, name):
    model = refill_weights(onnx.load(str(FOLDER / (name + ".onnx"))), seed=0)
    assert model.producer_name == "pytorch"
    onnx.checker.check_model(model, full_check=True)
    path = tmp_path / "model.onnx"
    onnx.save(model, str(path))
    shape = [d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim]
    images = np.random.RandomState(1).randn(2, *shape[1:]).astype(np.float32)
    expected = onnx_outputs(path, {"input": images})["output"]
    net, result = import_model(tmp_path, path, "--batch=2")
    assert "symbolic batch" in result.stdout
    assert_close(net.forward(input=images)["output"], expected, name)


def test_the_six_files_are_there():
    names = {path.stem for path in FOLDER.glob("*.onnx")}
    assert names == {"%s_%s" % (model, exporter) for model in ("alexnet", "resnet18", "mobilenet_v2")
                     for exporter in ("torchscript", "dynamo")}
