#!/usr/bin/python3
"""test_malformed.py — hostile ONNX files must be refused cleanly, with and without ASan.

Every malformed file below goes through build/tools/forward and build/asan/tools/forward.
Each run must exit with status 1 (not 0, not a signal, not a sanitizer's exit code),
print `forward: <invalid_model|unsupported_model|...>: <message>` whose message names
the problem (node-level errors: the node's name and its op), and under ASan/UBSan report
nothing (leaks included).

Most cases are surgery on a tiny valid model (Conv -> Relu -> Conv -> Relu ->
GlobalAveragePool -> Flatten -> Gemm on a 3x224x224 input) so the ASan runs are quick;
the truncations cut a real test export (resnet18) at several offsets, one of them in the
middle of an initializer's raw data. Positive controls: the tiny model loads and matches
PyTorch, and resnet18 saved with external data in its own folder loads and gives the
same logits as the single-file export.
"""
import os
import re
import sys
import tempfile

import numpy as np
import onnx
import torch
from onnx import TensorProto, helper, numpy_helper

from common import MODELS, Tally, describe, forward, run, tool

ASAN_ENV = dict(os.environ,
                ASAN_OPTIONS="detect_leaks=1:exitcode=86:abort_on_error=0",
                UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1:exitcode=87")
SANITIZER_TEXT = re.compile(r"AddressSanitizer|LeakSanitizer|runtime error:|UndefinedBehavior")
MESSAGE = re.compile(r"^forward: ([a-z_]+): (.{8,})$", re.M)
REFUSAL_CODES = ("invalid_model", "unsupported_model", "io_error", "out_of_memory")
SHAPE = (1, 3, 224, 224)
# A cut or garbled file must be called that: a short prefix of a model can itself be a
# valid (nearly empty) protobuf, and then "opset 0" or "no nodes" does not tell the user
# that the file is damaged.
DAMAGED = [["truncated", "corrupt", "empty", "no graph", "not a valid"]]


# ---- the tiny model and its PyTorch twin ------------------------------------------------

def tiny_weights():
    g = np.random.default_rng(7)
    return {"conv0.weight": g.standard_normal((8, 3, 3, 3), dtype=np.float32) * 0.3,
            "conv0.bias": g.standard_normal(8, dtype=np.float32) * 0.1,
            "conv1.weight": g.standard_normal((8, 8, 3, 3), dtype=np.float32) * 0.2,
            "conv1.bias": g.standard_normal(8, dtype=np.float32) * 0.1,
            "fc.weight": g.standard_normal((10, 8), dtype=np.float32),
            "fc.bias": g.standard_normal(10, dtype=np.float32) * 0.1}


def tiny_model(w=None, conv1_attrs=None, extra_nodes=(), drop=(), in_type=TensorProto.FLOAT):
    w = w or tiny_weights()
    conv1_attrs = conv1_attrs or {}
    nodes = [
        helper.make_node("Conv", ["input", "conv0.weight", "conv0.bias"], ["c0"], name="conv0",
                         kernel_shape=[3, 3], pads=[1, 1, 1, 1], strides=[2, 2]),
        helper.make_node("Relu", ["c0"], ["r0"], name="relu0"),
        helper.make_node("Conv", ["r0", "conv1.weight", "conv1.bias"], ["c1"], name="conv1",
                         **dict(dict(kernel_shape=[3, 3], pads=[1, 1, 1, 1]), **conv1_attrs)),
        helper.make_node("Relu", ["c1"], ["r1"], name="relu1"),
        *extra_nodes,
        helper.make_node("GlobalAveragePool", ["r1"], ["gap"], name="gap"),
        helper.make_node("Flatten", ["gap"], ["flat"], name="flatten", axis=1),
        helper.make_node("Gemm", ["flat", "fc.weight", "fc.bias"], ["logits"], name="fc",
                         transB=1),
    ]
    inits = [v if isinstance(v, TensorProto) else numpy_helper.from_array(v, k)
             for k, v in w.items() if k not in drop]
    graph = helper.make_graph(
        nodes, "tiny", [helper.make_tensor_value_info("input", in_type, ["batch", 3, 224, 224])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 10])], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])


