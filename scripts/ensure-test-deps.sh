#!/usr/bin/env bash
# What `make test` needs beyond Python and PyPI, from Debian's packages: PostgreSQL 15 and Redis for the
# cluster suite, Chromium (with fonts to render pages) for the browser test, Node.js and npm for the test
# of Airplane's Node SDK against the emulator (its npm packages then come from the npm registry).
# Installs only what is missing, as root (`apt-get update` only then); as any other user, stops at once
# naming the command.
#
#   scripts/ensure-test-deps.sh [--check] [cluster] [browser] [node]
#
# Parts default to all three. --check installs nothing: it fails naming what is missing (the test session's
# collection hook runs it so, for the parts its collected tests need).
set -euo pipefail

check=false
parts=()
for arg in "$@"; do
  case $arg in
    --check) check=true ;;
    cluster | browser | node) parts+=("$arg") ;;
    *) echo "usage: $0 [--check] [cluster] [browser] [node]" >&2; exit 2 ;;
  esac
done
[ ${#parts[@]} -gt 0 ] || parts=(cluster browser node)

# tests/integration/cluster_stack.py runs /usr/lib/postgresql/15/bin; tests/browser/conftest.py runs
# $CHROMIUM (default /usr/bin/chromium).
missing=()
for part in "${parts[@]}"; do
  case $part in
    cluster)
      [ -x /usr/lib/postgresql/15/bin/initdb ] || missing+=(postgresql-15)
      command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
      ;;
    browser)
      [ -x "${CHROMIUM:-/usr/bin/chromium}" ] || missing+=(chromium)
      [ -d /usr/share/fonts/truetype/liberation ] || missing+=(fonts-liberation)
      ;;
    node)
      command -v node >/dev/null 2>&1 || missing+=(nodejs)
      command -v npm >/dev/null 2>&1 || missing+=(npm)
      ;;
  esac
done
[ ${#missing[@]} -gt 0 ] || exit 0

what="Missing Debian packages (for the tests marked $(IFS=/; echo "${parts[*]}")): ${missing[*]}"
if $check; then
  echo "$what. Run: make test-deps (as root; otherwise sudo make test-deps)" >&2
  exit 1
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "$what. Run: sudo make test-deps" >&2
  exit 1
fi
echo "Installing ${missing[*]} (for the ${parts[*]} tests) from Debian's packages"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
