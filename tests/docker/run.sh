#!/usr/bin/env bash
# make test-docker: build docker/Dockerfile with podman, run it, classify a photo through
# it, check /healthz, the HEALTHCHECK, the non-root user and the runtime-only image, stop
# it with SIGTERM and check a clean exit (0, "drained").
# env: BUILD=<abs build dir> MODELS=<abs dir with resnet18.onnx>
#
# No Docker engine runs here; Debian's podman does, given --cgroup-manager=cgroupfs
# --runtime=runc --network=host and a containers.conf with `default_ulimits = []`. The
# base image debian:bookworm-slim is made locally (debootstrap --variant=minbase, from the
# apt mirror this machine uses), imported under its usual name, and cached in podman's
# storage (its root file system in $BUILD/docker/rootfs), so the Dockerfile stays standard.
set -euo pipefail
cd "$(dirname "$0")/../.."
BUILD=${BUILD:-$PWD/build}
MODELS=${MODELS:-$BUILD/models}
D=$BUILD/docker
BASE=docker.io/library/debian:bookworm-slim
IMAGE=localhost/classifyd:test
NAME=classifyd-test-$$
PHOTO=../shared/data/photos/cat.jpg
mkdir -p "$D"
printf '[containers]\ndefault_ulimits = []\n' > "$D/containers.conf"
export CONTAINERS_CONF=$D/containers.conf
podman() { timeout "${T:-120}" /usr/bin/podman --cgroup-manager=cgroupfs --runtime=runc "$@"; }

pass=0 fail=0
ok() { pass=$((pass + 1)); echo "  ok   $1"; }
bad() { fail=$((fail + 1)); echo "  FAIL $1"; }
check() { local name=$1; shift; if "$@"; then ok "$name"; else bad "$name"; fi; }
# Dangling layers of earlier builds are dropped, so repeated runs do not fill the disk.
cleanup() {
  podman rm -f -t 0 "$NAME" > /dev/null 2>&1 || true
  podman image prune -f > /dev/null 2>&1 || true
  rm -rf "$TMP"
}
TMP=$(mktemp -d)
trap cleanup EXIT

