#!/usr/bin/python3
"""The daemon under Valgrind memcheck with a short request mix (make test-valgrind).

Runs $CLASSIFYD (the x86-64-v3 build in build/vg: Valgrind does not decode AVX-512)
serving a tiny CNN (conv, relu, global pool, gemm; written here with onnx) from a
config file: one resnet18 forward takes minutes under memcheck on a shared 2-CPU
machine (measured: 375 s), the tiny one well under a second. It sends good JPEG, PNG and multipart uploads, a
bad image, 404s, a 413, chunked raw and multipart bodies over the limit (413 once
they end), malformed HTTP, a client gone mid-upload, /metrics and
/models, reloads the configuration with SIGHUP (the model is loaded again, the old
generation freed), classifies again and stops with SIGTERM. Passes when every
request got its status, the daemon exited 0 and memcheck reports no error and no
definitely or indirectly lost block (--errors-for-leak-kinds=definite,indirect
--error-exitcode=99). Suppressions: tests/valgrind/classifyd.supp. Valgrind runs the
code ~50x slower, so the mix is small. Ends with `valgrind: N passed, M failed`.
"""
import io
import os
import re
import signal
import socket
import sys
import tempfile
import time
import urllib.error
import urllib.request

from PIL import Image

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "pylib"))
import checks  # noqa: E402
from checks import check  # noqa: E402
from daemon import Daemon  # noqa: E402

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BUILD = os.environ.get("BUILD", os.path.join(ROOT, "build"))
MODELS = os.environ.get("MODELS", os.path.join(BUILD, "models"))
BIN = os.environ.get("CLASSIFYD", os.path.join(BUILD, "vg", "classifyd"))
SUPP = os.path.join(ROOT, "tests", "valgrind", "classifyd.supp")
TMP = tempfile.mkdtemp(prefix="classifyd-vg-")


def request(url, data=None, method=None, headers=None, timeout=300):
    req = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()
    except (urllib.error.URLError, ConnectionError, socket.timeout, OSError):
        return 0, b""


def image(fmt):
    buf = io.BytesIO()
    Image.new("RGB", (48, 40), (30, 160, 90)).save(buf, fmt)
    return buf.getvalue()


