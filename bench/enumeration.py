#!/usr/bin/env python3
"""Enumeration timing: for the login, password-reset and sign-up forms, the answer for an email
that has an account and for one that has none, timed request by request (pairs interleaved, order
shuffled per pair, one keep-alive connection), then their distributions side by side. Also checks
that the two answers are byte-identical once the email typed is taken out.

usage: enumeration.py BASE [PAIRS]     (BASE on loopback; the server must not throttle these)
"""
import http.client, random, re, statistics, sys, time, urllib.parse

base = sys.argv[1]
pairs = int(sys.argv[2]) if len(sys.argv) > 2 else 200
u = urllib.parse.urlsplit(base)
assert u.hostname in ("127.0.0.1", "localhost"), "loopback only"
conn = http.client.HTTPConnection(u.hostname, u.port, timeout=30)
cookies = {}

def request(method, path, body=None):
    headers = {"Cookie": "; ".join(f"{k}={v}" for k, v in cookies.items())}
    if body is not None:
        body = urllib.parse.urlencode(body)
        headers["Content-Type"] = "application/x-www-form-urlencoded"
    start = time.perf_counter()
    conn.request(method, path, body=body, headers=headers)
    resp = conn.getresponse()
    data = resp.read()
    elapsed = (time.perf_counter() - start) * 1000
    for h, v in resp.getheaders():
        if h.lower() == "set-cookie":
            k, _, val = v.split(";")[0].partition("=")
            cookies[k.strip()] = val
    return resp.status, resp.getheader("location"), data.decode(), elapsed

def hidden(page, name):
    m = re.search(r'name="%s" value="([^"]*)"' % name, page)
    return m.group(1) if m else None

_, _, login_page, _ = request("GET", "/login")
csrf = hidden(login_page, "csrf")
# A sign-in request of the product that takes sign-ups, for the sign-up form.
q = urllib.parse.urlencode({"response_type": "code", "client_id": "open-web", "redirect_uri": "https://app.example.test/cb",
                            "scope": "openid", "state": "s", "code_challenge": "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
                            "code_challenge_method": "S256"})
_, loc, _, _ = request("GET", "/oauth2/authorize?" + q)
req = urllib.parse.parse_qs(urllib.parse.urlsplit(loc).query)["req"][0]

KNOWN = "bench@example.test"
PASSWORD = "lighthouse keeper oyster violin"
flows = {
    "login (wrong password)": lambda email: ("/login", {"email": email, "password": "not the password at all", "csrf": csrf}),
    "password reset": lambda email: ("/password/forgot", {"email": email, "csrf": csrf}),
    "sign-up": lambda email: ("/signup", {"name": "Bench Person", "email": email, "password": PASSWORD, "csrf": csrf, "req": req}),
}

def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]

def overlap(a, b, bins=20):
    """Overlap coefficient of two samples' histograms on common bins (1.0 = the same distribution)."""
    lo, hi = min(min(a), min(b)), max(pct(a, 99), pct(b, 99))
    width = (hi - lo) / bins or 1
    def hist(xs):
        h = [0] * bins
        for x in xs:
            h[min(bins - 1, max(0, int((x - lo) / width)))] += 1
        return [c / len(xs) for c in h]
    return sum(min(p, q) for p, q in zip(hist(a), hist(b)))

def ks(a, b):
    """Kolmogorov-Smirnov distance between the two samples' distributions (0 = the same)."""
    pts = sorted(set(a) | set(b))
    sa, sb = sorted(a), sorted(b)
    import bisect
    return max(abs(bisect.bisect_right(sa, x) / len(sa) - bisect.bisect_right(sb, x) / len(sb)) for x in pts)

print(f"enumeration timing, {pairs} pairs per form, ms (known email | unknown email)")
print(f"{'form':24} {'who':8} {'p10':>7} {'p50':>7} {'p90':>7} {'p99':>7}  identical  overlap  KS (same at 5% below)")
for name, form in flows.items():
    known, unknown = [], []
    same = True
    for i in range(pairs + 5):
        stranger = f"nobody-{i}-{random.randrange(10**9)}@example.test"
        order = [(KNOWN, known), (stranger, unknown)]
        random.shuffle(order)
        answers = {}
        for email, sink in order:
            path, body = form(email)
            status, _, page, ms = request("POST", path, body)
            answers[email == KNOWN] = (status, page.replace(email, "EMAIL"))
            if i >= 5:  # the first pairs warm up
                sink.append(ms)
        same = same and answers[True] == answers[False]
    for who, xs in (("known", known), ("unknown", unknown)):
        print(f"{name:24} {who:8} {pct(xs,10):7.2f} {pct(xs,50):7.2f} {pct(xs,90):7.2f} {pct(xs,99):7.2f}", end="")
        threshold = 1.36 * ((len(known) + len(unknown)) / (len(known) * len(unknown))) ** 0.5
        print(f"  {'yes' if same else 'NO':9}  {overlap(known, unknown):.2f}     {ks(known, unknown):.2f} ({threshold:.2f})" if who == "unknown" else "")
