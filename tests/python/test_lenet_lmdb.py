"""BVLC's LeNet example, unchanged, on an MNIST-format LMDB: `engine train` and a Python loop of
solver.step give the same weights, as Caffe's tool and pycaffe do."""
import gzip
import os
import shutil
import struct
import subprocess
from pathlib import Path

import numpy as np
import pytest

import engine as caffe

BINARY = Path(os.environ.get("ENGINE_BINARY_DIR", Path(__file__).parents[2] / "build"))
MNIST_EXAMPLE = Path(__file__).parents[2] / ".." / "shared" / "caffe-models" / "examples" / "mnist"


def write_mnist(folder, name, count, seed):
    """Digit-like images in MNIST's gzipped idx files: class k is a bright block whose place
    depends on k, over noise."""
    rng = np.random.RandomState(seed)
    labels = rng.randint(0, 10, count).astype(np.uint8)
    images = (rng.rand(count, 28, 28) * 60).astype(np.uint8)
    for image, label in zip(images, labels):
        row, column = 2 + 8 * (label // 4), 2 + 8 * (label % 4)
        image[row:row + 7, column:column + 7] = 250
    with gzip.open(folder / (name + "-images-idx3-ubyte.gz"), "wb") as out:
        out.write(struct.pack(">IIII", 2051, count, 28, 28) + images.tobytes())
    with gzip.open(folder / (name + "-labels-idx1-ubyte.gz"), "wb") as out:
        out.write(struct.pack(">II", 2049, count) + labels.tobytes())
    subprocess.run([str(BINARY / "bin" / "convert_mnist_data"),
                    str(folder / (name + "-images-idx3-ubyte.gz")),
                    str(folder / (name + "-labels-idx1-ubyte.gz")),
                    str(folder / ("mnist_%s_lmdb" % ("train" if name == "train" else "test")))],
                   check=True, capture_output=True)


@pytest.mark.skipif(not (BINARY / "bin" / "convert_mnist_data").exists(),
                    reason="the engine was built without LMDB")
def test_lenet_trains_the_same_from_python_and_engine_train(tmp_path, monkeypatch):
    example = tmp_path / "examples" / "mnist"
    example.mkdir(parents=True)
    for name in ("lenet_train_test.prototxt", "lenet_solver.prototxt"):
        shutil.copy(MNIST_EXAMPLE / name, example / name)
    # BVLC's solver leaves the seed to chance; the same seed on both sides.
    with open(example / "lenet_solver.prototxt", "a") as solver_file:
        solver_file.write("random_seed: 7\n")
    write_mnist(example, "train", 640, seed=1)
    write_mnist(example, "t10k", 200, seed=2)
    iterations = 40

    # As in Caffe's examples, paths are relative to the folder the tool runs in.
    result = subprocess.run([str(BINARY / "bin" / "engine"), "train",
                             "--solver=examples/mnist/lenet_solver.prototxt",
                             "--iterations=%d" % iterations],
                            cwd=tmp_path, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    by_tool = tmp_path / "examples" / "mnist" / ("lenet_iter_%d.caffemodel" % iterations)
    assert by_tool.exists()

    monkeypatch.chdir(tmp_path)
    caffe.set_mode_cpu()
    solver = caffe.SGDSolver("examples/mnist/lenet_solver.prototxt")
    assert [blob for blob in solver.net.blobs][:2] == ["data", "label"]
    losses = []
    for _ in range(iterations):
        solver.step(1)
        losses.append(float(solver.net.blobs["loss"].data))
    assert np.mean(losses[-5:]) < 0.5 * np.mean(losses[:5]), losses

    trained = caffe.Net("examples/mnist/lenet_train_test.prototxt", str(by_tool), caffe.TEST)
    for name, blobs in solver.net.params.items():
        for mine, theirs in zip(blobs, trained.params[name]):
            np.testing.assert_array_equal(mine.data, theirs.data)
    # The test net shares the trained weights and scores the held-out images.
    accuracy = solver.test_nets[0].forward()["accuracy"]
    assert accuracy > 0.5
