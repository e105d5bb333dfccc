//! End-to-end tests against a real server on 127.0.0.1, on SQLite and on PostgreSQL.

/// One store capability in a transaction of its own, committed: `committed!(store, t =>
/// t.revoke_family(id, reason, now)).await` is the capability's result.
macro_rules! committed {
    ($store:expr, $t:ident => $call:expr) => {
        async {
            let mut $t = $store.write().await?;
            let out = $call.await?;
            $t.commit().await?;
            Ok::<_, portico_store::StoreError>(out)
        }
    };
}

pub const SECRET: &str = "crm-secret-0123456789abcdef0123456789abcdef";
pub const REPORTS_SECRET: &str = "reports-secret-0123456789abcdef0123456789ab";
pub const CALLBACK: &str = "http://127.0.0.1:9/callback";

pub const SUITE: &str = r#"
[[product]]
slug = "crm"
name = "CRM"
audience = "https://crm.example.test"
[product.roles]
viewer = ["read:contacts"]
editor = ["read:contacts", "write:contacts"]

[[product]]
slug = "reports"
name = "Reports"
audience = "https://reports.example.test"
[product.roles]
analyst = ["read:reports"]
service = ["api:read"]

[[client]]
id = "crm-web"
product = "crm"
kind = "confidential"
secret = "crm-secret-0123456789abcdef0123456789abcdef"
redirect_uris = ["http://127.0.0.1:9/callback"]
grant_types = ["authorization_code", "refresh_token", "client_credentials"]
resources = ["reports"]
first_party = true
signing_alg = "RS256"

[[client]]
id = "reports-web"
product = "reports"
kind = "confidential"
secret = "reports-secret-0123456789abcdef0123456789ab"
redirect_uris = ["http://127.0.0.1:9/callback"]
grant_types = ["authorization_code", "refresh_token", "client_credentials"]
first_party = true

[[client]]
id = "crm-spa"
product = "crm"
kind = "public"
redirect_uris = ["http://127.0.0.1:9/callback"]
first_party = false

[[user]]
email = "ada@example.test"
name = "Ada Lovelace"
password = "correct horse battery staple"

[[user]]
email = "bob@example.test"
name = "Bob"
password = "bob's long enough password"

[[grant]]
user = "ada@example.test"
product = "crm"
roles = ["editor"]

[[grant]]
client = "reports-web"
product = "reports"
roles = ["service"]
"#;

pub use portico_testkit::{Backend, Browser, TestServer, hidden, query_param};

/// Runs `body(&server)` on SQLite and on PostgreSQL, the server started with `suite` and its
/// configuration adjusted by `configure`.
#[macro_export]
macro_rules! both_stores_with {
    ($body:ident, $suite:expr, $configure:expr) => {
        mod $body {
            #[allow(unused_imports)]
            use super::*;
            async fn run(backend: $crate::Backend) {
                let Some(s) = $crate::TestServer::start_with(backend, $suite, $configure).await else {
                    return;
                };
                (super::$body)(&s).await;
                s.stop().await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                run($crate::Backend::Sqlite).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                run($crate::Backend::Postgres).await;
            }
        }
    };
}

/// Runs `f` on SQLite and on PostgreSQL.
#[macro_export]
macro_rules! both_stores {
    ($body:ident) => {
        $crate::both_stores!($body, $crate::SUITE);
    };
    ($body:ident, $suite:expr) => {
        mod $body {
            // The suite expression names constants of the file that invokes the macro.
            #[allow(unused_imports)]
            use super::*;
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                let s = $crate::TestServer::start($crate::Backend::Sqlite, $suite).await.expect("sqlite");
                (super::$body)(&s).await;
                s.stop().await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                let Some(s) = $crate::TestServer::start($crate::Backend::Postgres, $suite).await else {
                    return;
                };
                (super::$body)(&s).await;
                s.stop().await;
            }
        }
    };
}

/// Signs in through the hosted pages and returns the authorization response URL.
pub async fn authorize(b: &mut Browser, s: &TestServer, query: &[(&str, &str)], email: &str, password: &str) -> String {
    let url = format!(
        "{}/oauth2/authorize?{}",
        s.base,
        url::form_urlencoded::Serializer::new(String::new()).extend_pairs(query).finish()
    );
    let (status, loc, page) = b.follow(&s.base, url).await;
    if let Some(l) = loc.filter(|_| (300..400).contains(&status)) {
        return l;
    }
    assert_eq!(status, 200, "expected the login page: {page}");
    let (status, loc, page) = b.login(&s.base, &page, email, password).await;
    assert!((300..400).contains(&status), "login did not redirect ({status}): {page}");
    loc.expect("authorization response")
}

/// A PKCE pair (verifier, S256 challenge).
pub fn pkce() -> (String, String) {
    use base64::Engine;
    let verifier = portico_protocol::random::token();
    let challenge =
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, verifier.as_bytes()).as_ref());
    (verifier, challenge)
}

/// POSTs a form with HTTP Basic client authentication; returns (status, JSON).
pub async fn post_basic(s: &TestServer, path: &str, client: &str, secret: &str, form: &[(&str, &str)]) -> (u16, serde_json::Value) {
    let http = openidconnect::reqwest::Client::new();
    let resp = http
        .post(format!("{}{path}", s.base))
        .basic_auth(client, Some(secret))
        .form(form)
        .send()
        .await
        .expect("POST");
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap_or_default();
    (status, serde_json::from_str(&text).unwrap_or(serde_json::Value::Null))
}

