"""Drawing a net with graphviz, as pycaffe's `caffe.draw`.

Layers are boxes (coloured by type; in-place layers green), blobs are grey octagons, edges go
from bottom blobs to layers to top blobs. `caffe_net` is a NetParameter (e.g. parsed from a
.prototxt with google.protobuf.text_format). Needs pydot and graphviz's `dot`.
"""
import os
import tempfile

import pydot

from .proto import caffe_pb2

LAYER_STYLE_DEFAULT = {'shape': 'record', 'fillcolor': '#6495ED', 'style': 'filled'}
NEURON_LAYER_STYLE = {'shape': 'record', 'fillcolor': '#90EE90', 'style': 'filled'}
BLOB_STYLE = {'shape': 'octagon', 'fillcolor': '#E0E0E0', 'style': 'filled'}


def _quote(text, record=False):
    """`text` as a quoted graphviz string. pydot 1.4 leaves strings that look like keywords or
    ports ('node', 'a:b') unquoted, so every id and label is quoted here. In record shapes the
    characters { } | < > are field syntax and are escaped too."""
    text = text.replace('\\', '\\\\').replace('"', '\\"')
    if record:
        for ch in '{}|<>':
            text = text.replace(ch, '\\' + ch)
    return '"' + text + '"'


def get_pooling_types_dict():
    """PoolingParameter's PoolMethod values -> names, e.g. 0 -> 'MAX'."""
    enum = caffe_pb2.PoolingParameter.PoolMethod
    return {enum.Value(name): name for name in enum.keys()}


def get_edge_label(layer):
    """The label of the edges from a layer to its tops: batch size or number of outputs."""
    if layer.type == 'Data':
        return 'Batch ' + str(layer.data_param.batch_size)
    if layer.type in ('Convolution', 'Deconvolution'):
        return str(layer.convolution_param.num_output)
    if layer.type == 'InnerProduct':
        return str(layer.inner_product_param.num_output)
    return None


def _first(values, default):
    return values[0] if len(values) else default


def get_layer_lr_mult(layer):
    """The lr_mult of each of the layer's parameter blobs as text ('1, 2'), or None."""
    if not len(layer.param):
        return None
    return ', '.join('{:g}'.format(p.lr_mult) for p in layer.param)


def get_layer_label(layer, rankdir, display_lrm=False):
    """The text in a layer's box: name and type, plus the window of convolutions and pooling.

    Lines are stacked for left-right drawings and put side by side for top-bottom ones.
    """
    separator = ' ' if rankdir in ('TB', 'BT') else '\n'
    lines = [layer.name]
    if layer.type in ('Convolution', 'Deconvolution'):
        p = layer.convolution_param
        lines.append('({})'.format(layer.type))
        kernel = _first(p.kernel_size, p.kernel_h or 1)
        stride = _first(p.stride, p.stride_h or 1)
        pad = _first(p.pad, p.pad_h)
        lines += ['kernel size: %d' % kernel, 'stride: %d' % stride, 'pad: %d' % pad]
    elif layer.type == 'Pooling':
        p = layer.pooling_param
        lines.append('({} {})'.format(get_pooling_types_dict()[p.pool], layer.type))
        lines += ['kernel size: %d' % (p.kernel_size or p.kernel_h),
                  'stride: %d' % (p.stride_h if p.HasField('stride_h') else p.stride),
                  'pad: %d' % (p.pad or p.pad_h)]
    else:
        lines.append('({})'.format(layer.type))
    if display_lrm:
        lr_mult = get_layer_lr_mult(layer)
        if lr_mult is not None:
            lines.append('lr mult: ' + lr_mult)
    return separator.join(lines)


def choose_color_by_layertype(layertype):
    """Fill colour of a layer's box."""
    colors = {'Convolution': '#FF5050', 'Deconvolution': '#FF5050',
              'Pooling': '#FF9900', 'InnerProduct': '#CC33FF'}
    return colors.get(layertype, '#6495ED')


