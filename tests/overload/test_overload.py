#!/usr/bin/python3
"""Overload behaviour of the daemon (issue 8 item 4; `make test-overload`, 45-60 s).

Measures, in the test itself, the rate resnet18 sustains here (a daemon that never refuses;
closed loop, 16 keep-alive clients, 6 s), then serves it again sized for that speed: a queue of
about 1.5 s of work and request_deadline_ms at 80% of a full queue's wait, so that refusals come
from the deadline-aware admission as well as from the queue bound. Then one open-loop schedule,
every request timed from its scheduled send time:

  baseline   0.4 x the sustainable rate, 4 s (at least 12 requests)
  burst      3 x that rate, 15 s
  recovery   0.4 x that rate, judged from the time the burst's backlog needs at most (its
             deadline + 2 batches + 1 s, at least 3 s) for 5 s more (at least 12 requests)

and checks: every request gets an HTTP answer (no reset, no timeout); only 200 and 503 (504 at
most 10% of the admitted: admission trusts the engine's recent speed, and on a shared machine
that speed can drop after a job was admitted); during the burst at least half the excess (the
offered rate over the rate 200s came back at) is refused with 503 `queue_full` and an integer
Retry-After in 1..60 that stays near the queue's expected wait;
the refusals are fast (p50 under 10%, p99 under 50% of one batch's engine time); every
admitted request is answered within request_deadline_ms plus two batches and 0.5 s; /healthz
keeps answering; /readyz says 503 during the burst and 200 after it; the daemon's RSS (from /proc, every 50 ms) stays under a ceiling computed from
its RSS before the burst, the queue length and the body size; after the burst everything is
200 again and the p50 latency is back within 3x of the baseline's (or half a batch above it,
the engine's speed moving that much on a shared machine); the daemon's own 503
counter matches what the clients saw; SIGTERM exits 0.

The assertions are ratios with generous margins (two cores shared with other jobs), yet the test
fails without admission control. Run with admission off (a queue that never fills, a deadline
that never passes):

  OVERLOAD_QUEUE_LENGTH=100000 OVERLOAD_DEADLINE_MS=600000 make test-overload

and it fails the 503, latency, RSS and recovery checks: the excess piles up in the queue,
every answer waits behind it, and the bodies held in the queue push the RSS over the ceiling
(README, Reliability, has the output of such a run).

env: BUILD, MODELS (resnet18.onnx), CLASSIFYD (default $BUILD/classifyd),
     OVERLOAD_QUEUE_LENGTH, OVERLOAD_DEADLINE_MS (default: sized from the measured rate).
"""
import asyncio
import io
import math
import os
import shutil
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "pylib"))
import checks  # noqa: E402
from checks import check  # noqa: E402
from daemon import Daemon, http_get, metrics  # noqa: E402
import loadgen  # noqa: E402
from loadgen import pct  # noqa: E402

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BUILD = os.environ.get("BUILD", os.path.join(ROOT, "build"))
MODELS = os.environ.get("MODELS", os.path.join(BUILD, "models"))
BIN = os.environ.get("CLASSIFYD", os.path.join(BUILD, "classifyd"))
PHOTO = os.path.join(ROOT, "..", "shared", "data", "photos", "cat.jpg")
QUEUE = int(os.environ.get("OVERLOAD_QUEUE_LENGTH", "0"))  # 0: sized from the measured rate
DEADLINE_MS = int(os.environ.get("OVERLOAD_DEADLINE_MS", "0"))
MAX_BATCH = 8
BASE_RATE, BURST_RATE = 0.4, 3.0
BASE_S, BURST_S, RECOVER_S, SETTLE_S = 4.0, 15.0, 5.0, 3.0
MIN_QUIET = 12  # requests in the baseline and in the judged part of the recovery, at least
CLIENT_TIMEOUT = 30.0  # the measuring phases; the burst's is sized from the deadline
MiB = 1 << 20
TMP = tempfile.mkdtemp(prefix="classifyd-overload-")  # daemon logs; removed when all passed


def image_bytes():
    if os.path.exists(PHOTO):
        with open(PHOTO, "rb") as f:
            return f.read(), PHOTO
    from PIL import Image  # Debian's python3-pil
    im = Image.radial_gradient("L").resize((500, 375)).convert("RGB")
    buf = io.BytesIO()
    im.save(buf, "JPEG", quality=90)
    return buf.getvalue(), "a generated 500x375 JPEG (../shared/data absent)"


