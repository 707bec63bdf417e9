#!/usr/bin/env bash
# End-to-end throughput and latency against the real local broker, exactly-once on:
# feeds COUNT simulated events as fast as the producer takes them (or at RATE/s), and reads
# the processor's own metrics: events/s through the coordinator, and end-to-end latency
# quantiles (input record timestamp → decision transaction committed).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
count="${COUNT:-50000}"
rate="${RATE:-0}"
scripts/install-deps.sh
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/rallypoint/target}"
cargo build --release --bin rallypoint
bin="$CARGO_TARGET_DIR/release/rallypoint"
work="$(mktemp -d)"
export KAFKA_LOCAL_DIR="$work/kafka"
cleanup() { [[ -n "${pid:-}" ]] && kill "$pid" 2>/dev/null; scripts/kafka-local.sh stop --clean >/dev/null 2>&1 || true; rm -rf "$work"; }
trap cleanup EXIT
export RALLYPOINT__KAFKA__BOOTSTRAP_SERVERS="$(scripts/kafka-local.sh start | tail -n1)"
export RALLYPOINT__STATE__DIR="$work/state" RALLYPOINT__HTTP__LISTEN="127.0.0.1:${PORT:-19464}" RALLYPOINT__LOG__LEVEL=warn
"$bin" topics create >/dev/null
"$bin" run 2>"$work/run.log" & pid=$!
until curl -fsS "http://$RALLYPOINT__HTTP__LISTEN/readyz" >/dev/null 2>&1; do sleep 0.5; done
"$bin" simulate --rate "$rate" --count "$count" --quiet & sim=$!
python3 scripts/e2e-report.py "http://$RALLYPOINT__HTTP__LISTEN/metrics" "$count"
wait "$sim"
