#!/usr/bin/env bash
# The whole test suite on a fresh machine: installs what it needs, starts a real Kafka broker
# and a real Schema Registry on loopback for the integration tests, checks formatting and
# lints, runs every test, and stops the registry and the broker again.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

scripts/install-deps.sh
# A build folder outside the clone, so repeated runs (and CI on this machine) reuse it.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/rallypoint/target}"

# A broker of its own, in a temporary folder, removed on exit.
broker_dir="$(mktemp -d)"
export KAFKA_LOCAL_DIR="$broker_dir/kafka"
export REGISTRY_LOCAL_DIR="$broker_dir/schema-registry"
cleanup() {
  scripts/schema-registry.sh stop --clean >/dev/null 2>&1 || true
  scripts/kafka-local.sh stop --clean >/dev/null 2>&1 || true
  rm -rf "$broker_dir"
}
trap cleanup EXIT
RALLYPOINT_TEST_BOOTSTRAP="$(scripts/kafka-local.sh start | tail -n1)"
export RALLYPOINT_TEST_BOOTSTRAP
echo "test broker at $RALLYPOINT_TEST_BOOTSTRAP"
# A Confluent-compatible Schema Registry of its own (Apicurio Registry, stored on that broker).
RALLYPOINT_TEST_SCHEMA_REGISTRY="$(REGISTRY_BOOTSTRAP="$RALLYPOINT_TEST_BOOTSTRAP" scripts/schema-registry.sh start | tail -n1)"
export RALLYPOINT_TEST_SCHEMA_REGISTRY
echo "test schema registry at $RALLYPOINT_TEST_SCHEMA_REGISTRY"

# Deployment artifacts (compose, Helm, dashboard, Dockerfile), each checked by a real tool.
scripts/check-deploy.sh
# The README and docs/ against the code: links, named paths, runbook sections, metrics, reasons,
# and docs/performance.md's figures against benches/results/report.json.
python3 scripts/check-docs.py
cargo fmt --all -- --check
cargo clippy --release --workspace --all-targets -- -D warnings
# Fingerprints and bytes agree with fastavro, an independent Avro implementation.
scripts/check-avro-interop.sh
# Hunt patterns, indicator ids and warninglists agree with stix2-patterns, pycti and
# PyMISPWarningLists.
scripts/check-hunt-interop.sh
cargo test --release --workspace
# Crash soak: 100,000 events, SIGKILLed at random moments and at every kill point between the
# steps of a transaction (built with the fault-injection feature), exactly once at the end.
# COUNT, KILLS and SEED override its defaults.
scripts/crash-soak.sh
