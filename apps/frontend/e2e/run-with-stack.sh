#!/usr/bin/env bash
# Runs the browser tests against a throwaway ChargeFlow stack: picks free ports, builds the front
# end, starts everything with scripts/start.sh (which builds the Rust apps), runs `npm run e2e`
# and stops the stack again, whatever happened. Usage: apps/frontend/e2e/run-with-stack.sh
#
# Next to the stack's web-server (the local test cards) it starts a second one on the same stack
# with a Stripe test publishable key (e2e/keyed-web-server.sh), for the Payment Element tests
# (SHOP_WITH_STRIPE_KEY_URL); they stub Stripe.js in the browser, as no internet is reachable.
set -euo pipefail
frontend="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
repo="$(cd "$frontend/../.." && pwd)"

data="$(mktemp -d "${TMPDIR:-/tmp}/chargeflow-fe-e2e.XXXXXX")"
chmod 755 "$data" # PostgreSQL runs as its own user and must reach its data dir
read -r pg redis localstack smtp stripe http sim mailview keyed < <(python3 -c '
import socket
socks = [socket.socket() for _ in range(9)]
for s in socks: s.bind(("127.0.0.1", 0))
print(*[s.getsockname()[1] for s in socks])
for s in socks: s.close()')

stop() {
  status=$?
  if [ "$status" -ne 0 ] && [ -f "$data/logs/web-server.log" ]; then
    echo "--- last lines of the web-server log" >&2
    tail -n 20 "$data/logs/web-server.log" >&2 || true
  fi
  CHARGEFLOW_DATA_DIR="$data" "$repo/scripts/stop.sh" >/dev/null 2>&1 || true
  rm -rf "$data"
  exit "$status"
}
trap stop EXIT

cd "$frontend"
[ -d node_modules ] || npm ci --no-audit --no-fund
npm run build

export CHARGEFLOW_DATA_DIR="$data" PG_PORT="$pg" REDIS_PORT="$redis" LOCALSTACK_PORT="$localstack" \
  SMTP_PORT="$smtp" STRIPE_PORT="$stripe" MAIL_VIEWER_PORT="$mailview" APP__HTTP__ADDR="127.0.0.1:$http" \
  APP__SHOP__PUBLIC_URL="http://127.0.0.1:$http" \
  APP__HTTP__STATIC_DIR="$frontend/dist" SIM_ADDR="127.0.0.1:$sim" \
  APP__SHIPPING__PARTNER_URL="http://127.0.0.1:$sim"
"$repo/scripts/start.sh"

keyed_url=$(CHARGEFLOW_DATA_DIR="$data" "$frontend/e2e/keyed-web-server.sh" "$keyed")

# The link tests read the e-mails from the stack's SMTP sink and sign tokens with its secret.
# The quote test counts PaymentIntents at the stack's fake Stripe.
APP__STRIPE__API_BASE="http://127.0.0.1:$stripe" SHOP_URL="http://127.0.0.1:$http" CHARGEFLOW_MAILDIR="$data/mail" \
  MAIL_VIEWER_URL="http://127.0.0.1:$mailview" LINK_SECRET="$(cat "$data/link_secret")" \
  SHOP_WITH_STRIPE_KEY_URL="$keyed_url" npm run e2e
