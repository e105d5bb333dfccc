//! A service client of a tenant-aware product (`client_credentials` with `organization`): its
//! token names the one tenant its client grant covers, with the same refusals as for users — an
//! unknown and a forbidden tenant answer alike.

use crate::flow::decode_payload;
use crate::tenancy::TENANTS;
use crate::*;
use std::sync::LazyLock;

const BOT_SECRET: &str = "reports-bot-secret-0123456789abcdef012345";
const FEED_SECRET: &str = "reports-feed-secret-0123456789abcdef01234";

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
    let bot = portico_model::Grantee::Client(portico_model::ClientId::new("reports-bot"));
    let acme = s.running.provider.config().tenant_by_ref("acme").unwrap().id.clone();
    let mut tx = s.store().write().await.unwrap();
    let scope = portico_model::GrantScope::One(acme);
    tx.revoke_grant(
        &bot,
        &portico_model::ProductSlug::new("reports"),
        &scope,
        "test",
        portico_testkit::now(),
        &|_: &str| true,
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(introspect(s, &one).await["active"], false);
    assert_eq!(cc(s, "reports-bot", BOT_SECRET, &[("organization", "acme")]).await.0, 400);
    assert_eq!(introspect(s, &every).await["active"], true);
}
both_stores!(a_tenant_service_token_is_live_until_its_grant_is_revoked, &SUITE);
