//! A service client of a tenant-aware product (`client_credentials` with `organization`): its
//! token names the one tenant its client grant covers, with the same refusals as for users — an
//! unknown and a forbidden tenant answer alike.

use crate::flow::decode_payload;
use crate::tenancy::TENANTS;
use crate::*;
use std::sync::LazyLock;

const BOT_SECRET: &str = "reports-bot-secret-0123456789abcdef012345";
const FEED_SECRET: &str = "reports-feed-secret-0123456789abcdef01234";
const SPARE_SECRET: &str = "reports-spare-secret-0123456789abcdef0123";

static SUITE: LazyLock<String> = LazyLock::new(|| {
    format!(
        "{TENANTS}{}",
        r#"
[[client]]
id = "reports-bot"
product = "reports"
kind = "confidential"
secret = "reports-bot-secret-0123456789abcdef012345"
grant_types = ["client_credentials"]

[[client]]
id = "reports-feed"
product = "reports"
kind = "confidential"
secret = "reports-feed-secret-0123456789abcdef01234"
grant_types = ["client_credentials"]

[[client]]
id = "reports-spare"
product = "reports"
kind = "confidential"
secret = "reports-spare-secret-0123456789abcdef0123"
grant_types = ["client_credentials"]

[[client]]
id = "billing-bot"
product = "billing"
kind = "confidential"
secret = "billing-bot-secret-0123456789abcdef012345"
grant_types = ["client_credentials"]

[[grant]]
client = "reports-bot"
product = "reports"
tenant = "acme"
roles = ["analyst"]

[[grant]]
client = "reports-feed"
product = "reports"
tenant = "*"
roles = ["analyst"]

[[grant]]
client = "billing-bot"
product = "billing"
roles = ["clerk"]
"#
    )
});

async fn cc(s: &TestServer, client: &str, secret: &str, extra: &[(&str, &str)]) -> (u16, serde_json::Value) {
    let mut form = vec![("grant_type", "client_credentials")];
    form.extend_from_slice(extra);
    post_basic(s, "/oauth2/token", client, secret, &form).await
}

/// reports-bot's token request for acme, on a connection of its own: its status.
async fn cc_at(http: &openidconnect::reqwest::Client, base: &str) -> u16 {
    let form = [("grant_type", "client_credentials"), ("organization", "acme")];
    let resp = http
        .post(format!("{base}/oauth2/token"))
        .basic_auth("reports-bot", Some(BOT_SECRET))
        .form(&form)
        .send()
        .await;
    resp.expect("POST").status().as_u16()
}

