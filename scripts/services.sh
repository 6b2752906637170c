#!/usr/bin/env bash
# services.sh — install, start, stop and report ChargeFlow's local services without Docker:
# PostgreSQL 15 (a throwaway cluster), Redis, LocalStack 4.13.1 (SQS and Secrets Manager, host mode), an SMTP
# sink (scripts/smtp_sink.py, aiosmtpd: stores every mail in a Maildir, sends nothing on) and a
# fake Stripe (scripts/stripe_fake.py, localstripe: in-memory, test cards, signed webhooks),
# all bound to 127.0.0.1 only.
#
#   scripts/services.sh install   apt packages if missing + Python venv (cached, fast when done)
#   scripts/services.sh start     install, start what is not running, create queues, write env.sh
#   scripts/services.sh stop      stop what this data dir started (by recorded pid)
#   scripts/services.sh status    one line per service; exit 0 if all up, 3 otherwise
#   scripts/services.sh restart-postgres   pg_ctl restart -m fast of this data dir's cluster (a
#                                 database fault for `bench soak`: every connection is cut)
#
# Settings (environment, with defaults):
#   CHARGEFLOW_DATA_DIR  <repo>/.data/dev       pids/, logs/, pg/, redis/, localstack/, mail/, env.sh
#   PG_PORT 5432   REDIS_PORT 6379   LOCALSTACK_PORT 4566   SMTP_PORT 1025   STRIPE_PORT 8420
#   MAIL_VIEWER_PORT 1080 (the web page listing the sink's mails, scripts/mail_viewer.py)
#   SQS_QUEUE_PREFIX chargeflow-
#   CHARGEFLOW_TOOLS_DIR $HOME/.cache/chargeflow  holds venv-<hash> (LocalStack, aiosmtpd and
#                        localstripe, from localstack/requirements.lock), shared by every clone
#   CHARGEFLOW_PYTHON    python3.11 if present, else python3 (the venv's interpreter)
#   APPLY_SCHEMA         1; 0 = do not apply init.sql to the chargeflow database
# Several instances can run side by side with different ports and data dirs.
# Then: `. "$CHARGEFLOW_DATA_DIR/env.sh"` exports APP__DATABASE__URL, APP__REDIS__URL, APP__SQS__*,
# APP__SMTP__HOST/PORT, CHARGEFLOW_MAILDIR (the sink's Maildir: one file per mail in its new/),
# CHARGEFLOW_MAIL_VIEWER_URL (those mails in a browser),
# APP__STRIPE__API_BASE/SECRET_KEY/WEBHOOK_SECRET (the fake Stripe, any sk_test_ key works)
# and CHARGEFLOW_VENV.
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DATA_DIR="${CHARGEFLOW_DATA_DIR:-$REPO_ROOT/.data/dev}"
[[ "$DATA_DIR" = /* ]] || DATA_DIR="$PWD/$DATA_DIR"
PG_PORT="${PG_PORT:-5432}"
REDIS_PORT="${REDIS_PORT:-6379}"
LOCALSTACK_PORT="${LOCALSTACK_PORT:-4566}"
SMTP_PORT="${SMTP_PORT:-1025}"
STRIPE_PORT="${STRIPE_PORT:-8420}"
MAIL_VIEWER_PORT="${MAIL_VIEWER_PORT:-1080}"
SQS_QUEUE_PREFIX="${SQS_QUEUE_PREFIX:-chargeflow-}"
TOOLS_DIR="${CHARGEFLOW_TOOLS_DIR:-${HOME:-/tmp}/.cache/chargeflow}"
APPLY_SCHEMA="${APPLY_SCHEMA:-1}"

LOCK_FILE="$REPO_ROOT/localstack/requirements.lock"
QUEUES_FILE="$REPO_ROOT/localstack/queues.json"
CREATE_QUEUES="$REPO_ROOT/localstack/init/ready.d/create_queues.py"
LOCALSTACK_LAUNCHER="$REPO_ROOT/localstack/launch.py"
SMTP_SINK="$REPO_ROOT/scripts/smtp_sink.py"
STRIPE_FAKE="$REPO_ROOT/scripts/stripe_fake.py"
MAIL_VIEWER="$REPO_ROOT/scripts/mail_viewer.py"
PID_DIR="$DATA_DIR/pids"
LOG_DIR="$DATA_DIR/logs"
PGDATA="$DATA_DIR/pg/data"
PGRUN="$DATA_DIR/pg/run"          # unix socket directory
MAILDIR="$DATA_DIR/mail"          # the SMTP sink's Maildir (it creates it)
LOCALSTACK_URL="http://127.0.0.1:$LOCALSTACK_PORT"
STRIPE_URL="http://127.0.0.1:$STRIPE_PORT"
MAIL_VIEWER_URL="http://127.0.0.1:$MAIL_VIEWER_PORT"
STOP_TIMEOUT_S=10
LOCALSTACK_TIMEOUT_S=60

log() { printf 'services: %s\n' "$*"; }
die() { printf 'services: error: %s\n' "$*" >&2; exit 1; }

# ---------------------------------------------------------------- helpers

as_root() { if [[ $EUID -eq 0 ]]; then "$@"; else sudo "$@"; fi; }

# PostgreSQL refuses to run as root: run its tools as the postgres user (from / so that an
# unreadable working directory does not matter). Non-root users run them as themselves.
as_pg() { if [[ $EUID -eq 0 ]]; then (cd / && runuser -u postgres -- "$@"); else "$@"; fi; }

pg_bin_dir() {
  if [[ -n "${PG_BIN:-}" ]]; then echo "$PG_BIN"; return; fi
  local dir
  dir="$(printf '%s\n' /usr/lib/postgresql/*/bin | sort -V | tail -n1)"
  if [[ -x "$dir/initdb" ]]; then echo "$dir"; return; fi
  if command -v initdb >/dev/null 2>&1; then dirname "$(command -v initdb)"; fi
}