class Sampler(threading.Thread):
    """VmRSS of the daemon every 50 ms; GET /healthz (latency) and /readyz every 250 ms."""

    def __init__(self, d):
        super().__init__(daemon=True)
        self.d, self.stop_ev = d, threading.Event()
        self.rss = []       # (t, KiB)
        self.health = []    # (t, status, ms)
        self.ready = []     # (t, status)

    def run(self):
        n = 0
        while not self.stop_ev.wait(0.05):
            self.rss.append((time.monotonic(), loadgen.proc_rss_kb(self.d.pid)))
            n += 1
            if n % 5 == 0:
                t0 = time.monotonic()
                st = http_get(self.d.url + "/healthz", 5.0)[0]
                self.health.append((t0, st, (time.monotonic() - t0) * 1e3))
                self.ready.append((time.monotonic(), http_get(self.d.url + "/readyz", 5.0)[0]))

    def peak_kb(self, t0, t1):
        return max((kb for t, kb in self.rss if t0 <= t <= t1), default=0)


def sustainable_rate(d, req):
    """Images/s answered 200 by 16 closed-loop clients over the last 5 of 6 s."""
    res = asyncio.run(loadgen.closed_loop("127.0.0.1", d.port, lambda i: req, 16, 6.0,
                                          CLIENT_TIMEOUT))
    ok = [r for r in res if r.status == 200]
    t_first = min(r.sent for r in res)
    late = [r for r in ok if r.done >= t_first + 1.0]
    span = max(r.done for r in ok) - (t_first + 1.0) if late else 0
    return (len(late) / span if span > 0 else 0.0), res


def summarize(label, rs, from_sched=True):
    lat = [r.latency_ms(from_sched) for r in rs if r.done is not None]
    return (f"{label}: n={len(rs)} p50 {pct(lat, 50):.0f} ms p90 {pct(lat, 90):.0f} ms "
            f"p99 {pct(lat, 99):.0f} ms max {max(lat, default=float('nan')):.0f} ms")


def start_daemon(queue, deadline_ms, tag):
    log = os.path.join(TMP, f"{tag}.log")
    return Daemon(BIN, ["--model", "resnet18=" + os.path.join(MODELS, "resnet18.onnx"),
                        "--queue-length", str(queue), "--request-deadline-ms", str(deadline_ms),
                        "--max-batch", str(MAX_BATCH)], log)


def measure(req):
    """The sustainable rate, on a daemon whose queue and deadline never refuse."""
    d = start_daemon(100000, 600000, "measure")
    try:
        if not check("measuring daemon ready", d.wait_ready(60), d.text()[-1000:]):
            return 0
        asyncio.run(loadgen.closed_loop("127.0.0.1", d.port, lambda i: req, 2, 1.5,
                                        CLIENT_TIMEOUT))
        rate, closed = sustainable_rate(d, req)
    finally:
        rc = d.stop()
    bad = [r for r in closed if r.status != 200]
    check("closed loop: every request 200", not bad, [(r.status, r.error) for r in bad[:5]])
    check("measuring daemon: SIGTERM exit 0", rc == 0, rc)
    return rate


def sizing(rate, defaults=False):
    """Queue length and deadline for the measured speed: the queue holds about 1.5 s of
    work, and the deadline is 80% of a full queue's wait (the jobs ahead and one running
    batch), so the deadline-aware admission, not only the queue bound, refuses work."""
    queue = max(2 * MAX_BATCH, min(64, round(1.5 * rate)))
    deadline_ms = max(1000, round(0.8 * (queue + MAX_BATCH) / rate * 1e3))
    if defaults:
        return queue, deadline_ms
    return QUEUE or queue, DEADLINE_MS or deadline_ms
    return queue, deadline_ms


def run():
    body, source = image_bytes()
    print(f"overload: resnet18, image {source} ({len(body)} bytes)")
    req = loadgen.Request("/classify", body, kind="jpeg", headers={"Content-Type": "image/jpeg"})
    rate = measure(req)
    if not check("closed loop: a sustainable rate was measured", rate > 0.5, rate):
        return
    queue, deadline_ms = sizing(rate)
    batch_ms = MAX_BATCH / rate * 1e3
    print(f"  sustainable: {rate:.1f} images/s (16 closed-loop clients); one batch of "
          f"{MAX_BATCH} ~ {batch_ms:.0f} ms; serving with queue_length {queue}, "
          f"request_deadline_ms {deadline_ms}")
    d = start_daemon(queue, deadline_ms, "overload")
    try:
        if not check("daemon ready", d.wait_ready(60), d.text()[-1000:]):
            return
        asyncio.run(loadgen.closed_loop("127.0.0.1", d.port, lambda i: req, 2, 1.5,
                                        CLIENT_TIMEOUT))
        phases_and_checks(d, req, body, rate, queue, deadline_ms)
    finally:
        rc = d.stop()
        check("SIGTERM after the load: exit 0", rc == 0, (rc, d.text()[-1500:]))


