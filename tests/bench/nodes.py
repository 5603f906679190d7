#!/usr/bin/python3
"""nodes.py — `make bench-nodes`: where the engine's time goes against ONNX Runtime's,
layer group by layer group, fastest and median.

    nodes.py --build build --models build/models --peers build/peers
             [--arch resnet50] [--batch 1] [--threads 2] [--rounds 3] [--seconds 15]

Rounds alternate the two profilers, each for about --seconds:
  classifyd  build/bench/bench_engine --profile (the engine's per-node profiler: each
             node's fastest time and its median over the profiled forwards)
  onnxrt     tests/bench/ort_profile.js (ONNX Runtime's own profiler, same numbers)
on the same ONNX file and input (build/peers/input_b8.f32, as `make bench-peers`).
Nodes are matched by name: ours keep the ONNX node names; ONNX Runtime names a fused
conv after its last output (torchvision's ResNets: relu -> conv1, relu_1 -> conv2,
convK -> convK, downsample -> downsample, /relu -> the stem conv). Matched nodes are
summed in groups of layer and conv shape from our profile (e.g. "layer3 3x3/1 wino");
nodes only one side has (ONNX Runtime's layout reorders, a model other than a ResNet)
are summed per op type. Per group: fastest = the fastest of the rounds' minima, median
= the median of the rounds' medians. The ratio of medians over the ratio of minima
shows where the host's noise costs one engine more than the other. A measurement;
exit 1 only when a profiler fails.
"""
import argparse
import os
import re
import statistics
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from peers import make_input  # noqa: E402  (the shared input file)

OURS = re.compile(r"^\s+([\d.]+) ms\s+([\d.]+)\s+(\S+)\s+(\S+)"
                  r"(?:\s+(\d+)x(\d+)/(\d+) \S+ @\S+( wino)?)?\s*$")
ORT = re.compile(r"^\s*([\d.]+)\s+([\d.]+)\s+(\S+)\s+(\S+)\s*$")
ORT_CONV = {"relu": "conv1", "relu_1": "conv2", "relu_2": "conv3"}


def ort_key(name):
    """Our node name for ONNX Runtime's name of a fused node (the name itself when no
    torchvision ResNet pattern matches)."""
    name = re.sub(r"_output_0(_nchwc)?$", "", name)
    m = re.match(r"^(/layer\d+/layer\d+\.\d+)/(relu(?:_\d)?|conv\d)/(?:Relu|Conv)$", name)
    if m:
        return f"{m.group(1)}/{ORT_CONV.get(m.group(2), m.group(2))}/Conv"
    m = re.match(r"^(/layer\d+/layer\d+\.\d+/downsample/downsample\.0)/Conv$", name)
    if m:
        return m.group(1) + "/Conv"
    if name == "/relu/Relu":
        return "/conv1/Conv"
    return name


def run_ours(args, seconds):
    out = subprocess.run(
        [os.path.join(args.build, "bench", "bench_engine"), "--models", args.models,
         "--archs", args.arch, "--threads", str(args.threads), "--batches", str(args.batch),
         "--seconds", "1", "--profile", "100000", "--profile-seconds", str(seconds)],
        capture_output=True, text=True, timeout=seconds * 4 + 300)
    nodes = {}
    for line in out.stderr.splitlines():
        m = OURS.match(line)
        if not m:
            continue
        group = m.group(3)
        if m.group(5):
            layer = re.match(r"^/(layer\d+)/", m.group(4))
            group = (f"{layer.group(1) if layer else 'stem'} {m.group(5)}x{m.group(6)}/"
                     f"{m.group(7)}{' wino' if m.group(8) else ''}")
        nodes[m.group(4)] = (float(m.group(1)), float(m.group(2)), group)
    fwd = re.search(r"^\|\s*%s\s*\|\s*%d\s*\|\s*([\d.]+)" % (re.escape(args.arch), args.batch),
                    out.stdout, re.M)
    if out.returncode or not nodes or not fwd:
        raise RuntimeError(f"bench_engine --profile failed: {out.stderr[-2000:]}")
    return nodes, float(fwd.group(1))


