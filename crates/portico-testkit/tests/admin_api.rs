//! The admin API (`/api/v1/grants`, `/api/v1/users/{id}/disable`): authenticated by tokens for the
//! built-in `portico-admin` product; grant changes and deprovisioning take effect at once
//! (invariants 3, 4 and 8).

use crate::flow::decode_payload;
use crate::tenancy::{CRM_SECRET, REPORTS_SECRET, TENANTS, refresh, tokens};
use crate::*;
use std::sync::LazyLock;

pub const OPS_SECRET: &str = "ops-bot-secret-0123456789abcdef0123456789";
const AUDIT_SECRET: &str = "audit-bot-secret-0123456789abcdef01234567";

/// The tenants suite plus two automation clients of `portico-admin`: one admin, one viewer.
pub static ADMIN: LazyLock<String> = LazyLock::new(|| {
    format!(
        "{TENANTS}{}",
        r#"
[[client]]
id = "ops-bot"
product = "portico-admin"
kind = "confidential"
secret = "ops-bot-secret-0123456789abcdef0123456789"
grant_types = ["client_credentials"]

[[client]]
id = "audit-bot"
product = "portico-admin"
kind = "confidential"
secret = "audit-bot-secret-0123456789abcdef01234567"
grant_types = ["client_credentials"]

[[grant]]
client = "ops-bot"
product = "portico-admin"
roles = ["admin"]

[[grant]]
client = "audit-bot"
product = "portico-admin"
roles = ["viewer"]
"#
    )
});

pub async fn admin_token(s: &TestServer, client: &str, secret: &str) -> String {
    let (status, t) = post_basic(s, "/oauth2/token", client, secret, &[("grant_type", "client_credentials")]).await;
    assert_eq!(status, 200, "{t}");
    let at = t["access_token"].as_str().unwrap().to_owned();
    assert_eq!(decode_payload(&at)["aud"], format!("{}/api", s.base));
    at
}

