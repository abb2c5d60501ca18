#!/usr/bin/env python3
"""Writes models/resnet50/deploy.prototxt and models/mobilenet_v2/deploy.prototxt.

  resnet50      He et al. 2015, "Deep Residual Learning for Image Recognition", the 50-layer
                bottleneck net as Caffe users know it from the authors' release: every
                Convolution without bias (bias_term: false; the authors' file keeps a bias on
                conv1 only), each followed by BatchNorm (use_global_stats) and Scale (bias_term),
                ReLU in place; stride 2 on the first 1x1 of stages 3-5 (the authors' placement),
                projection shortcuts resNa_branch1 on the first block of every stage, Eltwise SUM
                joins; 7x7 average pooling, fc1000, Softmax "prob". 25,557,032 learnable values
                (without BatchNorm's statistics), as torchvision's resnet50.
  mobilenet_v2  Sandler et al. 2018, "MobileNetV2" (width 1.0, 224 input), table 2 of the paper:
                inverted residual blocks (1x1 expansion by t = 6, 3x3 depthwise Convolution with
                group == channels, linear 1x1 projection; the first block, t = 1, has no
                expansion), BatchNorm (use_global_stats) + Scale after every Convolution, ReLU6
                as the engine's Clip layer (min 0, max 6), Eltwise SUM residuals where stride is
                1 and the channels match, final 1x1 Convolution to 1280, global average pooling,
                InnerProduct 1000, Softmax "prob". 3,504,872 learnable values, as torchvision's
                mobilenet_v2.

Both take one Input "data" of 1 x 3 x 224 x 224 (reshape the blob or pass --batch to change
the batch). Run from anywhere: python3 models/make_resnet_mobilenet.py
"""
import os

HERE = os.path.dirname(os.path.abspath(__file__))


class Net:
    """Caffe's text format, one `layer { }` block per call."""

    def __init__(self, name, batch=1, channels=3, size=224):
        self.lines = [f'name: "{name}"',
                      'layer {', '  name: "data"', '  type: "Input"', '  top: "data"',
                      f'  input_param {{ shape: {{ dim: {batch} dim: {channels} dim: {size} '
                      f'dim: {size} }} }}', '}']

    def layer(self, name, type_, bottoms, tops, params=""):
        self.lines += ["layer {", f'  name: "{name}"', f'  type: "{type_}"']
        self.lines += [f'  bottom: "{b}"' for b in bottoms]
        self.lines += [f'  top: "{t}"' for t in tops]
        self.lines += ["  " + line for line in params.splitlines() if line.strip()]
        self.lines.append("}")
        return tops[0]

    def conv(self, name, bottom, num_output, kernel, stride=1, pad=0, group=1):
        fields = [f"num_output: {num_output}", "bias_term: false", f"pad: {pad}",
                  f"kernel_size: {kernel}", f"stride: {stride}"]
        if group != 1:
            fields.append(f"group: {group}")
        body = "\n".join("  " + f for f in fields)
        return self.layer(name, "Convolution", [bottom], [name],
                          f"convolution_param {{\n{body}\n}}")

    def batch_norm_scale(self, bn_name, scale_name, blob):
        """Caffe's BatchNorm (stored statistics) and Scale (gamma, beta), both in place."""
        self.layer(bn_name, "BatchNorm", [blob], [blob],
                   "batch_norm_param {\n  use_global_stats: true\n}")
        self.layer(scale_name, "Scale", [blob], [blob], "scale_param {\n  bias_term: true\n}")
        return blob

    def text(self):
        return "\n".join(self.lines) + "\n"


