#!/usr/bin/env python3
"""Latency as one client sees it: sequential requests on one keep-alive connection for SECONDS,
then p50/p90/p99/max in ms. Light on purpose: it measures the server, it does not load it.

usage: latency.py BASE jwks|cc SECONDS LABEL
"""
import base64, http.client, sys, time, urllib.parse

base, what, seconds, label = sys.argv[1], sys.argv[2], float(sys.argv[3]), sys.argv[4]
u = urllib.parse.urlsplit(base)
assert u.hostname in ("127.0.0.1", "localhost"), "loopback only"
conn = http.client.HTTPConnection(u.hostname, u.port, timeout=30)
auth = base64.b64encode(b"bench-client:bench-secret-0123456789abcdef0123456789abcdef").decode()
body = urllib.parse.urlencode({"grant_type": "client_credentials", "resource": "https://api.example.test", "scope": "api:read"})
xs, errors = [], 0
end = time.perf_counter() + seconds
while time.perf_counter() < end:
    start = time.perf_counter()
    if what == "jwks":
        conn.request("GET", "/oauth2/jwks")
    else:
        conn.request("POST", "/oauth2/token", body=body, headers={"Authorization": "Basic " + auth, "Content-Type": "application/x-www-form-urlencoded"})
    resp = conn.getresponse()
    resp.read()
    xs.append((time.perf_counter() - start) * 1000)
    errors += resp.status != 200
    time.sleep(0.002)  # about 300 requests a second at most: a client, not a load
xs.sort()
p = lambda q: xs[min(len(xs) - 1, int(round(q / 100 * (len(xs) - 1))))]
print(f"RESULT {label:28} {what:5} n={len(xs):5} p50={p(50):7.2f} p90={p(90):7.2f} p99={p(99):7.2f} max={xs[-1]:7.2f} ms errors={errors}")