python_cmd() {
  if [[ -n "${CHARGEFLOW_PYTHON:-}" ]]; then echo "$CHARGEFLOW_PYTHON"
  elif command -v python3.11 >/dev/null 2>&1; then echo python3.11
  else echo python3; fi
}

# The venv is keyed by the lock file and the interpreter, so a changed lock gets a new venv.
VENV=""
set_venv_path() {
  [[ -n "$VENV" ]] && return 0
  local key
  key="$({ cat "$LOCK_FILE"; "$(python_cmd)" -c 'import sys; print(sys.version)'; } | sha256sum | cut -c1-12)"
  VENV="$TOOLS_DIR/venv-$key"
}

# A zombie (dead, not yet reaped by pid 1) passes `kill -0` and keeps its /proc/PID/comm.
zombie() { [[ "$(ps -o stat= -p "$1" 2>/dev/null)" == Z* ]]; }
alive() { [[ -n "${1:-}" ]] && kill -0 "$1" 2>/dev/null && ! zombie "$1"; }

# Is pid $1 really our $2? Checked by process name (and LocalStack by its `-m` module, the SMTP
# sink and the fake Stripe by their script argument), never by a substring of the command line
# alone: a recycled pid of a shell whose command merely mentions "postgres" must not be taken for
# the server and killed.
is_service() {
  local comm args
  comm="$(cat "/proc/$1/comm" 2>/dev/null)" || return 1
  case $2 in
    postgres | redis-server) [[ "$comm" == "$2" ]] ;;
    localstack)
      # Started through the launcher (or, by an older checkout, as the module itself).
      args="$(tr '\0' ' ' <"/proc/$1/cmdline" 2>/dev/null)" || return 1
      [[ "$comm" == python* && ("$args" == *" $LOCALSTACK_LAUNCHER "* || "$args" == *" -m localstack.runtime.main "*) ]] ;;
    smtp)
      args="$(tr '\0' ' ' <"/proc/$1/cmdline" 2>/dev/null)" || return 1
      [[ "$comm" == python* && "$args" == *" $SMTP_SINK "* ]] ;;
    stripe)
      args="$(tr '\0' ' ' <"/proc/$1/cmdline" 2>/dev/null)" || return 1
      [[ "$comm" == python* && "$args" == *" $STRIPE_FAKE "* ]] ;;
    mailview)
      args="$(tr '\0' ' ' <"/proc/$1/cmdline" 2>/dev/null)" || return 1
      [[ "$comm" == python* && "$args" == *" $MAIL_VIEWER "* ]] ;;
  esac
}

# The pid in a pid file, if that process is alive and is the service $2.
live_pid() {
  local file=$1 kind=$2 pid
  [[ -f "$file" ]] || return 0
  pid="$(head -n1 "$file" | tr -dc 0-9)"
  if alive "$pid" && is_service "$pid" "$kind"; then echo "$pid"; fi
}

pg_pid() { live_pid "$PGDATA/postmaster.pid" postgres; }
redis_pid() { live_pid "$PID_DIR/redis.pid" redis-server; }
localstack_pid() { live_pid "$PID_DIR/localstack.pid" localstack; }
smtp_pid() { live_pid "$PID_DIR/smtp.pid" smtp; }
stripe_pid() { live_pid "$PID_DIR/stripe.pid" stripe; }
mailview_pid() { live_pid "$PID_DIR/mailview.pid" mailview; }

