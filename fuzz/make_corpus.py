"""Makes the fuzz targets' seed corpus: OUT/TARGET/ holds real inputs of that target's format,
made from ../shared/caffe-models (BVLC's nets and solvers), the repository's own models, and
files that the engine writes (weights, solver states, ONNX models), numpy (.npy) and the
formats' own layouts (idx, Datum, mean files, image lists).

    PYTHONPATH=build/python python3 fuzz/make_corpus.py OUT
"""
import gzip
import struct
import sys
import tempfile
import zlib
from pathlib import Path

import numpy as np
from google.protobuf import text_format

import engine
from engine.proto import caffe_pb2

SOURCE = Path(__file__).resolve().parents[1]
MODELS = SOURCE.parent / "shared" / "caffe-models"
SMALL_NET = SOURCE / "fuzz" / "small_net.prototxt"


class Corpus:
    def __init__(self, folder):
        self.folder = Path(folder)

    def add(self, target, name, data):
        path = self.folder / target / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data if isinstance(data, bytes) else data.encode())


def net_files():
    files = sorted(MODELS.rglob("*.prototxt")) + sorted((SOURCE / "models").rglob("*.prototxt"))
    files += sorted((SOURCE / "tests" / "models").rglob("*.prototxt")) + [SMALL_NET]
    return [f for f in files if "solver" not in f.name]


def solver_files():
    return sorted(MODELS.rglob("*solver*.prototxt")) + sorted(
        (SOURCE / "models").rglob("*solver*.prototxt"))


V1_TYPES = {"Convolution": "CONVOLUTION", "Pooling": "POOLING", "ReLU": "RELU",
            "InnerProduct": "INNER_PRODUCT", "SoftmaxWithLoss": "SOFTMAX_LOSS", "Data": "DATA",
            "Accuracy": "ACCURACY", "LRN": "LRN", "Dropout": "DROPOUT", "Softmax": "SOFTMAX",
            "Concat": "CONCAT"}
V0_TYPES = {"Convolution": "conv", "Pooling": "pool", "ReLU": "relu",
            "InnerProduct": "innerproduct", "Softmax": "softmax", "Dropout": "dropout"}


def legacy_nets(path):
    """The net in `path` written as a V1 file (`layers`, enum types, blobs_lr) and as a V0 file
    (`layers { layer { ... } }`, flat settings), as old Caffe versions wrote them."""
    net = caffe_pb2.NetParameter()
    text_format.Parse(path.read_text(), net)
    v1, v0 = caffe_pb2.NetParameter(name=net.name), caffe_pb2.NetParameter(name=net.name)
    for layer in net.layer:
        if layer.type in V1_TYPES:
            old = v1.layers.add(name=layer.name, bottom=layer.bottom, top=layer.top)
            old.type = caffe_pb2.V1LayerParameter.LayerType.Value(V1_TYPES[layer.type])
            for spec in layer.param:
                old.blobs_lr.append(spec.lr_mult)
            for field in ("convolution_param", "pooling_param", "inner_product_param",
                          "data_param", "transform_param", "lrn_param", "dropout_param"):
                if layer.HasField(field):
                    getattr(old, field).CopyFrom(getattr(layer, field))
        if layer.type in V0_TYPES:
            wrapper = v0.layers.add(bottom=layer.bottom, top=layer.top)
            old = wrapper.layer
            old.name, old.type = layer.name, V0_TYPES[layer.type]
            if layer.type == "Convolution":
                p = layer.convolution_param
                old.num_output, old.kernelsize = p.num_output, p.kernel_size[0]
                old.stride = p.stride[0] if p.stride else 1
            if layer.type == "Pooling":
                p = layer.pooling_param
                old.kernelsize, old.stride = p.kernel_size, p.stride
                old.pool = caffe_pb2.V0LayerParameter.PoolMethod.Value(
                    caffe_pb2.PoolingParameter.PoolMethod.Name(p.pool))
            if layer.type == "InnerProduct":
                old.num_output = layer.inner_product_param.num_output
    v0.input.append("data")
    v0.input_dim.extend([1, 1, 28, 28])
    return v1, v0


