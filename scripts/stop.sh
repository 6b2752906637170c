#!/usr/bin/env bash
# Stops the apps started by scripts/start.sh, then the services. Safe when nothing runs.
set -euo pipefail
cd "$(dirname "$0")/.."
export CHARGEFLOW_DATA_DIR="${CHARGEFLOW_DATA_DIR:-$PWD/.data/dev}"

for pid_file in "$CHARGEFLOW_DATA_DIR"/pids/{web-server,outbox-relay,invoice-service,billing-service,shipping-service,email-service,partner-sim}.pid; do
  [ -f "$pid_file" ] || continue
  pid=$(cat "$pid_file")
  name=$(basename "$pid_file" .pid)
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid"
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$pid" 2>/dev/null && kill -KILL "$pid"
    echo "stopped $name (pid $pid)"
  fi
  rm -f "$pid_file"
done
scripts/services.sh stop
