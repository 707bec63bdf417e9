#!/usr/bin/env bash
# Rallypoint's hunt patterns, indicator ids and warninglist matching against independent
# implementations: stix2-patterns must parse every pattern, pycti must compute the same ids,
# PyMISPWarningLists must hold the same values (scripts/check-hunt-interop.py says how).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/rallypoint/target}"
venv="${RALLYPOINT_CACHE:-$HOME/.cache/rallypoint}/venv-hunt"
if ! "$venv/bin/python" -c 'import pycti, stix2patterns, pymispwarninglists' 2>/dev/null; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q pycti==7.261026.0 stix2-patterns==2.1.2 pymispwarninglists==1.7.0
fi
cargo build --release -p rallypoint-core --example hunt_cases
"$venv/bin/python" scripts/check-hunt-interop.py "$CARGO_TARGET_DIR/release/examples/hunt_cases" data/warninglists
