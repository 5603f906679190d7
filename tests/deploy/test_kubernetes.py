#!/usr/bin/python3
"""docker/kubernetes.yaml: YAML syntax and the fields the probes, ports and sizing depend on.

Static checks: every document parses; Deployment, Service, HorizontalPodAutoscaler and
the models claim are there; selectors match the pod labels; the container port, the
--listen port, both probes, the Service targetPort and the Prometheus annotation name
the same port; CPU request == limit == engine threads x models computing at once; the grace period
outlasts the drain; the HPA scales this Deployment on CPU; the pod runs as the image's
non-root user. Live checks: build/classifyd runs with the manifest's own args (with
/models mapped to $MODELS and a loopback port): the probe and metrics paths answer, and
its peak memory under load plus the decode budget (workers x max_pixels x 3 bytes)
fits in the memory limit. Ends with `deploy-kubernetes: N passed, M failed`.
"""
import concurrent.futures as cf
import configparser
import io
import os
import re
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

import yaml
from PIL import Image

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "pylib"))
import checks  # noqa: E402
from checks import check  # noqa: E402

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BUILD = os.environ.get("BUILD", os.path.join(ROOT, "build"))
MODELS = os.environ.get("MODELS", os.path.join(BUILD, "models"))
BIN = os.environ.get("CLASSIFYD", os.path.join(BUILD, "classifyd"))
MANIFEST = os.path.join(ROOT, "docker", "kubernetes.yaml")
IMAGE_CONF = os.path.join(ROOT, "docker", "classifyd.conf")
DOCKERFILE = os.path.join(ROOT, "docker", "Dockerfile")





def cpu(q):
    q = str(q)
    return float(q[:-1]) / 1000 if q.endswith("m") else float(q)


def memory(q):
    units = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "K": 10**3, "M": 10**6, "G": 10**9}
    m = re.fullmatch(r"(\d+)(Ki|Mi|Gi|K|M|G)?", str(q))
    if not m:
        raise ValueError(f"memory quantity {q!r}")
    return int(m.group(1)) * units.get(m.group(2) or "", 1)


def flag(args, name):
    """Values of a repeatable flag in a container's args."""
    return [args[i + 1] for i, a in enumerate(args[:-1]) if a == name]


def image_conf():
    c = configparser.ConfigParser(comment_prefixes=("#", ";"), inline_comment_prefixes=None)
    c.read(IMAGE_CONF)
    return c


def port_of(container, ref):
    """A probe's or Service's port (name or number) as the container's port number."""
    for p in container.get("ports", []):
        if ref in (p.get("name"), p.get("containerPort")):
            return p["containerPort"]
    return None