# Every process of the session led by $1 (redis, LocalStack, the SMTP sink and the fake Stripe are
# started with setsid, so their children, if any, stay in that session).
# Zombies are left out: they are dead, only not yet reaped by whatever pid 1 is.
session_pids() { ps -eo pid=,sid=,stat= | awk -v s="$1" '$2 == s && $3 !~ /^Z/ { print $1 }'; }

port_listeners() { ss -Hltnp "sport = :$1" 2>/dev/null || true; }

ensure_port_free() {
  local port=$1 var=$2 who
  who="$(port_listeners "$port")"
  [[ -z "$who" ]] && return 0
  die "port $port is already in use by something this data dir did not start:
$who
Set $var to a free port (and CHARGEFLOW_DATA_DIR to another folder) to run beside it, or stop it."
}

# Fails if any TCP/UDP listener of the given pids is bound to anything but 127.0.0.1.
assert_loopback_only() {
  local name=$1; shift
  local pattern bad
  pattern="$(printf 'pid=%s,|' "$@")"
  bad="$(ss -Hltunp | grep -E "${pattern%|}" | awk '{ print $5 }' | grep -v '^127\.0\.0\.1:' || true)"
  [[ -z "$bad" ]] || die "$name listens on $(echo "$bad" | tr '\n' ' ')- it must listen on 127.0.0.1 only"
}

# wait_until SECONDS COMMAND...: poll every 0.2 s until COMMAND succeeds.
wait_until() {
  local timeout=$1; shift
  local deadline=$((SECONDS + timeout))
  until "$@" >/dev/null 2>&1; do
    ((SECONDS < deadline)) || return 1
    sleep 0.2
  done
}

http_get() {
  if command -v curl >/dev/null 2>&1; then curl -fsS --max-time 2 "$1"
  else "$(python_cmd)" -c 'import sys, urllib.request; print(urllib.request.urlopen(sys.argv[1], timeout=2).read().decode())' "$1"
  fi
}

pg_ready() { "$(pg_bin_dir)/pg_isready" -q -h 127.0.0.1 -p "$PG_PORT" -U postgres -d postgres -t 2; }
redis_ready() { [[ "$(redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping 2>/dev/null)" == PONG ]]; }
localstack_ready() { http_get "$LOCALSTACK_URL/_localstack/health" | grep -Eq '"sqs": *"running"'; }
# TCP connect and read the SMTP greeting (bash's /dev/tcp; the sink just sees a dropped client).
smtp_ready() {
  timeout 2 bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$1" && head -c 4 <&3' _ "$SMTP_PORT" 2>/dev/null | grep -q '^220'
}
# The mail viewer's JSON list answers.
mailview_ready() {
  "$VENV/bin/python" -c 'import sys, urllib.request
sys.exit(0 if urllib.request.urlopen(sys.argv[1], timeout=2).status == 200 else 1)' "$MAIL_VIEWER_URL/api/messages"
}
# An HTTP answer from the fake Stripe: the list of PaymentIntents (any sk_test_ key, basic auth).
stripe_ready() {
  if command -v curl >/dev/null 2>&1; then
    curl -fsS --max-time 2 -u sk_test_local: "$STRIPE_URL/v1/payment_intents?limit=1" | grep -q '"object"'
  else
    "$(python_cmd)" -c 'import base64, sys, urllib.request
req = urllib.request.Request(sys.argv[1], headers={"Authorization": "Basic " + base64.b64encode(b"sk_test_local:").decode()})
sys.exit(0 if b"\"object\"" in urllib.request.urlopen(req, timeout=2).read() else 1)' "$STRIPE_URL/v1/payment_intents?limit=1"
  fi
}

psql_pg() { "$(pg_bin_dir)/psql" -X -q -h 127.0.0.1 -p "$PG_PORT" -U postgres -v ON_ERROR_STOP=1 "$@"; }

# ---------------------------------------------------------------- install

