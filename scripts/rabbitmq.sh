#!/usr/bin/env bash
# Starts or stops a RabbitMQ 3.10 (Debian's rabbitmq-server) beside OtterMQ, for side-by-side
# benchmarks and for checking that a test encodes RabbitMQ's behaviour.
# Usage: scripts/rabbitmq.sh start|stop|status   (AMQP on $RABBIT_PORT, default 5673)
set -euo pipefail
PORT=${RABBIT_PORT:-5673}
BASE=${RABBIT_BASE:-/tmp/ottermq-rabbit-$PORT}
export RABBITMQ_NODE_PORT=$PORT
export RABBITMQ_NODENAME=${RABBITMQ_NODENAME:-otterbench$PORT@localhost}
export RABBITMQ_DIST_PORT=$((PORT + 20000))
export RABBITMQ_MNESIA_BASE=$BASE/mnesia
export RABBITMQ_LOG_BASE=$BASE/log
export RABBITMQ_PID_FILE=$BASE/rabbit.pid
export RABBITMQ_ENABLED_PLUGINS_FILE=$BASE/enabled_plugins
export RABBITMQ_CONFIG_FILE=$BASE/rabbitmq
export HOME=${RABBIT_HOME:-$BASE}

case "${1:-start}" in
start)
  if ! command -v rabbitmq-server >/dev/null; then
    apt-get install -y -qq rabbitmq-server >/dev/null
  fi
  mkdir -p "$BASE/mnesia" "$BASE/log"
  echo "[]." > "$BASE/enabled_plugins"
  # guest may connect from loopback only (the default); nothing else to configure.
  echo "loopback_users.guest = true" > "$BASE/rabbitmq.conf"
  cp /var/lib/rabbitmq/.erlang.cookie "$BASE/.erlang.cookie" 2>/dev/null || true
  chown -R rabbitmq:rabbitmq "$BASE"
  chmod 400 "$BASE/.erlang.cookie" 2>/dev/null || true
  # RabbitMQ sizes its socket limit from the descriptor limit it starts with (about 830 sockets
  # under the usual 1024, which su's PAM session sets): S6 needs 1,000 connections.
  su rabbitmq -s /bin/bash -c "ulimit -n \$(ulimit -Hn) 2>/dev/null; env HOME=$HOME RABBITMQ_NODE_PORT=$PORT RABBITMQ_NODENAME=$RABBITMQ_NODENAME \
     RABBITMQ_DIST_PORT=$RABBITMQ_DIST_PORT RABBITMQ_MNESIA_BASE=$RABBITMQ_MNESIA_BASE RABBITMQ_LOG_BASE=$RABBITMQ_LOG_BASE \
     RABBITMQ_PID_FILE=$RABBITMQ_PID_FILE RABBITMQ_ENABLED_PLUGINS_FILE=$RABBITMQ_ENABLED_PLUGINS_FILE \
     RABBITMQ_CONFIG_FILE=$RABBITMQ_CONFIG_FILE rabbitmq-server -detached" 
  for _ in $(seq 1 60); do
    if (echo > /dev/tcp/127.0.0.1/$PORT) 2>/dev/null; then echo "rabbitmq up on $PORT"; exit 0; fi
    sleep 1
  done
  echo "rabbitmq did not start; see $BASE/log" >&2; exit 1 ;;
stop)
  if [ -f "$RABBITMQ_PID_FILE" ]; then kill "$(cat "$RABBITMQ_PID_FILE")" 2>/dev/null || true; fi ;;
status)
  (echo > /dev/tcp/127.0.0.1/$PORT) 2>/dev/null && echo up || echo down ;;
esac
