"""engine export_onnx / engine.export_onnx: the BVLC deploy nets and small nets covering every
exported layer type give ONNX Runtime the engine's outputs (within 1e-4 relative); what cannot
be exported gets a clear error."""
import numpy as np
import onnx
import pytest

import engine as caffe
from conftest import (CIFAR10_NETS, DEPLOY_NETS, MODELS, assert_close, deploy_from_train_test,
                      export_and_compare, onnx_outputs, randomize, run_cli)


def with_batch(text, old, new):
    assert old in text
    return text.replace(old, new, 1)


@pytest.mark.parametrize("path, old, new", DEPLOY_NETS)
def test_bvlc_deploy_nets(tmp_path, path, old, new):
    text = with_batch((MODELS / path).read_text(), old, new)
    model, report, _, _ = export_and_compare(tmp_path, text)
    assert report["outputs"] == ["prob"]
    assert model.opset_import[0].version == 13


@pytest.mark.parametrize("path", CIFAR10_NETS)
def test_cifar10_nets(tmp_path, path):
    export_and_compare(tmp_path, deploy_from_train_test(MODELS / path, [2, 3, 32, 32]))


LAYERS = """
name: "every_layer"
layer { name: "x" type: "Input" top: "x" input_param { shape { dim: 2 dim: 4 dim: 9 dim: 9 } } }
layer { name: "conv" type: "Convolution" bottom: "x" top: "conv"
  convolution_param { num_output: 6 kernel_size: 3 pad: 2 stride: 2 dilation: 2 group: 2 } }
layer { name: "relu" type: "ReLU" bottom: "conv" top: "conv" relu_param { negative_slope: 0.1 } }
layer { name: "deconv" type: "Deconvolution" bottom: "conv" top: "deconv"
  convolution_param { num_output: 4 kernel_size: 3 stride: 2 pad: 1 group: 2 } }
layer { name: "maxpool" type: "Pooling" bottom: "deconv" top: "maxpool"
  pooling_param { pool: MAX kernel_size: 3 stride: 2 pad: 1 } }
layer { name: "avepool" type: "Pooling" bottom: "deconv" top: "avepool"
  pooling_param { pool: AVE kernel_size: 3 stride: 2 pad: 1 } }
layer { name: "avepool0" type: "Pooling" bottom: "deconv" top: "avepool0"
  pooling_param { pool: AVE kernel_h: 2 kernel_w: 3 stride: 2 } }
layer { name: "global" type: "Pooling" bottom: "deconv" top: "global"
  pooling_param { pool: AVE global_pooling: true } }
layer { name: "lrn" type: "LRN" bottom: "maxpool" top: "lrn"
  lrn_param { local_size: 3 alpha: 0.5 beta: 0.75 k: 2 } }
layer { name: "lrn_within" type: "LRN" bottom: "avepool" top: "lrn_within"
  lrn_param { local_size: 3 alpha: 0.3 beta: 0.75 norm_region: WITHIN_CHANNEL } }
layer { name: "bn" type: "BatchNorm" bottom: "lrn" top: "lrn" }
layer { name: "bn_scale" type: "Scale" bottom: "lrn" top: "lrn" scale_param { bias_term: true } }
layer { name: "bn2" type: "BatchNorm" bottom: "lrn_within" top: "bn2" }
layer { name: "scale" type: "Scale" bottom: "avepool" top: "scale" }
layer { name: "bias" type: "Bias" bottom: "scale" top: "bias" }
layer { name: "sum" type: "Eltwise" bottom: "lrn" bottom: "bn2" bottom: "bias" top: "sum"
  eltwise_param { operation: SUM coeff: 1 coeff: -0.5 coeff: 2 } }
layer { name: "prod" type: "Eltwise" bottom: "lrn" bottom: "bn2" top: "prod"
  eltwise_param { operation: PROD } }
layer { name: "max" type: "Eltwise" bottom: "lrn" bottom: "bn2" top: "max"
  eltwise_param { operation: MAX } }
layer { name: "concat" type: "Concat" bottom: "sum" bottom: "prod" bottom: "max" top: "concat" }
layer { name: "prelu" type: "PReLU" bottom: "concat" top: "prelu" }
layer { name: "elu" type: "ELU" bottom: "prelu" top: "elu" elu_param { alpha: 0.7 } }
layer { name: "slice" type: "Slice" bottom: "elu" top: "s1" top: "s2" top: "s3"
  slice_param { axis: 1 slice_point: 3 slice_point: 5 } }
layer { name: "sigmoid" type: "Sigmoid" bottom: "s1" top: "sigmoid" }
layer { name: "power" type: "Power" bottom: "sigmoid" top: "power"
  power_param { power: 1.5 scale: 2 shift: 0.5 } }
layer { name: "log" type: "Log" bottom: "power" top: "log" log_param { base: 2 scale: 3 shift: 1 } }
layer { name: "ln" type: "Log" bottom: "power" top: "ln" }
layer { name: "tanh" type: "TanH" bottom: "s2" top: "tanh" }
layer { name: "exp" type: "Exp" bottom: "tanh" top: "exp" exp_param { base: 3 scale: 0.5 shift: 0.1 } }
layer { name: "abs" type: "AbsVal" bottom: "s3" top: "abs" }
layer { name: "bnll" type: "BNLL" bottom: "s3" top: "bnll" }
layer { name: "clip" type: "Clip" bottom: "s3" top: "clip" clip_param { min: -0.3 max: 0.4 } }
layer { name: "swish" type: "Swish" bottom: "s3" top: "swish" swish_param { beta: 1.5 } }
layer { name: "threshold" type: "Threshold" bottom: "s3" top: "threshold"
  threshold_param { threshold: 0.2 } }
layer { name: "drop" type: "Dropout" bottom: "abs" top: "abs" dropout_param { dropout_ratio: 0.5 } }
layer { name: "crop" type: "Crop" bottom: "deconv" bottom: "maxpool" top: "crop"
  crop_param { axis: 2 offset: 1 offset: 2 } }
layer { name: "flatten" type: "Flatten" bottom: "crop" top: "flatten" }
layer { name: "ip" type: "InnerProduct" bottom: "flatten" top: "ip"
  inner_product_param { num_output: 7 } }
layer { name: "ip_axis2" type: "InnerProduct" bottom: "deconv" top: "ip_axis2"
  inner_product_param { num_output: 5 axis: 2 } }
layer { name: "ip_transposed" type: "InnerProduct" bottom: "global" top: "ip_transposed"
  inner_product_param { num_output: 3 transpose: true bias_term: false } }
layer { name: "reshape" type: "Reshape" bottom: "ip" top: "reshape"
  reshape_param { shape { dim: 0 dim: 7 dim: 1 dim: -1 } } }
layer { name: "softmax" type: "Softmax" bottom: "ip_axis2" top: "softmax" softmax_param { axis: 2 } }
layer { name: "lrn_after" type: "LRN" bottom: "avepool0" top: "lrn_after" }
"""


