#!/usr/bin/python3
"""Draw a net's graph into an image file (png, svg, pdf, ...), as Caffe's python/draw_net.py.

Needs the engine's Python package on PYTHONPATH (e.g. PYTHONPATH=build/python), pydot and
graphviz's `dot`; not the compiled module.
"""
import argparse
import os
import sys


def _import_engine():
    """engine.draw and engine.proto.caffe_pb2; falls back on the build tree next to this file
    when PYTHONPATH does not name the package."""
    try:
        from engine import draw
        from engine.proto import caffe_pb2
    except ImportError:
        here = os.path.dirname(os.path.abspath(__file__))
        sys.path.append(os.path.join(os.path.dirname(here), 'build', 'python'))
        from engine import draw
        from engine.proto import caffe_pb2
    return draw, caffe_pb2


def main(argv=None):
    parser = argparse.ArgumentParser(
        description='Draw a net (.prototxt) with graphviz; the format follows the output '
                    'file\'s extension.')
    parser.add_argument('input_net_proto_file', help='the net, a NetParameter .prototxt')
    parser.add_argument('output_image_file', help='the drawing: OUT.png, OUT.svg, OUT.pdf, ...')
    parser.add_argument('--rankdir', default='LR', choices=['LR', 'TB', 'BT', 'RL'],
                        help='direction of the graph: LR (left to right, the default), TB, BT '
                             'or RL')
    parser.add_argument('--phase', default='ALL', choices=['ALL', 'TRAIN', 'TEST'],
                        help='draw only the layers of this phase (default ALL: every layer)')
    parser.add_argument('--display_lrm', action='store_true',
                        help='show each layer\'s learning-rate multipliers')
    args = parser.parse_args(argv)

    draw, caffe_pb2 = _import_engine()
    from google.protobuf import text_format

    net = caffe_pb2.NetParameter()
    try:
        with open(args.input_net_proto_file) as f:
            text_format.Merge(f.read(), net)
    except (OSError, text_format.ParseError) as e:
        print('draw_net.py: {}: {}'.format(args.input_net_proto_file, e), file=sys.stderr)
        return 1
    if len(net.layers) and not len(net.layer):
        print('draw_net.py: {} uses the legacy V1 `layers` format; upgrade it to `layer` first'
              .format(args.input_net_proto_file), file=sys.stderr)
        return 1
    phase = {'ALL': None, 'TRAIN': caffe_pb2.TRAIN, 'TEST': caffe_pb2.TEST}[args.phase]
    print('Drawing net to {}'.format(args.output_image_file))
    draw.draw_net_to_file(net, args.output_image_file, args.rankdir, phase, args.display_lrm)
    return 0


if __name__ == '__main__':
    sys.exit(main())