def static_checks(docs):
    kinds = {d["kind"]: d for d in docs}
    check("kinds: Deployment, Service, HorizontalPodAutoscaler, PersistentVolumeClaim",
          {"Deployment", "Service", "HorizontalPodAutoscaler",
           "PersistentVolumeClaim"} <= set(kinds), str(sorted(kinds)))
    dep, svc, hpa = kinds["Deployment"], kinds["Service"], kinds["HorizontalPodAutoscaler"]
    pod = dep["spec"]["template"]
    labels = pod["metadata"]["labels"]
    sel = dep["spec"]["selector"]["matchLabels"]
    check("Deployment selector matches the pod labels", sel.items() <= labels.items())
    check("Service selector matches the pod labels", svc["spec"]["selector"].items() <= labels.items())
    (c,) = pod["spec"]["containers"]
    args = [str(a) for a in c["args"]]
    port = c["ports"][0]["containerPort"]
    listen = flag(args, "--listen")
    check("--listen port == containerPort", listen and listen[-1].rsplit(":", 1)[1] == str(port),
          f"{listen} vs {port}")
    check("--listen is not loopback-only", listen and not listen[-1].startswith("127."), str(listen))
    rp, lp = c["readinessProbe"]["httpGet"], c["livenessProbe"]["httpGet"]
    check("readiness probe GET /readyz on the container port",
          rp["path"] == "/readyz" and port_of(c, rp["port"]) == port, str(rp))
    check("liveness probe GET /healthz on the container port",
          lp["path"] == "/healthz" and port_of(c, lp["port"]) == port, str(lp))
    sp = svc["spec"]["ports"][0]
    check("Service targetPort is the container port", port_of(c, sp["targetPort"]) == port, str(sp))
    ann = pod["metadata"].get("annotations", {})
    check("Prometheus annotations: scrape, port, /metrics",
          ann.get("prometheus.io/scrape") == "true" and ann.get("prometheus.io/port") == str(port)
          and ann.get("prometheus.io/path") == "/metrics", str(ann))

    conf = image_conf()
    threads = int((flag(args, "--threads") or [conf.get("engine", "threads")])[-1])
    models = flag(args, "--model") or [s for s in conf.sections() if s.startswith("model.")]
    parallel = int((flag(args, "--parallel-models")
                    or [conf.get("engine", "parallel_models", fallback="0")])[-1])
    busy = threads * (len(models) if parallel else 1)  # forwards at once x their threads
    res = c["resources"]
    req_cpu, lim_cpu = cpu(res["requests"]["cpu"]), cpu(res["limits"]["cpu"])
    check("CPU request == limit == engine threads x models computing at once",
          req_cpu == lim_cpu == busy, f"request {req_cpu}, limit {lim_cpu}, threads {threads}, "
          f"{len(models)} models, parallel_models {parallel}")
    check("memory request == limit (Guaranteed QoS)",
          memory(res["requests"]["memory"]) == memory(res["limits"]["memory"]), str(res))
    mounts = {m["mountPath"]: m for m in c.get("volumeMounts", [])}
    paths = [m.split("=", 1)[1] for m in models] if flag(args, "--model") else \
        [conf.get(s, "path") for s in models]
    check("every model path is under the read-only /models mount",
          "/models" in mounts and mounts["/models"].get("readOnly") is True
          and all(p.startswith("/models/") for p in paths), str(paths))
    drain = int((flag(args, "--drain-timeout") or [conf.get("server", "drain_timeout")])[-1])
    pre = c.get("lifecycle", {}).get("preStop", {}).get("exec", {}).get("command", [])
    pause = int(pre[-1]) if pre and pre[0].endswith("sleep") else 0
    check("terminationGracePeriodSeconds > preStop pause + drain_timeout",
          pod["spec"]["terminationGracePeriodSeconds"] > pause + drain,
          f"{pod['spec']['terminationGracePeriodSeconds']} vs {pause} + {drain}")
    sc = pod["spec"].get("securityContext", {})
    with open(DOCKERFILE) as f:
        dockerfile = f.read()
    entry = re.search(r'(?m)^ENTRYPOINT (\[.*\])', dockerfile)
    check("args extend the image's entrypoint (classifyd --config ...)",
          entry and "--config" in entry.group(1) and "--config" not in args, str(args))
    uid = re.search(r"useradd[^\n]*--uid (\d+)", dockerfile)
    check("pod runs as non-root, the image's user id",
          sc.get("runAsNonRoot") is True and uid and sc.get("runAsUser") == int(uid.group(1)),
          f"{sc} vs Dockerfile {uid and uid.group(1)}")
    tgt = hpa["spec"]["scaleTargetRef"]
    metric = hpa["spec"]["metrics"][0]
    check("HPA scales this Deployment on CPU utilization",
          tgt["kind"] == "Deployment" and tgt["name"] == dep["metadata"]["name"]
          and metric["resource"]["name"] == "cpu"
          and 1 <= hpa["spec"]["minReplicas"] <= hpa["spec"]["maxReplicas"], str(hpa["spec"]))
    return c, args, conf, memory(res["limits"]["memory"])