def test_every_exported_layer_type(tmp_path):
    model, report, net, _ = export_and_compare(tmp_path, LAYERS, seed=4)
    ops = {node.op_type for node in model.graph.node}
    assert {"Conv", "ConvTranspose", "MaxPool", "AveragePool", "GlobalAveragePool", "LRN",
            "BatchNormalization", "Mul", "Add", "Sum", "Max", "Concat", "PRelu", "Elu", "Split",
            "Sigmoid", "Pow", "Log", "Tanh", "Exp", "Abs", "Softplus", "Clip", "Greater", "Cast",
            "Slice", "Reshape", "Gemm", "Softmax", "LeakyRelu", "Flatten"} <= ops
    # BatchNorm and the Scale after it are one node; the lone BatchNorm is another.
    assert sum(node.op_type == "BatchNormalization" for node in model.graph.node) == 2
    assert any("folded with layer bn_scale" in note for note in report["notes"])
    # In-place layers write fresh tensors; the net's last values are what ONNX gives.
    assert "abs" in report["output_blobs"]


def test_caffe_ceil_pooling_with_clipped_last_window(tmp_path):
    # Height 5, kernel 3, stride 3, pad 1: (5 + 2 - 3) / 3 rounds up to 2, + 1 = 3 windows, but
    # the third starts at 6 >= 5 + 1, in the padding, so Caffe keeps 2; and a width of 7 with kernel 2 and stride 2: ceil gives 4
    # windows, the last one half past the end (Caffe divides by its 1 column inside).
    text = """
layer { name: "x" type: "Input" top: "x" input_param { shape { dim: 1 dim: 2 dim: 5 dim: 7 } } }
layer { name: "max" type: "Pooling" bottom: "x" top: "max"
  pooling_param { pool: MAX kernel_size: 3 stride: 3 pad: 1 } }
layer { name: "ave" type: "Pooling" bottom: "x" top: "ave"
  pooling_param { pool: AVE kernel_size: 3 stride: 3 pad: 1 } }
layer { name: "ave_past" type: "Pooling" bottom: "x" top: "ave_past"
  pooling_param { pool: AVE kernel_size: 2 stride: 2 } }
layer { name: "max_past" type: "Pooling" bottom: "x" top: "max_past"
  pooling_param { pool: MAX kernel_size: 2 stride: 2 } }
layer { name: "floor" type: "Pooling" bottom: "x" top: "floor"
  pooling_param { pool: MAX kernel_size: 3 stride: 2 round_mode: FLOOR } }
"""
    _, _, net, _ = export_and_compare(tmp_path, text)
    assert net.blobs["max"].data.shape == (1, 2, 2, 3)
    assert net.blobs["ave_past"].data.shape == (1, 2, 3, 4)


