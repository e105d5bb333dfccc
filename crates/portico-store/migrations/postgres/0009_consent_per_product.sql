-- Consent covers (user, client, product): consent given for one product says nothing of another
-- the same client may ask tokens for. A consent recorded per client was, by default, for the
-- client's own product: it is kept as that, so no refresh token of a third-party client dies with
-- the change; tokens for other products (`resource`) ask once more.
ALTER TABLE consents RENAME TO consents_per_client;
CREATE TABLE consents (
  user_id TEXT NOT NULL, client_id TEXT NOT NULL, product TEXT NOT NULL, scope TEXT NOT NULL,
  granted_at BIGINT NOT NULL,
  PRIMARY KEY (user_id, client_id, product));
INSERT INTO consents (user_id, client_id, product, scope, granted_at)
  SELECT c.user_id, c.client_id, k.product, c.scope, c.granted_at
  FROM consents_per_client c JOIN clients k ON k.id = c.client_id;
DROP TABLE consents_per_client;
