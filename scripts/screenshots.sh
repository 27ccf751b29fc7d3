#!/usr/bin/env bash
# Takes the README's pictures of the agent desk (docs/desk-*.png): runs the desk's browser
# tests, which save a screenshot at each main view when MESSENGER_CHANNEL_SCREENSHOTS names a
# directory. Needs Debian's chromium and chromium-driver, as scripts/test.sh does.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --all-features --example desk
MESSENGER_CHANNEL_SCREENSHOTS="$PWD/docs" cargo test --all-features --test desk_browser -- \
  agent_desk_in_a_real_browser the_spanish_desk_and_the_queue pick_transfer_and_a_supervisor_in_the_browser
ls -l docs/desk-*.png
