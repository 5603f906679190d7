#!/usr/bin/env bash
# Deployment tests (make test-deploy): docker/compose.yaml and docker/kubernetes.yaml checks, and the
# HAProxy scale-out run.  env: BUILD=<abs build dir> MODELS=<abs dir with resnet18.onnx>
set -euo pipefail
cd "$(dirname "$0")/../.."
rc=0
for t in tests/deploy/test_*.py; do
  echo "== $t"
  /usr/bin/python3 "$t" || rc=1
done
exit $rc
