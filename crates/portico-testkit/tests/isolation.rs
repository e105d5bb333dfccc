//! The isolation matrix: three products (two tenant-aware), three tenants, users with every mix of
//! grants — none, one tenant, several, all tenants, expired, revoked — and, for every (user,
//! client, organization), what authorize, refresh, introspection, token exchange and hand-off
//! give, checked against an oracle written here from the grant table alone (not from Portico's
//! policy code): exactly what the grants allow, roles included, and nothing else.

use crate::flow::decode_payload;
use crate::tenancy::{BILLING_SECRET, CRM_SECRET, REPORTS_SECRET, Step, TENANTS, exchange_for, handoff, redeem, redeem_handoff, refresh, start};
use crate::*;
use std::collections::BTreeSet;
use std::sync::LazyLock;

static MATRIX: LazyLock<String> = LazyLock::new(|| {
    format!(
        "{TENANTS}{}",
        r#"
[[user]]
email = "carol@example.test"
password = "a long enough test password"

[[user]]
email = "dan@example.test"
password = "a long enough test password"

[[user]]
email = "eve@example.test"
password = "a long enough test password"

[[grant]]
user = "dan@example.test"
product = "crm"
tenant = "acme"
roles = ["editor"]
expires = "2020-01-01T00:00:00Z"

[[grant]]
user = "eve@example.test"
product = "crm"
tenant = "acme"
roles = ["editor"]

[[grant]]
user = "eve@example.test"
product = "reports"
tenant = "acme"
roles = ["analyst"]
"#
    )
});

const TENANT_NAMES: [(&str, &str); 3] = [("acme", "Acme Bank"), ("globex", "Globex"), ("initech", "Initech")];

/// The oracle's table: the grants that are in force (dan's expired and eve's revoked CRM grants
/// are deliberately absent). (user, product, tenant slug or "*" or "", roles)
const IN_FORCE: &[(&str, &str, &str, &[&str])] = &[
    ("ada", "crm", "acme", &["editor"]),
    ("ada", "crm", "globex", &["viewer"]),
    ("ada", "reports", "acme", &["analyst", "author"]),
    ("ada", "billing", "", &["clerk"]),
    ("olga", "crm", "*", &["viewer"]),
    ("bob", "crm", "acme", &["viewer"]),
    ("eve", "reports", "acme", &["analyst"]),
];

/// What a user may get for a product: the tenants they may enter, with the roles in each.
fn oracle(user: &str, product: &str) -> Vec<(String, Vec<String>, bool)> {
    let rows: Vec<_> = IN_FORCE.iter().filter(|(u, p, _, _)| *u == user && *p == product).collect();
    if product == "billing" {
        return rows
            .iter()
            .map(|r| (String::new(), r.3.iter().map(|s| s.to_string()).collect(), false))
            .collect();
    }
    let mut out = Vec::new();
    for (slug, _) in TENANT_NAMES {
        let own = rows.iter().find(|r| r.2 == slug);
        let all = rows.iter().find(|r| r.2 == "*");
        if let Some(r) = own.or(all) {
            out.push((slug.to_owned(), r.3.iter().map(|s| s.to_string()).collect(), own.is_none()));
        }
    }
    out
}

/// What authorize must answer for (user, product, organization).
#[derive(Debug, PartialEq)]
enum Expect {
    Token { tenant: String, roles: Vec<String>, all_tenants: bool },
    Picker(BTreeSet<String>),
    Denied,
}

fn expect(user: &str, product: &str, org: Option<&str>) -> Expect {
    let allowed = oracle(user, product);
    if product == "billing" {
        return match allowed.first() {
            Some((_, roles, _)) => Expect::Token {
                tenant: String::new(),
                roles: roles.clone(),
                all_tenants: false,
            },
            None => Expect::Denied,
        };
    }
    let found = match org {
        Some(o) => allowed.iter().find(|(t, _, _)| t == o),
        None if allowed.len() == 1 => allowed.first(),
        None if allowed.len() > 1 => return Expect::Picker(allowed.iter().map(|(t, _, _)| t.clone()).collect()),
        None => None,
    };
    match found {
        Some((tenant, roles, all)) => Expect::Token {
            tenant: tenant.clone(),
            roles: roles.clone(),
            all_tenants: *all,
        },
        None => Expect::Denied,
    }
}

const CLIENTS: [(&str, &str, &str, &str); 3] = [
    ("crm-web", CRM_SECRET, "crm", "https://crm.example.test"),
    ("reports-web", REPORTS_SECRET, "reports", "https://reports.example.test"),
    ("billing-web", BILLING_SECRET, "billing", "https://billing.example.test"),
];

fn slug_of(name: &str) -> String {
    TENANT_NAMES.iter().find(|(_, n)| *n == name).map(|(s, _)| s.to_string()).unwrap_or_default()
}

/// Checks a token response against an expectation; returns the access-token claims.
fn check_token(t: &serde_json::Value, aud: &str, tenant: &str, roles: &[String], all_tenants: bool, what: &str) -> serde_json::Value {
    let at = decode_payload(t["access_token"].as_str().unwrap_or_else(|| panic!("{what}: no access token: {t}")));
    assert_eq!(at["aud"], aud, "{what}: audience");
    let got_roles: Vec<String> = serde_json::from_value(at["roles"].clone()).unwrap();
    assert_eq!(got_roles, roles, "{what}: roles");
    assert_eq!(
        at.get("org_name").and_then(|n| n.as_str()).map(slug_of).unwrap_or_default(),
        tenant,
        "{what}: tenant"
    );
    assert_eq!(at.get("all_tenants").is_some(), all_tenants, "{what}: all_tenants");
    at
}

