#!/usr/bin/env python3
"""Analytical cost model for parallel training of a Caffe net (AlexNet by default).

Reads a deploy.prototxt, derives per-layer parameters, activations and FLOPs, then predicts the
bytes each worker exchanges per step and the step time for three ways of splitting the work
over W workers: data parallel, model parallel (the 2012 AlexNet two-GPU split) and the 2014
"one weird trick" hybrid (data parallel convolutions, model parallel fully connected layers).
Standard library only; the output is plain text and deterministic.
"""

import argparse
import math
import os
import re
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_MODEL = os.path.normpath(
    os.path.join(REPO, "..", "shared", "caffe-models", "models", "bvlc_alexnet", "deploy.prototxt"))
BYTES_PER_VALUE = 4  # fp32 gradients and activations

# ---------------------------------------------------------------------------------------------
# A small protobuf text-format reader: enough for net files (messages, scalars, repeated fields).

TOKEN = re.compile(r'\s+|#[^\n]*|"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|[{}:;,\[\]<>]|[^\s{}:;,"\'\[\]<>#]+')


def tokenize(text):
    for m in TOKEN.finditer(text):
        tok = m.group(0)
        if tok[0].isspace() or tok[0] == "#":
            continue
        yield tok


def parse_message(tokens, pos, closing):
    """Returns (dict field -> list of values, next position). Messages are dicts."""
    msg = {}
    while pos < len(tokens):
        tok = tokens[pos]
        if tok == closing:
            return msg, pos + 1
        if tok in (",", ";"):
            pos += 1
            continue
        name = tok
        pos += 1
        if pos < len(tokens) and tokens[pos] == ":":
            pos += 1
        if pos >= len(tokens):
            raise ValueError("unexpected end of file after field %r" % name)
        tok = tokens[pos]
        if tok in ("{", "<"):
            value, pos = parse_message(tokens, pos + 1, "}" if tok == "{" else ">")
        else:
            value, pos = scalar(tok), pos + 1
        msg.setdefault(name, []).append(value)
    if closing is not None:
        raise ValueError("unbalanced braces in prototxt")
    return msg, pos


def scalar(tok):
    if tok[0] in "\"'":
        return tok[1:-1]
    try:
        return int(tok)
    except ValueError:
        pass
    try:
        return float(tok)
    except ValueError:
        return tok  # enum or bare word


def parse_prototxt(text):
    msg, _ = parse_message(list(tokenize(text)), 0, None)
    return msg


def first(msg, field, default=None):
    values = msg.get(field) if msg else None
    return values[0] if values else default


# ---------------------------------------------------------------------------------------------
# Layers and shapes (per image: the batch dimension is left out everywhere).

V1_TYPES = {"CONVOLUTION": "Convolution", "POOLING": "Pooling", "INNER_PRODUCT": "InnerProduct",
            "RELU": "ReLU", "LRN": "LRN", "DROPOUT": "Dropout", "SOFTMAX": "Softmax",
            "CONCAT": "Concat", "SOFTMAX_LOSS": "SoftmaxWithLoss", "ACCURACY": "Accuracy"}


class Layer:
    def __init__(self, name, kind, bottoms, tops):
        self.name, self.kind, self.bottoms, self.tops = name, kind, bottoms, tops
        self.in_shape = None     # shape of bottom[0] per image
        self.out_shape = None    # shape of top[0] per image
        self.params = 0          # weights + bias
        self.macs = 0            # forward multiply-adds per image
        self.group = 1
        self.num_output = None
        self.reads_net_input = False
        self.inplace = bool(tops) and tops == bottoms[:len(tops)]

    @property
    def in_elems(self):
        return prod(self.in_shape) if self.in_shape else 0

    @property
    def out_elems(self):
        return prod(self.out_shape) if self.out_shape else 0

    @property
    def splittable(self):  # layers whose output channels model parallelism splits W ways
        return self.kind in ("Convolution", "InnerProduct")


