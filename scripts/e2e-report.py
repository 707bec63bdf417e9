"""Polls Rallypoint's /metrics while a feed runs; prints throughput and latency quantiles."""
import sys, time, urllib.request

url, expected = sys.argv[1], int(sys.argv[2])

def scrape():
    text = urllib.request.urlopen(url, timeout=5).read().decode()
    counts, buckets = {}, []
    for line in text.splitlines():
        if line.startswith("rallypoint_records_in_total"):
            stage = line.split('stage="')[1].split('"')[0]
            counts[stage] = float(line.rsplit(" ", 1)[1])
        elif line.startswith("rallypoint_end_to_end_latency_seconds_bucket"):
            le = line.split('le="')[1].split('"')[0]
            buckets.append((float("inf") if le == "+Inf" else float(le), float(line.rsplit(" ", 1)[1])))
    return counts.get("coordinator", 0.0), buckets

def quantile(buckets, q):
    total = buckets[-1][1]
    for le, c in buckets:
        if c >= q * total:
            return le
    return float("inf")

first = last = None
prev, still = 0.0, 0
while True:
    n, buckets = scrape()
    now = time.time()
    if n > 0 and first is None:
        first = now
    if n != prev:
        last, still = now, 0
    else:
        still += 1
    prev = n
    if n >= expected and still >= 6:
        break
    time.sleep(0.5)
secs = max(last - first, 1e-9)
print(f"coordinator applied {int(n)} events in {secs:.1f} s: {n / secs:,.0f} events/s (exactly-once)")
print("end-to-end latency (histogram bucket upper bounds): " + ", ".join(
    f"p{int(q * 1000) / 10:g} <= {quantile(buckets, q) * 1000:.0f} ms" for q in (0.5, 0.99, 0.999)))
