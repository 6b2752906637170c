#!/usr/bin/env bash
# Runs every test of the project against real services.
#
# Starts a private PostgreSQL, Redis, LocalStack, SMTP sink and fake Stripe on free loopback ports in
# a temporary folder (so a running dev stack is never touched), runs the Rust unit, integration and
# doc tests, the front end's component tests, the browser tests against the whole stack (started by
# scripts/start.sh on private ports), the docker-compose check, the Prometheus alert rules
# (promtool check and unit tests, ops/prometheus) and cfn-lint on the AWS template, then stops
# everything it started by process id. Between cargo test and the front end, a reduced soak with faults (bench
# soak --reduced). Exits non-zero when any test fails. Extra arguments go to `cargo test`
# (for instance a test name filter) and skip the soak and the front end.
set -euo pipefail
cd "$(dirname "$0")/.."

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

data_dir=$(mktemp -d -t chargeflow-test.XXXXXX)
chmod 755 "$data_dir"  # PostgreSQL runs as the postgres user and must reach its data dir
export CHARGEFLOW_DATA_DIR="$data_dir"
export PG_PORT=$(free_port) REDIS_PORT=$(free_port) LOCALSTACK_PORT=$(free_port) SMTP_PORT=$(free_port)
export STRIPE_PORT=$(free_port) MAIL_VIEWER_PORT=$(free_port)
export SQS_QUEUE_PREFIX=chargeflow-test-

cleanup() {
  # stop.sh stops the apps the browser tests started, then the services.
  scripts/stop.sh >/dev/null 2>&1 || scripts/services.sh stop || true
  rm -rf "$data_dir"
}
trap cleanup EXIT INT TERM

started=$(date +%s)
scripts/services.sh start
# shellcheck disable=SC1091
source "$data_dir/env.sh"
# env.sh exports CHARGEFLOW_VENV (tests start private SMTP sinks with
# "$CHARGEFLOW_VENV/bin/python" scripts/smtp_sink.py --port P --maildir D), APP__SMTP__HOST/PORT
# and CHARGEFLOW_MAILDIR (the shared sink's Maildir), and APP__STRIPE__API_BASE/SECRET_KEY/
# WEBHOOK_SECRET for the shared fake Stripe (tests start private ones with
# "$CHARGEFLOW_VENV/bin/python" scripts/stripe_fake.py --port P: testkit::stripe::FakeStripe).
# Tests create a fresh database each; they connect to the server through this one.
export APP__DATABASE__URL="postgres://postgres@127.0.0.1:${PG_PORT}/postgres"
export RUST_LOG="${RUST_LOG:-warn}"
# No metrics ports by default (the relay and the workers would take 9101-9105, a running dev
# stack's): tests that read metrics pick free ports; the browser tests' stack serves none.
export APP__METRICS__ADDR=""

status=0
echo "== cargo test (services up after $(( $(date +%s) - started )) s)"
[ $# -gt 0 ] || set -- --workspace
# The end-to-end tests run the apps' binaries as processes: build them all first, so a narrowed
# run (-p e2e) never runs binaries older than the code (a no-op for the whole run).
cargo build --workspace --bins || status=1
cargo test --no-fail-fast "$@" -- --test-threads="${TEST_THREADS:-4}" || status=1

# The soak with faults, reduced (bench soak --reduced: 30 orders while each process is killed and
# restarted, LocalStack and the fake Stripe paused, PostgreSQL and the SMTP sink restarted, the
# partner faulty; it asserts the counts, never times). With the whole test run only, after cargo
# test and before the browser tests' stack: it restarts this run's PostgreSQL and pauses its
# LocalStack, which the parallel tests share, so it runs when nothing else uses them (services of
# its own would cost another PostgreSQL and LocalStack, and CPU the parallel tests need). It uses
# the debug binaries cargo test built; its report and the processes' logs stay in
# <target>/soak-reduced.
if [ "$*" = "--workspace" ]; then
  echo "== soak with faults (reduced)"
  soak_started=$(date +%s)
  target_dir=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')
  "$target_dir/debug/bench" soak --reduced --out "$target_dir/soak-reduced" || status=1
  echo "the reduced soak took $(( $(date +%s) - soak_started )) s; report in $target_dir/soak-reduced/soak.md"
fi

# The front end's tests run with the whole test run only (not when cargo arguments narrow it).
if [ "$*" = "--workspace" ] && [ -f apps/frontend/package.json ]; then
  echo "== front end: component tests (Vitest)"
  scripts/frontend.sh test || status=1
  echo "== front end: browser tests (headless Chromium) against the whole stack"
  sim_port=$(free_port)
  shop_addr="127.0.0.1:$(free_port)"
  # The e-mails' links point at this stack (APP__SHOP__PUBLIC_URL); the browser tests read them
  # from the shared SMTP sink's Maildir (CHARGEFLOW_MAILDIR, from env.sh) and sign tokens of
  # their own with the stack's link secret (made by start.sh in the data dir).
  if APP__HTTP__ADDR="$shop_addr" APP__SHOP__PUBLIC_URL="http://$shop_addr" SIM_ADDR="127.0.0.1:$sim_port" \
     APP__SHIPPING__PARTNER_URL="http://127.0.0.1:$sim_port" APP__WORKER__WAIT_TIME_S=2 \
     scripts/start.sh >"$data_dir/start.log" 2>&1; then
    shop_url=$(grep -o 'Open http://[0-9.:]*' "$data_dir/start.log" | cut -d' ' -f2)
    # A second web-server with a Stripe test publishable key, for the Payment Element tests.
    keyed_url=$(apps/frontend/e2e/keyed-web-server.sh "$(free_port)") || status=1
    browser_started=$(date +%s)
    SHOP_URL="$shop_url" LINK_SECRET="$(cat "$data_dir/link_secret")" CHARGEFLOW_MAILDIR="$CHARGEFLOW_MAILDIR" \
      MAIL_VIEWER_URL="$CHARGEFLOW_MAIL_VIEWER_URL" SHOP_WITH_STRIPE_KEY_URL="$keyed_url" \
      scripts/frontend.sh e2e || status=1
    echo "browser tests took $(( $(date +%s) - browser_started )) s; screenshots in apps/frontend/test-results/"
  else
    tail -n 40 "$data_dir/start.log" >&2
    echo "the stack for the browser tests did not start" >&2
    status=1
  fi
fi

echo "== docker-compose.yml check"
"$CHARGEFLOW_VENV/bin/python" scripts/check_compose.py || status=1

echo "== ops/prometheus: promtool check rules, promtool test rules"
if promtool check rules ops/prometheus/alerts.yml && (cd ops/prometheus && promtool test rules alerts.test.yml); then :; else status=1; fi

echo "== deploy/template.yaml: cfn-lint"
if "$CHARGEFLOW_VENV/bin/cfn-lint" deploy/template.yaml; then echo "cfn-lint: no findings"; else status=1; fi

echo "== all tests finished in $(( $(date +%s) - started )) s, exit status $status"
exit "$status"
