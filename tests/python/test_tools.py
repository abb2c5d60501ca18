"""The Python tools: draw_net.py, parse_log.py, plot_training_log.py (run as programs)."""
import csv
import os
import shutil
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

TOOLS = Path(__file__).parents[2] / 'tools'
ALEXNET = (Path(__file__).parents[2].parent / 'shared' / 'caffe-models' / 'models' /
           'bvlc_alexnet' / 'train_val.prototxt')
PYTHON = '/usr/bin/python3'
PNG_MAGIC = b'\x89PNG\r\n\x1a\n'


def run_tool(name, *args):
    """Run tools/<name> with the Debian interpreter; the package comes from PYTHONPATH."""
    return subprocess.run([PYTHON, str(TOOLS / name)] + [str(a) for a in args],
                          capture_output=True, text=True, env=dict(os.environ), timeout=120)


@pytest.mark.parametrize('tool', ['draw_net.py', 'parse_log.py', 'plot_training_log.py'])
def test_help_and_executable(tool):
    assert os.access(TOOLS / tool, os.X_OK)
    assert (TOOLS / tool).read_text().startswith('#!/usr/bin/python3\n')
    result = run_tool(tool, '--help')
    assert result.returncode == 0, result.stderr
    assert 'usage:' in result.stdout


# --- draw_net.py ------------------------------------------------------------------------------

needs_dot = pytest.mark.skipif(shutil.which('dot') is None, reason='graphviz `dot` missing')


@needs_dot
@pytest.mark.skipif(not ALEXNET.exists(), reason='../shared/caffe-models is not there')
def test_draw_net_alexnet(tmp_path):
    png = tmp_path / 'alexnet.png'
    result = run_tool('draw_net.py', ALEXNET, png)
    assert result.returncode == 0, result.stderr
    assert png.read_bytes()[:8] == PNG_MAGIC

    svg = tmp_path / 'alexnet.svg'
    result = run_tool('draw_net.py', ALEXNET, svg, '--rankdir', 'TB', '--phase', 'TRAIN')
    assert result.returncode == 0, result.stderr
    texts = {t.text for t in ET.parse(str(svg)).getroot().iter() if t.tag.endswith('text')}
    assert {'conv1', 'fc8', 'loss'} <= texts
    assert 'accuracy' not in texts   # a TEST-only layer and blob


@needs_dot
def test_draw_net_bad_input(tmp_path):
    bad = tmp_path / 'bad.prototxt'
    bad.write_text('layer { name: "x" typo: 1 }\n')
    result = run_tool('draw_net.py', bad, tmp_path / 'out.png')
    assert result.returncode != 0
    assert 'bad.prototxt' in result.stderr
    assert not (tmp_path / 'out.png').exists()


# --- parse_log.py -----------------------------------------------------------------------------

ENGINE_LOG = '''\
I20261207 01:08:02.220757 10927 engine.cpp:210] Starting optimization
I20261207 01:08:02.230000 10927 solver.cpp:440] Iteration 0, Testing net (#0)
I20261207 01:08:02.240000 10927 solver.cpp:464]     Test net output #0: accuracy = 0.1
I20261207 01:08:02.240001 10927 solver.cpp:464]     Test net output #1: loss = 2.3 (* 1 = 2.3 loss)
I20261207 01:08:02.248286 10927 solver.cpp:304] Iteration 0 (36.7609 iter/s, 294.087 images/s), loss = 1.42493
I20261207 01:08:02.248379 10927 solver.cpp:315]     Train net output #0: loss = 1.42493 (* 1 = 1.42493 loss)
I20261207 01:08:02.248399 10927 solver.cpp:353] Iteration 0, lr = 0.05
I20261207 01:08:03.248286 10927 solver.cpp:304] Iteration 50 (50 iter/s, 400 images/s), loss = 0.9
I20261207 01:08:03.248379 10927 solver.cpp:315]     Train net output #0: loss = 0.8 (* 1 = 0.8 loss)
I20261207 01:08:03.248399 10927 solver.cpp:353] Iteration 50, lr = 0.04
I20261207 01:08:04.220757 10927 solver.cpp:440] Iteration 100, Testing net (#0)
I20261207 01:08:04.500757 10927 solver.cpp:464]     Test net output #0: accuracy = 0.5
I20261207 01:08:04.500800 10927 solver.cpp:464]     Test net output #1: loss = 1.2 (* 1 = 1.2 loss)
I20261207 01:08:04.600757 10927 solver.cpp:304] Iteration 100 (49 iter/s, 392 images/s), loss = 0.7
I20261207 01:08:04.600800 10927 solver.cpp:315]     Train net output #0: loss = 0.6 (* 1 = 0.6 loss)
I20261207 01:08:04.600900 10927 solver.cpp:353] Iteration 100, lr = 0.03
I20261207 01:08:05.000000 10927 solver.cpp:210] Iteration 100, loss = 0.65
I20261207 01:08:05.100000 10927 solver.cpp:213] Optimization Done.
'''

