"""loadgen.py — HTTP/1.1 load generation against the daemon on loopback (asyncio, stdlib only).

Used by tests/overload (closed loop to find the sustainable rate, then open-loop bursts) and
tests/soak (a slow open-loop mix for many minutes). Every request is bounded by a timeout and
every run by a count; nothing here retries, so every reset or timeout is reported.

- Request: what to send (method, path, headers, body; `expect_continue` sends the headers with
  `Expect: 100-continue` and the body only after `100 Continue`, as curl does for big uploads, so
  a refusal before the body, e.g. 413 from Content-Length, is read instead of reset).
- Result: one answer or failure: scheduled/sent/finished times (time.monotonic()), status,
  Retry-After, the JSON error code, and `error` (a string: reset, timeout, closed, ...) when no
  HTTP answer came.
- open_loop(): requests at scheduled times (phases(): consecutive fixed-rate phases), each
  timed from its *scheduled* time (so a stalled client cannot hide queueing), on a pool of
  keep-alive connections.
- closed_loop(): `conns` clients each sending the next request as soon as the last is answered.
"""
import asyncio
import json
import re
import time


class Request:
    __slots__ = ("method", "path", "headers", "body", "kind", "expect_continue", "chunked")

    def __init__(self, path, body=b"", kind="", method="POST", headers=None,
                 expect_continue=False, chunked=False):
        self.method, self.path, self.body, self.kind = method, path, body, kind
        self.headers = headers or {}
        self.expect_continue, self.chunked = expect_continue, chunked

    def head(self, host):
        h = {"Host": host, **self.headers}
        if self.chunked:
            h["Transfer-Encoding"] = "chunked"
        elif self.method == "POST":
            h["Content-Length"] = str(len(self.body))
        if self.expect_continue:
            h["Expect"] = "100-continue"
        lines = [f"{self.method} {self.path} HTTP/1.1"] + [f"{k}: {v}" for k, v in h.items()]
        return ("\r\n".join(lines) + "\r\n\r\n").encode()

    def payload(self):
        if not self.chunked:
            return self.body
        out, step = [], 65536
        for i in range(0, len(self.body), step):
            part = self.body[i:i + step]
            out.append(b"%x\r\n" % len(part) + part + b"\r\n")
        return b"".join(out) + b"0\r\n\r\n"


class Result:
    __slots__ = ("kind", "sched", "sent", "done", "status", "retry_after", "code", "error",
                 "reused", "retried", "body")

    def __init__(self, kind, sched):
        self.kind, self.sched, self.sent, self.done = kind, sched, None, None
        self.status, self.retry_after, self.code, self.error = 0, None, None, None
        self.reused, self.retried, self.body = False, False, b""

    def latency_ms(self, from_sched=True):
        """Milliseconds from the scheduled (or actual send) time to the answer."""
        if self.done is None:
            return None
        t0 = self.sched if from_sched else (self.sent or self.sched)
        return (self.done - t0) * 1e3


async def _read_head(reader):
    head = await reader.readuntil(b"\r\n\r\n")
    first, _, rest = head.decode("latin-1").partition("\r\n")
    parts = first.split(" ", 2)
    status = int(parts[1])
    headers = {}
    for line in rest.split("\r\n"):
        k, sep, v = line.partition(":")
        if sep:
            headers[k.strip().lower()] = v.strip()
    return status, headers


async def _exchange(reader, writer, req, host, res):
    writer.write(req.head(host))
    if not req.expect_continue:
        writer.write(req.payload())
    await writer.drain()
    status, headers = await _read_head(reader)
    if status == 100:
        writer.write(req.payload())
        await writer.drain()
        status, headers = await _read_head(reader)
    n = int(headers.get("content-length", "0"))
    body = await reader.readexactly(n) if n else b""
    res.status, res.body = status, body
    ra = headers.get("retry-after")
    res.retry_after = int(ra) if ra and ra.isdigit() else (ra if ra else None)
    if status >= 400 and body[:1] == b"{":
        try:
            res.code = json.loads(body)["error"]["code"]
        except (ValueError, KeyError, TypeError):
            res.code = "unparsable"
    # A refusal sent before the body was read leaves the connection unusable.
    return headers.get("connection", "").lower() != "close" and not (
        req.expect_continue and status != 100 and status >= 400)


