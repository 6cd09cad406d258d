#!/usr/bin/env bash
# A throwaway PostgreSQL 15 server for the tests (a ctest fixture: `start` sets it up before the tests that need
# it, `stop` removes it after them). The data directory and the Unix socket live in a new temp dir; the server
# listens on no TCP port and trusts local connections (nothing else can reach the socket's private dir).
# PostgreSQL refuses to run as root: as root the server runs as Debian's `postgres` user (or `nobody`).
# Usage: tests/scripts/postgres.sh start|restart|stop STATE_DIR
#   start writes STATE_DIR/url (a postgres:// URL for the superuser `meridian`, database `postgres`) and
#   STATE_DIR/root (the temp dir); restart stops the server (ending every session) and starts it again on the
#   same data; stop stops the server and removes the temp dir.
set -euo pipefail
action=${1:-}
state=${2:-}
if [ -z "$state" ] || { [ "$action" != start ] && [ "$action" != stop ] && [ "$action" != restart ]; }; then
  echo "usage: $0 start|restart|stop STATE_DIR" >&2
  exit 2
fi
bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
if [ -z "$bin" ] || [ ! -x "$bin/postgres" ]; then
  echo "postgres.sh: no PostgreSQL server in /usr/lib/postgresql (scripts/install-deps installs postgresql-15)" >&2
  exit 1
fi

as_server() {
  if [ "$(id -u)" = 0 ]; then
    local user=postgres
    id postgres >/dev/null 2>&1 || user=nobody
    setpriv --reuid="$user" --regid="$(id -g "$user")" --clear-groups -- "$@"
  else
    "$@"
  fi
}

stop() {
  [ -f "$state/root" ] || return 0
  local root
  root=$(cat "$state/root")
  if [ -f "$root/data/postmaster.pid" ]; then
    as_server "$bin/pg_ctl" -D "$root/data" -m immediate -w stop >/dev/null 2>&1 || true
  fi
  rm -rf "$root"
  rm -f "$state/root" "$state/url"
}

if [ "$action" = stop ]; then
  stop
  exit 0
fi
if [ "$action" = restart ]; then
  root=$(cat "$state/root")
  cd "$root"
  as_server "$bin/pg_ctl" -D "$root/data" -l "$root/server.log" -m fast -w -t 60 restart >/dev/null
  exit 0
fi

stop  # one left behind by an interrupted run
mkdir -p "$state"
root=$(mktemp -d /tmp/meridian-pg.XXXXXX)
echo "$root" > "$state/root"
if [ "$(id -u)" = 0 ]; then
  user=postgres
  id postgres >/dev/null 2>&1 || user=nobody
  chown "$user:$(id -g "$user")" "$root"
fi
chmod 700 "$root"
cd "$root"
as_server "$bin/initdb" -D "$root/data" -U meridian --auth=trust --encoding=UTF8 --locale=C.UTF-8 \
  --no-sync >"$root/initdb.log" 2>&1 || { cat "$root/initdb.log" >&2; exit 1; }
# fsync off: a test server's data is thrown away (MERIDIAN_PG_DURABLE=1 keeps PostgreSQL's defaults, for the
# benchmarks' durable runs); 200 connections for replicas, agents and clients at once
durability="-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
[ "${MERIDIAN_PG_DURABLE:-0}" = 1 ] && durability=""
as_server "$bin/pg_ctl" -D "$root/data" -l "$root/server.log" -w -t 60 \
  -o "-c listen_addresses='' -k $root -p 5432 $durability -c max_connections=200" \
  start >/dev/null || { cat "$root/server.log" >&2; exit 1; }
echo "postgres://meridian@/postgres?host=$root&port=5432" > "$state/url"
echo "postgres.sh: server up at $(cat "$state/url")"
