"""daemon.py — start classifyd on a free loopback port for a test, and stop it (bounded).

Daemon(binary, args, log_path): runs `binary --listen 127.0.0.1:0 *args` with stdout and stderr
in log_path, reads the port back from the log ("listening on ... (port N)"), and offers
wait_ready() (GET /readyz until 200), get() (a bounded GET), pid, and stop() (SIGTERM, then
SIGKILL after `grace` seconds; returns the exit status). Every wait has a timeout.
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
    def __init__(self, binary, args, log_path, start_timeout=30.0, nice=0):
        self.log_path = log_path
        self.log = open(log_path, "w+b")
        pre = (lambda: os.nice(nice)) if nice else None
        self.proc = subprocess.Popen([binary, "--listen", "127.0.0.1:0", *args], stdout=self.log,
                                     stderr=subprocess.STDOUT, preexec_fn=pre)
        self.pid = self.proc.pid
        self.port = None
        end = time.monotonic() + start_timeout
        while time.monotonic() < end and self.proc.poll() is None:
            m = re.search(r"listening on \S+ \(port (\d+)\)", self.text())
            if m:
                self.port = int(m.group(1))
                break
            time.sleep(0.05)
        if self.port is None:
            self.stop(grace=5)
            raise RuntimeError(f"classifyd did not start: {self.text()[-2000:]}")
        self.url = f"http://127.0.0.1:{self.port}"

    def text(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

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
