#!/usr/bin/env bash
# tests/test_report_browser.py renders report.html in headless Chromium. Install Debian's
# package where this runs as root with apt (CI machines); elsewhere say the tests will skip.
set -uo pipefail
if [ -n "${KR_CHROMIUM:-}" ] || command -v chromium >/dev/null 2>&1; then
  exit 0
fi
install() { DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends chromium >/dev/null 2>&1; }
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "Installing Debian's chromium for the report-page browser tests..."
  if install || { apt-get update -q >/dev/null 2>&1 && install; }; then
    exit 0
  fi
  echo "WARNING: chromium could not be installed; the browser tests will be skipped." >&2
else
  echo "NOTE: no chromium (apt-get install chromium, or set KR_CHROMIUM): the browser tests will be skipped." >&2
fi
exit 0
