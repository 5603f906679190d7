#!/usr/bin/python3
"""test_engine_vs_torch.py — the engine's logits against PyTorch's, model by model.

For each test model MODELS/<arch>.onnx (made by `models/export.py --random 1`) the same
PyTorch model is rebuilt with export.build_model (same seed, same code: nothing about the
export is duplicated here) and both run on the same deterministic image-like inputs, at
batch 1 (one thread) and batch 4 (two threads, four different images). Required per run:

  max|engine - torch| <= REL_TOL * max|torch logit|
  same top-1 and the same top-5 set for every image

and the batch-1 image is row 2 of the batch-4 input, so the engine's two answers for it
must agree too (catches batch-stride bugs). Opset 11 and 17 exports of resnet18 and
googlenet are made in a temp dir and checked the same way.
"""
import os
import sys
import tempfile

import numpy as np
import torch

from common import ARCHS, MODELS, TEST_SEED, Tally, describe, export, forward

# float32 throughout; the engine folds BatchNorm into the Conv weights (as the export
# already does) and sums in a different order (im2col + GEMM vs PyTorch's direct
# convolution), so each layer differs by a few ulps relative to its activations. Over
# 50+ layers this stays around 1e-6..1e-5 of the largest logit; 1e-4 leaves a margin
# of ~10x yet still fails on any real bug (wrong padding, stride, a missed ReLU or
# bias move the logits by >= 1e-2 relative).
REL_TOL = 1e-4
INPUT_SEED = 20240  # the test inputs (different from the calibration images)


def top5(row):
    return [int(i) for i in np.argsort(-row, kind="stable")[:5]]


def ranks_agree(ref, got, tol_abs):
    """Same top-1 and top-5 set, except where PyTorch's own logits at the boundary are
    closer than the allowed error (then float32 alone does not define the order)."""
    r5, g5 = top5(ref), top5(got)
    order = np.sort(ref)[::-1]
    top1_tied = order[0] - order[1] <= 2 * tol_abs
    set_tied = order[4] - order[5] <= 2 * tol_abs
    return (r5[0] == g5[0] or top1_tied) and (set(r5) == set(g5) or set_tied), r5, g5


def compare(t, label, ref, got, proc):
    if got is None:
        t.fail(f"{label}: forward failed ({describe(proc)})")
        return None
    if got.shape != ref.shape:
        t.fail(f"{label}: output shape {got.shape}, expected {ref.shape}")
        return None
    scale = float(np.abs(ref).max())
    diff = float(np.abs(got - ref).max())
    rel = diff / scale
    t.check(np.isfinite(got).all() and rel <= REL_TOL,
            f"{label}: max|diff| {diff:.3g} = {rel:.2e} x max|logit| {scale:.3g} "
            f"(limit {REL_TOL:g})")
    for i in range(ref.shape[0]):
        same, r5, g5 = ranks_agree(ref[i], got[i], REL_TOL * scale)
        t.check(same, f"{label}: image {i} top-5 torch {r5} engine {g5}")
    return rel


def torch_logits(model, x):
    with torch.no_grad():
        return model(torch.from_numpy(x)).numpy()


def check_model(t, label, path, model, x4):
    """Batch 1 (1 thread) and batch 4 (2 threads) on `path` against `model`."""
    if not os.path.exists(path):
        t.fail(f"{label}: {path} missing (run `make test-models`)")
        return
    x1 = x4[2:3]
    ref1, ref4 = torch_logits(model, x1), torch_logits(model, x4)
    got1, p1 = forward(path, x1, threads=1)
    got4, p4 = forward(path, x4, threads=2)
    compare(t, f"{label} batch 1", ref1, got1, p1)
    compare(t, f"{label} batch 4", ref4, got4, p4)
    if got1 is not None and got4 is not None and got4.shape[0] == 4:
        d = float(np.abs(got1[0] - got4[2]).max()) / float(np.abs(ref1).max())
        t.check(d <= REL_TOL, f"{label}: batch-1 vs batch-4 row 2 of the engine: {d:.2e}")


def main():
    t = Tally("engine_vs_torch")
    x4 = export.image_like_batch(4, INPUT_SEED).numpy()
    for arch in ARCHS:
        model = export.build_model(arch, seed=TEST_SEED)
        check_model(t, arch, os.path.join(MODELS, f"{arch}.onnx"), model, x4)
        if arch not in ("resnet18", "googlenet"):
            continue
        with tempfile.TemporaryDirectory() as d:
            for opset in (11, 17):
                path = os.path.join(d, f"{arch}_opset{opset}.onnx")
                meta = export.metadata(arch, arch, True, f"random seed {TEST_SEED}")
                export.export(model, arch, path, opset, meta)
                check_model(t, f"{arch} opset {opset}", path, model, x4)
    return t.finish()


if __name__ == "__main__":
    sys.exit(main())
