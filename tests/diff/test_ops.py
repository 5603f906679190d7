#!/usr/bin/python3
"""test_ops.py — every supported ONNX op, through the real loader, fuser, planner and executor.

Each case builds a tiny ONNX graph with onnx.helper: ONE float input [N, C, H, W] (N
symbolic) and ONE output [N, K] (graphs end in Flatten, or GlobalAveragePool + Flatten,
because the engine needs a [batch, classes] output). While the graph is built, every op's
reference value is computed alongside it in float64 with torch.nn.functional / numpy,
written from the ONNX spec, not from the engine's code. The model is saved, checked by
onnx.checker, and run through build/tools/forward at batch 1 and 3 with 1 and 2 threads;
all four runs must match the reference within 1e-4 of max |ref|.

Negative cases (ops or attribute values the engine does not implement, graphs that would
mix the images of a batch, broken wiring) must make forward exit 1 with
`forward: <code>: node '<name>' (<Op>): ...` (graph-level refusals: a message naming the
problem), both in the release build and under ASan/UBSan, which must report nothing.

Run: make build/tools/forward build/asan/tools/forward && \
     BUILD=$PWD/build /usr/bin/python3 tests/diff/test_ops.py [substring-filter]
"""
import math
import os
import re
import sys
import tempfile

import numpy as np
import onnx
import torch
import torch.nn.functional as F
from onnx import TensorProto, helper, numpy_helper

from common import Tally, describe, run, tool

