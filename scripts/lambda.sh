#!/usr/bin/env bash
# lambda.sh — package the Lambda functions (the four workers and the outbox relay) for
# deploy/template.yaml, and measure their cold start.
#
#   scripts/lambda.sh install      cargo-lambda + zig from PyPI (deploy/requirements.lock) into a
#                                  venv under CHARGEFLOW_TOOLS_DIR (cached; fast when done)
#   scripts/lambda.sh build        `cargo lambda build --release` of every function: one
#                                  deploy/build/<function>/bootstrap each (e-mail templates next to
#                                  the e-mail worker's), then prints their sizes
#   scripts/lambda.sh cold-start   runs each packaged bootstrap against a local stand-in of the
#                                  Lambda Runtime API and prints its cold start (needs the services:
#                                  scripts/services.sh start, then . .data/dev/env.sh)
#
# Settings (environment, with defaults):
#   LAMBDA_ARCH            x86-64 (or arm64: needs `rustup target add aarch64-unknown-linux-gnu`)
#   CHARGEFLOW_TOOLS_DIR   $HOME/.cache/chargeflow
#   CHARGEFLOW_PYTHON      python3.11 if present, else python3
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TOOLS_DIR="${CHARGEFLOW_TOOLS_DIR:-${HOME:-/tmp}/.cache/chargeflow}"
LOCK_FILE="$REPO_ROOT/deploy/requirements.lock"
BUILD_DIR="$REPO_ROOT/deploy/build"
LAMBDA_ARCH="${LAMBDA_ARCH:-x86-64}"
# The functions of deploy/template.yaml: one binary each.
FUNCTIONS=(invoice-service billing-service shipping-service email-service outbox-relay)

log() { printf 'lambda: %s\n' "$*"; }
die() { printf 'lambda: error: %s\n' "$*" >&2; exit 1; }

python_cmd() {
  if [[ -n "${CHARGEFLOW_PYTHON:-}" ]]; then echo "$CHARGEFLOW_PYTHON"
  elif command -v python3.11 >/dev/null 2>&1; then echo python3.11
  else echo python3; fi
}

venv_dir() {
  local key
  key="$(sha256sum "$LOCK_FILE" | cut -c1-12)"
  echo "$TOOLS_DIR/lambda-venv-$key"
}

install() {
  local venv
  venv="$(venv_dir)"
  if [[ -f "$venv/.chargeflow-installed" ]]; then return 0; fi
  log "installing cargo-lambda and zig into $venv (first time: about a minute)"
  mkdir -p "$TOOLS_DIR"
  rm -rf "$venv"
  "$(python_cmd)" -m venv "$venv"
  "$venv/bin/python" -m pip install --disable-pip-version-check --no-input --quiet \
    --no-deps --require-hashes -r "$LOCK_FILE" >"$TOOLS_DIR/lambda-pip.log" 2>&1 \
    || { tail -n 20 "$TOOLS_DIR/lambda-pip.log" >&2; die "pip install of $LOCK_FILE failed"; }
  "$venv/bin/cargo-lambda" lambda --version >/dev/null || die "cargo-lambda does not run"
  date -u +%FT%TZ >"$venv/.chargeflow-installed"
}

# cargo-lambda finds zig on PATH (the ziglang wheel puts `python-zig` there and cargo-lambda
# runs it through `python -m ziglang`).
with_tools() {
  local venv
  venv="$(venv_dir)"
  PATH="$venv/bin:$PATH" "$@"
}

build() {
  install
  local args=() started
  for f in "${FUNCTIONS[@]}"; do args+=(--bin "$f"); done
  started=$(date +%s)
  log "cargo lambda build --release --$LAMBDA_ARCH (${FUNCTIONS[*]})"
  (cd "$REPO_ROOT" && with_tools cargo lambda build --release "--$LAMBDA_ARCH" --locked \
    --lambda-dir "$BUILD_DIR" "${args[@]}")
  rm -rf "$BUILD_DIR/email-service/templates"
  cp -r "$REPO_ROOT/apps/email-service/templates" "$BUILD_DIR/email-service/templates"
  log "built in $(( $(date +%s) - started )) s"
  sizes
}

# Size of each bootstrap and of the zip Lambda receives (what counts towards its limits).
sizes() {
  local f
  printf '%-18s %12s %12s\n' function bootstrap zipped
  for f in "${FUNCTIONS[@]}"; do
    [[ -f "$BUILD_DIR/$f/bootstrap" ]] || die "$BUILD_DIR/$f/bootstrap is missing: run build"
    "$(python_cmd)" - "$BUILD_DIR/$f" "$f" <<'PY'
import io, os, sys, zipfile
folder, name = sys.argv[1], sys.argv[2]
buf = io.BytesIO()
with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
    for root, _, files in os.walk(folder):
        for file in files:
            path = os.path.join(root, file)
            z.write(path, os.path.relpath(path, folder))
size = os.path.getsize(os.path.join(folder, "bootstrap"))
print(f"{name:<18} {size / 2**20:10.1f} MiB {len(buf.getvalue()) / 2**20:8.1f} MiB")
PY
  done
}

cold_start() {
  [[ -n "${APP__DATABASE__URL:-}" ]] || die "source the services' env.sh first (scripts/services.sh start)"
  (cd "$REPO_ROOT" && cargo run --quiet --release -p bench -- cold-start --bootstraps "$BUILD_DIR" \
    "${FUNCTIONS[@]}")
}

case "${1:-}" in
  install) install ;;
  build) build ;;
  sizes) sizes ;;
  cold-start) cold_start ;;
  *) sed -n '2,18p' "$0" >&2; exit 2 ;;
esac
