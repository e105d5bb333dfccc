#!/usr/bin/env python3
"""Sends N sequential requests of one scenario to a running Portico over one keep-alive connection
and checks each answer; for bench/instructions (which counts the server's instructions meanwhile).

usage: hot_paths.py BASE SCENARIO N [FILE | --print-tokens]
  cc          client_credentials for bench-client (--print-tokens: each access token, one a line)
  refresh     one refresh grant per line of FILE (each token used once)
  introspect  introspection of the token in FILE (first line) by bench-client: after the first,
              its signature is remembered (what a resource server introspecting one bearer sees)
  introspect_each  introspection of line i of FILE for request i: every token new to the server,
              its signature verified (the first presentation of each token)
  jwks        GET /oauth2/jwks
"""
import base64
import http.client
import json
import sys
import urllib.parse

base, scenario, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
u = urllib.parse.urlsplit(base)
assert u.hostname in ("127.0.0.1", "localhost"), "loopback only"
auth = "Basic " + base64.b64encode(b"bench-client:bench-secret-0123456789abcdef0123456789abcdef").decode()
print_tokens = sys.argv[4:] == ["--print-tokens"]
lines = open(sys.argv[4]).read().split() if len(sys.argv) > 4 and not print_tokens else []
conn = http.client.HTTPConnection(u.hostname, u.port, timeout=120)


def post(path, form):
    conn.request("POST", path, body=urllib.parse.urlencode(form),
                 headers={"Authorization": auth, "Content-Type": "application/x-www-form-urlencoded"})
    r = conn.getresponse()
    body = r.read()
    if r.status != 200:
        sys.exit(f"{scenario}: HTTP {r.status}: {body[:200]!r}")
    return json.loads(body)


def get(path):
    conn.request("GET", path)
    r = conn.getresponse()
    body = r.read()
    if r.status != 200:
        sys.exit(f"{scenario}: HTTP {r.status}")
    return body


for i in range(n):
    if scenario == "jwks":
        get("/oauth2/jwks")
    elif scenario == "cc":
        answer = post("/oauth2/token", {"grant_type": "client_credentials"})
        if print_tokens:
            print(answer["access_token"])
    elif scenario == "refresh":
        post("/oauth2/token", {"grant_type": "refresh_token", "refresh_token": lines[i]})
    elif scenario in ("introspect", "introspect_each"):
        token = lines[i] if scenario == "introspect_each" else lines[0]
        if not post("/oauth2/introspect", {"token": token}).get("active"):
            sys.exit(f"{scenario}: inactive")
    else:
        sys.exit(f"unknown scenario {scenario}")