def randomized(prototxt, seed=0):
    net = engine.Net(str(prototxt), engine.TEST)
    rng = np.random.RandomState(seed)
    for name, blobs in net.params.items():
        for blob in blobs:
            blob.data[...] = rng.rand(*blob.data.shape).astype(np.float32) + 0.1
    return net


def nets_and_solvers(corpus, work):
    for path in net_files():
        name = "%s_%s" % (path.parent.name, path.name)
        for target in ("net_text", "net_builder"):
            corpus.add(target, name, path.read_text())
    lenet = MODELS / "examples" / "mnist" / "lenet_train_test.prototxt"
    v1, v0 = legacy_nets(lenet)
    for target in ("net_text", "net_builder"):
        corpus.add(target, "lenet_v1.prototxt", text_format.MessageToString(v1))
        corpus.add(target, "lenet_v0.prototxt", text_format.MessageToString(v0))
    for path in solver_files():
        corpus.add("solver_text", "%s_%s" % (path.parent.name, path.name), path.read_text())

    # Weights: the small net's own, another net's, and legacy V1 binary nets.
    small = randomized(SMALL_NET)
    small.save(str(work / "small.caffemodel"))
    corpus.add("caffemodel", "small.caffemodel", (work / "small.caffemodel").read_bytes())
    lenet_deploy = MODELS / "examples" / "mnist" / "lenet.prototxt"
    randomized(lenet_deploy).save(str(work / "lenet.caffemodel"))
    corpus.add("caffemodel", "lenet.caffemodel", (work / "lenet.caffemodel").read_bytes())
    corpus.add("caffemodel", "lenet_v1_definition.caffemodel", v1.SerializeToString())
    corpus.add("caffemodel", "lenet_v0_definition.caffemodel", v0.SerializeToString())

    # Solver states: SGD with momentum over the small net, after two steps; the weights file
    # the state names is kept beside the corpus so that restoring it reads real weights.
    solver_file = work / "solver.prototxt"
    solver_file.write_text('net: "%s"\nbase_lr: 0.01\nmomentum: 0.9\nlr_policy: "step"\n'
                           'gamma: 0.5\nstepsize: 1\nsnapshot_prefix: "%s"\n'
                           'snapshot_after_train: false\n' % (SMALL_NET, corpus.folder / "weights" / "small"))
    (corpus.folder / "weights").mkdir(parents=True, exist_ok=True)
    solver = engine.SGDSolver(str(solver_file))
    solver.net.blobs["data"].data[...] = np.random.RandomState(1).rand(2, 3, 8, 8)
    solver.net.blobs["label"].data[...] = [0, 2]
    solver.step(2)
    solver.snapshot()
    for state in sorted((corpus.folder / "weights").glob("*.solverstate")):
        corpus.add("solverstate", state.name, state.read_bytes())


def onnx_models(corpus, work):
    for path in sorted((SOURCE / "tests" / "onnx" / "pytorch").glob("*.onnx")):
        corpus.add("onnx_import", path.name, path.read_bytes())
    for name, prototxt in (("lenet", MODELS / "examples" / "mnist" / "lenet.prototxt"),
                           ("fashion_lenet", SOURCE / "models" / "fashion_lenet" / "deploy.prototxt")):
        engine.export_onnx(randomized(prototxt), str(work / (name + ".onnx")))
        corpus.add("onnx_import", name + ".onnx", (work / (name + ".onnx")).read_bytes())


def npy_files(corpus, work):
    rng = np.random.RandomState(2)
    arrays = {"images": rng.rand(2, 3, 4, 4).astype(np.float32),
              "scalar": np.float32(3.5), "vector": np.arange(5, dtype=np.float32),
              "empty": np.zeros((0, 3), np.float32), "doubles": rng.rand(3, 2),
              "fortran": np.asfortranarray(rng.rand(3, 4).astype(np.float32))}
    for name, array in arrays.items():
        np.save(str(work / name), array)
        corpus.add("npy", name + ".npy", (work / (name + ".npy")).read_bytes())
    with open(work / "v2.npy", "wb") as f:
        np.lib.format.write_array(f, arrays["images"], version=(2, 0))
    corpus.add("npy", "v2.npy", (work / "v2.npy").read_bytes())


