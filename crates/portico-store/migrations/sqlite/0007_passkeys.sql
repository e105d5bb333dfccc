-- Passkeys (issue 5, WebAuthn): several per user. `credential_id` is the authenticator's
-- credential ID (base64url); `credential` is webauthn-rs's Passkey as JSON: the public key and
-- signature counter, nothing secret.
CREATE TABLE passkeys (
  credential_id TEXT PRIMARY KEY,
  user_id TEXT NOT NULL,
  name TEXT NOT NULL,
  credential TEXT NOT NULL,
  created_at BIGINT NOT NULL,
  last_used_at BIGINT);
CREATE INDEX passkeys_user ON passkeys (user_id);
