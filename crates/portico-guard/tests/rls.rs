//! Row-level security on a real PostgreSQL: the templates hold a tenant wall and permissions
//! with the application's own checks absent, settings never outlive their transaction, the
//! functions fail closed, and the self-check refuses roles that would bypass it all.

use crate::support::Db;
use portico_guard::rls::{self, SelfCheckError};
use portico_guard::testing::TestIssuer;
use portico_guard::{Guard, Principal};
use serde_json::json;
use sqlx::PgPool;

const CRM: &str = "https://crm.example.test";

struct Fixture {
    db: Db,
    admin: PgPool,
    app: PgPool,
    roles: (String, String),
    issuer: TestIssuer,
    guard: Guard,
}

impl Fixture {
    async fn new() -> Option<Fixture> {
        let db = Db::fresh().await?;
        let admin = db.pool().await;
        rls::install(&admin).await.unwrap();
        rls::install(&admin).await.unwrap(); // idempotent
        let tag = &db.name["guard_test_".len()..][..12];
        let (group, login) = (format!("app_{tag}"), format!("api_{tag}"));
        let setup = format!(
            "CREATE TABLE contacts (id uuid PRIMARY KEY DEFAULT gen_random_uuid(), org_id text NOT NULL, name text NOT NULL);
             SELECT portico.ensure_app_role('{group}');
             SELECT portico.tenant_wall('contacts', 'org_id');
             SELECT portico.permit('contacts', 'select', 'read:contacts');
             SELECT portico.permit('contacts', 'insert', 'write:contacts');
             SELECT portico.permit('contacts', 'update', 'write:contacts');
             SELECT portico.permit('contacts', 'delete', 'write:contacts');
             GRANT SELECT, INSERT, UPDATE, DELETE ON contacts TO {group};
             CREATE ROLE {login} LOGIN IN ROLE {group};"
        );
        sqlx::raw_sql(&setup).execute(&admin).await.unwrap();
        let app = sqlx::postgres::PgPoolOptions::new()
            .max_connections(1)
            .connect(&db.url_as(&login))
            .await
            .unwrap();
        let issuer = TestIssuer::new("https://id.example.test");
        let guard = issuer.guard(CRM).await;
        Some(Fixture {
            db,
            admin,
            app,
            roles: (group, login),
            issuer,
            guard,
        })
    }

    async fn principal(&self, tenant: &str, permissions: &[&str]) -> Principal {
        let mut c = self.issuer.claims("usr_ada", CRM);
        c.org_id = Some(tenant.to_owned());
        c.roles = vec!["editor".into()];
        c.permissions = permissions.iter().map(|p| (*p).to_owned()).collect();
        self.guard.verify(&self.issuer.sign(&c)).await.unwrap()
    }