def run_ort(args, runs):
    env = dict(os.environ, NODE_PATH=os.path.join(os.path.abspath(args.peers), "node_modules"))
    model = os.path.join(args.models, args.arch + ".onnx")
    out = subprocess.run(["node", os.path.join(HERE, "ort_profile.js"), model, str(args.batch),
                          str(runs), str(args.threads)],
                         capture_output=True, text=True, env=env, timeout=args.seconds * 8 + 300)
    nodes = {}
    for line in out.stdout.splitlines()[1:]:
        m = ORT.match(line)
        if m:
            nodes[ort_key(m.group(4))] = (float(m.group(1)), float(m.group(2)), m.group(3))
    if out.returncode or not nodes:
        raise RuntimeError(f"ort_profile.js failed: {out.stderr[-2000:]}")
    return nodes


def groups(ours, ort):
    """{group: [our min, our median, ORT min, ORT median]} for one round."""
    g = {}
    for name in set(ours) | set(ort):
        both = name in ours and name in ort
        label = ours[name][2] if both else (ours.get(name) or ort[name])[2] + " (one side)"
        row = g.setdefault(label, [0.0, 0.0, 0.0, 0.0])
        if name in ours:
            row[0] += ours[name][0]
            row[1] += ours[name][1]
        if name in ort:
            row[2] += ort[name][0]
            row[3] += ort[name][1]
    return g


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build", default="build")
    ap.add_argument("--models", default="build/models")
    ap.add_argument("--peers", default="build/peers")
    ap.add_argument("--arch", default="resnet50")
    ap.add_argument("--batch", type=int, default=1, choices=range(1, 9))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=15.0)
    args = ap.parse_args()
    if not 1 <= args.rounds <= 20 or not 1 <= args.seconds <= 600 or not 1 <= args.threads <= 64:
        ap.error("--rounds 1-20, --seconds 1-600, --threads 1-64")
    make_input(os.path.join(args.peers, "input_b8.f32"))
    per_round = []
    runs = None
    for r in range(args.rounds):
        ours, fwd_ms = run_ours(args, args.seconds)
        runs = runs or max(10, int(args.seconds * 1e3 / (fwd_ms * 1.2)))
        ort = run_ort(args, runs)
        per_round.append(groups(ours, ort))
        tot = [sum(v[i] for v in per_round[-1].values()) for i in range(4)]
        print(f"round {r + 1}: sums of node minima ours {tot[0]:.2f} / ONNX Runtime "
              f"{tot[2]:.2f} ms, of medians {tot[1]:.2f} / {tot[3]:.2f}",
              file=sys.stderr, flush=True)
    labels = sorted({k for g in per_round for k in g}, key=lambda k: (" (one side)" in k, k))
    print(f"\n{args.arch} batch {args.batch}, {args.threads} threads, {args.rounds} alternating "
          f"rounds of ~{args.seconds:g} s each (ONNX Runtime {runs} forwards a round)\n")
    print("| group | ours fastest / median ms | ONNX Runtime fastest / median ms | "
          "ratio fastest | ratio median |")
    print("|---|---|---|---|---|")
    total = [0.0] * 4

    def cell(x, y):
        return f"{x / y:.2f}" if y > 0 and x > 0 else "-"

    for k in labels:
        rows = [g[k] for g in per_round if k in g]
        v = [min(r[0] for r in rows), statistics.median(r[1] for r in rows),
             min(r[2] for r in rows), statistics.median(r[3] for r in rows)]
        total = [a + b for a, b in zip(total, v)]
        print(f"| {k} | {v[0]:.2f} / {v[1]:.2f} | {v[2]:.2f} / {v[3]:.2f} | "
              f"{cell(v[0], v[2])} | {cell(v[1], v[3])} |")
    print(f"| **all** | {total[0]:.2f} / {total[1]:.2f} | {total[2]:.2f} / {total[3]:.2f} | "
          f"{cell(total[0], total[2])} | {cell(total[1], total[3])} |")


if __name__ == "__main__":
    try:
        main()
    except (RuntimeError, subprocess.TimeoutExpired, OSError) as e:
        print(f"bench-nodes: {e}", file=sys.stderr)
        sys.exit(1)
