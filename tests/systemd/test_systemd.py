#!/usr/bin/python3
"""Deployment tests of classifyd: sd_notify, watchdog, socket activation, SIGHUP
reload, and the systemd sandbox checked against what the daemon really does.

- notify: the daemon runs with NOTIFY_SOCKET at a datagram socket of our own and
  WATCHDOG_USEC set; READY=1 must come only after every model is loaded (checked
  from the log and /models at the moment it arrives), WATCHDOG=1 must keep coming
  while requests are served, RELOADING=1/READY=1 around a SIGHUP, STOPPING=1 on
  SIGTERM.
- socket activation: a listening socket passed as fd 3 with LISTEN_FDS/LISTEN_PID
  is served (server.listen ignored); a passed fd that is not a listening socket is
  refused.
- reload (release build, then ASan build with leak detection): requests during
  repeated SIGHUPs all succeed; a broken model file and an invalid config keep the
  old models serving and are counted and logged; a reload adding googlenet and
  one removing a model switch GET /models atomically; requests in flight on a
  removed model finish on it and its generation is freed afterwards.
- sandbox: under strace, every system call made while loading, serving,
  reloading and draining is allowed by the unit's SystemCallFilter=, sockets only
  use the allowed address families, nothing is opened for writing outside /dev,
  and no memory is both writable and executable (MemoryDenyWriteExecute=).
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
BIN = os.path.join(BUILD, "classifyd")
ASAN_BIN = os.path.join(BUILD, "asan", "classifyd")
UNIT = os.path.join(ROOT, "systemd", "classifyd.service")
TMP = tempfile.mkdtemp(prefix="classifyd-sd-")
R18, R50, GNET = (os.path.join(MODELS, n + ".onnx") for n in ("resnet18", "resnet50", "googlenet"))

procs = []




def request(url, data=None, timeout=120):
    req = urllib.request.Request(url, data=data, method="POST" if data else "GET",
                                 headers={"Content-Type": "application/octet-stream"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()
    except (urllib.error.URLError, ConnectionError, socket.timeout, OSError):
        return 0, b""


def jpeg():
    img = Image.new("RGB", (320, 240))
    px = img.load()
    for y in range(240):
        for x in range(320):
            px[x, y] = (x * 255 // 319, y * 255 // 239, (x * y) % 256)
    out = io.BytesIO()
    img.save(out, "JPEG", quality=90)
    return out.getvalue()


IMG = jpeg()


class Daemon:
    """classifyd on a free loopback port; argv after the binary, log in TMP."""

    def __init__(self, args, env=None, binary=BIN, prefix=(), wait_port=True, **popen):
        self.log_path = os.path.join(TMP, f"daemon{len(procs)}.log")
        self.log = open(self.log_path, "w+b")
        self.proc = subprocess.Popen([*prefix, binary, *args], stdout=self.log,
                                     stderr=subprocess.STDOUT, env=env, **popen)
        procs.append(self)
        self.port = None
        deadline = time.time() + 60
        while wait_port and time.time() < deadline and self.proc.poll() is None:
            m = re.search(r"listening on \S+ \(port (\d+)\)", self.text())
            if m:
                self.port = int(m.group(1))
                break
            time.sleep(0.05)
        self.url = f"http://127.0.0.1:{self.port}"

    def text(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def wait_log(self, pattern, timeout=120, count=1):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if len(re.findall(pattern, self.text())) >= count:
                return True
            if self.proc.poll() is not None:
                return False
            time.sleep(0.05)
        return False

    def wait_ready(self, timeout=120):
        deadline = time.time() + timeout
        while time.time() < deadline and self.proc.poll() is None:
            if request(self.url + "/readyz", timeout=5)[0] == 200:
                return True
            time.sleep(0.1)
        return False

    def models(self):
        st, body = request(self.url + "/models")
        return json.loads(body) if st == 200 else None

    def metric(self, name):
        st, body = request(self.url + "/metrics")
        m = re.search(rf"^{name} (\S+)$", body.decode(), re.M)
        return float(m.group(1)) if m else None

    def stop(self, timeout=120):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        return self.proc.returncode


def write(name, text):
    path = os.path.join(TMP, name)
    with open(path, "w") as f:
        f.write(text)
    return path


def conf(models, default=None, extra=""):
    s = "[server]\nlisten = 127.0.0.1:0\n[engine]\nthreads = 1\n" + extra
    for name, path in models:
        s += f"[model.{name}]\npath = {path}\n" + ("default = true\n" if name == default else "")
    return s


# ---- sd_notify and watchdog ------------------------------------------------------------

class NotifyListener:
    def __init__(self):
        self.path = os.path.join(TMP, "notify.sock")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        self.sock.settimeout(0.2)
        self.msgs = []  # (time, text)
        self.on_msg = None
        self.stop = False
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        while not self.stop:
            try:
                data = self.sock.recv(4096).decode("utf-8", "replace")
            except socket.timeout:
                continue
            t = time.time()
            self.msgs.append((t, data))
            if self.on_msg:
                self.on_msg(t, data)

    def times(self, key):
        return [t for t, m in self.msgs if key in m.split("\n")]

    def close(self):
        self.stop = True
        self.thread.join(5)
        self.sock.close()


def test_notify():
    print("sd_notify: READY after models, STATUS, WATCHDOG while serving, RELOADING, STOPPING")
    n = NotifyListener()
    env = dict(os.environ, NOTIFY_SOCKET=n.path, WATCHDOG_USEC="2000000")
    cfg = write("notify.conf", conf([("r50", R50), ("googlenet", GNET), ("r18", R18)]))
    at_ready, seen, started = {}, threading.Event(), threading.Event()

    def on_msg(t, m):  # on the listener thread, before the next datagram is read
        if "READY=1" in m.split("\n") and not seen.is_set() and started.wait(60):
            at_ready["log"] = d.text()
            at_ready["models"] = d.models()
            seen.set()

    n.on_msg = on_msg
    d = Daemon(["--config", cfg], env=env)
    started.set()
    if not check("daemon started", d.port, d.text()):
        return n.close()
    check("READY=1 received", seen.wait(120), n.msgs)
    log, models = at_ready.get("log", ""), at_ready.get("models")
    check("READY=1 only after every model is loaded (log)",
          all(f"model {m} loaded" in log for m in ("r50", "googlenet", "r18")), log[-800:])
    check("READY=1 only after every model is loaded (/models at that moment)", models and
          all(m["ready"] for m in models["models"]) and len(models["models"]) == 3, models)
    ready_t = n.times("READY=1")[0] if n.times("READY=1") else 0
    loading = [m for t, m in n.msgs if t < ready_t and "STATUS=loading model" in m]
    check("STATUS= lines while loading (one per model, human-readable)", len(loading) == 3, loading)
    check("STATUS= after READY names the models",
          any("READY=1" in m and "serving 3 model(s)" in m and "r50" in m for _, m in n.msgs), n.msgs)
    check("watchdog interval logged", "pinging every 1000 ms" in d.text())
    t0 = time.time()
    with cf.ThreadPoolExecutor(max_workers=4) as ex:
        codes = list(ex.map(lambda i: request(d.url + "/classify?model=r50", IMG)[0], range(24)))
    t1 = time.time()
    pings = [t for t in n.times("WATCHDOG=1") if t0 <= t <= t1]
    span = [t0, *pings, t1]
    gap = max(b - a for a, b in zip(span, span[1:]))
    check("requests served while watched", codes == [200] * 24, codes)
    check(f"WATCHDOG=1 keeps coming while serving ({len(pings)} pings in {t1 - t0:.1f} s, "
          f"longest gap {gap:.2f} s < 2 s)", pings and gap < 2.0, n.times("WATCHDOG=1")[-5:])
    d.proc.send_signal(signal.SIGHUP)
    check("SIGHUP: reload applied", d.wait_log(r"reload applied: generation 2"), d.text()[-500:])
    time.sleep(0.3)
    rel = n.times("RELOADING=1")
    ready2 = [t for t, m in n.msgs if "READY=1" in m and "generation 2" in m]
    check("RELOADING=1 then READY=1 with generation 2", rel and ready2 and rel[0] < ready2[0], n.msgs[-6:])
    d.proc.send_signal(signal.SIGTERM)
    rc = d.proc.wait(60)
    time.sleep(0.3)
    check("STOPPING=1 on SIGTERM, exit 0", n.times("STOPPING=1") and rc == 0, (rc, n.msgs[-3:]))
    n.close()


# ---- socket activation --------------------------------------------------------------------

def activated(sock, args, fds="1"):
    """Run classifyd with `sock` as fd 3 and LISTEN_PID set to its own pid."""
    def child():
        os.dup2(sock.fileno(), 3)
        os.set_inheritable(3, True)
    env = dict(os.environ, LISTEN_FDS=fds)
    return Daemon(["-c", 'LISTEN_PID=$$ exec "$0" "$@"', BIN, *args], env=env, binary="/bin/sh",
                  preexec_fn=child, pass_fds=(3,), wait_port=False)


def test_socket_activation():
    print("socket activation (LISTEN_FDS/LISTEN_PID)")
    ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    ls.bind(("127.0.0.1", 0))
    ls.listen(64)
    port = ls.getsockname()[1]
    d = activated(ls, ["--listen", "127.0.0.1:1", "--model", "r18=" + R18])
    ls.close()
    d.url = f"http://127.0.0.1:{port}"
    check("passed socket announced with its port", d.wait_log(rf"listening on socket-activated-fd \(port {port}\)", 30),
          d.text())
    check("served on the passed socket (server.listen ignored)", d.wait_ready(), d.text()[-300:])
    st, body = request(d.url + "/classify", IMG)
    check("classify through the passed socket", st == 200 and json.loads(body)["model"] == "r18", st)
    check("socket-activated daemon exits 0", d.stop() == 0)
    bad = socket.socket(socket.AF_INET, socket.SOCK_STREAM)  # bound but not listening
    bad.bind(("127.0.0.1", 0))
    d = activated(bad, ["--model", "r18=" + R18])
    bad.close()
    try:
        rc = d.proc.wait(30)
    except subprocess.TimeoutExpired:
        rc = None
    check("a passed socket that is not listening is refused (exit 1, says why)",
          rc == 1 and "not a listening stream socket" in d.text(), (rc, d.text()[-300:]))


# ---- reload ---------------------------------------------------------------------------------

def hup_and_wait(d, kind):
    """SIGHUP, then wait until the reloads or failures counter moves."""
    name = "classifyd_reloads_total" if kind == "ok" else "classifyd_reload_failures_total"
    before = d.metric(name)
    d.proc.send_signal(signal.SIGHUP)
    deadline = time.time() + 120
    while time.time() < deadline:
        v = d.metric(name)
        if v is not None and v > before:
            return True
        time.sleep(0.05)
    return False


def test_reload(binary, label):
    print(f"SIGHUP reload ({label})")
    cfg_path = write(f"reload-{label}.conf", conf([("r18", R18)]))
    env = dict(os.environ, ASAN_OPTIONS="detect_leaks=1:abort_on_error=0")
    d = Daemon(["--config", cfg_path, "--log-level", "info"], env=env, binary=binary)
    if not check("reload daemon ready", d.port and d.wait_ready(300), d.text()[-500:]):
        return
    # 1. requests while SIGHUPs arrive, some back to back (folded into one more reload)
    stop, codes = threading.Event(), []

    def client():
        while not stop.is_set():
            codes.append(request(d.url + "/classify", IMG)[0])

    threads = [threading.Thread(target=client) for _ in range(4)]
    for t in threads:
        t.start()
    for i in range(4):
        check(f"reload {i + 1} applied while serving", hup_and_wait(d, "ok"))
    d.proc.send_signal(signal.SIGHUP)
    d.proc.send_signal(signal.SIGHUP)
    d.proc.send_signal(signal.SIGHUP)
    deadline = time.time() + 60
    while time.time() < deadline and len(codes) < 40:
        time.sleep(0.1)
    stop.set()
    for t in threads:
        t.join(300)
    d.wait_log(r"reload applied: generation", count=5)
    check(f"every request during repeated SIGHUPs answered 200 ({len(codes)})", codes and
          set(codes) == {200}, sorted(set(codes)))
    # The folded SIGHUPs may still be loading one more generation: settle first (the
    # generation unchanged for 3 s) so the checks below compare against the last one.
    gen, since, deadline = d.models()["generation"], time.time(), time.time() + 60
    while time.time() - since < 3 and time.time() < deadline:
        time.sleep(0.2)
        g = d.models()["generation"]
        if g != gen:
            gen, since = g, time.time()
    check("generation advanced (5 or 6 applied)", gen in (6, 7), gen)
    check("old generations freed", d.wait_log(r"generation \d+ freed", count=gen - 2), d.text()[-500:])
    # 2. broken model file and invalid config: old models keep serving
    broken = write("broken.onnx", "this is not an ONNX file\n")
    write(f"reload-{label}.conf", conf([("r18", R18), ("bad", broken)]))
    check("reload with a broken model file fails", hup_and_wait(d, "fail"))
    check("... says why in the log", re.search(r"reload failed, still serving the previous models: "
                                               r"model\.bad\.path: cannot load", d.text()), d.text()[-400:])
    m = d.models()
    check("... and keeps serving the old models", m["generation"] == gen and
          [x["name"] for x in m["models"]] == ["r18"] and request(d.url + "/classify", IMG)[0] == 200, m)
    check("... classifyd_last_reload_successful 0", d.metric("classifyd_last_reload_successful") == 0)
    write(f"reload-{label}.conf", conf([("r18", R18)], extra="workers = 0\n"))
    check("reload with an invalid config fails", hup_and_wait(d, "fail"))
    check("... says why (names the setting)", "reload failed, still serving the previous models: " in d.text()
          and "engine.workers: invalid value '0'" in d.text(), d.text()[-300:])
    check("... old models still serving", d.models()["generation"] == gen and
          request(d.url + "/classify", IMG)[0] == 200)
    check("classifyd_reload_failures_total counts both", d.metric("classifyd_reload_failures_total") == 2)
    # 3. change the model set: add googlenet, then remove r18
    write(f"reload-{label}.conf", conf([("r18", R18), ("googlenet", GNET)]))
    check("reload adding googlenet", hup_and_wait(d, "ok"))
    m = d.models()
    check("GET /models: r18 + googlenet, next generation", [x["name"] for x in m["models"]] == ["r18", "googlenet"]
          and m["generation"] == gen + 1 and all(x["ready"] for x in m["models"]), m)
    st, body = request(d.url + "/classify?model=googlenet", IMG)
    check("googlenet answers after the reload", st == 200 and json.loads(body)["model"] == "googlenet", st)
    # 4. remove r18 while r18 requests are in flight: they finish on the old generation
    write(f"reload-{label}.conf", conf([("googlenet", GNET)]))
    # 8 clients post r18 images back to back until the swap is logged, so some are in
    # flight across it however fast the engine answers (a fixed burst of 30 could all
    # be answered before the SIGHUP); each stops at its first 404 or after 60 s.
    n, stop, res, lock = 8, threading.Event(), [], threading.Lock()

    def client():
        t_end = time.time() + 60
        while not stop.is_set() and time.time() < t_end:
            r = request(d.url + "/classify?model=r18", IMG)
            with lock:
                res.append(r)
            if r[0] != 200:
                return

    threads = [threading.Thread(target=client) for _ in range(n)]
    for t in threads:
        t.start()
    time.sleep(0.3)
    d.proc.send_signal(signal.SIGHUP)
    applied = d.wait_log(r"reload applied: generation %d" % (gen + 2))
    time.sleep(0.2)
    stop.set()
    for t in threads:
        t.join(120)
    ok = [r for r in res if r[0] == 200]
    check(f"r18 requests admitted before the swap all answered by r18 ({len(ok)} of {len(res)} "
          "answered 200, the rest 404)",
          ok and all(json.loads(b)["model"] == "r18" for _, b in ok) and
          all(st in (200, 404) for st, _ in res), sorted(set(st for st, _ in res)))
    check("reload removing r18 applied", applied)
    text = d.text()
    swap = text.find("reload applied: generation %d" % (gen + 2))
    check("some r18 requests were answered after the swap (in flight across it)",
          swap > 0 and re.search(r" 200 .*model=r18", text[swap:]), text[swap:swap + 300])
    m = d.models()
    check("GET /models: only googlenet now", [x["name"] for x in m["models"]] == ["googlenet"], m)
    st, body = request(d.url + "/classify?model=r18", IMG)
    check("r18 is gone: 404 model_not_found", st == 404 and b"model_not_found" in body, st)
    check("the generation with r18 is freed after its requests", d.wait_log(r"generation %d freed" % (gen + 1)))
    check(f"reload daemon exits 0 ({label})", d.stop(300) == 0, d.text()[-500:])
    text = d.text()
    check(f"no sanitizer reports, no leaks ({label})", not any(s in text for s in (
        "ERROR: AddressSanitizer", "LeakSanitizer", "runtime error:")), text[-1500:])


# ---- sandbox ----------------------------------------------------------------------------------

def expand(group, seen=None):
    seen = seen if seen is not None else set()
    out = subprocess.run(["systemd-analyze", "syscall-filter", group], capture_output=True,
                         text=True, timeout=60).stdout
    calls = set()
    for line in out.splitlines()[1:]:
        s = line.strip()
        if not s or s.startswith("#"):
            continue
        if s.startswith("@"):
            if s not in seen:
                seen.add(s)
                calls |= expand(s, seen)
        else:
            calls.add(s)
    return calls


def unit_filter():
    """Lines in order, as systemd applies them after a first allow list:
    an allow line adds, a ~ line removes."""
    allow = set()
    for line in open(UNIT):
        if not line.startswith("SystemCallFilter="):
            continue
        v = line.split("=", 1)[1].strip()
        items = set()
        for item in v.lstrip("~").split():
            items |= expand(item) if item.startswith("@") else {item}
        allow = allow - items if v.startswith("~") else allow | items
    return allow


def test_sandbox():
    print("sandbox: the daemon's real system calls against the unit's filter")
    allowed = unit_filter()
    check("unit filter parsed", len(allowed) > 100, len(allowed))
    trace = os.path.join(TMP, "strace.txt")
    cfg_path = write("sandbox.conf", conf([("r18", R18)]))
    d = Daemon(["--config", cfg_path], prefix=("strace", "-D", "-f", "-qq", "-s", "256", "-o", trace))
    if not check("daemon under strace ready", d.port and d.wait_ready(300), d.text()[-300:]):
        return
    with cf.ThreadPoolExecutor(max_workers=4) as ex:
        codes = list(ex.map(lambda i: request(d.url + "/classify", IMG)[0], range(8)))
    for path in ("/models", "/metrics", "/readyz", "/healthz"):
        request(d.url + path)
    maps = open(f"/proc/{d.proc.pid}/maps").read() if d.proc.poll() is None else ""
    write("sandbox.conf", conf([("r18", R18), ("googlenet", GNET)]))
    reloaded = hup_and_wait(d, "ok")
    rc = d.stop(300)
    size = -1
    for _ in range(100):  # strace (-D: a detached grandchild) flushes after the daemon exits
        time.sleep(0.1)
        if os.path.getsize(trace) == size:
            break
        size = os.path.getsize(trace)
    check("served, reloaded and drained under strace", codes == [200] * 8 and reloaded and rc == 0, (codes, rc))
    lines = open(trace).read().splitlines()
    calls = set()
    for l in lines:
        m = re.match(r"^\d+\s+(?:<\.\.\. )?([a-z0-9_]+)\(", l)
        if m:
            calls.add(m.group(1))
    calls.discard("execve")  # strace's own exec of the daemon (allowed anyway)
    check(f"every system call ({len(calls)} distinct) is allowed by SystemCallFilter=",
          calls and calls <= allowed, sorted(calls - allowed))
    fams = set(re.findall(r"\bsocket\((AF_[A-Z0-9]+)", "\n".join(lines)))
    check("sockets only in RestrictAddressFamilies= (AF_INET AF_INET6 AF_UNIX)",
          fams <= {"AF_INET", "AF_INET6", "AF_UNIX"}, fams)
    writes = [l for l in lines if re.search(r"open(at)?\(.*(O_WRONLY|O_RDWR|O_CREAT)", l)
              and not re.search(r'"/dev/(null|urandom|random|zero|full)"', l)]
    check("nothing opened for writing (ProtectSystem=strict, PrivateDevices=)", not writes, writes[:3])
    # glibc reads /proc/sys/vm/overcommit_memory once, the first time it shrinks a thread
    # arena's heap (on free or in the daemon's malloc_trim, server/memtrim.c); under
    # ProcSubset=pid the open fails and glibc uses madvise(MADV_DONTNEED), its usual way.
    proc = [l for l in lines if re.search(r'open(at)?\(.*"/proc/(?!self/|thread-self/|\d+/)', l)
            and '"/proc/sys/vm/overcommit_memory"' not in l]
    check("only the process's own /proc entries are read (ProcSubset=pid)", not proc, proc[:3])
    wx = [l for l in maps.splitlines() if l.split()[1].startswith("rwx")]
    check("no writable+executable mapping (MemoryDenyWriteExecute=)", maps and not wx, wx[:3])
    mprot = [l for l in lines if re.search(r"mprotect\(.*PROT_WRITE\|PROT_EXEC|mprotect\(.*PROT_EXEC\|PROT_WRITE", l)]
    check("no mprotect to W+X", not mprot, mprot[:3])


def main():
    for p in (BIN, R18, R50, GNET):
        if not os.path.exists(p):
            print(f"systemd: missing {p} (run make test-models)")
            print("systemd: 0 passed, 1 failed")
            return 1
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    only = sys.argv[1:]
    try:
        for name, fn in (("notify", test_notify), ("socket", test_socket_activation),
                         ("reload", lambda: test_reload(BIN, "release")),
                         ("reload-asan", lambda: test_reload(ASAN_BIN, "asan")),
                         ("sandbox", test_sandbox)):
            if not only or name in only:
                if name == "reload-asan" and not os.path.exists(ASAN_BIN):
                    check("ASan build present (make build/asan/classifyd)", False, ASAN_BIN)
                    continue
                fn()
    except Exception as e:
        import traceback
        traceback.print_exc()
        check("test driver", False, repr(e))
    finally:
        for d in procs:
            if d.proc.poll() is None:
                d.proc.kill()
                d.proc.wait(10)
    if checks.failed:
        print(f"systemd: logs kept in {TMP}")
    else:
        shutil.rmtree(TMP, ignore_errors=True)
    return checks.summary("systemd")


if __name__ == "__main__":
    sys.exit(main())