def get(url, data=None, timeout=60):
    h = {"Content-Type": "application/octet-stream"} if data is not None else {}
    try:
        with urllib.request.urlopen(urllib.request.Request(url, data=data, headers=h),
                                    timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()
    except (urllib.error.URLError, OSError):
        return 0, b""


def live_checks(c, args, conf, mem_limit):
    """Run the manifest's args locally and check the paths and the memory budget."""
    local = ["--config", IMAGE_CONF]  # the image's entrypoint
    for a in args:
        a = a.replace("=/models/", "=" + MODELS + "/")
        local.append("127.0.0.1:0" if re.fullmatch(r"[\d.]+:\d+", a) else a)
    missing = [m for m in flag(local, "--model") if not os.path.exists(m.split("=", 1)[1])]
    if missing or not os.path.exists(BIN):
        check("live run of the manifest's args", False, f"missing {missing or BIN}")
        return
    log = tempfile.TemporaryFile()
    proc = subprocess.Popen([BIN, *local], stdout=log, stderr=subprocess.STDOUT)
    try:
        port, deadline = None, time.time() + 30
        while port is None and time.time() < deadline and proc.poll() is None:
            log.seek(0)
            m = re.search(rb"listening on \S+ \(port (\d+)\)", log.read())
            port = m and int(m.group(1))
            time.sleep(0.05)
        if not check("daemon starts with the manifest's args", port, f"rc {proc.poll()}"):
            return
        url = f"http://127.0.0.1:{port}"
        lp = c["livenessProbe"]["httpGet"]["path"]
        check("liveness path answers 200 at once", get(url + lp)[0] == 200)
        deadline = time.time() + 120
        while time.time() < deadline and get(url + c["readinessProbe"]["httpGet"]["path"])[0] != 200:
            time.sleep(0.2)
        check("readiness path answers 200 once loaded",
              get(url + c["readinessProbe"]["httpGet"]["path"])[0] == 200)
        img = Image.effect_mandelbrot((640, 480), (-2.0, -1.2, 1.0, 1.2), 60).convert("RGB")
        buf = io.BytesIO()
        img.save(buf, "JPEG", quality=90)
        with cf.ThreadPoolExecutor(16) as ex:
            codes = list(ex.map(lambda _: get(url + "/classify", buf.getvalue())[0], range(32)))
        check("32 concurrent classifications answered 200", codes == [200] * 32, str(codes))
        status, text = get(url + "/metrics")
        check("metrics path serves Prometheus text",
              status == 200 and b"# TYPE classifyd_" in text, text[:200])
        with open(f"/proc/{proc.pid}/status") as f:
            hwm = int(re.search(r"VmHWM:\s+(\d+) kB", f.read()).group(1)) * 1024
        workers = int((flag(args, "--workers") or [conf.get("engine", "workers")])[-1])
        pixels = int(conf.get("server", "max_pixels"))
        budget = hwm + workers * pixels * 3
        print(f"  peak RSS {hwm >> 20} MiB + decode budget {workers} x {pixels} px x 3 B "
              f"= {budget >> 20} MiB; limit {mem_limit >> 20} MiB")
        check("memory limit covers peak RSS + decode budget", budget <= mem_limit)
    finally:
        proc.terminate()
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
    check("daemon exits 0 on SIGTERM", proc.returncode == 0, f"rc {proc.returncode}")


def main():
    try:
        with open(MANIFEST) as f:
            docs = [d for d in yaml.safe_load_all(f) if d is not None]
    except (OSError, yaml.YAMLError) as e:
        check("kubernetes.yaml parses", False, str(e))
        return
    check("kubernetes.yaml parses", True)
    live_checks(*static_checks(docs))


if __name__ == "__main__":
    try:
        main()
    except (KeyError, IndexError, TypeError, ValueError) as e:
        check("manifest has the expected structure", False, f"{type(e).__name__}: {e}")
    sys.exit(checks.summary("deploy-kubernetes"))
