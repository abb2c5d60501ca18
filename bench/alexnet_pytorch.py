#!/usr/bin/env python3
"""PyTorch's side of bench/gpu_alexnet: the same AlexNet as models/alexnet (grouped conv2, conv4,
conv5; LRN k=2 n=5 alpha=5e-4 (divided by n, as Caffe and PyTorch both do) beta=0.75; overlapping
max pooling; dropout 0.5; 227x227 inputs, 1000 classes), float32, cuDNN benchmark mode, timed
on the same GPU. Prints one JSON line per batch size: training iterations per second (forward,
backward, SGD step with momentum and weight decay) and forward-only images per second.

Usage: python3 bench/gpu_alexnet_pytorch.py [--batches 128 256] [--iterations 50] [--tf32]
"""
import argparse
import json
import time

import torch
import torch.nn as nn


def alexnet():
    def conv(cin, cout, k, stride=1, pad=0, groups=1, bias=0.0):
        layer = nn.Conv2d(cin, cout, k, stride=stride, padding=pad, groups=groups)
        nn.init.normal_(layer.weight, 0, 0.01)
        nn.init.constant_(layer.bias, bias)
        return layer

    def fc(cin, cout, bias=1.0):
        layer = nn.Linear(cin, cout)
        nn.init.normal_(layer.weight, 0, 0.01)
        nn.init.constant_(layer.bias, bias)
        return layer

    lrn = lambda: nn.LocalResponseNorm(5, alpha=5e-4, beta=0.75, k=2.0)
    pool = lambda: nn.MaxPool2d(3, 2, ceil_mode=True)
    return nn.Sequential(
        conv(3, 96, 11, stride=4), nn.ReLU(inplace=True), lrn(), pool(),
        conv(96, 256, 5, pad=2, groups=2, bias=1), nn.ReLU(inplace=True), lrn(), pool(),
        conv(256, 384, 3, pad=1), nn.ReLU(inplace=True),
        conv(384, 384, 3, pad=1, groups=2, bias=1), nn.ReLU(inplace=True),
        conv(384, 256, 3, pad=1, groups=2, bias=1), nn.ReLU(inplace=True), pool(),
        nn.Flatten(),
        fc(9216, 4096), nn.ReLU(inplace=True), nn.Dropout(0.5),
        fc(4096, 4096), nn.ReLU(inplace=True), nn.Dropout(0.5),
        fc(4096, 1000),
    )


def timed(fn, iterations, warmup=5):
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(iterations):
        fn()
    torch.cuda.synchronize()
    return (time.perf_counter() - start) / iterations


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--batches", type=int, nargs="+", default=[128, 256])
    parser.add_argument("--iterations", type=int, default=50)
    parser.add_argument("--tf32", action="store_true",
                        help="allow TF32 tensor-core math (PyTorch's default for convolutions)")
    args = parser.parse_args()
    torch.backends.cudnn.benchmark = True
    torch.backends.cudnn.allow_tf32 = args.tf32
    torch.backends.cuda.matmul.allow_tf32 = args.tf32
    device = torch.device("cuda")
    torch.manual_seed(1)
    model = alexnet().to(device)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
    loss_fn = nn.CrossEntropyLoss()
    for batch in args.batches:
        data = torch.randn(batch, 3, 227, 227, device=device)
        labels = torch.randint(0, 1000, (batch,), device=device)

        def train_step():
            optimizer.zero_grad(set_to_none=True)
            loss_fn(model(data), labels).backward()
            optimizer.step()

        model.train()
        train_seconds = timed(train_step, args.iterations)
        model.eval()
        with torch.no_grad():
            forward_seconds = timed(lambda: model(data), args.iterations)
        print(json.dumps({
            "framework": "pytorch " + torch.__version__, "batch": batch, "tf32": args.tf32,
            "train_iterations_per_s": 1 / train_seconds,
            "train_ms": 1000 * train_seconds,
            "forward_images_per_s": batch / forward_seconds,
            "forward_ms": 1000 * forward_seconds,
        }), flush=True)


if __name__ == "__main__":
    main()
