#!/usr/bin/env python3
"""Checks the PromQL of a Grafana dashboard with promtool.

promtool has no "check this expression" command, so every panel expression (and the metric
selector inside each `label_values(...)` variable query) becomes one recording rule in a
temporary rules file, and `promtool check rules` parses that file. Grafana variables are replaced
first: `$__rate_interval`, `$__interval`, `$__range` and interval variables by a duration, every
other `$var`, `${var}`, `${var:format}` or `[[var]]` by a plain word (they stand inside label
matcher strings).

It also checks that every metric the expressions name is in docs/operations.md's Metrics table (or is
`up`), that panel ids are unique, and that every query uses the dashboard's Prometheus
datasource (`${DS_PROMETHEUS}` or the provisioned uid `prometheus`).

Usage: scripts/check-dashboard.py [DASHBOARD.json ...]
       (default: deploy/grafana/dashboards/rallypoint.json)
Exit status: 0 when every check passes, 1 otherwise.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DASHBOARD = ROOT / "deploy/grafana/dashboards/rallypoint.json"
METRICS_DOC = ROOT / "docs/operations.md"
ALLOWED_DATASOURCES = {"${DS_PROMETHEUS}", "$DS_PROMETHEUS", "prometheus"}
# Grafana's built-in interval variables, all valid where PromQL wants a duration.
DURATION_VARS = {"__rate_interval", "__interval", "__range", "__range_s", "__interval_ms"}
# Words of PromQL that are not metric names.
KEYWORDS = {
    "by", "without", "on", "ignoring", "group_left", "group_right", "bool", "offset",
    "and", "or", "unless", "inf", "nan", "atan2", "start", "end",
    # aggregation operators, which may stand before their `by (...)` clause
    "sum", "min", "max", "avg", "group", "stddev", "stdvar", "count", "count_values",
    "bottomk", "topk", "quantile", "limitk", "limit_ratio",
}
HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")


def allowed_metrics(readme: Path) -> set[str]:
    """Metric names of docs/operations.md's '## Metrics' table, with histogram series, plus `up`."""
    names: set[str] = {"up"}
    in_section = False
    for line in readme.read_text(encoding="utf-8").splitlines():
        if line.startswith("## "):
            in_section = line.strip() == "## Metrics"
            continue
        m = re.match(r"\|\s*`([a-zA-Z_:][a-zA-Z0-9_:]*)", line)
        if in_section and m:
            names.add(m.group(1))
    if names == {"up"}:
        raise SystemExit(f"check-dashboard: no metric table found in {readme}")
    for name in list(names):
        if not name.endswith("_total") and name != "up":
            names.update(name + s for s in HISTOGRAM_SUFFIXES)
    return names


def substitute(expr: str, interval_vars: set[str]) -> str:
    """Replaces Grafana template variables by values that keep the PromQL parseable."""

    def value(name: str) -> str:
        return "5m" if name in DURATION_VARS or name in interval_vars else "placeholder"

    expr = re.sub(r"\$\{([A-Za-z0-9_]+)(?::[^}]*)?\}", lambda m: value(m.group(1)), expr)
    expr = re.sub(r"\[\[([A-Za-z0-9_]+)(?::[^\]]*)?\]\]", lambda m: value(m.group(1)), expr)
    return re.sub(r"\$([A-Za-z0-9_]+)", lambda m: value(m.group(1)), expr)


