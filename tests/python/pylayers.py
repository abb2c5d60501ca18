"""Layers written in Python, for test_python_layers.py (found on sys.path as the test's folder)."""
import numpy as np

import engine


class Scale(engine.Layer):
    """top = factor * bottom, factor from param_str."""

    def setup(self, bottom, top):
        self.factor = float(self.param_str)

    def reshape(self, bottom, top):
        top[0].reshape(*bottom[0].shape)

    def forward(self, bottom, top):
        top[0].data[...] = self.factor * bottom[0].data

    def backward(self, top, propagate_down, bottom):
        if propagate_down[0]:
            bottom[0].diff[...] = self.factor * top[0].diff


class EuclideanLoss(engine.Layer):
    """pycaffe's example loss: sum of squared differences over 2N."""

    def reshape(self, bottom, top):
        if bottom[0].count != bottom[1].count:
            raise ValueError("the inputs must have the same count")
        self.difference = np.zeros_like(bottom[0].data)
        top[0].reshape(1)

    def forward(self, bottom, top):
        self.difference[...] = bottom[0].data - bottom[1].data
        top[0].data[...] = np.sum(self.difference ** 2) / bottom[0].num / 2.0

    def backward(self, top, propagate_down, bottom):
        for i, sign in ((0, 1), (1, -1)):
            if propagate_down[i]:
                bottom[i].diff[...] = sign * top[0].diff[0] * self.difference / bottom[i].num


class Points(engine.Layer):
    """A data layer: batches of 2-D points labelled by which side of x + y = 0 they lie."""

    def setup(self, bottom, top):
        self.batch = int(self.param_str)
        self.rng = np.random.RandomState(0)

    def reshape(self, bottom, top):
        top[0].reshape(self.batch, 2)
        top[1].reshape(self.batch)

    def forward(self, bottom, top):
        points = self.rng.randn(self.batch, 2)
        top[0].data[...] = points
        top[1].data[...] = (points.sum(axis=1) > 0)


class Broken(engine.Layer):
    def forward(self, bottom, top):
        raise ValueError("broken on purpose")


class ChannelScale(engine.Layer):
    """top[n, c] = w[c] * bottom[n, c], with w a learnable parameter (self.blobs) starting at 1."""

    def setup(self, bottom, top):
        if len(self.blobs) == 0:  # weights loaded or shared before setup are kept
            self.blobs.add_blob(bottom[0].shape[1])
            self.blobs[0].data[...] = 1

    def reshape(self, bottom, top):
        top[0].reshape(*bottom[0].shape)

    def forward(self, bottom, top):
        top[0].data[...] = self.blobs[0].data * bottom[0].data

    def backward(self, top, propagate_down, bottom):
        # Parameter gradients accumulate, as the engine's own layers' do.
        self.blobs[0].diff[...] += (top[0].diff * bottom[0].data).sum(axis=0)
        if propagate_down[0]:
            bottom[0].diff[...] = self.blobs[0].data * top[0].diff
