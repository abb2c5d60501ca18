#!/usr/bin/env python3
"""Writes the deploy.prototxt files of popular Caffe model-zoo nets, reconstructed from their papers.

The layer names, layer types, parameter spellings and input forms follow the conventions of the
zoo's public Caffe releases (so user files with the same structure load here unchanged); the
architectures come from the papers:

  resnet50      He et al. 2015, "Deep Residual Learning for Image Recognition" (the 50-layer
                bottleneck net as released in Caffe: stride 2 on the first 1x1 of a stage,
                projection shortcuts `resN a_branch1`, BatchNorm + Scale after every convolution)
  squeezenet1.1 Iandola et al. 2016, SqueezeNet v1.1 (3x3 conv1 of 64, pools after fire3/fire5)
  mobilenet_v1  Howard et al. 2017, "MobileNets" (1.0, 224; depthwise = group == channels)
  mobilenet_v2  Sandler et al. 2018, "MobileNetV2" (1.0, 224; the popular Caffe port keeps a 1x1
                expansion of 32 channels in the first block (t = 1) and writes ReLU6 as ReLU)
  vgg16         Simonyan & Zisserman 2014, configuration D (the zoo file is in the legacy V1
                `layers` format with enum types)
  nin_imagenet  Lin et al. 2013, "Network In Network", the ImageNet model (4 mlpconv blocks,
                global average pooling of the 1000-channel map)

Run from anywhere: python3 tests/models/generate.py  (rewrites tests/models/*/deploy.prototxt).
"""
import os

HERE = os.path.dirname(os.path.abspath(__file__))


def message(name, fields, indent):
    """Caffe's text format of a message: fields are (key, value) pairs; a list value is a
    nested message, a str value is quoted unless it is an enum (upper case)."""
    pad = "  " * indent
    lines = [f"{pad}{name} {{"]
    for key, value in fields:
        if isinstance(value, list):
            lines.extend(message(key, value, indent + 1))
        else:
            lines.append(f"{pad}  {key}: {scalar(value)}")
    lines.append(f"{pad}}}")
    return lines


def scalar(value):
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value if value.isupper() and value.replace("_", "").isalpha() else f'"{value}"'
    return str(value)


class Net:
    """Accumulates layers of the V2 format (`layer { type: "..." }`)."""

    def __init__(self, name, header):
        self.lines = [f'name: "{name}"'] + header

    def layer(self, name, type_, bottoms, tops, *extra):
        fields = [("name", name), ("type", type_)]
        fields += [("bottom", b) for b in bottoms] + [("top", t) for t in tops]
        fields += list(extra)
        self.lines.extend(message("layer", fields, 0))

    def text(self):
        return "\n".join(self.lines) + "\n"


def legacy_input(batch, channels, height, width):
    return ['input: "data"'] + [f"input_dim: {d}" for d in (batch, channels, height, width)]


def input_layer(batch, channels, height, width):
    shape = [("dim", d) for d in (batch, channels, height, width)]
    return message("layer", [("name", "data"), ("type", "Input"), ("top", "data"),
                             ("input_param", [("shape", shape)])], 0)


def conv_settings(num_output, kernel, stride=1, pad=0, bias=True, group=1, engine=None):
    """The fields of a convolution_param, in the order the zoo files write them."""
    fields = [("num_output", num_output)]
    if not bias:
        fields.append(("bias_term", False))
    if pad:
        fields.append(("pad", pad))
    fields.append(("kernel_size", kernel))
    if group != 1:
        fields.append(("group", group))
    if engine:
        fields.append(("engine", engine))
    if stride != 1:
        fields.append(("stride", stride))
    return fields