def phases_and_checks(d, req, body, rate, queue, deadline_ms):
    batch_ms = MAX_BATCH / rate * 1e3
    settle = max(SETTLE_S, min(15.0, (deadline_ms + 2 * batch_ms) / 1e3 + 1.0))
    base_s = max(BASE_S, MIN_QUIET / (BASE_RATE * rate))  # enough answers for a p50
    rec_s = max(RECOVER_S, MIN_QUIET / (BASE_RATE * rate))
    sched = loadgen.phases((BASE_RATE * rate, base_s), (BURST_RATE * rate, BURST_S),
                           (BASE_RATE * rate, settle + rec_s))
    # Every admitted request should be answered by deadline + 2 batches + 0.5 s; the
    # client waits twice that (at most 2 minutes: admission off, nothing would be refused).
    timeout = min(120.0, max(CLIENT_TIMEOUT, 2 * (deadline_ms + 2 * batch_ms + 500) / 1e3))
    m0 = metrics(d.url)
    sampler = Sampler(d)
    sampler.start()
    time.sleep(0.3)
    t_start = time.monotonic()
    res = asyncio.run(loadgen.open_loop("127.0.0.1", d.port, lambda i: req,
                                        [o for o, _ in sched], timeout))
    time.sleep(0.3)
    sampler.stop_ev.set()
    sampler.join(5)
    m1 = metrics(d.url)
    by = {0: [], 1: [], 2: []}
    for r, (_, k) in zip(res, sched):
        by[k].append(r)
    t_burst0 = t_start + base_s
    t_burst1 = t_burst0 + BURST_S
    judge(by, rate, batch_ms, body, sampler, (t_start, t_burst0, t_burst1, settle), m0, m1,
          queue, deadline_ms)


