#!/usr/bin/env bash
# Deployment tests (make test-systemd): units, install/uninstall, sd_notify and
# watchdog, socket activation, SIGHUP reload (release and ASan builds), sandbox.
# env: BUILD=<abs build dir> MODELS=<abs dir with random-weight .onnx models>
set -euo pipefail
cd "$(dirname "$0")/../.."
tests/systemd/test_units.sh
exec /usr/bin/python3 tests/systemd/test_systemd.py "$@"
