#!/usr/bin/env bash
# Crash soak: a fixed feed of COUNT events (default 100,000) through the processor, SIGKILLed
# at KILLS random moments (default 10, seeded by SEED) and once at every kill point between
# the steps of a transaction, restarted each time; then the committed decisions must equal the
# pure fold of the journal, with no duplicate and no gap (tests/crash_soak.rs). Prints the
# kills survived and the restart timings. Stops by itself within SOAK_TIMEOUT (default 15m for
# 100,000 events, a minute more per 20,000 more).
#
# Before the soak, tests/watchdog.rs makes a Kafka client call hang and checks that the
# watchdog ends the process and that a restart then loses nothing; and it makes RocksDB writes
# fail: once (the same process restores the batch from the changelog) and for good (the
# process exits non-zero, naming the write).
#
# The kill points need the `fault-injection` cargo feature. It is built here and nowhere else;
# afterwards the plain binary is put back, so the release binary the demo runs has none.
#
# Uses the broker at RALLYPOINT_TEST_BOOTSTRAP when set (scripts/test.sh sets it), else starts
# one of its own in a temporary folder and removes it on exit.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/rallypoint/target}"
export RALLYPOINT_SOAK_COUNT="${COUNT:-100000}"
export RALLYPOINT_SOAK_KILLS="${KILLS:-10}"
export RALLYPOINT_SOAK_SEED="${SEED:-$(date +%s)}"
# 15 minutes for 100,000 events, and a minute more per 20,000 more (an hour for 1,000,000).
timeout_after="${SOAK_TIMEOUT:-$((10 + RALLYPOINT_SOAK_COUNT / 20000))m}"

broker_dir=""
cleanup() {
  if [[ -n "$broker_dir" ]]; then
    KAFKA_LOCAL_DIR="$broker_dir/kafka" scripts/kafka-local.sh stop --clean >/dev/null 2>&1 || true
    rm -rf "$broker_dir"
  fi
  # Put the plain release binary back in place of the one with kill points.
  cargo build --release --quiet --bin rallypoint || true
}
trap cleanup EXIT

if [[ -z "${RALLYPOINT_TEST_BOOTSTRAP:-}" ]]; then
  broker_dir="$(mktemp -d)"
  RALLYPOINT_TEST_BOOTSTRAP="$(KAFKA_LOCAL_DIR="$broker_dir/kafka" scripts/kafka-local.sh start | tail -n1)"
  export RALLYPOINT_TEST_BOOTSTRAP
fi
echo "crash soak: $RALLYPOINT_SOAK_COUNT events, $RALLYPOINT_SOAK_KILLS random kills, seed $RALLYPOINT_SOAK_SEED, broker $RALLYPOINT_TEST_BOOTSTRAP"
cargo build --release --features fault-injection --test crash_soak --test watchdog --quiet
# First the watchdog: a Kafka client call made to hang ends the process with its own status,
# and a restart loses and repeats nothing; then failed state writes (tests/watchdog.rs, about
# a minute).
cargo test --release --features fault-injection --test watchdog
started=$SECONDS
# In a process group of its own, so that a watchdog can end the test and the processors it
# started, should the test's own deadlines fail to.
setsid cargo test --release --features fault-injection --test crash_soak -- --nocapture &
soak=$!
sleep "$timeout_after" &
timer=$!
( wait_for=$timer; while kill -0 "$wait_for" 2>/dev/null; do sleep 1; done
  if kill -0 "$soak" 2>/dev/null; then
    echo "crash soak: no end after $timeout_after, stopping it" >&2
    kill -KILL -- "-$soak" 2>/dev/null || true
  fi ) &
watchdog=$!
rc=0
wait "$soak" || rc=$?
kill "$timer" 2>/dev/null || true
wait "$watchdog" 2>/dev/null || true
if [[ $rc -ne 0 ]]; then
  echo "crash soak FAILED (seed $RALLYPOINT_SOAK_SEED; rerun with SEED=$RALLYPOINT_SOAK_SEED)" >&2
  exit "$rc"
fi
echo "crash soak passed in $((SECONDS - started)) s (seed $RALLYPOINT_SOAK_SEED; rerun with SEED=$RALLYPOINT_SOAK_SEED)"
