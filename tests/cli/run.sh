#!/usr/bin/env bash
# tests/cli/run.sh — `classifyd classify` as a user meets it: output format, options,
# error messages and exit codes, on the release and the ASan+UBSan binaries.
# Env: BUILD (build dir), MODELS (random-weight test models), PYTHON.
# Ends with "cli: N passed, M failed".
set -uo pipefail
cd "$(dirname "$0")/../.."
BUILD=${BUILD:-build}
MODELS=${MODELS:-$BUILD/models}
PYTHON=${PYTHON:-/usr/bin/python3}
SHARED=${SHARED:-../shared/data}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
pass=0 fail=0
ok() { pass=$((pass + 1)); echo "  ok   $1"; }
bad() { fail=$((fail + 1)); echo "  FAIL $1"; }
check() { local name=$1; shift; if "$@"; then ok "$name"; else bad "$name"; fi; }

# Inputs: a JPEG and a PNG made here (the shared photos are used when present).
"$PYTHON" - "$tmp" <<'PY'
import sys
from PIL import Image
d = sys.argv[1]
im = Image.new("RGB", (320, 240))
im.putdata([((x * 7) % 256, (y * 5) % 256, ((x + y) * 3) % 256) for y in range(240) for x in range(320)])
im.save(f"{d}/gen.jpg", quality=90)
im.convert("P").save(f"{d}/gen.png")
Image.new("RGB", (8, 8)).save(f"{d}/img.gif")
open(f"{d}/truncated.jpg", "wb").write(open(f"{d}/gen.jpg", "rb").read()[:600])
PY
imgs=("$tmp/gen.jpg" "$tmp/gen.png")
if [ -d "$SHARED/photos" ]; then imgs+=("$SHARED/photos/cat.jpg" "$SHARED/photos/cat_gray.jpg"); else echo "  skip shared photos: $SHARED/photos not found"; fi

for bin in "$BUILD/classifyd" "$BUILD/asan/classifyd"; do
  v=$(basename "$(dirname "$bin")"); [ "$v" = asan ] || v=release
  export ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 UBSAN_OPTIONS=print_stacktrace=1
  out=$("$bin" classify --model "$MODELS/resnet18.onnx" "${imgs[@]}" 2>"$tmp/err"); rc=$?
  check "$v: classify exits 0" [ $rc -eq 0 ]
  check "$v: one JSON line per image" [ "$(printf '%s\n' "$out" | grep -c .)" -eq ${#imgs[@]} ]
  check "$v: JSON shape, 5 sorted predictions, labels" "$PYTHON" -c '
import json, sys
for line in sys.stdin:
    r = json.loads(line)
    p = r["predictions"]
    assert r["model"] == "resnet18" and len(p) == 5, r
    assert all(set(q) == {"index", "label", "probability"} for q in p)
    assert all(p[i]["probability"] >= p[i + 1]["probability"] for i in range(4))
    assert all(0 <= q["index"] < 1000 and q["label"] and not q["label"].startswith("class_") for q in p)
    assert r.get("untrained") is True
' <<<"$out"
  check "$v: no sanitizer report" bash -c "! grep -q 'Sanitizer\|runtime error' '$tmp/err'"
  out=$("$bin" classify --model "$MODELS/googlenet.onnx" --top-k 3 "$tmp/gen.jpg" 2>/dev/null)
  check "$v: --top-k 3 gives 3 (googlenet)" "$PYTHON" -c 'import json,sys; r=json.loads(sys.stdin.read()); assert len(r["predictions"])==3 and r["model"]=="googlenet"' <<<"$out"
  "$bin" classify --model "$MODELS/resnet18.onnx" "$tmp/img.gif" "$tmp/gen.jpg" >"$tmp/out" 2>"$tmp/err"; rc=$?
  check "$v: GIF refused, exit 1, other image still classified" [ $rc -eq 1 -a "$(grep -c . "$tmp/out")" -eq 1 ]
  check "$v: GIF message names unsupported_media_type" grep -q "img.gif: unsupported_media_type" "$tmp/err"
  "$bin" classify --model "$MODELS/resnet18.onnx" "$tmp/truncated.jpg" >/dev/null 2>"$tmp/err"; rc=$?
  check "$v: truncated JPEG is invalid_image, exit 1" bash -c "[ $rc -eq 1 ] && grep -q invalid_image '$tmp/err'"
  "$bin" classify --model "$MODELS/resnet18.onnx" "$tmp/missing.jpg" >/dev/null 2>"$tmp/err"; rc=$?
  check "$v: missing image: exit 1 with the path" bash -c "[ $rc -eq 1 ] && grep -q missing.jpg '$tmp/err'"
  "$bin" classify --model "$tmp/nope.onnx" "$tmp/gen.jpg" >/dev/null 2>"$tmp/err"; rc=$?
  check "$v: missing model: exit 2 with message" bash -c "[ $rc -eq 2 ] && grep -q 'cannot load model' '$tmp/err'"
  "$bin" classify --model "$tmp/gen.jpg" "$tmp/gen.jpg" >/dev/null 2>"$tmp/err"; rc=$?
  check "$v: a JPEG as model: invalid_model, exit 2" bash -c "[ $rc -eq 2 ] && grep -q invalid_model '$tmp/err'"
  for args in "--top-k 0" "--top-k 1001" "--top-k x" "--threads 0" "" "--bogus"; do
    # shellcheck disable=SC2086
    "$bin" classify --model "$MODELS/resnet18.onnx" $args "$tmp/gen.jpg" >/dev/null 2>"$tmp/err"; rc=$?
    if [ -z "$args" ]; then
      "$bin" classify --model "$MODELS/resnet18.onnx" >/dev/null 2>"$tmp/err"; rc=$?
      args="(no images)"
    fi
    check "$v: bad arguments $args: exit 2 with message" bash -c "[ $rc -eq 2 ] && [ -s '$tmp/err' ]"
  done
  check "$v: no sanitizer report on error paths" bash -c "! grep -q 'Sanitizer\|runtime error' '$tmp/err'"
done

echo "cli: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
