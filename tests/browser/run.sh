#!/usr/bin/env bash
# Browser test of the page classifyd serves at / (make test-browser).
# Starts the daemon on a free loopback port with two random-weight models, then
# drives Debian's chromium with playwright-core (tests/browser/test_page.js).
# env: BUILD=<abs build dir> MODELS=<abs dir with resnet18/googlenet .onnx>
#      NODE_DIR=<dir whose node_modules holds playwright-core>
#      CLASSIFYD=<binary> (default $BUILD/classifyd) PYTHON=/usr/bin/python3
# Screenshots go to $BUILD/artifacts/browser/. Ends with "browser: N passed, M failed".
set -euo pipefail
cd "$(dirname "$0")/../.."
BIN=${CLASSIFYD:-$BUILD/classifyd}
PY=${PYTHON:-/usr/bin/python3}
CHROMIUM=${CHROMIUM:-/usr/bin/chromium}
ART="$BUILD/artifacts/browser"
work=$(mktemp -d)
pid=""
cleanup() {
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

fail() { echo "browser: $*" >&2; echo "browser: 0 passed, 1 failed"; exit 1; }
[ -x "$BIN" ] || fail "no daemon binary at $BIN"
[ -x "$CHROMIUM" ] || fail "no $CHROMIUM (scripts/deps.sh test installs Debian's chromium)"
[ -f "$NODE_DIR/node_modules/playwright-core/package.json" ] || fail "no playwright-core in $NODE_DIR"
for m in resnet18 googlenet; do [ -f "$MODELS/$m.onnx" ] || fail "no $MODELS/$m.onnx"; done

# Inputs: a real photo when the shared data is there, a GIF (415) and a PNG over
# the 1 MB body limit given to the daemon below (413), made with PIL.
photo=../shared/data/photos/cat.jpg
if [ ! -f "$photo" ]; then
  echo "browser: SKIP real photo ($photo absent): using a generated JPEG"
  photo="$work/photo.jpg"
fi
"$PY" - "$work" "$photo" <<'PY'
import os, random, sys
from PIL import Image, ImageDraw
work, photo = sys.argv[1], sys.argv[2]
if not os.path.exists(photo):
    im = Image.new("RGB", (640, 480), (90, 140, 200))
    d = ImageDraw.Draw(im)
    d.ellipse((180, 120, 460, 400), fill=(230, 160, 60))
    d.rectangle((0, 380, 640, 480), fill=(60, 120, 40))
    im.save(photo, quality=90)
Image.new("RGB", (64, 48), (200, 30, 30)).save(os.path.join(work, "red.gif"))
rnd = random.Random(7)
big = Image.frombytes("RGB", (800, 800), bytes(rnd.getrandbits(8) for _ in range(800 * 800 * 3)))
big.save(os.path.join(work, "noise.png"))
PY

log="$work/daemon.log"
"$BIN" --listen 127.0.0.1:0 --body-limit 1M --threads 2 \
  --model resnet18="$MODELS/resnet18.onnx" --model googlenet="$MODELS/googlenet.onnx" \
  >"$log" 2>&1 &
pid=$!
port=""
for _ in $(seq 300); do
  port=$(sed -n 's/.*listening on .* (port \([0-9]*\)).*/\1/p' "$log" | head -n1)
  [ -n "$port" ] && break
  kill -0 "$pid" 2>/dev/null || { cat "$log" >&2; fail "daemon exited"; }
  sleep 0.1
done
[ -n "$port" ] || fail "daemon did not log its port"
base="http://127.0.0.1:$port"
for _ in $(seq 600); do
  [ "$(curl -s -o /dev/null -w '%{http_code}' "$base/readyz")" = 200 ] && break
  sleep 0.1
done
[ "$(curl -s -o /dev/null -w '%{http_code}' "$base/readyz")" = 200 ] || fail "daemon not ready"

mkdir -p "$ART"
rc=0
timeout -k 10 300 node tests/browser/test_page.js --base "$base" --photo "$photo" \
  --gif "$work/red.gif" --big "$work/noise.png" --artifacts "$ART" --chromium "$CHROMIUM" \
  --node-dir "$NODE_DIR" || rc=$?
if [ $rc -ne 0 ]; then
  echo "--- daemon log (last 30 lines) ---" >&2
  tail -n 30 "$log" >&2
  [ $rc -eq 124 ] && echo "browser: timed out after 300 s; 0 passed, 1 failed"
fi
exit $rc
