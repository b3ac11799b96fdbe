#!/usr/bin/env bash
# Cross-language test: pika (Python) against a running OtterMQ.
set -euo pipefail
source "$REPO_ROOT/tests/lib.sh"
start_broker
cd "$REPO_ROOT"
AMQP_URL=$AMQP_URL timeout 300 .venv-test/bin/python -m pytest -q tests/python
