"""Checks Rallypoint's hunt functions against independent implementations.

Usage: check-hunt-interop.py HUNT_CASES WARNINGLISTS_DIR, where HUNT_CASES is the built
`hunt_cases` example of rallypoint-core.

The cases are chosen here, not by Rallypoint: values of every kind (quotes, backslashes and
non-ASCII characters in URLs among them), and for every shipped warninglist entries of it,
addresses inside and just outside its networks, and hosts under, beside and equal to its
hostnames. Rallypoint normalizes each value and, for each:
- its STIX pattern must validate with stix2-patterns (STIX 2.1) and compare the value it was
  made of, unescaped, on the object path of its kind;
- its indicator id must be the one pycti computes from the pattern;
- for every list that applies to its kind, whether the list holds the normalized value must be
  what PyMISPWarningLists' precise search says.
"""
import ipaddress
import json
import pathlib
import random
import subprocess
import sys

from pycti import Indicator
from pymispwarninglists.api import WarningList
from stix2patterns.v21.pattern import Pattern
from stix2patterns.validator import run_validator

cases_bin, lists_dir = sys.argv[1], pathlib.Path(sys.argv[2])
rng = random.Random(7)

OBJECT_PATH = {
    "ipv4": ("ipv4-addr", ["value"]),
    "ipv6": ("ipv6-addr", ["value"]),
    "domain": ("domain-name", ["value"]),
    "url": ("url", ["value"]),
    "email": ("email-addr", ["value"]),
    "md5": ("file", ["hashes", "MD5"]),
    "sha1": ("file", ["hashes", "SHA-1"]),
    "sha256": ("file", ["hashes", "SHA-256"]),
}

cases = [
    ("ipv4", "203.0.113.7"),
    ("ipv6", "2001:DB8::1"),
    ("domain", "C2.Example.NET."),
    ("url", "HTTPS://Evil.Example:443/a'b\\c?q=\"x\"#frag"),
    ("url", "http://evil.example/caf\u00e9/\u65e5\u672c"),
    ("url", "http://evil.example/tab\tand\x01control"),
    ("email", "Ops@Example.COM"),
    ("md5", "D41D8CD98F00B204E9800998ECF8427E"),
    ("sha1", "da39a3ee5e6b4b0d3255bfef95601890afd80709"),
    ("sha256", "ab" * 32),
    ("cve", "CVE-2024-3400"),
]


def kind_of(value):
    try:
        return "ipv4" if ipaddress.ip_address(value).version == 4 else "ipv6"
    except ValueError:
        pass
    if all(c in "0123456789abcdefABCDEF" for c in value):
        return {32: "md5", 40: "sha1", 64: "sha256"}.get(len(value))
    if "://" in value:
        return "url"
    if "@" in value:
        return "email"
    return "domain"


def add(value):
    kind = kind_of(value)
    if kind and "\t" not in value and "\n" not in value:
        cases.append((kind, value))


lists = {}
for folder in ("block", "inform"):
    for path in sorted((lists_dir / folder).glob("*.json")):
        data = json.loads(path.read_text())
        lists[path.stem] = WarningList(data, slow_search=True)
        entries = data["list"]
        sample = entries if len(entries) <= 150 else rng.sample(entries, 150)
        for entry in sample:
            if data["type"] == "cidr":
                try:
                    net = ipaddress.ip_network(entry)
                except ValueError:
                    add(entry)
                    continue
                add(str(net.network_address))
                add(str(net.network_address + rng.randrange(net.num_addresses)))
                add(str(net.broadcast_address))
                beyond = int(net.broadcast_address) + 1
                if beyond < 2 ** net.max_prefixlen:
                    add(str(ipaddress.ip_address(beyond) if net.version == 4 else ipaddress.IPv6Address(beyond)))
            elif data["type"] == "hostname":
                host = entry.lstrip(".").lower()
                for value in (host, "www." + host, "x" + host, "a.b." + host, host + ".evil.example"):
                    add(value)
                    add("https://" + value + ":8443/p?q=1")
            else:
                add(entry)
                add(entry[:-1] + ("0" if entry[-1:] != "0" else "1"))

out = subprocess.run(
    [cases_bin, str(lists_dir)],
    input="".join(f"{k}\t{v}\n" for k, v in cases),
    capture_output=True, text=True, check=True,
).stdout.splitlines()
assert len(out) == len(cases), f"{len(out)} results for {len(cases)} cases"

failures = []
patterns = ids = held = 0
for (kind, value), line in zip(cases, out):
    r = json.loads(line)
    if r["normalized"] is None:
        continue
    if r["pattern"] is None:
        if kind != "cve":
            failures.append(f"{kind} {value!r}: no pattern")
        continue
    errors = run_validator(r["pattern"], stix_version="2.1")
    if errors:
        failures.append(f"{r['pattern']!r}: stix2-patterns says {errors}")
        continue
    comparisons = Pattern(r["pattern"]).inspect().comparisons
    obj, path = OBJECT_PATH[kind]
    [(got_path, op, literal)] = comparisons[obj]
    unescaped = literal[1:-1].replace("\\'", "'").replace("\\\\", "\\")
    if got_path != path or op != "=" or unescaped != r["normalized"]:
        failures.append(f"{r['pattern']!r}: compares {got_path} {op} {unescaped!r}")
    patterns += 1
    if r["id"] != Indicator.generate_id(r["pattern"]):
        failures.append(f"{r['pattern']!r}: id {r['id']}, pycti {Indicator.generate_id(r['pattern'])}")
    ids += 1
    for name, ours in r["lists"].items():
        theirs = r["normalized"] in lists[name]
        if ours != theirs:
            failures.append(f"{name} holds {r['normalized']!r}: Rallypoint {ours}, PyMISPWarningLists {theirs}")
        held += 1

for f in failures[:40]:
    print("MISMATCH", f)
print(f"hunt interop: {patterns} patterns valid, {ids} ids as pycti's, {held} warninglist decisions "
      f"as PyMISPWarningLists' ({len(failures)} mismatches)")
sys.exit(1 if failures or patterns < 100 or held < 1000 else 0)
