#!/usr/bin/env bash
# Runs the benchmarks (not tests): checkout versus a plain SQL transaction, and the outbox relay
# versus a plain SendMessageBatch loop, each pair in the same run. Starts private services on
# free loopback ports in a temporary folder and stops them afterwards, like scripts/test.sh.
#
#   scripts/bench.sh                          # both, with defaults
#   scripts/bench.sh checkout --concurrency 20 --requests 4000
#   scripts/bench.sh relay --events 8000 --rate 200 --seconds 20
#   scripts/bench.sh report --orders 3000 --rate 50 --out bench-results   # the pipeline report
#   scripts/bench.sh soak --orders 300 --out bench-results    # the soak with faults (soak.md);
#                                                             # --reduced: the test command's run
set -euo pipefail
cd "$(dirname "$0")/.."

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

data_dir=$(mktemp -d -t chargeflow-bench.XXXXXX)
chmod 755 "$data_dir"  # PostgreSQL runs as the postgres user and must reach its data dir
export CHARGEFLOW_DATA_DIR="$data_dir"
export PG_PORT=$(free_port) REDIS_PORT=$(free_port) LOCALSTACK_PORT=$(free_port) SMTP_PORT=$(free_port) STRIPE_PORT=$(free_port)
export MAIL_VIEWER_PORT=$(free_port)
export SQS_QUEUE_PREFIX=chargeflow-bench-
trap 'scripts/services.sh stop >/dev/null 2>&1 || true; rm -rf "$data_dir"' EXIT INT TERM

# Every binary: `bench report` runs the real ones as separate processes.
cargo build --release --locked --bins
target_dir=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')
scripts/services.sh start
# shellcheck disable=SC1091
source "$data_dir/env.sh"
export APP__DATABASE__URL="postgres://postgres@127.0.0.1:${PG_PORT}/postgres"
export RUST_LOG="${RUST_LOG:-error}"
export APP__METRICS__ADDR=""  # no metrics ports: a running dev stack keeps its own

echo "# ChargeFlow benchmark, $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores"
if [ $# -eq 0 ]; then
  "$target_dir/release/bench" checkout
  "$target_dir/release/bench" relay
  "$target_dir/release/bench" workers
  "$target_dir/release/bench" pipeline
else
  "$target_dir/release/bench" "$@"
fi
