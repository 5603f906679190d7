#!/usr/bin/env bash
# Overload and memory tests of the classifyd daemon (make test-overload; about a minute):
# test_overload.py (3x the sustainable rate) and test_reload_memory.py (RSS across reloads).
# env: BUILD=<abs build dir> MODELS=<abs dir with resnet18.onnx, googlenet.onnx>
#      CLASSIFYD=<binary>; OVERLOAD_QUEUE_LENGTH, OVERLOAD_DEADLINE_MS (see test_overload.py)
set -euo pipefail
cd "$(dirname "$0")/../.."
rc=0
/usr/bin/python3 tests/overload/test_overload.py "$@" || rc=1
/usr/bin/python3 tests/overload/test_reload_memory.py || rc=1
exit $rc