torch.set_grad_enabled(False)
BATCH = 3
RTOL = 1e-4  # of max |ref|, for every op (LRN and Softmax included: float32 exp/pow
#              errors are ~1e-6 relative, far inside it)
INT64_MAX, INT64_MIN = 2**63 - 1, -2**63
ASAN_ENV = dict(os.environ,
                ASAN_OPTIONS="detect_leaks=1:exitcode=86:abort_on_error=0",
                UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1:exitcode=87")
SANITIZER_TEXT = re.compile(r"AddressSanitizer|LeakSanitizer|runtime error:|UndefinedBehavior")
MESSAGE = re.compile(r"^forward: ([a-z_]+): (.+)$", re.M)


def t64(a):
    return torch.from_numpy(np.asarray(a, dtype=np.float64))


# ---- graph builder: ONNX nodes and float64 references side by side ---------------------

class V:
    """A graph value: its ONNX name and its float64 reference for the whole batch."""

    def __init__(self, name, ref):
        self.name, self.ref = name, ref


class G:
    def __init__(self, shape, opset=13, seed=0):
        self.rng = np.random.default_rng(seed)
        self.opset, self.shape = opset, shape
        self.nodes, self.inits, self.count = [], [], 0
        self.x_np = self.rng.standard_normal((BATCH,) + tuple(shape)).astype(np.float32)
        self.x = V("input", t64(self.x_np))
        self.extra_inputs = []

    def fresh(self, prefix):
        self.count += 1
        return f"{prefix}{self.count}"

    def init(self, arr, prefix="c"):
        name = self.fresh(prefix)
        self.inits.append(numpy_helper.from_array(np.asarray(arr), name))
        return name

    def ints(self, vals):
        return self.init(np.asarray(vals, dtype=np.int64), "i")

    def rand(self, *shape, scale=1.0):
        return (self.rng.standard_normal(shape) * scale).astype(np.float32)

    def node(self, op, inputs, ref, extra_outputs=(), name=None, **attrs):
        out = self.fresh(op.lower() + "_")
        ins = [i.name if isinstance(i, V) else i for i in inputs]
        self.nodes.append(helper.make_node(op, ins, [out, *extra_outputs],
                                           name=name or f"n_{out}", **attrs))
        return V(out, ref)

    def model(self, out):
        if out.ref.dim() != 2:
            out = flatten(self, out, 1)
        k = out.ref.shape[1]
        c, h, w = self.shape
        inputs = [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", c, h, w]),
                  *self.extra_inputs]
        graph = helper.make_graph(
            self.nodes, "ops", inputs,
            [helper.make_tensor_value_info(out.name, TensorProto.FLOAT, ["N", k])], self.inits)
        m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", self.opset)])
        return m, out.ref.numpy()


# ---- ops: each adds one node and computes its reference --------------------------------

def same_pads(n, k, s, mode):
    """ONNX auto_pad: output ceil(n/s); SAME_UPPER puts the odd pad at the end."""
    o = -(-n // s)
    total = max(0, (o - 1) * s + k - n)
    small, big = total // 2, total - total // 2
    return (small, big) if mode == "SAME_UPPER" else (big, small)


def conv(g, v, cout, k, s=1, pads=(0, 0, 0, 0), bias=True, auto_pad=None, kshape=True,
         name=None):
    cin, h, w = v.ref.shape[1:]
    wt = g.rand(cout, cin, k, k, scale=1 / math.sqrt(cin * k * k))
    b = g.rand(cout, scale=0.5) if bias else None
    attrs = dict(strides=[s, s])
    if kshape:
        attrs["kernel_shape"] = [k, k]
    if auto_pad:
        attrs["auto_pad"] = auto_pad
        if auto_pad == "VALID":
            pads = (0, 0, 0, 0)
        else:
            (pt, pb), (pl, pr) = same_pads(h, k, s, auto_pad), same_pads(w, k, s, auto_pad)
            pads = (pt, pl, pb, pr)
    elif any(pads):
        attrs["pads"] = list(pads)
    pt, pl, pb, pr = pads
    ref = F.conv2d(F.pad(v.ref, (pl, pr, pt, pb)), t64(wt), None if b is None else t64(b), s)
    ins = [v, g.init(wt, "w")] + ([g.init(b, "b")] if bias else [])
    return g.node("Conv", ins, ref, name=name, **attrs)


def bn(g, v, eps=1e-3):
    c = v.ref.shape[1]
    gamma, beta = g.rand(c, scale=0.5) + 1, g.rand(c, scale=0.3)
    mean, var = g.rand(c, scale=0.3), np.abs(g.rand(c)) + 0.2
    shp = (1, c) + (1,) * (v.ref.dim() - 2)
    ref = ((v.ref - t64(mean).view(shp)) / torch.sqrt(t64(var).view(shp) + eps)
           * t64(gamma).view(shp) + t64(beta).view(shp))
    ins = [v] + [g.init(p, "bn") for p in (gamma, beta, mean, var)]
    return g.node("BatchNormalization", ins, ref, epsilon=eps)


def relu(g, v):
    return g.node("Relu", [v], F.relu(v.ref))


def add(g, a, b, op="Add"):
    ar = a.ref if isinstance(a, V) else t64(a)
    br = b.ref if isinstance(b, V) else t64(b)
    ins = [x if isinstance(x, V) else g.init(x, "k") for x in (a, b)]
    return g.node(op, ins, ar + br if op == "Add" else ar * br)


def mul(g, a, b):
    return add(g, a, b, "Mul")


def flatten(g, v, axis=1):
    shp = v.ref.shape
    ax = axis if axis >= 0 else axis + len(shp)
    outer = int(np.prod(shp[:ax])) if ax else 1
    return g.node("Flatten", [v], v.ref.reshape(outer, -1), axis=axis)


def gap(g, v):
    return g.node("GlobalAveragePool", [v], v.ref.mean((2, 3), keepdim=True))


def pool_size(n, k, s, p0, p1, ceil):
    span = n + p0 + p1 - k
    o = (-(-span // s) if ceil else span // s) + 1
    if ceil and (o - 1) * s >= n + p0:  # the last window must start inside input or pad0
        o -= 1
    return o


def pool_ref_np(x, k, s, pads, ceil, avg, cip):
    """Pooling as PyTorch defines it (ONNX Runtime agrees), with asymmetric pads."""
    x = x.numpy()
    n, c, h, w = x.shape
    pt, pl, pb, pr = pads
    oh, ow = pool_size(h, k, s, pt, pb, ceil), pool_size(w, k, s, pl, pr, ceil)
    out = np.zeros((n, c, oh, ow))
    for i in range(oh):
        y0, y1 = i * s - pt, i * s - pt + k
        ya, yb, ny = max(y0, 0), min(y1, h), min(y1, h + pb) - y0
        for j in range(ow):
            x0, x1 = j * s - pl, j * s - pl + k
            xa, xb, nx = max(x0, 0), min(x1, w), min(x1, w + pr) - x0
            win = x[:, :, ya:yb, xa:xb]
            if avg:
                out[:, :, i, j] = win.sum((2, 3)) / (ny * nx if cip else win.shape[2] * win.shape[3])
            else:
                out[:, :, i, j] = win.max((2, 3))
    return torch.from_numpy(out)


def pool(g, v, op, k, s, pads=(0, 0, 0, 0), ceil=0, cip=None, auto_pad=None):
    h, w = v.ref.shape[2:]
    attrs = dict(kernel_shape=[k, k], strides=[s, s])
    if auto_pad:
        (pt, pb), (pl, pr) = same_pads(h, k, s, auto_pad), same_pads(w, k, s, auto_pad)
        pads = (pt, pl, pb, pr)
        attrs["auto_pad"] = auto_pad
    elif any(pads):
        attrs["pads"] = list(pads)
    if ceil:
        attrs["ceil_mode"] = ceil
    if cip is not None:
        attrs["count_include_pad"] = cip
    avg = op == "AveragePool"
    ref = pool_ref_np(v.ref, k, s, pads, ceil, avg, bool(cip))
    pt, pl, pb, pr = pads
    if pt == pb == pl == pr and pt <= k // 2:  # cross-check the reference with PyTorch
        fn = (lambda t: F.avg_pool2d(t, k, s, pt, bool(ceil), bool(cip))) if avg else \
            (lambda t: F.max_pool2d(t, k, s, pt, 1, bool(ceil)))
        tref = fn(v.ref)
        assert tref.shape == ref.shape and torch.allclose(tref, ref, atol=1e-9), "pool reference"
    return g.node(op, [v], ref, **attrs)


def lrn_ref(x, size, alpha, beta, bias):
    """ONNX LRN: sum of squares over [c - floor((size-1)/2), c + ceil((size-1)/2)]."""
    c = x.shape[1]
    sq = x * x
    out = torch.empty_like(x)
    for ch in range(c):
        lo, hi = max(0, ch - (size - 1) // 2), min(c - 1, ch + math.ceil((size - 1) / 2))
        out[:, ch] = x[:, ch] / (bias + alpha / size * sq[:, lo:hi + 1].sum(1)) ** beta
    return out


def lrn(g, v, size, alpha, beta, bias):
    ref = lrn_ref(v.ref, size, alpha, beta, bias)
    if size % 2:  # PyTorch's window is ONNX's only for odd sizes (it pads size//2 in front)
        tref = F.local_response_norm(v.ref, size, alpha, beta, bias)
        assert torch.allclose(tref, ref, atol=1e-12), "LRN reference"
    return g.node("LRN", [v], ref, size=size, alpha=alpha, beta=beta, bias=bias)


def softmax(g, v, axis=None):
    x = v.ref
    ax = (axis if axis is not None else (1 if g.opset < 13 else -1)) % x.dim()
    if g.opset < 13:  # coerced to 2-D [prod(dims[:axis]), prod(dims[axis:])]
        ref = F.softmax(x.reshape(int(np.prod(x.shape[:ax])), -1), 1).reshape(x.shape)
    else:
        ref = F.softmax(x, ax)
    attrs = {} if axis is None else dict(axis=axis)
    return g.node("Softmax", [v], ref, **attrs)


def gemm(g, v, n_out, trans_b=0, alpha=None, beta=None, c_shape="n"):
    k = v.ref.shape[1]
    bmat = g.rand(n_out, k, scale=1 / math.sqrt(k)) if trans_b else \
        g.rand(k, n_out, scale=1 / math.sqrt(k))
    a_ = 1.0 if alpha is None else alpha
    b_ = 1.0 if beta is None else beta
    ref = a_ * (v.ref @ (t64(bmat).T if trans_b else t64(bmat)))
    ins = [v, g.init(bmat, "B")]
    if c_shape:
        cval = {"n": lambda: g.rand(n_out), "1n": lambda: g.rand(1, n_out),
                "scalar": lambda: np.asarray(g.rand(1)[0]), "1": lambda: g.rand(1)}[c_shape]()
        ref = ref + b_ * t64(cval)
        ins.append(g.init(cval, "C"))
    attrs = {k2: v2 for k2, v2 in (("alpha", alpha), ("beta", beta)) if v2 is not None}
    if trans_b:
        attrs["transB"] = 1
    return g.node("Gemm", ins, ref, **attrs)


def matmul(g, v, n_out):
    k = v.ref.shape[-1]
    bmat = g.rand(k, n_out, scale=1 / math.sqrt(k))
    return g.node("MatMul", [v, g.init(bmat, "M")], v.ref @ t64(bmat))


def concat(g, vs, axis):
    return g.node("Concat", vs, torch.cat([v.ref for v in vs], axis), axis=axis)


def reshape(g, v, shape):
    tgt = [v.ref.shape[i] if d == 0 else d for i, d in enumerate(shape)]
    return g.node("Reshape", [v, g.ints(shape)], v.ref.reshape(tgt))


def gather(g, v, idx, axis):
    ind = np.asarray(idx, dtype=np.int64)
    ref = torch.from_numpy(np.take(v.ref.numpy(), ind, axis=axis))
    return g.node("Gather", [v, g.init(ind, "idx")], ref, axis=axis)


def unsqueeze(g, v, axes):
    ref = v.ref
    nd = ref.dim() + len(axes)
    for a in sorted(a % nd for a in axes):
        ref = ref.unsqueeze(a)
    if g.opset < 13:
        return g.node("Unsqueeze", [v], ref, axes=list(axes))
    return g.node("Unsqueeze", [v, g.ints(axes)], ref)


def np_slice(x, starts, ends, axes, steps):
    sl = [slice(None)] * x.ndim
    for st, en, ax, sp in zip(starts, ends, axes, steps):
        sl[ax] = slice(st, en, sp)
    return np.ascontiguousarray(x[tuple(sl)])


def slice_(g, v, starts, ends, axes=None, steps=None, form="inputs"):
    axes_r = axes if axes is not None else list(range(len(starts)))
    steps_r = steps if steps is not None else [1] * len(starts)
    # Python slicing clamps like ONNX Slice for every case used here (in-range starts).
    ref = torch.from_numpy(np_slice(v.ref.numpy(), starts, ends, axes_r, steps_r))
    if form == "attrs":
        attrs = dict(starts=starts, ends=ends)
        if axes is not None:
            attrs["axes"] = axes
        return g.node("Slice", [v], ref, **attrs)
    ins = [v, g.ints(starts), g.ints(ends)]
    if axes is not None or steps is not None:
        ins.append(g.ints(axes_r) if axes is not None else "")
    if steps is not None:
        ins.append(g.ints(steps))
    return g.node("Slice", ins, ref)


def const_node(g, ref, **attrs):
    """A Constant node; ref is its value (float64 tensor or int list)."""
    return g.node("Constant", [], ref, **attrs)


# ---- positive cases ---------------------------------------------------------------------

CASES = []  # (name, shape, opset, fn(g) -> V, options)


def case(name, shape=(3, 11, 13), opset=13, shape_check=True, known=None):
    """shape_check=False: skip ONNX shape inference in the checker (see the case).
    known: regex of the refusal message of a known engine limitation; if every run is
    refused with it the case is reported as skipped, so it turns green once fixed."""
    def reg(fn):
        CASES.append((name, shape, opset, fn, dict(shape_check=shape_check, known=known)))
        return fn
    return reg


def conv_cases():
    specs = [  # (k, stride, pads t l b r, bias, shape, cout)
        (1, 1, (0, 0, 0, 0), True, (3, 11, 13), 5),     # direct 1x1 path
        (1, 2, (0, 0, 0, 0), False, (3, 11, 13), 6),
        (1, 3, (0, 0, 0, 0), True, (3, 13, 10), 4),
        (3, 1, (1, 1, 1, 1), True, (3, 11, 13), 7),
        (3, 2, (0, 1, 2, 1), True, (3, 12, 9), 5),
        (3, 3, (2, 0, 1, 2), False, (3, 17, 14), 6),
        (5, 1, (2, 2, 2, 2), False, (3, 9, 11), 5),
        (5, 2, (1, 3, 4, 0), True, (3, 15, 13), 9),
        (5, 3, (2, 1, 0, 2), False, (3, 16, 19), 4),
        (7, 1, (3, 3, 3, 3), True, (3, 13, 9), 5),
        (7, 2, (3, 3, 3, 3), True, (3, 23, 19), 16),
        (7, 3, (0, 6, 5, 1), True, (3, 20, 21), 3),
    ]
    for k, s, pads, bias, shape, cout in specs:
        name = f"Conv {k}x{k} s{s} pads {pads} {'bias' if bias else 'no bias'} on {shape}"
        case(name, shape)(lambda g, k=k, s=s, pads=pads, bias=bias, cout=cout:
                          conv(g, g.x, cout, k, s, pads, bias))
    for mode, k, s, shape in [("VALID", 3, 2, (3, 12, 13)), ("VALID", 5, 1, (3, 9, 10)),
                              ("SAME_UPPER", 3, 2, (3, 12, 13)), ("SAME_LOWER", 3, 2, (3, 12, 13)),
                              ("SAME_UPPER", 5, 3, (3, 14, 17)), ("SAME_LOWER", 5, 3, (3, 14, 17)),
                              ("SAME_UPPER", 7, 1, (3, 9, 8)), ("SAME_LOWER", 1, 3, (3, 10, 11)),
                              ("SAME_LOWER", 4, 2, (3, 11, 10))]:
        case(f"Conv {k}x{k} s{s} auto_pad {mode} on {shape}", shape)(
            lambda g, mode=mode, k=k, s=s: conv(g, g.x, 6, k, s, auto_pad=mode, kshape=(k != 5)))


conv_cases()


@case("Conv 3->40 small map (row split with 2 threads), then 1x1 40->24", (3, 9, 7))
def _(g):
    return conv(g, relu(g, conv(g, g.x, 40, 3, 1, (1, 1, 1, 1))), 24, 1)


@case("Conv 27->8 7x7 on 45x41: several column blocks, residual and Relu fused", (3, 45, 41))
def _(g):
    r = conv(g, g.x, 8, 1)
    c = conv(g, relu(g, conv(g, g.x, 27, 3, 1, (1, 1, 1, 1))), 8, 7, 1, (3, 3, 3, 3))
    return gap(g, relu(g, add(g, c, r)))


@case("Conv -> BatchNormalization (folded)")
def _(g):
    return bn(g, conv(g, g.x, 7, 3, 2, (1, 1, 1, 1)))


@case("Conv without bias -> BatchNormalization (folded) -> Relu")
def _(g):
    return relu(g, bn(g, conv(g, g.x, 7, 3, 1, (1, 0, 1, 2), bias=False)))


@case("Conv -> BN where the conv output has a second reader (no fold): Add(BN(c), c)")
def _(g):
    c = conv(g, g.x, 6, 3, 1, (1, 1, 1, 1))
    return add(g, bn(g, c), c)


@case("Conv -> BN, conv output also read by a later Relu (no fold)")
def _(g):
    c = conv(g, g.x, 5, 3, 2, (1, 1, 1, 1))
    b = bn(g, c)
    return concat(g, [b, relu(g, c)], 1)


@case("standalone BatchNormalization after MaxPool and after the input")
def _(g):
    p = bn(g, pool(g, g.x, "MaxPool", 3, 2, (1, 1, 1, 1)))
    q = bn(g, pool(g, bn(g, g.x), "AveragePool", 3, 2, (1, 1, 1, 1)))
    return add(g, p, q)


@case("standalone BatchNormalization on a 2-D tensor (after Flatten)")
def _(g):
    return bn(g, flatten(g, pool(g, g.x, "MaxPool", 3, 3)))


@case("residual Add(conv, earlier) -> Relu, and Add(earlier, conv)")
def _(g):
    a = relu(g, conv(g, g.x, 6, 3, 1, (1, 1, 1, 1)))
    y = relu(g, add(g, bn(g, conv(g, a, 6, 3, 1, (1, 1, 1, 1))), a))
    return relu(g, add(g, y, conv(g, y, 6, 1)))


@case("Add(conv, x) where x is produced AFTER the conv (must not fuse), both orders")
def _(g):
    a = conv(g, g.x, 5, 3, 1, (1, 1, 1, 1))
    c = conv(g, a, 5, 3, 1, (1, 1, 1, 1))
    later = relu(g, a)
    s1 = add(g, c, later)
    c2 = conv(g, s1, 5, 1)
    later2 = mul(g, s1, np.float32(0.5))
    return relu(g, add(g, later2, c2))


@case("Add(conv1, conv2) of two sibling convs, and Add(conv, conv input)")
def _(g):
    a = conv(g, g.x, 6, 3, 1, (1, 1, 1, 1))
    b = conv(g, g.x, 6, 5, 1, (2, 2, 2, 2))
    s = relu(g, add(g, a, b))
    return add(g, conv(g, s, 6, 3, 1, (1, 1, 1, 1)), s)


@case("Relu(conv) where the conv output has a second reader (no fusion)")
def _(g):
    c = conv(g, g.x, 4, 3, 2, (1, 1, 1, 1))
    return add(g, relu(g, c), c)


@case("Conv output is the residual of two different Adds")
def _(g):
    a = conv(g, g.x, 4, 3, 1, (1, 1, 1, 1))
    b = conv(g, a, 4, 3, 1, (1, 1, 1, 1))
    c = conv(g, a, 4, 1)
    return concat(g, [relu(g, add(g, b, a)), add(g, a, c)], 1)


@case("two Convs sharing one weight initializer, only one folds a BN")
def _(g):
    a = conv(g, g.x, 5, 3, 1, (1, 1, 1, 1))
    b = g.node("Conv", [g.x, *g.nodes[-1].input[1:]], a.ref, kernel_shape=[3, 3],
               pads=[1, 1, 1, 1])
    return concat(g, [bn(g, a), b], 1)


@case("Add(conv, earlier runtime [N,C,1,1]) is a broadcast, not a residual")
def _(g):
    s = gap(g, conv(g, g.x, 6, 1))
    return relu(g, add(g, conv(g, g.x, 6, 3, 2, (1, 1, 1, 1)), s))


@case("Conv 7x7 as large as the input height (1-row output), Gemm to a single class",
      (3, 7, 9))
def _(g):
    return gemm(g, flatten(g, conv(g, g.x, 5, 7)), 1, 1)


for ceil in (0, 1):
    case(f"MaxPool 3x3 s2 ceil_mode {ceil} on 10x12", (3, 10, 12))(
        lambda g, ceil=ceil: pool(g, g.x, "MaxPool", 3, 2, ceil=ceil))
    case(f"MaxPool 2x2 s2 ceil_mode {ceil} on 9x11 (last window off the edge)", (3, 9, 11))(
        lambda g, ceil=ceil: pool(g, g.x, "MaxPool", 2, 2, ceil=ceil))
    case(f"MaxPool 3x3 s2 pads 1 ceil_mode {ceil} on 10x11", (3, 10, 11))(
        lambda g, ceil=ceil: pool(g, g.x, "MaxPool", 3, 2, (1, 1, 1, 1), ceil))
    case(f"MaxPool 3x3 s2 asymmetric pads ceil_mode {ceil} on 10x9", (3, 10, 9))(
        lambda g, ceil=ceil: pool(g, g.x, "MaxPool", 3, 2, (0, 1, 1, 0), ceil))
    for cip in (0, 1):
        case(f"AveragePool 3x3 s2 pads 1 ceil_mode {ceil} count_include_pad {cip} on 10x11",
             (3, 10, 11))(lambda g, ceil=ceil, cip=cip:
                          pool(g, g.x, "AveragePool", 3, 2, (1, 1, 1, 1), ceil, cip))
        case(f"AveragePool 5x5 s3 asymmetric pads ceil_mode {ceil} count_include_pad {cip}",
             (3, 14, 12))(lambda g, ceil=ceil, cip=cip:
                          pool(g, g.x, "AveragePool", 5, 3, (2, 0, 1, 2), ceil, cip))
    case(f"AveragePool 2x2 s3 ceil_mode {ceil} on 11x8", (3, 11, 8))(
        lambda g, ceil=ceil: pool(g, g.x, "AveragePool", 2, 3, ceil=ceil, cip=1))


# In ceil mode a window that would start inside the end padding is dropped, as PyTorch
# and ONNX Runtime do; onnx 1.12's shape inference still counts it, hence no shape check.
for op in ("MaxPool", "AveragePool"):
    case(f"{op} ceil_mode 1: a last window starting in the end padding is dropped",
         (3, 10, 9), shape_check=False)(
        lambda g, op=op: pool(g, g.x, op, 3, 2, (0, 1, 2, 0), 1, None if op == "MaxPool" else 1))


@case("MaxPool with padding on all-negative data (padding is -inf, not 0)", (3, 9, 10))
def _(g):
    neg = add(g, mul(g, relu(g, g.x), np.float32(-1)), np.float32(-5))
    return pool(g, neg, "MaxPool", 3, 2, (1, 1, 1, 1), 1)


@case("AveragePool / MaxPool auto_pad SAME_UPPER and SAME_LOWER", (3, 12, 11))
def _(g):
    a = pool(g, g.x, "AveragePool", 3, 2, auto_pad="SAME_UPPER", cip=0)
    b = pool(g, g.x, "MaxPool", 3, 2, auto_pad="SAME_LOWER")
    return concat(g, [a, b], 1)


@case("GlobalAveragePool -> Flatten", (3, 17, 15))
def _(g):
    return flatten(g, gap(g, conv(g, g.x, 11, 3, 1, (1, 1, 1, 1))))


@case("Add/Mul of two runtime tensors of the same shape")
def _(g):
    return mul(g, add(g, g.x, relu(g, g.x)), conv(g, g.x, 3, 1))


@case("Add/Mul with [1,C,1,1], scalar, [C,1,1], [1] and [W] constants")
def _(g):
    c, h, w = g.shape
    y = add(g, g.x, g.rand(1, c, 1, 1))
    y = mul(g, y, g.rand(1, c, 1, 1))
    y = add(g, y, np.float32(0.25))
    y = mul(g, np.float32(-1.5), y)
    y = add(g, g.rand(c, 1, 1), y)
    y = mul(g, y, g.rand(1))
    y = add(g, y, g.rand(w))
    return mul(g, y, g.rand(1, 1, h, w))


@case("Mul/Add of a runtime [N,C,H,W] and a runtime [N,C,1,1] (both orders)")
def _(g):
    s = gap(g, g.x)
    return add(g, mul(g, g.x, s), mul(g, s, relu(g, g.x)))


@case("Add of runtime [N,C] and [1,C] constant after Flatten; Mul by [C] constant")
def _(g):
    f = flatten(g, gap(g, conv(g, g.x, 9, 3, 2)))
    return mul(g, add(g, f, g.rand(1, 9)), g.rand(9))


@case("Concat axis 1 of 3 inputs with different channel counts")
def _(g):
    return concat(g, [g.x, conv(g, g.x, 5, 3, 1, (1, 1, 1, 1)), relu(g, g.x)], 1)


@case("Concat axis -1 and axis 2 of 3+ inputs (Slices of different widths/heights)")
def _(g):
    a = concat(g, [slice_(g, g.x, [0], [5], [3]), g.x, slice_(g, g.x, [2], [9], [-1])], -1)
    b = concat(g, [a, a, slice_(g, a, [1], [4], [2]), a], 2)
    return b


@case("Concat of the same value three times and of the graph input")
def _(g):
    return concat(g, [g.x, g.x, g.x], 1)


@case("Flatten axis 1 of the graph input alone (output aliases the input)")
def _(g):
    return flatten(g, g.x, 1)


@case("Flatten axis 2 of a 1-channel map, axis -1 of a [N,1,1,W] map")
def _(g):
    a = flatten(g, conv(g, g.x, 1, 3, 1, (1, 1, 1, 1)), 2)
    b = flatten(g, pool(g, conv(g, g.x, 1, 1), "MaxPool", 11, 11), -1)
    return concat(g, [a, b], 1)


@case("Reshape with 0 and -1: [0,-1], [0,0,-1], [-1,K], [0,C,H*W]")
def _(g):
    c, h, w = g.shape
    a = reshape(g, g.x, [0, -1])
    b = reshape(g, reshape(g, g.x, [0, 0, -1]), [0, -1])
    d = reshape(g, g.x, [-1, c * h * w])
    e = reshape(g, reshape(g, g.x, [0, c, h * w]), [0, c * h * w])
    return add(g, add(g, a, b), add(g, d, e))


@case("Reshape [0,-1] -> Reshape back [0,C,H,W] -> Conv")
def _(g):
    c, h, w = g.shape
    return conv(g, reshape(g, reshape(g, g.x, [0, -1]), [0, c, h, w]), 4, 3, 1, (1, 1, 1, 1))


for tb in (0, 1):
    for c_shape in ("n", "1n", "scalar", "1", None):
        case(f"Gemm transB {tb} C {c_shape}")(
            lambda g, tb=tb, c_shape=c_shape:
            gemm(g, flatten(g, gap(g, conv(g, g.x, 13, 3, 2))), 7, tb, c_shape=c_shape))
    case(f"Gemm transB {tb} alpha 0.7 beta 1.3, on a full Flatten")(
        lambda g, tb=tb: gemm(g, flatten(g, g.x), 10, tb, 0.7, 1.3))
    case(f"Gemm transB {tb} alpha -2 beta 0 (C ignored)")(
        lambda g, tb=tb: gemm(g, flatten(g, g.x), 6, tb, -2.0, 0.0))


@case("MatMul [N,F] x constant [F,K]")
def _(g):
    return matmul(g, flatten(g, g.x), 9)


@case("MatMul [N,C,H,W] x constant [W,K] (batched rows)")
def _(g):
    return matmul(g, g.x, 5)


for axis in (None, 1, 2, 3, -1, -2):
    case(f"Softmax opset 11 axis {axis} on 4-D (coerced to 2-D)", opset=11)(
        lambda g, axis=axis: softmax(g, conv(g, g.x, 5, 3, 1, (1, 1, 1, 1)), axis))
    case(f"Softmax opset 13 axis {axis} on 4-D", opset=13)(
        lambda g, axis=axis: softmax(g, conv(g, g.x, 5, 3, 1, (1, 1, 1, 1)), axis))
for op in (11, 13):
    case(f"Softmax opset {op} default axis on 2-D [N,K]", opset=op)(
        lambda g: softmax(g, gemm(g, flatten(g, g.x), 10, 1)))
    case(f"Softmax opset {op} on a 3-D tensor axis 1", opset=op)(
        lambda g: softmax(g, reshape(g, g.x, [0, 3, -1]), 1))

for size, alpha, beta, bias in ((3, 0.3, 0.75, 1.0), (5, 1.0, 0.6, 2.0), (5, 1e-4, 0.75, 1.0),
                                (3, 0.5, 0.5, 1.5), (5, 0.8, 1.0, 1.0), (4, 0.7, 0.75, 1.0),
                                (1, 0.5, 0.75, 1.0), (15, 2.0, 0.75, 1.0)):
    case(f"LRN size {size} alpha {alpha} beta {beta} bias {bias}")(
        lambda g, size=size, alpha=alpha, beta=beta, bias=bias:
        lrn(g, conv(g, g.x, 9, 3, 1, (1, 1, 1, 1)), size, alpha, beta, bias))


@case("Dropout opset 11 (ratio attribute, mask output unused) -> Identity", opset=11)
def _(g):
    c = conv(g, g.x, 4, 3)
    d = g.node("Dropout", [c], c.ref, extra_outputs=["mask_unused"], ratio=0.3)
    return g.node("Identity", [d], c.ref)


@case("Dropout opset 13 (ratio input) -> Identity -> Dropout (no ratio)", opset=13)
def _(g):
    c = conv(g, g.x, 4, 3)
    d = g.node("Dropout", [c, g.init(np.float32(0.5), "ratio")], c.ref)
    i = g.node("Identity", [d], c.ref)
    return g.node("Dropout", [i], c.ref)


@case("Dropout opset 13 with training_mode = false (bool initializer)", opset=13)
def _(g):
    c = conv(g, g.x, 4, 3)
    tm = g.init(np.array(False), "tm")
    return g.node("Dropout", [c, g.init(np.float32(0.2), "ratio"), tm], c.ref)


@case("Constant nodes: value tensor [1,C,1,1], value_float, value_ints (Reshape shape)")
def _(g):
    c = g.shape[0]
    arr = g.rand(1, c, 1, 1)
    k1 = const_node(g, t64(arr), value=numpy_helper.from_array(arr))
    k2 = const_node(g, t64(np.float32(0.75)), value_float=0.75)
    k3 = const_node(g, None, value_ints=[0, -1])
    y = mul(g, g.x, k1)
    y = add(g, k2, y)
    return g.node("Reshape", [y, k3], y.ref.reshape(BATCH, -1))


@case("Constant int64 tensor node as Gather indices and Slice starts", opset=13)
def _(g):
    idx = np.array([2, 0], dtype=np.int64)
    ki = const_node(g, None, value=numpy_helper.from_array(idx))
    gth = g.node("Gather", [g.x, ki], g.x.ref[:, [2, 0]], axis=1)
    st = const_node(g, None, value=numpy_helper.from_array(np.array([1], dtype=np.int64)))
    en = const_node(g, None, value=numpy_helper.from_array(np.array([7], dtype=np.int64)))
    return g.node("Slice", [gth, st, en, g.ints([2])], gth.ref[:, :, 1:7])


@case("Gather axis 1 with a scalar index (-> [N,H,W]) and a negative scalar")
def _(g):
    a = gather(g, g.x, 1, 1)
    b = gather(g, g.x, -1, 1)
    return concat(g, [flatten(g, a), flatten(g, b)], 1)


@case("Gather axis 1 with a 1-D index list (repeats, negative)")
def _(g):
    return gather(g, conv(g, g.x, 7, 1), [3, 0, -1, 3, 6], 1)


def channel_affine(g, order=(0, 1, 2), scalar_first=False, shared=None, const_shape=()):
    """torchvision's transform_input: per channel c, Gather(c) -> Unsqueeze(1) -> Mul(s_c)
    -> Add(b_c), then a Concat on axis 1 (the engine folds it into one scale-and-shift
    node when it is exactly that). order: the Gather indices; scalar_first: constants as
    the first operand; shared: a channel whose Mul output also feeds the graph output;
    const_shape: the constants' shape."""
    outs, extra = [], None
    for j, c in enumerate(order):
        s = np.full(const_shape, 0.229 / 0.5 + 0.1 * c, dtype=np.float32)
        b = np.full(const_shape, (0.485 - 0.5) / 0.5 - 0.05 * c, dtype=np.float32)
        u = unsqueeze(g, gather(g, g.x, c, 1), [1])
        m = mul(g, s, u) if scalar_first else mul(g, u, s)
        if shared == j:
            extra = m
        outs.append(add(g, b, m) if scalar_first else add(g, m, b))
    y = concat(g, outs, 1)
    return y if extra is None else concat(g, [flatten(g, y), flatten(g, extra)], 1)


@case("Per-channel Gather/Unsqueeze/Mul/Add/Concat (GoogLeNet's transform_input), folded")
def _(g):
    return conv(g, channel_affine(g), 5, 3)


@case("The same with the constants first, opset 11 (Unsqueeze axes attribute)", opset=11)
def _(g):
    return conv(g, channel_affine(g, scalar_first=True), 5, 3)


@case("The same pattern with the channels permuted (not folded)")
def _(g):
    return conv(g, channel_affine(g, order=(2, 0, 1)), 5, 3)


@case("The same pattern with a Mul output read elsewhere (not folded)")
def _(g):
    return channel_affine(g, shared=1)


@case("The same pattern with [1,1,1,1] constants (folded), and with per-pixel ones (not)")
def _(g):
    a = channel_affine(g, const_shape=(1, 1, 1, 1))
    b = channel_affine(g, const_shape=(1, 1, 11, 13))
    return concat(g, [flatten(g, a), flatten(g, b)], 1)


@case("Gather axis 2 / axis -1 with lists and a 2-D index")
def _(g):
    a = gather(g, g.x, [10, 0, 4], 2)
    b = gather(g, a, [[1, 2], [12, 0]], -1)
    return b


@case("Unsqueeze opset 11 (axes attribute) [N,K] -> [N,K,1,1] -> Conv 1x1", opset=11)
def _(g):
    f = flatten(g, gap(g, g.x))
    return conv(g, unsqueeze(g, f, [2, 3]), 5, 1)


@case("Unsqueeze opset 13 (axes input) with negative axes", opset=13)
def _(g):
    f = flatten(g, gap(g, conv(g, g.x, 6, 3)))
    return conv(g, unsqueeze(g, f, [-1, 2]), 4, 1)


@case("Unsqueeze opset 13 in the middle of a 4-D tensor", opset=13)
def _(g):
    return unsqueeze(g, g.x, [2])


@case("Slice opset 11 (inputs) with positive/negative steps and INT64 bounds", opset=11)
def _(g):
    a = slice_(g, g.x, [2, 8, -2], [INT64_MIN, 1, -12], [1, 2, 3], [-1, -2, -3])
    b = slice_(g, g.x, [0, 1], [INT64_MAX, 11], [2, 3], [3, 2])
    c = slice_(g, g.x, [-1], [INT64_MIN], [-1], [-1])
    return concat(g, [flatten(g, a), flatten(g, b), flatten(g, c)], 1)


@case("Slice negative step with start < -dim: the spec clamps start to 0 (numpy: empty)")
def _(g):
    # ONNX Slice: starts are clamped into [0, dim-1] for negative steps, so [-100:MIN:-1]
    # on an axis of 11 keeps element 0 (Python slicing would give an empty result).
    s = g.node("Slice", [g.x, g.ints([-100]), g.ints([INT64_MIN]), g.ints([2]), g.ints([-1])],
               g.x.ref[:, :, 0:1])
    return concat(g, [s, slice_(g, g.x, [4], [INT64_MIN], [2], [-1])], 2)


@case("Slice opset 13 with no axes/steps inputs (leading axes incl. batch 0:INT64_MAX)")
def _(g):
    return slice_(g, g.x, [0, 1, 2], [INT64_MAX, 3, -1])


@case("Slice opset 10 with steps and starts/ends out of range", opset=10)
def _(g):
    return slice_(g, g.x, [-100, 3], [100, 100], [3, 2], [2, 3])


@case("Slice opset 9 (attributes starts/ends/axes)", opset=9)
def _(g):
    a = slice_(g, g.x, [1, 2], [3, -1], [1, 2], form="attrs")
    b = slice_(g, g.x, [0, 0, 1, 1], [INT64_MAX, 3, 10, 12], form="attrs")
    return concat(g, [flatten(g, a), flatten(g, b)], 1)


def representative(g):
    """A small ResNet/GoogLeNet-like graph in the forms the given opset requires."""
    a = relu(g, bn(g, conv(g, g.x, 16, 3, 2, (1, 1, 1, 1), bias=False)))
    p = pool(g, a, "MaxPool", 3, 2, (1, 1, 1, 1), ceil=int(g.opset >= 10))
    r = relu(g, add(g, bn(g, conv(g, p, 16, 3, 1, (1, 1, 1, 1), bias=False)), p))
    b1 = conv(g, r, 8, 1)
    b2 = relu(g, conv(g, r, 8, 3, 1, (1, 1, 1, 1)))
    b3 = conv(g, pool(g, r, "AveragePool", 3, 1, (1, 1, 1, 1), cip=0), 4, 1)
    cat = lrn(g, concat(g, [b1, b2, b3], 1), 5, 1e-2, 0.75, 1.0)
    sl = slice_(g, cat, [0], [16], [1], form="attrs" if g.opset < 10 else "inputs")
    u = unsqueeze(g, flatten(g, gap(g, sl)), [2, 3])
    f = flatten(g, u)
    if g.opset >= 12:
        f = g.node("Dropout", [f, g.init(np.float32(0.2), "ratio")], f.ref)
    else:
        f = g.node("Dropout", [f], f.ref, ratio=0.2)
    return softmax(g, gemm(g, f, 10, 1), 1)


for op in range(9, 18):
    case(f"representative graph at opset {op}", (3, 33, 29), op)(representative)

# ---- negative cases ---------------------------------------------------------------------

NEG = []  # (name, fn(tmpdir) -> ModelProto, words: groups of which one word each must appear)


def neg(name, words=("bad", None)):
    def reg(fn):
        NEG.append((name, fn, words))
        return fn
    return reg


def bad_node(g, op, inputs, **attrs):
    g.nodes.append(helper.make_node(op, [i.name if isinstance(i, V) else i for i in inputs],
                                    ["bad_out"], name="bad", **attrs))
    return V("bad_out", None)


def neg_model(g, out, k):
    c, h, w = g.shape
    inputs = [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", c, h, w]),
              *g.extra_inputs]
    graph = helper.make_graph(g.nodes, "neg", inputs,
                              [helper.make_tensor_value_info(out, TensorProto.FLOAT, ["N", k])],
                              g.inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", g.opset)])


def neg_simple(op, k, build_inputs, post=None, **attrs):
    """A graph whose node 'bad' is the one to refuse; ends in Flatten when post is set."""
    def fn():
        g = G((3, 8, 8))
        out = bad_node(g, op, build_inputs(g), **attrs)
        if post:
            out = post(g, out)
        return neg_model(g, out.name, k)
    return fn


flat = lambda g, v: g.node("Flatten", [v], None)  # noqa: E731
neg("Conv group=2", ("bad", "Conv"))(neg_simple(
    "Conv", 256, lambda g: [g.x, g.init(g.rand(4, 3, 3, 3))], flat,
    kernel_shape=[3, 3], pads=[1, 1, 1, 1], group=2))
neg("Conv dilations=2", ("bad", "Conv"))(neg_simple(
    "Conv", 64, lambda g: [g.x, g.init(g.rand(4, 3, 3, 3))], flat, dilations=[2, 2]))


@neg("MaxPool with the Indices output used", ("bad", "MaxPool"))
def _():
    g = G((3, 8, 8))
    g.nodes.append(helper.make_node("MaxPool", ["input"], ["mp", "mp_idx"], name="bad",
                                    kernel_shape=[2, 2], strides=[2, 2]))
    g.nodes.append(helper.make_node("Cast", ["mp_idx"], ["idx_f"], name="cast", to=1))
    g.nodes.append(helper.make_node("Add", ["mp", "idx_f"], ["s"], name="use_idx"))
    return neg_model(g, flat(g, V("s", None)).name, 48)


neg("unknown attribute on Relu", ("bad", "Relu"))(neg_simple(
    "Relu", 192, lambda g: [g.x], flat, alpha=0.1))
neg("Concat along axis 0", ("bad", "Concat"))(neg_simple(
    "Concat", 192, lambda g: [g.x, g.x], flat, axis=0))
neg("Reshape merging batch into features ([-1] alone)", ("bad", "Reshape"))(neg_simple(
    "Reshape", 192, lambda g: [g.x, g.ints([-1])],
    lambda g, v: g.node("Unsqueeze", [v, g.ints([0])], None)))
neg("Gather index out of range", ("bad", "Gather"))(neg_simple(
    "Gather", 192, lambda g: [g.x, g.init(np.array([0, 3], dtype=np.int64))], flat, axis=1))
neg("Gather negative index out of range", ("bad", "Gather"))(neg_simple(
    "Gather", 192, lambda g: [g.x, g.init(np.array(-9, dtype=np.int64))], flat, axis=2))
neg("Softmax on axis 0", ("bad", "Softmax"))(neg_simple(
    "Softmax", 192, lambda g: [g.x], flat, axis=0))
neg("Softmax opset 13 on axis -4", ("bad", "Softmax"))(neg_simple(
    "Softmax", 192, lambda g: [g.x], flat, axis=-4))
neg("Gemm with transA=1", ("bad", "Gemm"))(neg_simple(
    "Gemm", 5, lambda g: [flat(g, g.x), g.init(g.rand(192, 5))], None, transA=1))
neg("node reading an undefined value", ("bad", "Relu"))(neg_simple(
    "Relu", 192, lambda g: ["no_such_value"], flat))


@neg("node defining a value twice", ("second", "Relu"))
def _():
    g = G((3, 8, 8))
    g.nodes.append(helper.make_node("Relu", ["input"], ["r"], name="first"))
    g.nodes.append(helper.make_node("Relu", ["input"], ["r"], name="second"))
    g.nodes.append(helper.make_node("Flatten", ["r"], ["f"], name="fl"))
    return neg_model(g, "f", 192)


@neg("node output redefining the graph input", ("bad", "Relu"))
def _():
    g = G((3, 8, 8))
    g.nodes.append(helper.make_node("Relu", ["input"], ["input"], name="bad"))
    g.nodes.append(helper.make_node("Flatten", ["input"], ["f"], name="fl"))
    return neg_model(g, "f", 192)


@neg("opset 6", ("opset",))
def _():
    g = G((3, 8, 8), opset=6)
    return neg_model(g, flat(g, g.x).name, 192)


@neg("an input with 1 channel", ("input", "channel"))
def _():
    g = G((1, 8, 8))
    return neg_model(g, flat(g, g.x).name, 64)


@neg("a graph with two inputs", ("input",))
def _():
    g = G((3, 8, 8))
    g.extra_inputs.append(helper.make_tensor_value_info("input2", TensorProto.FLOAT,
                                                        ["N", 3, 8, 8]))
    s = g.node("Add", [g.x, "input2"], None)
    return neg_model(g, flat(g, s).name, 192)


neg("Flatten axis 0 (would merge the batch: [1, N*K])", ("bad", "Flatten"))(neg_simple(
    "Flatten", 192, lambda g: [g.x], lambda g, v: g.node("Softmax", [v], None, axis=1), axis=0))
neg("Flatten axis 2 of a 3-channel map ([N*C, H*W])", ("bad", "Flatten"))(neg_simple(
    "Flatten", 64, lambda g: [g.x], None, axis=2))
neg("Unsqueeze at axis 0", ("bad", "Unsqueeze"))(neg_simple(
    "Unsqueeze", 192, lambda g: [g.x, g.ints([0])], flat))
neg("Slice of the batch axis [1:2]", ("bad", "Slice"))(neg_simple(
    "Slice", 192, lambda g: [g.x, g.ints([1]), g.ints([2]), g.ints([0])], flat))
neg("Slice of the batch axis [0:1] (keeps only image 0 when N > 1)", ("bad", "Slice"))(
    neg_simple("Slice", 192, lambda g: [g.x, g.ints([0]), g.ints([1]), g.ints([0])], flat))


@neg("Slice opset 9 of the batch axis [0:1] (attributes, no axes)", ("bad", "Slice"))
def _():
    g = G((3, 8, 8), opset=9)
    out = flat(g, bad_node(g, "Slice", [g.x], starts=[0, 0], ends=[1, 2]))
    return neg_model(g, out.name, 128)


neg("Add of runtime [N,C,H,W] and runtime [N,W] (rank broadcast mixes images)",
    ("bad", "Add"))(neg_simple(
        "Add", 192, lambda g: [g.x, gather(g, gather(g, g.x, 0, 1), 0, 1)], flat))
neg("Mul of runtime [N,W] and runtime [N,C,H,W] (rank broadcast mixes images)",
    ("bad", "Mul"))(neg_simple(
        "Mul", 192, lambda g: [gather(g, gather(g, g.x, 0, 1), 0, 1), g.x], flat))
neg("Gemm with C of shape [K,N]", ("bad", "Gemm"))(neg_simple(
    "Gemm", 5, lambda g: [flat(g, g.x), g.init(g.rand(192, 5)), g.init(g.rand(192, 5))], None))
neg("Conv weight with the wrong input channels", ("bad", "Conv"))(neg_simple(
    "Conv", 64, lambda g: [g.x, g.init(g.rand(4, 2, 3, 3))], flat))
neg("MaxPool without kernel_shape", ("bad", "MaxPool"))(neg_simple(
    "MaxPool", 192, lambda g: [g.x], flat))
neg("unsupported op", ("bad", "Tanh"))(neg_simple("Tanh", 192, lambda g: [g.x], flat))


# ---- running ----------------------------------------------------------------------------

def run_forward(path, x, threads, asan=False, env=None):
    with tempfile.TemporaryDirectory() as d:
        fin, fout = os.path.join(d, "in.f32"), os.path.join(d, "out.f32")
        np.ascontiguousarray(x, dtype=np.float32).tofile(fin)
        p = run([tool("forward", asan), path, fin, str(x.shape[0]), fout, "--threads",
                 str(threads)], env=env)
        y = np.fromfile(fout, dtype=np.float32) if p.returncode == 0 and \
            os.path.exists(fout) else None
    return y, p


def check_case(t, d, i, name, shape, opset, fn, opts, asan):
    g = G(shape, opset, seed=1000 + i)
    try:
        model, ref = g.model(fn(g))
        onnx.checker.check_model(model, full_check=opts["shape_check"])
    except Exception as e:  # a broken test model is a failure of this script, not the engine
        t.fail(f"{name}: building the model: {type(e).__name__}: {e}")
        return
    path = os.path.join(d, f"case{i}.onnx")
    onnx.save_model(model, path)
    scale = float(np.abs(ref).max()) or 1.0
    problems = []
    runs = [(n, th, False) for n in (1, BATCH) for th in (1, 2)]
    if asan:
        runs.append((BATCH, 2, True))
    for n, th, use_asan in runs:
        y, p = run_forward(path, g.x_np[:n], th, use_asan, ASAN_ENV if use_asan else None)
        tag = f"N={n} T={th}{' asan' if use_asan else ''}"
        if y is None:
            problems.append(f"{tag}: {describe(p)}")
            continue
        if use_asan and SANITIZER_TEXT.search(p.stderr or ""):
            problems.append(f"{tag}: sanitizer report")
        if y.size != ref[:n].size:
            problems.append(f"{tag}: {y.size} outputs, want {ref[:n].size}")
            continue
        err = float(np.abs(y.reshape(ref[:n].shape) - ref[:n]).max()) / scale
        if not err <= RTOL:
            problems.append(f"{tag}: max error {err:.2e} of max|ref|")
    if opts["known"] and len(problems) == len(runs) and \
            all(re.search(opts["known"], pr) for pr in problems):
        t.skip(f"{name}: known engine limitation: {problems[0]}")
        return
    t.check(not problems, f"{name} (K={ref.shape[1]})" + (": " + "; ".join(problems)
                                                           if problems else ""))


def check_neg(t, d, i, name, fn, words):
    path = os.path.join(d, f"neg{i}.onnx")
    onnx.save_model(fn(), path)
    # A batch of 3: a model wrongly accepted then runs where mixing images shows (ASan).
    x = np.random.default_rng(5).standard_normal((BATCH, 3, 8, 8)).astype(np.float32)
    for asan in (False, True):
        _, p = run_forward(path, x, 1, asan, ASAN_ENV if asan else None)
        tag = f"refused: {name} [{'asan' if asan else 'release'}]"
        m = MESSAGE.search(p.stderr or "")
        problems = []
        if p.returncode != 1:
            problems.append(f"exit {p.returncode} (want 1)")
        if SANITIZER_TEXT.search(p.stderr or ""):
            problems.append("sanitizer report")
        if not m or m[1] not in ("invalid_model", "unsupported_model"):
            problems.append("no `forward: invalid_model|unsupported_model: ...` line")
        else:
            msg = m[2].lower()
            if words[0] == "bad" or words[0] == "second":  # node errors name node and op
                want = [f"node '{words[0]}'", f"({words[1].lower()})"]
            else:
                want = [w.lower() for w in words]
            problems += [f"message lacks {w!r}" for w in want if w not in msg]
        t.check(not problems, f"{tag}: " + ("; ".join(problems) + ": " if problems else "")
                + (m[0] if m else describe(p)))
        if problems and SANITIZER_TEXT.search(p.stderr or ""):
            print("\n".join("        " + s for s in p.stderr.splitlines()[:30]))


def main():
    t = Tally("ops")
    filt = sys.argv[1] if len(sys.argv) > 1 else ""
    asan = os.environ.get("OPS_ASAN_POSITIVE", "1") != "0"
    for exe in (tool("forward"), tool("forward", True)):
        if not os.path.exists(exe):
            t.fail(f"{exe} missing (make build/tools/forward build/asan/tools/forward)")
            return t.finish()
    with tempfile.TemporaryDirectory() as d:
        for i, (name, shape, opset, fn, opts) in enumerate(CASES):
            if filt in name:
                check_case(t, d, i, name, shape, opset, fn, opts, asan)
        for i, (name, fn, words) in enumerate(NEG):
            if filt in name:
                check_neg(t, d, i, name, fn, words)
    return t.finish()


if __name__ == "__main__":
    sys.exit(main())
