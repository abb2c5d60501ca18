"""pycaffe's Detector: a Net that scores windows (boxes) of images, R-CNN style, with the
Transformer's preprocessing and optional context padding around each window."""
import os

import numpy as np

from . import io
from .classifier import image_transformer
from .pycaffe import Net


class Detector(Net):
    """Net(model_file, pretrained_file, TEST) for windows; `context_pad` pixels of surrounding
    image are kept around each window, as R-CNN did (mean-filled where the window leaves the
    image). mean, input_scale, raw_scale, channel_swap: as io.Transformer's settings."""

    def __init__(self, model_file, pretrained_file, mean=None, input_scale=None,
                 raw_scale=None, channel_swap=None, context_pad=None):
        from . import TEST
        Net.__init__(self, model_file, pretrained_file, TEST)
        self.transformer = image_transformer(self, "Detector", mean, input_scale, raw_scale,
                                             channel_swap)
        self.configure_crop(context_pad)

    def detect_windows(self, images_windows):
        """Scores for every window: `images_windows` is [(image file, [(ymin, xmin, ymax, xmax),
        ...]), ...] (any iterable, read once); returns [{'window', 'prediction', 'filename'},
        ...] in the same order."""
        images_windows = list(images_windows)
        crops = []
        for filename, windows in images_windows:
            image = io.load_image(filename).astype(np.float32)
            for window in windows:
                crops.append(self.crop(image, window))
        name = self.inputs[0]
        data = np.asarray([self.transformer.preprocess(name, crop) for crop in crops])
        scores = self.forward_all(**{name: data})[self.outputs[0]]
        predictions = scores.reshape(len(scores), -1)
        detections, index = [], 0
        for filename, windows in images_windows:
            for window in windows:
                detections.append({"window": window, "prediction": predictions[index],
                                   "filename": filename})
                index += 1
        return detections

    def detect_selective_search(self, image_fnames):
        """detect_windows over the windows that selective search proposes (R-CNN's MATLAB
        code through the selective_search_ijcv_with_python package, as pycaffe calls it)."""
        try:
            import selective_search_ijcv_with_python as selective_search
        except ImportError as error:
            raise ImportError("detect_selective_search needs the selective_search_ijcv_with_python "
                              "package (R-CNN's selective search, which runs MATLAB) on the "
                              "Python path; or compute the windows elsewhere and call "
                              "detect_windows") from error
        image_fnames = [os.path.abspath(f) for f in image_fnames]
        windows_list = selective_search.get_windows(image_fnames, cmd="selective_search_rcnn")
        return self.detect_windows(zip(image_fnames, windows_list))

    def crop(self, image, window):
        """The window (ymin, xmin, ymax, xmax) of `image`, with the context padding, resized to
        the net's input size."""
        crop_dims = self.blobs[self.inputs[0]].data.shape[2:]
        window = np.asarray(window, dtype=float)
        if not self.context_pad:
            part = image[int(window[0]):int(window[2]), int(window[1]):int(window[3])]
            return io.resize_image(part, crop_dims)
        # Grow the box so that, once resized, `context_pad` pixels of context surround it.
        scale = crop_dims[0] / (crop_dims[0] - 2.0 * self.context_pad)
        center = (window[:2] + window[2:]) / 2.0
        half = (window[2:] - window[:2]) / 2.0 * scale
        box = np.round(np.concatenate([center - half, center + half])).astype(int)
        height, width = image.shape[:2]
        inside = np.clip(box, 0, [height, width, height, width])
        part = image[inside[0]:inside[2], inside[1]:inside[3]]
        # Where the box leaves the image: the mean (or zeros), as R-CNN pads.
        fill = self.crop_mean if self.crop_mean is not None else 0
        padded = np.empty((box[2] - box[0], box[3] - box[1], image.shape[2]), np.float32)
        padded[...] = fill
        padded[inside[0] - box[0]:inside[2] - box[0], inside[1] - box[1]:inside[3] - box[1]] = part
        return io.resize_image(padded, crop_dims)

    def configure_crop(self, context_pad):
        """Keeps the context padding and, per image channel, the mean to pad with."""
        name = self.inputs[0]
        self.context_pad = context_pad or 0
        self.crop_mean = None
        if not self.context_pad or name not in self.transformer.mean:
            return
        # The net's per-channel mean, back in the image's channel order and value range.
        per_net_channel = np.asarray(self.transformer.mean[name]).reshape(
            len(self.transformer.mean[name]), -1).mean(axis=1)
        order = self.transformer.channel_swap.get(name, range(len(per_net_channel)))
        per_image_channel = np.empty_like(per_net_channel)
        per_image_channel[list(order)] = per_net_channel
        self.crop_mean = per_image_channel / self.transformer.raw_scale.get(name, 1.0)
