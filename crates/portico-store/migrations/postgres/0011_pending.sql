-- One table for every short-lived state of a browser flow: the pending authorization request,
-- the sign-in waiting for its second factor, a passkey ceremony, a mailed link, a factor permit.
-- Each row is named by its kind and the hash of a random handle; the data is the kind's JSON.
CREATE TABLE pending (
    kind TEXT NOT NULL,
    key TEXT NOT NULL,
    data TEXT NOT NULL,
    expires_at BIGINT NOT NULL,
    PRIMARY KEY (kind, key)
);
CREATE INDEX pending_expiry ON pending (expires_at);
-- What `auth_requests` held under a hand-made prefix and the hash of its handle moves across, so
-- mailed links (a reset, a sign-up, a verification: up to days) keep working. A pending
-- authorization request was keyed by its raw id, which SQL cannot hash: those (minutes old) are
-- dropped, and a sign-in in flight during the upgrade starts over.
INSERT INTO pending (kind, key, data, expires_at)
SELECT CASE
           WHEN substr(id, 1, 10) = 'lnk_reset_' THEN 'link_reset'
           WHEN substr(id, 1, 11) = 'lnk_signup_' THEN 'link_signup'
           WHEN substr(id, 1, 11) = 'lnk_verify_' THEN 'link_verify'
           WHEN substr(id, 1, 10) = 'lnk_enrol_' THEN 'link_enrolment'
           WHEN substr(id, 1, 3) = 'pk_' THEN 'ceremony'
           WHEN substr(id, 1, 4) = 'mfa_' THEN 'second_factor'
       END,
       CASE
           WHEN substr(id, 1, 10) IN ('lnk_reset_', 'lnk_enrol_') THEN substr(id, 11)
           WHEN substr(id, 1, 11) IN ('lnk_signup_', 'lnk_verify_') THEN substr(id, 12)
           WHEN substr(id, 1, 3) = 'pk_' THEN substr(id, 4)
           WHEN substr(id, 1, 4) = 'mfa_' THEN substr(id, 5)
       END,
       data, expires_at
FROM auth_requests
WHERE substr(id, 1, 10) IN ('lnk_reset_', 'lnk_enrol_')
   OR substr(id, 1, 11) IN ('lnk_signup_', 'lnk_verify_')
   OR substr(id, 1, 3) = 'pk_'
   OR substr(id, 1, 4) = 'mfa_';
-- A factor permit held the user id as a bare string; its kind's JSON is a quoted string.
INSERT INTO pending (kind, key, data, expires_at)
SELECT 'factor_permit', substr(id, 10), '"' || data || '"', expires_at
FROM auth_requests
WHERE substr(id, 1, 9) = 'enrol_ok_';
DROP TABLE auth_requests;
