#!/usr/bin/python3
"""soak.py — `make soak SOAK_MINUTES=N`: classifyd under a long mixed load (issue 8 item 5).

Serves resnet18, googlenet and resnet50 (random-weight test models) from a configuration file of
its own and sends, open loop at a moderate fixed rate (default 2 requests/s, well under what the
machine sustains: it is shared), a seeded random mix of:

  good     real JPEGs and PNGs from ../shared/data (WebP converted from them in memory; generated
           images when that folder is absent), raw or multipart, through /classify?model= and
           /models/NAME/classify, spread over the three models          -> 200
  bad      truncated JPEG (400), damaged JPEG (200 or 400), random bytes (415), GIF (415),
           empty body (400), a PNG bomb over max_pixels (413), a PNG claiming 30000 px sides
           (413), unknown model (404), bad top_k (400)
  oversize a body over body_limit announced by Content-Length (413 before the body is read,
           `Expect: 100-continue`), and one streamed chunked past the limit (the daemon reads
           and drops the rest, then answers 413; a reset or close, what builds before that
           did, is still tolerated)

and every --reload-seconds rewrites the configuration (batch window 2000 <-> 1000 us) and sends
SIGHUP; every fourth reload names a missing model file instead, which must fail and keep the old
models serving. Before the measured run, a warm-up (every kind, both reload kinds) brings the
process to its steady state; resident memory and open fds are then read idle (start), sampled
every --sample-seconds under load, and read idle again at the end.

Per window (--window-minutes): requests by kind and status, latency percentiles of the good
requests (from their scheduled send time), RSS and fds. Verdict (exit 1 when any fails):
  - every answer is one its kind allows; no client-side error except the chunked cut-off;
  - no 5xx except 503 (counted: none are expected at this rate), no 504;
  - every reload that should apply did (generation +1), every broken one failed;
  - RSS flat: idle end <= idle start + max(16 MiB, 5%), and the last window's median RSS <=
    the first window's + max(16 MiB, 5%);
  - fds flat: idle end within 2 of idle start.
Reports: OUT/report.json and OUT/report.md (the table below, printed at the end); an interim
table after each window. The daemon's log is OUT/daemon.log.
"""
import argparse
import asyncio
import io
import json
import os
import random
import signal
import statistics
import struct
import sys
import time
import zlib

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "pylib"))
from daemon import Daemon, metrics  # noqa: E402
import loadgen  # noqa: E402
from loadgen import Request, pct  # noqa: E402

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
DATA = os.path.join(ROOT, "..", "shared", "data")
MODELS = ("resnet18", "googlenet", "resnet50")
MODEL_WEIGHTS = (0.5, 0.3, 0.2)
BODY_LIMIT = 2 << 20
MiB = 1 << 20

# kind -> (share of requests, statuses allowed, client errors allowed)
KINDS = {
    "jpeg": (0.40, {200}, set()),
    "png": (0.10, {200}, set()),
    "webp": (0.10, {200}, set()),
    "multipart": (0.05, {200}, set()),
    "truncated": (0.05, {400}, set()),
    "damaged": (0.04, {200, 400}, set()),
    "random": (0.04, {415}, set()),
    "gif": (0.04, {415}, set()),
    "empty": (0.02, {400}, set()),
    "bomb_pixels": (0.03, {413}, set()),
    "bomb_side": (0.03, {413}, set()),
    "unknown_model": (0.03, {404}, set()),
    "bad_top_k": (0.03, {400}, set()),
    "oversize": (0.03, {413}, set()),
    "oversize_chunked": (0.02, {413}, {"reset", "closed", "broken_pipe", "truncated"}),
}
GOOD = ("jpeg", "png", "webp", "multipart")


# ---- inputs ----------------------------------------------------------------------------------
def pil():
    from PIL import Image  # Debian's python3-pil
    return Image


def encode(im, fmt, **kw):
    buf = io.BytesIO()
    im.save(buf, fmt, **kw)
    return buf.getvalue()


