-- wrk script: the hosted login form, posted again and again (a storm of sign-ins).
-- STORM_BODY: the urlencoded form (email, password, csrf); STORM_COOKIE: the CSRF cookie.
wrk.method = "POST"
wrk.body = os.getenv("STORM_BODY")
wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
wrk.headers["Cookie"] = os.getenv("STORM_COOKIE")
done = function(summary, latency, requests)
  io.write(string.format("STORM logins=%.1f/s p50_ms=%.1f p99_ms=%.1f requests=%d\n",
    summary.requests / (summary.duration / 1e6), latency:percentile(50) / 1000, latency:percentile(99) / 1000, summary.requests))
end
