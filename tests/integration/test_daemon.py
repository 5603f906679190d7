#!/usr/bin/python3
"""Integration tests of the classifyd daemon: real daemon, real models, curl and urllib.

Starts classifyd on free loopback ports (port 0, read back from the log) with
random-weight models from $MODELS, and checks every endpoint, every error status,
200 concurrent requests against `classifyd classify`, metrics, graceful SIGTERM
and configuration errors. Every request and wait is bounded; every daemon is
killed at the end. Ends with `integration: N passed, M failed`.
"""
import concurrent.futures as cf
import io
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request

from PIL import Image

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "pylib"))
import checks  # noqa: E402
from checks import check  # noqa: E402

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BUILD = os.environ.get("BUILD", os.path.join(ROOT, "build"))
MODELS = os.environ.get("MODELS", os.path.join(BUILD, "models"))
BIN = os.environ.get("CLASSIFYD", os.path.join(BUILD, "classifyd"))
CLI = os.environ.get("CLI_CLASSIFYD", BIN)  # the binary whose `classify` gives the reference
PHOTOS = os.path.join(ROOT, "..", "shared", "data", "photos")
TMP = tempfile.mkdtemp(prefix="classifyd-it-")
R18 = os.path.join(MODELS, "resnet18.onnx")
GNET = os.path.join(MODELS, "googlenet.onnx")
# The drain tests need requests to pile up faster than one engine thread serves them,
# also on a fast machine and a fast engine: resnet152 at batch 1 is ~3x resnet50's work
# (resnet50 stopped piling up 50 uploads once the engine got faster). Under ASan+UBSan
# every forward is many times slower, and resnet50 keeps the run to a minute.
with open(BIN, "rb") as _f:
    SANITIZED = b"__asan_init" in _f.read()
DRAIN_MODEL = os.path.join(MODELS, "resnet50.onnx" if SANITIZED else "resnet152.onnx")
TIMEOUT = 120

daemons = []




class Daemon:
    def __init__(self, *args, env=None, cpus=None, cgroups=()):
        self.log_path = os.path.join(TMP, f"daemon{len(daemons)}.log")
        self.log = open(self.log_path, "w+b")

        def preexec():
            if cpus:
                os.sched_setaffinity(0, cpus)
            join_cgroups(cgroups)
        self.proc = subprocess.Popen([BIN, "--listen", "127.0.0.1:0", *args], stdout=self.log,
                                     stderr=subprocess.STDOUT, env=env,
                                     preexec_fn=preexec if cpus or cgroups else None)
        daemons.append(self)
        self.port = None
        deadline = time.time() + 30
        while time.time() < deadline and self.proc.poll() is None:
            m = re.search(rb"listening on \S+ \(port (\d+)\)", self.text().encode())
            if m:
                self.port = int(m.group(1))
                break
            time.sleep(0.05)
        if self.port is None:
            raise RuntimeError(f"daemon did not start: {self.text()}")
        self.url = f"http://127.0.0.1:{self.port}"

    def text(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def wait_ready(self, timeout=120):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if request(self.url + "/readyz")[0] == 200:
                return True
            time.sleep(0.1)
        return False

    def stop(self, sig=signal.SIGTERM, timeout=60):
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        return self.proc.returncode


def request(url, data=None, method=None, headers=None, timeout=TIMEOUT):
    """(status, headers, body bytes); status 0 on a connection failure."""
    req = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.headers, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read()
    except (urllib.error.URLError, ConnectionError, socket.timeout, OSError):
        return 0, {}, b""


def post(url, data, ctype="application/octet-stream", headers=None):
    h = {"Content-Type": ctype}
    h.update(headers or {})
    return request(url, data=data, method="POST", headers=h)


def multipart(fields):
    """fields: list of (name, filename or None, bytes) -> (body, content type)."""
    b = "----classifydboundary7MA4YWxkTrZu0gW"
    out = io.BytesIO()
    for name, filename, data in fields:
        out.write(f"--{b}\r\n".encode())
        disp = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename else "")
        out.write(f"Content-Disposition: {disp}\r\n".encode())
        if filename:
            out.write(b"Content-Type: application/octet-stream\r\n")
        out.write(b"\r\n" + data + b"\r\n")
    out.write(f"--{b}--\r\n".encode())
    return out.getvalue(), f"multipart/form-data; boundary={b}"


def curl_post(url, path):
    """POST a file with curl (Expect: 100-continue, as real clients do for big bodies)."""
    out = os.path.join(TMP, "curl.out")
    try:
        r = subprocess.run(["curl", "-s", "-m", "60", "-o", out, "-w", "%{http_code}",
                            "-H", "Content-Type: application/octet-stream",
                            "--data-binary", "@" + path, url], capture_output=True, timeout=90)
        return int(r.stdout or 0), {}, read(out) if os.path.exists(out) else b""
    except (subprocess.TimeoutExpired, ValueError):
        return 0, {}, b""