/// Sends an admin API request; returns (status, content type, JSON body).
pub async fn api(s: &TestServer, method: &str, path: &str, token: Option<&str>, body: Option<serde_json::Value>) -> (u16, String, serde_json::Value) {
    let http = openidconnect::reqwest::Client::new();
    let mut req = http.request(method.parse().unwrap(), format!("{}{path}", s.base));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    if let Some(b) = body {
        req = req.header("content-type", "application/json").body(b.to_string());
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let ctype = resp.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
    let text = resp.text().await.unwrap_or_default();
    (status, ctype, serde_json::from_str(&text).unwrap_or(serde_json::Value::Null))
}

async fn grant_count(s: &TestServer) -> usize {
    s.store().list_grants().await.unwrap().len()
}

async fn admin_api_refuses_everything_but_a_live_admin_token(s: &TestServer) {
    let before = grant_count(s).await;
    let new = serde_json::json!({"user": "bob@example.test", "product": "reports", "tenant": "acme", "roles": ["analyst"]});
    let (status, ctype, p) = api(s, "POST", "/api/v1/grants", None, Some(new.clone())).await;
    assert_eq!((status, ctype.as_str()), (401, "application/problem+json"));
    assert_eq!(p["status"], 401);
    // A product's token, even a valid one, is not an admin token.
    let crm = tokens(&mut Browser::new(), s, "crm-web", CRM_SECRET, "ada@example.test", Some("acme")).await;
    assert_eq!(api(s, "POST", "/api/v1/grants", crm["access_token"].as_str(), Some(new.clone())).await.0, 401);
    assert_eq!(api(s, "POST", "/api/v1/grants", Some("not-a-jwt"), Some(new.clone())).await.0, 401);
    // A viewer may read, not write.
    let viewer = admin_token(s, "audit-bot", AUDIT_SECRET).await;
    let (status, _, list) = api(s, "GET", "/api/v1/grants?user=ada@example.test", Some(&viewer), None).await;
    assert_eq!(status, 200);
    assert_eq!(list["grants"].as_array().unwrap().len(), 4);
    let (status, ctype, _) = api(s, "POST", "/api/v1/grants", Some(&viewer), Some(new.clone())).await;
    assert_eq!((status, ctype.as_str()), (403, "application/problem+json"));
    // Bad input: a clear problem naming the field, and nothing written.
    let ops = admin_token(s, "ops-bot", OPS_SECRET).await;
    for (body, status, field) in [
        (
            serde_json::json!({"user": "bob@example.test", "product": "reports", "tenant": "acme", "roles": ["owner"]}),
            422,
            Some("roles"),
        ),
        (
            serde_json::json!({"user": "bob@example.test", "product": "reports", "roles": ["analyst"]}),
            422,
            Some("tenant"),
        ),
        (
            serde_json::json!({"user": "bob@example.test", "product": "reports", "tenant": "nowhere"}),
            422,
            Some("tenant"),
        ),
        (serde_json::json!({"user": "bob@example.test", "product": "nothing"}), 422, Some("product")),
        (serde_json::json!({"user": "nobody@example.test", "product": "billing"}), 404, None),
        (
            serde_json::json!({"user": "bob@example.test", "product": "billing", "colour": "red"}),
            400,
            None,
        ),
        (
            serde_json::json!({"user": "bob@example.test", "product": "billing", "expires_at": 1}),
            422,
            Some("expires_at"),
        ),
    ] {
        let (got, ctype, p) = api(s, "POST", "/api/v1/grants", Some(&ops), Some(body.clone())).await;
        assert_eq!((got, ctype.as_str()), (status, "application/problem+json"), "{body} -> {p}");
        assert_eq!(p.get("field").and_then(|f| f.as_str()), field, "{p}");
    }
    assert_eq!(grant_count(s).await, before, "nothing half-written");
    let (status, _, _) = api(s, "POST", "/api/v1/grants", Some(&ops), Some(new)).await;
    assert_eq!(status, 201);
    assert_eq!(grant_count(s).await, before + 1);
}
both_stores!(admin_api_refuses_everything_but_a_live_admin_token, &ADMIN);

async fn revoking_a_grant_ends_refresh_introspection_and_the_product_session(s: &TestServer) {
    let ops = admin_token(s, "ops-bot", OPS_SECRET).await;
    let acme = tokens(&mut Browser::new(), s, "crm-web", CRM_SECRET, "ada@example.test", Some("acme")).await;
    let globex = tokens(&mut Browser::new(), s, "crm-web", CRM_SECRET, "ada@example.test", Some("globex")).await;
    let acme_sid = decode_payload(acme["access_token"].as_str().unwrap())["sid"].as_str().unwrap().to_owned();
    let (status, _, _) = api(s, "DELETE", "/api/v1/grants?user=ada@example.test&product=crm&tenant=acme", Some(&ops), None).await;
    assert_eq!(status, 204);
    let (status, e) = refresh(s, "crm-web", CRM_SECRET, acme["refresh_token"].as_str().unwrap()).await;
    assert_eq!((status, e["error"].as_str()), (400, Some("invalid_grant")));
    for token in [&acme["access_token"], &acme["refresh_token"]] {
        let (_, i) = post_basic(s, "/oauth2/introspect", "crm-web", CRM_SECRET, &[("token", token.as_str().unwrap())]).await;
        assert_eq!(i["active"], false);
    }
    assert!(!s.store().product_session_live(&acme_sid).await.unwrap(), "the product session ended");
    // Only that tenant: Ada's Globex session (another browser) lives on.
    let (status, _) = refresh(s, "crm-web", CRM_SECRET, globex["refresh_token"].as_str().unwrap()).await;
    assert_eq!(status, 200);
    // And a new authorization for Acme is refused.
    let (step, _) = crate::tenancy::start(&mut Browser::new(), s, "crm-web", &[("organization", "acme")], "ada@example.test").await;
    let crate::tenancy::Step::AtClient(loc) = step else { panic!() };
    assert_eq!(query_param(&loc, "error").as_deref(), Some("access_denied"));
    // Revoking again: nothing to revoke.
    let (status, ctype, _) = api(s, "DELETE", "/api/v1/grants?user=ada@example.test&product=crm&tenant=acme", Some(&ops), None).await;
    assert_eq!((status, ctype.as_str()), (404, "application/problem+json"));
    // The audit log says who did it, and records the refused refresh: who asked, from where, why.
    s.running.provider.writer.flush().await;
    let records = s.store().audit_records(0, 10_000).await.unwrap();
    let revoked = records.iter().find(|r| r.event.kind == "grant.revoked").expect("audited");
    assert_eq!(revoked.event.actor, "client:ops-bot");
    assert_eq!(revoked.event.product.as_deref(), Some("crm"));
    let refused = records.iter().find(|r| r.event.kind == "token.refused").expect("the refusal is audited");
    assert_eq!(refused.event.actor, "client:crm-web");
    assert_eq!(refused.event.product.as_deref(), Some("crm"));
    assert_eq!(refused.event.ip.as_deref(), Some("127.0.0.1"));
    assert_eq!(refused.event.data["grant_type"], "refresh_token");
    assert_eq!(refused.event.data["error"], "invalid_grant");
}
both_stores!(revoking_a_grant_ends_refresh_introspection_and_the_product_session, &ADMIN);

async fn disabling_a_user_ends_everything_and_refuses_login(s: &TestServer) {
    let ops = admin_token(s, "ops-bot", OPS_SECRET).await;
    let mut b = Browser::new();
    let crm = tokens(&mut b, s, "crm-web", CRM_SECRET, "ada@example.test", Some("acme")).await;
    let reports = tokens(&mut b, s, "reports-web", REPORTS_SECRET, "-", Some("acme")).await;
    let (ada, _) = s.store().user_by_email("ada@example.test").await.unwrap().unwrap();
    let (status, _, body) = api(s, "POST", &format!("/api/v1/users/{}/disable", ada.id), Some(&ops), None).await;
    assert_eq!((status, body["status"].as_str()), (200, Some("disabled")));
    for (client, secret, t) in [("crm-web", CRM_SECRET, &crm), ("reports-web", REPORTS_SECRET, &reports)] {
        let (status, _) = refresh(s, client, secret, t["refresh_token"].as_str().unwrap()).await;
        assert_eq!(status, 400, "{client} refresh refused");
        let (_, i) = post_basic(s, "/oauth2/introspect", client, secret, &[("token", t["access_token"].as_str().unwrap())]).await;
        assert_eq!(i["active"], false, "{client} access token inactive");
    }
    // The SSO session is gone: prompt=none needs a login, and the login is refused.
    let (step, _) = crate::tenancy::start(&mut b, s, "crm-web", &[("organization", "acme"), ("prompt", "none")], "-").await;
    let crate::tenancy::Step::AtClient(loc) = step else { panic!() };
    assert_eq!(query_param(&loc, "error").as_deref(), Some("login_required"));
    let (step, _) = crate::tenancy::start(&mut Browser::new(), s, "crm-web", &[("organization", "acme")], "ada@example.test").await;
    let crate::tenancy::Step::Page(page) = step else {
        panic!("a disabled user gets no code")
    };
    assert!(page.contains("name=\"password\""), "the login form again, with an error");
    // An unknown user is a 404 problem; re-enabling lets Ada in again (her grants were kept).
    assert_eq!(api(s, "POST", "/api/v1/users/usr_nobody/disable", Some(&ops), None).await.0, 404);
    let (status, _, _) = api(s, "POST", &format!("/api/v1/users/{}/enable", ada.id), Some(&ops), None).await;
    assert_eq!(status, 200);
    tokens(&mut Browser::new(), s, "crm-web", CRM_SECRET, "ada@example.test", Some("acme")).await;
}
both_stores!(disabling_a_user_ends_everything_and_refuses_login, &ADMIN);

async fn an_expired_grant_covers_nothing(s: &TestServer) {
    use portico_protocol::client_auth::ClientCredentials;
    use portico_protocol::token::{TokenRequest, exchange};
    let ops = admin_token(s, "ops-bot", OPS_SECRET).await;
    let until = portico_testkit::now() + 100;
    let new = serde_json::json!({"user": "bob@example.test", "product": "reports", "tenant": "acme", "roles": ["analyst"], "expires_at": until});
    let (status, _, view) = api(s, "POST", "/api/v1/grants", Some(&ops), Some(new)).await;
    assert_eq!((status, view["expires_at"].as_i64()), (201, Some(until)));
    let t = tokens(&mut Browser::new(), s, "reports-web", REPORTS_SECRET, "bob@example.test", None).await;
    let p = &s.running.provider;
    let creds = ClientCredentials {
        basic: Some(("reports-web".into(), portico_model::Secret::new(REPORTS_SECRET))),
        ..Default::default()
    };
    let at = t["access_token"].as_str().unwrap();
    let live = portico_protocol::introspect::introspect(p, &creds, Some(at), until - 1).await.unwrap();
    assert_eq!(live["active"], true);
    let dead = portico_protocol::introspect::introspect(p, &creds, Some(at), until).await.unwrap();
    assert_eq!(dead["active"], false, "inactive from the expiry on");
    let refresh = TokenRequest {
        grant_type: Some("refresh_token".into()),
        refresh_token: t["refresh_token"].as_str().map(str::to_owned),
        ..Default::default()
    };
    let refused = exchange(p, &creds, refresh, until).await.1.unwrap_err();
    assert_eq!(refused.code, portico_protocol::ErrorCode::InvalidGrant);
}
both_stores!(an_expired_grant_covers_nothing, &ADMIN);

async fn revoking_a_client_grant_ends_its_tokens_at_once(s: &TestServer) {
    let ops = admin_token(s, "ops-bot", OPS_SECRET).await;
    let viewer = admin_token(s, "audit-bot", AUDIT_SECRET).await;
    assert_eq!(api(s, "GET", "/api/v1/grants", Some(&viewer), None).await.0, 200);
    let (status, _, _) = api(s, "DELETE", "/api/v1/grants?client=audit-bot&product=portico-admin", Some(&ops), None).await;
    assert_eq!(status, 204);
    let (status, ctype, _) = api(s, "GET", "/api/v1/grants", Some(&viewer), None).await;
    assert_eq!(
        (status, ctype.as_str()),
        (401, "application/problem+json"),
        "the viewer's token died with its grant"
    );
    // No grant, no token: the client gets none at all now.
    let (status, t) = post_basic(s, "/oauth2/token", "audit-bot", AUDIT_SECRET, &[("grant_type", "client_credentials")]).await;
    assert_eq!((status, t["error"].as_str()), (400, Some("invalid_grant")), "{t}");
}
both_stores!(revoking_a_client_grant_ends_its_tokens_at_once, &ADMIN);

async fn forged_admin_tokens_are_refused(s: &TestServer) {
    let before = grant_count(s).await;
    let viewer = admin_token(s, "audit-bot", AUDIT_SECRET).await;
    let new = serde_json::json!({"user": "bob@example.test", "product": "billing", "roles": ["clerk"]});
    // A viewer's token given the write permission, alg none, an algorithm swap: none may write.
    for bad in forgeries(&viewer, |c| {
        c["permissions"] = serde_json::json!(["grants:read", "grants:write", "users:read", "users:disable"])
    }) {
        let (status, ctype, _) = api(s, "POST", "/api/v1/grants", Some(&bad), Some(new.clone())).await;
        assert_eq!((status, ctype.as_str()), (401, "application/problem+json"));
    }
    // A CRM token whose audience is changed to the admin API's.
    let crm = tokens(&mut Browser::new(), s, "crm-web", CRM_SECRET, "ada@example.test", Some("acme")).await;
    let api_aud = format!("{}/api", s.base);
    let [moved, ..] = forgeries(crm["access_token"].as_str().unwrap(), |c| c["aud"] = serde_json::json!(api_aud));
    assert_eq!(api(s, "GET", "/api/v1/grants", Some(&moved), None).await.0, 401);
    assert_eq!(grant_count(s).await, before, "nothing written");
}
both_stores!(forged_admin_tokens_are_refused, &ADMIN);

/// Whether `value` matches `schema` (the subset of JSON Schema the admin API's document uses:
/// `$ref`, object with `required`, `properties` and `additionalProperties: false`, array, string,
/// integer, `enum`); the first mismatch, by path.
fn conforms(doc: &serde_json::Value, schema: &serde_json::Value, value: &serde_json::Value, path: &str) -> Result<(), String> {
    if let Some(r) = schema["$ref"].as_str() {
        let name = r.strip_prefix("#/components/schemas/").expect("a local schema");
        return conforms(doc, &doc["components"]["schemas"][name], value, path);
    }
    if let Some(options) = schema["enum"].as_array()
        && !options.contains(value)
    {
        return Err(format!("{path}: {value} is not one of {options:?}"));
    }
    match schema["type"].as_str() {
        Some("object") => {
            let obj = value.as_object().ok_or(format!("{path}: not an object"))?;
            for req in schema["required"].as_array().into_iter().flatten() {
                if !obj.contains_key(req.as_str().unwrap()) {
                    return Err(format!("{path}: missing {req}"));
                }
            }
            for (k, v) in obj {
                match schema["properties"].get(k) {
                    Some(s) => conforms(doc, s, v, &format!("{path}.{k}"))?,
                    None if schema["additionalProperties"] == false => return Err(format!("{path}: undocumented property {k}")),
                    None => {}
                }
            }
            Ok(())
        }
        Some("array") => value
            .as_array()
            .ok_or(format!("{path}: not an array"))?
            .iter()
            .enumerate()
            .try_for_each(|(i, v)| conforms(doc, &schema["items"], v, &format!("{path}[{i}]"))),
        Some("string") if !value.is_string() => Err(format!("{path}: not a string")),
        Some("integer") if !value.is_i64() => Err(format!("{path}: not an integer")),
        _ => Ok(()),
    }
}

/// The schema the document gives for `method path` answering `status` with `content_type`.
fn documented<'a>(doc: &'a serde_json::Value, method: &str, path: &str, status: u16, content_type: &str) -> &'a serde_json::Value {
    let op = &doc["paths"][path][method];
    assert!(op.is_object(), "{method} {path} is not documented");
    let resp = &op["responses"][status.to_string()];
    assert!(resp.is_object(), "{method} {path} answering {status} is not documented");
    &resp["content"][content_type]["schema"]
}

