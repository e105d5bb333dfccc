-- Recovery codes (issue 5): ten single-use codes per user, kept only as keyed hashes; a used code
-- keeps its row (used_at) so the account page can say when one was used.
CREATE TABLE recovery_codes (
  user_id TEXT NOT NULL,
  code_hash TEXT NOT NULL,
  created_at BIGINT NOT NULL,
  used_at BIGINT,
  PRIMARY KEY (user_id, code_hash));
