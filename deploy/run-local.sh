#!/usr/bin/env bash
# `make run`: a producer, a router and two senders in the foreground with readable logs.
# Ctrl-C (or any one of them exiting) stops them all.
set -euo pipefail
cd "$(dirname "$0")/.."
py=.venv/bin/python

export HOOKLINE_ADMIN_TOKEN="${HOOKLINE_ADMIN_TOKEN:-dev-admin-token}"
export HOOKLINE_INGEST_TOKEN="${HOOKLINE_INGEST_TOKEN:-dev-ingest-token}"
# The quickstart's receiver listens on loopback, which webhooks may not target by default.
export HOOKLINE_ALLOWED_TARGETS="${HOOKLINE_ALLOWED_TARGETS-127.0.0.0/8,::1/128}"
export HOOKLINE_LOG_FORMAT="${HOOKLINE_LOG_FORMAT:-console}"
export HOOKLINE_PREFIX="${HOOKLINE_PREFIX:-hookline}"

cat <<TXT
Hookline (prefix ${HOOKLINE_PREFIX}) on ${HOOKLINE_AMQP_URL:-amqp://guest:guest@127.0.0.1:5672/}
  producer  http://127.0.0.1:8000   POST /events     token: ${HOOKLINE_INGEST_TOKEN}
  router    http://127.0.0.1:8001   /webhooks API    token: ${HOOKLINE_ADMIN_TOKEN}
  senders   http://127.0.0.1:8002, :8003 (/metrics)
  receiver: .venv/bin/python -m tools.receiver --port 9000 (README, Quickstart)
Ctrl-C stops everything.
TXT

pids=()
start() {
  local label=$1 service=$2 port=$3
  # The prefixer ignores Ctrl-C so it still prints the service's shutdown lines, then ends
  # when the service closes its output.
  HOOKLINE_PORT=$port "$py" -m "services.$service" \
    > >(trap '' INT; exec sed -u "s/^/$label | /") 2>&1 &
  pids+=($!)
}
stop() {
  stopping=1
  trap - INT TERM EXIT
  kill -TERM "${pids[@]}" 2>/dev/null || true
  wait "${pids[@]}" 2>/dev/null || true
}
trap stop INT TERM EXIT

start "producer" producer 8000
start "router  " router 8001
start "sender-1" sender 8002
start "sender-2" sender 8003
wait -n "${pids[@]}" || true
[ -n "${stopping:-}" ] || echo "a service stopped; stopping the others" >&2
