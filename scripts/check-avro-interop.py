"""Checks Rallypoint's Avro against an independent implementation (fastavro).

Usage: check-avro-interop.py DIR, where DIR holds what `rallypoint schemas --out DIR --samples`
wrote: one self-contained `<Name>.avsc` per schema and a sample `<Name>.bin` per schema.

For every schema: fastavro parses it and computes the CRC-64-AVRO fingerprint of its Parsing
Canonical Form, which must be the one in the sample's single-object header (and the one
Rallypoint printed). fastavro must then decode the sample body, consuming every byte, and
encode the decoded record back to exactly the same bytes.
"""
import io
import json
import pathlib
import sys

from fastavro import schemaless_reader, schemaless_writer
from fastavro.schema import fingerprint, parse_schema, to_parsing_canonical_form

folder = pathlib.Path(sys.argv[1])
printed = dict(line.split() for line in sys.stdin if line.strip()) if not sys.stdin.isatty() else {}
failures = []
checked = 0
for avsc in sorted(folder.glob("*.avsc")):
    name = avsc.stem
    schema = parse_schema(json.loads(avsc.read_text()), _write_hint=False)
    # fastavro gives the fingerprint's bytes in the order single-object encoding writes them
    # (little-endian): "int" gives 8f5c393f1ad57572.
    value = bytes.fromhex(fingerprint(to_parsing_canonical_form(schema), "CRC-64-AVRO"))
    header = b"\xc3\x01" + value
    if name in printed and printed[name] != value.hex():
        failures.append(f"{name}: Rallypoint printed fingerprint {printed[name]}, fastavro computes {value.hex()}")
    sample = folder / f"{name}.bin"
    if not sample.exists():
        failures.append(f"{name}: no sample record")
        continue
    data = sample.read_bytes()
    if data[:10] != header:
        failures.append(f"{name}: header {data[:10].hex()} but fastavro expects {header.hex()}")
        continue
    body = io.BytesIO(data[10:])
    record = schemaless_reader(body, schema)
    if body.tell() != len(data) - 10:
        failures.append(f"{name}: fastavro read {body.tell()} of {len(data) - 10} bytes")
    again = io.BytesIO()
    schemaless_writer(again, schema, record)
    if again.getvalue() != data[10:]:
        failures.append(f"{name}: fastavro re-encodes the record to different bytes")
    checked += 1

for f in failures:
    print("FAIL", f)
print(f"{checked} passed, {len(failures)} failed")
sys.exit(1 if failures or checked == 0 else 0)
