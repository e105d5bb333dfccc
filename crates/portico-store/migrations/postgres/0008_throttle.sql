-- Sign-in throttling (issue 5): failed attempts per key ("acct:<hash of the email typed>",
-- "ip:<address>"), kept in the store so every node and a restart see the same counts. Failures
-- older than the lock duration are forgotten; `blocked_until` is when the next attempt may come.
-- Times in milliseconds since the epoch.
CREATE TABLE throttle (
  key TEXT PRIMARY KEY,
  failures BIGINT NOT NULL,
  last_failure BIGINT NOT NULL,
  blocked_until BIGINT NOT NULL DEFAULT 0);