async fn every_answer_matches_the_openapi_document(s: &TestServer) {
    let http = openidconnect::reqwest::Client::new();
    let resp = http.get(format!("{}/api/v1/openapi.json", s.base)).send().await.unwrap();
    assert_eq!(resp.status(), 200, "the document needs no token");
    let doc: serde_json::Value = serde_json::from_str(&resp.text().await.unwrap()).unwrap();
    assert_eq!(doc["openapi"], "3.1.0");
    assert_eq!(doc["servers"][0]["url"], s.base.as_str());

    let ops = admin_token(s, "ops-bot", OPS_SECRET).await;
    let viewer = admin_token(s, "audit-bot", AUDIT_SECRET).await;
    let (ada, _) = s.store().user_by_email("ada@example.test").await.unwrap().unwrap();
    let (bob, _) = s.store().user_by_email("bob@example.test").await.unwrap().unwrap();
    // Bob has a session with a product in it, so the session list has something to show.
    tokens(&mut Browser::new(), s, "crm-web", CRM_SECRET, "bob@example.test", Some("acme")).await;
    let new = serde_json::json!({"user": "bob@example.test", "product": "reports", "tenant": "acme", "roles": ["analyst"], "expires_at": portico_testkit::now() + 3600});
    // (method, documented path, request path, token, body): successes and each kind of refusal.
    let calls: Vec<(&str, &str, String, Option<&str>, Option<serde_json::Value>)> = vec![
        ("get", "/api/v1/grants", "/api/v1/grants".into(), Some(&ops), None),
        ("get", "/api/v1/grants", "/api/v1/grants?user=ada@example.test".into(), Some(&viewer), None),
        ("get", "/api/v1/grants", "/api/v1/grants".into(), None, None),
        ("get", "/api/v1/grants", "/api/v1/grants?user=nobody@example.test".into(), Some(&ops), None),
        ("post", "/api/v1/grants", "/api/v1/grants".into(), Some(&ops), Some(new.clone())),
        ("post", "/api/v1/grants", "/api/v1/grants".into(), Some(&viewer), Some(new.clone())),
        (
            "post",
            "/api/v1/grants",
            "/api/v1/grants".into(),
            Some(&ops),
            Some(serde_json::json!({"user": "bob@example.test", "product": "reports", "tenant": "mars"})),
        ),
        (
            "post",
            "/api/v1/grants",
            "/api/v1/grants".into(),
            Some(&ops),
            Some(serde_json::json!({"product": "reports", "extra": 1})),
        ),
        (
            "delete",
            "/api/v1/grants",
            "/api/v1/grants?user=bob@example.test&product=reports&tenant=acme".into(),
            Some(&ops),
            None,
        ),
        (
            "delete",
            "/api/v1/grants",
            "/api/v1/grants?user=bob@example.test&product=reports&tenant=acme".into(),
            Some(&ops),
            None,
        ),
        (
            "post",
            "/api/v1/users/{id}/disable",
            format!("/api/v1/users/{}/disable", ada.id),
            Some(&ops),
            None,
        ),
        (
            "post",
            "/api/v1/users/{id}/enable",
            format!("/api/v1/users/{}/enable", ada.id),
            Some(&ops),
            None,
        ),
        (
            "post",
            "/api/v1/users/{id}/disable",
            "/api/v1/users/usr_nobody/disable".into(),
            Some(&ops),
            None,
        ),
        (
            "post",
            "/api/v1/users/{id}/enable",
            format!("/api/v1/users/{}/enable", ada.id),
            Some(&viewer),
            None,
        ),
        (
            "get",
            "/api/v1/users/{id}/sessions",
            format!("/api/v1/users/{}/sessions", bob.id),
            Some(&viewer),
            None,
        ),
        (
            "get",
            "/api/v1/users/{id}/sessions",
            "/api/v1/users/usr_nobody/sessions".into(),
            Some(&viewer),
            None,
        ),
        (
            "delete",
            "/api/v1/users/{id}/sessions/{session}",
            format!("/api/v1/users/{}/sessions/sso_none", bob.id),
            Some(&ops),
            None,
        ),
        (
            "delete",
            "/api/v1/users/{id}/sessions",
            format!("/api/v1/users/{}/sessions", bob.id),
            Some(&viewer),
            None,
        ),
        (
            "delete",
            "/api/v1/users/{id}/sessions",
            format!("/api/v1/users/{}/sessions", bob.id),
            Some(&ops),
            None,
        ),
    ];
    let mut seen = std::collections::BTreeSet::new();
    for (method, documented_path, path, token, body) in calls {
        let (status, ctype, value) = api(s, &method.to_uppercase(), &path, token, body).await;
        seen.insert((method, documented_path, status));
        if status == 204 {
            continue;
        }
        let schema = documented(&doc, method, documented_path, status, &ctype);
        assert!(
            schema.is_object(),
            "{method} {path} answered {status} as {ctype}, which the document does not describe"
        );
        if let Err(e) = conforms(&doc, schema, &value, "$") {
            panic!("{method} {path} answered {status}: {value}\ndoes not match the document: {e}");
        }
    }
    // The calls above reached every documented operation, successes and refusals alike.
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            if path != "/api/v1/openapi.json" {
                assert!(seen.iter().any(|(m, p, _)| m == method && p == path), "{method} {path} untried");
            }
        }
    }
    assert!(seen.iter().filter(|(_, _, st)| *st >= 400).count() >= 6, "refusals were tried: {seen:?}");
}
both_stores!(every_answer_matches_the_openapi_document, &ADMIN);
