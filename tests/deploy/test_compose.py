#!/usr/bin/python3
"""docker/compose.yaml against the image it builds: YAML syntax, the build context and
Dockerfile, the published port == the image config's listen port == EXPOSE, the models
folder mounted read-only at /models (where the image config looks), and a stop grace
period longer than the drain. (make test-docker runs the image itself.)
Ends with `deploy-compose: N passed, M failed`.
"""
import configparser
import os
import re
import sys

import yaml

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "pylib"))
import checks  # noqa: E402
from checks import check  # noqa: E402

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
COMPOSE = os.path.join(ROOT, "docker", "compose.yaml")
DOCKERFILE = os.path.join(ROOT, "docker", "Dockerfile")
IMAGE_CONF = os.path.join(ROOT, "docker", "classifyd.conf")


def seconds(v):
    m = re.fullmatch(r"(\d+)(s|m)?", str(v))
    return int(m.group(1)) * (60 if m.group(2) == "m" else 1) if m else -1


def main():
    with open(COMPOSE) as f:
        svc = yaml.safe_load(f)["services"]["classifyd"]
    with open(DOCKERFILE) as f:
        dockerfile = f.read()
    conf = configparser.ConfigParser(comment_prefixes=("#", ";"))
    conf.read(IMAGE_CONF)
    base = os.path.dirname(COMPOSE)
    ctx = os.path.normpath(os.path.join(base, svc["build"]["context"]))
    check("build context is the repository, Dockerfile docker/Dockerfile",
          ctx == ROOT and os.path.join(ctx, svc["build"]["dockerfile"]) == DOCKERFILE, str(svc["build"]))
    listen_port = conf.get("server", "listen").rsplit(":", 1)[1]
    expose = re.findall(r"(?m)^EXPOSE (\d+)", dockerfile)
    published = [str(p).rsplit(":", 1)[1] for p in svc["ports"]]
    check("published container port == image listen port == EXPOSE",
          published == [listen_port] and expose == [listen_port], f"{published} {listen_port} {expose}")
    vols = [v.split(":") for v in svc["volumes"]]
    models = [v for v in vols if v[1] == "/models"]
    paths = [conf.get(s, "path") for s in conf.sections() if s.startswith("model.")]
    check("models mounted read-only at /models, where the image config looks",
          len(models) == 1 and models[0][2:] == ["ro"] and paths
          and all(p.startswith("/models/") for p in paths), f"{svc['volumes']} {paths}")
    check("stop grace period > drain_timeout",
          seconds(svc["stop_grace_period"]) > int(conf.get("server", "drain_timeout")))
    entry = re.search(r"(?m)^ENTRYPOINT (.*)$", dockerfile).group(1)
    cmd = [str(a) for a in svc.get("command", [])]
    check("command holds flags only (appended to the entrypoint)",
          (not cmd or cmd[0].startswith("--")) and "classifyd" in entry, str(cmd))


if __name__ == "__main__":
    try:
        main()
    except (OSError, yaml.YAMLError, KeyError, IndexError, TypeError, AttributeError,
            configparser.Error) as e:
        check("compose.yaml has the expected structure", False, f"{type(e).__name__}: {e}")
    sys.exit(checks.summary("deploy-compose"))
