#!/usr/bin/python3
"""run_all.py — run every tests/diff/test_*.py and sum up.

Each script prints its checks and ends with `NAME: N passed, M failed[, K skipped]`;
this prints their output as it comes, adds up those last lines and ends with
`diff: N passed, M failed[, K skipped]`. Exit status 1 if any script failed (non-zero
exit, a missing or malformed summary line, or a timeout), else 0.

Environment (passed through): BUILD, MODELS, SHARED, see common.py.
"""
import glob
import os
import re
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
PYTHON = "/usr/bin/python3"  # the one with torch, torchvision and onnx
SCRIPT_TIMEOUT = 1800
SUMMARY = re.compile(r"^(\S+): (\d+) passed, (\d+) failed(?:, (\d+) skipped)?$")


def run_script(path):
    """Runs one script, echoing its output; returns (passed, failed, skipped, ok)."""
    t0 = time.monotonic()
    print(f"== {os.path.basename(path)}", flush=True)
    try:
        p = subprocess.run([PYTHON, path], cwd=HERE, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True, timeout=SCRIPT_TIMEOUT)
        out, rc = p.stdout, p.returncode
    except subprocess.TimeoutExpired as e:
        out, rc = (e.stdout or b"").decode(errors="replace"), None
    print(out, end="" if out.endswith("\n") or not out else "\n", flush=True)
    lines = out.strip().splitlines()
    m = SUMMARY.match(lines[-1]) if lines else None
    if rc is None or m is None:
        why = "timed out" if rc is None else f"exit {rc} without a summary line"
        print(f"== {os.path.basename(path)}: {why}", flush=True)
        return (0, 1, 0, False)
    passed, failed, skipped = int(m[2]), int(m[3]), int(m[4] or 0)
    ok = rc == 0 and failed == 0
    if rc != 0 and failed == 0:
        failed = 1  # crashed after its summary, or the summary lied: count it
    print(f"== {os.path.basename(path)}: exit {rc}, {time.monotonic() - t0:.0f} s", flush=True)
    return (passed, failed, skipped, ok)


def main():
    scripts = sorted(glob.glob(os.path.join(HERE, "test_*.py")))
    total = [0, 0, 0]
    all_ok = bool(scripts)
    for s in scripts:
        passed, failed, skipped, ok = run_script(s)
        total = [total[0] + passed, total[1] + failed, total[2] + skipped]
        all_ok = all_ok and ok
    line = f"diff: {total[0]} passed, {total[1]} failed"
    if total[2]:
        line += f", {total[2]} skipped"
    print(line, flush=True)
    return 0 if all_ok else 1


if __name__ == "__main__":
    sys.exit(main())
