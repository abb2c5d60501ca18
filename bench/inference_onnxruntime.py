#!/usr/bin/env python3
"""The parts of bench/inference_onnxruntime.sh, one subcommand each (the script runs them in turn):

  prepare MODEL PROTOTXT WORK   (Debian's python3 with the engine's module on the path)
      Random weights for the deploy net (He-normal convolutions and inner products, small
      biases; BatchNorm statistics mean 0, variance 1, scale factor 1; Scale gamma and beta
      scaled for unit-scale outputs, see below), saved as WORK/MODEL.caffemodel, and the two inputs WORK/MODEL_b1.npy and
      WORK/MODEL_b32.npy (standard normal, seeded).
  ours MODEL PROTOTXT WORK      (the same python) times the engine through the Python module:
      Net(prototxt, weights, TEST), the input copied into the 'data' blob once, then
      net.forward() (one call into C++ per pass), batch 1 then the blob reshaped to 32.
  ort MODEL WORK                (a python with onnxruntime) times ONNX Runtime on
      WORK/MODEL_b1.onnx and WORK/MODEL_b32.onnx (written by `engine export_onnx`):
      CPUExecutionProvider, intra_op_num_threads THREADS, inter_op 1, sequential,
      ORT_ENABLE_ALL graph optimizations.
  report WORK                   prints the table from the JSON lines the runs appended.

Each timing: WARMUP passes (the engine chooses its fastest implementation per layer on the first
pass of a shape), then ITERATIONS timed passes, each timed alone; batch 1 reports the median
latency in ms, batch 32 the images/s of the median pass. ours and ort append one JSON line to
WORK/MODEL.ours.json / WORK/MODEL.ort.json and, on their first round, save the 'prob' outputs
(WORK/MODEL_b{1,32}.{ours,ort}.out.npy) for the comparison.
"""
import json
import os
import sys
import time

import numpy as np

BATCHES = (1, 32)


def env_int(name, default):
    return int(os.environ.get(name, default))


def settings(batch):
    """(warm-up passes, timed passes) for a batch size, from the environment."""
    if batch == 1:
        return env_int("WARMUP1", 5), env_int("ITERATIONS1", 30)
    return env_int("WARMUP32", 2), env_int("ITERATIONS32", 5)


def time_passes(run, batch):
    warmup, iterations = settings(batch)
    for _ in range(warmup):
        run()
    seconds = []
    for _ in range(iterations):
        start = time.perf_counter()
        run()
        seconds.append(time.perf_counter() - start)
    median = float(np.median(seconds))
    return {"batch": batch, "median_ms": 1000 * median, "images_per_s": batch / median,
            "iterations": iterations, "warmup": warmup}


def append_json(path, record):
    with open(path, "a") as f:
        f.write(json.dumps(record) + "\n")


