#!/usr/bin/env bash
# frontend.sh — the shop's front end (apps/frontend, React + Vite).
#
#   scripts/frontend.sh build   npm ci (when the lock file changed) + vite build → apps/frontend/dist
#   scripts/frontend.sh test    npm ci (when needed) + the Vitest component tests
#   scripts/frontend.sh e2e     the browser tests in headless Chromium against SHOP_URL
#                               (installs Debian's chromium when it is missing)
set -euo pipefail
cd "$(dirname "$0")/../apps/frontend"

log() { printf 'frontend: %s\n' "$*"; }
as_root() { if [[ $EUID -eq 0 ]]; then "$@"; else sudo "$@"; fi; }

command -v npm >/dev/null 2>&1 || { echo "frontend: npm is missing (Node 20 is required)" >&2; exit 1; }

# npm ci wipes node_modules; run it only when the lock file differs from the one installed.
install() {
  local stamp=node_modules/.chargeflow-lock.sha256 want
  want="$(sha256sum package-lock.json | cut -c1-64)"
  if [[ -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then return 0; fi
  log "npm ci"
  npm ci --no-audit --no-fund --loglevel=error
  echo "$want" >"$stamp"
}

ensure_chromium() {
  command -v chromium >/dev/null 2>&1 && return 0
  log "installing Debian's chromium for the browser tests"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >/dev/null
}

case "${1:-}" in
  build) install; npm run build --silent ;;
  test) install; npm test --silent ;;
  e2e) install; ensure_chromium; npm run e2e --silent ;;
  *) echo "usage: $0 build|test|e2e" >&2; exit 2 ;;
esac