# BVLC Caffe's format, crossing a new year (23:59:58 -> 00:00:03 is 5 seconds).
CAFFE_LOG = '''\
I1231 23:59:57.500000  1234 caffe.cpp:218] Starting Optimization
I1231 23:59:58.000000  1234 solver.cpp:228] Iteration 0, loss = 2.30259
I1231 23:59:58.000100  1234 solver.cpp:244]     Train net output #0: loss = 2.30259 (* 1 = 2.30259 loss)
I1231 23:59:58.000200  1234 sgd_solver.cpp:106] Iteration 0, lr = 0.01
I0101 00:00:01.000000  1234 solver.cpp:337] Iteration 100, Testing net (#0)
I0101 00:00:02.500000  1234 solver.cpp:404]     Test net output #0: accuracy = 0.75
I0101 00:00:02.500000  1234 solver.cpp:404]     Test net output #1: loss = 0.8 (* 1 = 0.8 loss)
I0101 00:00:03.000000  1234 solver.cpp:228] Iteration 100, loss = 0.9
I0101 00:00:03.000100  1234 solver.cpp:244]     Train net output #0: loss = 0.85 (* 1 = 0.85 loss)
I0101 00:00:03.000200  1234 sgd_solver.cpp:106] Iteration 100, lr = 0.001
'''


def read_table(path, delimiter=','):
    with open(path, newline='') as f:
        rows = list(csv.reader(f, delimiter=delimiter))
    return rows[0], [[float(v) for v in row] for row in rows[1:]]


def assert_rows(got, expected):
    assert len(got) == len(expected)
    for g, e in zip(got, expected):
        assert g == pytest.approx(e, abs=1e-6)


def test_parse_log_engine_format(tmp_path):
    log = tmp_path / 'lenet.log'
    log.write_text(ENGINE_LOG)
    out = tmp_path / 'tables'
    result = run_tool('parse_log.py', log, out, '--verbose')
    assert result.returncode == 0, result.stderr
    assert 'lenet.log.train' in result.stdout

    header, rows = read_table(out / 'lenet.log.train')
    assert header == ['NumIters', 'Seconds', 'LearningRate', 'loss']
    assert_rows(rows, [[0, 0.027529, 0.05, 1.42493],
                       [50, 1.027529, 0.04, 0.8],
                       [100, 2.38, 0.03, 0.6]])

    header, rows = read_table(out / 'lenet.log.test')
    assert header == ['NumIters', 'Seconds', 'LearningRate', 'accuracy', 'loss']
    assert_rows(rows, [[0, 0.019243, 0.05, 0.1, 2.3],
                       [100, 2.28, 0.03, 0.5, 1.2]])


def test_parse_log_caffe_format(tmp_path):
    log = tmp_path / 'caffe.log'
    log.write_text(CAFFE_LOG)
    result = run_tool('parse_log.py', log, tmp_path, '--delimiter', ';')
    assert result.returncode == 0, result.stderr

    header, rows = read_table(tmp_path / 'caffe.log.train', ';')
    assert header == ['NumIters', 'Seconds', 'LearningRate', 'loss']
    assert_rows(rows, [[0, 0.5, 0.01, 2.30259],
                       [100, 5.5, 0.001, 0.85]])
    header, rows = read_table(tmp_path / 'caffe.log.test', ';')
    assert header == ['NumIters', 'Seconds', 'LearningRate', 'accuracy', 'loss']
    assert_rows(rows, [[100, 5.0, 0.001, 0.75, 0.8]])