# ----------------------------------------------------------------------------------------------
def prepare(model, prototxt, work):
    import engine
    engine.set_mode_cpu()
    net = engine.Net(prototxt, engine.TEST)
    rng = np.random.default_rng(20240601)
    layers = dict(zip(net._layer_names, net.layers))
    ip_layers = [name for name, blobs in net.params.items() if layers[name].type == "InnerProduct"]
    for name, blobs in net.params.items():
        kind = layers[name].type
        if kind in ("Convolution", "InnerProduct"):
            weights = blobs[0].data
            fan_in = int(np.prod(weights.shape[1:]))
            # He-normal keeps the activations' scale through ReLU layers.
            weights[...] = rng.standard_normal(weights.shape) * np.sqrt(2.0 / fan_in)
            if len(blobs) > 1:
                blobs[1].data[...] = rng.normal(0, 0.01, blobs[1].data.shape)
        elif kind == "BatchNorm":
            blobs[0].data[...] = 0          # mean
            blobs[1].data[...] = 1          # variance
            blobs[2].data[...] = 1          # moving-average scale factor
        elif kind == "Scale":
            blobs[0].data[...] = rng.uniform(0.8, 1.2, blobs[0].data.shape)     # gamma
            if len(blobs) > 1:
                blobs[1].data[...] = rng.normal(0, 0.01, blobs[1].data.shape)  # beta
        else:
            for blob in blobs:
                blob.data[...] = rng.normal(0, 0.01, blob.data.shape)
    # Data-dependent scales (as LSUV initialises): in net order, each Scale's gamma and beta are
    # divided by the standard deviation of its output on a random batch, so that every
    # BatchNorm + Scale gives unit-scale activations (without it the residual sums of a random
    # ResNet grow the activations at every block and 'prob' saturates to one class); the
    # classifier is scaled for logits of standard deviation 2, a peaked but not one-hot 'prob'.
    shape = tuple(net.blobs["data"].data.shape[1:])
    net.blobs["data"].reshape(4, *shape)
    net.reshape()
    net.blobs["data"].data[...] = rng.standard_normal((4,) + shape)
    names = list(net._layer_names)
    start = 0
    for name, blobs in net.params.items():
        if layers[name].type == "Scale" or name == ip_layers[-1]:
            out = net.forward(start=names[start], end=name)
            std = max(float(next(iter(out.values())).std()), 1e-3)
            target = 2.0 if layers[name].type == "InnerProduct" else 1.0
            for blob in blobs:
                blob.data[...] *= target / std
            start = names.index(name)   # its output changed: run it again next time
    net.save(os.path.join(work, model + ".caffemodel"))
    for batch in BATCHES:
        np.save(os.path.join(work, "%s_b%d.npy" % (model, batch)),
                rng.standard_normal((batch,) + shape).astype(np.float32))
    # The logits' spread on the batch-1 input: a check that 'prob' is not saturated.
    net.blobs["data"].reshape(1, *shape)
    net.reshape()
    net.blobs["data"].data[...] = np.load(os.path.join(work, model + "_b1.npy"))
    prob = net.forward()["prob"]
    print("%s: weights and inputs in %s; batch-1 max prob %.4f" % (model, work, prob.max()))


def ours(model, prototxt, work):
    import engine
    engine.set_mode_cpu()
    net = engine.Net(prototxt, os.path.join(work, model + ".caffemodel"), engine.TEST)
    record = {"framework": "engine"}
    first_round = not os.path.exists(os.path.join(work, "%s_b1.ours.out.npy" % model))
    for batch in BATCHES:
        x = np.load(os.path.join(work, "%s_b%d.npy" % (model, batch)))
        net.blobs["data"].reshape(*x.shape)
        net.reshape()
        net.blobs["data"].data[...] = x
        record["b%d" % batch] = time_passes(net.forward, batch)
        if first_round:
            np.save(os.path.join(work, "%s_b%d.ours.out.npy" % (model, batch)),
                    net.blobs["prob"].data.copy())
    append_json(os.path.join(work, model + ".ours.json"), record)


def ort(model, work):
    import onnxruntime
    threads = env_int("THREADS", 2)
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = onnxruntime.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
    if os.environ.get("OMP_WAIT_POLICY", "").lower() == "passive":
        # The same policy as the engine's OpenMP threads: sleep rather than spin when idle.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    record = {"framework": "onnxruntime " + onnxruntime.__version__}
    first_round = not os.path.exists(os.path.join(work, "%s_b1.ort.out.npy" % model))
    for batch in BATCHES:
        session = onnxruntime.InferenceSession(
            os.path.join(work, "%s_b%d.onnx" % (model, batch)), options,
            providers=["CPUExecutionProvider"])
        feeds = {session.get_inputs()[0].name: np.load(
            os.path.join(work, "%s_b%d.npy" % (model, batch)))}
        outputs = [o.name for o in session.get_outputs()]
        output = "prob" if "prob" in outputs else outputs[0]
        result = {}
        record["b%d" % batch] = time_passes(
            lambda: result.update(prob=session.run([output], feeds)[0]), batch)
        if first_round:
            np.save(os.path.join(work, "%s_b%d.ort.out.npy" % (model, batch)), result["prob"])
    append_json(os.path.join(work, model + ".ort.json"), record)


# ----------------------------------------------------------------------------------------------
def best(path):
    """The best round of a JSON-lines file: lowest batch-1 median, highest batch-32 rate."""
    if not os.path.exists(path):
        return None
    rounds = [json.loads(line) for line in open(path) if line.strip()]
    if not rounds:
        return None
    out = {"framework": rounds[0]["framework"], "rounds": len(rounds)}
    for batch in BATCHES:
        key = "b%d" % batch
        out[key] = max((r[key] for r in rounds), key=lambda t: t["images_per_s"])
    return out