def tiny_torch(x):
    w = {k: torch.from_numpy(v) for k, v in tiny_weights().items()}
    f = torch.nn.functional
    y = f.relu(f.conv2d(torch.from_numpy(x), w["conv0.weight"], w["conv0.bias"], 2, 1))
    y = f.relu(f.conv2d(y, w["conv1.weight"], w["conv1.bias"], 1, 1))
    return f.linear(y.mean((2, 3)), w["fc.weight"], w["fc.bias"]).numpy()


def with_external(model, name, location, offset=0, length=None):
    """Marks initializer `name` as external data at `location` (nothing is written)."""
    t = next(i for i in model.graph.initializer if i.name == name)
    nbytes = len(t.raw_data) or numpy_helper.to_array(t).nbytes
    t.ClearField("raw_data")
    t.ClearField("float_data")
    t.data_location = TensorProto.EXTERNAL
    for k, v in (("location", location), ("offset", str(offset)),
                 ("length", str(nbytes if length is None else length))):
        e = t.external_data.add()
        e.key, e.value = k, v
    return model


def bare_model(nodes, inits=(), in_hw=224, out="out"):
    """A graph on input [batch, 3, in_hw, in_hw] whose output is `out` (shape not declared)."""
    graph = helper.make_graph(
        nodes, "bare", [helper.make_tensor_value_info("input", TensorProto.FLOAT,
                                                      ["batch", 3, in_hw, in_hw])],
        [helper.make_tensor_value_info(out, TensorProto.FLOAT, None)], list(inits))
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])


def bound_cases():
    """Load-time bounds (engine/graph.h), each first hit by fuzz_onnx: a small file must not
    make the loader allocate gigabytes, loop for minutes, or overflow a size."""
    g = np.random.default_rng(5)
    no_data = numpy_helper.from_array(np.zeros(4, np.float32), "big")
    no_data.dims[:] = [1 << 28]
    no_data.ClearField("raw_data")
    relus = [helper.make_node("Relu", ["input" if i == 0 else f"r{i - 1}"], [f"r{i}"], name=f"relu{i}")
             for i in range(16385)]
    wide = [numpy_helper.from_array(g.standard_normal((4000, 3, 1, 1), dtype=np.float32), n)
            for n in ("wa", "wb")]
    return [
        ("Reshape target of 2^40 dims (their product overflowed int64)",
         bare_model([helper.make_node("Reshape", ["input", "shape"], ["out"], name="reshape0")],
                    [numpy_helper.from_array(np.array([1, 1 << 40, 1 << 40, 3], np.int64), "shape")]),
         [["reshape0"], ["Reshape"]]),
        ("Flatten of a 1024x1024 image: 3.1 M classes",
         bare_model([helper.make_node("Flatten", ["input"], ["out"], name="flat0", axis=1)], in_hw=1024),
         [["classes"]]),
        ("2^28-float initializer with no data (nothing may be allocated for it)",
         bare_model([helper.make_node("Add", ["input", "big"], ["out"], name="add0")], [no_data]),
         [["big"]]),
        ("16385 nodes", bare_model(relus, out="r16384"), [["16384"], ["nodes"]]),
        ("activations of 1.5 GiB per image",
         bare_model([helper.make_node("Conv", ["input", "wa"], ["a"], name="ca"),
                     helper.make_node("Conv", ["input", "wb"], ["b"], name="cb"),
                     helper.make_node("Add", ["a", "b"], ["s"], name="sum"),
                     helper.make_node("GlobalAveragePool", ["s"], ["p"], name="gap"),
                     helper.make_node("Flatten", ["p"], ["out"], name="flat", axis=1)], wide),
         [["activations"], ["MiB"]]),
    ]


