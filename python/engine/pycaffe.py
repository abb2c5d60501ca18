"""pycaffe's Net and solver interface over the compiled module.

As pycaffe does, the user-facing properties are Python: ``net.blobs`` and ``net.params`` are
ordered dicts of blobs whose ``.data`` and ``.diff`` are numpy views of the engine's memory, and
``forward``/``backward`` take and return arrays by blob name.
"""
import time
from collections import OrderedDict

import numpy as np

from . import _engine
from ._engine import Net

# ---- Net ------------------------------------------------------------------------------------


def _blobs(self):
    """The blobs in the order the net makes them: name -> Blob."""
    return OrderedDict(zip(self._blob_names, self._blobs))


def _params(self):
    """The layers that have parameters: name -> [weights, bias, ...]."""
    return OrderedDict((name, layer.blobs) for name, layer in zip(self._layer_names, self.layers)
                       if len(layer.blobs) > 0)


def _layer_dict(self):
    return OrderedDict(zip(self._layer_names, self.layers))


def _blob_loss_weights(self):
    return OrderedDict(zip(self._blob_names, self._blob_loss_weights))


def _names_by_layer(self, names):
    return OrderedDict(zip(self._layer_names, names))


def _layer_index(self, name, default):
    if name is None:
        return default
    try:
        return list(self._layer_names).index(name)
    except ValueError:
        raise _engine.Error("net %s has no layer named '%s'" % (self.name, name)) from None


def _set_arrays(self, arrays, diff):
    for name, value in arrays.items():
        if name not in self._blob_names:
            raise _engine.Error("net %s has no blob named '%s'" % (self.name, name))
        blob = self.blobs[name]
        value = np.asarray(value, dtype=np.float32)
        if value.shape != tuple(blob.shape):
            raise _engine.Error("blob '%s' has shape %s, but the array has shape %s" %
                                (name, tuple(blob.shape), value.shape))
        (blob.diff if diff else blob.data)[...] = value


def _forward(self, blobs=None, start=None, end=None, **kwargs):
    """Runs forward from layer `start` to layer `end` (names; the whole net by default) after
    copying the keyword arrays into the blobs of those names. Returns the outputs (and `blobs`)
    by name."""
    outputs = set(self.outputs if end is None else self._top_names[_layer_index(self, end, 0)])
    outputs.update(blobs or [])
    if start is None and kwargs and set(kwargs) - set(self.inputs):
        raise _engine.Error("forward: %s are not inputs of net %s (its inputs: %s)" %
                            (sorted(set(kwargs) - set(self.inputs)), self.name, self.inputs))
    _set_arrays(self, kwargs, diff=False)
    self._forward(_layer_index(self, start, 0), _layer_index(self, end, len(self.layers) - 1))
    return {name: self.blobs[name].data for name in outputs}


def _backward(self, diffs=None, start=None, end=None, **kwargs):
    """Runs backward from layer `start` down to `end` after copying the keyword arrays into the
    diffs of those blobs. Returns the input diffs (and `diffs`) by name."""
    outputs = set(self.inputs if end is None else self._bottom_names[_layer_index(self, end, 0)])
    outputs.update(diffs or [])
    _set_arrays(self, kwargs, diff=True)
    self._backward(_layer_index(self, start, len(self.layers) - 1), _layer_index(self, end, 0))
    return {name: self.blobs[name].diff for name in outputs}


def _batches(self, arrays):
    """Splits each array into the net's batch size along axis 0 (the last batch padded)."""
    size = self.blobs[next(iter(arrays))].shape[0]
    total = len(next(iter(arrays.values())))
    for start in range(0, total, size):
        batch = {}
        for name, values in arrays.items():
            part = np.asarray(values[start:start + size], dtype=np.float32)
            if len(part) < size:
                padding = np.zeros((size - len(part),) + part.shape[1:], dtype=np.float32)
                part = np.concatenate([part, padding])
            batch[name] = part
        yield batch, min(size, total - start)


def _forward_all(self, blobs=None, **kwargs):
    """forward() over arrays of any length, a batch at a time; returns whole arrays."""
    results = {}
    for batch, used in _batches(self, kwargs):
        for name, value in self.forward(blobs=blobs, **batch).items():
            results.setdefault(name, []).append(value[:used].copy())
    return {name: np.concatenate(parts) for name, parts in results.items()}


