"""Coordinate mappings between NetSpec tops, as pycaffe's `caffe.coord_map`, for aligning the
outputs of fully convolutional nets (e.g. cropping an upsampled score map to the input).

A map is (axis, a, b): coordinate x in the lower blob corresponds to a * x + b in the upper
blob, on the spatial axes from `axis` on (None when the layer does not care, e.g. ReLU). `a` and
`b` are numpy arrays (one value per spatial axis, or one for all).
"""
import numpy as np

from .net_spec import layers as L

# Layers whose output coordinates are their input's.
PASS_THROUGH_LAYERS = ['AbsVal', 'BatchNorm', 'Bias', 'BNLL', 'Dropout', 'Eltwise', 'ELU',
                       'Log', 'LRN', 'Exp', 'MVN', 'Power', 'ReLU', 'PReLU', 'Scale', 'Sigmoid',
                       'Split', 'TanH', 'Threshold']


class UndefinedMapException(Exception):
    """The layer type has no coordinate mapping (e.g. InnerProduct, global pooling)."""


class AxisMismatchException(Exception):
    """Two maps along a path act on different spatial axes."""


def _layer_params(fn, message):
    """The layer's parameters: the `<message>` dict when given that way, else the keyword
    arguments themselves (L.Convolution(x, kernel_size=3) and
    L.Convolution(x, convolution_param=dict(kernel_size=3)) are the same)."""
    return fn.params.get(message, fn.params)


def conv_params(fn):
    """(axis, stride, effective kernel extent, pad) of a Convolution, Deconvolution or
    Pooling layer, each as a numpy array."""
    message = 'pooling_param' if fn.type_name == 'Pooling' else 'convolution_param'
    params = _layer_params(fn, message)
    legacy = {'pad_h', 'pad_w', 'kernel_h', 'kernel_w', 'stride_h', 'stride_w'} & set(params)
    assert not legacy, 'cropping does not support legacy _h/_w params'
    if params.get('global_pooling', False):
        raise UndefinedMapException('global pooling has no coordinate mapping')
    axis = params.get('axis', 1)
    kernel = np.array(params['kernel_size'], ndmin=1)
    dilation = np.array(params.get('dilation', 1), ndmin=1)
    stride = np.array(params.get('stride', 1), ndmin=1)
    pad = np.array(params.get('pad', 0), ndmin=1)
    return axis, stride, (kernel - 1) * dilation + 1, pad


def crop_params(fn):
    """(axis, offset) of a Crop layer; Crop's axis defaults to 2 (the spatial axes of NCHW)."""
    params = _layer_params(fn, 'crop_param')
    return params.get('axis', 2), np.array(params.get('offset', 0), ndmin=1)


def coord_map(fn):
    """The map (axis, a, b) of a layer: bottom coordinate x is top coordinate a * x + b."""
    if fn.type_name in ('Convolution', 'Pooling', 'Im2col'):
        axis, stride, kernel, pad = conv_params(fn)
        # Output pixel y sees the window centred on input y * stride - pad + (kernel - 1) / 2;
        # read backwards, x maps to (x + pad - (kernel - 1) / 2) / stride.
        return axis, 1 / stride, (pad - (kernel - 1) / 2) / stride
    if fn.type_name == 'Deconvolution':
        axis, stride, kernel, pad = conv_params(fn)
        return axis, stride, (kernel - 1) / 2 - pad
    if fn.type_name in PASS_THROUGH_LAYERS:
        return None, 1, 0
    if fn.type_name == 'Crop':
        axis, offset = crop_params(fn)
        # Maps are indexed by the first spatial axis minus one (the channel axis, as for
        # convolution's `axis`); Crop's axis is the first cropped axis itself.
        return axis - 1, 1, -offset
    raise UndefinedMapException('no coordinate mapping for layer type ' + fn.type_name)


def compose(base_map, next_map):
    """The map of `base_map` followed by `next_map`."""
    ax1, a1, b1 = base_map
    ax2, a2, b2 = next_map
    if ax1 is None:
        ax = ax2
    elif ax2 is None or ax1 == ax2:
        ax = ax1
    else:
        raise AxisMismatchException('maps on axes {} and {}'.format(ax1, ax2))
    return ax, a1 * a2, a1 * b2 + b1


def inverse(coord_map):
    """The map undoing `coord_map`."""
    ax, a, b = coord_map
    return ax, 1 / a, -b / a


def _bottoms(top):
    """The tops a top's coordinates derive from. Crop's second bottom only gives the size."""
    inputs = top.fn.inputs
    return inputs[:1] if top.fn.type_name == 'Crop' else inputs


def _maps_to_ancestors(top):
    """For `top` and each ancestor reachable through layers with a mapping, the map from the
    ancestor's coordinates to `top`'s; in breadth-first order, the nearest ancestors first."""
    maps = {top: (None, 1, 0)}
    queue = [top]
    while queue:
        current = queue.pop(0)
        try:
            step = coord_map(current.fn)
        except UndefinedMapException:
            continue  # a dead end: nothing above this top is reachable
        for bottom in _bottoms(current):
            if bottom not in maps:
                maps[bottom] = compose(maps[current], step)
                queue.append(bottom)
    return maps


def coord_map_from_to(top_from, top_to):
    """The map (axis, a, b) from coordinates of `top_from` to those of `top_to`, through their
    nearest common ancestor. Raises RuntimeError when they have none."""
    from_maps = _maps_to_ancestors(top_from)
    to_maps = _maps_to_ancestors(top_to)
    for ancestor, to_map in to_maps.items():
        if ancestor in from_maps:
            # top_from -> ancestor (from_map reversed), then ancestor -> top_to.
            return compose(to_map, inverse(from_maps[ancestor]))
    raise RuntimeError('Could not compute map between tops; are they '
                       'connected by spatial layers?')


def crop(top_from, top_to):
    """A Crop layer cutting `top_from` to the size and position of `top_to`."""
    ax, a, b = coord_map_from_to(top_from, top_to)
    assert (np.asarray(a) == 1).all(), 'scale mismatch on crop (a = {})'.format(a)
    assert (np.asarray(b) <= 0).all(), 'cannot crop negative offset (b = {})'.format(b)
    assert (np.round(b) == b).all(), 'cannot crop noninteger offset (b = {})'.format(b)
    offset = [int(v) for v in np.atleast_1d(-np.round(b)).astype(int)]
    return L.Crop(top_from, top_to, crop_param=dict(axis=ax + 1, offset=offset))