# ---- the cases: (name, file bytes or model, [groups of words, each group needs one]) ----

def model_cases(d):
    w = tiny_weights()
    w_int = dict(w, **{"conv1.weight": w["conv1.weight"].astype(np.int32)})
    w_bad = dict(w, **{"conv1.weight": np.ones((8, 5, 3, 3), np.float32)})
    w_grp = dict(w, **{"conv1.weight": np.ones((8, 4, 3, 3), np.float32)})
    huge = numpy_helper.from_array(w["conv1.weight"], "conv1.weight")
    huge.dims[:] = [8, 8, 3, 1 << 40]
    w_huge = dict(w, **{"conv1.weight": huge})
    with open(os.path.join(d, "short.bin"), "wb") as f:
        f.write(b"\0" * 16)
    unknown = helper.make_node("FooBarOp", ["r1"], ["r1b"], name="weird0")
    return [
        ("int32 Conv weights", tiny_model(w_int), [["conv1.weight", "conv1"]]),
        ("double input", tiny_model(in_type=TensorProto.DOUBLE),
         [["input"], ["double", "float64", "float32", "type"]]),
        ("unknown op", tiny_model(extra_nodes=[unknown]), [["weird0"], ["FooBarOp"]]),
        ("missing initializer", tiny_model(drop=("conv1.weight",)), [["conv1.weight"]]),
        ("Conv group=2", tiny_model(w_grp, {"group": 2}), [["conv1"], ["Conv"]]),
        ("Conv dilation 2", tiny_model(conv1_attrs={"dilations": [2, 2]}), [["conv1"], ["Conv"]]),
        ("Conv weight channels != input channels", tiny_model(w_bad), [["conv1"], ["Conv"]]),
        ("dims claim 2^40 elements", tiny_model(w_huge), [["conv1.weight", "conv1"]]),
        ("external data ../../etc/passwd",
         with_external(tiny_model(), "conv1.weight", "../../etc/passwd"),
         [["../../etc/passwd", "conv1.weight"]]),
        ("external data /etc/passwd (absolute)",
         with_external(tiny_model(), "conv1.weight", "/etc/passwd"),
         [["/etc/passwd", "conv1.weight"]]),
        ("external data file missing",
         with_external(tiny_model(), "conv1.weight", "missing.bin"),
         [["missing.bin", "conv1.weight"]]),
        ("external data shorter than the tensor",
         with_external(tiny_model(), "conv1.weight", "short.bin"),
         [["short.bin", "conv1.weight"]]),
        ("external data offset past the end",
         with_external(tiny_model(), "conv1.weight", "short.bin", offset=1 << 40, length=16),
         [["short.bin", "conv1.weight"]]),
    ]


