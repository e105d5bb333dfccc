-- The sweep of expired rows finds them by index, a batch at a time, instead of scanning tables.
CREATE INDEX auth_requests_expiry ON auth_requests (expires_at);
CREATE INDEX auth_codes_expiry ON auth_codes (expires_at);
CREATE INDEX handoff_codes_expiry ON handoff_codes (expires_at);
CREATE INDEX revoked_tokens_expiry ON revoked_tokens (expires_at);
CREATE INDEX refresh_tokens_expiry ON refresh_tokens (expires_at);
CREATE INDEX throttle_last_failure ON throttle (last_failure);
