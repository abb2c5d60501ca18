"""engine.net_spec (NetSpec, layers, params, to_proto) and engine.coord_map."""
import numpy as np
import pytest
from google.protobuf import text_format

import engine as caffe
from engine import coord_map
from engine.net_spec import Function, NetSpec, layers as L, params as P, to_proto
from engine.proto import caffe_pb2


def lenet(source, batch_size):
    n = NetSpec()
    n.data, n.label = L.Data(batch_size=batch_size, backend=P.Data.LMDB, source=source,
                             transform_param=dict(scale=1. / 255), ntop=2)
    n.conv1 = L.Convolution(n.data, kernel_size=5, num_output=20,
                            weight_filler=dict(type='xavier'))
    n.pool1 = L.Pooling(n.conv1, kernel_size=2, stride=2, pool=P.Pooling.MAX)
    n.conv2 = L.Convolution(n.pool1, kernel_size=5, num_output=50,
                            weight_filler=dict(type='xavier'))
    n.pool2 = L.Pooling(n.conv2, kernel_size=2, stride=2, pool=P.Pooling.MAX)
    n.fc1 = L.InnerProduct(n.pool2, num_output=500, weight_filler=dict(type='xavier'),
                           param=[dict(lr_mult=1), dict(lr_mult=2, decay_mult=0)])
    n.relu1 = L.ReLU(n.fc1, in_place=True)
    n.score = L.InnerProduct(n.relu1, num_output=10, weight_filler=dict(type='xavier'))
    n.loss = L.SoftmaxWithLoss(n.score, n.label)
    n.accuracy = L.Accuracy(n.score, n.label, include=dict(phase=caffe.TEST))
    return n.to_proto()


def test_lenet_layers():
    net = lenet('mnist_train_lmdb', 64)
    got = [(l.name, l.type, list(l.bottom), list(l.top)) for l in net.layer]
    assert got == [
        ('data', 'Data', [], ['data', 'label']),
        ('conv1', 'Convolution', ['data'], ['conv1']),
        ('pool1', 'Pooling', ['conv1'], ['pool1']),
        ('conv2', 'Convolution', ['pool1'], ['conv2']),
        ('pool2', 'Pooling', ['conv2'], ['pool2']),
        ('fc1', 'InnerProduct', ['pool2'], ['fc1']),
        ('relu1', 'ReLU', ['fc1'], ['fc1']),            # in place
        ('score', 'InnerProduct', ['fc1'], ['score']),  # the in-place top keeps its blob name
        ('loss', 'SoftmaxWithLoss', ['score', 'label'], ['loss']),
        ('accuracy', 'Accuracy', ['score', 'label'], ['accuracy']),
    ]
    data, conv1, pool1 = net.layer[0], net.layer[1], net.layer[2]
    assert data.data_param.source == 'mnist_train_lmdb'
    assert data.data_param.batch_size == 64
    assert data.data_param.backend == caffe_pb2.DataParameter.LMDB
    assert data.transform_param.scale == pytest.approx(1 / 255.)
    assert list(conv1.convolution_param.kernel_size) == [5]
    assert conv1.convolution_param.num_output == 20
    assert conv1.convolution_param.weight_filler.type == 'xavier'
    assert pool1.pooling_param.pool == caffe_pb2.PoolingParameter.MAX
    assert (pool1.pooling_param.kernel_size, pool1.pooling_param.stride) == (2, 2)
    fc1 = net.layer[5]
    assert [(p.lr_mult, p.decay_mult) for p in fc1.param] == [(1, 1), (2, 0)]
    assert not fc1.param[0].HasField('decay_mult')
    assert [r.phase for r in net.layer[9].include] == [caffe.TEST]


def test_lenet_text_round_trip():
    net = lenet('mnist_train_lmdb', 64)
    text = str(net)
    assert 'layer {' in text and 'pool: MAX' in text and 'phase: TEST' in text
    parsed = text_format.Merge(text, caffe_pb2.NetParameter())
    assert parsed == net
    # also through the binary form
    assert caffe_pb2.NetParameter.FromString(net.SerializeToString()) == net


def test_phases_are_the_schema_enum():
    assert caffe_pb2.TRAIN == 0 and caffe_pb2.TEST == 1
    assert caffe.TRAIN == caffe_pb2.TRAIN and caffe.TEST == caffe_pb2.TEST
    n = NetSpec()
    n.data = L.Input(shape=dict(dim=[1, 1, 2, 2]), include=dict(phase=caffe.TRAIN))
    assert n.to_proto().layer[0].include[0].phase == caffe_pb2.TRAIN


def test_automatic_names():
    data = L.Input(shape=[dict(dim=[1, 3, 8, 8])])
    conv_a = L.Convolution(data, kernel_size=3, num_output=4)
    conv_b = L.Convolution(conv_a, kernel_size=3, num_output=4)
    relu = L.ReLU(conv_b, in_place=True)
    net = to_proto(relu)
    assert [(l.name, list(l.bottom), list(l.top)) for l in net.layer] == [
        ('Input1', [], ['Input1']),
        ('Convolution1', ['Input1'], ['Convolution1']),
        ('Convolution2', ['Convolution1'], ['Convolution2']),
        ('ReLU1', ['Convolution2'], ['Convolution2']),
    ]
    assert list(net.layer[0].input_param.shape[0].dim) == [1, 3, 8, 8]
    # Top.to_proto is the same as to_proto(top)
    assert relu.to_proto() == net


