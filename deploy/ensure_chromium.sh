#!/usr/bin/env bash
# The operator page's end-to-end test drives Debian's Chromium with Playwright: install it when it
# is missing (CI runs as root on Debian); elsewhere say how.
set -euo pipefail
if command -v chromium >/dev/null 2>&1; then
  exit 0
fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "installing Debian's chromium for the operator page's browser test"
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -q chromium >/dev/null || { apt-get update -q >/dev/null && apt-get install -y -q chromium >/dev/null; }
  exit 0
fi
echo "Chromium is missing: install Debian's chromium package (sudo apt-get install chromium)" >&2
exit 1
