#!/usr/bin/env python3
"""What the server itself saw during one benchmark phase: the difference between two /metrics
scrapes. Splits client-side figures into server time vs. everything else (client, network, queueing
in the kernel), and shows how well group commit batched the writes.

    metrics_delta.py BEFORE.txt AFTER.txt ROUTE
"""
import re
import sys
from collections import defaultdict

LINE = re.compile(r'^(\w+)(?:\{(.*)\})? (\S+)$')


def parse(path):
    out = defaultdict(float)
    for line in open(path):
        m = LINE.match(line.strip())
        if m:
            out[(m[1], m[2] or "")] += float(m[3])
    return out


def main():
    before, after, route = parse(sys.argv[1]), parse(sys.argv[2]), sys.argv[3]
    d = {k: after[k] - before.get(k, 0.0) for k in after}

    # Latency histogram of the route (status 200 only), cumulative buckets -> percentiles.
    prefix = f'route="{route}",'
    buckets = sorted(
        (float("inf") if le == "+Inf" else float(le), v)
        for (name, labels), v in d.items()
        if name == "recloop_http_request_duration_seconds_bucket" and labels.startswith(prefix)
        and 'status="200"' in labels
        for le in re.findall(r'le="([^"]+)"', labels)
    )
    count = sum(v for (n, l), v in d.items()
                if n == "recloop_http_request_duration_seconds_count" and l.startswith(prefix)
                and 'status="200"' in l)
    total = sum(v for (n, l), v in d.items()
                if n == "recloop_http_request_duration_seconds_sum" and l.startswith(prefix)
                and 'status="200"' in l)

    def pct(p):
        # Upper bound of the bucket holding the p-th request: histograms only know ranges.
        for le, v in buckets:
            if v >= p / 100 * count:
                return f"<= {le * 1e3:g} ms"
        return "n/a"

    if count:
        print(f"server-side {route}: {count:.0f} requests (200), mean {total / count * 1e3:.2f} ms, "
              f"p50 {pct(50)}, p99 {pct(99)}")
    groups = d.get(("recloop_group_commit_requests_count", ""), 0)
    if groups:
        grouped = d[("recloop_group_commit_requests_sum", "")]
        print(f"group commit: {groups:.0f} transactions for {grouped:.0f} requests "
              f"({grouped / groups:.1f} requests per commit)")


if __name__ == "__main__":
    main()