def write_tmp(name, data):
    path = os.path.join(TMP, name)
    with open(path, "wb") as f:
        f.write(data)
    return path


def error_code(body):
    try:
        return json.loads(body)["error"]["code"]
    except (ValueError, KeyError, TypeError):
        return None


def make_images():
    img = Image.new("RGB", (320, 240))
    px = img.load()
    for y in range(240):
        for x in range(320):
            px[x, y] = (x * 255 // 319, y * 255 // 239, (x * y) % 256)
    out = {}
    for fmt, ext in (("JPEG", "jpg"), ("PNG", "png"), ("WEBP", "webp"), ("GIF", "gif")):
        path = os.path.join(TMP, f"synthetic.{ext}")
        img.save(path, fmt)
        out[ext] = path
    big = os.path.join(TMP, "big.png")
    Image.new("RGB", (3000, 3000), (10, 200, 30)).save(big, "PNG")
    out["big"] = big
    with open(out["jpg"], "rb") as f:
        data = f.read()
    trunc = os.path.join(TMP, "truncated.jpg")
    with open(trunc, "wb") as f:
        f.write(data[: len(data) // 3])
    out["truncated"] = trunc
    if os.path.isdir(PHOTOS):
        for name in ("cat.jpg", "cat.png", "dog.jpg"):
            if os.path.exists(os.path.join(PHOTOS, name)):
                out["photo_" + name] = os.path.join(PHOTOS, name)
    else:
        print(f"  SKIP photos: {PHOTOS} not present (synthetic images only)")
    return out


def read(path):
    with open(path, "rb") as f:
        return f.read()


def cli_predictions(model, image):
    """Top-5 of `classifyd classify --model M --top-k 5 IMAGE` (one JSON object per image)."""
    try:
        r = subprocess.run([CLI, "classify", "--model", model, "--top-k", "5", image],
                           capture_output=True, timeout=300)
    except subprocess.TimeoutExpired:
        return None
    if r.returncode != 0:
        return None
    try:
        obj = json.loads(r.stdout.decode().splitlines()[0])
        return [(int(p["index"]), float(p["probability"])) for p in obj["predictions"]]
    except (ValueError, KeyError, IndexError, TypeError):
        return None


def same_predictions(a, b):
    return (len(a) == len(b) and [i for i, _ in a] == [i for i, _ in b]
            and all(abs(p - q) < 2e-4 for (_, p), (_, q) in zip(a, b)))


def answer_predictions(body):
    return [(p["index"], p["probability"]) for p in json.loads(body)["predictions"]]


def parse_metrics(text):
    """{(name, frozenset(labels)): value}; also validates HELP/TYPE and histograms."""
    samples, types, problems = {}, {}, []
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, typ = line.split(" ", 3)
            types[name] = typ
        elif line.startswith("#") or not line.strip():
            continue
        else:
            m = re.match(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{([^}]*)\})? (\S+)$', line)
            if not m:
                problems.append(line)
                continue
            labels = frozenset(re.findall(r'(\w+)="([^"]*)"', m.group(3) or ""))
            samples[(m.group(1), labels)] = float(m.group(4))
    for name, typ in types.items():
        if typ != "histogram":
            continue
        buckets = sorted(((float(dict(lb)["le"]), v) for (n, lb), v in samples.items()
                          if n == name + "_bucket"), key=lambda t: t[0])
        counts = [v for _, v in buckets]
        if counts != sorted(counts) or not buckets or buckets[-1][0] != float("inf"):
            problems.append(f"{name}: buckets not cumulative or no +Inf")
        elif samples.get((name + "_count", frozenset())) != counts[-1]:
            problems.append(f"{name}: _count != +Inf bucket")
        if (name + "_sum", frozenset()) not in samples:
            problems.append(f"{name}: no _sum")
    for (n, _), _ in samples.items():
        base = re.sub(r"_(bucket|sum|count)$", "", n)
        if n not in types and base not in types:
            problems.append(f"{n}: no # TYPE")
    return samples, problems


def metric(samples, name, **labels):
    return samples.get((name, frozenset(labels.items())), 0.0)


def get_metrics(d):
    st, _, body = request(d.url + "/metrics")
    return parse_metrics(body.decode()) if st == 200 else ({}, ["status %d" % st])


# ---- test groups -----------------------------------------------------------------------------

def test_endpoints(d, imgs):
    print("endpoints")
    st, _, body = request(d.url + "/healthz")
    check("GET /healthz 200", st == 200, st)
    check("GET /v2/health/live 200", request(d.url + "/v2/health/live")[0] == 200)
    check("GET /readyz 200", request(d.url + "/readyz")[0] == 200)
    check("GET /v2/health/ready 200", request(d.url + "/v2/health/ready")[0] == 200)
    st, _, body = request(d.url + "/models")
    models = json.loads(body)["models"] if st == 200 else []
    names = [m["name"] for m in models]
    check("GET /models lists both models", st == 200 and names == ["r18", "googlenet"], body[:200])
    r18 = models[0] if models else {}
    check("GET /models fields", r18.get("default") is True and r18.get("ready") is True
          and r18.get("input_shape") == [3, 224, 224] and r18.get("num_classes") == 1000
          and r18.get("parameters", 0) > 1e7 and r18.get("macs", 0) > 1e9
          and r18.get("path") == R18 and r18.get("untrained") is True, r18)
    for ext in ("jpg", "png", "webp"):
        st, _, body = post(d.url + "/classify", read(imgs[ext]))
        ok = st == 200
        if ok:
            a = json.loads(body)
            p = a["predictions"]
            ok = (a["model"] == "r18" and len(p) == 5 and a.get("untrained") is True
                  and all(p[i]["probability"] >= p[i + 1]["probability"] for i in range(4))
                  and all(k in a["timing_ms"] for k in ("queue", "preprocess", "inference", "total"))
                  and all(isinstance(x["label"], str) for x in p))
        check(f"POST /classify raw {ext}", ok, (st, body[:200]))
    for ext, field in (("jpg", "image"), ("png", "data"), ("webp", "upload")):
        body, ct = multipart([("note", None, b"hello"), (field, "x." + ext, read(imgs[ext]))])
        st, _, resp = post(d.url + "/classify?top_k=3", body, ct)
        raw = post(d.url + "/classify?top_k=3", read(imgs[ext]))[2]
        ok = st == 200 and answer_predictions(resp) == answer_predictions(raw)
        check(f"POST /classify multipart {ext} field={field} == raw", ok, (st, resp[:200]))
    body, ct = multipart([("other", "a.jpg", read(imgs["truncated"])), ("image", None, read(imgs["png"]))])
    st, _, resp = post(d.url + "/classify", body, ct)
    check("multipart: field 'image' beats an earlier file part", st == 200, (st, resp[:200]))
    st, _, resp = post(d.url + "/models/googlenet/classify?top_k=10", read(imgs["jpg"]), "image/jpeg")
    ok = st == 200 and json.loads(resp)["model"] == "googlenet" and len(json.loads(resp)["predictions"]) == 10
    check("POST /models/googlenet/classify top_k=10", ok, (st, resp[:200]))
    st, _, resp = post(d.url + "/classify?model=googlenet&top_k=1000", read(imgs["png"]))
    ok = st == 200 and len(json.loads(resp)["predictions"]) == 1000
    if ok:
        total = sum(p["probability"] for p in json.loads(resp)["predictions"])
        ok = abs(total - 1) < 1e-3
    check("top_k=1000 returns every class, probabilities sum to 1", ok, (st, resp[:100]))
    st, h, _ = request(d.url + "/classify", method="OPTIONS",
                       headers={"Origin": "https://example.com",
                                "Access-Control-Request-Method": "POST"})
    check("OPTIONS preflight", st == 204 and h.get("Access-Control-Allow-Origin") == "https://example.com"
          and "POST" in (h.get("Access-Control-Allow-Methods") or "")
          and h.get("Access-Control-Allow-Headers") and h.get("Access-Control-Max-Age")
          and "Origin" in (h.get("Vary") or ""), dict(h) if h else st)
    st, h, _ = request(d.url + "/healthz", headers={"Origin": "https://evil.example"})
    check("CORS: other origin not allowed, Vary: Origin", st == 200 and
          h.get("Access-Control-Allow-Origin") is None and "Origin" in (h.get("Vary") or ""))
    st, h, _ = request(d.url + "/models", headers={"Origin": "https://example.com"})
    check("CORS: allowed origin echoed", h.get("Access-Control-Allow-Origin") == "https://example.com")


def test_keepalive(d, imgs):
    import http.client
    c = http.client.HTTPConnection("127.0.0.1", d.port, timeout=60)
    statuses = []
    try:
        c.request("GET", "/healthz")
        r = c.getresponse(); r.read(); statuses.append(r.status)
        sock = c.sock
        c.request("POST", "/classify?top_k=1", body=read(imgs["jpg"]))
        r = c.getresponse(); r.read(); statuses.append(r.status)
        c.request("GET", "/nope")
        r = c.getresponse(); r.read(); statuses.append(r.status)
        reused = c.sock is sock and sock is not None
        c.request("HEAD", "/models")
        r = c.getresponse(); head_body = r.read(); statuses.append(r.status)
    except (OSError, http.client.HTTPException) as e:
        reused, head_body = False, repr(e)
    finally:
        c.close()
    check("keep-alive: one connection serves GET, POST, 404, HEAD", reused and statuses == [200, 200, 404, 200],
          statuses)
    check("HEAD has no body", head_body == b"", head_body)


def test_errors(d, imgs):
    print("errors")
    cases = [
        ("400 bad image", post(d.url + "/classify", read(imgs["truncated"])), 400, "invalid_image"),
        ("400 empty body", post(d.url + "/classify", b""), 400, "invalid_image"),
        ("400 bad top_k=0", post(d.url + "/classify?top_k=0", read(imgs["jpg"])), 400, "invalid_parameter"),
        ("400 bad top_k=abc", post(d.url + "/classify?top_k=abc", read(imgs["jpg"])), 400, "invalid_parameter"),
        ("400 bad top_k=1001", post(d.url + "/classify?top_k=1001", read(imgs["jpg"])), 400, "invalid_parameter"),
        ("404 unknown model (query)", post(d.url + "/classify?model=nope", read(imgs["jpg"])), 404, "model_not_found"),
        ("404 unknown model (path)", post(d.url + "/models/nope/classify", read(imgs["jpg"])), 404, "model_not_found"),
        ("404 unknown path", request(d.url + "/nope"), 404, "not_found"),
        ("413 body over the limit", curl_post(d.url + "/classify", write_tmp("3m.bin", b"\xff\xd8\xff" + b"0" * (3 << 20))), 413, "payload_too_large"),
        ("413 pixel budget", post(d.url + "/classify", read(imgs["big"])), 413, "image_too_large"),
        ("415 GIF", post(d.url + "/classify", read(imgs["gif"]), "image/gif"), 415, "unsupported_media_type"),
        ("415 text", post(d.url + "/classify", b"hello world"), 415, "unsupported_media_type"),
    ]
    for name, (st, _, body), want, code in cases:
        check(name, st == want and error_code(body) == code, (st, body[:200]))
    st, h, body = request(d.url + "/classify")
    check("405 GET /classify with Allow", st == 405 and "POST" in (h.get("Allow") or "")
          and error_code(body) == "method_not_allowed", (st, dict(h) if h else None))
    st, h, body = post(d.url + "/models", b"x")
    check("405 POST /models with Allow", st == 405 and "GET" in (h.get("Allow") or ""), st)
    check("400 multipart without a file part",
          error_code(post(d.url + "/classify", *multipart([("note", None, b"hi")]))[2]) == "invalid_image")
    # A multipart type MHD cannot parse (one-character boundary; found by fuzz_multipart)
    # is a malformed upload, not a raw body answered 415.
    body, ct = multipart([("image", "a.png", b"\x89PNG\r\n\x1a\n")])
    body = body.replace(b"----classifydboundary7MA4YWxkTrZu0gW", b"B")
    st, _, resp = post(d.url + "/classify", body, "multipart/form-data; boundary=B")
    check("400 multipart with a boundary MHD refuses", st == 400 and error_code(resp) == "invalid_image",
          (st, resp[:200]))
    st, resp = chunked_over_limit(d.port)
    check("chunked body over the limit: read to its end, then 413 payload_too_large",
          st == 413 and error_code(resp.partition(b"\r\n\r\n")[2]) == "payload_too_large",
          resp[:200])


def chunked_over_limit(port):
    """Sends 4 MiB chunked with a 2 MiB limit, then reads: (status, response bytes).
    libmicrohttpd cannot answer mid-body; the daemon drops the rest and answers at its end."""
    s = socket.create_connection(("127.0.0.1", port), timeout=30)
    s.sendall(b"POST /classify HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
              b"Content-Type: application/octet-stream\r\n\r\n")
    chunk = b"%x\r\n" % 65536 + b"\xff" * 65536 + b"\r\n"
    out = b""
    try:
        for _ in range(64):
            s.sendall(chunk)
        s.sendall(b"0\r\n\r\n")
        while True:
            b = s.recv(65536)
            if not b:
                break
            out += b
    except OSError:
        pass
    finally:
        s.close()
    m = re.match(rb"HTTP/1\.1 (\d{3}) ", out)
    return (int(m.group(1)) if m else 0), out


def test_concurrency(d, imgs):
    print("200 concurrent requests vs `classifyd classify`")
    names = [k for k in imgs if k in ("jpg", "png", "webp") or k.startswith("photo_")]
    expected = {n: cli_predictions(R18, imgs[n]) for n in names}
    if not check("classifyd classify prints predictions", all(expected.values()),
                 {n: v for n, v in expected.items() if not v}):
        return
    before, _ = get_metrics(d)
    jobs = [names[i % len(names)] for i in range(200)]

    def one(name):
        st, _, body = post(d.url + "/classify?top_k=5", read(imgs[name]))
        return name, st, body

    with cf.ThreadPoolExecutor(max_workers=200) as ex:
        results = list(ex.map(one, jobs, timeout=600))
    bad = [(n, st, b[:120]) for n, st, b in results if st != 200]
    check("200 concurrent: every answer 200", not bad, bad[:3])
    wrong = [n for n, st, b in results if st == 200 and not same_predictions(answer_predictions(b), expected[n])]
    check("200 concurrent: predictions equal the CLI's", not wrong,
          wrong[:3] and (expected[wrong[0]], [answer_predictions(b) for n, st, b in results if n == wrong[0]][0]))
    batches = [json.loads(b).get("batch_size", 1) for _, st, b in results if st == 200]
    print(f"       batch sizes seen: max {max(batches) if batches else 0}")
    after, problems = get_metrics(d)
    check("metrics: valid Prometheus text (HELP/TYPE, cumulative buckets, _sum, _count)", not problems, problems[:5])
    delta = metric(after, "classifyd_http_requests_total", endpoint="classify", code="200") - \
        metric(before, "classifyd_http_requests_total", endpoint="classify", code="200")
    check("metrics: classify 200 counter moved by 200", delta == 200, delta)
    dq = metric(after, "classifyd_queue_wait_seconds_count") - metric(before, "classifyd_queue_wait_seconds_count")
    check("metrics: queue-wait histogram counted 200", dq == 200, dq)
    db = metric(after, "classifyd_batch_size_sum") - metric(before, "classifyd_batch_size_sum")
    check("metrics: batch-size sum counts 200 images", db == 200, db)
    forwards = metric(after, "classifyd_batch_size_count") - metric(before, "classifyd_batch_size_count")
    singles = metric(after, "classifyd_batch_size_bucket", le="1") - \
        metric(before, "classifyd_batch_size_bucket", le="1")
    check("dynamic batching: 200 concurrent images ran in fewer forwards, some batched",
          0 < forwards < 200 and singles < forwards and max(batches, default=0) > 1,
          {"forwards": forwards, "batch_size_1": singles, "max_batch_seen": max(batches, default=0)})
    names = ("classifyd_queue_depth", "classifyd_requests_in_flight", "classifyd_models_loaded")
    deadline = time.time() + 10  # a completion callback may trail the answer it follows
    while True:
        gauges = [metric(get_metrics(d)[0], n) for n in names]
        if gauges == [0, 1, 2] or time.time() > deadline:
            break
        time.sleep(0.05)
    check("metrics: idle gauges (queue 0, in flight 1: this scrape, 2 models)", gauges == [0, 1, 2], gauges)
    check("metrics: process_* present", all(metric(after, n) > 0 for n in (
        "process_resident_memory_bytes", "process_cpu_seconds_total", "process_open_fds",
        "process_start_time_seconds")))
    st, _, body = request(d.url + "/nope")
    after2, _ = get_metrics(d)
    check("metrics: 404 counter moves", metric(after2, "classifyd_http_requests_total", endpoint="other", code="404")
          == metric(after, "classifyd_http_requests_total", endpoint="other", code="404") + 1)


def test_queue_full(imgs):
    print("503 queue full")
    d = Daemon("--model", "r18=" + R18, "--queue-length", "1", "--max-batch", "1", "--workers", "1")
    if not check("queue-full daemon ready", d.wait_ready()):
        return
    data = read(imgs["jpg"])
    with cf.ThreadPoolExecutor(max_workers=24) as ex:
        results = list(ex.map(lambda _: post(d.url + "/classify", data), range(24), timeout=600))
    codes = [st for st, _, _ in results]
    full = [(h, b) for st, h, b in results if st == 503]
    check("burst: some 200, some 503 queue_full", codes.count(200) >= 1 and full
          and all(error_code(b) == "queue_full" for _, b in full), codes)
    check("503 carries Retry-After", full and all(h.get("Retry-After") for h, _ in full))
    check("burst: nothing but 200/503", set(codes) <= {200, 503}, codes)
    check("queue-full daemon exits 0 on SIGTERM", d.stop() == 0)


def test_cpu_affinity(imgs):
    print("threads sized from the CPUs the process may use (affinity, like taskset -c)")
    one = min(os.sched_getaffinity(0))
    d = Daemon("--model", "r18=" + R18, cpus={one})
    if not check("pinned daemon ready", d.wait_ready()):
        return
    st, _, body = request(d.url + "/models")
    m = json.loads(body)["models"][0] if st == 200 else {}
    check("pinned to one CPU: /models reports 1 engine thread", m.get("threads") == 1, m.get("threads"))
    check("/models reports weight and arena bytes", m.get("weight_bytes", 0) > 0 and m.get("arena_bytes", 0) > 0,
          {k: m.get(k) for k in ("weight_bytes", "arena_bytes")})
    check("pinned: log says 1 CPU, 1 engine thread, 1 worker, 1 HTTP thread",
          re.search(r"threads: 1 CPUs available; 1 engine threads per model .*1 decode workers "
                    r"\(between forwards\), 1 HTTP threads",
                    d.text()), d.text()[-400:])
    st, _, _ = post(d.url + "/classify", read(imgs["jpg"]))
    check("pinned daemon classifies", st == 200, st)
    check("pinned daemon exits 0", d.stop() == 0)
    if len(os.sched_getaffinity(0)) > 1:
        d = Daemon("--model", "r18=" + R18)
        if check("unpinned daemon ready", d.wait_ready()):
            st, _, body = request(d.url + "/models")
            n = json.loads(body)["models"][0].get("threads") if st == 200 else None
            want = len(os.sched_getaffinity(0))
            try:
                quota, period = open("/sys/fs/cgroup/cpu.max").read().split()
                if quota != "max":
                    want = min(want, -(-int(quota) // int(period)))
            except (OSError, ValueError):
                pass
            check("unpinned: engine threads = CPUs in the mask, capped by the cgroup quota", n == want, (n, want))
        d.stop()


def join_cgroups(dirs):
    """In a child before exec: move this process into each cgroup directory."""
    for d in dirs:
        with open(os.path.join(d, "cgroup.procs"), "w") as f:
            f.write(str(os.getpid()))


def make_v1_cgroups():
    """A parent cgroup with the limits and a child without, in the v1 memory and cpu
    hierarchies, as systemd lays out a slice and its service. Returns (parents, leaves)
    or None (with the reason printed) where they cannot be made: needs root and
    writable v1 cgroupfs mounts."""
    base = {c: f"/sys/fs/cgroup/{c}" for c in ("memory", "cpu")}
    if not all(os.path.isfile(os.path.join(b, "cgroup.procs")) for b in base.values()):
        return None, "no v1 memory and cpu hierarchies at /sys/fs/cgroup"
    name = f"classifyd-it-{os.getpid()}"
    parents = {c: os.path.join(b, name) for c, b in base.items()}
    try:
        for d in parents.values():
            os.makedirs(os.path.join(d, "svc"), exist_ok=True)
        with open(os.path.join(parents["cpu"], "cpu.cfs_period_us"), "w") as f:
            f.write("100000")
        with open(os.path.join(parents["cpu"], "cpu.cfs_quota_us"), "w") as f:
            f.write("100000")  # one CPU
    except OSError as e:
        remove_cgroups(parents)
        return None, f"cannot make cgroups: {e}"
    return parents, None


def remove_cgroups(parents):
    for d in parents.values():
        for sub in (os.path.join(d, "svc"), d):
            try:
                os.rmdir(sub)
            except OSError:
                pass


def test_cgroup_limits(imgs):
    print("limits of the daemon's own cgroup and its parent (a systemd service under a slice)")
    parents, why = make_v1_cgroups()
    if parents is None:
        print(f"  skip  cgroup limits: {why}")
        return
    leaves = [os.path.join(d, "svc") for d in parents.values()]
    small = ("--max-pixels", "1000000", "--upload-memory", "32M", "--workers", "1")
    try:
        with open(os.path.join(parents["memory"], "memory.limit_in_bytes"), "w") as f:
            f.write(str(1024 << 20))  # an ASan build alone uses about 320 MiB
        d = Daemon("--model", "r18=" + R18, *small, cgroups=leaves)
        if check("daemon in a limited cgroup ready", d.wait_ready()):
            check("log: the parent cgroup's 1024 MiB memory limit is the one applied",
                  re.search(r"memory limit 1024 MiB \(cgroup memory.limit_in_bytes\)", d.text()),
                  d.text()[-600:])
            check("log: the parent cgroup's quota of one CPU sizes the threads",
                  re.search(r"threads: 1 CPUs available; 1 engine threads per model", d.text()),
                  d.text()[-600:])
            st, _, body = request(d.url + "/models")
            n = json.loads(body)["models"][0].get("threads") if st == 200 else None
            check("/models: 1 engine thread under the one-CPU quota", n == 1, n)
            st, _, _ = post(d.url + "/classify", read(imgs["jpg"]))
            check("daemon in a limited cgroup classifies", st == 200, st)
        check("daemon in a limited cgroup exits 0", d.stop() == 0)
        with open(os.path.join(parents["memory"], "memory.limit_in_bytes"), "w") as f:
            f.write(str(100 << 20))
        r = subprocess.run([BIN, "--listen", "127.0.0.1:0", "--model", "r18=" + R18, *small],
                           capture_output=True, text=True, timeout=120,
                           preexec_fn=lambda: join_cgroups(leaves))
        check("a model that does not fit the parent's 100 MiB is refused at start-up",
              r.returncode != 0 and "does not fit" in r.stderr + r.stdout
              and "memory limit of 100 MiB" in r.stderr + r.stdout,
              (r.returncode, (r.stderr + r.stdout)[-600:]))
    finally:
        remove_cgroups(parents)


def test_deadline(imgs):
    print("504 deadline")
    d = Daemon("--model", "r18=" + R18, "--request-deadline-ms", "1")
    if not check("deadline daemon ready", d.wait_ready()):
        return
    st, _, body = post(d.url + "/classify", read(imgs["jpg"]))
    check("504 with a 1 ms deadline", st == 504 and error_code(body) == "deadline_exceeded", (st, body[:200]))
    check("deadline daemon exits 0", d.stop() == 0)


def load_in_flight(d, data, n, want):
    """n classify requests on their own connections; returns (threads, results, ok) once each
    of them is answered or in flight (uploaded, in the daemon) and at least `want` are in
    flight at that moment (the metrics request itself counts one). Not all n in flight: the
    engine answers the first ones while the last are still being sent (a ResNet-152 forward
    takes ~0.1 s on one thread). Answers are counted before the scrape, so a request
    finishing in between is missed (the loop waits longer), never counted twice."""
    results = [None] * n

    def one(i):
        results[i] = post(d.url + "/classify", data)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    deadline = time.time() + 60
    while time.time() < deadline:
        done = sum(1 for r in results if r is not None)
        s, _ = get_metrics(d)
        busy = metric(s, "classifyd_requests_in_flight") - 1
        if busy >= want and done + busy >= n:
            return threads, results, True
        time.sleep(0.02)
    return threads, results, False


def test_sigterm(imgs):
    print("SIGTERM with 60 requests sent, at least 30 in flight or queued")
    # The deadline is out of the way: 50 queued forwards take a while under ASan.
    d = Daemon("--model", "drain=" + DRAIN_MODEL, "--log-format", "json", "--threads", "1", "--max-batch", "1",
               "--queue-length", "64", "--drain-timeout", "300", "--request-deadline-ms", "900000")
    if not check("drain daemon ready", d.wait_ready()):
        return
    n = 60
    threads, results, loaded = load_in_flight(d, read(imgs["png"]), n, 30)
    check("all 60 requests in the daemon or answered, at least 30 in flight, before SIGTERM", loaded)
    s, _ = get_metrics(d)
    waiting = metric(s, "classifyd_queue_depth")
    d.proc.send_signal(signal.SIGTERM)
    time.sleep(0.2)
    refused = request(d.url + "/healthz", timeout=5)[0] == 0
    for t in threads:
        t.join(300)
    try:
        rc = d.proc.wait(300)
    except subprocess.TimeoutExpired:
        rc = None
    codes = [r[0] if r else None for r in results]
    check(f"all {n} answered 200 after SIGTERM ({waiting:.0f} were still queued)", codes == [200] * n, codes)
    check("new connections refused while draining", refused)
    check("exit code 0 after drain", rc == 0, rc)
    lines = [l for l in d.text().splitlines() if l.strip()]
    try:
        objs = [json.loads(l) for l in lines]
        reqs = [o for o in objs if o.get("msg") == "request"]
        ok = len(reqs) >= n and all(k in reqs[0] for k in ("time", "method", "path", "status",
                                                            "bytes_in", "bytes_out", "duration_ms", "model"))
    except ValueError:
        ok = False
    check("log_format=json: every line is JSON with the request fields", ok, lines[:2])


def test_second_sigterm(imgs):
    print("a second SIGTERM forces the exit")
    d = Daemon("--model", "drain=" + DRAIN_MODEL, "--threads", "1", "--max-batch", "1", "--drain-timeout", "300",
               "--request-deadline-ms", "900000")
    if not check("daemon ready", d.wait_ready()):
        return
    threads, results, loaded = load_in_flight(d, read(imgs["png"]), 60, 30)
    check("all 60 requests in the daemon or answered, at least 30 in flight", loaded)
    d.proc.send_signal(signal.SIGTERM)
    time.sleep(0.1)
    t0 = time.time()
    d.proc.send_signal(signal.SIGTERM)
    try:
        rc = d.proc.wait(30)
    except subprocess.TimeoutExpired:
        rc = None
    took = time.time() - t0
    for t in threads:
        t.join(120)
    unanswered = sum(1 for r in results if not r or r[0] != 200)
    check(f"second SIGTERM: exit 1 at once ({took:.2f} s, {unanswered} requests cut off)",
          rc == 1 and took < 5 and "second SIGTERM" in d.text(), (rc, took, d.text()[-300:]))


def expect_config_error(args, setting, cfg_text=None):
    if cfg_text is not None:
        path = os.path.join(TMP, "bad.conf")
        with open(path, "w") as f:
            f.write(cfg_text)
        args = ["--config", path, *args]
    try:
        r = subprocess.run([BIN, "--listen", "127.0.0.1:0", *args], capture_output=True, timeout=30)
    except subprocess.TimeoutExpired:
        return check(f"invalid {setting} -> exit 2", False, "timeout")
    err = r.stderr.decode("utf-8", "replace")
    return check(f"invalid {setting} -> exit 2 naming it", r.returncode == 2 and setting in err
                 and "listening" not in err, (r.returncode, err[-300:]))


def test_config():
    print("configuration errors")
    m = ["--model", "r18=" + R18]
    expect_config_error([*m, "--threads", "abc"], "engine.threads")
    expect_config_error([*m, "--queue-length", "0"], "engine.queue_length")
    expect_config_error([*m, "--log-level", "loud"], "log.level")
    expect_config_error([*m, "--body-limit", "12Q"], "server.body_limit")
    expect_config_error(["--model", "x=/nonexistent.onnx"], "model.x.path")
    expect_config_error([], "engine.workers", "[engine]\nworkers = -3\n[model.a]\npath = %s\n" % R18)
    expect_config_error([], "server.nope", "[server]\nnope = 1\n[model.a]\npath = %s\n" % R18)
    expect_config_error([], "model.a.crop", "[model.a]\npath = %s\ncrop = 0x5\n" % R18)
    r = subprocess.run([BIN, "--help"], capture_output=True, timeout=30)
    out = r.stdout.decode()
    check("--help lists every setting", r.returncode == 0 and all(f in out for f in (
        "--listen", "--model", "--threads", "--workers", "--queue-length", "--body-limit",
        "--max-pixels", "--request-deadline-ms", "--connection-timeout", "--drain-timeout",
        "--cors-origins", "--log-level", "--log-format")))


def test_config_file(imgs):
    print("configuration file")
    path = os.path.join(TMP, "good.conf")
    with open(path, "w") as f:
        f.write("[server]\nlisten = 127.0.0.1:1\nbody_limit = 1M\n[engine]\nqueue_length = 8\n"
                f"[model.first]\npath = {R18}\n[model.second]\npath = {R18}\ndefault = true\n")
    d = Daemon("--config", path)  # --listen (port 0) beats the file's port 1
    if check("config file + flag override: daemon starts", d.wait_ready()):
        st, _, body = post(d.url + "/classify", read(imgs["jpg"]))
        check("config file: default = true picks the model", st == 200 and json.loads(body)["model"] == "second")
        st, _, body = curl_post(d.url + "/classify", write_tmp("1100k.bin", b"\xff\xd8\xff" + b"0" * (1100 << 10)))
        check("config file: body_limit = 1M applied", st == 413, st)
    d.stop()


def main():
    for p in (BIN, R18, GNET):
        if not os.path.exists(p):
            print(f"integration: missing {p} (run make test-models)")
            print("integration: 0 passed, 1 failed")
            return 1
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # still run the cleanup below
    imgs = make_images()
    try:
        test_config()
        d = Daemon("--model", "r18=" + R18, "--model", "googlenet=" + GNET, "--body-limit", "2M",
                   "--max-pixels", "4000000", "--queue-length", "256", "--request-deadline-ms", "600000", "--cors-origins",
                   "https://example.com, https://other.example")
        if check("main daemon ready", d.wait_ready()):
            test_endpoints(d, imgs)
            test_errors(d, imgs)
            test_keepalive(d, imgs)
            test_concurrency(d, imgs)
        check("main daemon exits 0 on SIGTERM", d.stop() == 0)
        test_queue_full(imgs)
        test_deadline(imgs)
        test_cpu_affinity(imgs)
        test_cgroup_limits(imgs)
        test_config_file(imgs)
        test_sigterm(imgs)
        test_second_sigterm(imgs)
    except Exception as e:  # a crash of the driver is a failure, never a pass
        check("test driver", False, repr(e))
    finally:
        for d in daemons:
            if d.proc.poll() is None:
                d.proc.kill()
                d.proc.wait(10)
        asan = [d.log_path for d in daemons if "ERROR: AddressSanitizer" in d.text()
                or "runtime error:" in d.text() or "LeakSanitizer" in d.text()
                or "WARNING: ThreadSanitizer" in d.text()]
        check("no sanitizer reports in daemon logs", not asan, asan)
    if checks.failed:
        print(f"integration: daemon logs kept in {TMP}")
    else:
        shutil.rmtree(TMP, ignore_errors=True)
    return checks.summary("integration")


if __name__ == "__main__":
    sys.exit(main())
