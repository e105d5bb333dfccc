//! Property: random sequences of grant, revoke, disable, enable, tenant switch, refresh and token
//! exchange never yield a token with a role or tenant the user does not hold at that moment, and
//! authorize gives a token exactly when the user holds the grant (invariants 2–5).
//!
//! One real server (SQLite); each case starts from the same grants. The model below is the oracle.

use crate::flow::decode_payload;
use crate::tenancy::{CRM_SECRET, REPORTS_SECRET, Step, TENANTS, exchange_for, redeem, refresh, start};
use crate::*;
use portico_model::UserStatus;
use portico_protocol::admin::{self, Caller, GrantKey, NewGrant};
use proptest::prelude::*;
use std::collections::BTreeMap;

const PRODUCTS: [(&str, &str, &str, &[&str]); 2] = [
    ("crm", "crm-web", CRM_SECRET, &["editor", "viewer"]),
    ("reports", "reports-web", REPORTS_SECRET, &["analyst", "author"]),
];
const TENANTS_USED: [&str; 2] = ["acme", "globex"];

#[derive(Clone, Debug)]
enum Op {
    Grant { product: usize, tenant: usize, roles: Vec<bool> },
    Revoke { product: usize, tenant: usize },
    Disable,
    Enable,
    Authorize { product: usize, tenant: usize },
    Refresh,
    Exchange,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0..2usize, 0..2usize, prop::collection::vec(any::<bool>(), 2)).prop_map(|(product, tenant, roles)| Op::Grant { product, tenant, roles }),
        (0..2usize, 0..2usize).prop_map(|(product, tenant)| Op::Revoke { product, tenant }),
        Just(Op::Disable),
        Just(Op::Enable),
        (0..2usize, 0..2usize).prop_map(|(product, tenant)| Op::Authorize { product, tenant }),
        (0..2usize, 0..2usize).prop_map(|(product, tenant)| Op::Authorize { product, tenant }),
        Just(Op::Refresh),
        Just(Op::Exchange),
    ]
}

/// What the user holds right now: (product, tenant) → roles, and whether they are active.
#[derive(Default)]
struct Model {
    held: BTreeMap<(usize, usize), Vec<String>>,
    disabled: bool,
}

impl Model {
    fn roles(&self, product: usize, tenant: usize) -> Option<&Vec<String>> {
        if self.disabled { None } else { self.held.get(&(product, tenant)) }
    }
}

/// The roles and tenant a token claims must be exactly those held for its product and tenant.
fn assert_held(m: &Model, t: &serde_json::Value, what: &str) {
    let at = decode_payload(t["access_token"].as_str().unwrap());
    let product = PRODUCTS
        .iter()
        .position(|p| at["aud"] == format!("https://{}.example.test", p.0))
        .expect("known audience");
    let tenant_name = at["org_name"].as_str().expect("a tenant-aware product's token names a tenant");
    let tenant = TENANTS_USED
        .iter()
        .position(|t| *t == if tenant_name == "Acme Bank" { "acme" } else { "globex" })
        .unwrap();
    let roles: Vec<String> = serde_json::from_value(at["roles"].clone()).unwrap();
    let held = m
        .roles(product, tenant)
        .unwrap_or_else(|| panic!("{what}: a token for {tenant_name} in {} the user does not hold: {at}", PRODUCTS[product].0));
    assert_eq!(&roles, held, "{what}: roles");
}