def truncation_cases(t):
    path = os.path.join(MODELS, "resnet18.onnx")
    if not os.path.exists(path):
        t.fail(f"{path} missing (run `make test-models`): truncation cases not run")
        return []
    data = open(path, "rb").read()
    big = max(onnx.load_from_string(data).graph.initializer, key=lambda i: len(i.raw_data))
    at = data.find(big.raw_data[:256])
    assert at > 0, "initializer bytes not found in the file"
    mid_init = at + len(big.raw_data) // 2
    offsets = [1, 2, 7, 64, 1000, at - 3, mid_init, len(data) // 2, len(data) - 1]
    return [(f"resnet18 truncated at {o} of {len(data)} bytes"
             + (" (mid-initializer)" if o == mid_init else ""), data[:o], DAMAGED)
            for o in offsets]


def garbage_cases():
    g = np.random.default_rng(11)
    return [("empty file", b"", DAMAGED),
            ("random garbage 4 KiB", g.integers(0, 256, 4096, dtype=np.uint8).tobytes(), DAMAGED),
            ("random garbage after a valid header", tiny_model().SerializeToString()[:40]
             + g.integers(0, 256, 2000, dtype=np.uint8).tobytes(), DAMAGED)]


# ---- running ----------------------------------------------------------------------------

def refused(t, label, model_path, in_path, words, asan):
    env = ASAN_ENV if asan else None
    p = run([tool("forward", asan), model_path, in_path, "1", in_path + ".out"], env=env)
    tag = f"{label} [{'asan' if asan else 'release'}]"
    m = MESSAGE.search(p.stderr or "")
    problems = []
    if p.returncode != 1:
        problems.append(f"exit {p.returncode} (want 1)")
    if SANITIZER_TEXT.search(p.stderr or ""):
        problems.append("sanitizer report")
    if not m or m[1] not in REFUSAL_CODES:
        problems.append("no `forward: <code>: <message>` line with a refusal code")
    elif words:
        msg = m[2].lower()
        missing = [g for g in words if not any(w.lower() in msg for w in g)]
        if missing:
            problems.append(f"message does not name {' / '.join(missing[0])}")
    shown = m[0] if m else describe(p)
    t.check(not problems, f"{tag}: {'; '.join(problems) or 'refused'}: {shown}")
    if problems and SANITIZER_TEXT.search(p.stderr or ""):
        print("\n".join("        " + s for s in p.stderr.splitlines()[:40]))


def positive_controls(t, d, in_path):
    x = np.fromfile(in_path, dtype=np.float32).reshape(SHAPE)
    path = os.path.join(d, "tiny_ok.onnx")
    onnx.checker.check_model(tiny_model())
    onnx.save_model(tiny_model(), path)
    ref = tiny_torch(x)
    for asan in (False, True):
        y, p = forward(path, x, threads=1, asan=asan)
        ok = y is not None and np.abs(y - ref).max() <= 1e-4 * np.abs(ref).max()
        t.check(ok, f"control: tiny model loads and matches PyTorch [{'asan' if asan else 'release'}]"
                + ("" if y is not None else f": {describe(p)}"))
    src = os.path.join(MODELS, "resnet18.onnx")
    if not os.path.exists(src):
        t.fail(f"control: {src} missing")
        return
    ext_dir = os.path.join(d, "ext")
    os.mkdir(ext_dir)
    ext = os.path.join(ext_dir, "resnet18_ext.onnx")
    onnx.save_model(onnx.load(src), ext, save_as_external_data=True, all_tensors_to_one_file=True,
                    location="resnet18_ext.data", size_threshold=1024)
    base, p0 = forward(src, x, threads=2)
    for asan in (False, True):
        y, p = forward(ext, x, threads=2, asan=asan)
        # Same weights, same engine: only the ASan build's different code generation may
        # change the rounding, so allow the usual 1e-4 of the largest logit.
        ok = y is not None and base is not None and \
            np.abs(y - base).max() <= 1e-4 * np.abs(base).max()
        t.check(ok, f"control: resnet18 with external data loads and matches the single-file "
                    f"export [{'asan' if asan else 'release'}]"
                + ("" if y is not None else f": {describe(p)}")
                + ("" if base is not None else f"; single file: {describe(p0)}"))


def main():
    t = Tally("malformed")
    with tempfile.TemporaryDirectory() as d:
        in_path = os.path.join(d, "in.f32")
        np.random.default_rng(3).standard_normal(SHAPE, dtype=np.float32).tofile(in_path)
        cases = garbage_cases() + truncation_cases(t) + model_cases(d) + bound_cases()
        for i, (label, content, words) in enumerate(cases):
            path = os.path.join(d, f"case{i}.onnx")
            with open(path, "wb") as f:
                f.write(content if isinstance(content, bytes) else content.SerializeToString())
            for asan in (False, True):
                refused(t, label, path, in_path, words, asan)
        positive_controls(t, d, in_path)
    return t.finish()


if __name__ == "__main__":
    sys.exit(main())