def judge(by, rate, batch_ms, body, sampler, times, m0, m1, queue, deadline_ms):
    base, burst, rec = by[0], by[1], by[2]
    every = base + burst + rec
    t_start, t_burst0, t_burst1, settle = times
    print("  " + summarize("baseline 200", [r for r in base if r.status == 200]))
    ok_b = [r for r in burst if r.status == 200]
    full = [r for r in burst if r.status == 503]
    print("  " + summarize(f"burst 200 (from send; {len(ok_b)} of {len(burst)})", ok_b, False))
    print("  " + summarize(f"burst 503 (from send; {len(full)} of {len(burst)})", full, False))

    errors = [r for r in every if r.error]
    check("every request got an HTTP answer (no reset, no timeout)", not errors,
          f"{len(errors)} failed: " + str(sorted({r.error for r in errors})))
    codes = sorted({r.status for r in every if not r.error})
    admitted = [r for r in every if r.status in (200, 504)]
    n504 = sum(r.status == 504 for r in every)
    # 10%: with the engine stalled for seconds by other jobs, jobs admitted just before
    # miss their deadline; an admission that ignored the deadline (queue bound only, the
    # deadline at 80% of a full queue's wait) would send 504 to a fifth of the admitted.
    check("only 200 and 503 (504 at most 10% of the admitted)",
          set(codes) <= {200, 503, 504} and n504 <= 0.10 * max(1, len(admitted)),
          f"codes {codes}, 504: {n504} of {len(admitted)} admitted")
    if n504:  # admitted on the engine's recent speed, then the machine slowed down
        print("  504s at (s into the burst, ms from send):",
              [(round(r.sched - t_burst0, 2), round(r.latency_ms(False)))
               for r in every if r.status == 504][:20])
    check("baseline: every request 200", all(r.status == 200 for r in base),
          sorted({r.status for r in base}))

    # How overloaded the burst really was: the engine's speed on a shared machine moves
    # between the measurement and the burst, so the share to refuse is judged against the
    # rate answers actually came at during the burst (without admission control that is
    # the engine's rate too, and nothing is refused).
    served = sum(1 for r in every if r.status == 200 and t_burst0 <= r.done <= t_burst1)
    offered = len(burst) / BURST_S
    excess = max(0.0, 1 - served / BURST_S / offered)
    need = max(0.05, 0.5 * excess)
    print(f"  burst: offered {offered:.1f}/s, answered 200 at {served / BURST_S:.1f}/s: "
          f"excess {excess:.0%}")
    check(f"burst: at least {need:.0%} refused with 503 (half the excess)",
          len(full) >= need * len(burst), f"{len(full)} of {len(burst)}")
    check("burst: some admitted (200)", len(ok_b) >= 0.1 * len(burst), f"{len(ok_b)} of {len(burst)}")
    check("every 503 is queue_full", all(r.code == "queue_full" for r in full),
          sorted({r.code for r in full}, key=str))
    # Retry-After is the queue's expected wait (queue length x engine time per image),
    # rounded up to whole seconds; allow 4x for the machine's speed moving.
    ra = [r.retry_after for r in full]
    print("  Retry-After values (s: count):",
          {v: ra.count(v) for v in sorted(set(ra), key=str)})
    ra_max = math.ceil(4 * (queue + MAX_BATCH) / rate) + 1
    check(f"503 Retry-After: integer seconds in 1..{ra_max} "
          f"(full queue's wait ~{(queue + MAX_BATCH) / rate:.1f} s)",
          full and all(isinstance(v, int) and 1 <= v <= ra_max for v in ra),
          sorted(set(map(str, ra)))[:10])

    l503 = [r.latency_ms(False) for r in full]
    p50_503, p99_503 = pct(l503, 50), pct(l503, 99)
    check(f"503s are fast: p50 {p50_503:.0f} ms <= 10% of a batch's engine time "
          f"({batch_ms:.0f} ms)", full and p50_503 <= 0.1 * batch_ms)
    check(f"503s are fast: p99 {p99_503:.0f} ms <= 50% of a batch's engine time",
          full and p99_503 <= 0.5 * batch_ms)

    allow_ms = deadline_ms + 2 * batch_ms + 500
    worst = max((r.latency_ms(False) for r in admitted), default=0)
    check(f"admitted requests answered within the deadline + 2 batches + 0.5 s "
          f"(worst {worst:.0f} ms <= {allow_ms:.0f} ms)", worst <= allow_ms)

    hb = [(st, ms) for t, st, ms in sampler.health if t_burst0 <= t <= t_burst1]
    check("/healthz answers 200 during the burst, p99 <= max(250 ms, a batch's time)",
          hb and all(st == 200 for st, _ in hb)
          and pct([ms for _, ms in hb], 99) <= max(250, batch_ms),
          f"{len(hb)} probes, statuses {sorted({st for st, _ in hb})}, "
          f"p99 {pct([ms for _, ms in hb], 99):.0f} ms")

    rb = [st for t, st in sampler.ready if t_burst0 <= t <= t_burst1]
    check("/readyz says 503 during the burst (a balancer would send the excess elsewhere)",
          503 in rb, f"{len(rb)} probes: {sorted(set(rb))}")
    ra_end = [st for t, st in sampler.ready if t >= t_burst1 + settle]
    check("/readyz says 200 again after the burst", ra_end and ra_end[-1] == 200,
          f"{len(ra_end)} probes, last {ra_end[-1:]}")

    rss0 = sampler.peak_kb(t_start - 0.3, t_burst0) * 1024
    rss_peak = sampler.peak_kb(t_burst0, time.monotonic()) * 1024
    # Bodies held by admitted jobs: as many as the queue the test sizes for this speed
    # holds (not an overridden queue_length, which may be unbounded on purpose).
    held = min(queue, sizing(rate, defaults=True)[0])
    ceiling = rss0 + 64 * MiB + 2 * held * len(body)
    check(f"RSS bounded: peak {rss_peak / MiB:.0f} MiB <= {ceiling / MiB:.0f} MiB "
          f"(before the burst {rss0 / MiB:.0f} MiB + 64 MiB + 2 x {held} queued x body)",
          0 < rss_peak <= ceiling)

    settled = [r for r in rec if r.sched >= t_burst1 + settle]
    p50_base = pct([r.latency_ms() for r in base if r.status == 200], 50)
    p50_rec = pct([r.latency_ms() for r in settled if r.status == 200], 50)
    print("  " + summarize(f"recovery from +{settle:.1f} s", settled))
    check(f"recovery: every request 200 from {settle:.1f} s after the burst",
          settled and all(r.status == 200 for r in settled),
          sorted({(r.status, r.error) for r in settled}, key=str))
    # The engine's own speed moves by 2-3x on a shared machine, hence the half-batch
    # allowance; a backlog left by the burst (no admission control) costs tens of seconds.
    allow_rec = max(3 * p50_base, p50_base + batch_ms / 2)
    check(f"recovery: p50 {p50_rec:.0f} ms <= max(3 x baseline p50, baseline p50 + half a "
          f"batch) = {allow_rec:.0f} ms", p50_rec <= allow_rec)

    key = 'classifyd_http_requests_total{endpoint="classify",code="503"}'
    served = m1.get(key, 0) - m0.get(key, 0)
    seen = sum(r.status == 503 for r in every)
    check(f"/metrics counted the 503s the clients saw ({served:.0f} vs {seen})", served == seen)


if __name__ == "__main__":
    t0 = time.monotonic()
    run()
    print(f"overload: {time.monotonic() - t0:.0f} s")
    rc = checks.summary("overload")
    if rc == 0:
        shutil.rmtree(TMP, ignore_errors=True)
    else:
        print(f"overload: daemon logs in {TMP}")
    sys.exit(rc)
