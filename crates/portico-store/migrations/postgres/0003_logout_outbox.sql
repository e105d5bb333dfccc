-- Back-channel logout outbox (OIDC Back-Channel Logout 1.0): one row per ended product session
-- whose client has a back-channel logout URI, written in the transaction that ended it. A delivery
-- worker claims due rows (`next_attempt_at`, leased while in flight), signs a fresh logout token per
-- attempt, and deletes the row once delivered or given up; the audit log keeps every outcome.
-- A product session ends once, so its `sid` is the key.
CREATE TABLE logout_outbox (
  sid TEXT PRIMARY KEY,
  client_id TEXT NOT NULL,
  subject TEXT NOT NULL,
  reason TEXT NOT NULL,
  created_at BIGINT NOT NULL,
  next_attempt_at BIGINT NOT NULL,
  attempts BIGINT NOT NULL DEFAULT 0,
  last_error TEXT);

CREATE INDEX logout_outbox_due ON logout_outbox (next_attempt_at);