# ----------------------------------------------------------------------------------------------
# ResNet-50, in the style of the authors' Caffe release: legacy `input_dim` input; layer
# blocks "resXY_branch2{a,b,c}" with "bnXY_..." / "scaleXY_..." and in-place ReLUs; conv1 keeps
# its bias, the other convolutions have none.
def resnet50():
    net = Net("ResNet-50", legacy_input(1, 3, 224, 224))

    def conv_bn(name, bn_suffix, bottom, num_output, kernel, stride, pad, bias=False, relu=True):
        net.layer(name, "Convolution", [bottom], [name],
                  ("convolution_param", conv_settings(num_output, kernel, stride, pad, bias)))
        net.layer(f"bn{bn_suffix}", "BatchNorm", [name], [name],
                  ("batch_norm_param", [("use_global_stats", True)]))
        net.layer(f"scale{bn_suffix}", "Scale", [name], [name],
                  ("scale_param", [("bias_term", True)]))
        if relu:
            net.layer(f"{name}_relu", "ReLU", [name], [name])
        return name

    conv_bn("conv1", "_conv1", "data", 64, 7, 2, 3, bias=True)
    net.layer("pool1", "Pooling", ["conv1"], ["pool1"],
              ("pooling_param", [("kernel_size", 3), ("stride", 2), ("pool", "MAX")]))
    bottom = "pool1"
    stages = [(2, 3, 64), (3, 4, 128), (4, 6, 256), (5, 3, 512)]
    for stage, blocks, width in stages:
        for block in range(blocks):
            letter = "abcdefghijklmnopqrstuvwxyz"[block]
            unit = f"{stage}{letter}"
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
            net.layer(f"res{unit}", "Eltwise", [shortcut, x], [f"res{unit}"])
            net.layer(f"res{unit}_relu", "ReLU", [f"res{unit}"], [f"res{unit}"])
            bottom = f"res{unit}"
    net.layer("pool5", "Pooling", [bottom], ["pool5"],
              ("pooling_param", [("kernel_size", 7), ("stride", 1), ("pool", "AVE")]))
    net.layer("fc1000", "InnerProduct", ["pool5"], ["fc1000"],
              ("inner_product_param", [("num_output", 1000)]))
    net.layer("prob", "Softmax", ["fc1000"], ["prob"])
    return net.text()


# ----------------------------------------------------------------------------------------------
# SqueezeNet v1.1: Input layer; "fireN/squeeze1x1", "fireN/expand1x1", "fireN/expand3x3" joined
# by "fireN/concat"; conv10 after dropout, global average pooling.
def squeezenet11():
    net = Net("SqueezeNet_v1.1", input_layer(10, 3, 227, 227))

    def conv_relu(name, relu_name, bottom, num_output, kernel, stride=1, pad=0):
        net.layer(name, "Convolution", [bottom], [name],
                  ("convolution_param", conv_settings(num_output, kernel, stride, pad)))
        net.layer(relu_name, "ReLU", [name], [name])
        return name

    def max_pool(name, bottom):
        net.layer(name, "Pooling", [bottom], [name],
                  ("pooling_param", [("pool", "MAX"), ("kernel_size", 3), ("stride", 2)]))
        return name

    def fire(index, bottom, squeeze, expand):
        f = f"fire{index}"
        s = conv_relu(f"{f}/squeeze1x1", f"{f}/relu_squeeze1x1", bottom, squeeze, 1)
        e1 = conv_relu(f"{f}/expand1x1", f"{f}/relu_expand1x1", s, expand, 1)
        e3 = conv_relu(f"{f}/expand3x3", f"{f}/relu_expand3x3", s, expand, 3, pad=1)
        net.layer(f"{f}/concat", "Concat", [e1, e3], [f"{f}/concat"])
        return f"{f}/concat"

    x = conv_relu("conv1", "relu_conv1", "data", 64, 3, stride=2)
    x = max_pool("pool1", x)
    x = fire(2, x, 16, 64)
    x = fire(3, x, 16, 64)
    x = max_pool("pool3", x)
    x = fire(4, x, 32, 128)
    x = fire(5, x, 32, 128)
    x = max_pool("pool5", x)
    x = fire(6, x, 48, 192)
    x = fire(7, x, 48, 192)
    x = fire(8, x, 64, 256)
    x = fire(9, x, 64, 256)
    net.layer("drop9", "Dropout", [x], [x], ("dropout_param", [("dropout_ratio", 0.5)]))
    x = conv_relu("conv10", "relu_conv10", x, 1000, 1)
    net.layer("pool10", "Pooling", [x], ["pool10"],
              ("pooling_param", [("pool", "AVE"), ("global_pooling", True)]))
    net.layer("prob", "Softmax", ["pool10"], ["prob"])
    return net.text()


# ----------------------------------------------------------------------------------------------
# MobileNets, in the style of the popular Caffe port: legacy `input_dim` input; "NAME/bn" and
# "NAME/scale" after each convolution, BatchNorm with three frozen params and no explicit
# use_global_stats (TEST selects the stored statistics), Scale with its fillers; depthwise
# convolutions with group == channels on Caffe's own engine; the classifier is a 1x1
# convolution "fc7" after global average pooling.
FROZEN = ("param", [("lr_mult", 0), ("decay_mult", 0)])


