#!/usr/bin/env bash
# Quick start: builds Rallypoint, starts a local Kafka broker, creates the topics, runs the
# processor, feeds it simulated national events, and shows the decisions as they are taken;
# then what the simulated nations did, the hunt included: the indicators of cross-nation
# campaigns published to every nation's hunt topic and retired, and the sightings the nations'
# simulated SIEMs sent back.
# The broker and the processor keep running afterwards; `scripts/demo.sh stop` ends both.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/rallypoint/target}"
bin="$CARGO_TARGET_DIR/release/rallypoint"
run_dir=.rallypoint/demo
duration="${DEMO_DURATION:-90s}"
rate="${DEMO_RATE:-20}"

if [[ "${1:-}" == stop ]]; then
  [[ -f "$run_dir/processor.pid" ]] && kill "$(cat "$run_dir/processor.pid")" 2>/dev/null || true
  scripts/kafka-local.sh stop
  exit 0
fi

scripts/install-deps.sh
echo "== building (the first build compiles RocksDB and librdkafka: allow 30-40 minutes on 2 cores)"
cargo build --release --bin rallypoint
# A demo left by another version may hold state this one cannot read: start it afresh.
version="$("$bin" --version)"
if [[ -f "$run_dir/version" && "$(cat "$run_dir/version")" != "$version" ]]; then
  echo "== the demo's broker and state were made by $(cat "$run_dir/version"); starting afresh for $version"
  [[ -f "$run_dir/processor.pid" ]] && kill "$(cat "$run_dir/processor.pid")" 2>/dev/null || true
  scripts/kafka-local.sh stop --clean
  rm -rf "$run_dir"
fi
echo "== starting the local Kafka broker"
bootstrap="$(scripts/kafka-local.sh start | tail -n1)"
mkdir -p "$run_dir"
echo "$version" >"$run_dir/version"
export RALLYPOINT__KAFKA__BOOTSTRAP_SERVERS="$bootstrap"
export RALLYPOINT__STATE__DIR="$run_dir/state"
listen="${RALLYPOINT__HTTP__LISTEN:-127.0.0.1:9464}"
export RALLYPOINT__HTTP__LISTEN="$listen"
echo "== creating topics on $bootstrap"
"$bin" topics create
if [[ -f "$run_dir/processor.pid" ]] && kill -0 "$(cat "$run_dir/processor.pid")" 2>/dev/null; then
  echo "== processor already running (pid $(cat "$run_dir/processor.pid"))"
else
  echo "== starting the processor (log: $run_dir/processor.log)"
  nohup "$bin" run >"$run_dir/processor.log" 2>&1 &
  echo $! >"$run_dir/processor.pid"
fi
for _ in $(seq 1 60); do
  curl -fsS "http://$listen/readyz" >/dev/null 2>&1 && break
  sleep 1
done
curl -fsS "http://$listen/readyz" >/dev/null || { tail -n 30 "$run_dir/processor.log"; exit 1; }
echo "== processor ready; metrics at http://$listen/metrics"
echo "== feeding simulated events of $(grep -m1 '^nations' config/defaults.toml | cut -d= -f2) for $duration at $rate events/s"
echo "== decisions for the coordination cell (rrc.out.coalition.decisions), as JSON:"
"$bin" watch --audience coalition --idle 15s &
watch_pid=$!
"$bin" simulate --rate "$rate" --duration "$duration" --quiet >"$run_dir/simulate.out"
wait "$watch_pid" || true
echo
echo "== what the simulated nations sent, and the hunt: indicators on every nation's rrc.out.<NATION>.hunt, sightings from their SIEMs"
cat "$run_dir/simulate.out"
echo
echo "== totals from http://$listen/metrics"
curl -fsS "http://$listen/metrics" | grep -E '^rallypoint_(decisions_total|dead_letters_total|records_in_total|records_out_total\{[^}]*kind="hunt")' || true
cat <<MSG

Rallypoint is still running: metrics at http://$listen/metrics, broker at $bootstrap.
Read a nation's decisions:  kcat -b $bootstrap -C -t rrc.out.EST.decisions -X isolation.level=read_committed -e
Read a nation's hunt:       kcat -b $bootstrap -C -t rrc.out.EST.hunt -X isolation.level=read_committed -e -f '%k\n'
Stop everything:            scripts/demo.sh stop
MSG
