#!/usr/bin/env bash
# Cross-language tracing: pika (opentelemetry-instrumentation-pika) and OtterMQ export to one
# OTLP receiver; their spans must share one trace. The receiver runs inside pika_trace.py.
set -euo pipefail
source "$REPO_ROOT/tests/lib.sh"
OTLP_PORT=$(free_port)
export OTLP_PORT
# The broker's exporter connects lazily; nothing is exported before the script publishes.
export OTTERMQ_TRACING_ENABLED=true
export OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:$OTLP_PORT"
export OTEL_SERVICE_NAME=ottermq
export OTEL_BSP_SCHEDULE_DELAY=200
start_broker
cd "$REPO_ROOT"
status=0
# The OTEL_* variables were for the broker; the Python side configures itself.
unset OTEL_EXPORTER_OTLP_ENDPOINT OTEL_SERVICE_NAME OTEL_BSP_SCHEDULE_DELAY
AMQP_URL=$AMQP_URL timeout 120 .venv-test/bin/python tests/tracing/pika_trace.py || status=$?
if [ $status -ne 0 ]; then
  echo "broker log:"; tail -n 30 "$BROKER_LOG"
fi
exit $status