def prod(shape):
    n = 1
    for d in shape:
        n *= d
    return n


def spatial(param, name, default):
    """Caffe's kernel_size/stride/pad (repeated or _h/_w forms) -> (h, w)."""
    h, w = first(param, name + "_h"), first(param, name + "_w")
    if h is not None and w is not None:
        return int(h), int(w)
    key = name if name != "kernel" else "kernel_size"
    values = param.get(key, []) if param else []
    if not values:
        return default, default
    if len(values) == 1:
        return int(values[0]), int(values[0])
    return int(values[0]), int(values[1])


def conv_out(size, k, s, p):
    return (size + 2 * p - k) // s + 1


def pool_out(size, k, s, p):
    out = int(math.ceil(float(size + 2 * p - k) / s)) + 1
    if p > 0 and (out - 1) * s >= size + p:  # Caffe: the last window must start inside the image
        out -= 1
    return out


def load_net(path):
    with open(path) as f:
        net = parse_prototxt(f.read())
    blobs = {}  # blob name -> per-image shape
    net_inputs = set()
    # Old-style inputs: input: "data" with input_dim x4 or input_shape { dim ... }.
    names = net.get("input", [])
    dims = net.get("input_dim", [])
    shapes = net.get("input_shape", [])
    for i, name in enumerate(names):
        if shapes:
            d = [int(x) for x in shapes[min(i, len(shapes) - 1)].get("dim", [])]
        else:
            d = [int(x) for x in dims[4 * i:4 * i + 4]]
        blobs[name] = tuple(d[1:])
        net_inputs.add(name)
    layers = []
    for spec in net.get("layer", []) + net.get("layers", []):
        kind = str(first(spec, "type", ""))
        kind = V1_TYPES.get(kind, kind)
        include = first(spec, "include")
        if include and str(first(include, "phase", "")) == "TEST":
            continue
        layer = Layer(str(first(spec, "name", "")), kind,
                      [str(b) for b in spec.get("bottom", [])], [str(t) for t in spec.get("top", [])])
        if kind == "Input":
            shapes = first(spec, "input_param", {}).get("shape", [])
            for i, top in enumerate(layer.tops):
                d = [int(x) for x in shapes[min(i, len(shapes) - 1)].get("dim", [])]
                blobs[top] = tuple(d[1:])
                net_inputs.add(top)
            layer.out_shape = blobs[layer.tops[0]] if layer.tops else None
            layers.append(layer)
            continue
        missing = [b for b in layer.bottoms if b not in blobs]
        if missing:
            raise SystemExit("%s: layer %s (%s) reads %s, whose shape is unknown; use a deploy net "
                             "with Input layers" % (path, layer.name, kind, ", ".join(missing)))
        if layer.bottoms:
            layer.in_shape = blobs[layer.bottoms[0]]
            layer.reads_net_input = layer.bottoms[0] in net_inputs
        infer(layer, spec, blobs)
        for top in layer.tops:
            blobs[top] = layer.out_shape
        layers.append(layer)
    return str(first(net, "name", os.path.basename(path))), layers


