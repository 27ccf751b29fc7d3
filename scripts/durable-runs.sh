#!/usr/bin/env bash
# Runs the durability tests (durable, faults, crash, crash_delivery, acknowledged) N times in
# a row (default 20), each run on a fresh PostgreSQL cluster and fresh SQLite files, and prints
# how many runs passed. Usage: bash scripts/durable-runs.sh [N]
set -uo pipefail
cd "$(dirname "$0")/.."
runs=${1:-20}
tests=(--test durable --test faults --test crash --test crash_delivery --test acknowledged)
cargo test --all-features "${tests[@]}" --no-run >/dev/null 2>&1 || { echo "build failed" >&2; exit 1; }
passed=0
for i in $(seq 1 "$runs"); do
  state=$(mktemp -d /tmp/mc-durable-state.XXXXXX)
  url=$(MC_PG_STATE=$state bash scripts/postgres.sh)
  if MESSENGER_CHANNEL_TEST_POSTGRES=$url cargo test --all-features "${tests[@]}" >"/tmp/durable-run-$i.log" 2>&1; then
    passed=$((passed + 1))
    echo "run $i: passed"
  else
    echo "run $i: FAILED (see /tmp/durable-run-$i.log)"
  fi
  MC_PG_STATE=$state bash scripts/postgres.sh stop
  rm -rf "$state"
done
echo "$passed of $runs runs passed"
[ "$passed" = "$runs" ]