async fn run_case(s: &TestServer, ops: &[Op]) {
    let store = s.store();
    let config = s.running.provider.config();
    let by = Caller {
        actor: "test".into(),
        ..Caller::cli()
    };
    let now = portico_testkit::now();
    // Start every case from the same state: Ada active, holding CRM editor in Acme only.
    admin::set_user_status(store, &config, "ada@example.test", UserStatus::Active, &by, now)
        .await
        .unwrap();
    for g in admin::list_grants(store, &config, Some("ada@example.test")).await.unwrap() {
        if g.status == "active" {
            let key = GrantKey {
                user: Some("ada@example.test".into()),
                client: None,
                product: g.product,
                tenant: g.tenant,
            };
            admin::revoke_grant(store, &config, &key, &by, now).await.unwrap();
        }
    }
    let mut m = Model::default();
    let grant = |product: usize, tenant: usize, roles: Vec<String>| NewGrant {
        user: Some("ada@example.test".into()),
        client: None,
        product: PRODUCTS[product].0.into(),
        tenant: Some(TENANTS_USED[tenant].into()),
        roles,
        expires_at: None,
    };
    admin::add_grant(store, &config, &grant(0, 0, vec!["editor".into()]), &by, now).await.unwrap();
    m.held.insert((0, 0), vec!["editor".into()]);

    let mut b = Browser::new();
    let mut last: Option<(usize, serde_json::Value)> = None;
    for (i, op) in ops.iter().enumerate() {
        let what = format!("step {i} {op:?}");
        match op {
            Op::Grant { product, tenant, roles } => {
                let mut chosen: Vec<String> = PRODUCTS[*product]
                    .3
                    .iter()
                    .zip(roles)
                    .filter(|(_, on)| **on)
                    .map(|(r, _)| r.to_string())
                    .collect();
                chosen.sort();
                admin::add_grant(store, &config, &grant(*product, *tenant, chosen.clone()), &by, now)
                    .await
                    .unwrap();
                m.held.insert((*product, *tenant), chosen);
            }
            Op::Revoke { product, tenant } => {
                let key = grant(*product, *tenant, vec![]).key();
                let done = admin::revoke_grant(store, &config, &key, &by, now).await.is_ok();
                assert_eq!(done, m.held.remove(&(*product, *tenant)).is_some(), "{what}");
            }
            Op::Disable => {
                admin::set_user_status(store, &config, "ada@example.test", UserStatus::Disabled, &by, now)
                    .await
                    .unwrap();
                m.disabled = true;
            }
            Op::Enable => {
                admin::set_user_status(store, &config, "ada@example.test", UserStatus::Active, &by, now)
                    .await
                    .unwrap();
                m.disabled = false;
            }
            Op::Authorize { product, tenant } => {
                let (_, client, secret, _) = PRODUCTS[*product];
                let (step, verifier) = start(&mut b, s, client, &[("organization", TENANTS_USED[*tenant])], "ada@example.test").await;
                match (step, m.roles(*product, *tenant)) {
                    (Step::AtClient(loc), Some(_)) => {
                        let t = redeem(s, client, secret, &loc, &verifier).await;
                        assert_held(&m, &t, &what);
                        last = Some((*product, t));
                    }
                    (Step::AtClient(loc), None) => assert_eq!(query_param(&loc, "error").as_deref(), Some("access_denied"), "{what}"),
                    (Step::Page(page), None) => assert!(m.disabled && page.contains("name=\"password\""), "{what}: {page}"),
                    (Step::Page(page), Some(_)) => panic!("{what}: the grant is held but got a page: {page}"),
                }
            }
            Op::Refresh => {
                let Some((product, t)) = &last else { continue };
                let (_, client, secret, _) = PRODUCTS[*product];
                let (status, r) = refresh(s, client, secret, t["refresh_token"].as_str().unwrap()).await;
                if status == 200 {
                    assert_held(&m, &r, &what);
                    last = Some((*product, r));
                } else {
                    assert_eq!(r["error"], "invalid_grant", "{what}");
                }
            }
            Op::Exchange => {
                let Some((0, t)) = &last else { continue };
                let (status, x) = exchange_for(
                    s,
                    "crm-web",
                    CRM_SECRET,
                    t["access_token"].as_str().unwrap(),
                    &[("resource", "https://reports.example.test")],
                )
                .await;
                if status == 200 {
                    assert_held(&m, &x, &what);
                } else {
                    assert_eq!(x["error"], "invalid_request", "{what}");
                }
            }
        }
    }
}

#[test]
fn random_grant_changes_never_yield_a_role_or_tenant_not_held() {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    // Signing in while disabled is a failed sign-in: hundreds of cases must not trip the throttle.
    let unthrottled = |c: &mut portico_server::config::Config| {
        c.login_account_delay_after = 1_000_000;
        c.login_account_lock_after = 1_000_001;
        c.login_ip_delay_after = 1_000_000;
        c.login_ip_lock_after = 1_000_001;
    };
    let s = rt.block_on(TestServer::start_with(Backend::Sqlite, TENANTS, unthrottled)).expect("server");
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig {
        cases: 32,
        failure_persistence: None,
        ..ProptestConfig::default()
    });
    let result = runner.run(&prop::collection::vec(op(), 1..14), |ops| {
        rt.block_on(run_case(&s, &ops));
        Ok(())
    });
    rt.block_on(s.stop());
    if let Err(e) = result {
        panic!("{e}");
    }
}
