#!/usr/bin/env python3
"""Checks what kubernetes-validate cannot see in `helm template` output.

- Every ServiceMonitor (a CRD, unknown to kubernetes-validate) is validated against
  deploy/schemas/servicemonitor-monitoring.coreos.com-v1.json with jsonschema.
- Every rallypoint.toml in a ConfigMap parses as TOML, and each of its keys exists in
  config/defaults.toml with a value of the same type (Rallypoint exits 2 on an unknown key).
- The dashboard ConfigMap holds exactly deploy/grafana/dashboards/rallypoint.json
  (`.Files.Get` renders an empty string, silently, when the file is missing).

Usage: helm template ... | scripts/check-helm-render.py [--expect-servicemonitor] [-]
Needs PyYAML and jsonschema (both come with kubernetes-validate) and Python 3.11+ (tomllib).
"""

from __future__ import annotations

import argparse
import json
import sys
import tomllib
from pathlib import Path

import jsonschema
import yaml

ROOT = Path(__file__).resolve().parent.parent
SCHEMA = ROOT / "deploy/schemas/servicemonitor-monitoring.coreos.com-v1.json"
DEFAULTS = ROOT / "config/defaults.toml"
DASHBOARD = ROOT / "deploy/grafana/dashboards/rallypoint.json"


def flatten(table: dict, prefix: str = "") -> dict:
    out = {}
    for key, value in table.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(flatten(value, name + "."))
        else:
            out[name] = value
    return out


def check_toml(text: str, where: str, defaults: dict, problems: list[str]) -> None:
    try:
        config = flatten(tomllib.loads(text))
    except tomllib.TOMLDecodeError as e:
        problems.append(f"{where}: rallypoint.toml is not valid TOML: {e}")
        return
    for key, value in config.items():
        if key not in defaults:
            problems.append(f"{where}: {key}: not a Rallypoint setting (config/defaults.toml)")
        elif type(value) is not type(defaults[key]):
            problems.append(f"{where}: {key}: {type(value).__name__} where config/defaults.toml "
                            f"has {type(defaults[key]).__name__}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("file", nargs="?", default="-")
    parser.add_argument("--expect-servicemonitor", action="store_true",
                        help="fail when the output has no ServiceMonitor")
    args = parser.parse_args()

    text = sys.stdin.read() if args.file == "-" else Path(args.file).read_text(encoding="utf-8")
    docs = [d for d in yaml.safe_load_all(text) if d]
    schema = json.loads(SCHEMA.read_text(encoding="utf-8"))
    validator = jsonschema.Draft202012Validator(schema)
    defaults = flatten(tomllib.loads(DEFAULTS.read_text(encoding="utf-8")))
    dashboard = DASHBOARD.read_text(encoding="utf-8")

    problems: list[str] = []
    monitors = tomls = dashboards = 0
    for doc in docs:
        kind = doc.get("kind")
        name = f"{kind}/{doc.get('metadata', {}).get('name')}"
        if kind == "ServiceMonitor":
            monitors += 1
            for err in sorted(validator.iter_errors(doc), key=lambda e: list(e.path)):
                path = ".".join(str(p) for p in err.path) or "(root)"
                problems.append(f"{name}: {path}: {err.message}")
        if kind == "ConfigMap":
            data = doc.get("data") or {}
            if "rallypoint.toml" in data:
                tomls += 1
                check_toml(data["rallypoint.toml"], name, defaults, problems)
            if "rallypoint.json" in data:
                dashboards += 1
                if data["rallypoint.json"].rstrip("\n") != dashboard.rstrip("\n"):
                    problems.append(f"{name}: rallypoint.json differs from {DASHBOARD.relative_to(ROOT)}")
    if args.expect_servicemonitor and monitors == 0:
        problems.append("no ServiceMonitor rendered")
    if tomls == 0:
        problems.append("no ConfigMap with rallypoint.toml rendered")

    if problems:
        for p in problems:
            print(f"check-helm-render: {p}", file=sys.stderr)
        return 1
    print(f"check-helm-render: {monitors} ServiceMonitor(s) match the schema, {tomls} rallypoint.toml "
          f"use only known settings, {dashboards} dashboard ConfigMap(s) match")
    return 0


if __name__ == "__main__":
    sys.exit(main())
