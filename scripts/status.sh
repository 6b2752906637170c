#!/usr/bin/env bash
# Shows what of the local stack runs: the apps, then the services.
set -uo pipefail
cd "$(dirname "$0")/.."
export CHARGEFLOW_DATA_DIR="${CHARGEFLOW_DATA_DIR:-$PWD/.data/dev}"

status=0
# shellcheck source=scripts/apps.sh
. scripts/apps.sh
for name in "${APPS[@]}"; do
  pid_file="$CHARGEFLOW_DATA_DIR/pids/$name.pid"
  if [ -f "$pid_file" ] && kill -0 "$(cat "$pid_file")" 2>/dev/null; then
    printf '%-14s up    pid %s\n' "$name" "$(cat "$pid_file")"
  else
    printf '%-14s down\n' "$name"
    status=3
  fi
done
scripts/services.sh status || status=3
exit "$status"
