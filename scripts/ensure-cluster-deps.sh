#!/usr/bin/env bash
# PostgreSQL 15 and Redis for the production-shaped test stack (make test-cluster), from the Debian packages.
# Installs only what is missing; `apt-get update` only when a package has to be installed. Needs root
# (CI runs as root); elsewhere it says what to install and fails.
set -euo pipefail

missing=()
[ -x /usr/lib/postgresql/15/bin/initdb ] || missing+=(postgresql-15)
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "Missing ${missing[*]}: run 'sudo apt-get install -y ${missing[*]}' (needed by make test-cluster)" >&2
  exit 1
fi
echo "Installing ${missing[*]} for the cluster tests"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
