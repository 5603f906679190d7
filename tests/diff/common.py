"""common.py — shared plumbing of the differential tests (tests/diff/test_*.py).

Environment: BUILD (build dir, default <repo>/build), MODELS (test models, default
BUILD/models), SHARED (data dir, default <repo>/../shared/data).

Each test script makes one Tally, records checks with ok()/fail()/skip() and ends with
`sys.exit(tally.finish())`, which prints `NAME: N passed, M failed[, K skipped]` and
returns non-zero when anything failed.
"""
import os
import subprocess
import sys
import tempfile

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUILD = os.path.abspath(os.environ.get("BUILD") or os.path.join(REPO, "build"))
MODELS = os.path.abspath(os.environ.get("MODELS") or os.path.join(BUILD, "models"))
SHARED = os.path.abspath(os.environ.get("SHARED") or os.path.join(REPO, "..", "shared", "data"))
ARCHS = ("resnet18", "resnet34", "resnet50", "resnet101", "resnet152", "googlenet")
TEST_SEED = 1  # the --random seed the Makefile's test-models use
TIMEOUT = 600  # seconds for one tool run; a hang is a failure, not a stuck suite

sys.path.insert(0, os.path.join(REPO, "models"))
import export  # noqa: E402  (models/export.py: the one definition of the test models)


class Tally:
    def __init__(self, name):
        self.name, self.passed, self.failed, self.skipped = name, 0, 0, 0

    def ok(self, what):
        self.passed += 1
        print(f"  ok    {what}", flush=True)

    def fail(self, what):
        self.failed += 1
        print(f"  FAIL  {what}", flush=True)

    def check(self, cond, what):
        (self.ok if cond else self.fail)(what)
        return cond

    def skip(self, what):
        self.skipped += 1
        print(f"  skip  {what}", flush=True)

    def finish(self):
        line = f"{self.name}: {self.passed} passed, {self.failed} failed"
        if self.skipped:
            line += f", {self.skipped} skipped"
        print(line, flush=True)
        return 1 if self.failed else 0


def tool(name, asan=False):
    return os.path.join(BUILD, "asan" if asan else "", "tools", name)


def run(cmd, env=None):
    """Runs cmd; returns CompletedProcess (returncode -9 and a note on timeout)."""
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=TIMEOUT, env=env)
    except subprocess.TimeoutExpired as e:
        return subprocess.CompletedProcess(cmd, -9, e.stdout or "", f"timeout after {TIMEOUT} s")


def forward(model_path, x, threads=2, asan=False):
    """Runs tools/forward on x (N,C,H,W); returns (logits or None, CompletedProcess)."""
    x = np.ascontiguousarray(x, dtype=np.float32)
    with tempfile.TemporaryDirectory() as d:
        fin, fout = os.path.join(d, "in.f32"), os.path.join(d, "out.f32")
        x.tofile(fin)
        p = run([tool("forward", asan), model_path, fin, str(x.shape[0]), fout,
                 "--threads", str(threads)])
        if p.returncode != 0 or not os.path.exists(fout):
            return None, p
        y = np.fromfile(fout, dtype=np.float32)
    return y.reshape(x.shape[0], -1), p


def describe(p):
    """One line about a finished tool run, for failure messages."""
    err = (p.stderr or "").strip().splitlines()
    return f"exit {p.returncode}: {err[-1] if err else '(no stderr)'}"
