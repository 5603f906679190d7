#!/usr/bin/python3
"""Scale-out on one host: three classifyd replicas behind HAProxy (docker/haproxy.cfg).

Runs the shipped docker/haproxy.cfg with only its addresses rewritten (free loopback
ports, a stats socket in a temporary folder), three replicas of $BUILD/classifyd serving
the random-weight resnet18 from $MODELS, and checks:
  - HAProxy's /readyz health checks put all three replicas in rotation;
  - under load, SIGKILL of one replica while it has requests in flight loses no client
    request: every one is answered 200 with predictions (HAProxy retries them elsewhere),
    and HAProxy counts the retries;
  - the killed replica is marked DOWN, and after a restart on the same port it turns UP
    again and answers requests (X-Served-By header set by the config).
Every wait is bounded; every process is stopped at the end. Ends with
`deploy-haproxy: N passed, M failed`.
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
CFG = os.environ.get("HAPROXY_CFG", os.path.join(ROOT, "docker", "haproxy.cfg"))
TMP = tempfile.mkdtemp(prefix="classifyd-haproxy-")
R18 = os.path.join(MODELS, "resnet18.onnx")
REPLICAS = ("c1", "c2", "c3")
LOAD_REQUESTS = int(os.environ.get("LOAD_REQUESTS", "150"))
LOAD_CLIENTS = 6

procs = []




def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def request(url, data=None, timeout=90):
    """(status, headers, body); status 0 when the connection fails."""
    h = {"Content-Type": "application/octet-stream"} if data is not None else {}
    req = urllib.request.Request(url, data=data, headers=h)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.headers, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read()
    except (urllib.error.URLError, ConnectionError, socket.timeout, OSError) as e:
        return 0, {}, str(e).encode()


class Proc:
    def __init__(self, name, argv):
        self.name = name
        self.log_path = os.path.join(TMP, f"{name}.log")
        self.log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(argv, stdout=self.log, stderr=subprocess.STDOUT)
        procs.append(self)

    def text(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def stop(self, sig=signal.SIGTERM, timeout=60):
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        return self.proc.returncode


def replica(name, port):
    return Proc(name, [BIN, "--listen", f"127.0.0.1:{port}", "--model", f"resnet18={R18}",
                       "--threads", "1", "--workers", "1", "--http-threads", "2"])


def wait_ready(port, timeout=120):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if request(f"http://127.0.0.1:{port}/readyz", timeout=5)[0] == 200:
            return True
        time.sleep(0.1)
    return False


def haproxy_cfg(front, stats_port, ports, sock):
    """The shipped config with its bind, server and stats socket addresses replaced."""
    with open(CFG) as f:
        text = f.read()
    n_bind = 0
    for name, port in (("classifyd", front), ("stats", stats_port)):
        text, n = re.subn(rf"(?m)^(frontend {name}\n\s*bind )\S+", rf"\g<1>127.0.0.1:{port}", text)
        n_bind += n
    text, n_sock = re.subn(r"(?m)^(\s*stats socket )\S+", rf"\g<1>{sock}", text)
    for name, port in ports.items():
        text, n = re.subn(rf"(?m)^(\s*server {name} )\S+", rf"\g<1>127.0.0.1:{port}", text)
        if n != 1:
            raise RuntimeError(f"{CFG}: no single 'server {name}' line")
    if n_bind != 2 or n_sock != 1 or len(re.findall(r"(?m)^\s*bind ", text)) != 2:
        raise RuntimeError(f"{CFG}: expected frontends classifyd and stats, one stats socket")
    path = os.path.join(TMP, "haproxy.cfg")
    with open(path, "w") as f:
        f.write(text)
    return path


def stats(sock):
    """{(proxy, server): row dict} from the stats socket's `show stat`."""
    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(5)
        s.connect(sock)
        s.sendall(b"show stat\n")
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    lines = data.decode().splitlines()
    head = lines[0].lstrip("# ").split(",")
    rows = {}
    for line in lines[1:]:
        if line:
            row = dict(zip(head, line.split(",")))
            rows[(row["pxname"], row["svname"])] = row
    return rows


def wait_status(sock, server, want, timeout=60):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            if stats(sock)[("classifyd", server)]["status"] == want:
                return True
        except (OSError, KeyError, IndexError):
            pass
        time.sleep(0.1)
    return False


def test_image():
    img = Image.effect_mandelbrot((320, 240), (-2.0, -1.2, 1.0, 1.2), 60).convert("RGB")
    out = io.BytesIO()
    img.save(out, "JPEG", quality=92)
    return out.getvalue()


def classify(url, body):
    status, headers, data = request(url + "/classify", body)
    ok = False
    if status == 200:
        try:
            ok = len(json.loads(data)["predictions"]) == 5
        except (ValueError, KeyError, TypeError):
            ok = False
    return status, ok, headers.get("X-Served-By", "") if headers else "", data[:200]


