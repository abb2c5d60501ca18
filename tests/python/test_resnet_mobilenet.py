"""models/resnet50 and models/mobilenet_v2: the committed deploy.prototxt files are what
models/make_resnet_mobilenet.py writes, they load, have the papers' parameter counts and
structure, and run forward to a 1000-way 'prob'."""
import importlib.util
import os
from pathlib import Path

import numpy as np
import pytest

import engine as caffe

SOURCE = Path(os.environ.get("ENGINE_SOURCE_DIR", Path(__file__).parents[2]))
MODELS = SOURCE / "models"


def generator():
    spec = importlib.util.spec_from_file_location("make_resnet_mobilenet",
                                                  MODELS / "make_resnet_mobilenet.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# model: (learnable values without BatchNorm's statistics (torchvision's counts), layers of
# each type)
EXPECTED = {
    "resnet50": (25557032, {"Convolution": 53, "BatchNorm": 53, "Scale": 53, "ReLU": 49,
                            "Eltwise": 16, "Pooling": 2, "InnerProduct": 1, "Softmax": 1}),
    "mobilenet_v2": (3504872, {"Convolution": 52, "BatchNorm": 52, "Scale": 52, "Clip": 35,
                               "Eltwise": 10, "Pooling": 1, "InnerProduct": 1, "Softmax": 1}),
}


@pytest.mark.parametrize("model", sorted(EXPECTED))
def test_committed_file_is_generated(model):
    make = generator().MODELS[model]
    assert (MODELS / model / "deploy.prototxt").read_text() == make()


@pytest.mark.parametrize("model", sorted(EXPECTED))
def test_loads_with_the_papers_sizes(model):
    caffe.set_mode_cpu()
    net = caffe.Net(str(MODELS / model / "deploy.prototxt"), caffe.TEST)
    learnable, counts = EXPECTED[model]
    types = [layer.type for layer in net.layers]
    assert {t: types.count(t) for t in counts} == counts
    got = sum(blob.data.size for name, blobs in net.params.items()
              if net.layer_dict[name].type != "BatchNorm" for blob in blobs)
    assert got == learnable
    if model == "mobilenet_v2":
        # Depthwise: 17 convolutions whose group equals their input channels, 3x3.
        depthwise = [name for name, blobs in net.params.items()
                     if net.layer_dict[name].type == "Convolution"
                     and blobs[0].data.shape[1] == 1]
        assert len(depthwise) == 17
        assert all(net.params[name][0].data.shape[2:] == (3, 3) for name in depthwise)
    for name, blobs in net.params.items():
        if net.layer_dict[name].type == "BatchNorm":
            blobs[2].data[...] = 1        # the stored statistics' scale factor
            blobs[1].data[...] = 1        # variance (mean stays 0)
    net.blobs["data"].data[...] = np.random.default_rng(0).standard_normal(
        net.blobs["data"].data.shape)
    prob = net.forward()["prob"]
    assert prob.shape == (1, 1000)
    assert np.all(np.isfinite(prob))
    assert abs(float(prob.sum()) - 1) < 1e-4
