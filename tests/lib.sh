# Helpers for tests/*/run.sh: start the built broker on free ports and stop it by PID.
# Usage: source "$REPO_ROOT/tests/lib.sh"; start_broker; ... ; (stopped on exit)

# A port free at the time of asking and not handed out before by this script: the kernel can
# give the same port to two bind-to-0 calls in a row once the first socket is closed, and a
# broker started with that port for both AMQP and HTTP fails with "Address already in use".
# The ports handed out are listed in a file, since each $(free_port) runs in a subshell.
FREE_PORTS_TAKEN=${FREE_PORTS_TAKEN:-${TMPDIR:-/tmp}/ottermq-ports-$$}
free_port() {
  python3 - "$FREE_PORTS_TAKEN" <<'PY'
import os, socket, sys
path = sys.argv[1]
taken = set(open(path).read().split()) if os.path.exists(path) else set()
while True:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = str(s.getsockname()[1])
    s.close()
    if port not in taken:
        break
with open(path, "a") as f:
    f.write(port + "\n")
print(port)
PY
}

# Starts $OTTERMQ_BIN with any extra arguments; sets AMQP_PORT, HTTP_PORT, BROKER_PID,
# BROKER_DATA, BROKER_LOG and AMQP_URL. The broker is killed when the calling script exits.
start_broker() {
  AMQP_PORT=$(free_port)
  HTTP_PORT=$(free_port)
  BROKER_DATA=$(mktemp -d)
  BROKER_LOG=$BROKER_DATA/broker.log
  "$OTTERMQ_BIN" --bind 127.0.0.1 --amqp-port "$AMQP_PORT" --http-port "$HTTP_PORT" --data-dir "$BROKER_DATA" "$@" >"$BROKER_LOG" 2>&1 &
  BROKER_PID=$!
  trap 'stop_broker' EXIT
  for _ in $(seq 1 300); do
    if (echo >"/dev/tcp/127.0.0.1/$AMQP_PORT") 2>/dev/null; then
      AMQP_URL="amqp://guest:guest@127.0.0.1:$AMQP_PORT/%2F"
      export AMQP_PORT HTTP_PORT AMQP_URL BROKER_PID
      return 0
    fi
    if ! kill -0 "$BROKER_PID" 2>/dev/null; then break; fi
    sleep 0.1
  done
  echo "broker did not start; log:" >&2
  cat "$BROKER_LOG" >&2
  return 1
}

stop_broker() {
  rm -f "$FREE_PORTS_TAKEN"
  if [ -n "${BROKER_PID:-}" ] && kill -0 "$BROKER_PID" 2>/dev/null; then
    kill "$BROKER_PID" 2>/dev/null || true
    wait "$BROKER_PID" 2>/dev/null || true
  fi
}
