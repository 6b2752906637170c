#!/usr/bin/env bash
# Starts a second web-server on a stack that scripts/start.sh started (CHARGEFLOW_DATA_DIR: its
# env.sh and link secret), on 127.0.0.1:PORT, with a Stripe test publishable key
# (E2E_STRIPE_PUBLISHABLE_KEY, default a made-up pk_test_ key): the browser tests of the Payment
# Element use it (SHOP_WITH_STRIPE_KEY_URL), with Stripe.js stubbed in the browser since no
# internet is reachable. Same database, Redis and queues as the stack, so its orders go through
# the same pipeline. No operations port. Its pid goes to pids/web-server-stripe-key.pid, which
# scripts/stop.sh stops with the rest. Prints its URL once GET /api/config shows the key.
# Usage: CHARGEFLOW_DATA_DIR=… apps/frontend/e2e/keyed-web-server.sh PORT
set -euo pipefail
frontend="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
repo="$(cd "$frontend/../.." && pwd)"
port="${1:?usage: keyed-web-server.sh PORT}"
data="${CHARGEFLOW_DATA_DIR:?CHARGEFLOW_DATA_DIR must name the data dir of the stack}"
url="http://127.0.0.1:$port"
key="${E2E_STRIPE_PUBLISHABLE_KEY:-pk_test_ChargeFlowE2eStubbedStripeJs}"
log="$data/logs/web-server-stripe-key.log"
target_dir=$(cd "$repo" && cargo metadata --format-version 1 --no-deps | python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')

(
  # shellcheck disable=SC1091
  source "$data/env.sh"
  export APP__HTTP__ADDR="127.0.0.1:$port" APP__SHOP__PUBLIC_URL="$url" APP__METRICS__ADDR="" \
    APP__HTTP__STATIC_DIR="$frontend/dist" APP__SHOP__LINK_SECRET="$(cat "$data/link_secret")" \
    APP__STRIPE__PUBLISHABLE_KEY="$key"
  exec "$target_dir/${PROFILE:-debug}/web-server"
) >>"$log" 2>&1 &
pid=$!
mkdir -p "$data/pids"
echo "$pid" >"$data/pids/web-server-stripe-key.pid"

for _ in $(seq 1 150); do
  if curl -fsS "$url/api/config" 2>/dev/null | grep -qF "\"$key\""; then
    echo "$url"
    exit 0
  fi
  kill -0 "$pid" 2>/dev/null || break
  sleep 0.2
done
echo "the web-server with a publishable key did not start; last log lines:" >&2
tail -n 20 "$log" >&2
exit 1