    async fn finish(self) {
        self.app.close().await;
        self.admin.close().await;
        let (group, login) = self.roles.clone();
        let admin = sqlx::postgres::PgPoolOptions::new().max_connections(1).connect(&self.db.admin).await.unwrap();
        self.db.drop_now().await;
        sqlx::raw_sql(&format!("DROP ROLE IF EXISTS {login}; DROP ROLE IF EXISTS {group};"))
            .execute(&admin)
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn another_tenant_sees_changes_and_inserts_nothing() {
    let Some(f) = Fixture::new().await else { return };
    let rw = ["read:contacts", "write:contacts"];
    let (acme, globex) = (f.principal("ten_acme", &rw).await, f.principal("ten_globex", &rw).await);
    rls::self_check(&f.app, &[]).await.unwrap();
    rls::wrong_tenant(&f.app, "contacts", "org_id", &json!({"name": "Ada"}), &acme, &globex)
        .await
        .unwrap();
    rls::wrong_tenant(&f.app, "contacts", "org_id", &json!({"name": "Grace"}), &globex, &acme)
        .await
        .unwrap();
    // The kit can fail: without the tenant wall, permissions alone let Globex see Acme's row.
    sqlx::query("DROP POLICY portico_tenant_wall ON contacts").execute(&f.admin).await.unwrap();
    let broken = rls::wrong_tenant(&f.app, "contacts", "org_id", &json!({"name": "Ada"}), &acme, &globex)
        .await
        .unwrap_err();
    assert!(broken.contains("b's SELECT saw a's row"), "{broken}");
    f.finish().await;
}

#[tokio::test]
async fn a_viewer_cannot_write_and_nobody_reads_without_a_permission() {
    let Some(f) = Fixture::new().await else { return };
    let editor = f.principal("ten_acme", &["read:contacts", "write:contacts"]).await;
    let viewer = f.principal("ten_acme", &["read:contacts"]).await;
    let nobody = f.principal("ten_acme", &[]).await;
    let mut tx = rls::begin(&f.app, &editor).await.unwrap();
    sqlx::query("INSERT INTO contacts (org_id, name) VALUES ('ten_acme', 'Ada')")
        .execute(&mut *tx)
        .await
        .unwrap();
    tx.commit().await.unwrap();

    let mut tx = rls::begin(&f.app, &viewer).await.unwrap();
    let (seen,): (i64,) = sqlx::query_as("SELECT count(*) FROM contacts").fetch_one(&mut *tx).await.unwrap();
    assert_eq!(seen, 1);
    let err = sqlx::query("INSERT INTO contacts (org_id, name) VALUES ('ten_acme', 'Eve')")
        .execute(&mut *tx)
        .await
        .unwrap_err();
    assert_eq!(err.as_database_error().and_then(|e| e.code()).as_deref(), Some("42501"));
    drop(tx);
    let mut tx = rls::begin(&f.app, &viewer).await.unwrap();
    assert_eq!(
        sqlx::query("UPDATE contacts SET name = 'Eve'").execute(&mut *tx).await.unwrap().rows_affected(),
        0
    );
    assert_eq!(sqlx::query("DELETE FROM contacts").execute(&mut *tx).await.unwrap().rows_affected(), 0);
    tx.commit().await.unwrap();

    let mut tx = rls::begin(&f.app, &nobody).await.unwrap();
    let (seen,): (i64,) = sqlx::query_as("SELECT count(*) FROM contacts").fetch_one(&mut *tx).await.unwrap();
    assert_eq!(seen, 0, "no read permission, no rows");
    drop(tx);
    // An editor may not move a row into another tenant either (WITH CHECK).
    let mut tx = rls::begin(&f.app, &editor).await.unwrap();
    let err = sqlx::query("UPDATE contacts SET org_id = 'ten_globex'").execute(&mut *tx).await.unwrap_err();
    assert_eq!(err.as_database_error().and_then(|e| e.code()).as_deref(), Some("42501"));
    drop(tx);
    f.finish().await;
}

#[tokio::test]
async fn settings_never_outlive_their_transaction_and_unset_reads_as_nothing() {
    let Some(f) = Fixture::new().await else { return };
    let editor = f.principal("ten_acme", &["read:contacts", "write:contacts"]).await;
    // Outside any transaction of `begin`: no error, no rows.
    let (seen,): (i64,) = sqlx::query_as("SELECT count(*) FROM contacts").fetch_one(&f.app).await.unwrap();
    assert_eq!(seen, 0);
    let mut tx = rls::begin(&f.app, &editor).await.unwrap();
    sqlx::query("INSERT INTO contacts (org_id, name) VALUES ('ten_acme', 'Ada')")
        .execute(&mut *tx)
        .await
        .unwrap();
    let read: (Option<String>, Option<String>, Option<String>, Vec<String>, bool, bool) = sqlx::query_as(
        "SELECT portico.sub(), portico.org_id(), portico.product(), portico.roles(),
                portico.has_permission('write:contacts'), portico.has_permission('admin')",
    )
    .fetch_one(&mut *tx)
    .await
    .unwrap();
    assert_eq!(
        read,
        (
            Some("usr_ada".into()),
            Some("ten_acme".into()),
            Some(CRM.into()),
            vec!["editor".to_owned()],
            true,
            false
        )
    );
    let (claims,): (serde_json::Value,) = sqlx::query_as("SELECT portico.claims()").fetch_one(&mut *tx).await.unwrap();
    assert_eq!(claims["org_id"], "ten_acme");
    tx.commit().await.unwrap();
    // The pool has one connection: the next statement runs on the same one, settings gone.
    let after: (Option<String>, Option<String>, Option<serde_json::Value>, Vec<String>, bool, i64) = sqlx::query_as(
        "SELECT portico.sub(), portico.org_id(), portico.claims(), portico.roles(), portico.has_permission('write:contacts'),
                (SELECT count(*) FROM contacts)",
    )
    .fetch_one(&f.app)
    .await
    .unwrap();
    assert_eq!(after, (None, None, None, vec![], false, 0));
    // Claims set by hand to something odd still fail closed.
    let mut tx = f.app.begin().await.unwrap();
    sqlx::query("SELECT set_config('request.jwt.claims', '{\"roles\": \"admin\", \"permissions\": 7}', true)")
        .execute(&mut *tx)
        .await
        .unwrap();
    let odd: (Vec<String>, bool) = sqlx::query_as("SELECT portico.roles(), portico.has_permission('admin')")
        .fetch_one(&mut *tx)
        .await
        .unwrap();
    assert_eq!(odd, (vec![], false));
    drop(tx);
    f.finish().await;
}

#[tokio::test]
async fn the_self_check_refuses_roles_and_tables_that_would_bypass_rls() {
    let Some(f) = Fixture::new().await else { return };
    let unsafe_report = |r: Result<rls::Report, SelfCheckError>| match r {
        Err(SelfCheckError::Unsafe(report)) => report,
        other => panic!("expected a refusal, got {other:?}"),
    };
    let report = unsafe_report(rls::self_check(&f.admin, &[]).await);
    assert!(report.superuser, "{report:?}");
    let (group, login) = &f.roles;
    sqlx::raw_sql(&format!(
        "CREATE TABLE leaky (id int, org_id text); GRANT SELECT ON leaky TO {group};
         CREATE VIEW everything AS SELECT * FROM contacts; GRANT SELECT ON everything TO {group};
         CREATE VIEW careful WITH (security_invoker = true) AS SELECT * FROM contacts; GRANT SELECT ON careful TO {group};
         CREATE TABLE mine (id int); ALTER TABLE mine OWNER TO {login}; ALTER TABLE mine ENABLE ROW LEVEL SECURITY;"
    ))
    .execute(&f.admin)
    .await
    .unwrap();
    let report = unsafe_report(rls::self_check(&f.app, &[]).await);
    assert_eq!(report.tables_without_rls, ["public.leaky"]);
    assert_eq!(report.views_without_security_invoker, ["public.everything"]);
    assert_eq!(report.owned_without_force, ["public.mine"]);
    assert_eq!(report.truncatable, ["public.mine"], "its owner may truncate it");
    assert!(!report.superuser && !report.bypass_rls);
    let message = SelfCheckError::Unsafe(report).to_string();
    assert!(message.contains("public.leaky") && message.contains("FORCE ROW LEVEL SECURITY"), "{message}");
    sqlx::raw_sql("ALTER TABLE mine FORCE ROW LEVEL SECURITY").execute(&f.admin).await.unwrap();
    // Forced, but without a restrictive policy: no wall.
    let report = unsafe_report(rls::self_check(&f.app, &["public.leaky", "public.everything"]).await);
    assert_eq!(report.tables_without_wall, ["public.mine"]);
    rls::self_check(&f.app, &["public.leaky", "public.everything", "public.mine"]).await.unwrap();
    // TRUNCATE is not held by row-level security.
    sqlx::raw_sql(&format!("GRANT TRUNCATE ON contacts TO {group}"))
        .execute(&f.admin)
        .await
        .unwrap();
    let report = unsafe_report(rls::self_check(&f.app, &["public.leaky", "public.everything", "public.mine"]).await);
    assert_eq!(report.truncatable, ["public.contacts"]);
    sqlx::raw_sql(&format!("REVOKE TRUNCATE ON contacts FROM {group}"))
        .execute(&f.admin)
        .await
        .unwrap();
    // BYPASSRLS through a role the login role is a member of.
    let bypass = format!("{login}_bypass");
    sqlx::raw_sql(&format!("CREATE ROLE {bypass} NOLOGIN BYPASSRLS; GRANT {bypass} TO {login}"))
        .execute(&f.admin)
        .await
        .unwrap();
    let report = unsafe_report(rls::self_check(&f.app, &["public.leaky", "public.everything", "public.mine"]).await);
    assert!(report.bypass_rls);
    sqlx::raw_sql(&format!("REVOKE {bypass} FROM {login}; DROP ROLE {bypass}"))
        .execute(&f.admin)
        .await
        .unwrap();
    f.finish().await;
}
