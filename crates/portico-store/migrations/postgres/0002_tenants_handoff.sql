-- Tenants and hand-off (issue 3): the tenant a user last chose per product, and hand-off codes.
CREATE TABLE tenant_choices (
  user_id TEXT NOT NULL, product TEXT NOT NULL, tenant TEXT NOT NULL, chosen_at BIGINT NOT NULL,
  PRIMARY KEY (user_id, product));

-- A hand-off code is stored under its hash; `target` is the product whose confidential clients may
-- redeem it. Consumed once, atomically (UPDATE ... WHERE consumed_at IS NULL RETURNING).
CREATE TABLE handoff_codes (
  hash TEXT PRIMARY KEY, target TEXT NOT NULL, data TEXT NOT NULL, created_at BIGINT NOT NULL,
  expires_at BIGINT NOT NULL, consumed_at BIGINT);

CREATE INDEX token_families_sid ON token_families (sid);
CREATE INDEX product_sessions_sso ON product_sessions (sso_id);
