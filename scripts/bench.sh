#!/usr/bin/env bash
# Every benchmark from one command: scripts/bench.sh [all|core|e2e]
#
#   core  criterion: the fold (rallypoint-core), the codecs, the RocksDB store; then the
#         campaign correlation over 1,000,000 indicators into RocksDB (about 2 minutes)
#   e2e   end to end against a real local broker (benches/e2e.rs, about 10 minutes): maximum
#         throughput with exactly-once on and off, fixed offered loads with latency quantiles,
#         peak memory and state size, the broker's records, bytes and CPU per input event,
#         the journal drained side by side with a Kafka Streams peer (benches/peer), state
#         growth and warm restart. Writes report.json and
#         report.svg to E2E_OUT (default benches/results), and prints each target met or not;
#         with the default E2E_OUT, writes its figures into docs/performance.md.
#   all   both (the default)
#
# E2E_SECONDS, E2E_LOADS, E2E_BACKLOG, E2E_GROWTH_BASE, E2E_PEER tune the e2e runs (see benches/e2e.rs).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
what="${1:-all}"
case "$what" in all | core | e2e) ;; *)
  echo "usage: scripts/bench.sh [all|core|e2e]" >&2
  exit 2
  ;;
esac
scripts/install-deps.sh
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/rallypoint/target}"
if [[ "$what" != e2e ]]; then
  cargo bench -p rallypoint-core --bench core
  cargo bench --bench codec
  cargo bench --bench store
  cargo bench --bench correlation
fi
if [[ "$what" != core ]]; then
  export E2E_OUT="${E2E_OUT:-$PWD/benches/results}"
  # The Kafka Streams peer the journal drain is compared with (E2E_PEER=0 leaves it out).
  [[ "${E2E_PEER:-1}" == 0 ]] || scripts/peer.sh build
  cargo bench --bench e2e
  # docs/performance.md's latest figures follow the committed report, never a hand.
  if [[ "$E2E_OUT" == "$PWD/benches/results" ]]; then
    python3 scripts/performance-doc.py
  fi
fi
