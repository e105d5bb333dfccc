-- Consent covers (user, client, product): consent given for one product says nothing of another
-- the same client may ask tokens for. Consents recorded per client only cannot say which product
-- they were for, so they are dropped: each user is asked once more.
DROP TABLE consents;
CREATE TABLE consents (
  user_id TEXT NOT NULL, client_id TEXT NOT NULL, product TEXT NOT NULL, scope TEXT NOT NULL,
  granted_at BIGINT NOT NULL,
  PRIMARY KEY (user_id, client_id, product));
