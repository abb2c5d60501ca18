"""The README's ONNX example runs as written (weights from a randomized net instead of the
demo's training; files in a temporary folder), and what comes back computes what went out."""
import re
import subprocess
import sys

import numpy as np

import engine as caffe
from conftest import BINARY, SOURCE, assert_close, randomize


def test_the_readme_onnx_example_runs(tmp_path):
    readme = (SOURCE / "README.md").read_text()
    blocks = re.findall(r"```sh\n(.*?)```", readme, re.S)
    script = next(block for block in blocks if "export_onnx" in block)
    deploy = SOURCE / "models/fashion_lenet/deploy.prototxt"
    net = caffe.Net(str(deploy), caffe.TEST)
    randomize(net, seed=5)
    net.save(str(tmp_path / "trained.caffemodel"))
    script = (script.replace("models/fashion_lenet/fashion_lenet_iter_8000.caffemodel",
                             str(tmp_path / "trained.caffemodel"))
              .replace("build/bin/engine", str(BINARY / "bin/engine"))
              .replace("build/onnx-venv/bin/python", sys.executable)
              .replace("build/fashion_lenet", str(tmp_path / "fashion_lenet")))
    result = subprocess.run(["bash", "-e", "-c", script], cwd=SOURCE, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert re.search(r"classes \[[0-9 ]+\]", result.stdout), result.stdout

    back = caffe.Net(str(tmp_path / "fashion_lenet_onnx.prototxt"),
                     str(tmp_path / "fashion_lenet_onnx.caffemodel"), caffe.TEST)
    images = np.random.RandomState(1).rand(4, 1, 28, 28).astype(np.float32)
    net.blobs["data"].reshape(4, 1, 28, 28)
    expected = net.forward(data=images)["prob"].copy()
    assert_close(back.forward(data=images)["prob"], expected, "prob")