def load_with_kill(url, body, victim, sock):
    """LOAD_REQUESTS requests from LOAD_CLIENTS threads; SIGKILL victim mid-load."""
    results, lock = [], threading.Lock()
    counter = iter(range(LOAD_REQUESTS))
    killed = {}

    def client():
        while True:
            with lock:
                if next(counter, None) is None:
                    return
            r = classify(url, body)
            with lock:
                results.append(r)

    with cf.ThreadPoolExecutor(LOAD_CLIENTS) as ex:
        futs = [ex.submit(client) for _ in range(LOAD_CLIENTS)]
        deadline = time.time() + 120
        while time.time() < deadline and not killed:
            with lock:
                done = len(results)
            busy = int(stats(sock)[("classifyd", victim.name)]["scur"] or 0)
            if done >= LOAD_REQUESTS // 4 and busy > 0:
                victim.proc.kill()
                killed.update(at=done, in_flight=busy)
            time.sleep(0.01)
        cf.wait(futs, timeout=300)
    return results, killed


def main():
    for path, what in ((BIN, "classifyd binary"), (R18, "resnet18 test model")):
        if not os.path.exists(path):
            print(f"deploy-haproxy: missing {what} {path}")
            return 1
    if not shutil.which("haproxy"):
        print("deploy-haproxy: haproxy is not installed (scripts/deps.sh test)")
        return 1
    ports = {name: free_port() for name in REPLICAS}
    front, stats_port = free_port(), free_port()
    sock = os.path.join(TMP, "haproxy.sock")
    url = f"http://127.0.0.1:{front}"
    body = test_image()

    reps = {name: replica(name, port) for name, port in ports.items()}
    check("three replicas ready", all(wait_ready(p) for p in ports.values()))
    cfg = haproxy_cfg(front, stats_port, ports, sock)
    r = subprocess.run(["haproxy", "-c", "-f", cfg], capture_output=True, text=True, timeout=30)
    check("haproxy -c accepts the config", r.returncode == 0, r.stdout + r.stderr)
    hap = Proc("haproxy", ["haproxy", "-db", "-f", cfg])
    check("health checks put c1, c2, c3 UP",
          all(wait_status(sock, n, "UP", 30) for n in REPLICAS), hap.text()[-2000:])
    prom = request(f"http://127.0.0.1:{stats_port}/metrics", timeout=10)
    check("HAProxy's Prometheus metrics list the three replicas",
          prom[0] == 200 and all(f'server="{n}"'.encode() in prom[2] for n in REPLICAS),
          str(prom[0]))
    status, ok, _, _ = classify(url, body)
    check("a request through HAProxy is classified", status == 200 and ok, f"status {status}")

    t0 = time.time()
    results, killed = load_with_kill(url, body, reps["c2"], sock)
    elapsed = time.time() - t0
    bad = [r for r in results if r[0] != 200 or not r[1]]
    by = {n: sum(1 for r in results if r[2] == n) for n in REPLICAS}
    print(f"  load: {len(results)} requests in {elapsed:.1f} s, {LOAD_CLIENTS} clients; "
          f"c2 SIGKILLed after {killed.get('at')} answers with {killed.get('in_flight')} "
          f"in flight; served by {by}")
    check("c2 killed mid-load with requests in flight", bool(killed))
    check(f"all {LOAD_REQUESTS} requests answered", len(results) == LOAD_REQUESTS,
          f"{len(results)} answered")
    check("every answer is 200 with 5 predictions", not bad, f"{len(bad)} bad, e.g. {bad[:3]}")
    check("every replica served part of the load", all(by[n] > 0 for n in REPLICAS), str(by))
    be = stats(sock)[("classifyd", "BACKEND")]
    print(f"  haproxy backend: retries {be['wretr']}, redispatches {be['wredis']}, "
          f"5xx {be['hrsp_5xx']}")
    check("haproxy retried the requests cut off by the kill",
          int(be["wretr"] or 0) + int(be["wredis"] or 0) > 0, str(be))
    check("haproxy marks c2 DOWN", wait_status(sock, "c2", "DOWN", 30))

    t1 = time.time()
    reps["c2"] = replica("c2", ports["c2"])
    check("c2 restarted and ready", wait_ready(ports["c2"]), reps["c2"].text()[-1000:])
    check("haproxy marks c2 UP again", wait_status(sock, "c2", "UP", 30))
    print(f"  c2 back in rotation {time.time() - t1:.1f} s after its restart")
    with cf.ThreadPoolExecutor(3) as ex:
        after = list(ex.map(lambda _: classify(url, body), range(30)))
    served = sum(1 for r in after if r[2] == "c2")
    check("after rejoining, all answered and c2 serves its share",
          all(r[0] == 200 and r[1] for r in after) and served > 0,
          f"c2 served {served}/30, statuses {sorted(set(r[0] for r in after))}")

    hap.stop(signal.SIGUSR1, 30)
    codes = {n: p.stop() for n, p in reps.items()}
    check("replicas exit 0 on SIGTERM", all(c == 0 for c in codes.values()), str(codes))
    return 0


if __name__ == "__main__":
    try:
        rc = main()
    finally:
        for p in procs:
            p.stop(signal.SIGKILL, 10)
    if checks.failed:
        for p in procs:
            print(f"---- {p.name} log (tail)\n{p.text()[-1500:]}")
    else:
        shutil.rmtree(TMP, ignore_errors=True)
    sys.exit(checks.summary("deploy-haproxy") or (1 if rc else 0))
