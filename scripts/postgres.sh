#!/usr/bin/env bash
# Installs PostgreSQL from Debian's packages if needed, starts a throwaway cluster on
# 127.0.0.1, and prints the URL of a fresh test database on stdout.
# Usage: export MESSENGER_CHANNEL_TEST_POSTGRES="$(bash scripts/postgres.sh)"
# Stop it with: bash scripts/postgres.sh stop
set -euo pipefail
# Where the running server is remembered, for `stop` (one per caller: set MC_PG_STATE).
state=${MC_PG_STATE:-/tmp/messenger-channel-pg}
if [ "${1:-}" = stop ]; then
  if [ -f "$state/dir" ]; then
    dir=$(cat "$state/dir")
    bin=$(cat "$state/bin")
    su postgres -s /bin/sh -c "$bin/pg_ctl -D $dir -m fast stop" >/dev/null 2>&1 || true
    rm -rf "$dir" "$state"
  fi
  exit 0
fi
if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
  echo "installing postgresql" >&2
  apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >&2
fi
bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
dir=$(mktemp -d /tmp/mc-pg.XXXXXX)
chown postgres:postgres "$dir"
chmod 700 "$dir"
su postgres -s /bin/sh -c "$bin/initdb -D $dir -A trust -U postgres --no-sync" >/dev/null
# A free port on loopback.
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()')
su postgres -s /bin/sh -c "$bin/pg_ctl -D $dir -l $dir/log -w -o \"-c listen_addresses=127.0.0.1 -p $port -k $dir -c fsync=off\" start" >/dev/null
su postgres -s /bin/sh -c "$bin/psql -h 127.0.0.1 -p $port -U postgres -q -c 'CREATE DATABASE mc_test'" >/dev/null
mkdir -p "$state"
echo "$dir" > "$state/dir"
echo "$bin" > "$state/bin"
echo "postgres://postgres@127.0.0.1:$port/mc_test"
