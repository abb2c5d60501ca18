"""Writes the PyTorch-made ONNX files in this folder: torchvision's AlexNet, ResNet-18 and
MobileNetV2 (fixed seeds, BatchNorm statistics made non-trivial) exported by torch.onnx.export,
once by the TorchScript exporter and once by the dynamo exporter. Each file keeps PyTorch's graph
as written; its float weight tensors are emptied so that the files stay small, each marked in its
doc_string with the distribution of the values it had, from which the tests refill it (the
nodes' metadata, the dynamo exporter's Python stack traces, is dropped too).

Before writing, each full model's ONNX Runtime output is checked against PyTorch's.

    scripts/pytorch-onnx.sh    # makes a venv with torch, torchvision and onnxscript; runs this

Made with torch 2.15.0 and torchvision 0.29.2 from PyPI.
"""
import argparse
import io
from pathlib import Path

import numpy as np
import onnx
import onnxruntime
import torch
import torchvision

MODELS = {
    "alexnet": (torchvision.models.alexnet, 224),
    "resnet18": (torchvision.models.resnet18, 64),
    "mobilenet_v2": (torchvision.models.mobilenet_v2, 64),
}


def build(name):
    make, size = MODELS[name]
    torch.manual_seed(0)
    model = make(weights=None).eval()
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                channels = module.num_features
                module.running_mean.normal_(0, 0.1, generator=generator)
                module.running_var.uniform_(0.5, 1.5, generator=generator)
                module.weight.uniform_(0.5, 1.5, generator=generator)
                module.bias.normal_(0, 0.1, generator=generator)
    return model, torch.randn(1, 3, size, size, generator=generator)


def export(model, example, dynamo):
    buffer = io.BytesIO()
    torch.onnx.export(model, (example,), buffer, input_names=["input"], output_names=["output"],
                      dynamic_axes={"input": {0: "batch"}, "output": {0: "batch"}},
                      opset_version=17 if not dynamo else 18, dynamo=dynamo)
    return onnx.load_from_string(buffer.getvalue())


def strip_weights(model):
    """Empties every float initializer of two or more values, noting its distribution."""
    for tensor in model.graph.initializer:
        if tensor.data_type != onnx.TensorProto.FLOAT:
            continue
        values = onnx.numpy_helper.to_array(tensor)
        if values.size < 2:
            continue
        if values.min() > 0:
            tensor.doc_string = "uniform %.6g %.6g" % (values.min(), values.max())
        else:
            tensor.doc_string = "normal %.6g %.6g" % (values.mean(), values.std())
        tensor.ClearField("raw_data")
        tensor.ClearField("float_data")
    for node in model.graph.node:
        node.ClearField("metadata_props")  # the dynamo exporter's Python stack traces
    return model


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folder", type=Path, nargs="?", default=Path(__file__).parent)
    folder = parser.parse_args().folder
    for name in MODELS:
        model, example = build(name)
        with torch.no_grad():
            expected = model(example).numpy()
        for dynamo in (False, True):
            exported = export(model, example, dynamo)
            onnx.checker.check_model(exported, full_check=True)
            session = onnxruntime.InferenceSession(exported.SerializeToString(),
                                                   providers=["CPUExecutionProvider"])
            got = session.run(None, {session.get_inputs()[0].name: example.numpy()})[0]
            error = np.abs(got - expected).max() / np.abs(expected).max()
            assert error < 1e-4, (name, dynamo, error)
            path = folder / ("%s_%s.onnx" % (name, "dynamo" if dynamo else "torchscript"))
            onnx.save(strip_weights(exported), str(path))
            print("%s: %d nodes, %d bytes, ONNX Runtime within %.2g of PyTorch"
                  % (path, len(exported.graph.node), path.stat().st_size, error))


if __name__ == "__main__":
    main()
