#!/usr/bin/env bash
# Runs every test, PostgreSQL's and the browser's included. Installs Debian's Chromium and
# chromedriver when missing (as root); unless MESSENGER_CHANNEL_TEST_POSTGRES already names a
# database, starts a throwaway PostgreSQL on 127.0.0.1 (installing Debian's package the first
# time, which needs root); runs the suite; stops PostgreSQL.
set -euo pipefail
cd "$(dirname "$0")/.."
# The desk's browser test drives Debian's Chromium through chromedriver.
if [ ! -x /usr/bin/chromedriver ] && command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
  echo "installing chromium and chromium-driver" >&2
  apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >&2
fi
if [ -z "${MESSENGER_CHANNEL_TEST_POSTGRES:-}" ]; then
  MC_PG_STATE="$(mktemp -d /tmp/mc-pg-state.XXXXXX)/state"
  export MC_PG_STATE
  MESSENGER_CHANNEL_TEST_POSTGRES="$(bash scripts/postgres.sh)"
  export MESSENGER_CHANNEL_TEST_POSTGRES
  trap 'bash scripts/postgres.sh stop' EXIT
fi
# The desk's browser test runs the desk example's binary: build it first, so that
# target/debug/examples/desk is this tree's (`cargo test` builds examples under hashed names only).
cargo build --all-features --example desk
cargo test --all-features "$@"