def load_good(rng):
    """{'jpeg': [...], 'png': [...], 'webp': [...]}, and where they came from."""
    Image = pil()
    jpegs, pngs = [], []
    for sub in ("images", "photos"):
        d = os.path.join(DATA, sub)
        if not os.path.isdir(d):
            continue
        for n in sorted(os.listdir(d)):
            p = os.path.join(d, n)
            low = n.lower()
            if low.endswith((".jpg", ".jpeg")):
                jpegs.append(open(p, "rb").read())
            elif low.endswith(".png"):
                pngs.append(open(p, "rb").read())
    if jpegs:
        src = f"{len(jpegs)} JPEGs and {len(pngs)} PNGs from {os.path.normpath(DATA)}"
        for b in jpegs[:6]:  # PNG and WebP versions of a few real photos
            im = Image.open(io.BytesIO(b)).convert("RGB")
            pngs.append(encode(im, "PNG"))
        webps = [encode(Image.open(io.BytesIO(b)).convert("RGB"), "WEBP", quality=80)
                 for b in jpegs[:8]]
        return {"jpeg": jpegs, "png": pngs, "webp": webps}, src
    ims = []
    for i in range(8):
        w, h = rng.randint(200, 900), rng.randint(200, 900)
        ims.append(Image.effect_noise((w, h), 40 + 10 * i).convert("RGB"))
    return ({"jpeg": [encode(im, "JPEG", quality=85) for im in ims],
             "png": [encode(im, "PNG") for im in ims[:4]],
             "webp": [encode(im, "WEBP", quality=80) for im in ims[:4]]},
            f"generated images ({os.path.normpath(DATA)} absent)")


def png_claiming(w, h):
    """A PNG whose header claims w x h pixels, with one tiny IDAT: refused before decoding."""
    def chunk(t, data):
        return struct.pack(">I", len(data)) + t + data + struct.pack(">I", zlib.crc32(t + data))
    ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64))
            + chunk(b"IEND", b""))


