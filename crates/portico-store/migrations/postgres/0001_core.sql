-- Portico core schema (PostgreSQL). Times are Unix seconds; JSON documents are TEXT.
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
INSERT INTO meta (key, value) VALUES ('config_version', '1');

CREATE TABLE products (
  slug TEXT PRIMARY KEY, doc TEXT NOT NULL, status TEXT NOT NULL, updated_at BIGINT NOT NULL);
CREATE TABLE clients (
  id TEXT PRIMARY KEY, product TEXT NOT NULL, doc TEXT NOT NULL, secret_hash TEXT,
  status TEXT NOT NULL, updated_at BIGINT NOT NULL);
CREATE TABLE tenants (
  id TEXT PRIMARY KEY, slug TEXT NOT NULL UNIQUE, doc TEXT NOT NULL, status TEXT NOT NULL,
  updated_at BIGINT NOT NULL);

CREATE TABLE users (
  id TEXT PRIMARY KEY, email TEXT NOT NULL, email_norm TEXT NOT NULL UNIQUE,
  email_verified BOOLEAN NOT NULL, name TEXT NOT NULL, password_hash TEXT,
  status TEXT NOT NULL, created_at BIGINT NOT NULL, updated_at BIGINT NOT NULL);

CREATE TABLE grants (
  grantee TEXT NOT NULL, product TEXT NOT NULL, tenant TEXT NOT NULL, roles TEXT NOT NULL,
  status TEXT NOT NULL, granted_by TEXT NOT NULL, granted_at BIGINT NOT NULL, expires_at BIGINT,
  revoked_at BIGINT, revoked_by TEXT,
  PRIMARY KEY (grantee, product, tenant));

CREATE TABLE signing_keys (
  kid TEXT PRIMARY KEY, alg TEXT NOT NULL, private_enc TEXT NOT NULL, public_jwk TEXT NOT NULL,
  created_at BIGINT NOT NULL, activate_at BIGINT NOT NULL);

CREATE TABLE sso_sessions (
  id TEXT PRIMARY KEY, token_hash TEXT NOT NULL UNIQUE, user_id TEXT NOT NULL,
  auth_time BIGINT NOT NULL, amr TEXT NOT NULL, acr TEXT NOT NULL,
  created_at BIGINT NOT NULL, last_seen BIGINT NOT NULL, idle_expires_at BIGINT NOT NULL,
  expires_at BIGINT NOT NULL, ended_at BIGINT, user_agent TEXT NOT NULL, ip TEXT NOT NULL);
CREATE INDEX sso_sessions_user ON sso_sessions (user_id);

CREATE TABLE product_sessions (
  sid TEXT PRIMARY KEY, sso_id TEXT NOT NULL, client_id TEXT NOT NULL, product TEXT NOT NULL,
  created_at BIGINT NOT NULL, ended_at BIGINT);
CREATE UNIQUE INDEX product_sessions_sso_client ON product_sessions (sso_id, client_id);

CREATE TABLE auth_requests (
  id TEXT PRIMARY KEY, data TEXT NOT NULL, expires_at BIGINT NOT NULL);

CREATE TABLE auth_codes (
  hash TEXT PRIMARY KEY, family TEXT NOT NULL, data TEXT NOT NULL, expires_at BIGINT NOT NULL,
  consumed_at BIGINT);

CREATE TABLE token_families (
  id TEXT PRIMARY KEY, subject TEXT NOT NULL, client_id TEXT NOT NULL, product TEXT NOT NULL,
  tenant TEXT NOT NULL, sid TEXT, created_at BIGINT NOT NULL, revoked_at BIGINT,
  revoked_reason TEXT);
CREATE INDEX token_families_subject ON token_families (subject);

CREATE TABLE refresh_tokens (
  hash TEXT PRIMARY KEY, family TEXT NOT NULL, data TEXT NOT NULL, created_at BIGINT NOT NULL,
  expires_at BIGINT NOT NULL, rotated_at BIGINT);
CREATE INDEX refresh_tokens_family ON refresh_tokens (family);

CREATE TABLE revoked_tokens (jti TEXT PRIMARY KEY, expires_at BIGINT NOT NULL);

CREATE TABLE consents (
  user_id TEXT NOT NULL, client_id TEXT NOT NULL, scope TEXT NOT NULL, granted_at BIGINT NOT NULL,
  PRIMARY KEY (user_id, client_id));

CREATE TABLE audit_head (id SMALLINT PRIMARY KEY CHECK (id = 1), seq BIGINT NOT NULL, hash TEXT NOT NULL);
INSERT INTO audit_head (id, seq, hash) VALUES (1, 0, '');
CREATE TABLE audit_events (
  seq BIGINT PRIMARY KEY, at BIGINT NOT NULL, kind TEXT NOT NULL, actor TEXT NOT NULL,
  product TEXT, tenant TEXT, ip TEXT, data TEXT NOT NULL, prev_hash TEXT NOT NULL,
  hash TEXT NOT NULL);