def mobile_conv(net, name, bottom, num_output, kernel, stride, pad, group=1, relu=None):
    dw = group != 1
    net.layer(name, "Convolution", [bottom], [name],
              ("param", [("lr_mult", 1), ("decay_mult", 0 if dw else 1)]),
              ("convolution_param",
               conv_settings(num_output, kernel, stride, pad, bias=False, group=group,
                             engine="CAFFE" if dw else None)
               + [("weight_filler", [("type", "msra")])]))
    net.layer(f"{name}/bn", "BatchNorm", [name], [name], FROZEN, FROZEN, FROZEN)
    net.layer(f"{name}/scale", "Scale", [name], [name],
              ("scale_param", [("filler", [("value", 1)]), ("bias_term", True),
                               ("bias_filler", [("value", 0)])]))
    if relu:
        net.layer(relu, "ReLU", [name], [name])
    return name


def mobile_head(net, bottom):
    net.layer("pool6", "Pooling", [bottom], ["pool6"],
              ("pooling_param", [("pool", "AVE"), ("global_pooling", True)]))
    net.layer("fc7", "Convolution", ["pool6"], ["fc7"],
              ("param", [("lr_mult", 1), ("decay_mult", 1)]),
              ("param", [("lr_mult", 2), ("decay_mult", 0)]),
              ("convolution_param",
               [("num_output", 1000), ("kernel_size", 1),
                ("weight_filler", [("type", "msra")]),
                ("bias_filler", [("type", "constant"), ("value", 0)])]))
    net.layer("prob", "Softmax", ["fc7"], ["prob"])


def mobilenet_v1():
    net = Net("MOBILENET", legacy_input(1, 3, 224, 224))
    x = mobile_conv(net, "conv1", "data", 32, 3, 2, 1, relu="relu1")
    # (name, output channels of the pointwise convolution, stride of the depthwise one)
    blocks = [("2_1", 64, 1), ("2_2", 128, 2), ("3_1", 128, 1), ("3_2", 256, 2), ("4_1", 256, 1),
              ("4_2", 512, 2), ("5_1", 512, 1), ("5_2", 512, 1), ("5_3", 512, 1),
              ("5_4", 512, 1), ("5_5", 512, 1), ("5_6", 1024, 2), ("6", 1024, 1)]
    channels = 32
    for name, out, stride in blocks:
        x = mobile_conv(net, f"conv{name}/dw", x, channels, 3, stride, 1, group=channels,
                        relu=f"relu{name}/dw")
        x = mobile_conv(net, f"conv{name}/sep", x, out, 1, 1, 0, relu=f"relu{name}/sep")
        channels = out
    mobile_head(net, x)
    return net.text()


def mobilenet_v2():
    net = Net("MOBILENET_V2", legacy_input(1, 3, 224, 224))
    x = mobile_conv(net, "conv1", "data", 32, 3, 2, 1, relu="relu1")
    # The paper's table 2 (t, c, n, s) with the port's stage numbering: block "S_K" is the K-th
    # bottleneck of Caffe stage S; stages change where the spatial size halves (and at 96).
    table = [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1),
             (6, 160, 3, 2), (6, 320, 1, 1)]
    names = ["2_1", "2_2", "3_1", "3_2", "4_1", "4_2", "4_3", "4_4", "4_5", "4_6", "4_7",
             "5_1", "5_2", "5_3", "6_1", "6_2", "6_3"]
    channels = 32
    index = 0
    for t, c, n, s in table:
        for repeat in range(n):
            name = names[index]
            index += 1
            stride = s if repeat == 0 else 1
            hidden = channels * t
            y = mobile_conv(net, f"conv{name}/expand", x, hidden, 1, 1, 0,
                            relu=f"relu{name}/expand")
            y = mobile_conv(net, f"conv{name}/dwise", y, hidden, 3, stride, 1, group=hidden,
                            relu=f"relu{name}/dwise")
            y = mobile_conv(net, f"conv{name}/linear", y, c, 1, 1, 0)
            if stride == 1 and channels == c:
                net.layer(f"block_{name}", "Eltwise", [x, y], [f"block_{name}"])
                y = f"block_{name}"
            x = y
            channels = c
    x = mobile_conv(net, "conv6_4", x, 1280, 1, 1, 0, relu="relu6_4")
    mobile_head(net, x)
    return net.text()


