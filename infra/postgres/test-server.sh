#!/usr/bin/env bash
# A throwaway PostgreSQL for the integration tests, from Debian's packages.
#   infra/postgres/test-server.sh start   # installs it if missing, starts it, prints its URL
#   infra/postgres/test-server.sh stop
# Fast and disposable: trust authentication, fsync off, data under /tmp, loopback only.
set -euo pipefail

PORT=${TEST_PG_PORT:-54329}
DIR=${TEST_PG_DIR:-/tmp/concerto-test-postgres}
as_owner() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
bindir() { ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1; }

stop() {
  local bin; bin=$(bindir)
  if [ -n "$bin" ] && [ -f "$DIR/data/postmaster.pid" ]; then
    as_owner "$bin/pg_ctl" -D "$DIR/data" -m fast -w stop >/dev/null || true
  fi
}

start() {
  if [ -z "$(bindir)" ]; then
    if [ "$(id -u)" != 0 ]; then
      echo "PostgreSQL is not installed and installing it needs root (apt-get install postgresql)" >&2
      exit 1
    fi
    apt-get update -qq >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >&2
  fi
  local bin; bin=$(bindir)
  stop
  rm -rf "$DIR" && mkdir -p "$DIR"
  [ "$(id -u)" = 0 ] && chown postgres "$DIR"
  as_owner "$bin/initdb" -D "$DIR/data" -A trust -U concerto >/dev/null
  as_owner "$bin/pg_ctl" -D "$DIR/data" -l "$DIR/server.log" -w \
    -o "-p $PORT -k $DIR -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off" start >/dev/null
  "$bin/createdb" -h 127.0.0.1 -p "$PORT" -U concerto concerto_test
  echo "postgresql+asyncpg://concerto@127.0.0.1:$PORT/concerto_test"
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  *) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac
