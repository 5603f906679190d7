#!/usr/bin/env bash
# Integration tests of the classifyd daemon (make test-integration).
# env: BUILD=<abs build dir> MODELS=<abs dir with random-weight resnet18/googlenet .onnx>
#      CLASSIFYD=<binary> (default $BUILD/classifyd; e.g. build/asan/classifyd)
#      CLI_CLASSIFYD=<binary> whose `classify` is the reference (default: CLASSIFYD)
set -euo pipefail
cd "$(dirname "$0")/../.."
exec /usr/bin/python3 tests/integration/test_daemon.py "$@"
