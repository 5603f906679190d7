"""daemon.py — start classifyd on a free loopback port for a test, and stop it (bounded).

Daemon(binary, args, log_path): runs `*prefix binary --listen 127.0.0.1:0 *args` (prefix: e.g.
prlimit or valgrind; env: the environment, default ours) with stdout and stderr in log_path,
reads the port back from the log ("listening on ... (port N)"; wait_port=False for a daemon
expected to refuse to start), and offers wait_ready() (GET /readyz until 200), wait_log() (a
pattern in the log), get() (a bounded GET), metrics(), fds(), cpu_seconds(), pid, and stop()
(SIGTERM, then SIGKILL after `grace` seconds; returns the exit status). Every wait has a timeout.
Used by tests/abuse, tests/overload, tests/soak and tests/valgrind.
"""
import os
import re
import signal
import subprocess
import time
import urllib.error
import urllib.request


def http_get(url, timeout=5.0):
    """(status, headers, body); status 0 when no answer came."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()
    except OSError:
        return 0, {}, b""


def metrics(url, timeout=5.0):
    """The daemon's /metrics as {"name{labels}": value}."""
    st, _, body = http_get(url + "/metrics", timeout)
    out = {}
    for line in body.decode("utf-8", "replace").splitlines():
        m = re.match(r"^([a-zA-Z_:][\w:]*(?:\{[^}]*\})?) ([-+\d.eE]+|NaN|\+Inf)$", line)
        if m:
            out[m.group(1)] = float(m.group(2))
    return out


class Daemon:
    def __init__(self, binary, args, log_path, start_timeout=30.0, nice=0, prefix=(), env=None,
                 wait_port=True):
        self.log_path = log_path
        self.log = open(log_path, "w+b")
        pre = (lambda: os.nice(nice)) if nice else None
        self.proc = subprocess.Popen([*prefix, binary, "--listen", "127.0.0.1:0", *args],
                                     stdout=self.log, stderr=subprocess.STDOUT, preexec_fn=pre,
                                     env=env)
        self.pid = self.proc.pid
        self.port = self.url = None
        if not wait_port:
            return
        m = self.wait_log(r"listening on \S+ \(port (\d+)\)", start_timeout, poll=0.05)
        if m is None:
            self.stop(grace=5)
            raise RuntimeError(f"classifyd did not start: {self.text()[-2000:]}")
        self.port = int(m.group(1))
        self.url = f"http://127.0.0.1:{self.port}"

    def text(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def wait_log(self, pattern, timeout, poll=0.2):
        """The first match of `pattern` in the log, waiting while the daemon runs; else None."""
        end = time.monotonic() + timeout
        while True:
            m = re.search(pattern, self.text())
            if m or time.monotonic() >= end or self.proc.poll() is not None:
                return m
            time.sleep(poll)

    def metrics(self, timeout=10.0):
        return metrics(self.url, timeout)

    def fds(self):
        return len(os.listdir(f"/proc/{self.pid}/fd"))

    def cpu_seconds(self):
        """User + system CPU time the daemon has used."""
        with open(f"/proc/{self.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def get(self, path, timeout=5.0):
        return http_get(self.url + path, timeout)

    def wait_ready(self, timeout=120.0):
        end = time.monotonic() + timeout
        while time.monotonic() < end and self.proc.poll() is None:
            if self.get("/readyz", 2.0)[0] == 200:
                return True
            time.sleep(0.1)
        return False

    def signal(self, sig):
        if self.proc.poll() is None:
            self.proc.send_signal(sig)

    def stop(self, grace=40.0):
        """SIGTERM (the daemon drains), SIGKILL after grace seconds; the exit status."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(grace)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.log.close()
        return self.proc.returncode
