#!/usr/bin/env bash
# The browser test drives Debian's Chromium (Playwright cannot download a browser here): install it
# when /usr/bin/chromium is missing. Needs root (CI runs as root) or sudo.
set -euo pipefail
if [ -x /usr/bin/chromium ]; then
  /usr/bin/chromium --version 2>/dev/null || true
  exit 0
fi
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
echo "Installing Debian's chromium for the browser test ..."
$sudo apt-get update -q >/dev/null
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q chromium >/dev/null
/usr/bin/chromium --version