# Debian's postinst scripts would start a default redis (and postgres cluster) on the default
# ports; a temporary policy-rc.d forbids that while we install.
apt_install() {
  local guard=/usr/sbin/policy-rc.d added=0
  if [[ ! -e "$guard" ]]; then
    printf '#!/bin/sh\nexit 101\n' | as_root tee "$guard" >/dev/null && as_root chmod +x "$guard" && added=1
  fi
  log "apt-get install $*"
  local rc=0
  { as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq &&
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@"; } \
    >"$TOOLS_DIR/apt.log" 2>&1 || rc=$?
  if [[ $added -eq 1 ]]; then as_root rm -f "$guard"; fi
  [[ $rc -eq 0 ]] || { tail -n 30 "$TOOLS_DIR/apt.log" >&2; die "apt-get install $* failed"; }
}

missing_packages() {
  command -v redis-server >/dev/null 2>&1 || echo redis-server
  [[ -n "$(pg_bin_dir)" ]] || echo postgresql
  command -v ss >/dev/null 2>&1 || echo iproute2
  # promtool, for the test command's check of ops/prometheus (the server is not started).
  command -v promtool >/dev/null 2>&1 || echo prometheus
}

install_venv() {
  local venv=$VENV python
  python="$(python_cmd)"
  log "creating the Python venv $venv (LocalStack, aiosmtpd, localstripe; first time: a minute or two)"
  rm -rf "$venv"
  "$python" -m venv "$venv"
  "$venv/bin/python" -m pip install --disable-pip-version-check --no-input --quiet \
    --no-deps --require-hashes -r "$LOCK_FILE" >"$TOOLS_DIR/pip.log" 2>&1 \
    || { tail -n 30 "$TOOLS_DIR/pip.log" >&2; die "pip install of $LOCK_FILE failed"; }
  "$venv/bin/python" -c 'import localstack.runtime.main, boto3, yaml, aiosmtpd, localstripe.server' \
    || die "the Python venv $venv is broken"
  date -u +%FT%TZ >"$venv/.chargeflow-installed"
}

cmd_install() {
  mkdir -p "$TOOLS_DIR"
  set_venv_path
  local venv=$VENV
  # Fast path: nothing to do (no lock taken).
  if [[ -z "$(missing_packages)" && -f "$venv/.chargeflow-installed" ]]; then return 0; fi
  # Serialise concurrent installs (e.g. two test instances starting at once).
  exec 9>"$TOOLS_DIR/.install.lock"
  flock 9
  local missing
  missing="$(missing_packages | tr '\n' ' ')"
  if [[ -n "${missing// /}" ]]; then
    # shellcheck disable=SC2086
    apt_install $missing
    [[ -z "$(missing_packages)" ]] || die "still missing after apt-get: $(missing_packages | tr '\n' ' ')"
  fi
  [[ -f "$venv/.chargeflow-installed" ]] || install_venv
  exec 9>&-
  log "installed: postgres $(pg_bin_dir), $(command -v redis-server), venv $venv"
}

# ---------------------------------------------------------------- postgres

# The server runs as postgres, so it must be able to traverse down to $DATA_DIR/pg. A data dir
# made by `mktemp -d` is mode 700: give it search permission (x only, no listing).
ensure_pg_can_reach_data_dir() {
  [[ $EUID -eq 0 ]] || return 0
  mkdir -p "$DATA_DIR/pg"
  as_pg test -x "$DATA_DIR/pg" && return 0
  chmod a+x "$DATA_DIR"
  as_pg test -x "$DATA_DIR/pg" || die "the postgres user cannot reach $DATA_DIR/pg (a parent folder
is not searchable by it): set CHARGEFLOW_DATA_DIR to a folder such as /tmp/chargeflow-dev"
}

init_pg_cluster() {
  log "postgres: initdb $PGDATA"
  mkdir -p "$PGDATA" "$PGRUN"
  if [[ $EUID -eq 0 ]]; then chown -R postgres:postgres "$DATA_DIR/pg"; fi
  chmod 700 "$PGDATA"
  as_pg "$(pg_bin_dir)/initdb" -D "$PGDATA" -U postgres -A trust -E UTF8 --locale=C --no-sync \
    >"$LOG_DIR/initdb.log" 2>&1 || { cat "$LOG_DIR/initdb.log" >&2; die "initdb failed"; }
  as_pg sh -c "cat >'$PGDATA/pg_hba.conf'" <<'EOF'
# ChargeFlow local cluster: trust, from the unix socket and 127.0.0.1 only.
local all all              trust
host  all all 127.0.0.1/32 trust
EOF
  as_pg sh -c "echo \"include_if_exists 'chargeflow.conf'\" >>'$PGDATA/postgresql.conf'"
}

# After a kill -9 the postmaster can linger as a zombie, which postgres takes for a live
# server holding its lock files (postmaster.pid, the socket's .lock): a dead server's can go.
remove_stale_postmaster_pid() {
  local pid
  [[ -f "$PGDATA/postmaster.pid" ]] || return 0
  pid="$(head -n1 "$PGDATA/postmaster.pid" | tr -dc 0-9)"
  if [[ -n "$pid" ]] && zombie "$pid"; then
    log "postgres: removing the lock files of dead server $pid"
    rm -f "$PGDATA/postmaster.pid" "$PGRUN"/.s.PGSQL.*
  fi
}

