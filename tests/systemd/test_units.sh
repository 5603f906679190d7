#!/usr/bin/env bash
# systemd units and make install/uninstall:
#  - make install DESTDIR=tmp installs exactly the expected files; make uninstall
#    removes every one of them (an edited config is kept, an unedited one removed)
#  - make install PREFIX=tmp gives units whose paths exist: systemd-analyze verify
#    must print nothing and succeed for the service and the socket
#  - systemd-analyze security --offline=yes: overall exposure <= 2.0
set -uo pipefail
cd "$(dirname "$0")/../.."
BUILD=${BUILD:-$PWD/build}
pass=0 fail=0
ok() { echo "  ok   $1"; pass=$((pass + 1)); }
bad() { echo "  FAIL $1"; [ -n "${2:-}" ] && printf '%s\n' "$2" | sed 's/^/       /'; fail=$((fail + 1)); }
T=$(mktemp -d /tmp/classifyd-units-XXXXXX)
trap 'rm -rf "$T"' EXIT

echo "make install / uninstall (DESTDIR)"
make -s install DESTDIR="$T/d" BUILD="$BUILD" >/dev/null || bad "make install DESTDIR"
got=$(cd "$T/d" && find . -type f | sort)
want=$(printf '%s\n' ./usr/local/bin/classifyd ./usr/local/etc/classifyd/classifyd.conf \
  ./usr/local/lib/systemd/system/classifyd.service ./usr/local/lib/systemd/system/classifyd.socket \
  ./usr/local/share/doc/classifyd/README.md $(ls models/*.onnx 2>/dev/null | sed 's|^models/|./usr/local/share/classifyd/models/|') | sort)
[ "$got" = "$want" ] && ok "installed files are exactly the expected list" || bad "installed files" "$(diff <(echo "$want") <(echo "$got"))"
[ -d "$T/d/usr/local/share/classifyd/models" ] && ok "models folder created" || bad "models folder"
grep -q '^ExecStart=/usr/local/bin/classifyd --config /usr/local/etc/classifyd/classifyd.conf$' \
  "$T/d/usr/local/lib/systemd/system/classifyd.service" && ok "unit ExecStart names the installed paths" || bad "ExecStart"
grep -q '^path = /usr/local/share/classifyd/models/resnet50.onnx$' "$T/d/usr/local/etc/classifyd/classifyd.conf" \
  && ok "installed config points at the models folder" || bad "config model path"
[ -x "$T/d/usr/local/bin/classifyd" ] && "$T/d/usr/local/bin/classifyd" --help | grep -q -- --drain-timeout \
  && ok "installed binary runs" || bad "installed binary"
make -s uninstall DESTDIR="$T/d" BUILD="$BUILD" >/dev/null
left=$(cd "$T/d" && find . -type f)
[ -z "$left" ] && ok "make uninstall removes every installed file" || bad "uninstall left files" "$left"
[ ! -e "$T/d/usr/local/share/classifyd" ] && ok "make uninstall removes the (empty) models folder" || bad "models folder left"
make -s install DESTDIR="$T/e" BUILD="$BUILD" >/dev/null
echo "# edited" >> "$T/e/usr/local/etc/classifyd/classifyd.conf"
out=$(make -s install DESTDIR="$T/e" BUILD="$BUILD" 2>&1)
grep -q "# edited" "$T/e/usr/local/etc/classifyd/classifyd.conf" && [[ $out == *"keeping existing"* ]] \
  && ok "install keeps an existing config" || bad "install overwrote the config" "$out"
make -s uninstall DESTDIR="$T/e" BUILD="$BUILD" >/dev/null
left=$(cd "$T/e" && find . -type f)
[ "$left" = "./usr/local/etc/classifyd/classifyd.conf" ] && ok "uninstall keeps an edited config only" || bad "edited config" "$left"

echo "systemd-analyze"
make -s install PREFIX="$T/p" BUILD="$BUILD" >/dev/null || bad "make install PREFIX"
for u in classifyd.service classifyd.socket; do
  out=$(systemd-analyze verify "$T/p/lib/systemd/system/$u" 2>&1); rc=$?
  [ $rc -eq 0 ] && [ -z "$out" ] && ok "systemd-analyze verify $u: clean" || bad "verify $u (rc $rc)" "$out"
done
out=$(systemd-analyze security --offline=yes systemd/classifyd.service 2>&1)
score=$(printf '%s\n' "$out" | sed -n 's/.*Overall exposure level for classifyd.service: \([0-9.]*\).*/\1/p')
if [ -n "$score" ] && awk -v s="$score" 'BEGIN { exit !(s <= 2.0) }'; then
  ok "systemd-analyze security --offline=yes: exposure $score <= 2.0"
else
  bad "exposure '$score' > 2.0 or unparsed" "$(printf '%s\n' "$out" | grep '✗' | head -20)"
fi
echo "units: $pass passed, $fail failed"
[ $fail -eq 0 ]