/// Signs ada in for crm-web (offline_access, PKCE S256); returns (code, verifier).
/// Stores a passkey row for `user` straight into the store (its credential is not a real one: for
/// pages that list passkeys and rules that count them).
pub async fn plant_passkey(s: &TestServer, id: &str, user: &portico_model::UserId, name: &str) {
    let row = portico_store::PasskeyRow {
        id: id.into(),
        user_id: user.clone(),
        name: name.into(),
        credential: "{}".into(),
        created_at: portico_testkit::now(),
        last_used_at: None,
    };
    let mut tx = s.store().write().await.unwrap();
    tx.add_passkey(&row).await.unwrap();
    tx.commit().await.unwrap();
}

/// As [`plant_passkey`], with a credential webauthn-rs reads (an ES256 public key no
/// authenticator holds): a ceremony can be started for it, never finished.
pub async fn plant_usable_passkey(s: &TestServer, id: &str, user: &portico_model::UserId) {
    use base64::Engine;
    use webauthn_rs::prelude::*;
    let key = COSEKey {
        type_: COSEAlgorithm::ES256,
        key: COSEKeyType::EC_EC2(COSEEC2Key {
            curve: ECDSACurve::SECP256R1,
            x: vec![1; 32].into(),
            y: vec![2; 32].into(),
        }),
    };
    // webauthn-rs keeps its credential type behind a feature; its stored form is public.
    let passkey = serde_json::json!({"cred": {
        "cred_id": base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(id),
        "cred": key,
        "counter": 0,
        "transports": null,
        "user_verified": true,
        "backup_eligible": false,
        "backup_state": false,
        "registration_policy": "required",
        "extensions": {},
        "attestation": ParsedAttestation::default(),
        "attestation_format": AttestationFormat::None,
    }});
    let parsed: Passkey = serde_json::from_value(passkey.clone()).expect("a passkey webauthn-rs reads");
    assert_eq!(parsed.cred_id().as_ref(), id.as_bytes());
    let row = portico_store::PasskeyRow {
        id: id.into(),
        user_id: user.clone(),
        name: "Usable".into(),
        credential: passkey.to_string(),
        created_at: portico_testkit::now(),
        last_used_at: None,
    };
    let mut tx = s.store().write().await.unwrap();
    tx.add_passkey(&row).await.unwrap();
    tx.commit().await.unwrap();
}

pub async fn crm_code(s: &TestServer) -> (String, String) {
    let mut b = Browser::new();
    let (verifier, challenge) = pkce();
    let resp = authorize(
        &mut b,
        s,
        &[
            ("response_type", "code"),
            ("client_id", "crm-web"),
            ("redirect_uri", CALLBACK),
            ("scope", "openid offline_access"),
            ("state", "s1"),
            ("code_challenge", &challenge),
            ("code_challenge_method", "S256"),
        ],
        "ada@example.test",
        "correct horse battery staple",
    )
    .await;
    (query_param(&resp, "code").expect("code"), verifier)
}

/// Forgeries of a signed JWT: its claims changed by `change` (signature kept), `alg: none`, and its
/// header switched to HS256 (an algorithm swap).
pub fn forgeries(jwt: &str, change: impl FnOnce(&mut serde_json::Value)) -> [String; 3] {
    use base64::Engine;
    let b64url = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let b64 = |v: &serde_json::Value| b64url.encode(v.to_string());
    let parts: Vec<&str> = jwt.split('.').collect();
    let mut claims: serde_json::Value = serde_json::from_slice(&b64url.decode(parts[1]).unwrap()).unwrap();
    change(&mut claims);
    let changed = format!("{}.{}.{}", parts[0], b64(&claims), parts[2]);
    let none = format!("{}.{}.", b64(&serde_json::json!({"alg": "none", "typ": "at+jwt"})), parts[1]);
    let mut header: serde_json::Value = serde_json::from_slice(&b64url.decode(parts[0]).unwrap()).unwrap();
    header["alg"] = serde_json::json!("HS256");
    let swapped = format!("{}.{}.{}", b64(&header), parts[1], parts[2]);
    [changed, none, swapped]
}

/// A full code flow for crm-web with offline_access; returns the token response.
pub async fn code_flow_tokens(s: &TestServer) -> serde_json::Value {
    let (code, verifier) = crm_code(s).await;
    let (status, body) = post_basic(
        s,
        "/oauth2/token",
        "crm-web",
        SECRET,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", CALLBACK),
            ("code_verifier", &verifier),
        ],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    body
}

mod account_mail;
mod admin_api;
mod backchannel;
mod cors;
mod device_flow;
mod dpop;
mod escaping;
mod expiry;
mod flow;
mod grant_properties;
mod guard;
mod handoff_page;
mod http_shape;
mod isolation;
mod keys;
mod logout;
mod logs;
mod native_apps;
mod negatives;
mod par;
mod passkeys;
mod private_key_jwt;
mod refresh_grace;
mod security;
mod service_tenants;
mod session_limits;
mod shutdown;
mod store_conformance;
mod suite_file;
mod tenancy;
mod tenant_domains;
mod tenant_switch;
mod throttle;
mod tls;
mod totp;
mod web_message;