def test_dynamic_batch(tmp_path):
    text = with_batch((MODELS / "examples/mnist/lenet.prototxt").read_text(), "dim: 64", "dim: 2")
    model, report, net, _ = export_and_compare(tmp_path, text, dynamic_batch=True)
    assert model.graph.input[0].type.tensor_type.shape.dim[0].dim_param == "N"
    x = np.random.RandomState(5).rand(5, 1, 28, 28).astype(np.float32)
    net.blobs["data"].reshape(5, 1, 28, 28)
    net.reshape()
    ours = net.forward(data=x)["prob"]
    assert_close(onnx_outputs(tmp_path / "model.onnx", {"data": x})["prob"], ours, "prob")


def test_the_cli_drops_losses_and_makes_data_layers_inputs(tmp_path):
    (tmp_path / "train.prototxt").write_text("""
name: "small"
layer { name: "data" type: "DummyData" top: "data" top: "label"
  dummy_data_param { shape { dim: 3 dim: 5 } shape { dim: 3 } } }
layer { name: "ip" type: "InnerProduct" bottom: "data" top: "ip"
  inner_product_param { num_output: 4 weight_filler { type: "gaussian" std: 1 } } }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "ip" bottom: "label" top: "loss" }
layer { name: "accuracy" type: "Accuracy" bottom: "ip" bottom: "label" top: "accuracy" }
""")
    net = caffe.Net(str(tmp_path / "train.prototxt"), caffe.TEST)
    weights = str(tmp_path / "w.caffemodel")
    net.save(weights)
    result = run_cli("export_onnx", "--model=" + str(tmp_path / "train.prototxt"),
                     "--weights=" + weights, "--output=" + str(tmp_path / "m.onnx"), "--opset=17")
    assert result.returncode == 0, result.stderr
    assert "layer data (DummyData): became the graph input data" in result.stdout
    assert "layer loss (SoftmaxWithLoss): dropped, a loss" in result.stdout
    assert "layer accuracy (Accuracy): dropped" in result.stdout
    assert "inputs: data; outputs: ip" in result.stdout
    model = onnx.load(str(tmp_path / "m.onnx"))
    onnx.checker.check_model(model, full_check=True)
    assert model.opset_import[0].version == 17
    x = np.random.RandomState(1).randn(3, 5).astype(np.float32)
    expected = x @ net.params["ip"][0].data.T + net.params["ip"][1].data
    assert_close(onnx_outputs(tmp_path / "m.onnx", {"data": x})["ip"], expected, "ip")


@pytest.mark.parametrize("layer, message", [
    ('layer { name: "embed" type: "Embed" bottom: "x" top: "y" embed_param { num_output: 2 input_dim: 5 } }',
     "layer embed (Embed): ONNX export has no mapping for Embed layers"),
    ('layer { name: "stoch" type: "Pooling" bottom: "x4" top: "y" pooling_param { pool: STOCHASTIC kernel_size: 2 } }',
     "layer stoch (Pooling): ONNX has no stochastic pooling"),
])
def test_layers_onnx_cannot_express_are_named(tmp_path, layer, message):
    (tmp_path / "net.prototxt").write_text(
        'layer { name: "x" type: "Input" top: "x" input_param { shape { dim: 2 dim: 3 } } }\n'
        'layer { name: "x4" type: "Input" top: "x4" input_param { shape { dim: 1 dim: 1 dim: 4 dim: 4 } } }\n'
        + layer)
    result = run_cli("export_onnx", "--model=" + str(tmp_path / "net.prototxt"),
                     "--output=" + str(tmp_path / "m.onnx"))
    assert result.returncode == 1
    assert message in result.stderr
    assert not (tmp_path / "m.onnx").exists()


def test_flag_errors(tmp_path):
    lenet = str(MODELS / "examples/mnist/lenet.prototxt")
    result = run_cli("export_onnx", "--model=" + lenet)
    assert result.returncode == 1 and "--output is required" in result.stderr
    result = run_cli("export_onnx", "--model=" + lenet, "--output=" + str(tmp_path / "m.onnx"),
                     "--opset=11")
    assert result.returncode == 1 and "opsets 13 to 21, not 11" in result.stderr
    result = run_cli("export_onnx", "--model=" + lenet, "--output=" + str(tmp_path / "m.onnx"),
                     "--batch=many")
    assert result.returncode == 1 and "--batch must be a positive number" in result.stderr


def test_a_label_read_by_a_kept_layer_is_an_error(tmp_path):
    (tmp_path / "net.prototxt").write_text("""
layer { name: "data" type: "DummyData" top: "data" top: "label"
  dummy_data_param { shape { dim: 3 dim: 5 } shape { dim: 3 dim: 5 } } }
layer { name: "sum" type: "Eltwise" bottom: "data" bottom: "label" top: "sum" }
""")
    result = run_cli("export_onnx", "--model=" + str(tmp_path / "net.prototxt"),
                     "--output=" + str(tmp_path / "m.onnx"))
    assert result.returncode == 1
    assert "layer sum (Eltwise): reads label, which only a data layer's label output" in result.stderr
