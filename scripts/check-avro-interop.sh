#!/usr/bin/env bash
# Rallypoint's Avro against an independent implementation: fastavro must compute the same
# single-object fingerprints and decode and re-encode a sample of every schema byte for byte.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/rallypoint/target}"
venv="${RALLYPOINT_CACHE:-$HOME/.cache/rallypoint}/venv-interop"
if ! "$venv/bin/python" -c 'import fastavro' 2>/dev/null; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q fastavro==1.13.1
fi
cargo build --release --bin rallypoint
out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT
"$CARGO_TARGET_DIR/release/rallypoint" schemas --out "$out" --samples >"$out/fingerprints.txt"
"$venv/bin/python" scripts/check-avro-interop.py "$out" <"$out/fingerprints.txt"
