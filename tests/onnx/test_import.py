"""engine import_onnx: exported nets come back with the same numbers; ONNX graphs written the
way PyTorch writes them (onnx.helper here) import and match ONNX Runtime; bad files and
operators without a layer get clear errors."""
import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import engine as caffe
from conftest import (CIFAR10_NETS, DEPLOY_NETS, MODELS, assert_close, deploy_from_train_test,
                      export_and_compare, onnx_outputs, run_cli)
from test_export import LAYERS, with_batch


def import_model(tmp_path, model_file, *flags):
    prototxt, weights = tmp_path / "imported.prototxt", tmp_path / "imported.caffemodel"
    result = run_cli("import_onnx", "--model=" + str(model_file),
                     "--output_prototxt=" + str(prototxt), "--output_weights=" + str(weights),
                     *flags)
    assert result.returncode == 0, result.stderr
    return caffe.Net(str(prototxt), str(weights), caffe.TEST), result


def round_trip(tmp_path, text, seed=0):
    model, report, net, feeds = export_and_compare(tmp_path, text, seed=seed)
    imported, _ = import_model(tmp_path, tmp_path / "model.onnx")
    imported.forward(**feeds)
    for name, blob in zip(report["outputs"], report["output_blobs"]):
        assert_close(imported.blobs[name].data, net.blobs[blob].data, name)


@pytest.mark.parametrize("path, old, new", DEPLOY_NETS)
def test_exported_bvlc_nets_come_back(tmp_path, path, old, new):
    round_trip(tmp_path, with_batch((MODELS / path).read_text(), old, new))


@pytest.mark.parametrize("path", CIFAR10_NETS)
def test_cifar10_nets_come_back(tmp_path, path):
    round_trip(tmp_path, deploy_from_train_test(MODELS / path, [2, 3, 32, 32]))


def test_a_net_of_every_exported_layer_type_comes_back(tmp_path):
    # LRN within a channel and Threshold come back as their decompositions (Power, Eltwise,
    # Pooling; Threshold from Greater and Cast), Crop as Caffe Slices with the rest silenced.
    round_trip(tmp_path, LAYERS, seed=2)


def tensor(name, values):
    return numpy_helper.from_array(np.asarray(values, np.float32), name)


def pytorch_style_model(path):
    """A small ResNet/MobileNet-like graph in the operators and patterns PyTorch's exporter
    writes: Conv with bias, BatchNormalization, Relu, Clip(0, 6) with constant inputs, MaxPool,
    a residual Add, GlobalAveragePool, Flatten, Gemm (transB=1), Identity, and a symbolic batch."""
    rng = np.random.RandomState(0)
    c = 8
    nodes = [
        helper.make_node("Conv", ["input", "conv1.weight", "conv1.bias"], ["c1"], name="/conv1/Conv",
                         kernel_shape=[3, 3], pads=[1, 1, 1, 1], strides=[2, 2]),
        helper.make_node("BatchNormalization", ["c1", "bn1.weight", "bn1.bias", "bn1.running_mean",
                                                "bn1.running_var"], ["b1"], name="/bn1/BatchNormalization",
                         epsilon=1e-5),
        helper.make_node("Relu", ["b1"], ["r1"], name="/relu/Relu"),
        helper.make_node("MaxPool", ["r1"], ["p1"], name="/maxpool/MaxPool", kernel_shape=[3, 3],
                         pads=[1, 1, 1, 1], strides=[2, 2]),
        helper.make_node("Conv", ["p1", "conv2.weight"], ["c2"], name="/conv2/Conv",
                         kernel_shape=[3, 3], pads=[1, 1, 1, 1], group=c),
        helper.make_node("Clip", ["c2", "min", "max"], ["r2"], name="/relu6/Clip"),
        helper.make_node("Add", ["r2", "p1"], ["sum"], name="/Add"),
        helper.make_node("GlobalAveragePool", ["sum"], ["g"], name="/avgpool/GlobalAveragePool"),
        helper.make_node("Flatten", ["g"], ["f"], name="/Flatten", axis=1),
        helper.make_node("Identity", ["f"], ["f2"], name="/Identity"),
        helper.make_node("Gemm", ["f2", "fc.weight", "fc.bias"], ["output"], name="/fc/Gemm",
                         alpha=1.0, beta=1.0, transB=1),
    ]
    initializers = [
        tensor("conv1.weight", rng.randn(c, 3, 3, 3) * 0.3), tensor("conv1.bias", rng.randn(c)),
        tensor("bn1.weight", rng.rand(c) + 0.5), tensor("bn1.bias", rng.randn(c)),
        tensor("bn1.running_mean", rng.randn(c)), tensor("bn1.running_var", rng.rand(c) + 0.5),
        tensor("conv2.weight", rng.randn(c, 1, 3, 3)), tensor("min", 0.0), tensor("max", 6.0),
        tensor("fc.weight", rng.randn(5, c)), tensor("fc.bias", rng.randn(5)),
    ]
    graph = helper.make_graph(
        nodes, "torch_jit", [helper.make_tensor_value_info("input", TensorProto.FLOAT,
                                                           ["batch_size", 3, 16, 16])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, ["batch_size", 5])],
        initializers)
    model = helper.make_model(graph, producer_name="pytorch", opset_imports=[helper.make_opsetid("", 17)])
    onnx.checker.check_model(model, full_check=True)
    onnx.save(model, str(path))


