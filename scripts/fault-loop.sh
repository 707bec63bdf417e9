#!/usr/bin/env bash
# The broker-fault and failover tests, RUNS times in a row (default 20), each run on a fresh
# broker of its own (tests/broker_fault.rs starts and stops one itself; tests/failover.rs gets
# one started here). Prints one line per run and the count of runs that passed; exits non-zero
# if any failed, and keeps the failed runs' output in FAULT_LOOP_LOGS (default a temporary
# folder, printed at the end), with what `kafka-transactions` finds open and a copy of the
# broker's folder.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/rallypoint/target}"
runs="${RUNS:-20}"
logs="${FAULT_LOOP_LOGS:-$(mktemp -d)}"
mkdir -p "$logs"

cargo build --release --quiet --bin rallypoint --test broker_fault --test failover

broker_dir=""
stop_broker() {
  if [[ -n "$broker_dir" ]]; then
    KAFKA_LOCAL_DIR="$broker_dir" scripts/kafka-local.sh stop --clean >/dev/null 2>&1 || true
    rm -rf "$broker_dir"
    broker_dir=""
  fi
}
trap stop_broker EXIT

passed=0
for run in $(seq 1 "$runs"); do
  started=$SECONDS
  broker_dir="$(mktemp -d)"
  bootstrap="$(KAFKA_LOCAL_DIR="$broker_dir" scripts/kafka-local.sh start | tail -n1)"
  log="$logs/run-$run.log"
  if RALLYPOINT_TEST_BOOTSTRAP="$bootstrap" timeout 15m \
      cargo test --release --test broker_fault --test failover -- --nocapture >"$log" 2>&1; then
    passed=$((passed + 1))
    echo "run $run: passed in $((SECONDS - started)) s"
    rm -f "$log"
  else
    # What Kafka's own tool finds open on the failover test's broker, and a copy of its folder
    # (the broker-fault test keeps its own broker's, as its output says).
    for args in "list" "find-hanging --broker-id 1"; do
      echo "kafka-transactions $args:"
      # shellcheck disable=SC2086
      KAFKA_LOCAL_DIR="$broker_dir" scripts/kafka-local.sh transactions $args 2>&1 || true
    done >>"$log"
    cp -a "$broker_dir" "$logs/run-$run-broker" 2>/dev/null || true
    echo "run $run: FAILED after $((SECONDS - started)) s (output in $log, broker folder in $logs/run-$run-broker)"
  fi
  stop_broker
done
echo "broker-fault and failover tests: $passed of $runs runs passed (failed runs' output in $logs)"
[[ $passed -eq $runs ]]