# ----------------------------------------------------------------------------------------------
# ResNet-50 with the authors' names: resXY_branch2{a,b,c}, bnXY_..., scaleXY_..., resXY_branch1
# for the projection, resXY for the sum.
def resnet50():
    net = Net("ResNet-50")

    def conv_bn(name, suffix, bottom, num_output, kernel, stride, pad, relu=True):
        net.conv(name, bottom, num_output, kernel, stride, pad)
        net.batch_norm_scale(f"bn{suffix}", f"scale{suffix}", name)
        if relu:
            net.layer(f"{name}_relu", "ReLU", [name], [name])
        return name

    conv_bn("conv1", "_conv1", "data", 64, 7, 2, 3)
    bottom = net.layer("pool1", "Pooling", ["conv1"], ["pool1"],
                       "pooling_param {\n  pool: MAX\n  kernel_size: 3\n  stride: 2\n}")
    for stage, blocks, width in [(2, 3, 64), (3, 4, 128), (4, 6, 256), (5, 3, 512)]:
        for block in range(blocks):
            unit = f"{stage}{'abcdef'[block]}"
            stride = 2 if block == 0 and stage > 2 else 1
            if block == 0:
                shortcut = conv_bn(f"res{unit}_branch1", f"{unit}_branch1", bottom, 4 * width, 1,
                                   stride, 0, relu=False)
            else:
                shortcut = bottom
            x = conv_bn(f"res{unit}_branch2a", f"{unit}_branch2a", bottom, width, 1, stride, 0)
            x = conv_bn(f"res{unit}_branch2b", f"{unit}_branch2b", x, width, 3, 1, 1)
            x = conv_bn(f"res{unit}_branch2c", f"{unit}_branch2c", x, 4 * width, 1, 1, 0,
                        relu=False)
            bottom = net.layer(f"res{unit}", "Eltwise", [shortcut, x], [f"res{unit}"],
                               "eltwise_param {\n  operation: SUM\n}")
            net.layer(f"res{unit}_relu", "ReLU", [bottom], [bottom])
    net.layer("pool5", "Pooling", [bottom], ["pool5"],
              "pooling_param {\n  pool: AVE\n  kernel_size: 7\n  stride: 1\n}")
    net.layer("fc1000", "InnerProduct", ["pool5"], ["fc1000"],
              "inner_product_param {\n  num_output: 1000\n}")
    net.layer("prob", "Softmax", ["fc1000"], ["prob"])
    return net.text()


# ----------------------------------------------------------------------------------------------
# MobileNetV2: convS_K is the K-th bottleneck of stage S, a stage per row of the paper's table 2
# (stages 2-8; conv1 is the stem, conv9 the 1280-channel 1x1), with layers convS_K/expand,
# /dwise and /linear, each followed by its /bn and /scale; ReLU6 is Clip [0, 6] (ONNX's Clip,
# PyTorch's ReLU6). blockS_K is a residual sum.
def mobilenet_v2():
    net = Net("MobileNetV2")

    def conv_bn(name, bottom, num_output, kernel, stride=1, pad=0, group=1, relu6=True):
        net.conv(name, bottom, num_output, kernel, stride, pad, group)
        net.batch_norm_scale(f"{name}/bn", f"{name}/scale", name)
        if relu6:
            net.layer(f"{name}/relu6", "Clip", [name], [name],
                      "clip_param {\n  min: 0\n  max: 6\n}")
        return name

    x = conv_bn("conv1", "data", 32, 3, stride=2, pad=1)
    channels = 32
    # The paper's table 2: expansion t, output channels c, repeats n, first stride s.
    table = [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1),
             (6, 160, 3, 2), (6, 320, 1, 1)]
    for stage, (t, c, n, s) in enumerate(table, 2):
        for repeat in range(n):
            name = f"conv{stage}_{repeat + 1}"
            stride = s if repeat == 0 else 1
            hidden = channels * t
            y = x
            if t != 1:
                y = conv_bn(f"{name}/expand", y, hidden, 1)
            y = conv_bn(f"{name}/dwise", y, hidden, 3, stride=stride, pad=1, group=hidden)
            y = conv_bn(f"{name}/linear", y, c, 1, relu6=False)
            if stride == 1 and channels == c:
                y = net.layer(f"block{stage}_{repeat + 1}", "Eltwise", [x, y],
                              [f"block{stage}_{repeat + 1}"],
                              "eltwise_param {\n  operation: SUM\n}")
            x = y
            channels = c
    x = conv_bn("conv9", x, 1280, 1)
    net.layer("pool9", "Pooling", [x], ["pool9"],
              "pooling_param {\n  pool: AVE\n  global_pooling: true\n}")
    net.layer("fc10", "InnerProduct", ["pool9"], ["fc10"],
              "inner_product_param {\n  num_output: 1000\n}")
    net.layer("prob", "Softmax", ["fc10"], ["prob"])
    return net.text()


MODELS = {"resnet50": resnet50, "mobilenet_v2": mobilenet_v2}

if __name__ == "__main__":
    for directory, build in MODELS.items():
        os.makedirs(os.path.join(HERE, directory), exist_ok=True)
        with open(os.path.join(HERE, directory, "deploy.prototxt"), "w") as out:
            out.write(build())