def idx_pair(images, labels, compress):
    count, rows, cols = images.shape
    image_file = struct.pack(">IIII", 2051, count, rows, cols) + images.tobytes()
    label_file = struct.pack(">II", 2049, count) + labels.tobytes()
    if compress:
        image_file, label_file = gzip.compress(image_file, 9, mtime=0), gzip.compress(label_file, 9, mtime=0)
    return struct.pack("<I", len(image_file)) + image_file + label_file


def png(image):
    """An 8-bit grey or BGR-as-RGB PNG of `image` (H x W or H x W x 3)."""
    height, width = image.shape[:2]
    colour = 2 if image.ndim == 3 else 0
    rows = b"".join(b"\x00" + image[y].tobytes() for y in range(height))

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(
            ">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8,
                                                               colour, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))


def data_records(corpus):
    rng = np.random.RandomState(3)
    raw = caffe_pb2.Datum(channels=3, height=8, width=8, label=4,
                          data=rng.randint(0, 256, (3, 8, 8), np.uint8).tobytes())
    grey = caffe_pb2.Datum(channels=1, height=28, width=28, label=9,
                           data=rng.randint(0, 256, (1, 28, 28), np.uint8).tobytes())
    floats = caffe_pb2.Datum(channels=2, height=5, width=5, label=1)
    floats.float_data.extend(rng.randn(50).astype(np.float32).tolist())
    colour_png = caffe_pb2.Datum(encoded=True, label=2,
                                 data=png(rng.randint(0, 256, (9, 7, 3), np.uint8)))
    grey_png = caffe_pb2.Datum(encoded=True, label=3,
                               data=png(rng.randint(0, 256, (6, 6), np.uint8)))
    for name, datum in (("raw", raw), ("grey", grey), ("floats", floats),
                        ("colour_png", colour_png), ("grey_png", grey_png)):
        corpus.add("datum", name, datum.SerializeToString())

    mean = caffe_pb2.BlobProto()
    mean.shape.dim.extend([1, 3, 8, 8])
    mean.data.extend(rng.rand(192).astype(np.float32).tolist())
    corpus.add("mean_file", "mean.binaryproto", mean.SerializeToString())
    legacy = caffe_pb2.BlobProto(num=1, channels=3, height=8, width=8)
    legacy.data.extend(rng.rand(192).astype(np.float32).tolist())
    corpus.add("mean_file", "legacy_mean.binaryproto", legacy.SerializeToString())
    small = caffe_pb2.BlobProto(num=1, channels=1, height=4, width=4)
    small.double_data.extend(rng.rand(16).tolist())
    corpus.add("mean_file", "doubles.binaryproto", small.SerializeToString())

    images = rng.randint(0, 256, (3, 4, 5), np.uint8)
    labels = np.array([7, 0, 3], np.uint8)
    corpus.add("mnist_idx", "raw", idx_pair(images, labels, False))
    corpus.add("mnist_idx", "gzipped", idx_pair(images, labels, True))

    corpus.add("image_list", "train.txt",
               "".join("n%08d/img_%d.JPEG %d\n" % (c, i, c) for c in range(3) for i in range(3)))
    corpus.add("image_list", "spaces_and_tabs.txt",
               "a file with spaces.png 1\r\nother.jpg\t2\n\n   \nlast.png -3")


def main():
    out = Path(sys.argv[1])
    corpus = Corpus(out)
    engine.set_mode_cpu()
    with tempfile.TemporaryDirectory() as work:
        work = Path(work)
        nets_and_solvers(corpus, work)
        onnx_models(corpus, work)
        npy_files(corpus, work)
        data_records(corpus)
    counts = {d.name: sum(1 for _ in d.iterdir()) for d in sorted(out.iterdir())
              if d.name != "weights"}
    print("seed corpus in %s: %s" % (out, counts))


if __name__ == "__main__":
    main()
