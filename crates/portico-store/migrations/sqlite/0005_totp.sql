-- TOTP authenticators (issue 5, RFC 6238): one per user. The secret is sealed with the KEK; an
-- unconfirmed row is an enrolment in progress. `last_step` is the last time step a code was
-- accepted for: a code is good once (replay refused), atomically (UPDATE … WHERE last_step < step).
-- Too many wrong codes in a row lock the second factor for a while (guessing 6 digits must not pay).
CREATE TABLE totp_credentials (
  user_id TEXT PRIMARY KEY,
  secret TEXT NOT NULL,
  created_at BIGINT NOT NULL,
  confirmed_at BIGINT,
  last_step BIGINT NOT NULL DEFAULT 0,
  -- Wrong codes in a row, and until when codes are refused after too many.
  failures BIGINT NOT NULL DEFAULT 0,
  locked_until BIGINT NOT NULL DEFAULT 0);