def _rule_met(rule, phase):
    """Whether a NetStateRule holds in a state of `phase`, level 0 and no stages (the state the
    engine gives a net built for that phase)."""
    if rule.HasField('phase') and rule.phase != phase:
        return False
    if rule.HasField('min_level') and 0 < rule.min_level:
        return False
    if rule.HasField('max_level') and 0 > rule.max_level:
        return False
    return len(rule.stage) == 0  # a required stage is never present; not_stage always holds


def layer_included(layer, phase):
    """Whether a layer is part of the net in `phase` (None: every layer is)."""
    if phase is None:
        return True
    if len(layer.include) and len(layer.exclude):
        raise ValueError('layer ' + layer.name + ' has both include and exclude specified.')
    if len(layer.include):
        return any(_rule_met(rule, phase) for rule in layer.include)
    return not any(_rule_met(rule, phase) for rule in layer.exclude)


class OrderedNodes(dict):
    """Graph nodes by key, created once each (the first call's style wins)."""

    def add(self, key, node_id, label, style):
        if key not in self:
            self[key] = pydot.Node(_quote(node_id), label=label, **style)


def get_pydot_graph(caffe_net, rankdir, label_edges=True, phase=None, display_lrm=False):
    """A pydot.Dot of the net's layers (those of `phase` when given: caffe_pb2.TRAIN / TEST)."""
    graph = pydot.Dot(_quote(caffe_net.name or 'Net'), graph_type='digraph',
                      rankdir=rankdir)
    nodes = OrderedNodes()
    edges = []
    for layer in caffe_net.layer:
        if not layer_included(layer, phase):
            continue
        # Layers are keyed by name and type, so a train and a test version of the same layer
        # (e.g. two 'data' Data layers) share one box.
        layer_key = ('layer', layer.name, layer.type)
        in_place = len(layer.bottom) == 1 and len(layer.top) == 1 and \
            layer.bottom[0] == layer.top[0]
        style = dict(NEURON_LAYER_STYLE if in_place else LAYER_STYLE_DEFAULT)
        if not in_place:
            style['fillcolor'] = choose_color_by_layertype(layer.type)
        label = get_layer_label(layer, rankdir, display_lrm)
        nodes.add(layer_key, 'layer:{}:{}'.format(layer.name, layer.type),
                  _quote(label, record=True).replace('\n', '\\n'), style)
        for bottom in layer.bottom:
            nodes.add(('blob', bottom), 'blob:' + bottom, _quote(bottom), BLOB_STYLE)
            edges.append((('blob', bottom), layer_key, None))
        edge_label = get_edge_label(layer) if label_edges else None
        for top in layer.top:
            nodes.add(('blob', top), 'blob:' + top, _quote(top), BLOB_STYLE)
            edges.append((layer_key, ('blob', top), edge_label))
    for node in nodes.values():
        graph.add_node(node)
    for src, dst, label in edges:
        graph.add_edge(pydot.Edge(nodes[src], nodes[dst],
                                  label=_quote(label if label is not None else '')))
    return graph


def draw_net(caffe_net, rankdir, ext='png', phase=None, display_lrm=False):
    """The drawing of the net as bytes in format `ext` (png, svg, pdf, ...; see graphviz)."""
    return get_pydot_graph(caffe_net, rankdir, phase=phase,
                           display_lrm=display_lrm).create(format=ext)


def draw_net_to_file(caffe_net, filename, rankdir='LR', phase=None, display_lrm=False):
    """Draw the net into `filename`, the format taken from its extension. The file is written
    whole or not at all (a temporary file renamed into place)."""
    ext = os.path.splitext(filename)[1].lstrip('.') or 'png'
    data = draw_net(caffe_net, rankdir, ext, phase, display_lrm)
    folder = os.path.dirname(os.path.abspath(filename))
    fd, tmp = tempfile.mkstemp(dir=folder, prefix='.' + os.path.basename(filename) + '.')
    try:
        with os.fdopen(fd, 'wb') as f:
            f.write(data)
        # mkstemp makes the file private; give it the permissions a plain open() would.
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, filename)
    except BaseException:
        os.unlink(tmp)
        raise
