#!/usr/bin/env bash
# Starts the whole local stack: installs what is missing, starts PostgreSQL, Redis and LocalStack
# (with the queues and the demo catalogue), builds the front end and the apps, starts the apps,
# and prints the shop's URL.
#
# Everything listens on 127.0.0.1. Data and logs go to .data/dev (CHARGEFLOW_DATA_DIR), with the
# link secret made on the first start (link_secret, see below).
# Stop it all with scripts/stop.sh; see what runs with scripts/status.sh.
# PROFILE=release builds optimised binaries (slower to build, faster to run).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
export CHARGEFLOW_DATA_DIR="${CHARGEFLOW_DATA_DIR:-$root/.data/dev}"
profile="${PROFILE:-debug}"
# shellcheck source=scripts/apps.sh
. scripts/apps.sh
apps=("${APPS[@]}")

scripts/services.sh start
# shellcheck disable=SC1091
source "$CHARGEFLOW_DATA_DIR/env.sh"
export APP__HTTP__ADDR="${APP__HTTP__ADDR:-127.0.0.1:3000}"
# Demo price rules: 4.90 shipping and 19 % tax by default (the settings' defaults), parcels to
# Austria 6.90 and 20 %, to Switzerland 14.90 and no tax (README, "Settings").
export APP__INVOICE__COUNTRIES__AT__SHIPPING_FEE_MINOR="${APP__INVOICE__COUNTRIES__AT__SHIPPING_FEE_MINOR:-690}"
export APP__INVOICE__COUNTRIES__AT__TAX_RATE_BP="${APP__INVOICE__COUNTRIES__AT__TAX_RATE_BP:-2000}"
export APP__INVOICE__COUNTRIES__CH__SHIPPING_FEE_MINOR="${APP__INVOICE__COUNTRIES__CH__SHIPPING_FEE_MINOR:-1490}"
export APP__INVOICE__COUNTRIES__CH__TAX_RATE_BP="${APP__INVOICE__COUNTRIES__CH__TAX_RATE_BP:-0}"

# The local stack is never rate-limited: a developer clicking around, curl loops and the browser
# tests (many sessions and orders from 127.0.0.1) must not meet the web-server's per-client limits.
# Each limit (settings::LimitSettings, testkit::RATE_LIMITS) gets a million at once and a million a
# second unless exported already.
for limit in API_PER_CLIENT NEW_SESSION_PER_CLIENT CART_WRITE_PER_SESSION CART_WRITE_PER_CLIENT \
  CHECKOUT_PER_SESSION CHECKOUT_PER_CLIENT CANCEL_PER_SESSION CANCEL_PER_CLIENT SIGN_IN_PER_CLIENT; do
  burst="APP__LIMITS__${limit}_BURST" per_minute="APP__LIMITS__${limit}_PER_MINUTE"
  export "$burst=${!burst:-1000000}" "$per_minute=${!per_minute:-60000000}"
done

# The key of the order links in e-mails and of the sign-in links: made once per data dir (links
# already mailed keep working across restarts), readable by this user only. An exported
# APP__SHOP__LINK_SECRET wins.
link_secret_file="$CHARGEFLOW_DATA_DIR/link_secret"
if [ ! -s "$link_secret_file" ]; then
  (umask 077 && head -c 32 /dev/urandom | base64 | tr -d '\n=' >"$link_secret_file.tmp")
  mv "$link_secret_file.tmp" "$link_secret_file"
fi
export APP__SHOP__LINK_SECRET="${APP__SHOP__LINK_SECRET:-$(cat "$link_secret_file")}"

echo "== building ${apps[*]} ($profile)"
build_args=(build --locked)
[ "$profile" = release ] && build_args+=(--release)
for app in "${apps[@]}"; do build_args+=(-p "$app"); done
cargo "${build_args[@]}" -p admin
target_dir=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')

echo "== database: applying pending migrations"
"$target_dir/$profile/chargeflow-admin" db migrate --yes

# The partner simulator reports deliveries to the web-server, signed like the real partner.
export SIM_CALLBACK_URL="${SIM_CALLBACK_URL:-http://$APP__HTTP__ADDR/api/partner/events}"
export SIM_CALLBACK_SECRET="${SIM_CALLBACK_SECRET:-${APP__SHIPPING__CALLBACK_SECRET:-partner_whsec_local}}"
export SIM_DELIVER_AFTER_MS="${SIM_DELIVER_AFTER_MS:-30000}"

if [ -f apps/frontend/package.json ]; then
  echo "== building the front end"
  scripts/frontend.sh build
  export APP__HTTP__STATIC_DIR="${APP__HTTP__STATIC_DIR:-$root/apps/frontend/dist}"
fi

mkdir -p "$CHARGEFLOW_DATA_DIR/pids" "$CHARGEFLOW_DATA_DIR/logs"
for app in "${apps[@]}"; do
  pid_file="$CHARGEFLOW_DATA_DIR/pids/$app.pid"
  if [ -f "$pid_file" ] && kill -0 "$(cat "$pid_file")" 2>/dev/null; then
    echo "$app already running (pid $(cat "$pid_file"))"
    continue
  fi
  "$target_dir/$profile/$app" >>"$CHARGEFLOW_DATA_DIR/logs/$app.log" 2>&1 &
  echo $! >"$pid_file"
  echo "started $app (pid $!), log: $CHARGEFLOW_DATA_DIR/logs/$app.log"
done

url="http://$APP__HTTP__ADDR"
for _ in $(seq 1 100); do
  # The catalogue answers once the web-server reaches PostgreSQL and Redis (its readiness check
  # is on the operations port, which may be switched off).
  if curl -fsS "$url/api/products" >/dev/null 2>&1; then
    # Let the fake Stripe deliver its PaymentIntent events to the webhook, as Stripe would.
    curl -fsS -o /dev/null -X POST "$APP__STRIPE__API_BASE/_config/webhooks/chargeflow" \
      --data-urlencode "url=$url/api/stripe/webhook" --data-urlencode "secret=$APP__STRIPE__WEBHOOK_SECRET" \
      --data-urlencode "events[]=payment_intent.succeeded" --data-urlencode "events[]=payment_intent.payment_failed" \
      || echo "warning: could not register the Stripe webhook with the fake Stripe" >&2
    echo
    echo "ChargeFlow is running. Open $url"
    ops="${APP__METRICS__ADDR-127.0.0.1:9100}"
    echo "  catalogue: $url/api/products${ops:+   readiness and metrics: http://$ops/readyz, /metrics}"
    echo "  e-mails sent (mail viewer): ${CHARGEFLOW_MAIL_VIEWER_URL:-}"
    echo "  stop everything: scripts/stop.sh"
    exit 0
  fi
  sleep 0.2
done
echo "web-server did not become ready; last log lines:" >&2
tail -n 30 "$CHARGEFLOW_DATA_DIR/logs/web-server.log" >&2
exit 1
