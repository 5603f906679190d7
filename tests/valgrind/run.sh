#!/usr/bin/env bash
# The daemon under Valgrind memcheck with a short request mix (make test-valgrind).
# env: BUILD=<abs build dir> (the model is written by the test)
#      CLASSIFYD=<binary> (default $BUILD/vg/classifyd: built for x86-64-v3)
set -euo pipefail
cd "$(dirname "$0")/../.."
exec /usr/bin/python3 tests/valgrind/test_valgrind.py "$@"
