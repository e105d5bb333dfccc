#!/usr/bin/env python3
"""Mints N refresh tokens for bench-client at a running Portico: one login at the hosted page, then
N silent authorizations on the SSO session, each code redeemed once. Prints one token per line.

usage: mint_refresh.py BASE N     (BASE must be loopback)
"""
import base64
import hashlib
import http.client
import json
import re
import secrets
import sys
import urllib.parse

base, n = sys.argv[1], int(sys.argv[2])
u = urllib.parse.urlsplit(base)
assert u.hostname in ("127.0.0.1", "localhost"), "loopback only"
CLIENT, SECRET = "bench-client", "bench-secret-0123456789abcdef0123456789abcdef"
REDIRECT = "https://app.example.test/cb"
cookies = {}


def request(method, path, body=None, headers=None):
    c = http.client.HTTPConnection(u.hostname, u.port, timeout=10)
    h = dict(headers or {})
    if cookies:
        h["Cookie"] = "; ".join(f"{k}={v}" for k, v in cookies.items())
    if body is not None:
        h["Content-Type"] = "application/x-www-form-urlencoded"
        body = urllib.parse.urlencode(body)
    c.request(method, path, body=body, headers=h)
    r = c.getresponse()
    for k, v in r.getheaders():
        if k.lower() == "set-cookie":
            name, _, rest = v.partition("=")
            cookies[name] = rest.split(";", 1)[0]
    return r.status, r.getheader("Location"), r.read().decode()


def authorize():
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    q = urllib.parse.urlencode({
        "response_type": "code", "client_id": CLIENT, "redirect_uri": REDIRECT,
        "scope": "openid offline_access", "state": secrets.token_urlsafe(8),
        "code_challenge": challenge, "code_challenge_method": "S256",
    })
    return "/oauth2/authorize?" + q, verifier


def redeem(location, verifier):
    code = urllib.parse.parse_qs(urllib.parse.urlsplit(location).query)["code"][0]
    auth = base64.b64encode(f"{CLIENT}:{SECRET}".encode()).decode()
    status, _, body = request("POST", "/oauth2/token", {
        "grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT, "code_verifier": verifier,
    }, {"Authorization": "Basic " + auth})
    assert status == 200, body
    return json.loads(body)["refresh_token"]


path, verifier = authorize()
status, location, page = request("GET", path)
if status == 303 and location.startswith("/login"):
    status, location, page = request("GET", location)
assert status == 200, (status, location)
form = {k: v.replace("&amp;", "&") for k, v in re.findall(r'name="(csrf|req)" value="([^"]*)"', page)}
form.update(email="bench@example.test", password="bench password 0123456789")
status, location, _ = request("POST", "/login", form)
while location and location.startswith("/"):
    status, location, _ = request("GET", location)
print(redeem(location, verifier))
for _ in range(n - 1):
    path, verifier = authorize()
    status, location, body = request("GET", path)
    assert status in (302, 303) and location.startswith(REDIRECT), (status, location, body)
    print(redeem(location, verifier))
