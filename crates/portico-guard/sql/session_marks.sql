-- portico-guard: sessions ended by back-channel logout, shared by every replica of a product.
CREATE SCHEMA IF NOT EXISTS portico;
CREATE TABLE IF NOT EXISTS portico.session_marks (
    kind        text   NOT NULL CHECK (kind IN ('sid', 'sub')),
    value       text   NOT NULL CHECK (length(value) <= 255),
    ended_at    bigint NOT NULL,
    kept_until  bigint NOT NULL,
    PRIMARY KEY (kind, value)
);
CREATE INDEX IF NOT EXISTS session_marks_kept_until ON portico.session_marks (kept_until);