def load_bad(good, rng):
    Image = pil()
    j = good["jpeg"][0]
    damaged = bytearray(j)
    for k in range(len(damaged) // 3, len(damaged) // 3 + 2000, 7):
        damaged[k] ^= 0x5A
    bomb = encode(Image.new("L", (7000, 7000)), "PNG", optimize=True)  # 49 MP, ~50 KB
    return {
        "truncated": j[: len(j) * 2 // 5],
        "damaged": bytes(damaged),
        "random": rng.randbytes(50000),
        "gif": encode(Image.new("RGB", (64, 64), (200, 10, 10)), "GIF"),
        "empty": b"",
        "bomb_pixels": bomb,
        "bomb_side": png_claiming(30000, 30000),
        "oversize": b"\xff\xd8\xff" + b"0" * (BODY_LIMIT + MiB),
    }


def multipart(img):
    b = "soakboundary7MA4YWxkTrZu0gW"
    body = (f"--{b}\r\nContent-Disposition: form-data; name=\"image\"; filename=\"x.jpg\"\r\n"
            f"Content-Type: image/jpeg\r\n\r\n").encode() + img + f"\r\n--{b}--\r\n".encode()
    return body, f"multipart/form-data; boundary={b}"


class Mix:
    """Request i of the soak, drawn from a seeded generator (same seed, same sequence)."""

    def __init__(self, good, bad, seed):
        self.good, self.bad, self.rng = good, bad, random.Random(seed)
        self.kinds = list(KINDS)
        self.weights = [KINDS[k][0] for k in self.kinds]

    def __call__(self, i):
        rng = self.rng
        kind = rng.choices(self.kinds, self.weights)[0]
        model = rng.choices(MODELS, MODEL_WEIGHTS)[0]
        path = (f"/models/{model}/classify" if rng.random() < 0.3
                else f"/classify?model={model}")
        octet = {"Content-Type": "application/octet-stream"}
        if kind in ("jpeg", "png", "webp"):
            return Request(path, rng.choice(self.good[kind]), kind, headers=octet)
        if kind == "multipart":
            body, ctype = multipart(rng.choice(self.good["jpeg"]))
            return Request(path, body, kind, headers={"Content-Type": ctype})
        if kind == "unknown_model":
            return Request("/classify?model=nosuchmodel", self.good["jpeg"][0], kind, headers=octet)
        if kind == "bad_top_k":
            return Request(f"/classify?model={model}&top_k=0", self.good["jpeg"][0], kind,
                           headers=octet)
        if kind == "oversize":
            return Request(path, self.bad["oversize"], kind, headers=octet, expect_continue=True)
        if kind == "oversize_chunked":
            return Request(path, self.bad["oversize"], kind, headers=octet, chunked=True)
        return Request(path, self.bad[kind], kind, headers=octet)


# ---- the daemon and its reloads ---------------------------------------------------------------
def write_config(path, models_dir, window_us, broken=False):
    lines = ["[server]", f"body_limit = {BODY_LIMIT}", "request_deadline_ms = 30000",
             "[engine]", "queue_length = 64", "max_batch = 8", f"batch_window_us = {window_us}",
             "[log]", "level = info"]
    for m in MODELS:
        lines += [f"[model.{m}]", f"path = {os.path.join(models_dir, m + '.onnx')}"]
    if broken:
        lines += ["[model.missing]", f"path = {os.path.join(models_dir, 'no-such-model.onnx')}"]
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write("\n".join(lines) + "\n")
    os.replace(tmp, path)


class Reloader:
    """Rewrites the configuration and sends SIGHUP; checks the outcome on /metrics."""

    def __init__(self, d, conf, models_dir):
        self.d, self.conf, self.models_dir = d, conf, models_dir
        self.n, self.log = 0, []  # (t, kind, ok, seconds)

    def reload(self, broken):
        self.n += 1
        m0 = metrics(self.d.url)
        key = "classifyd_reload_failures_total" if broken else "classifyd_reloads_total"
        write_config(self.conf, self.models_dir, 1000 if self.n % 2 else 2000, broken)
        t0 = time.monotonic()
        self.d.signal(signal.SIGHUP)
        ok = False
        while time.monotonic() - t0 < 120:
            time.sleep(0.25)
            m1 = metrics(self.d.url)
            if m1.get(key, 0) > m0.get(key, 0):
                gen_moved = m1.get("classifyd_model_generation", 0) > m0.get(
                    "classifyd_model_generation", 0)
                ok = gen_moved != broken
                break
        if broken:  # put the good configuration back for the next reload
            write_config(self.conf, self.models_dir, 1000 if self.n % 2 else 2000)
        self.log.append((time.monotonic(), "broken" if broken else "applied", ok,
                         time.monotonic() - t0))
        return ok


# ---- measurement ------------------------------------------------------------------------------
def idle_reading(d, settle=11.0):
    """RSS (KiB) and fds with no request in flight, after the daemon's idle trim (every 5 s)."""
    end = time.monotonic() + 30
    while time.monotonic() < end:
        m = metrics(d.url)
        if m.get("classifyd_requests_in_flight", 9) <= 1 and m.get("classifyd_queue_depth", 9) == 0:
            break
        time.sleep(0.5)
    time.sleep(settle)
    return loadgen.proc_rss_kb(d.pid), loadgen.proc_fds(d.pid)


class Windows:
    """Per-window tallies, filled as answers arrive."""

    def __init__(self, t0, window_s, seconds):
        self.t0, self.window_s, self.w = t0, window_s, {}
        self.last = max(0, int(-(-seconds // window_s)) - 1)  # the last window's index

    def slot(self, t):
        k = min(self.last, max(0, int((t - self.t0) // self.window_s)))
        return self.w.setdefault(k, {"count": {}, "lat": [], "unexpected": [], "samples": [],
                                     "reloads": []})

    def add(self, r):
        s = self.slot(r.sched)
        outcome = r.error if r.error else str(r.status)
        key = f"{r.kind} {outcome}"
        s["count"][key] = s["count"].get(key, 0) + 1
        allowed, errs = KINDS[r.kind][1], KINDS[r.kind][2]
        if r.kind in GOOD and r.status == 200:
            s["lat"].append(r.latency_ms())
            if b'"predictions"' not in r.body:
                s["unexpected"].append((r.kind, "200 without predictions"))
        ok = (r.error in errs) if r.error else (r.status in allowed or r.status == 503)
        if not ok:
            s["unexpected"].append((r.kind, outcome, r.code))


def status_class(key):
    outcome = key.split(" ", 1)[1]
    if not outcome.isdigit():
        return "client_error"
    st = int(outcome)
    return "2xx" if st < 300 else "503" if st == 503 else "4xx" if st < 500 else "5xx_other"


def window_rows(win):
    rows = []
    for k in sorted(win.w):
        s = win.w[k]
        by = {}
        for key, n in s["count"].items():
            c = status_class(key)
            if key.startswith("oversize_chunked") and c == "client_error":
                c = "cut_off"
            by[c] = by.get(c, 0) + n
        rss = [kb for _, kb, _ in s["samples"]]
        fds = [n for _, _, n in s["samples"]]
        rows.append({
            "window": k, "from_min": k * win.window_s / 60, "to_min": (k + 1) * win.window_s / 60,
            "requests": sum(s["count"].values()), "by_class": by, "by_kind": dict(sorted(s["count"].items())),
            "good_ok": len(s["lat"]),
            "p50_ms": pct(s["lat"], 50), "p90_ms": pct(s["lat"], 90), "p99_ms": pct(s["lat"], 99),
            "max_ms": max(s["lat"], default=float("nan")),
            "rss_median_mib": statistics.median(rss) / 1024 if rss else float("nan"),
            "rss_max_mib": max(rss) / 1024 if rss else float("nan"),
            "fds_min": min(fds, default=-1), "fds_max": max(fds, default=-1),
            "reloads": s["reloads"], "unexpected": len(s["unexpected"]),
            "unexpected_examples": s["unexpected"][:5],
        })
    return rows


def table(rows):
    out = ["| window (min) | requests | 2xx | 4xx | 503 | other 5xx | cut off (chunked) | "
           "client errors | unexpected | good p50 / p90 / p99 / max ms | RSS median / max MiB | "
           "fds min-max | reloads ok/failed-as-expected |",
           "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        b = r["by_class"]
        rel = r["reloads"]
        out.append(
            f"| {r['from_min']:.0f}-{r['to_min']:.0f} | {r['requests']} | {b.get('2xx', 0)} | "
            f"{b.get('4xx', 0)} | {b.get('503', 0)} | {b.get('5xx_other', 0)} | {b.get('cut_off', 0)} | "
            f"{b.get('client_error', 0)} | {r['unexpected']} | {r['p50_ms']:.0f} / {r['p90_ms']:.0f} / "
            f"{r['p99_ms']:.0f} / {r['max_ms']:.0f} | {r['rss_median_mib']:.0f} / "
            f"{r['rss_max_mib']:.0f} | {r['fds_min']}-{r['fds_max']} | "
            f"{sum(1 for k, ok in rel if k == 'applied' and ok)}/"
            f"{sum(1 for k, ok in rel if k == 'broken' and ok)} of {len(rel)} |")
    return "\n".join(out)


# ---- the run ----------------------------------------------------------------------------------
async def sampler(d, win, every, stop):
    while not stop.is_set():
        rss, fds = loadgen.proc_rss_kb(d.pid), loadgen.proc_fds(d.pid)
        t = time.monotonic()
        win.slot(t)["samples"].append((t, rss, fds))
        try:
            await asyncio.wait_for(stop.wait(), every)
        except asyncio.TimeoutError:
            pass


async def reloads(rel, win, every, stop):
    loop = asyncio.get_running_loop()
    while True:
        try:
            await asyncio.wait_for(stop.wait(), every)
            return
        except asyncio.TimeoutError:
            pass
        broken = rel.n % 4 == 3
        t = time.monotonic()
        ok = await loop.run_in_executor(None, rel.reload, broken)
        win.slot(t)["reloads"].append(("broken" if broken else "applied", ok))
        print(f"  [{(t - win.t0) / 60:5.1f} min] reload {rel.n} "
              f"({'broken config' if broken else 'applied'}): {'as expected' if ok else 'WRONG'}",
              flush=True)


async def load(d, mix, seconds, rate, win, args):
    stop = asyncio.Event()
    rel = args.reloader
    sched = [i / rate for i in range(int(seconds * rate))]
    done_windows = set()

    def on_result(i, r):
        win.add(r)
        r.body = b""
        k = int((r.sched - win.t0) // win.window_s)
        if k - 1 >= 0 and k - 1 not in done_windows and r.sched - win.t0 > k * win.window_s + 60:
            done_windows.add(k - 1)
            rows = [x for x in window_rows(win) if x["window"] == k - 1]
            print(table(rows), flush=True)

    tasks = [asyncio.ensure_future(sampler(d, win, args.sample_seconds, stop)),
             asyncio.ensure_future(reloads(rel, win, args.reload_seconds, stop))]
    res = await loadgen.open_loop("127.0.0.1", d.port, mix, sched, timeout=120.0,
                                  max_conns=64, on_result=on_result)
    stop.set()
    await asyncio.gather(*tasks)
    return res


def warm_up(d, mix, rel):
    """Every kind a few times, one applied and one broken reload: the steady state."""
    print("warm-up: every kind of request, one applied and one broken reload", flush=True)
    win = Windows(time.monotonic(), 1e9, 1e9)
    asyncio.run(loadgen.open_loop("127.0.0.1", d.port, mix, [i / 4 for i in range(60)],
                                  timeout=120.0, on_result=lambda i, r: win.add(r)))
    ok = rel.reload(False) and rel.reload(True)
    rel.n = 0
    rel.log.clear()
    asyncio.run(loadgen.open_loop("127.0.0.1", d.port, mix, [i / 4 for i in range(40)],
                                  timeout=120.0, on_result=lambda i, r: win.add(r)))
    bad = [u for s in win.w.values() for u in s["unexpected"]]
    return ok, bad


def verdict(rows, start, end, rel, wrong_reloads):
    tol = lambda base: max(16 * 1024, 0.05 * base)  # noqa: E731 (KiB)
    unexpected = sum(r["unexpected"] for r in rows)
    other5xx = sum(r["by_class"].get("5xx_other", 0) for r in rows)
    cerr = sum(r["by_class"].get("client_error", 0) for r in rows)
    n503 = sum(r["by_class"].get("503", 0) for r in rows)
    first, last = rows[0]["rss_median_mib"] * 1024, rows[-1]["rss_median_mib"] * 1024
    v = [
        ("every answer allowed for its kind", unexpected == 0, f"{unexpected} unexpected"),
        ("no client-side error (resets, timeouts) but the chunked cut-off", cerr == 0, f"{cerr}"),
        ("no 5xx but 503", other5xx == 0, f"{other5xx} other 5xx; {n503} x 503"),
        ("every reload did what it should", not wrong_reloads and rel.n > 0,
         f"{rel.n} reloads, {len(wrong_reloads)} wrong"),
        ("RSS flat (idle): end <= start + max(16 MiB, 5%)", end[0] <= start[0] + tol(start[0]),
         f"start {start[0] / 1024:.1f} MiB, end {end[0] / 1024:.1f} MiB"),
        ("RSS flat (under load): last window median <= first + max(16 MiB, 5%)",
         last <= first + tol(first), f"first {first / 1024:.1f} MiB, last {last / 1024:.1f} MiB"),
        ("fds flat (idle): end within 2 of start", abs(end[1] - start[1]) <= 2,
         f"start {start[1]}, end {end[1]}"),
    ]
    return v


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--minutes", type=float, default=10)
    ap.add_argument("--window-minutes", type=float, default=10)
    ap.add_argument("--rate", type=float, default=2.0, help="requests per second (open loop)")
    ap.add_argument("--reload-seconds", type=float, default=120)
    ap.add_argument("--sample-seconds", type=float, default=10)
    ap.add_argument("--seed", type=int, default=8)
    ap.add_argument("--out", default=os.path.join(ROOT, "build", "soak"))
    args = ap.parse_args()
    build = os.environ.get("BUILD", os.path.join(ROOT, "build"))
    models_dir = os.environ.get("MODELS", os.path.join(build, "models"))
    binary = os.environ.get("CLASSIFYD", os.path.join(build, "classifyd"))
    os.makedirs(args.out, exist_ok=True)
    rng = random.Random(args.seed)
    good, source = load_good(rng)
    bad = load_bad(good, rng)
    print(f"soak: {args.minutes:g} min at {args.rate:g} requests/s, windows of "
          f"{args.window_minutes:g} min, reload every {args.reload_seconds:g} s; inputs: {source}",
          flush=True)
    conf = os.path.join(args.out, "classifyd.conf")
    write_config(conf, models_dir, 2000)
    d = Daemon(binary, ["--config", conf], os.path.join(args.out, "daemon.log"))
    try:
        return run(d, args, good, bad, conf, models_dir, source)
    finally:
        rc = d.stop()
        print(f"daemon stopped: exit {rc}")


def run(d, args, good, bad, conf, models_dir, source):
    if not d.wait_ready(300):
        print("soak: the daemon never became ready\n" + d.text()[-2000:])
        return 1
    mix = Mix(good, bad, args.seed)
    rel = Reloader(d, conf, models_dir)
    args.reloader = rel
    ok, bad_warm = warm_up(d, mix, rel)
    if not ok or bad_warm:
        print(f"soak: warm-up failed (reloads ok: {ok}; unexpected: {bad_warm[:10]})")
        return 1
    start = idle_reading(d)
    print(f"start (idle): RSS {start[0] / 1024:.1f} MiB, {start[1]} fds", flush=True)
    win = Windows(time.monotonic() + 0.02, args.window_minutes * 60, args.minutes * 60)
    t0 = time.monotonic()
    res = asyncio.run(load(d, mix, args.minutes * 60, args.rate, win, args))
    elapsed = time.monotonic() - t0
    end = idle_reading(d)
    print(f"end (idle): RSS {end[0] / 1024:.1f} MiB, {end[1]} fds", flush=True)
    rows = window_rows(win)
    wrong = [x for x in rel.log if not x[2]]
    v = verdict(rows, start, end, rel, wrong)
    m = metrics(d.url)
    report = {
        "minutes": args.minutes, "rate": args.rate, "elapsed_s": elapsed, "inputs": source,
        "requests": len(res), "served_200": sum(r.status == 200 for r in res),
        "start_idle": {"rss_mib": start[0] / 1024, "fds": start[1]},
        "end_idle": {"rss_mib": end[0] / 1024, "fds": end[1]},
        "reloads": [{"t_min": (t - t0) / 60, "kind": k, "ok": ok, "seconds": s}
                    for t, k, ok, s in rel.log],
        "windows": rows, "verdict": [{"check": n, "ok": ok, "detail": det} for n, ok, det in v],
        "daemon_metrics": {k: v for k, v in m.items() if k.startswith(("classifyd_http", "classifyd_reload", "process_"))},
    }
    with open(os.path.join(args.out, "report.json"), "w") as f:
        json.dump(report, f, indent=1, default=str)
    md = [f"# classifyd soak: {args.minutes:g} min, {args.rate:g} requests/s", "",
          f"Inputs: {source}. Requests: {len(res)}, answered 200: {report['served_200']}. "
          f"Reloads: {rel.n} ({sum(1 for x in rel.log if x[1] == 'broken')} with a broken config).",
          f"Idle start: RSS {start[0] / 1024:.1f} MiB, {start[1]} fds; idle end: RSS "
          f"{end[0] / 1024:.1f} MiB, {end[1]} fds.", "", table(rows), "", "Verdict:", ""]
    md += [f"- {'PASS' if ok else 'FAIL'} {n}: {det}" for n, ok, det in v]
    kinds = {}
    for r in rows:
        for key, n in r["by_kind"].items():
            kinds[key] = kinds.get(key, 0) + n
    md += ["", "Outcomes by kind (whole run): " + ", ".join(f"{k}: {n}" for k, n in sorted(kinds.items()))]
    text = "\n".join(md) + "\n"
    with open(os.path.join(args.out, "report.md"), "w") as f:
        f.write(text)
    print("\n" + text)
    for r in rows:
        for u in r["unexpected_examples"]:
            print("  unexpected:", u)
    return 0 if all(ok for _, ok, _ in v) else 1


if __name__ == "__main__":
    sys.exit(main())