def _forward_backward_all(self, blobs=None, diffs=None, **kwargs):
    """forward_all and backward over the same batches; returns (outputs, diffs)."""
    inputs = {k: v for k, v in kwargs.items() if k in self.inputs}
    output_diffs = {k: v for k, v in kwargs.items() if k not in self.inputs}
    forwards, backwards = {}, {}
    for batch, used in _batches(self, dict(inputs, **output_diffs) if output_diffs else inputs):
        for name, value in self.forward(blobs=blobs,
                                        **{k: batch[k] for k in inputs}).items():
            forwards.setdefault(name, []).append(value[:used].copy())
        for name, value in self.backward(diffs=diffs,
                                         **{k: batch[k] for k in output_diffs}).items():
            backwards.setdefault(name, []).append(value[:used].copy())
    return ({name: np.concatenate(parts) for name, parts in forwards.items()},
            {name: np.concatenate(parts) for name, parts in backwards.items()})


Net.blobs = property(_blobs)
Net.params = property(_params)
Net.layer_dict = property(_layer_dict)
Net.blob_loss_weights = property(_blob_loss_weights)
Net.inputs = property(lambda self: list(self._inputs))
Net.outputs = property(lambda self: list(self._outputs))
Net.top_names = property(lambda self: _names_by_layer(self, self._top_names))
Net.bottom_names = property(lambda self: _names_by_layer(self, self._bottom_names))
Net.forward = _forward
Net.backward = _backward
Net.forward_all = _forward_all
Net.forward_backward_all = _forward_backward_all

# ---- layers written in Python --------------------------------------------------------------


class Layer:
    """The base of a layer written in Python (`type: "Python"`, python_param { module: "m"
    layer: "Class" param_str: "..." }). The engine makes it with the layer's LayerParameter
    message, sets `param_str` and `phase`, then calls setup(bottom, top) once, and reshape,
    forward(bottom, top) and backward(top, propagate_down, bottom) as it runs; bottom and top
    are lists of Blobs whose .data and .diff are numpy views."""

    def __init__(self, param):
        self.param = param

    def setup(self, bottom, top):
        pass

    def reshape(self, bottom, top):
        pass

    def forward(self, bottom, top):
        raise NotImplementedError("a Python layer must define forward(bottom, top)")

    def backward(self, top, propagate_down, bottom):
        pass


# ---- several processes ----------------------------------------------------------------------

_multiprocess = False


def set_multiprocess(value):
    """pycaffe's switch for one solver per process, joined by NCCL. Solvers from Python always
    run one per process here, so the flag only records the script's intent (multiprocess())."""
    global _multiprocess
    _multiprocess = bool(value)


def multiprocess():
    return _multiprocess


# ---- timing ---------------------------------------------------------------------------------


class Timer:
    """pycaffe's Timer: start(), stop(), and the time between them in `ms` (a running timer
    reads the time so far)."""

    def __init__(self):
        self._started = None
        self._elapsed = 0.0

    def start(self):
        self._started = time.perf_counter()
        self._elapsed = 0.0

    def stop(self):
        if self._started is not None:
            self._elapsed = time.perf_counter() - self._started
            self._started = None

    @property
    def ms(self):
        if self._started is not None:
            return 1e3 * (time.perf_counter() - self._started)
        return 1e3 * self._elapsed


# ---- solvers --------------------------------------------------------------------------------


def get_solver(solver_file):
    """The solver that the file's `type` names."""
    return _engine._solver(solver_file)


def _typed(kind):
    def make(solver_file):
        return _engine._solver(solver_file, kind)
    make.__name__ = kind + "Solver"
    make.__doc__ = "A %s solver from a solver file (its type field is overridden)." % kind
    return make


SGDSolver = _typed("SGD")
NesterovSolver = _typed("Nesterov")
AdaGradSolver = _typed("AdaGrad")
RMSPropSolver = _typed("RMSProp")
AdaDeltaSolver = _typed("AdaDelta")
AdamSolver = _typed("Adam")