def tiny_model(path):
    """conv 3x3/4 -> relu -> global average pool -> gemm to 10 classes, 224x224 input."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper
    g = np.random.default_rng(7)
    w = {"conv0.weight": g.standard_normal((8, 3, 3, 3), dtype=np.float32) * 0.3,
         "conv0.bias": g.standard_normal(8, dtype=np.float32) * 0.1,
         "fc.weight": g.standard_normal((10, 8), dtype=np.float32),
         "fc.bias": g.standard_normal(10, dtype=np.float32) * 0.1}
    nodes = [
        helper.make_node("Conv", ["input", "conv0.weight", "conv0.bias"], ["c0"],
                         kernel_shape=[3, 3], pads=[1, 1, 1, 1], strides=[4, 4]),
        helper.make_node("Relu", ["c0"], ["r0"]),
        helper.make_node("GlobalAveragePool", ["r0"], ["gap"]),
        helper.make_node("Flatten", ["gap"], ["flat"], axis=1),
        helper.make_node("Gemm", ["flat", "fc.weight", "fc.bias"], ["logits"], transB=1),
    ]
    graph = helper.make_graph(
        nodes, "tiny",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", 3, 224, 224])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 10])],
        [numpy_helper.from_array(v, k) for k, v in w.items()])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), path)


def requests_mix(url, port):
    jpg, png = image("JPEG"), image("PNG")
    post = lambda data, path="/classify", ctype="application/octet-stream": request(  # noqa: E731
        url + path, data=data, method="POST", headers={"Content-Type": ctype})
    b = "vgBoundary"
    mp = (f"--{b}\r\nContent-Disposition: form-data; name=\"image\"; filename=\"a.png\"\r\n"
          f"Content-Type: image/png\r\n\r\n").encode() + png + f"\r\n--{b}--\r\n".encode()
    cases = [
        ("JPEG 200", post(jpg), 200),
        ("JPEG again (batching path) 200", post(jpg), 200),
        ("PNG 200", post(png), 200),
        ("multipart PNG 200", post(mp, ctype=f"multipart/form-data; boundary={b}"), 200),
        ("bad image 400", post(b"\xff\xd8\xff" + b"\x00" * 200), 400),
        ("unknown format 415", post(b"GIF89a" + b"\x00" * 64), 415),
        ("unknown model 404", post(jpg, "/classify?model=nope"), 404),
        ("unknown path 404", request(url + "/nope"), 404),
        ("body over the limit 413", post(b"\xff" * (1100 << 10)), 413),
        ("GET /models 200", request(url + "/models"), 200),
        ("GET /metrics 200", request(url + "/metrics"), 200),
    ]
    for name, (st, body), want in cases:
        check(f"valgrind: {name}", st == want, f"{st} {body[:200]}")
    with socket.create_connection(("127.0.0.1", port), timeout=60) as s:
        s.sendall(b"GARBAGE / HTTP/1.1\r\nHost: x\r\nNoColon\r\n\r\n")
        check("valgrind: malformed header 400", s.recv(100).startswith(b"HTTP/1.1 400"))
    with socket.create_connection(("127.0.0.1", port), timeout=60) as s:
        s.sendall(b"POST /classify HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n"
                  + b"\xff" * 30000)  # and gone mid-upload
    # Chunked past the limit: what was stored (raw buffer, multipart parser) is freed mid-body,
    # the rest dropped, 413 at the end.
    big = b"\xff" * (1100 << 10)
    for name, ctype, body in (("raw", b"image/png", png + big),
                              ("multipart", f"multipart/form-data; boundary={b}".encode(),
                               mp[:mp.index(png)] + png + big + f"\r\n--{b}--\r\n".encode())):
        head = (b"POST /classify HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
                b"Content-Type: " + ctype + b"\r\n\r\n")
        chunks = b"".join(b"%x\r\n" % len(body[i:i + 65536]) + body[i:i + 65536] + b"\r\n"
                          for i in range(0, len(body), 65536))
        with socket.create_connection(("127.0.0.1", port), timeout=120) as s:
            s.sendall(head + chunks + b"0\r\n\r\n")
            resp = b""
            while True:  # Connection: close, so the answer ends at the server's close
                part = s.recv(4096)
                if not part:
                    break
                resp += part
        check(f"valgrind: chunked {name} body over the limit 413 payload_too_large",
              resp.startswith(b"HTTP/1.1 413") and b'"code":"payload_too_large"' in resp,
              resp[:300])


def main():
    if not os.path.exists(BIN):
        print(f"valgrind: missing {BIN}")
        return 1
    model = os.path.join(TMP, "tiny.onnx")
    tiny_model(model)
    conf = os.path.join(TMP, "classifyd.conf")
    with open(conf, "w") as f:
        f.write(f"[server]\nbody_limit = 1M\n[model.tiny]\npath = {model}\n")
    vglog = os.path.join(TMP, "memcheck.log")
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1")
    memcheck = ["valgrind", "--tool=memcheck", "--leak-check=full",
                "--show-leak-kinds=definite,indirect", "--errors-for-leak-kinds=definite,indirect",
                "--error-exitcode=99", f"--suppressions={SUPP}", f"--log-file={vglog}",
                "--num-callers=30"]
    t0 = time.time()
    try:
        d = Daemon(BIN, ["--config", conf, "--threads", "1", "--workers", "1", "--http-threads", "1"],
                   os.path.join(TMP, "daemon.log"), start_timeout=300, prefix=memcheck, env=env)
    except RuntimeError as e:  # not listening within 300 s (the daemon was stopped)
        check("valgrind: daemon listening", False, str(e)[-600:])
        return checks.summary("valgrind")
    try:
        check("valgrind: daemon listening", True)
        check("valgrind: model loaded", d.wait_log(r"ready: generation 1", 600) is not None)
        requests_mix(d.url, d.port)
        d.signal(signal.SIGHUP)
        check("valgrind: SIGHUP reload applied (generation 2)",
              d.wait_log(r"reload applied: generation 2", 600) is not None)
        check("valgrind: classify after the reload 200", request(
            d.url + "/classify", data=image("JPEG"), method="POST",
            headers={"Content-Type": "image/jpeg"})[0] == 200)
        time.sleep(0.5)
    finally:
        rc = d.stop(grace=300)  # SIGTERM; SIGKILL if memcheck has not exited after 300 s
    with open(vglog) as f:
        report = f.read()
    errors = re.search(r"ERROR SUMMARY: (\d+) errors", report)
    lost = {k: re.search(rf"{k} lost: ([\d,]+) bytes", report) for k in ("definitely", "indirectly")}
    check("valgrind: exit 0 after SIGTERM (memcheck's --error-exitcode is 99)", rc == 0,
          f"rc={rc}")
    check("valgrind: ERROR SUMMARY 0 errors", errors is not None and errors.group(1) == "0",
          report[-3000:])
    for k, v in lost.items():
        check(f"valgrind: {k} lost 0 bytes", v is None or v.group(1) == "0",
              v.group(0) if v else "")
    print(f"valgrind: {time.time() - t0:.0f} s; memcheck log {vglog}")
    return checks.summary("valgrind")


if __name__ == "__main__":
    sys.exit(main())