def failure(work, model):
    path = os.path.join(work, model + ".failed")
    return open(path).read().strip() if os.path.exists(path) else None


def report(work, models):
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo")
                if line.startswith("model name")), "?")
    flags = open("/proc/cpuinfo").read()
    isa = "AVX-512" if " avx512f" in flags else ("AVX2" if " avx2" in flags else "no AVX2")
    threads = env_int("THREADS", 2)
    peer = next((b["framework"] for b in (best(os.path.join(work, m + ".ort.json"))
                                          for m in models) if b), "onnxruntime")
    rounds = env_int("ROUNDS", 3)
    w1, i1 = settings(1)
    w32, i32 = settings(32)
    print("Inference on the CPU: %s, %s, nproc %s, %d threads (OMP_NUM_THREADS; ORT intra-op), "
          "fp32; ours: the engine's Python module, net.forward(); peer: %s, "
          "CPUExecutionProvider, ORT_ENABLE_ALL, on our `engine export_onnx` of the same model "
          "and weights" % (cpu, isa, len(os.sched_getaffinity(0)), threads, peer))
    policy = os.environ.get("OMP_WAIT_POLICY")
    if policy:
        print("OMP_WAIT_POLICY=%s (ORT: session.intra_op.allow_spinning %s)"
              % (policy, "0" if policy.lower() == "passive" else "1"))
    print("best of %d alternating rounds; batch 1: median latency of %d passes after %d warm-up; "
          "batch 32: images/s of the median of %d passes after %d warm-up; "
          "ratio = ours/ORT throughput (higher is better)" % (rounds, i1, w1, i32, w32))
    header = "%-12s %5s %14s %14s %7s %11s" % ("model", "batch", "ours", "ORT", "ratio",
                                                "max|dprob|")
    print(header)
    print("-" * len(header))
    notes = []
    for model in models:
        ours_best = best(os.path.join(work, model + ".ours.json"))
        ort_best = best(os.path.join(work, model + ".ort.json"))
        failed = failure(work, model)
        for batch in BATCHES:
            key = "b%d" % batch
            if failed or not ours_best or not ort_best:
                reason = failed or ("our run failed" if not ours_best else "ORT run failed")
                print("%-12s %5d %s" % (model, batch, "FAILED: " + reason.splitlines()[-1]))
                continue
            a, b = ours_best[key], ort_best[key]
            diff = "?"
            ours_out = os.path.join(work, "%s_b%d.ours.out.npy" % (model, batch))
            ort_out = os.path.join(work, "%s_b%d.ort.out.npy" % (model, batch))
            if os.path.exists(ours_out) and os.path.exists(ort_out):
                p, q = np.load(ours_out), np.load(ort_out)
                p = p.reshape(q.shape) if p.size == q.size else p
                if p.shape == q.shape:
                    diff = "%.1e" % float(np.abs(p - q).max())
                    agree = float(np.mean(p.reshape(batch, -1).argmax(1) ==
                                          q.reshape(batch, -1).argmax(1)))
                    if agree < 1:
                        notes.append("%s batch %d: top-1 classes agree on %.0f%% of the images"
                                     % (model, batch, 100 * agree))
                else:
                    diff = "shape %s vs %s" % (p.shape, q.shape)
            if batch == 1:
                cells = ("%9.2f ms" % a["median_ms"], "%9.2f ms" % b["median_ms"])
            else:
                cells = ("%10.1f im/s" % a["images_per_s"], "%10.1f im/s" % b["images_per_s"])
            print("%-12s %5d %14s %14s %7.2f %11s" % (model, batch, cells[0], cells[1],
                                                      a["images_per_s"] / b["images_per_s"], diff))
    for note in notes:
        print(note)


def main():
    command, args = sys.argv[1], sys.argv[2:]
    if command == "prepare":
        prepare(*args)
    elif command == "ours":
        ours(*args)
    elif command == "ort":
        ort(*args)
    elif command == "report":
        report(args[0], args[1:])
    else:
        sys.exit("unknown command " + command)


if __name__ == "__main__":
    main()