class Pool:
    """Idle keep-alive connections to one host:port."""

    def __init__(self, host, port):
        self.host, self.port, self.idle, self.opened = host, port, [], 0

    async def get(self, fresh=False):
        while self.idle and not fresh:
            reader, writer = conn = self.idle.pop()
            if not (reader.at_eof() or writer.is_closing()):
                return conn, True
            writer.close()  # closed by the server while idle (keep-alive timeout)
        self.opened += 1
        return await asyncio.open_connection(self.host, self.port), False

    def put(self, conn):
        self.idle.append(conn)

    def close(self):
        for _, w in self.idle:
            w.close()
        self.idle = []


async def send(pool, req, sched, timeout):
    """One request on a pooled connection; never raises. A reused connection that the server
    closed while idle (keep-alive timeout) just as it was reused is retried once on a fresh
    one (Result.retried), since nothing was processed; any other failure is reported in
    Result.error."""
    res = Result(req.kind, sched)
    for attempt in range(2):
        conn = None
        try:
            conn, reused = await asyncio.wait_for(pool.get(fresh=attempt > 0), timeout)
            res.reused = reused
            res.sent = time.monotonic()
            keep = await asyncio.wait_for(
                _exchange(conn[0], conn[1], req, f"{pool.host}:{pool.port}", res), timeout)
            res.done = time.monotonic()
            if keep:
                pool.put(conn)
            else:
                conn[1].close()
            return res
        except asyncio.TimeoutError:
            res.error = "timeout"
        except asyncio.IncompleteReadError as e:
            res.error = "closed" if not e.partial else "truncated"
        except ConnectionResetError:
            res.error = "reset"
        except (BrokenPipeError, ConnectionError):
            res.error = "broken_pipe"
        except OSError as e:
            res.error = f"oserror:{e.errno}"
        except ValueError:
            res.error = "bad_response"
        if conn is not None:
            conn[1].close()
        if not (res.reused and res.error in ("closed", "reset", "broken_pipe") and attempt == 0):
            res.done = time.monotonic()
            return res
        res.error, res.retried = None, True
    return res


def phases(*spec):
    """Arrival offsets (seconds from the start) for consecutive fixed-rate phases:
    phases((rate, seconds), ...) -> [(offset, phase index), ...]."""
    out, t0 = [], 0.0
    for k, (rate, seconds) in enumerate(spec):
        n = max(1, int(round(rate * seconds)))
        out += [(t0 + i / rate, k) for i in range(n)]
        t0 += seconds
    return out


async def open_loop(host, port, make_req, schedule, timeout=30.0, max_conns=512, pool=None,
                    stop=None, on_result=None):
    """make_req(i) -> Request, the i-th sent at start + schedule[i] seconds (an open loop: the
    arrivals do not wait for answers); returns the Results in schedule order. At most max_conns
    requests are outstanding; one that must wait for a slot is still timed from its schedule.
    `stop` (an asyncio.Event) ends the schedule early; on_result(i, result) is called as each
    answer arrives."""
    own = pool is None
    pool = pool or Pool(host, port)
    sem = asyncio.Semaphore(max_conns)
    t0 = time.monotonic() + 0.02
    tasks = []

    async def one(i, req, sched):
        async with sem:
            res = await send(pool, req, sched, timeout)
        if on_result:
            on_result(i, res)
        return res

    for i, offset in enumerate(schedule):
        if stop is not None and stop.is_set():
            break
        sched = t0 + offset
        delay = sched - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.ensure_future(one(i, make_req(i), sched)))
    results = list(await asyncio.gather(*tasks))
    if own:
        pool.close()
    return results


async def closed_loop(host, port, make_req, conns, seconds, timeout=30.0):
    """`conns` clients, each on its own keep-alive connection, for `seconds`."""
    end = time.monotonic() + seconds
    out = []

    async def client(c):
        pool, i = Pool(host, port), 0
        while time.monotonic() < end:
            out.append(await send(pool, make_req(c * 1000003 + i), time.monotonic(), timeout))
            i += 1
        pool.close()

    await asyncio.gather(*(client(c) for c in range(conns)))
    return out


def pct(values, p):
    """The p-th percentile (nearest rank) of values; nan when empty."""
    v = sorted(values)
    if not v:
        return float("nan")
    return v[min(len(v) - 1, max(0, int(round(p / 100 * (len(v) - 1)))))]


def proc_rss_kb(pid):
    """VmRSS of pid in KiB (0 when the process is gone)."""
    try:
        with open(f"/proc/{pid}/status") as f:
            m = re.search(r"^VmRSS:\s+(\d+) kB", f.read(), re.M)
            return int(m.group(1)) if m else 0
    except OSError:
        return 0


def proc_fds(pid):
    """Open file descriptors of pid (-1 when unreadable)."""
    import os
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return -1
