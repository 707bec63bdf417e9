#!/usr/bin/env bash
# The chaos test (tests/chaos.rs): two processor instances through a 100,000-event feed while
# the broker is stopped and started ten times (clean stops and SIGKILLs) and the active
# coordinator is frozen twice; exactly once and never silent past the watchdog's bound. The
# test starts and stops a broker of its own. It stops by itself after 20 minutes at most.
# Part of the suite (cargo test); this runs it alone.
#
# Usage: [SEED=n] [COUNT=n] [RESTARTS=n] scripts/chaos.sh
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
scripts/install-deps.sh
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/rallypoint/target}"
[[ -n "${SEED:-}" ]] && export RALLYPOINT_CHAOS_SEED="$SEED"
[[ -n "${COUNT:-}" ]] && export RALLYPOINT_CHAOS_COUNT="$COUNT"
[[ -n "${RESTARTS:-}" ]] && export RALLYPOINT_CHAOS_RESTARTS="$RESTARTS"
cargo build --release --quiet --bin rallypoint
exec cargo test --release --test chaos -- --nocapture