async fn a_service_token_names_the_one_tenant_its_grant_covers(s: &TestServer) {
    let acme = s.running.provider.config().tenant_by_ref("acme").unwrap().id.clone();
    let (status, t) = cc(s, "reports-bot", BOT_SECRET, &[("organization", "acme")]).await;
    assert_eq!(status, 200, "{t}");
    let claims = decode_payload(t["access_token"].as_str().unwrap());
    assert_eq!(claims["org_id"], acme.as_str());
    assert_eq!(claims["sub"], "reports-bot");
    assert_eq!(claims["roles"], serde_json::json!(["analyst"]));
    assert!(claims.get("all_tenants").is_none());
    // The tenant's id names it as well as its slug.
    let (status, _) = cc(s, "reports-bot", BOT_SECRET, &[("organization", acme.as_str())]).await;
    assert_eq!(status, 200);

    // Another tenant and no tenant at all answer exactly alike.
    let (s1, forbidden) = cc(s, "reports-bot", BOT_SECRET, &[("organization", "globex")]).await;
    let (s2, unknown) = cc(s, "reports-bot", BOT_SECRET, &[("organization", "no-such-tenant")]).await;
    assert_eq!((s1, s2), (400, 400));
    assert_eq!(forbidden, unknown);
    assert_eq!(forbidden["error"], "invalid_grant");
    // A tenant-aware product's token must name a tenant.
    let (status, e) = cc(s, "reports-bot", BOT_SECRET, &[]).await;
    assert_eq!((status, e["error"].as_str()), (400, Some("invalid_request")), "{e}");
    let (status, e) = cc(s, "reports-bot", BOT_SECRET, &[("organization", "acme"), ("organization", "globex")]).await;
    assert_eq!((status, e["error"].as_str()), (400, Some("invalid_request")), "repeated: {e}");
    // A product without tenants takes no organization.
    let (status, e) = cc(s, "billing-bot", "billing-bot-secret-0123456789abcdef012345", &[("organization", "acme")]).await;
    assert_eq!((status, e["error"].as_str()), (400, Some("invalid_request")), "{e}");
    let (status, e) = cc(s, "billing-bot", "billing-bot-secret-0123456789abcdef012345", &[]).await;
    assert_eq!(status, 200, "{e}");

    // An all-tenants grant enters any one tenant, one per token, marked as such.
    let (status, t) = cc(s, "reports-feed", FEED_SECRET, &[("organization", "globex")]).await;
    assert_eq!(status, 200, "{t}");
    let claims = decode_payload(t["access_token"].as_str().unwrap());
    assert_eq!(claims["org_id"], s.running.provider.config().tenant_by_ref("globex").unwrap().id.as_str());
    assert_eq!(claims["all_tenants"], true);
    let (status, _) = cc(s, "reports-feed", FEED_SECRET, &[("organization", "no-such-tenant")]).await;
    assert_eq!(status, 400);
}
both_stores!(a_service_token_names_the_one_tenant_its_grant_covers, &SUITE);

async fn introspect(s: &TestServer, token: &str) -> serde_json::Value {
    let (status, i) = post_basic(s, "/oauth2/introspect", "reports-web", crate::tenancy::REPORTS_SECRET, &[("token", token)]).await;
    assert_eq!(status, 200, "{i}");
    i
}

async fn a_tenant_service_token_is_live_until_its_grant_is_revoked(s: &TestServer) {
    let (_, one) = cc(s, "reports-bot", BOT_SECRET, &[("organization", "acme")]).await;
    let (_, every) = cc(s, "reports-feed", FEED_SECRET, &[("organization", "globex")]).await;
    let (one, every) = (
        one["access_token"].as_str().unwrap().to_owned(),
        every["access_token"].as_str().unwrap().to_owned(),
    );
    assert_eq!(introspect(s, &one).await["active"], true);
    assert_eq!(introspect(s, &every).await["active"], true);
    // Revoking the tenant's client grant ends its token at once; the other client's stays.
    let acme = s.running.provider.config().tenant_by_ref("acme").unwrap().id.clone();
    change_grant(s.store(), "reports-bot", &acme, false).await;
    assert_eq!(introspect(s, &one).await["active"], false);
    assert_eq!(cc(s, "reports-bot", BOT_SECRET, &[("organization", "acme")]).await.0, 400);
    assert_eq!(introspect(s, &every).await["active"], true);
}
both_stores!(a_tenant_service_token_is_live_until_its_grant_is_revoked, &SUITE);

/// A transaction that puts or revokes one of `client`'s grants for reports, committed.
async fn change_grant(store: &portico_store::Store, client: &str, tenant: &portico_model::TenantId, put: bool) {
    let grantee = portico_model::Grantee::Client(portico_model::ClientId::new(client));
    let (product, scope) = (portico_model::ProductSlug::new("reports"), portico_model::GrantScope::One(tenant.clone()));
    let mut tx = store.write().await.unwrap();
    if put {
        let grant = portico_model::Grant {
            grantee,
            product,
            scope,
            roles: vec!["analyst".into()],
            status: portico_model::GrantStatus::Active,
            granted_by: "test".into(),
            granted_at: portico_testkit::now(),
            expires_at: None,
        };
        tx.put_grant(&grant).await.unwrap();
    } else {
        assert!(
            tx.revoke_grant(&grantee, &product, &scope, "test", portico_testkit::now(), &|_: &str| true)
                .await
                .unwrap()
        );
    }
    tx.commit().await.unwrap();
}

