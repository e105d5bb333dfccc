-- A family made by switching tenant (the refresh grant with `organization`) descends from the
-- family it was switched from: `origin` names the first family of the tree (NULL for a first
-- family). Revoking a family revokes its whole tree, so a stolen refresh token cannot escape
-- reuse detection by switching to a family of its own.
-- `pinned`: the tree began on a tenant's own domain and stays in that tenant, across a hand-off too.
ALTER TABLE token_families ADD COLUMN origin TEXT;
ALTER TABLE token_families ADD COLUMN pinned BOOLEAN NOT NULL DEFAULT FALSE;
CREATE INDEX token_families_origin ON token_families (origin) WHERE origin IS NOT NULL;
