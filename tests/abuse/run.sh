#!/usr/bin/env bash
# Abusive clients and resource limits against the daemon (make test-abuse).
# env: BUILD=<abs build dir> MODELS=<abs dir with resnet18.onnx, resnet50.onnx>
#      CLASSIFYD=<binary> (default $BUILD/classifyd), ASAN=1 for the ASan build
set -euo pipefail
cd "$(dirname "$0")/../.."
exec /usr/bin/python3 tests/abuse/test_abuse.py "$@"
