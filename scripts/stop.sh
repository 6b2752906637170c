#!/usr/bin/env bash
# Stops the apps started by scripts/start.sh, then the services. Safe when nothing runs.
set -euo pipefail
cd "$(dirname "$0")/.."
export CHARGEFLOW_DATA_DIR="${CHARGEFLOW_DATA_DIR:-$PWD/.data/dev}"

# shellcheck source=scripts/apps.sh
. scripts/apps.sh
# The apps, then any other process a script recorded in pids/ (the browser tests' second
# web-server, apps/frontend/e2e/keyed-web-server.sh).
extra=()
for pid_file in "$CHARGEFLOW_DATA_DIR"/pids/*.pid; do
  [ -f "$pid_file" ] || continue
  name=$(basename "$pid_file" .pid)
  [[ " ${APPS[*]} " == *" $name "* ]] || extra+=("$name")
done
for name in "${APPS[@]}" "${extra[@]}"; do
  pid_file="$CHARGEFLOW_DATA_DIR/pids/$name.pid"
  [ -f "$pid_file" ] || continue
  pid=$(cat "$pid_file")
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid"
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$pid" 2>/dev/null && kill -KILL "$pid"
    echo "stopped $name (pid $pid)"
  fi
  rm -f "$pid_file"
done
scripts/services.sh stop