# ----------------------------------------------------------------------------------------------
# VGG-16 (configuration D) in the legacy V1 format of the zoo's file: `layers` with enum types.
def vgg16():
    lines = ['name: "VGG_ILSVRC_16_layers"'] + legacy_input(10, 3, 224, 224)

    def layers(name, type_, bottom, top, *extra):
        fields = [("bottom", bottom), ("top", top), ("name", name), ("type", type_)]
        lines.extend(message("layers", fields + list(extra), 0))

    x = "data"
    for block, (convs, width) in enumerate([(2, 64), (2, 128), (3, 256), (3, 512), (3, 512)], 1):
        for i in range(1, convs + 1):
            name = f"conv{block}_{i}"
            layers(name, "CONVOLUTION", x, name,
                   ("convolution_param", [("num_output", width), ("pad", 1), ("kernel_size", 3)]))
            layers(f"relu{block}_{i}", "RELU", name, name)
            x = name
        layers(f"pool{block}", "POOLING", x, f"pool{block}",
               ("pooling_param", [("pool", "MAX"), ("kernel_size", 2), ("stride", 2)]))
        x = f"pool{block}"
    for fc, width in [(6, 4096), (7, 4096)]:
        layers(f"fc{fc}", "INNER_PRODUCT", x, f"fc{fc}",
               ("inner_product_param", [("num_output", width)]))
        layers(f"relu{fc}", "RELU", f"fc{fc}", f"fc{fc}")
        layers(f"drop{fc}", "DROPOUT", f"fc{fc}", f"fc{fc}",
               ("dropout_param", [("dropout_ratio", 0.5)]))
        x = f"fc{fc}"
    layers("fc8", "INNER_PRODUCT", x, "fc8", ("inner_product_param", [("num_output", 1000)]))
    layers("prob", "SOFTMAX", "fc8", "prob")
    return "\n".join(lines) + "\n"


# ----------------------------------------------------------------------------------------------
# NiN for ImageNet: `input` with an `input_shape`; mlpconv = a spatial convolution followed by
# two 1x1 "cccpN" convolutions, each with a ReLU; the last mlpconv outputs 1000 maps that a 6x6
# average pool reduces to the class scores.
def nin_imagenet():
    header = ['input: "data"', "input_shape {"] + [f"  dim: {d}" for d in (10, 3, 224, 224)] + ["}"]
    net = Net("nin_imagenet", header)
    relu_index = [0]

    def conv(name, bottom, num_output, kernel, stride=1, pad=0):
        net.layer(name, "Convolution", [bottom], [name],
                  ("convolution_param", conv_settings(num_output, kernel, stride, pad)))
        net.layer(f"relu{relu_index[0]}", "ReLU", [name], [name])
        relu_index[0] += 1
        return name

    def pool(name, bottom, kind, kernel, stride):
        net.layer(name, "Pooling", [bottom], [name],
                  ("pooling_param", [("pool", kind), ("kernel_size", kernel), ("stride", stride)]))
        return name

    x = conv("conv1", "data", 96, 11, stride=4)
    x = conv("cccp1", x, 96, 1)
    x = conv("cccp2", x, 96, 1)
    x = pool("pool1", x, "MAX", 3, 2)
    x = conv("conv2", x, 256, 5, pad=2)
    x = conv("cccp3", x, 256, 1)
    x = conv("cccp4", x, 256, 1)
    x = pool("pool2", x, "MAX", 3, 2)
    x = conv("conv3", x, 384, 3, pad=1)
    x = conv("cccp5", x, 384, 1)
    x = conv("cccp6", x, 384, 1)
    x = pool("pool3", x, "MAX", 3, 2)
    net.layer("drop", "Dropout", [x], [x], ("dropout_param", [("dropout_ratio", 0.5)]))
    x = conv("conv4-1024", x, 1024, 3, pad=1)
    x = conv("cccp7-1024", x, 1024, 1)
    x = conv("cccp8-1024", x, 1000, 1)
    x = pool("pool4", x, "AVE", 6, 1)
    net.layer("prob", "Softmax", [x], ["prob"])
    return net.text()


MODELS = {
    "resnet50": resnet50,
    "squeezenet1.1": squeezenet11,
    "mobilenet_v1": mobilenet_v1,
    "mobilenet_v2": mobilenet_v2,
    "vgg16": vgg16,
    "nin_imagenet": nin_imagenet,
}

if __name__ == "__main__":
    for directory, build in MODELS.items():
        os.makedirs(os.path.join(HERE, directory), exist_ok=True)
        with open(os.path.join(HERE, directory, "deploy.prototxt"), "w") as out:
            out.write(build())
