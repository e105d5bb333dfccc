#!/usr/bin/env python3
"""Reads one bench/run output directory and prints Portico's figures beside node-oidc-provider's,
their ratios, and each target of the core issue with PASS or MISS.

usage: compare.py OUT
"""
import glob
import os
import re
import statistics
import sys
from collections import defaultdict

out = sys.argv[1]
runs = defaultdict(list)   # (label, scenario, conns) -> [RESULT dicts]
rss = defaultdict(lambda: {"idle": [], "peak": []})
for path in glob.glob(f"{out}/*/summary.txt"):
    for line in open(path):
        if line.startswith("RESULT"):
            kv = dict(re.findall(r"(\w+)=(\S+)", line))
            runs[(kv["label"], kv["scenario"], int(kv["conns"]))].append(kv)
            rss[kv["label"]]["peak"].append(float(kv["peak_rss_kb"]) / 1024)
        elif line.startswith("IDLE_RSS_KB"):
            run = os.path.basename(os.path.dirname(path))
            label = next((l for l in ("peer", "portico-base-pg", "portico-base", "portico-pg", "floor-sign", "floor-static")
                          if run.startswith(l)), "portico")
            rss[label]["idle"].append(float(line.split()[1]) / 1024)


def med(label, scen, conns, key):
    rs = runs.get((label, scen, conns))
    return statistics.median(float(r[key]) for r in rs) if rs else None


def startup(label):
    try:
        m = re.search(r"STARTUP_MEDIAN_MS (\d+)", open(f"{out}/startup-{label}.txt").read())
        return float(m.group(1)) if m else None
    except OSError:
        return None


conns = sorted({c for (_, _, c) in runs})
scens = ["cc_jwt", "refresh_chain", "introspect", "discovery", "jwks"]
errors = sum(int(r["non2xx"]) + int(r["sockerr"]) for rs in runs.values() for r in rs)
STORES = {"portico": "SQLite", "portico-pg": "PostgreSQL"}
print("| scenario | conns | store | Portico req/s | peer req/s | ratio | Portico p50/p99 ms | peer p50/p99 ms | Portico cores |")
print("|---|---|---|---|---|---|---|---|---|")
for s in scens:
    for c in conns:
        for label, store in STORES.items():
            a, b = med(label, s, c, "rps"), med("peer", s, c, "rps")
            if a is None or b is None:
                continue
            print(f"| {s} | {c} | {store} | {a:,.0f} | {b:,.0f} | {a / b:.2f}x "
                  f"| {med(label, s, c, 'p50_ms'):.2f} / {med(label, s, c, 'p99_ms'):.2f} "
                  f"| {med('peer', s, c, 'p50_ms'):.2f} / {med('peer', s, c, 'p99_ms'):.2f} "
                  f"| {med(label, s, c, 'server_cores'):.2f} |")

# Before and after: an earlier build (BENCH_PORTICO_BASE_BIN) run beside this one in every round.
BASES = {"portico": "portico-base", "portico-pg": "portico-base-pg"}
if any(label.startswith("portico-base") for (label, _, _) in runs):
    print()
    print("| scenario | conns | store | earlier build req/s (cores) | this build req/s (cores) | change | earlier / this p99 ms |")
    print("|---|---|---|---|---|---|---|")
    for s in scens:
        for c in conns:
            for label, store in STORES.items():
                a, b = med(BASES[label], s, c, "rps"), med(label, s, c, "rps")
                if a is None or b is None:
                    continue
                print(f"| {s} | {c} | {store} | {a:,.0f} ({med(BASES[label], s, c, 'server_cores'):.2f}) "
                      f"| {b:,.0f} ({med(label, s, c, 'server_cores'):.2f}) | {100 * (b / a - 1):+.0f} % "
                      f"| {med(BASES[label], s, c, 'p99_ms'):.2f} / {med(label, s, c, 'p99_ms'):.2f} |")
    print()

for c in conns:
    ref = med("peer", "refresh", c, "rps")
    if ref is not None:
        print(f"| (peer only) refresh, one token replayed | {c} | — | {ref:,.0f} | — | — "
              f"| {med('peer', 'refresh', c, 'p50_ms'):.2f} / {med('peer', 'refresh', c, 'p99_ms'):.2f} | — |")

print()
print("| target | measured | |")
print("|---|---|---|")


def check(name, value, ok, shown):
    print(f"| {name} | {shown if value is not None else 'not measured'} | {'PASS' if value is not None and ok else 'MISS'} |")


for s, want in [("cc_jwt", 3.5), ("refresh_chain", 2.0), ("introspect", 2.5), ("jwks", 3.0), ("discovery", 3.5)]:
    for c in conns:
        a, b = med("portico", s, c, "rps"), med("peer", s, c, "rps")
        r = a / b if a and b else None
        check(f"{s} c{c} req/s >= {want}x peer", r, r is not None and r >= want, f"{r:.2f}x" if r else "")
for c in conns:
    a, f = med("portico", "cc_jwt", c, "rps"), med("floor-sign", "cc_jwt", c, "rps")
    r = f / a if a and f else None
    check(f"cc_jwt c{c} within 1.5x of the one-signature floor ({f:,.0f}/s)" if f else f"cc_jwt c{c} within 1.5x of the floor",
          r, r is not None and r <= 1.5, f"floor / Portico = {r:.2f}" if r else "")
    for s in ("jwks", "discovery"):
        a, f = med("portico", s, c, "rps"), med("floor-static", s, c, "rps")
        r = a / f if a and f else None
        check(f"{s} c{c} >= 90 % of the static-bytes floor ({f:,.0f}/s)" if f else f"{s} c{c} >= 90 % of the floor",
              r, r is not None and r >= 0.9, f"{100 * r:.0f} %" if r else "")
if any(label == "portico-pg" for (label, _, _) in runs):
    for c in conns:
        a, b = med("portico-pg", "refresh_chain", c, "rps"), med("peer", "refresh_chain", c, "rps")
        r = a / b if a and b else None
        check(f"refresh_chain c{c} on PostgreSQL >= 1.0x peer", r, r is not None and r >= 1.0, f"{r:.2f}x" if r else "")
for c in conns:
    a, b = med("portico", "cc_jwt", c, "p99_ms"), med("peer", "cc_jwt", c, "p99_ms")
    r = a / b if a and b else None
    check(f"cc_jwt c{c} p99 <= 0.5x peer", r, r is not None and r <= 0.5, f"{a:.2f} ms vs {b:.2f} ms ({r:.2f}x)" if r else "")
idle = max(rss["portico"]["idle"]) if rss["portico"]["idle"] else None
peak = max(rss["portico"]["peak"]) if rss["portico"]["peak"] else None
peer_idle = max(rss["peer"]["idle"]) if rss["peer"]["idle"] else 0
peer_peak = max(rss["peer"]["peak"]) if rss["peer"]["peak"] else 0
check("idle RSS <= 16 MiB", idle, idle is not None and idle <= 16, f"{idle:.1f} MiB (peer {peer_idle:.0f})" if idle else "")
check("peak RSS under load <= 48 MiB", peak, peak is not None and peak <= 48, f"{peak:.1f} MiB (peer {peer_peak:.0f})" if peak else "")
su, sp = startup("portico"), startup("peer")
check("spawn to first answer <= 20 ms", su, su is not None and su <= 20, f"{su:.0f} ms (peer {sp:.0f} ms)" if su else "")
print()
print(f"non-2xx answers and socket errors over all runs: {errors}" + ("" if errors == 0 else "  <- figures with errors are not valid"))