# ---- base image ---------------------------------------------------------------------
mirror() {
  local m
  m=$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/*.sources 2>/dev/null || true)
  [ -n "$m" ] || m=$(awk '$1 == "deb" {print $2; exit}' /etc/apt/sources.list 2>/dev/null || true)
  echo "${m:-http://deb.debian.org/debian}"
}
if ! podman image exists "$BASE"; then
  t0=$SECONDS
  if [ ! -e "$D/rootfs/.complete" ]; then
    rm -rf "$D/rootfs"
    echo "test-docker: debootstrap --variant=minbase bookworm from $(mirror)"
    timeout 900 debootstrap --variant=minbase bookworm "$D/rootfs" "$(mirror)" > "$D/debootstrap.log" 2>&1 \
      || { tail -20 "$D/debootstrap.log"; exit 1; }
    # Trimmed like the official -slim images: no package caches, lists, docs or locales.
    rm -rf "$D"/rootfs/var/cache/apt/archives/*.deb "$D"/rootfs/var/lib/apt/lists/* \
      "$D"/rootfs/usr/share/{doc,man,info,locale}/*
    touch "$D/rootfs/.complete"
  fi
  tar -C "$D/rootfs" --exclude=./.complete -c . | T=300 podman import - "$BASE" > "$D/import.log" 2>&1
  echo "test-docker: base image $BASE made in $((SECONDS - t0)) s"
fi

# ---- build ----------------------------------------------------------------------------
t0=$SECONDS
if ! T=900 podman build --network=host --format docker -f docker/Dockerfile -t "$IMAGE" . \
    > "$D/build.log" 2>&1; then
  tail -30 "$D/build.log"; echo "test-docker: image build failed"; exit 1
fi
echo "test-docker: image built in $((SECONDS - t0)) s ($(podman image inspect --format '{{.Size}}' "$IMAGE") bytes)"
check "image has a HEALTHCHECK on /healthz" \
  grep -q /healthz <<< "$(podman image inspect --format '{{json .Config.Healthcheck}}' "$IMAGE")"
check "image runs as user 10001" \
  test "$(podman image inspect --format '{{.Config.User}}' "$IMAGE")" = 10001:10001
devs=$(podman run --rm --network=host --no-healthcheck --entrypoint /bin/sh "$IMAGE" -c \
  "dpkg-query -W -f '\${Package}\n' | grep -E -- '-dev\$|^gcc(-[0-9]+)?\$|^cpp|^make\$|^binutils' || true")
check "runtime stage carries no compiler or -dev package ${devs//$'\n'/ }" test -z "$devs"

# ---- run --------------------------------------------------------------------------------
port=$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
url=http://127.0.0.1:$port
podman run -d --name "$NAME" --network=host -e HEALTHCHECK_PORT="$port" \
  -v "$MODELS:/models:ro" "$IMAGE" --listen "127.0.0.1:$port" \
  --model resnet18=/models/resnet18.onnx --threads 2 > /dev/null 2> "$D/run.err"
# (podman schedules the periodic checks with systemd timers; without systemd it says so
# in $D/run.err and `podman healthcheck run` below runs the image's check itself.)
ready=0
for _ in $(seq 600); do
  if curl -sf -m 2 "$url/readyz" > /dev/null; then ready=1; break; fi
  [ "$(podman inspect --format '{{.State.Running}}' "$NAME")" = true ] || break
  sleep 0.1
done
check "container serves /readyz 200 (models loaded from /models)" test $ready = 1
check "/healthz answers 200" test "$(curl -s -m 5 -o /dev/null -w '%{http_code}' "$url/healthz")" = 200
check "podman healthcheck run: healthy" podman healthcheck run "$NAME"
health=$(podman inspect --format '{{.State.Health.Status}}' "$NAME" 2>/dev/null ||
         podman inspect --format '{{.State.Healthcheck.Status}}' "$NAME")
check "container health status is healthy ($health)" test "$health" = healthy
check "daemon process runs as uid 10001" test "$(podman exec "$NAME" /bin/sh -c 'id -u')" = 10001

if [ ! -f "$PHOTO" ]; then
  echo "  (no $PHOTO: classifying a generated image instead)"
  PHOTO=$TMP/generated.jpg
  /usr/bin/python3 -c "from PIL import Image; Image.effect_mandelbrot((400,300),(-2,-1.2,1,1.2),80).convert('RGB').save('$PHOTO')"
fi
code=$(curl -s -m 60 -o "$TMP/answer.json" -w '%{http_code}' -H 'Content-Type: image/jpeg' \
  --data-binary "@$PHOTO" "$url/classify")
check "POST /classify through the container: 200" test "$code" = 200
# Same model, same photo on the host build: the same top-1 class.
"$BUILD/classifyd" classify --model "$MODELS/resnet18.onnx" --top-k 1 "$PHOTO" > "$TMP/host.json"
top1() { /usr/bin/python3 -c "
import json, sys
d = json.load(open(sys.argv[1]))
d = d[0] if isinstance(d, list) else d
print(d['predictions'][0]['index'])" "$1"; }
c_top=$(top1 "$TMP/answer.json" 2>/dev/null || echo none)
h_top=$(top1 "$TMP/host.json" 2>/dev/null || echo host-none)
check "top-1 class matches the host build ($c_top vs $h_top)" test "$c_top" = "$h_top"

# ---- stop ----------------------------------------------------------------------------------
t0=$SECONDS
T=60 podman stop -t 40 "$NAME" > /dev/null 2>> "$D/run.err"
code=$(podman inspect --format '{{.State.ExitCode}}' "$NAME")
echo "  stopped in $((SECONDS - t0)) s"
check "SIGTERM: exit status 0" test "$code" = 0
check "SIGTERM: the log says it drained" grep -q drained <<< "$(podman logs "$NAME" 2>&1)"
[ $fail = 0 ] || podman logs "$NAME" 2>&1 | tail -20
echo "test-docker: $pass passed, $fail failed"
[ $fail = 0 ]