def infer(layer, spec, blobs):
    shape = layer.in_shape
    if layer.kind == "Convolution":
        p = first(spec, "convolution_param", {})
        c, h, w = shape
        n = int(first(p, "num_output"))
        g = int(first(p, "group", 1))
        kh, kw = spatial(p, "kernel", 1)
        sh, sw = spatial(p, "stride", 1)
        ph, pw = spatial(p, "pad", 0)
        oh, ow = conv_out(h, kh, sh, ph), conv_out(w, kw, sw, pw)
        bias = str(first(p, "bias_term", "true")).lower() != "false"
        layer.num_output, layer.group = n, g
        layer.params = n * (c // g) * kh * kw + (n if bias else 0)
        layer.macs = n * oh * ow * (c // g) * kh * kw
        layer.out_shape = (n, oh, ow)
    elif layer.kind == "Pooling":
        p = first(spec, "pooling_param", {})
        c, h, w = shape
        if str(first(p, "global_pooling", "false")).lower() == "true":
            layer.out_shape = (c, 1, 1)
        else:
            kh, kw = spatial(p, "kernel", 1)
            sh, sw = spatial(p, "stride", 1)
            ph, pw = spatial(p, "pad", 0)
            layer.out_shape = (c, pool_out(h, kh, sh, ph), pool_out(w, kw, sw, pw))
    elif layer.kind == "InnerProduct":
        p = first(spec, "inner_product_param", {})
        n = int(first(p, "num_output"))
        k = prod(shape)  # axis 1: everything after the batch dimension
        bias = str(first(p, "bias_term", "true")).lower() != "false"
        layer.num_output = n
        layer.params = n * k + (n if bias else 0)
        layer.macs = n * k
        layer.out_shape = (n,)
    elif layer.kind == "Concat":
        p = first(spec, "concat_param", {})
        axis = int(first(p, "axis", 1)) - 1  # per-image axis
        parts = [blobs[b] for b in layer.bottoms]
        out = list(parts[0])
        out[axis] = sum(s[axis] for s in parts)
        layer.out_shape = tuple(out)
    else:  # element-wise or channel-local layers (ReLU, LRN, Dropout, Softmax, ...)
        layer.out_shape = shape


# ---------------------------------------------------------------------------------------------
# Exchange volumes. All byte counts are per worker per step (sent; a ring receives as much).

def ring_factor(w):
    return 2.0 * (w - 1) / w if w > 1 else 0.0


class Exchange:
    """One collective (or all-gather + reduce-scatter pair) in a step."""

    def __init__(self, layer, what, partners, elements, overlappable):
        self.layer, self.what, self.partners = layer, what, partners
        self.elements = elements        # size of the full buffer being gathered/reduced, values
        self.overlappable = overlappable  # may run under the backward pass

    @property
    def bytes(self):
        return ring_factor(self.partners) * BYTES_PER_VALUE * self.elements

    def seconds(self, beta, alpha):
        if self.partners <= 1:
            return 0.0
        return 2 * (self.partners - 1) * alpha + self.bytes / beta


def data_parallel(layers, w):
    return [Exchange(l.name, "allreduce grads", w, l.params, True)
            for l in layers if l.params and w > 1]


def activation_exchange(layer, w, batch):
    """Model-parallel input exchange for one split layer, or None when it needs none."""
    if w <= 1 or layer.reads_net_input:
        return None  # the image is replicated on every worker of the group
    g = layer.group
    if g > 1 and g % w == 0:
        return None  # each worker holds whole groups: its input channels are already local
    if g > 1 and w % g == 0:  # each group's channels live on w/g workers: exchange among them
        return Exchange(layer.name, "gather/scatter in", w // g, layer.in_elems // g * batch, False)
    return Exchange(layer.name, "gather/scatter in", w, layer.in_elems * batch, False)


def model_parallel(layers, w, batch):
    out = []
    for l in layers:
        if l.splittable:
            e = activation_exchange(l, w, batch)
            if e:
                out.append(e)
    return out


def first_fc(layers):
    for i, l in enumerate(layers):
        if l.kind == "InnerProduct":
            return i
    return len(layers)


def hybrid(layers, w, batch):
    """Data parallel before the first InnerProduct, model parallel from it on (batch w*b)."""
    i0 = first_fc(layers)
    out = data_parallel(layers[:i0], w)
    for l in layers[i0:]:
        if l.splittable and w > 1:
            # fc6 gathers every worker's pool5 (split by batch); later fc layers gather the
            # previous fc output (split by channel). The volume is the same formula either way.
            out.append(Exchange(l.name, "gather/scatter in", w, l.in_elems * w * batch, False))
    return out


def feasible(layers, w, scheme):
    """Model-parallel layers need at least one output channel per worker."""
    if scheme == "dp":
        return True
    split = layers[first_fc(layers):] if scheme == "hybrid" else layers
    return all(l.num_output >= w for l in split if l.splittable)


# ---------------------------------------------------------------------------------------------
# Time model.

def step_time(scheme, layers, w, args, link):
    """Returns (step seconds, exposed communication seconds, images per step)."""
    beta, alpha = link[1] * 1e9, link[2] * 1e-6
    per_image = 1.0 / args.gpu_images_per_s
    fwd_frac = 1.0 / 3.0  # backward ~ 2x forward
    conv_flop_frac = sum(l.macs for l in layers[:first_fc(layers)]) / float(
        sum(l.macs for l in layers) or 1)
    if scheme == "dp":
        compute = args.batch * per_image
        ex = data_parallel(layers, w)
        backward = compute * (1 - fwd_frac)
        images = w * args.batch
    elif scheme == "mp":
        compute = args.mp_batch * per_image / w
        ex = model_parallel(layers, w, args.mp_batch)
        backward = 0.0
        images = args.mp_batch
    else:
        compute = args.batch * per_image  # own b images in conv; 1/w of fc on w*b images
        ex = hybrid(layers, w, args.batch)
        backward = compute * (1 - fwd_frac) * conv_flop_frac
        images = w * args.batch
    over = sum(e.seconds(beta, alpha) for e in ex if e.overlappable)
    serial = sum(e.seconds(beta, alpha) for e in ex if not e.overlappable)
    hidden = min(args.overlap * over, backward)
    exposed = over - hidden + serial
    return compute + exposed, exposed, images


def speedup(scheme, layers, w, args, link):
    t, _, images = step_time(scheme, layers, w, args, link)
    single = images / args.gpu_images_per_s  # one worker doing the same images alone
    return single / t


# ---------------------------------------------------------------------------------------------
# Output.

def table(rows, align):
    widths = [max(len(str(r[i])) for r in rows) for i in range(len(rows[0]))]
    lines = []
    for n, r in enumerate(rows):
        cells = [str(c).rjust(widths[i]) if align[i] == "r" else str(c).ljust(widths[i])
                 for i, c in enumerate(r)]
        lines.append("  " + "  ".join(cells).rstrip())
        if n == 0:
            lines.append("  " + "  ".join("-" * wd for wd in widths))
    return "\n".join(lines)


def mb(nbytes):
    return "%.2f" % (nbytes / 1e6)


def shape_str(shape):
    return "x".join(str(d) for d in shape) if shape else "-"


SCHEMES = [("dp", "data parallel"), ("mp", "model parallel"), ("hybrid", "hybrid 2014")]


def report(args):
    name, layers = load_net(args.model)
    workers = sorted(set(int(x) for x in args.workers.split(",")))
    links = [parse_link(s) for s in args.link]
    out = []
    p = out.append
    inputs = [l for l in layers if l.kind == "Input"]
    p("Parallel training cost model: %s" % name)
    p("net file: %s (relative to the repository)" % os.path.relpath(os.path.abspath(args.model), REPO))
    p("input per image: %s; per-worker batch b = %d; model-parallel group batch B = %d; fp32 (4 bytes)"
      % (shape_str(inputs[0].out_shape) if inputs else "?", args.batch, args.mp_batch))
    p("")

    # Per layer.
    p("== Per layer (per image; in-place layers such as ReLU and Dropout left out)")
    rows = [("layer", "type", "output", "group", "params", "activations", "GMAC", "GFLOP fwd")]
    for l in layers:
        if l.inplace or l.kind == "Input":
            continue
        rows.append((l.name, l.kind, shape_str(l.out_shape), l.group if l.splittable else "",
                     "{:,}".format(l.params), "{:,}".format(l.out_elems),
                     "%.4f" % (l.macs / 1e9), "%.4f" % (2 * l.macs / 1e9)))
    params = sum(l.params for l in layers)
    macs = sum(l.macs for l in layers)
    acts = sum(l.out_elems for l in layers if not l.inplace and l.kind != "Input")
    rows.append(("total", "", "", "", "{:,}".format(params), "{:,}".format(acts),
                 "%.4f" % (macs / 1e9), "%.4f" % (2 * macs / 1e9)))
    p(table(rows, "lllrrrrr"))
    p("forward %.3f GFLOP/image (2 x MACs); backward ~2x forward; training ~%.2f GFLOP/image"
      % (2 * macs / 1e9, 6 * macs / 1e9))
    i0 = first_fc(layers)
    cp, cm = sum(l.params for l in layers[:i0]), sum(l.macs for l in layers[:i0])
    fp_, fm = params - cp, macs - cm
    p("before the first fc layer: %s params (%.1f%%), %.1f%% of FLOPs" %
      ("{:,}".format(cp), 100.0 * cp / max(params, 1), 100.0 * cm / max(macs, 1)))
    p("fc layers:                 %s params (%.1f%%), %.1f%% of FLOPs" %
      ("{:,}".format(fp_), 100.0 * fp_ / max(params, 1), 100.0 * fm / max(macs, 1)))
    p("")

    # Formulas.
    p("== Bytes per worker per step (ring collectives; r(W) = 2(W-1)/W; 4 bytes per value)")
    p("  data parallel:  r(W) * 4 * P                      P = all params (allreduce of gradients)")
    p("  model parallel: sum over split layers reading all input channels of")
    p("                  r(W) * 4 * in_elems * B            (all-gather input fwd, reduce-scatter grad bwd)")
    p("                  grouped conv, group g: none if g % W == 0; r(W/g) * 4 * in_elems/g * B if W % g == 0")
    p("                  layer reading the image: none (replicated in the group)")
    p("  hybrid 2014:    r(W) * 4 * P_conv + sum over fc layers of r(W) * 4 * in_elems * (W*b)")
    p("                  = r(W) * 4 * P_conv + 2(W-1) * 4 * b * sum(fc in_elems)")
    p("")
    rows = [("W",) + tuple(label + " MB" for _, label in SCHEMES)]
    for w in workers:
        vals = [sum(e.bytes for e in ex) for ex in
                (data_parallel(layers, w), model_parallel(layers, w, args.mp_batch),
                 hybrid(layers, w, args.batch))]
        rows.append((w,) + tuple(mb(v) for v in vals))
    p(table(rows, "rrrr"))
    p("  (MB = 1e6 bytes. model parallel at group batch B = %d, hybrid at b = %d per worker)"
      % (args.mp_batch, args.batch))
    fc_in = sum(l.in_elems for l in layers[i0:] if l.splittable)
    if fc_in:
        # hybrid fc traffic 2(W-1)*4*b*fc_in equals data-parallel fc traffic r(W)*4*P_fc when
        # W*b = P_fc / fc_in.
        p("  hybrid's fc exchange grows with W; it equals the fc gradients' allreduce when the total")
        p("  batch W*b = P_fc / sum(fc in_elems) = %s / %s = %.0f images (W = %.1f at b = %d)"
          % ("{:,}".format(fp_), "{:,}".format(fc_in), fp_ / float(fc_in),
             fp_ / float(fc_in) / args.batch, args.batch))
    p("")
    for w in [x for x in args.detail_workers.split(",") if x]:
        w = int(w)
        p("-- per layer at W = %d (MB per worker per step)" % w)
        per = {}
        for key, ex in (("dp", data_parallel(layers, w)), ("mp", model_parallel(layers, w, args.mp_batch)),
                        ("hybrid", hybrid(layers, w, args.batch))):
            for e in ex:
                per.setdefault(e.layer, {})[key] = e
        rows = [("layer", "params", "in_elems/image", "data par.", "model par.", "hybrid")]
        for l in layers:
            if not l.splittable:
                continue
            d = per.get(l.name, {})
            cell = lambda k: mb(d[k].bytes) if k in d else "0"
            rows.append((l.name, "{:,}".format(l.params), "{:,}".format(l.in_elems),
                         cell("dp"), cell("mp"), cell("hybrid")))
        p(table(rows, "lrrrrr"))
        p("")

    # Time.
    p("== Predicted step time and speedup over 1 worker")
    p("ASSUMPTION: one worker trains %.0f images/s (forward + backward + update, fp32); placeholder"
      % args.gpu_images_per_s)
    p("for an H100 on full AlexNet, override with --gpu-images-per-s. Backward = 2/3 of compute.")
    p("collective time = 2(W-1)*alpha + r(W)*buffer/beta per collective; data-parallel allreduce is")
    p("one per layer with params; a fraction %.2f of it hides under backward (--overlap), at most the"
      % args.overlap)
    p("backward time (hybrid: the conv part of backward). Model-parallel exchanges are not hidden.")
    p("data parallel and hybrid: b = %d per worker fixed (weak scaling, total batch W*b);"
      % args.batch)
    p("model parallel: group batch B = %d fixed, compute per worker B/W, activations exchanged do not"
      % args.mp_batch)
    p("shrink with W. '*': some split layer has fewer output channels than W (not realizable).")
    p("")
    wins = []
    for link in links:
        p("-- %s: %.1f GB/s per worker, alpha = %.1f us" % link)
        rows = [("W",) + tuple(x for _, label in SCHEMES
                               for x in (label + " ms", "comm ms", "speedup")) + ("best",)]
        for w in workers:
            row = [w]
            ranked = []
            for key, label in SCHEMES:
                t, exposed, _ = step_time(key, layers, w, args, link)
                s = speedup(key, layers, w, args, link)
                ok = feasible(layers, w, key)
                row += ["%.2f" % (t * 1e3), "%.2f" % (exposed * 1e3), "%.2f%s" % (s, "" if ok else "*")]
                if ok:
                    ranked.append((-s, label))
            ranked.sort()
            best, best_s = ranked[0][1], -ranked[0][0]
            ties = [label for ns, label in ranked[1:] if -ns >= 0.99 * best_s]
            row.append(best + (" (~tie)" if ties else ""))
            rows.append(tuple(row))
            wins.append((link[0], w, best, best_s, ties))
        p(table(rows, "r" + "r" * 9 + "l"))
        p("")
    p("== Which scheme wins (highest predicted speedup among realizable ones)")
    for link_name, w, best, s, ties in wins:
        p("  %-14s W = %4d: %s (%.2fx)%s" % (link_name, w, best, s,
                                             "; within 1%%: %s" % ", ".join(ties) if ties else ""))
    p("caveats: model parallel beyond 2-8 workers splits the layers very thin (AlexNet conv1 has 96")
    p("channels, fc8 1000), so GPU efficiency falls well below the 1/W compute assumed here; LRN's")
    p("cross-channel halo and softmax's normalization over split fc8 outputs are ignored (small);")
    p("weak scaling to W*b = %d images per step at W = %d changes the optimization (learning rate,"
      % (max(workers) * args.batch, max(workers)))
    p("convergence); a flat ring at W = 512 is latency-bound, real systems use trees or hierarchies;")
    p("NVLink-class links beyond one NVSwitch domain (8-72 GPUs) are hypothetical.")

    if any(v is not None for v in (args.measured_step_ms, args.measured_comm_ms, args.measured_bytes)):
        p("")
        p("== Measured on this machine (figures given on the command line, echoed)")
        if args.measured_label:
            p("  what:            %s" % args.measured_label)
        if args.measured_workers is not None:
            p("  workers:         %d" % args.measured_workers)
        if args.measured_step_ms is not None:
            p("  step time:       %.3f ms" % args.measured_step_ms)
        if args.measured_comm_ms is not None:
            p("  communication:   %.3f ms" % args.measured_comm_ms)
        if args.measured_bytes is not None:
            p("  bytes exchanged: %.0f (%.3f MB)" % (args.measured_bytes, args.measured_bytes / 1e6))
        if args.measured_comm_ms and args.measured_bytes is not None:
            p("  effective rate:  %.3f GB/s (bytes / communication time)"
              % (args.measured_bytes / (args.measured_comm_ms * 1e-3) / 1e9))
        if args.measured_comm_ms is not None and args.measured_step_ms:
            p("  communication share of the step: %.1f%%"
              % (100.0 * args.measured_comm_ms / args.measured_step_ms))
    return "\n".join(out) + "\n"


def parse_link(text):
    parts = text.split(":")
    if len(parts) != 3:
        raise argparse.ArgumentTypeError("link must be NAME:GB_PER_S:LATENCY_US, got %r" % text)
    return (parts[0], float(parts[1]), float(parts[2]))


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    def _get_help_string(self, action):  # no "(default: None)" for computed defaults
        if action.default is None:
            return action.help
        return super()._get_help_string(action)


def main(argv=None):
    ap = argparse.ArgumentParser(
        description="Analytical cost model of data-parallel, model-parallel and hybrid (2014) "
                    "training of a Caffe net (BVLC AlexNet by default). Standard library only.",
        formatter_class=HelpFormatter)
    ap.add_argument("--model", default=DEFAULT_MODEL, help="deploy.prototxt with Input layers")
    ap.add_argument("--batch", type=int, default=128, help="per-worker batch b")
    ap.add_argument("--mp-batch", type=int, default=None,
                    help="model-parallel group batch B (default: --batch)")
    ap.add_argument("--workers", default="2,8,64,512", help="comma-separated worker counts W")
    ap.add_argument("--detail-workers", default="2,8",
                    help="worker counts for the per-layer exchange tables ('' for none)")
    ap.add_argument("--gpu-images-per-s", type=float, default=3000.0,
                    help="ASSUMED training throughput of one worker (images/s, fwd+bwd+update)")
    ap.add_argument("--overlap", type=float, default=0.5,
                    help="fraction of data-parallel allreduce time hidden under backward")
    ap.add_argument("--link", action="append", default=None, metavar="NAME:GB_PER_S:LATENCY_US",
                    help="a link kind (repeatable); default NVLink-class:300:2 and "
                         "100Gb-Eth/IB:12.5:10")
    m = ap.add_argument_group("measured", "figures from a CPU benchmark, echoed in a "
                                          "'measured on this machine' section")
    m.add_argument("--measured-step-ms", type=float, default=None, help="step time, ms")
    m.add_argument("--measured-comm-ms", type=float, default=None, help="communication time, ms")
    m.add_argument("--measured-bytes", type=float, default=None, help="bytes exchanged per step")
    m.add_argument("--measured-workers", type=int, default=None, help="worker count of the run")
    m.add_argument("--measured-label", default=None, help="free text describing the run")
    args = ap.parse_args(argv)
    if args.mp_batch is None:
        args.mp_batch = args.batch
    if not args.link:
        args.link = ["NVLink-class:300:2", "100Gb-Eth/IB:12.5:10"]
    if args.gpu_images_per_s <= 0 or args.batch <= 0 or args.mp_batch <= 0:
        ap.error("--gpu-images-per-s, --batch and --mp-batch must be positive")
    if not 0.0 <= args.overlap <= 1.0:
        ap.error("--overlap must be in [0, 1]")
    try:
        for s in args.link:
            parse_link(s)
    except argparse.ArgumentTypeError as e:
        ap.error(str(e))
    if not os.path.exists(args.model):
        ap.error("no net file at %s" % args.model)
    sys.stdout.write(report(args))


if __name__ == "__main__":
    main()
