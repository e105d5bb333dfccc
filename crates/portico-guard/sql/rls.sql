-- portico-guard: row-level security helpers. Apply with your migrations (idempotent), as the
-- role that owns the tables — never as the application's role.
--
-- Every function reads the request's claims from transaction-scoped settings that
-- portico_guard::rls::begin sets with bound parameters. Unset (or reset to '' after an earlier
-- transaction) reads as NULL, so a policy comparing against it matches no row and raises nothing.

CREATE SCHEMA IF NOT EXISTS portico;
GRANT USAGE ON SCHEMA portico TO PUBLIC;

-- The verified access-token claims, as PostgREST and Supabase policies read them.
CREATE OR REPLACE FUNCTION portico.claims() RETURNS jsonb
    LANGUAGE sql STABLE PARALLEL SAFE SET search_path = '' AS $$
    SELECT NULLIF(pg_catalog.current_setting('request.jwt.claims', true), '')::jsonb
$$;

CREATE OR REPLACE FUNCTION portico.sub() RETURNS text
    LANGUAGE sql STABLE PARALLEL SAFE SET search_path = '' AS $$
    SELECT NULLIF(pg_catalog.current_setting('portico.sub', true), '')
$$;

-- The tenant's opaque handle (org_id); NULL for a token without a tenant.
CREATE OR REPLACE FUNCTION portico.org_id() RETURNS text
    LANGUAGE sql STABLE PARALLEL SAFE SET search_path = '' AS $$
    SELECT NULLIF(pg_catalog.current_setting('portico.org_id', true), '')
$$;

-- The product (the token's audience).
CREATE OR REPLACE FUNCTION portico.product() RETURNS text
    LANGUAGE sql STABLE PARALLEL SAFE SET search_path = '' AS $$
    SELECT NULLIF(pg_catalog.current_setting('portico.product', true), '')
$$;

CREATE OR REPLACE FUNCTION portico.roles() RETURNS text[]
    LANGUAGE sql STABLE PARALLEL SAFE SET search_path = '' AS $$
    SELECT CASE WHEN pg_catalog.jsonb_typeof(portico.claims() -> 'roles') = 'array'
        THEN ARRAY(SELECT pg_catalog.jsonb_array_elements_text(portico.claims() -> 'roles'))
        ELSE '{}'::text[] END
$$;

CREATE OR REPLACE FUNCTION portico.has_permission(permission text) RETURNS boolean
    LANGUAGE sql STABLE PARALLEL SAFE SET search_path = '' AS $$
    SELECT COALESCE(pg_catalog.jsonb_typeof(portico.claims() -> 'permissions') = 'array'
        AND (portico.claims() -> 'permissions') OPERATOR(pg_catalog.?) permission, false)
$$;

-- The application's group role: NOLOGIN NOBYPASSRLS. Grant table privileges to it and make the
-- application's login role a member (CREATE ROLE crm_api LOGIN IN ROLE crm_app).
CREATE OR REPLACE FUNCTION portico.ensure_app_role(name text) RETURNS void
    LANGUAGE plpgsql SET search_path = '' AS $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = name) THEN
        EXECUTE pg_catalog.format('CREATE ROLE %I NOLOGIN NOSUPERUSER NOBYPASSRLS', name);
    ELSE
        EXECUTE pg_catalog.format('ALTER ROLE %I NOSUPERUSER NOBYPASSRLS', name);
    END IF;
END $$;

-- Template 1, the tenant wall: a RESTRICTIVE policy (ANDed with every other) letting a
-- statement see and write only rows of the request's tenant, FORCEd so the table's owner is held
-- too, and the index the policy's comparison needs. `(SELECT portico.org_id())` is evaluated
-- once per statement (an InitPlan), not once per row.
CREATE OR REPLACE FUNCTION portico.tenant_wall(tab regclass, tenant_column text) RETURNS void
    LANGUAGE plpgsql SET search_path = '' AS $$
DECLARE
    rel text := (SELECT relname FROM pg_catalog.pg_class WHERE oid = tab);
BEGIN
    IF pg_catalog.octet_length(rel || '_' || tenant_column || '_wall') > 63 THEN
        RAISE EXCEPTION 'portico.tenant_wall: index name for %.% is longer than 63 bytes', rel, tenant_column;
    END IF;
    EXECUTE pg_catalog.format('ALTER TABLE %s ENABLE ROW LEVEL SECURITY', tab);
    EXECUTE pg_catalog.format('ALTER TABLE %s FORCE ROW LEVEL SECURITY', tab);
    EXECUTE pg_catalog.format('DROP POLICY IF EXISTS portico_tenant_wall ON %s', tab);
    EXECUTE pg_catalog.format(
        'CREATE POLICY portico_tenant_wall ON %s AS RESTRICTIVE FOR ALL
             USING (%I = (SELECT portico.org_id())) WITH CHECK (%I = (SELECT portico.org_id()))',
        tab, tenant_column, tenant_column);
    EXECUTE pg_catalog.format('CREATE INDEX IF NOT EXISTS %I ON %s (%I)', rel || '_' || tenant_column || '_wall', tab, tenant_column);
END $$;

-- Template 2, a permission: a PERMISSIVE policy for one command (select, insert, update,
-- delete) allowed when the token carries `permission`. Without any permissive policy for a
-- command, RLS allows no row for it: permissions are granted, never assumed.
CREATE OR REPLACE FUNCTION portico.permit(tab regclass, command text, permission text) RETURNS void
    LANGUAGE plpgsql SET search_path = '' AS $$
DECLARE
    policy text := 'portico_' || pg_catalog.lower(command) || '_' || permission;
    test text := pg_catalog.format('(SELECT portico.has_permission(%L))', permission);
BEGIN
    -- PostgreSQL truncates identifiers at 63 bytes: two long permissions could share a name.
    IF pg_catalog.octet_length(policy) > 63 THEN
        RAISE EXCEPTION 'portico.permit: policy name % is longer than 63 bytes; use a shorter permission', policy;
    END IF;
    EXECUTE pg_catalog.format('DROP POLICY IF EXISTS %I ON %s', policy, tab);
    CASE pg_catalog.lower(command)
    WHEN 'select', 'delete' THEN
        EXECUTE pg_catalog.format('CREATE POLICY %I ON %s AS PERMISSIVE FOR %s USING (%s)', policy, tab, command, test);
    WHEN 'insert' THEN
        EXECUTE pg_catalog.format('CREATE POLICY %I ON %s AS PERMISSIVE FOR INSERT WITH CHECK (%s)', policy, tab, test);
    WHEN 'update' THEN
        EXECUTE pg_catalog.format('CREATE POLICY %I ON %s AS PERMISSIVE FOR UPDATE USING (%s) WITH CHECK (%s)', policy, tab, test, test);
    ELSE
        RAISE EXCEPTION 'portico.permit: command must be select, insert, update or delete, not %', command;
    END CASE;
END $$;