def test_parse_log_without_train_outputs(tmp_path):
    # only the iteration lines carry the loss; no test lines, so no .test table
    log = tmp_path / 'short.log'
    log.write_text('\n'.join(line for line in ENGINE_LOG.splitlines()
                             if 'net output' not in line and 'Testing' not in line) + '\n')
    result = run_tool('parse_log.py', log, tmp_path)
    assert result.returncode == 0, result.stderr
    header, rows = read_table(tmp_path / 'short.log.train')
    assert header == ['NumIters', 'Seconds', 'LearningRate', 'loss']
    assert [r[0] for r in rows] == [0, 50, 100]
    assert rows[0][3] == pytest.approx(1.42493)
    assert rows[2][3] == pytest.approx(0.65)   # the last iteration line of that iteration
    assert not (tmp_path / 'short.log.test').exists()


def test_parse_log_missing_file(tmp_path):
    result = run_tool('parse_log.py', tmp_path / 'nope.log', tmp_path)
    assert result.returncode != 0
    assert 'nope.log' in result.stderr


# --- plot_training_log.py ---------------------------------------------------------------------

def test_plot_training_logs(tmp_path):
    engine_log = tmp_path / 'engine.log'
    engine_log.write_text(ENGINE_LOG)
    caffe_log = tmp_path / 'caffe.log'
    caffe_log.write_text(CAFFE_LOG)

    png = tmp_path / 'curves.png'
    result = run_tool('plot_training_log.py', png, engine_log, caffe_log)
    assert result.returncode == 0, result.stderr
    assert png.read_bytes()[:8] == PNG_MAGIC

    by_seconds = tmp_path / 'seconds.png'
    result = run_tool('plot_training_log.py', by_seconds, engine_log, '--x', 'seconds',
                      '--y', 'accuracy', 'loss')
    assert result.returncode == 0, result.stderr
    assert by_seconds.read_bytes()[:8] == PNG_MAGIC

    # the order, log first, works too
    last = tmp_path / 'last.png'
    result = run_tool('plot_training_log.py', engine_log, last)
    assert result.returncode == 0, result.stderr
    assert last.read_bytes()[:8] == PNG_MAGIC


def test_plot_nothing_to_plot(tmp_path):
    log = tmp_path / 'empty.log'
    log.write_text('I20261207 01:08:02.220757 10927 engine.cpp:210] nothing here\n')
    result = run_tool('plot_training_log.py', tmp_path / 'x.png', log)
    assert result.returncode != 0
    assert not (tmp_path / 'x.png').exists()


# --- parse_log.py on a real log of `engine train` ----------------------------------------------

ENGINE = Path(os.environ.get('ENGINE_BINARY_DIR', Path(__file__).parents[2] / 'build')) / 'bin' / 'engine'
REAL_NET = """
layer { name: "data" type: "DummyData" top: "data" top: "label"
  dummy_data_param { shape { dim: 8 dim: 4 } shape { dim: 8 }
    data_filler { type: "gaussian" std: 1 } data_filler { type: "constant" value: 1 } } }
layer { name: "ip" type: "InnerProduct" bottom: "data" top: "ip"
  inner_product_param { num_output: 3 weight_filler { type: "xavier" } } }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "ip" bottom: "label" top: "loss" }
layer { name: "accuracy" type: "Accuracy" bottom: "ip" bottom: "label" top: "accuracy"
  include { phase: TEST } }
"""


@pytest.mark.skipif(not ENGINE.exists(), reason='the engine is not built')
def test_parse_log_reads_a_real_engine_log(tmp_path):
    (tmp_path / 'net.prototxt').write_text(REAL_NET)
    solver = tmp_path / 'solver.prototxt'
    solver.write_text('net: "%s"\ntest_iter: 2\ntest_interval: 10\nbase_lr: 0.1\n'
                      'lr_policy: "fixed"\ndisplay: 5\nmax_iter: 20\n' % (tmp_path / 'net.prototxt'))
    log = tmp_path / 'train.log'
    with open(log, 'w') as out:
        subprocess.run([str(ENGINE), 'train', '--solver=' + str(solver)], stderr=out, check=True)
    result = run_tool('parse_log.py', log, tmp_path)
    assert result.returncode == 0, result.stderr
    with open(tmp_path / 'train.log.train') as f:
        train = list(csv.DictReader(f))
    with open(tmp_path / 'train.log.test') as f:
        test = list(csv.DictReader(f))
    assert [row['NumIters'] for row in train] == ['0', '5', '10', '15']
    assert all(float(row['loss']) > 0 and float(row['LearningRate']) == 0.1 for row in train)
    assert [row['NumIters'] for row in test] == ['0', '10', '20']  # test_initialization
    assert {'accuracy', 'loss'} <= set(test[0])
