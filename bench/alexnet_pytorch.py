#!/usr/bin/env python3
"""PyTorch's side of bench/gpu_alexnet.sh (on the GPU) and bench/alexnet_step.sh (on the CPU):
the same AlexNet as models/alexnet and BVLC's (grouped conv2, conv4, conv5; LRN k=2 n=5
alpha=5e-4 (divided by n, as Caffe and PyTorch both do) beta=0.75; overlapping max pooling with
Caffe's ceil rounding; dropout 0.5; 227x227 inputs, 1000 classes). On the GPU: float32 (TF32 on
request), cuDNN benchmark mode. On the CPU: --threads threads, float32 or torch.autocast bfloat16.
Prints one JSON line per batch size: training iterations per second (forward, backward, SGD step
with momentum and weight decay) and forward-only images per second.

Usage: python3 bench/alexnet_pytorch.py [--device cuda|cpu] [--threads N] [--bf16]
                                        [--batches 128 256] [--iterations 50] [--tf32]
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


def timed(fn, iterations, device, warmup=5):
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    for _ in range(warmup):
        fn()
    sync()
    start = time.perf_counter()
    for _ in range(iterations):
        fn()
    sync()
    return (time.perf_counter() - start) / iterations


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--batches", type=int, nargs="+", default=[128, 256])
    parser.add_argument("--iterations", type=int, default=50)
    parser.add_argument("--tf32", action="store_true",
                        help="allow TF32 tensor-core math (PyTorch's default for convolutions)")
    parser.add_argument("--device", default="cuda", choices=["cuda", "cpu"])
    parser.add_argument("--threads", type=int, default=0, help="CPU threads (0: PyTorch's choice)")
    parser.add_argument("--bf16", action="store_true", help="torch.autocast to bfloat16")
    parser.add_argument("--warmup", type=int, default=5)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.backends.cudnn.benchmark = True
    torch.backends.cudnn.allow_tf32 = args.tf32
    torch.backends.cuda.matmul.allow_tf32 = args.tf32
    device = torch.device(args.device)
    autocast = lambda: torch.autocast(args.device, dtype=torch.bfloat16, enabled=args.bf16)
    torch.manual_seed(1)
    model = alexnet().to(device)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
    loss_fn = nn.CrossEntropyLoss()
    for batch in args.batches:
        data = torch.randn(batch, 3, 227, 227, device=device)
        labels = torch.randint(0, 1000, (batch,), device=device)

        def train_step():
            optimizer.zero_grad(set_to_none=True)
            with autocast():
                loss = loss_fn(model(data), labels)
            loss.backward()
            optimizer.step()

        def forward():
            with autocast():
                model(data)

        model.train()
        train_seconds = timed(train_step, args.iterations, device, args.warmup)
        model.eval()
        with torch.no_grad():
            forward_seconds = timed(forward, args.iterations, device, args.warmup)
        print(json.dumps({
            "framework": "pytorch " + torch.__version__, "batch": batch, "tf32": args.tf32,
            "bf16": args.bf16, "threads": torch.get_num_threads(),
            "train_iterations_per_s": 1 / train_seconds,
            "train_ms": 1000 * train_seconds,
            "forward_images_per_s": batch / forward_seconds,
            "forward_ms": 1000 * forward_seconds,
        }), flush=True)


if __name__ == "__main__":
    main()
