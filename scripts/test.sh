#!/usr/bin/env bash
# Runs every test, PostgreSQL's included. Unless MESSENGER_CHANNEL_TEST_POSTGRES already names a
# database, starts a throwaway PostgreSQL on 127.0.0.1 (installing Debian's package the first
# time, which needs root), runs the suite, and stops it.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -z "${MESSENGER_CHANNEL_TEST_POSTGRES:-}" ]; then
  MC_PG_STATE="$(mktemp -d /tmp/mc-pg-state.XXXXXX)/state"
  export MC_PG_STATE
  MESSENGER_CHANNEL_TEST_POSTGRES="$(bash scripts/postgres.sh)"
  export MESSENGER_CHANNEL_TEST_POSTGRES
  trap 'bash scripts/postgres.sh stop' EXIT
fi
cargo test --all-features "$@"