def metric_names(expr: str) -> set[str]:
    """The metric names an expression selects (a light lexer: enough for dashboard queries)."""
    s = re.sub(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`', '""', expr)  # strings
    s = re.sub(r"\{[^}]*\}", "{}", s)  # label matchers
    s = re.sub(r"\[[^\]]*\]", "[]", s)  # ranges and subqueries
    s = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", r"\1", s)
    names = set()
    for m in re.finditer(r"(?<![A-Za-z0-9_:.])([A-Za-z_:][A-Za-z0-9_:]*)(\s*\()?", s):
        word, call = m.group(1), m.group(2)
        if call or word.lower() in KEYWORDS:
            continue
        names.add(word)
    return names


def walk_panels(panels: list) -> list:
    out = []
    for p in panels or []:
        out.append(p)
        out.extend(walk_panels(p.get("panels", [])))  # collapsed rows nest their panels
    return out


def ds_uid(ds) -> str | None:
    if isinstance(ds, dict):
        return ds.get("uid")
    return ds  # old dashboards name the datasource as a plain string


def collect(dashboard: dict, problems: list[str]) -> list[tuple[str, str]]:
    """(rule name, expression) for every query of the dashboard."""
    variables = dashboard.get("templating", {}).get("list", [])
    interval_vars = {v["name"] for v in variables if v.get("type") == "interval"}
    queries: list[tuple[str, str]] = []
    seen_ids: set = set()
    for panel in walk_panels(dashboard.get("panels", [])):
        pid = panel.get("id")
        title = panel.get("title", "?")
        if pid in seen_ids:
            problems.append(f"panel {title!r}: id {pid} is used twice")
        seen_ids.add(pid)
        for target in panel.get("targets", []):
            expr = target.get("expr")
            if not expr:
                problems.append(f"panel {title!r}: target {target.get('refId')} has no expr")
                continue
            uid = ds_uid(target.get("datasource", panel.get("datasource")))
            if uid not in ALLOWED_DATASOURCES:
                problems.append(f"panel {title!r}: datasource {uid!r} is not the Prometheus one")
            name = f"dashboard:panel_{pid}_{target.get('refId', 'A')}"
            queries.append((name, substitute(expr, interval_vars)))
    for var in variables:
        if var.get("type") != "query":
            continue
        q = var.get("query")
        q = q.get("query", "") if isinstance(q, dict) else (q or "")
        m = re.fullmatch(r"\s*label_values\((.*),\s*[A-Za-z_][A-Za-z0-9_]*\s*\)\s*", q)
        if m:
            queries.append((f"dashboard:variable_{var['name']}", substitute(m.group(1), interval_vars)))
        elif q.strip():
            problems.append(f"variable {var['name']!r}: cannot check query {q!r}")
    return queries


def find_promtool() -> str:
    tool = shutil.which("promtool")
    if not tool:
        raise SystemExit("check-dashboard: promtool not found (Debian package 'prometheus')")
    return tool


def check(path: Path, allowed: set[str], promtool: str) -> bool:
    try:
        dashboard = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        print(f"check-dashboard: {path}: {e}", file=sys.stderr)
        return False
    problems: list[str] = []
    queries = collect(dashboard, problems)
    if not queries:
        problems.append("no PromQL expression found")
    for name, expr in queries:
        unknown = metric_names(expr) - allowed
        if unknown:
            problems.append(f"{name}: metrics not in docs/operations.md's Metrics table: {', '.join(sorted(unknown))}")

    rules = {"groups": [{"name": "dashboard", "rules": [{"record": n, "expr": e} for n, e in queries]}]}
    with tempfile.TemporaryDirectory(prefix="check-dashboard.") as tmp:
        rules_file = os.path.join(tmp, "dashboard-rules.yml")
        with open(rules_file, "w", encoding="utf-8") as f:
            json.dump(rules, f, indent=2)  # JSON is YAML
        proc = subprocess.run([promtool, "check", "rules", rules_file],
                              capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        problems.append("promtool check rules failed:\n" + (proc.stdout + proc.stderr).strip())

    if problems:
        print(f"check-dashboard: {path}: FAILED", file=sys.stderr)
        for p in problems:
            print(f"  - {p}", file=sys.stderr)
        return False
    print(f"check-dashboard: {path}: {len(queries)} expressions pass promtool check rules")
    return True


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("dashboards", nargs="*", type=Path, default=[DEFAULT_DASHBOARD])
    args = parser.parse_args()
    allowed = allowed_metrics(METRICS_DOC)
    promtool = find_promtool()
    ok = [check(p, allowed, promtool) for p in args.dashboards]
    return 0 if all(ok) else 1


if __name__ == "__main__":
    sys.exit(main())
