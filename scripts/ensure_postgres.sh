#!/usr/bin/env bash
# The ledger's tests also run against a throwaway PostgreSQL server (tests/postgres_server.py):
# it needs a server's initdb and pg_ctl, on PATH, under /usr/lib/postgresql/*/bin, or in
# $KR_PG_BIN. Install Debian's package where this runs as root with apt (CI machines). Where it
# should be provided (root with apt, or CI=true) and cannot be, fail: under CI a missing
# PostgreSQL must not pass as skipped tests. Elsewhere say the tests will skip.
set -uo pipefail
debian="${KR_PG_DEBIAN_ROOT:-/usr/lib/postgresql}"  # where Debian's versions live (moved by this script's tests)
found() {
  local dir
  for dir in "${KR_PG_BIN:-}" "" "$debian"/*/bin; do
    if [ -z "$dir" ]; then
      command -v initdb >/dev/null 2>&1 && command -v pg_ctl >/dev/null 2>&1 && return 0
    elif [ -x "$dir/initdb" ] && [ -x "$dir/pg_ctl" ]; then
      return 0
    fi
  done
  return 1
}
if found; then
  exit 0
fi
ci=false
case "${CI:-}" in [Tt][Rr][Uu][Ee] | 1 | [Yy][Ee][Ss]) ci=true ;; esac
install() { DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends postgresql >/dev/null 2>&1; }
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "Installing Debian's postgresql for the ledger's PostgreSQL tests..."
  if { install || { apt-get update -q >/dev/null 2>&1 && install; }; } && found; then
    exit 0
  fi
  echo "ERROR: postgresql could not be installed with apt-get (try: apt-get update && apt-get install postgresql);" \
       "the ledger's PostgreSQL tests need its initdb and pg_ctl." >&2
  exit 1
fi
if [ "$ci" = true ]; then
  echo "ERROR: CI=true but no PostgreSQL server (initdb, pg_ctl), and it cannot be installed here (needs root" \
       "and apt-get): install it or set KR_PG_BIN to the folder holding its initdb and pg_ctl." >&2
  exit 1
fi
echo "NOTE: no PostgreSQL server (apt-get install postgresql, or set KR_PG_BIN to the folder of its initdb and" \
     "pg_ctl): the ledger's PostgreSQL tests will be skipped." >&2
exit 0