def test_a_pytorch_style_model_imports_and_matches_onnx_runtime(tmp_path):
    pytorch_style_model(tmp_path / "torch.onnx")
    net, result = import_model(tmp_path, tmp_path / "torch.onnx", "--batch=3")
    assert "symbolic batch 'batch_size' set to 3" in result.stdout
    x = np.random.RandomState(1).randn(3, 3, 16, 16).astype(np.float32)
    expected = onnx_outputs(tmp_path / "torch.onnx", {"input": x})["output"]
    assert_close(net.forward(input=x)["output"], expected, "output")


def test_slices_with_open_and_negative_bounds_and_a_tensor_division(tmp_path):
    # x[:, 1:, :, -4:-1] as PyTorch writes it (INT64_MAX for an open end), one axis kept
    # whole, then the slice divided by a computed tensor.
    big = np.iinfo(np.int64).max
    ints = lambda name, values: numpy_helper.from_array(np.asarray(values, np.int64), name)
    nodes = [
        helper.make_node("Slice", ["x", "starts", "ends", "axes"], ["s"], name="/Slice"),
        helper.make_node("Slice", ["s", "zero", "all", "zero"], ["whole"], name="/Slice_1"),
        helper.make_node("Abs", ["whole"], ["a"], name="/Abs"),
        helper.make_node("Add", ["a", "one"], ["d"], name="/Add"),
        helper.make_node("Div", ["whole", "d"], ["y"], name="/Div"),
    ]
    graph = helper.make_graph(
        nodes, "slices", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 6, 5, 7])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 5, 5, 3])],
        [ints("starts", [1, -4]), ints("ends", [big, -1]), ints("axes", [1, 3]),
         ints("zero", [0]), ints("all", [big]), tensor("one", 1.0)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.checker.check_model(model, full_check=True)
    onnx.save(model, str(tmp_path / "slices.onnx"))
    net, _ = import_model(tmp_path, tmp_path / "slices.onnx")
    x = np.random.RandomState(2).randn(2, 6, 5, 7).astype(np.float32)
    expected = onnx_outputs(tmp_path / "slices.onnx", {"x": x})["y"]
    assert_close(net.forward(x=x)["y"], expected, "y")
    assert list(net.outputs) == ["y"]  # the parts cut away are silenced, not outputs


def test_bad_files_and_operators_get_clear_errors(tmp_path):
    prototxt, weights = str(tmp_path / "n.prototxt"), str(tmp_path / "w.caffemodel")

    def run(path):
        return run_cli("import_onnx", "--model=" + str(path), "--output_prototxt=" + prototxt,
                       "--output_weights=" + weights)

    result = run(tmp_path / "missing.onnx")
    assert result.returncode == 1 and "cannot open the ONNX file" in result.stderr
    (tmp_path / "text.onnx").write_text("this is not a model")
    result = run(tmp_path / "text.onnx")
    assert result.returncode == 1 and "not an ONNX model" in result.stderr
    pytorch_style_model(tmp_path / "torch.onnx")
    data = (tmp_path / "torch.onnx").read_bytes()
    (tmp_path / "truncated.onnx").write_bytes(data[:len(data) // 2])
    result = run(tmp_path / "truncated.onnx")
    assert result.returncode == 1 and "not an ONNX model" in result.stderr

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])
    unknown = helper.make_model(helper.make_graph(
        [helper.make_node("Erf", ["x"], ["y"], name="the_erf")], "g", [x], [y]))
    onnx.save(unknown, str(tmp_path / "erf.onnx"))
    result = run(tmp_path / "erf.onnx")
    assert result.returncode == 1
    assert "node the_erf (Erf): operator Erf has no mapping" in result.stderr

    def one_node_model(name, node, *initializers):
        model = helper.make_model(helper.make_graph([node], "g", [x], [y], list(initializers)))
        onnx.save(model, str(tmp_path / name))
        return run(tmp_path / name)

    ints = lambda name, values: numpy_helper.from_array(np.asarray(values, np.int64), name)
    result = one_node_model("strided.onnx", helper.make_node(
        "Slice", ["x", "s", "e", "a", "step"], ["y"], name="strided"),
        ints("s", [0]), ints("e", [4]), ints("a", [1]), ints("step", [2]))
    assert result.returncode == 1 and "node strided (Slice): step 2 has no Caffe form" in result.stderr
    result = one_node_model("where.onnx", helper.make_node("Greater", ["x", "t"], ["y"], name="gt"),
                            tensor("t", [1, 2, 3, 4]))
    assert result.returncode == 1 and "compares with a scalar constant only" in result.stderr

    result = one_node_model("mean.onnx", helper.make_node("ReduceMean", ["x"], ["y"], name="mean",
                                                          axes=[0], keepdims=1))
    assert result.returncode == 1
    assert "node mean (ReduceMean): averages axes other than the last ones" in result.stderr

    dynamic = helper.make_model(helper.make_graph(
        [helper.make_node("Relu", ["x"], ["y"], name="relu")], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", "width"])], [y]))
    onnx.save(dynamic, str(tmp_path / "dynamic.onnx"))
    result = run(tmp_path / "dynamic.onnx")
    assert result.returncode == 1
    assert "graph input x: dimension 1 ('width') is symbolic" in result.stderr
    assert not (tmp_path / "n.prototxt").exists()