# Rewritten at every start, so PG_PORT may change between runs.
write_pg_conf() {
  as_pg sh -c "cat >'$PGDATA/chargeflow.conf'" <<EOF
# Written by scripts/services.sh at each start.
listen_addresses = '127.0.0.1'
port = $PG_PORT
unix_socket_directories = '$PGRUN'
max_connections = 500
fsync = off
synchronous_commit = off
full_page_writes = off
# Per-statement counts for the benchmark report (bench report: calls per normalised statement);
# the view exists only in a database that runs CREATE EXTENSION pg_stat_statements (the bench's).
# Debian's postgresql-15 ships the module. Room for the many test databases' statements.
shared_preload_libraries = 'pg_stat_statements'
pg_stat_statements.max = 10000
EOF
}

start_postgres() {
  local pid
  pid="$(pg_pid)"
  if [[ -n "$pid" ]]; then
    log "postgres: already running (pid $pid)"
  else
    ensure_port_free "$PG_PORT" PG_PORT
    (( ${#PGRUN} + 20 < 107 )) || die "socket path under $PGRUN is too long for unix sockets: use a shorter CHARGEFLOW_DATA_DIR"
    ensure_pg_can_reach_data_dir
    [[ -f "$PGDATA/PG_VERSION" ]] || init_pg_cluster
    remove_stale_postmaster_pid
    write_pg_conf
    touch "$LOG_DIR/postgres.log"
    if [[ $EUID -eq 0 ]]; then chown postgres:postgres "$LOG_DIR/postgres.log"; fi
    log "postgres: starting on 127.0.0.1:$PG_PORT"
    as_pg "$(pg_bin_dir)/pg_ctl" -D "$PGDATA" -l "$LOG_DIR/postgres.log" -w -t 60 start >/dev/null 8>&- \
      || { tail -n 30 "$LOG_DIR/postgres.log" >&2; die "postgres did not start"; }
    pid="$(pg_pid)"
  fi
  echo "$pid" >"$PID_DIR/postgres.pid"
  wait_until 30 pg_ready || die "postgres is not ready on 127.0.0.1:$PG_PORT"
  assert_loopback_only postgres "$pid"
  ensure_database
}

# A new database gets the whole schema from init.sql (which records every migration as applied).
# An existing one keeps its orders: scripts/start.sh brings it up to date with the versioned
# migrations (`chargeflow-admin db migrate --yes`), as a deployment does.
ensure_database() {
  [[ "$APPLY_SCHEMA" == 0 ]] && { create_database; return 0; }
  if [[ "$(psql_pg -d postgres -tAc "select 1 from pg_database where datname = 'chargeflow'")" == 1 ]]; then
    return 0
  fi
  create_database
  log "postgres: applying init.sql"
  psql_pg -d chargeflow --single-transaction -f "$REPO_ROOT/init.sql" >"$LOG_DIR/schema.log" 2>&1 \
    || { psql_pg -d postgres -c 'drop database chargeflow' >/dev/null; cat "$LOG_DIR/schema.log" >&2; die "init.sql failed (nothing of it was applied)"; }
}

create_database() {
  if [[ "$(psql_pg -d postgres -tAc "select 1 from pg_database where datname = 'chargeflow'")" != 1 ]]; then
    log "postgres: creating database chargeflow"
    psql_pg -d postgres -c 'create database chargeflow owner postgres' >/dev/null
  fi
}

stop_postgres() {
  local pid
  pid="$(pg_pid)"
  if [[ -n "$pid" ]]; then
    log "postgres: stopping (pid $pid)"
    as_pg "$(pg_bin_dir)/pg_ctl" -D "$PGDATA" -m fast -w -t "$STOP_TIMEOUT_S" stop >/dev/null 2>&1 \
      || kill_session "$pid"
  fi
  rm -f "$PID_DIR/postgres.pid"
}

# `pg_ctl restart -m fast`: open connections are cut, the server comes back on the same port and
# data. Only this data dir's running cluster (found by its postmaster.pid) is touched.
restart_postgres() {
  [[ -n "$(pg_pid)" ]] || die "postgres of $DATA_DIR is not running"
  as_pg "$(pg_bin_dir)/pg_ctl" -D "$PGDATA" -l "$LOG_DIR/postgres.log" -m fast -w -t 60 restart >/dev/null 8>&- \
    || { tail -n 30 "$LOG_DIR/postgres.log" >&2; die "postgres did not restart"; }
  pg_pid >"$PID_DIR/postgres.pid"
  wait_until 30 pg_ready || die "postgres is not ready on 127.0.0.1:$PG_PORT after the restart"
}

# ---------------------------------------------------------------- redis

start_redis() {
  local pid
  pid="$(redis_pid)"
  if [[ -n "$pid" ]]; then
    log "redis: already running (pid $pid)"
  else
    ensure_port_free "$REDIS_PORT" REDIS_PORT
    mkdir -p "$DATA_DIR/redis"
    log "redis: starting on 127.0.0.1:$REDIS_PORT"
    setsid redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --save '' --appendonly no \
      --daemonize no --dir "$DATA_DIR/redis" </dev/null >>"$LOG_DIR/redis.log" 2>&1 8>&- &
    pid=$!
    echo "$pid" >"$PID_DIR/redis.pid"
  fi
  wait_until 15 redis_ready || { tail -n 20 "$LOG_DIR/redis.log" >&2; die "redis is not ready on 127.0.0.1:$REDIS_PORT"; }
  assert_loopback_only redis "$pid"
}

# ---------------------------------------------------------------- the Python services

# start_script NAME PORT PORT_VAR READY DESCRIPTION SCRIPT ARGS...: starts SCRIPT with the venv's
# Python in a session of its own (unless NAME's pid file names a live one), pid in pids/NAME.pid,
# output in logs/NAME.log; waits until READY succeeds and checks it listens on loopback only.
start_script() {
  local name=$1 port=$2 port_var=$3 ready=$4 description=$5 pid
  shift 5
  set_venv_path
  pid="$("${name}_pid")"
  if [[ -n "$pid" ]]; then
    log "$name: already running (pid $pid)"
  else
    ensure_port_free "$port" "$port_var"
    log "$name: starting $description"
    setsid "$VENV/bin/python" "$@" </dev/null >>"$LOG_DIR/$name.log" 2>&1 8>&- &
    pid=$!
    echo "$pid" >"$PID_DIR/$name.pid"
  fi
  if ! wait_until 15 "$ready"; then
    tail -n 20 "$LOG_DIR/$name.log" >&2
    if alive "$pid"; then kill_session "$pid"; fi
    rm -f "$PID_DIR/$name.pid"
    die "$name ($description) is not ready"
  fi
  assert_loopback_only "$name" "$pid"
}

start_smtp() {
  start_script smtp "$SMTP_PORT" SMTP_PORT smtp_ready \
    "the SMTP sink on 127.0.0.1:$SMTP_PORT (Maildir $MAILDIR)" \
    "$SMTP_SINK" --host 127.0.0.1 --port "$SMTP_PORT" --maildir "$MAILDIR"
}

start_mailview() {
  start_script mailview "$MAIL_VIEWER_PORT" MAIL_VIEWER_PORT mailview_ready \
    "the mail viewer on $MAIL_VIEWER_URL (reads $MAILDIR)" \
    "$MAIL_VIEWER" --host 127.0.0.1 --port "$MAIL_VIEWER_PORT" --maildir "$MAILDIR"
}

start_stripe() {
  start_script stripe "$STRIPE_PORT" STRIPE_PORT stripe_ready \
    "the fake Stripe (localstripe) on $STRIPE_URL" \
    "$STRIPE_FAKE" --host 127.0.0.1 --port "$STRIPE_PORT"
}

# ---------------------------------------------------------------- localstack

start_localstack() {
  local pid venv
  set_venv_path
  venv=$VENV
  pid="$(localstack_pid)"
  if [[ -n "$pid" ]]; then
    log "localstack: already running (pid $pid)"
    wait_until "$LOCALSTACK_TIMEOUT_S" localstack_ready \
      || die "localstack (pid $pid) runs but SQS is not healthy: see $LOG_DIR/localstack.log"
    return 0
  fi
  ensure_port_free "$LOCALSTACK_PORT" LOCALSTACK_PORT
  mkdir -p "$DATA_DIR/localstack"
  log "localstack: starting on 127.0.0.1:$LOCALSTACK_PORT"
  # The default gateway server binds 0.0.0.0 whatever GATEWAY_LISTEN says; hypercorn honours it.
  # OVERRIDE_IN_DOCKER=0: when the machine itself is a container, LocalStack otherwise believes
  # it runs in its own image: it ignores FILESYSTEM_ROOT (writes /var/lib/localstack,
  # /tmp/localstack, shared by all instances) and pings the Docker bridge IPs at import.
  # LS_LOG=warn: a log line per request cost the queue service ~15 % of its throughput (the
  # plain SendMessageBatch loop of `bench relay`: ~2050 → ~2400 messages/s); LS_LOG=info shows them.
  # The launcher runs LocalStack's own main module, with its start-up objects frozen out of the
  # garbage collector's way once it is ready (localstack/launch.py says why).
  env GATEWAY_LISTEN="127.0.0.1:$LOCALSTACK_PORT" GATEWAY_SERVER=hypercorn SERVICES=sqs,secretsmanager \
    LS_LOG="${LS_LOG:-warn}" \
    EAGER_SERVICE_LOADING=1 DNS_ADDRESS=0 DISABLE_EVENTS=1 SKIP_SSL_CERT_DOWNLOAD=1 \
    SQS_ENDPOINT_STRATEGY=path LOCALSTACK_HOST="127.0.0.1:$LOCALSTACK_PORT" \
    FILESYSTEM_ROOT="$DATA_DIR/localstack" OVERRIDE_IN_DOCKER=0 \
    setsid "$venv/bin/python" "$LOCALSTACK_LAUNCHER" </dev/null >>"$LOG_DIR/localstack.log" 2>&1 8>&- &
  pid=$!
  echo "$pid" >"$PID_DIR/localstack.pid"
  local deadline=$((SECONDS + LOCALSTACK_TIMEOUT_S))
  until localstack_ready 2>/dev/null; do
    if ! alive "$pid" || ((SECONDS >= deadline)); then
      tail -n 40 "$LOG_DIR/localstack.log" >&2
      alive "$pid" && kill_session "$pid"
      rm -f "$PID_DIR/localstack.pid"
      die "localstack did not report \"sqs\": \"running\" within ${LOCALSTACK_TIMEOUT_S}s (log above)"
    fi
    sleep 0.2
  done
  # shellcheck disable=SC2046
  assert_loopback_only localstack $(session_pids "$pid")
  AWS_ENDPOINT_URL="$LOCALSTACK_URL" SQS_QUEUE_PREFIX="$SQS_QUEUE_PREFIX" \
    CHARGEFLOW_QUEUES_FILE="$QUEUES_FILE" "$venv/bin/python" "$CREATE_QUEUES" \
    || die "creating the SQS queues failed"
}

# Sends one SIGTERM to each process group led by the given pids (a session member that left
# the group is caught by reap_sessions). Only one: LocalStack can hang when a second SIGTERM
# lands in its signal handler while it is shutting down.
term_sessions() {
  local leader
  for leader in "$@"; do
    kill -TERM -- "-$leader" 2>/dev/null || kill -TERM "$leader" 2>/dev/null || true
  done
}

# Waits up to STOP_TIMEOUT_S for the sessions of the given leaders to be empty, then SIGKILLs
# what is left. Fails if anything survives that.
reap_sessions() {
  local deadline=$((SECONDS + STOP_TIMEOUT_S)) left leader
  while :; do
    left=""
    for leader in "$@"; do left+=" $(session_pids "$leader" | tr '\n' ' ')"; done
    [[ -z "${left// /}" ]] && return 0
    ((SECONDS < deadline)) || break
    sleep 0.1
  done
  log "still running after ${STOP_TIMEOUT_S}s, sending SIGKILL to:$left"
  # shellcheck disable=SC2086
  kill -KILL $left 2>/dev/null || true
  sleep 0.5
  left=""
  for leader in "$@"; do left+="$(session_pids "$leader" | tr '\n' ' ')"; done
  [[ -z "${left// /}" ]] || die "processes survived SIGKILL: $left"
}

kill_session() { term_sessions "$1"; reap_sessions "$1"; }

# ---------------------------------------------------------------- commands

write_env() {
  local tmp="$DATA_DIR/env.sh.tmp"
  cat >"$tmp" <<EOF
# Written by scripts/services.sh start: source this file to point the apps at these services.
# The local stack's profile: local defaults and endpoints are fine (production refuses them).
export APP__PROFILE='local'
export APP__DATABASE__URL='postgres://postgres@127.0.0.1:$PG_PORT/chargeflow'
export APP__REDIS__URL='redis://127.0.0.1:$REDIS_PORT'
export APP__SQS__ENDPOINT_URL='http://127.0.0.1:$LOCALSTACK_PORT'
export APP__SQS__REGION='us-east-1'
export APP__SQS__QUEUE_PREFIX='$SQS_QUEUE_PREFIX'
export AWS_ACCESS_KEY_ID='test'
export AWS_SECRET_ACCESS_KEY='test'
export APP__SMTP__HOST='127.0.0.1'
export APP__SMTP__PORT='$SMTP_PORT'
export CHARGEFLOW_MAILDIR='$MAILDIR'
export CHARGEFLOW_MAIL_VIEWER_URL='$MAIL_VIEWER_URL'
export APP__STRIPE__API_BASE='$STRIPE_URL'
export APP__STRIPE__SECRET_KEY='sk_test_local'
export APP__STRIPE__WEBHOOK_SECRET='whsec_local'
export CHARGEFLOW_VENV='$VENV'
export PG_BIN='$(pg_bin_dir)'
EOF
  if cmp -s "$tmp" "$DATA_DIR/env.sh"; then rm -f "$tmp"; else mv "$tmp" "$DATA_DIR/env.sh"; fi
}

# Refuse before starting anything if a port we need is taken by someone else.
check_ports() {
  [[ -n "$(pg_pid)" ]] || ensure_port_free "$PG_PORT" PG_PORT
  [[ -n "$(redis_pid)" ]] || ensure_port_free "$REDIS_PORT" REDIS_PORT
  [[ -n "$(localstack_pid)" ]] || ensure_port_free "$LOCALSTACK_PORT" LOCALSTACK_PORT
  [[ -n "$(smtp_pid)" ]] || ensure_port_free "$SMTP_PORT" SMTP_PORT
  [[ -n "$(stripe_pid)" ]] || ensure_port_free "$STRIPE_PORT" STRIPE_PORT
  [[ -n "$(mailview_pid)" ]] || ensure_port_free "$MAIL_VIEWER_PORT" MAIL_VIEWER_PORT
}

cmd_start() {
  cmd_install
  check_ports
  mkdir -p "$PID_DIR" "$LOG_DIR"
  start_postgres
  start_redis
  start_smtp
  start_mailview
  start_stripe
  start_localstack
  write_env
  cmd_status || die "not every service is up"
  log "ready; environment for the apps: . $DATA_DIR/env.sh"
}

# LocalStack, Redis, the SMTP sink, the mail viewer and the fake Stripe get SIGTERM together,
# then postgres is stopped while they exit.
cmd_stop() {
  local ls_pid redis_pid_ smtp_pid_ mailview_pid_ stripe_pid_ pg_leader leaders=()
  ls_pid="$(localstack_pid)"; redis_pid_="$(redis_pid)"; smtp_pid_="$(smtp_pid)"
  mailview_pid_="$(mailview_pid)"; stripe_pid_="$(stripe_pid)"; pg_leader="$(pg_pid)"
  [[ -n "$ls_pid" ]] && { log "localstack: stopping (pid $ls_pid)"; leaders+=("$ls_pid"); }
  [[ -n "$redis_pid_" ]] && { log "redis: stopping (pid $redis_pid_)"; leaders+=("$redis_pid_"); }
  [[ -n "$smtp_pid_" ]] && { log "smtp: stopping (pid $smtp_pid_)"; leaders+=("$smtp_pid_"); }
  [[ -n "$mailview_pid_" ]] && { log "mail viewer: stopping (pid $mailview_pid_)"; leaders+=("$mailview_pid_"); }
  [[ -n "$stripe_pid_" ]] && { log "stripe: stopping (pid $stripe_pid_)"; leaders+=("$stripe_pid_"); }
  term_sessions "${leaders[@]}"
  stop_postgres
  [[ -n "$pg_leader" ]] && leaders+=("$pg_leader")
  reap_sessions "${leaders[@]}"
  rm -f "$PID_DIR/localstack.pid" "$PID_DIR/redis.pid" "$PID_DIR/smtp.pid" "$PID_DIR/stripe.pid" \
    "$PID_DIR/mailview.pid" "$PID_DIR/postgres.pid"
  [[ -z "$(pg_pid)$(redis_pid)$(smtp_pid)$(mailview_pid)$(stripe_pid)$(localstack_pid)" ]] \
    || die "a service is still alive"
  log "stopped (data dir $DATA_DIR)"
}

status_line() {
  local name=$1 pid=$2 addr=$3 probe=$4 state=down
  if [[ -n "$pid" ]] && $probe >/dev/null 2>&1; then state=up; fi
  printf '%-11s %-5s pid=%-8s %s\n' "$name" "$state" "${pid:--}" "$addr"
  [[ $state == up ]]
}

cmd_status() {
  local rc=0
  status_line postgres "$(pg_pid)" "127.0.0.1:$PG_PORT" pg_ready || rc=3
  status_line redis "$(redis_pid)" "127.0.0.1:$REDIS_PORT" redis_ready || rc=3
  status_line localstack "$(localstack_pid)" "$LOCALSTACK_URL" localstack_ready || rc=3
  status_line smtp "$(smtp_pid)" "127.0.0.1:$SMTP_PORT" smtp_ready || rc=3
  status_line mailview "$(mailview_pid)" "$MAIL_VIEWER_URL" mailview_ready || rc=3
  status_line stripe "$(stripe_pid)" "$STRIPE_URL" stripe_ready || rc=3
  return $rc
}

# One start/stop at a time per data dir (fd 8; fd 9 is the install lock). The daemons are
# started with 8>&- so that they do not inherit, and keep holding, the lock.
lock_data_dir() {
  mkdir -p "$DATA_DIR"
  exec 8>"$DATA_DIR/.services.lock"
  flock 8
}

case "${1:-}" in
  install) cmd_install ;;
  start) lock_data_dir; cmd_start ;;
  stop) lock_data_dir; cmd_stop ;;
  status) cmd_status ;;
  restart-postgres) lock_data_dir; restart_postgres ;;
  *) echo "usage: $0 install|start|stop|status|restart-postgres" >&2; exit 2 ;;
esac