/// Service tokens are issued from client grants held in memory; a grant this process adds or
/// revokes counts for the very next request, a refusal (no grant yet) included.
async fn a_client_grant_added_or_revoked_here_counts_for_the_next_token(s: &TestServer) {
    let acme = s.running.provider.config().tenant_by_ref("acme").unwrap().id.clone();
    let spare = || cc(s, "reports-spare", SPARE_SECRET, &[("organization", "acme")]);
    assert_eq!(spare().await.0, 400, "no grant yet");
    change_grant(s.store(), "reports-spare", &acme, true).await;
    let (status, t) = spare().await;
    assert_eq!(status, 200, "the new grant counts at once: {t}");
    assert_eq!(spare().await.0, 200);
    // On SQLite the rows the tokens were issued from are held, not read again; on PostgreSQL
    // (several nodes) they are read each time.
    let (client, product) = (portico_model::ClientId::new("reports-spare"), portico_model::ProductSlug::new("reports"));
    let (a, b) = (
        s.store().client_grants_for(&client, &product).await.unwrap(),
        s.store().client_grants_for(&client, &product).await.unwrap(),
    );
    assert_eq!(std::sync::Arc::ptr_eq(&a, &b), s.config.database_url.is_none(), "held on SQLite only");
    change_grant(s.store(), "reports-spare", &acme, false).await;
    let (status, e) = spare().await;
    assert_eq!(
        (status, e["error"].as_str()),
        (400, Some("invalid_grant")),
        "the revocation counts at once: {e}"
    );
}
both_stores!(a_client_grant_added_or_revoked_here_counts_for_the_next_token, &SUITE);

/// Another process (`portico apply` on SQLite; a second node on PostgreSQL, where nothing is
/// held) has its own memory: its change to a client grant moves `config_version`, and reaches
/// this one with the configuration reload that sets off (the upkeep polls once a second; the
/// test does not wait for it).
async fn a_client_grant_changed_by_another_process_counts_after_the_reload(s: &TestServer) {
    let acme = s.running.provider.config().tenant_by_ref("acme").unwrap().id.clone();
    let bot = || cc(s, "reports-bot", BOT_SECRET, &[("organization", "acme")]);
    assert_eq!(bot().await.0, 200);
    let (other, _) = portico_server::open_store(&s.config, portico_server::NewKey::Refused)
        .await
        .expect("a second store");
    for (put, status) in [(false, 400), (true, 200)] {
        let before = s.store().config_version().await.unwrap();
        change_grant(&other, "reports-bot", &acme, put).await;
        assert!(s.store().config_version().await.unwrap() > before, "the change moved config_version");
        s.running.provider.reload_if_changed().await.unwrap();
        let (got, body) = bot().await;
        assert_eq!(got, status, "after the reload: {body}");
    }
    other.close().await;
}
both_stores!(a_client_grant_changed_by_another_process_counts_after_the_reload, &SUITE);

/// Fifty token requests racing a revocation: whatever they read while it committed, none issued
/// after its commit returned gets a token.
async fn no_token_after_a_revocation_returns_however_many_race_it(s: &TestServer) {
    let acme = s.running.provider.config().tenant_by_ref("acme").unwrap().id.clone();
    let racing: Vec<_> = (0..50)
        .map(|_| {
            let (base, http) = (s.base.clone(), openidconnect::reqwest::Client::new());
            tokio::spawn(async move { cc_at(&http, &base).await })
        })
        .collect();
    change_grant(s.store(), "reports-bot", &acme, false).await;
    for r in racing {
        assert!(matches!(r.await.unwrap(), 200 | 400));
    }
    let after: Vec<_> = (0..50)
        .map(|_| {
            let (base, http) = (s.base.clone(), openidconnect::reqwest::Client::new());
            tokio::spawn(async move { cc_at(&http, &base).await })
        })
        .collect();
    for r in after {
        assert_eq!(r.await.unwrap(), 400, "a token after the revocation returned");
    }
}
both_stores!(no_token_after_a_revocation_returns_however_many_race_it, &SUITE);
