#!/usr/bin/env python3
"""Checks the README and docs/ against the code, so that what they promise stays true.

- Every relative link in README.md and docs/*.md names a file that exists, and a heading of
  that file when it has an anchor (GitHub's heading slugs).
- Every path of the repository the pages name in backticks (`src/...`, `crates/...`,
  `tests/...`, `scripts/...`, `deploy/...`, `helm/...`, `schemas/...`, `config/...`) exists.
- Every alert rule in deploy/prometheus/alerts.yml has a `runbook_url` naming its own section
  of docs/alerts.md, and every alert that section names is a rule.
- The metrics table of docs/operations.md lists every metric the code registers
  (`"rallypoint_..."` names in src/ and crates/), and nothing else.
- The dead-letter reasons table of docs/contracts.md lists every reason of
  `crates/core/src/reject.rs`, and nothing else.

Usage: scripts/check-docs.py
Exit status: 0 when every check passes, 1 otherwise (every problem is listed).
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
PATH_PREFIXES = ("src/", "crates/", "tests/", "scripts/", "deploy/", "helm/", "schemas/", "config/", "docs/", "benches/")


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[`*_]", "", heading.strip().lower())
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(page: Path) -> set[str]:
    found: set[str] = set()
    in_code = False
    for line in page.read_text(encoding="utf-8").splitlines():
        if line.startswith("```"):
            in_code = not in_code
        m = re.match(r"#{1,6} (.*)", line)
        if m and not in_code:
            found.add(slug(m.group(1)))
    return found


def section(page: Path, heading: str) -> list[str]:
    """The lines of a page's `## heading` section, up to the next heading of that level."""
    lines = page.read_text(encoding="utf-8").splitlines()
    out: list[str] = []
    inside = False
    for line in lines:
        if line.startswith("## "):
            inside = line[3:].strip() == heading
            continue
        if inside:
            out.append(line)
    return out


def check_links(problems: list[str]) -> None:
    for page in PAGES:
        text = page.read_text(encoding="utf-8")
        text_no_code = re.sub(r"```.*?```", "", text, flags=re.S)
        for target in re.findall(r"\]\(([^)\s]+)\)", text_no_code):
            if re.match(r"[a-z]+://", target) or target.startswith("mailto:"):
                continue
            path, _, anchor = target.partition("#")
            dest = (page.parent / path).resolve() if path else page
            rel = page.relative_to(ROOT)
            if not dest.exists():
                problems.append(f"{rel}: link to {target}: no such file")
            elif anchor and dest.suffix == ".md" and anchor not in anchors(dest):
                problems.append(f"{rel}: link to {target}: no such heading")
        for quoted in re.findall(r"`([^`\s]+)`", text):
            path = quoted.split(":")[0].rstrip(".,")
            if not path.startswith(PATH_PREFIXES) or any(c in path for c in "*<>{}$"):
                continue
            if not (ROOT / path).exists():
                problems.append(f"{page.relative_to(ROOT)}: names `{quoted}`, which does not exist")


def check_runbook(problems: list[str]) -> None:
    rules = (ROOT / "deploy/prometheus/alerts.yml").read_text(encoding="utf-8")
    runbook = ROOT / "docs/alerts.md"
    have = anchors(runbook)
    alerts = re.findall(r"- alert: (\w+)", rules)
    for block in re.split(r"\n\s*- alert: ", rules)[1:]:
        name = block.split()[0]
        m = re.search(r'runbook_url: "([^"]+)"', block)
        want = f"docs/alerts.md#{slug(name)}"
        if not m:
            problems.append(f"alerts.yml: {name} has no runbook_url")
        elif m.group(1) != want:
            problems.append(f"alerts.yml: {name}'s runbook_url is {m.group(1)}, not {want}")
        if slug(name) not in have:
            problems.append(f"docs/alerts.md: no section for {name}")
    documented = set(re.findall(r"^#### `(Rallypoint\w+)`", runbook.read_text(encoding="utf-8"), flags=re.M))
    for name in sorted(documented - set(alerts)):
        problems.append(f"docs/alerts.md: a section for {name}, which is no rule")


def check_metrics(problems: list[str]) -> None:
    code: set[str] = set()
    for path in [*(ROOT / "src").rglob("*.rs"), *(ROOT / "crates").rglob("*.rs")]:
        code.update(re.findall(r'"(rallypoint_[a-z0-9_]+)"', path.read_text(encoding="utf-8")))
    table: set[str] = set()
    for line in section(ROOT / "docs/operations.md", "Metrics"):
        if line.startswith("|"):
            first = line.split("|")[1]
            table.update(re.findall(r"`(rallypoint_[a-z0-9_]+)", first))
    for name in sorted(code - table):
        problems.append(f"docs/operations.md: metric {name} is registered but not in the Metrics table")
    for name in sorted(table - code):
        problems.append(f"docs/operations.md: metric {name} is in the Metrics table but not registered")


def check_reasons(problems: list[str]) -> None:
    code = set(re.findall(r'RejectReason::\w+ => "(\w+)"', (ROOT / "crates/core/src/reject.rs").read_text(encoding="utf-8")))
    doc: set[str] = set()
    for line in (ROOT / "docs/contracts.md").read_text(encoding="utf-8").splitlines():
        m = re.match(r"\| `([a-z_]+)` \|", line)
        if m:
            doc.add(m.group(1))
    for reason in sorted(code - doc):
        problems.append(f"docs/contracts.md: dead-letter reason {reason} is not in the reasons table")
    if not code:
        problems.append("crates/core/src/reject.rs: no reasons found")


def check_performance(problems: list[str]) -> None:
    """docs/performance.md's figures are what scripts/performance-doc.py writes from the report."""
    run = subprocess.run(
        [sys.executable, str(ROOT / "scripts/performance-doc.py"), "--check"],
        capture_output=True,
        text=True,
    )
    if run.returncode != 0:
        problems.append((run.stderr or run.stdout).strip())


def main() -> int:
    problems: list[str] = []
    for check in (check_links, check_runbook, check_metrics, check_reasons, check_performance):
        check(problems)
    for p in problems:
        print(f"check-docs: {p}", file=sys.stderr)
    if problems:
        return 1
    print(f"check-docs: {len(PAGES)} pages agree with the code")
    return 0


if __name__ == "__main__":
    sys.exit(main())
