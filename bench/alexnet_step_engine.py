#!/usr/bin/env python3
"""The engine's side of bench/alexnet_step.sh: BVLC's AlexNet (deploy.prototxt from
../shared/caffe-models, unchanged but for the batch) with a label input and SoftmaxWithLoss
appended, trained through the Python module by SGD (lr 0.01, momentum 0.9, weight decay 5e-4)
on random data: each step is forward, backward and the update, as in PyTorch's loop. Forward
alone is timed on the TEST-phase net. Prints one JSON line like bench/alexnet_pytorch.py's.

--precision bf16 (or fp16) puts the net's `precision` field in: its convolutions and inner
products multiply in that precision.

Usage: python3 bench/alexnet_step_engine.py [--batch 32] [--iterations 10] [--warmup 2]
                                            [--precision fp32|bf16|fp16]
(Debian's python3, with build/python on the path.)
"""
import argparse
import json
import os
import tempfile
import time

import numpy as np

import engine

DEPLOY = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared",
                      "caffe-models", "models", "bvlc_alexnet", "deploy.prototxt")


def timed(fn, iterations, warmup):
    for _ in range(warmup):
        fn()
    start = time.perf_counter()
    for _ in range(iterations):
        fn()
    return (time.perf_counter() - start) / iterations


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--iterations", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--precision", choices=["fp32", "bf16", "fp16"], default="fp32")
    args = parser.parse_args()
    with open(DEPLOY) as f:
        deploy = f.read()
    first_dim = "shape: { dim: 10 dim: 3 dim: 227 dim: 227 }"
    assert first_dim in deploy, "BVLC's deploy.prototxt changed"
    net_text = deploy.replace(first_dim, "shape: { dim: %d dim: 3 dim: 227 dim: 227 }" % args.batch)
    net_text += ('layer { name: "label" type: "Input" top: "label" '
                 'input_param { shape { dim: %d } } }\n' % args.batch)
    net_text += ('layer { name: "loss" type: "SoftmaxWithLoss" bottom: "fc8" bottom: "label" '
                 'top: "loss" }\n')
    net_text = "precision: %s\n" % args.precision.upper() + net_text
    engine.set_mode_cpu()
    with tempfile.TemporaryDirectory() as work:
        net_path = os.path.join(work, "alexnet.prototxt")
        with open(net_path, "w") as f:
            f.write(net_text)
        solver_path = os.path.join(work, "solver.prototxt")
        with open(solver_path, "w") as f:
            f.write('net: "%s"\nbase_lr: 0.01\nmomentum: 0.9\nweight_decay: 0.0005\n'
                    'lr_policy: "fixed"\nmax_iter: 1000000\ndisplay: 0\nsnapshot: 0\n'
                    'solver_mode: CPU\n' % net_path)
        solver = engine.SGDSolver(solver_path)
        rng = np.random.default_rng(1)
        solver.net.blobs["data"].data[...] = rng.standard_normal(
            solver.net.blobs["data"].data.shape).astype(np.float32)
        solver.net.blobs["label"].data[...] = rng.integers(0, 1000, args.batch)
        train_seconds = timed(lambda: solver.step(1), args.iterations, args.warmup)
        test_net = engine.Net(net_path, engine.TEST)
        test_net.blobs["data"].data[...] = solver.net.blobs["data"].data
        forward_seconds = timed(test_net.forward, args.iterations, args.warmup)
    print(json.dumps({
        "framework": "engine", "batch": args.batch, "bf16": args.precision == "bf16",
        "precision": args.precision,
        "train_iterations_per_s": 1 / train_seconds, "train_ms": 1000 * train_seconds,
        "forward_images_per_s": args.batch / forward_seconds, "forward_ms": 1000 * forward_seconds,
    }), flush=True)


if __name__ == "__main__":
    main()
