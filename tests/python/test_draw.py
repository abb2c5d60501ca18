"""engine.draw: graphs of nets, phase filtering, PNG and SVG files."""
import shutil
import xml.etree.ElementTree as ET

import pytest
from google.protobuf import text_format

pytest.importorskip('pydot')
if shutil.which('dot') is None:
    pytest.skip('graphviz `dot` is not installed', allow_module_level=True)

from engine import draw  # noqa: E402
from engine.proto import caffe_pb2  # noqa: E402

NET = '''
name: "Small"
layer { name: "data" type: "Data" top: "data" top: "label"
        include { phase: TRAIN } data_param { batch_size: 64 } }
layer { name: "data" type: "Data" top: "data" top: "label"
        include { phase: TEST } data_param { batch_size: 100 } }
layer { name: "conv1" type: "Convolution" bottom: "data" top: "conv1"
        param { lr_mult: 1 } param { lr_mult: 2 }
        convolution_param { num_output: 20 kernel_size: 5 stride: 2 pad: 1 } }
layer { name: "pool1" type: "Pooling" bottom: "conv1" top: "pool1"
        pooling_param { pool: AVE kernel_size: 3 stride: 2 } }
layer { name: "relu1" type: "ReLU" bottom: "pool1" top: "pool1" }
layer { name: "ip" type: "InnerProduct" bottom: "pool1" top: "ip"
        inner_product_param { num_output: 10 } }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "ip" bottom: "label" top: "loss" }
layer { name: "accuracy" type: "Accuracy" bottom: "ip" bottom: "label" top: "accuracy"
        exclude { phase: TRAIN } }
layer { name: "deploy_only" type: "Softmax" bottom: "ip" top: "prob"
        include { stage: "deploy" } }
'''


def small_net():
    return text_format.Merge(NET, caffe_pb2.NetParameter())


def labels(graph):
    return [n.get('label') for n in graph.get_nodes()]


def layer_labels(graph):
    return [l for l in labels(graph) if '(' in l]


def test_graph_nodes_and_edges():
    graph = draw.get_pydot_graph(small_net(), 'LR')
    text = graph.to_string()
    # the two data layers share one box; one node per blob
    assert len(layer_labels(graph)) == 8
    blobs = [l for l in labels(graph) if '(' not in l]
    assert sorted(blobs) == sorted('"%s"' % b for b in
                                   ['data', 'label', 'conv1', 'pool1', 'ip', 'loss', 'accuracy',
                                    'prob'])
    assert 'conv1\\n(Convolution)\\nkernel size: 5\\nstride: 2\\npad: 1' in text
    assert 'pool1\\n(AVE Pooling)\\nkernel size: 3\\nstride: 2\\npad: 0' in text
    assert 'label="Batch 64"' in text and 'label="20"' in text and 'label="10"' in text
    assert '#90EE90' in text   # the in-place ReLU
    assert len(graph.get_edges()) == 2 + 2 + 2 + 2 + 2 + 2 + 3 + 3 + 2


def test_phase_filter():
    train = layer_labels(draw.get_pydot_graph(small_net(), 'LR', phase=caffe_pb2.TRAIN))
    test = layer_labels(draw.get_pydot_graph(small_net(), 'LR', phase=caffe_pb2.TEST))
    assert not any('accuracy' in l for l in train)
    assert any('accuracy' in l for l in test)
    # a rule requiring a stage never holds for a phase-only state
    assert not any('deploy_only' in l for l in train + test)
    net = small_net()
    net.layer[2].exclude.add(phase=caffe_pb2.TEST)
    net.layer[2].include.add(phase=caffe_pb2.TRAIN)
    with pytest.raises(ValueError, match='both include and exclude'):
        draw.get_pydot_graph(net, 'LR', phase=caffe_pb2.TRAIN)


def test_label_options():
    text = draw.get_pydot_graph(small_net(), 'TB', label_edges=False,
                                display_lrm=True).to_string()
    assert 'conv1 (Convolution) kernel size: 5' in text   # one line for top-bottom drawings
    assert 'lr mult: 1, 2' in text
    assert 'Batch 64' not in text


def test_png_and_svg_files(tmp_path):
    png = tmp_path / 'net.png'
    svg = tmp_path / 'net.svg'
    draw.draw_net_to_file(small_net(), str(png))
    draw.draw_net_to_file(small_net(), str(svg), rankdir='TB', phase=caffe_pb2.TEST)
    assert png.read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'
    root = ET.parse(str(svg)).getroot()
    assert root.tag.endswith('svg')
    texts = [t.text for t in root.iter() if t.tag.endswith('text')]
    assert 'accuracy' in texts
    assert sorted(p.name for p in tmp_path.iterdir()) == ['net.png', 'net.svg']  # no leftovers
    assert draw.draw_net(small_net(), 'LR', ext='svg').lstrip().startswith(b'<?xml')


def test_awkward_names():
    net = caffe_pb2.NetParameter()
    for name, bottom, top in [('node', 'graph', 'a:b'), ('x{y}|<z>', 'a:b', 'edge "q"')]:
        layer = net.layer.add(name=name, type='ReLU')
        layer.bottom.append(bottom)
        layer.top.append(top)
    data = draw.draw_net(net, 'LR', ext='svg')
    texts = [t.text for t in ET.fromstring(data).iter() if t.tag.endswith('text')]
    for blob in ['graph', 'a:b', 'edge "q"']:
        assert blob in texts