def test_unnamed_tops_inside_netspec():
    n = NetSpec()
    n.data = L.Input(shape=dict(dim=[1, 2]))
    n.out = L.ReLU(L.TanH(n.data))          # the TanH is never assigned a name
    assert [(l.name, list(l.top)) for l in n.to_proto().layer] == [
        ('data', ['data']), ('TanH1', ['TanH1']), ('out', ['out'])]


def test_ntop_variants_and_items():
    n = NetSpec()
    n['data'] = L.Input(shape=dict(dim=[4, 6]))
    tops = L.Slice(n.data, ntop=3, slice_param=dict(axis=1, slice_point=[2, 4]))
    assert isinstance(tops, tuple) and len(tops) == 3
    n.a, n.b, n.c = tops
    n.silence = L.Silence(n.b, n.c, ntop=0)
    assert isinstance(n.silence, Function)
    assert n.keys() == ['data', 'a', 'b', 'c', 'silence']
    net = n.to_proto()
    slice_layer, silence = net.layer[1], net.layer[2]
    assert (slice_layer.name, list(slice_layer.top)) == ('a', ['a', 'b', 'c'])
    assert list(slice_layer.slice_param.slice_point) == [2, 4]
    assert (silence.name, list(silence.bottom), list(silence.top)) == ('silence', ['b', 'c'], [])


def test_parameter_routing():
    n = NetSpec()
    n.data = L.Input(shape=dict(dim=[1, 3, 4, 4]))
    n.up = L.Deconvolution(n.data, kernel_size=4, stride=2, num_output=3, bias_term=False)
    n.pool = L.Pooling(n.up, pool='AVE', kernel_size=2)          # enum value by name
    n.loss = L.EuclideanLoss(n.pool, n.pool, loss_weight=0.5, propagate_down=[True, False])
    n.py = L.Python(n.data, module='my_layers', layer='MyLayer', param_str='{"k": 1}')
    net = n.to_proto()
    up, pool, loss, py = net.layer[1:]
    assert up.convolution_param.num_output == 3 and not up.convolution_param.bias_term
    assert list(up.convolution_param.stride) == [2]
    assert pool.pooling_param.pool == P.Pooling.AVE == 1
    assert list(loss.loss_weight) == [0.5] and list(loss.propagate_down) == [True, False]
    assert (py.python_param.module, py.python_param.layer) == ('my_layers', 'MyLayer')
    assert py.python_param.param_str == '{"k": 1}'


def test_errors():
    with pytest.raises(TypeError):
        L.ReLU('data')
    n = NetSpec()
    n.data = L.Input(shape=dict(dim=[1]))
    n.bad = L.Convolution(n.data, no_such_field=3)
    with pytest.raises(AttributeError):
        n.to_proto()
    with pytest.raises(AttributeError):
        P.NoSuchLayer.X
    with pytest.raises(AttributeError):
        n.missing


# --- coord_map --------------------------------------------------------------------------------

def fcn_tops():
    """data -> conv (3x3, pad 1) -> pool (2x2, stride 2) -> deconv (4x4, stride 2) -> up.
    data -> pool: x / 2 - 1/4; pool -> up: 2 x + 3/2; so data -> up: x + 1."""
    n = NetSpec()
    n.data = L.Input(shape=dict(dim=[1, 3, 10, 10]))
    n.conv = L.Convolution(n.data, kernel_size=3, pad=1, num_output=4)
    n.relu = L.ReLU(n.conv, in_place=True)
    n.pool = L.Pooling(n.relu, kernel_size=2, stride=2, pool=P.Pooling.MAX)
    n.up = L.Deconvolution(n.pool, convolution_param=dict(kernel_size=4, stride=2,
                                                          num_output=4))
    return n


def test_coord_map_hand_worked():
    n = fcn_tops()
    ax, a, b = coord_map.coord_map_from_to(n.up, n.data)
    assert ax == 1
    np.testing.assert_allclose(a, 1)
    np.testing.assert_allclose(b, -1)
    ax, a, b = coord_map.coord_map_from_to(n.pool, n.data)
    np.testing.assert_allclose(a, 2)
    np.testing.assert_allclose(b, 0.5)


def test_crop_layer():
    n = fcn_tops()
    n.crop = coord_map.crop(n.up, n.data)
    layer = n.to_proto().layer[-1]
    assert (layer.type, list(layer.bottom)) == ('Crop', ['up', 'data'])
    assert layer.crop_param.axis == 2
    assert list(layer.crop_param.offset) == [1]
    # a crop's first bottom is the one that maps: cropping again is the identity
    ax, a, b = coord_map.coord_map_from_to(n.crop, n.data)
    np.testing.assert_allclose(a, 1)
    np.testing.assert_allclose(b, 0)


def test_coord_map_errors():
    n = fcn_tops()
    with pytest.raises(AssertionError):
        coord_map.crop(n.pool, n.data)        # scale 1/2
    with pytest.raises(AssertionError):
        coord_map.crop(n.data, n.up)          # offset would be negative
    n.fc = L.InnerProduct(n.pool, num_output=2)
    with pytest.raises(coord_map.UndefinedMapException):
        coord_map.coord_map(n.fc.fn)
    with pytest.raises(RuntimeError):
        coord_map.coord_map_from_to(n.fc, n.data)   # no spatial path
    other = L.Input(shape=dict(dim=[1, 3, 10, 10]))
    with pytest.raises(RuntimeError):
        coord_map.coord_map_from_to(n.up, other)    # no common ancestor
