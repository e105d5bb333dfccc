-- One table for every short-lived state of a browser flow: the pending authorization request,
-- the sign-in waiting for its second factor, a passkey ceremony, a mailed link, a factor permit.
-- Each row is named by its kind and the hash of a random handle; the data is the kind's JSON.
-- What `auth_requests` held (under hand-made key prefixes) lives minutes to hours: it is dropped,
-- and a sign-in in flight during the upgrade starts over.
DROP TABLE auth_requests;
CREATE TABLE pending (
    kind TEXT NOT NULL,
    key TEXT NOT NULL,
    data TEXT NOT NULL,
    expires_at BIGINT NOT NULL,
    PRIMARY KEY (kind, key)
);
CREATE INDEX pending_expiry ON pending (expires_at);
