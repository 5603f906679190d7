#!/usr/bin/env bash
# Overload test of the classifyd daemon (make test-overload; about 45 s).
# env: BUILD=<abs build dir> MODELS=<abs dir with resnet18.onnx> CLASSIFYD=<binary>
#      OVERLOAD_QUEUE_LENGTH, OVERLOAD_DEADLINE_MS (see tests/overload/test_overload.py)
set -euo pipefail
cd "$(dirname "$0")/../.."
exec /usr/bin/python3 tests/overload/test_overload.py "$@"
