"""pycaffe's Classifier: a Net that scores images, with the Transformer's preprocessing and
optional ten-crop oversampling."""
import numpy as np

from . import io
from .pycaffe import Net


def image_transformer(net, kind, mean=None, input_scale=None, raw_scale=None,
                      channel_swap=None):
    """The Transformer that turns H x W x K images into `net`'s single input, with the
    settings of io.Transformer (shared by Classifier and Detector)."""
    if len(net.inputs) != 1:
        raise ValueError("a %s needs a net with exactly one input, not %s" % (kind, net.inputs))
    name = net.inputs[0]
    transformer = io.Transformer({name: net.blobs[name].data.shape})
    transformer.set_transpose(name, (2, 0, 1))
    if mean is not None:
        transformer.set_mean(name, mean)
    if input_scale is not None:
        transformer.set_input_scale(name, input_scale)
    if raw_scale is not None:
        transformer.set_raw_scale(name, raw_scale)
    if channel_swap is not None:
        transformer.set_channel_swap(name, channel_swap)
    return transformer


class Classifier(Net):
    """Net(model_file, pretrained_file, TEST) plus preprocessing for its single input.

    image_dims: the (height, width) images are resized to before cropping (default: the input's);
    mean, input_scale, raw_scale, channel_swap: as io.Transformer's settings."""

    def __init__(self, model_file, pretrained_file, image_dims=None, mean=None,
                 input_scale=None, raw_scale=None, channel_swap=None):
        from . import TEST
        Net.__init__(self, model_file, pretrained_file, TEST)
        self.transformer = image_transformer(self, "Classifier", mean, input_scale, raw_scale,
                                             channel_swap)
        self.crop_dims = np.array(self.blobs[self.inputs[0]].data.shape[2:])
        self.image_dims = np.array(image_dims if image_dims is not None else self.crop_dims)

    def predict(self, inputs, oversample=True):
        """Class scores for each image (H x W x K arrays): with `oversample` the mean over the
        ten crops (corners, center and their mirrors), else the center crop's."""
        resized = np.zeros((len(inputs),) + tuple(self.image_dims) + (inputs[0].shape[2],),
                           dtype=np.float32)
        for i, image in enumerate(inputs):
            resized[i] = io.resize_image(image, self.image_dims)
        if oversample:
            crops = io.oversample(resized, self.crop_dims)
        else:
            center = np.array(self.image_dims) / 2.0
            box = np.tile(center, (1, 2))[0] + np.concatenate([-self.crop_dims / 2.0,
                                                                self.crop_dims / 2.0])
            box = box.astype(int)
            crops = resized[:, box[0]:box[2], box[1]:box[3], :]
        name = self.inputs[0]
        data = np.asarray([self.transformer.preprocess(name, crop) for crop in crops])
        scores = self.forward_all(**{name: data})[self.outputs[0]]
        if oversample:
            scores = scores.reshape((len(scores) // 10, 10, -1)).mean(axis=1)
        return scores