async fn every_combination_gives_exactly_what_the_grants_allow(s: &TestServer) {
    let store = s.store();
    let (eve, _) = store.user_by_email("eve@example.test").await.unwrap().unwrap();
    let acme = s.running.provider.config().tenant_by_ref("acme").unwrap().id.clone();
    let revoked = committed!(store, t => t.revoke_grant(
        &portico_model::Grantee::User(eve.id),
        &portico_model::ProductSlug::new("crm"),
        &portico_model::GrantScope::One(acme),
        "test",
        portico_testkit::now(),
        &|_| false
    ))
    .await
    .unwrap();
    assert!(revoked);
    let orgs = [None, Some("acme"), Some("globex"), Some("initech"), Some("nowhere")];
    let mut checked = 0;
    for user in ["ada", "bob", "olga", "carol", "dan", "eve"] {
        let email = format!("{user}@example.test");
        let mut b = Browser::new();
        for (client, secret, product, aud) in CLIENTS {
            for org in orgs {
                let what = format!("{user} at {client} in {org:?}");
                let extra: Vec<(&str, &str)> = org.map(|o| vec![("organization", o)]).unwrap_or_default();
                let (step, verifier) = start(&mut b, s, client, &extra, &email).await;
                let expected = expect(user, product, org);
                checked += 1;
                match (step, &expected) {
                    (Step::Page(page), Expect::Picker(tenants)) => {
                        for (slug, name) in TENANT_NAMES {
                            assert_eq!(page.contains(name), tenants.contains(slug), "{what}: picker offers {name}?");
                        }
                    }
                    (Step::AtClient(loc), Expect::Denied) => {
                        assert_eq!(query_param(&loc, "error").as_deref(), Some("access_denied"), "{what}: {loc}");
                    }
                    (Step::AtClient(loc), Expect::Token { tenant, roles, all_tenants }) => {
                        let t = redeem(s, client, secret, &loc, &verifier).await;
                        check_token(&t, aud, tenant, roles, *all_tenants, &what);
                        check_follow_ups(s, user, (client, secret, product), &t, tenant, roles, &what).await;
                    }
                    (Step::Page(page), e) => panic!("{what}: expected {e:?}, got a page: {page}"),
                    (Step::AtClient(loc), e) => panic!("{what}: expected {e:?}, got {loc}"),
                }
            }
        }
    }
    assert_eq!(checked, 6 * 3 * 5);
}
both_stores!(every_combination_gives_exactly_what_the_grants_allow, &MATRIX);

/// Refresh, introspection by every product, token exchange and hand-off for a token just issued.
async fn check_follow_ups(
    s: &TestServer,
    user: &str,
    (client, secret, product): (&str, &str, &str),
    t: &serde_json::Value,
    tenant: &str,
    roles: &[String],
    what: &str,
) {
    let aud = CLIENTS.iter().find(|c| c.2 == product).unwrap().3;
    let all = expect(user, product, Some(tenant))
        == Expect::Token {
            tenant: tenant.to_owned(),
            roles: roles.to_vec(),
            all_tenants: true,
        };
    let (status, r) = refresh(s, client, secret, t["refresh_token"].as_str().unwrap()).await;
    assert_eq!(status, 200, "{what}: refresh {r}");
    check_token(&r, aud, tenant, roles, all, &format!("{what} (refreshed)"));
    let at = r["access_token"].as_str().unwrap();
    for (other, other_secret, other_product, _) in CLIENTS {
        let (_, i) = post_basic(s, "/oauth2/introspect", other, other_secret, &[("token", at)]).await;
        assert_eq!(i["active"], other_product == product, "{what}: introspected by {other}");
    }
    if product != "crm" {
        return;
    }
    // CRM may exchange and hand off to Reports, in the same tenant only.
    let expected = expect(user, "reports", Some(tenant));
    let (status, x) = exchange_for(s, client, secret, at, &[("resource", "https://reports.example.test")]).await;
    let (status_h, h) = handoff(s, at, &[("resource", "https://reports.example.test")]).await;
    match expected {
        Expect::Token {
            tenant: tt,
            roles: rr,
            all_tenants,
        } => {
            assert_eq!(status, 200, "{what}: exchange {x}");
            check_token(&x, "https://reports.example.test", &tt, &rr, all_tenants, &format!("{what} (exchanged)"));
            assert_eq!(status_h, 200, "{what}: hand-off {h}");
            let (status, b) = redeem_handoff(s, "reports-web", REPORTS_SECRET, h["handoff_code"].as_str().unwrap()).await;
            assert_eq!(status, 200, "{what}: hand-off redemption {b}");
            check_token(&b, "https://reports.example.test", &tt, &rr, all_tenants, &format!("{what} (handed off)"));
        }
        _ => {
            assert_eq!((status, x["error"].as_str()), (400, Some("invalid_request")), "{what}: exchange refused");
            assert_eq!((status_h, h["error"].as_str()), (400, Some("invalid_request")), "{what}: hand-off refused");
        }
    }
}
