#!/usr/bin/env bash
# deps.sh — install the Debian packages classifyd needs, only when some are missing.
#   scripts/deps.sh build   packages to build and run the daemon
#   scripts/deps.sh test    the above plus what the test suite uses
# Runs apt-get (as root, `apt-get update` first) only if dpkg says something is absent,
# so a second call costs a few dpkg-query look-ups.
set -euo pipefail

build_pkgs=(
  gcc make pkg-config
  libmicrohttpd-dev libjansson-dev libopenblas-dev libturbojpeg0-dev libuv1-dev
  libpng-dev libwebp-dev libinih-dev libsystemd-dev
  libprotobuf-c-dev protobuf-c-compiler libonnx-dev
)
test_pkgs=(
  libcriterion-dev curl clang libclang-rt-14-dev valgrind systemd strace wrk
  python3-torch python3-torchvision python3-onnx python3-pil python3-numpy
  chromium haproxy python3-yaml podman runc debootstrap
)

want=("${build_pkgs[@]}")
if [ "${1:-build}" = test ]; then want+=("${test_pkgs[@]}"); fi

missing=()
for p in "${want[@]}"; do
  status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
  [ "$status" = "install ok installed" ] || missing+=("$p")
done
# The browser test runs playwright-core under Node.js (>= 18) installed with npm. A
# Node.js from elsewhere (e.g. NodeSource, which bundles npm) is kept as it is.
if [ "${1:-build}" = test ]; then
  command -v node >/dev/null || missing+=(nodejs)
  command -v npm >/dev/null || missing+=(npm)
fi
[ ${#missing[@]} -eq 0 ] && exit 0

echo "deps: installing ${missing[*]}" >&2
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO=sudo
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
$SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
