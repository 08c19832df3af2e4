#!/usr/bin/env bash
# tests/test_report_browser.py renders report.html in headless Chromium. Install Debian's
# package where this runs as root with apt (CI machines). Where it should be provided (root
# with apt, or CI=true) and cannot be, fail: under CI a missing Chromium must not pass as skipped
# tests. Elsewhere say the tests will skip.
set -uo pipefail
if [ -n "${KR_CHROMIUM:-}" ] || command -v chromium >/dev/null 2>&1; then
  exit 0
fi
ci=false
case "${CI:-}" in [Tt][Rr][Uu][Ee] | 1 | [Yy][Ee][Ss]) ci=true ;; esac
install() { DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends chromium >/dev/null 2>&1; }
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "Installing Debian's chromium for the report-page browser tests..."
  if { install || { apt-get update -q >/dev/null 2>&1 && install; }; } && command -v chromium >/dev/null 2>&1; then
    exit 0
  fi
  echo "ERROR: chromium could not be installed with apt-get (try: apt-get update && apt-get install chromium);" \
       "the report-page browser tests need it." >&2
  exit 1
fi
if [ "$ci" = true ]; then
  echo "ERROR: CI=true but no chromium, and it cannot be installed here (needs root and apt-get):" \
       "install it or set KR_CHROMIUM to a Chromium binary." >&2
  exit 1
fi
echo "NOTE: no chromium (apt-get install chromium, or set KR_CHROMIUM): the browser tests will be skipped." >&2
exit 0
