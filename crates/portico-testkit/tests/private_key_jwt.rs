//! `private_key_jwt` (RFC 7523 §2.2, OIDC Core §9): servers that authenticate with a key they hold,
//! at every endpoint that authenticates clients; replayed, expired, wrong-audience and wrong-key
//! assertions are `invalid_client`; a `jwks_uri` is fetched, bounded and cached.

use crate::*;
use portico_guard::testing::TestKey;
use serde_json::{Value, json};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// A JWK Set served on 127.0.0.1 (the `jwks_uri` of `ops-remote`), counting fetches.
#[derive(Clone)]
struct Published {
    jwks: Arc<Mutex<Value>>,
    fetches: Arc<AtomicUsize>,
    /// Requests for anything else (answered 404).
    misses: Arc<AtomicUsize>,
    port: u16,
}

impl Published {
    async fn serve(jwks: Value) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let me = Self {
            jwks: Arc::new(Mutex::new(jwks)),
            fetches: Default::default(),
            misses: Default::default(),
            port,
        };
        let served = me.clone();
        let app = axum::Router::new()
            .route(
                "/jwks",
                axum::routing::get(move || {
                    let served = served.clone();
                    async move {
                        served.fetches.fetch_add(1, Ordering::SeqCst);
                        axum::Json(served.jwks.lock().unwrap().clone())
                    }
                }),
            )
            .route(
                "/huge",
                axum::routing::get(|| async { format!("{{\"keys\":[],\"pad\":\"{}\"}}", "x".repeat(300 * 1024)) }),
            )
            .fallback({
                let served = me.clone();
                move || {
                    let served = served.clone();
                    async move {
                        served.misses.fetch_add(1, Ordering::SeqCst);
                        axum::http::StatusCode::NOT_FOUND
                    }
                }
            });
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        me
    }
    fn fetches(&self) -> usize {
        self.fetches.load(Ordering::SeqCst)
    }
}

/// The JWK as a TOML inline table.
fn toml_jwk(jwk: &Value) -> String {
    let fields: Vec<String> = jwk.as_object().unwrap().iter().map(|(k, v)| format!("{k} = {v}")).collect();
    format!("{{ {} }}", fields.join(", "))
}

fn suite(signer: &TestKey, jwks_uri: &str) -> String {
    format!(
        r#"{SUITE}
[[client]]
id = "ops-signer"
product = "reports"
kind = "confidential"
auth_method = "private_key_jwt"
jwks = {{ keys = [{jwk}] }}
redirect_uris = ["{CALLBACK}"]
grant_types = ["authorization_code", "client_credentials"]
first_party = true

[[client]]
id = "ops-remote"
product = "reports"
kind = "confidential"
auth_method = "private_key_jwt"
jwks_uri = "{jwks_uri}"
grant_types = ["client_credentials"]

[[grant]]
client = "ops-signer"
product = "reports"
roles = ["service"]

[[grant]]
client = "ops-remote"
product = "reports"
roles = ["service"]
"#,
        jwk = toml_jwk(&signer.jwk())
    )
}

/// A server whose `ops-signer` holds `signer`, and whose `ops-remote` publishes at `published`.
struct Setup {
    s: TestServer,
    signer: TestKey,
    remote: TestKey,
    published: Published,
}

async fn start(backend: Backend) -> Option<Setup> {
    let (signer, remote) = (TestKey::generate(), TestKey::generate());
    let published = Published::serve(json!({ "keys": [remote.jwk()] })).await;
    let uri = format!("http://127.0.0.1:{}/jwks", published.port);
    let s = TestServer::start(backend, &suite(&signer, &uri)).await?;
    Some(Setup { s, signer, remote, published })
}

macro_rules! both {
    ($name:ident) => {
        mod $name {
            use super::*;
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                let setup = start(Backend::Sqlite).await.expect("sqlite");
                super::$name(&setup).await;
                setup.s.stop().await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                let Some(setup) = start(Backend::Postgres).await else { return };
                super::$name(&setup).await;
                setup.s.stop().await;
            }
        }
    };
}

fn now(s: &TestServer) -> i64 {
    s.running.provider.clock.now()
}

/// The claims of a good assertion of `client` for `s`, good for a minute.
fn claims(s: &TestServer, client: &str) -> Value {
    let now = now(s);
    json!({ "iss": client, "sub": client, "aud": format!("{}/oauth2/token", s.base), "iat": now, "exp": now + 60, "jti": portico_protocol::random::token() })
}

fn sign(key: &TestKey, claims: &Value) -> String {
    key.sign_with_header(&json!({ "alg": "EdDSA", "typ": "JWT", "kid": key.kid }), claims)
}

/// POSTs `form` to `path` with `assertion` as the client's authentication.
async fn post(s: &TestServer, path: &str, assertion: &str, form: &[(&str, &str)]) -> (u16, Value) {
    let mut form = form.to_vec();
    form.extend([("client_assertion_type", JWT_BEARER), ("client_assertion", assertion)]);
    let resp = openidconnect::reqwest::Client::new()
        .post(format!("{}{path}", s.base))
        .form(&form)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    (status, serde_json::from_str(&resp.text().await.unwrap()).unwrap_or(Value::Null))
}

async fn service_token(setup: &Setup, assertion: &str) -> (u16, Value) {
    post(&setup.s, "/oauth2/token", assertion, &[("grant_type", "client_credentials")]).await
}

async fn a_server_authenticates_with_its_key_at_every_endpoint_that_authenticates_clients(setup: &Setup) {
    let s = &setup.s;
    let key = &setup.signer;
    let (status, token) = service_token(setup, &sign(key, &claims(s, "ops-signer"))).await;
    assert_eq!(status, 200, "{token}");
    let access = token["access_token"].as_str().unwrap();
    // The issuer itself is an audience too (RFC 7523 §3: "identifies the authorization server").
    let mut to_issuer = claims(s, "ops-signer");
    to_issuer["aud"] = json!(s.base);
    assert_eq!(service_token(setup, &sign(key, &to_issuer)).await.0, 200);
    let (status, intro) = post(s, "/oauth2/introspect", &sign(key, &claims(s, "ops-signer")), &[("token", access)]).await;
    assert_eq!((status, intro["active"].as_bool()), (200, Some(true)), "{intro}");
    // The hand-off endpoint authenticates the client before it reads the request.
    let (status, body) = post(s, "/oauth2/handoff", &sign(key, &claims(s, "ops-signer")), &[("subject_token", "nothing")]).await;
    assert!(status == 400 && body["error"] != "invalid_client", "{status} {body}");
    let (pkce_verifier, challenge) = pkce();
    let _ = pkce_verifier;
    let par = [
        ("response_type", "code"),
        ("redirect_uri", CALLBACK),
        ("scope", "openid"),
        ("code_challenge", challenge.as_str()),
        ("code_challenge_method", "S256"),
    ];
    let (status, body) = post(s, "/oauth2/par", &sign(key, &claims(s, "ops-signer")), &par).await;
    assert_eq!(status, 201, "{body}");
    let (status, _) = post(s, "/oauth2/revoke", &sign(key, &claims(s, "ops-signer")), &[("token", access)]).await;
    assert_eq!(status, 200);
    let (_, intro) = post(s, "/oauth2/introspect", &sign(key, &claims(s, "ops-signer")), &[("token", access)]).await;
    assert_eq!(intro["active"], false, "revoked");
    // Discovery says so.
    let (_, _, meta) = Browser::new().get(&format!("{}/.well-known/openid-configuration", s.base)).await;
    let meta: Value = serde_json::from_str(&meta).unwrap();
    for m in [
        "token_endpoint_auth_methods_supported",
        "introspection_endpoint_auth_methods_supported",
        "revocation_endpoint_auth_methods_supported",
    ] {
        assert!(meta[m].as_array().unwrap().iter().any(|v| v == "private_key_jwt"), "{m}");
    }
    assert!(
        !meta["token_endpoint_auth_signing_alg_values_supported"]
            .as_array()
            .unwrap()
            .iter()
            .any(|v| v == "HS256" || v == "none")
    );
}
both!(a_server_authenticates_with_its_key_at_every_endpoint_that_authenticates_clients);

async fn replayed_expired_wrong_audience_and_wrong_key_assertions_are_invalid_client(setup: &Setup) {
    let s = &setup.s;
    let key = &setup.signer;
    let refused = |(status, body): (u16, Value), why: &str| {
        assert_eq!((status, body["error"].as_str()), (401, Some("invalid_client")), "{why}: {body}");
    };
    // Replayed: good once.
    let once = sign(key, &claims(s, "ops-signer"));
    assert_eq!(service_token(setup, &once).await.0, 200);
    refused(service_token(setup, &once).await, "replayed");
    // Each claim broken in turn, signed by the right key.
    let now = now(s);
    let broken: [(&str, Box<dyn Fn(&mut Value)>); 13] = [
        ("expired", Box::new(move |c| c["exp"] = json!(now - 31))),
        ("exp an hour away", Box::new(move |c| c["exp"] = json!(now + 3600))),
        ("no exp", Box::new(|c| drop(c.as_object_mut().unwrap().remove("exp")))),
        ("not yet valid", Box::new(move |c| c["nbf"] = json!(now + 120))),
        ("issued in the future", Box::new(move |c| c["iat"] = json!(now + 120))),
        ("another audience", Box::new(|c| c["aud"] = json!("https://crm.example.test"))),
        (
            "portico among others",
            Box::new(|c| {
                let token = c["aud"].clone();
                c["aud"] = json!([token, "https://other-as.example.test"]);
            }),
        ),
        ("no audience", Box::new(|c| drop(c.as_object_mut().unwrap().remove("aud")))),
        (
            "another endpoint of Portico's",
            Box::new(|c| c["aud"] = json!(c["aud"].as_str().unwrap().replace("/token", "/introspect"))),
        ),
        ("iss another client", Box::new(|c| c["iss"] = json!("ops-remote"))),
        ("no jti", Box::new(|c| drop(c.as_object_mut().unwrap().remove("jti")))),
        ("a jti too long", Box::new(|c| c["jti"] = json!("j".repeat(300)))),
        (
            "sub a client with a secret",
            Box::new(|c| {
                c["sub"] = json!("reports-web");
                c["iss"] = json!("reports-web");
            }),
        ),
    ];
    for (why, change) in &broken {
        let mut c = claims(s, "ops-signer");
        change(&mut c);
        refused(service_token(setup, &sign(key, &c)).await, why);
    }
    // Signed by another key under the same kid, or by the other client's key.
    let impostor = TestKey::generate();
    let c = claims(s, "ops-signer");
    refused(
        service_token(setup, &impostor.sign_with_header(&json!({"alg": "EdDSA", "kid": key.kid}), &c)).await,
        "wrong key",
    );
    refused(service_token(setup, &sign(&setup.remote, &claims(s, "ops-signer"))).await, "ops-remote's key");
    // Tampered after signing; `alg: none`; HS256 keyed with the public key; an unknown kid.
    for (forged, why) in forgeries(&sign(key, &claims(s, "ops-signer")), |c| c["jti"] = json!("other"))
        .into_iter()
        .zip(["tampered", "none", "hs256 header"])
    {
        refused(service_token(setup, &forged).await, why);
    }
    let x = key.jwk()["x"].as_str().unwrap().to_owned();
    let hmac = jsonwebtoken::encode(
        &jsonwebtoken::Header {
            kid: Some(key.kid.clone()),
            ..jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256)
        },
        &claims(s, "ops-signer"),
        &jsonwebtoken::EncodingKey::from_secret(x.as_bytes()),
    )
    .unwrap();
    refused(service_token(setup, &hmac).await, "HS256 keyed with the public key");
    refused(
        service_token(setup, &key.sign_with_header(&json!({"alg": "EdDSA", "kid": "nope"}), &claims(s, "ops-signer"))).await,
        "unknown kid",
    );
    refused(service_token(setup, &"a".repeat(9000)).await, "oversized");
    refused(service_token(setup, "not.a.jwt").await, "garbage");
    // Malformed requests: invalid_request, and nothing issued.
    let good = sign(key, &claims(s, "ops-signer"));
    let cases: [(Vec<(&str, &str)>, &str); 4] = [
        (
            vec![
                ("client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:saml2-bearer"),
                ("client_assertion", &good),
            ],
            "other type",
        ),
        (vec![("client_assertion", &good)], "no type"),
        (vec![("client_assertion_type", JWT_BEARER)], "no assertion"),
        (
            vec![("client_assertion_type", JWT_BEARER), ("client_assertion", &good), ("client_id", "ops-remote")],
            "another client_id",
        ),
    ];
    for (auth, why) in cases {
        let mut form = vec![("grant_type", "client_credentials")];
        form.extend(auth);
        let resp = openidconnect::reqwest::Client::new()
            .post(format!("{}/oauth2/token", s.base))
            .form(&form)
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        let body: Value = serde_json::from_str(&resp.text().await.unwrap()).unwrap();
        assert_eq!((status, body["error"].as_str()), (400, Some("invalid_request")), "{why}: {body}");
    }
    // With a secret as well: one method per request.
    let resp = openidconnect::reqwest::Client::new()
        .post(format!("{}/oauth2/token", s.base))
        .basic_auth("reports-web", Some(REPORTS_SECRET))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_assertion_type", JWT_BEARER),
            ("client_assertion", &good),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 400);
    // The assertion refused for its extra method was never spent: it still works alone.
    assert_eq!(service_token(setup, &good).await.0, 200);
}
both!(replayed_expired_wrong_audience_and_wrong_key_assertions_are_invalid_client);

async fn fifty_presentations_of_one_assertion_at_once_get_one_token(setup: &Setup) {
    let s = &setup.s;
    let assertion = sign(&setup.signer, &claims(s, "ops-signer"));
    let answers = futures_util::future::join_all((0..50).map(|_| service_token(setup, &assertion))).await;
    let ok = answers.iter().filter(|(status, _)| *status == 200).count();
    let refused = answers.iter().filter(|(status, b)| *status == 401 && b["error"] == "invalid_client").count();
    assert_eq!((ok, refused), (1, 49), "{answers:?}");
}
both!(fifty_presentations_of_one_assertion_at_once_get_one_token);

async fn a_jwks_uri_is_fetched_once_held_and_fetched_again_for_a_rotated_key(setup: &Setup) {
    let (s, published) = (&setup.s, &setup.published);
    let sign_remote = |key: &TestKey| sign(key, &claims(s, "ops-remote"));
    assert_eq!(service_token(setup, &sign_remote(&setup.remote)).await.0, 200);
    assert_eq!(service_token(setup, &sign_remote(&setup.remote)).await.0, 200);
    assert_eq!(published.fetches(), 1, "held, not fetched per request");
    // The client rotates: its new key is published. Right away, a kid Portico does not hold does
    // not make it fetch again (made-up kids must not make it fetch on every request)...
    let rotated = TestKey::generate();
    *published.jwks.lock().unwrap() = json!({ "keys": [rotated.jwk()] });
    assert_eq!(service_token(setup, &sign_remote(&rotated)).await.0, 401);
    assert_eq!(published.fetches(), 1);
    // ...but after the cooldown, it does, once, and the new key works; the old one no longer.
    s.running
        .provider
        .clock
        .advance(Duration::from_secs(portico_protocol::client_keys::REFETCH_COOLDOWN as u64 + 1));
    assert_eq!(service_token(setup, &sign_remote(&rotated)).await.0, 200);
    assert_eq!(published.fetches(), 2);
    for _ in 0..5 {
        assert_eq!(service_token(setup, &sign(&TestKey::generate(), &claims(s, "ops-remote"))).await.0, 401);
    }
    assert_eq!(published.fetches(), 2, "unknown kids within the cooldown fetch nothing");
    assert_eq!(service_token(setup, &sign_remote(&setup.remote)).await.0, 401, "the retired key");
}
both!(a_jwks_uri_is_fetched_once_held_and_fetched_again_for_a_rotated_key);

async fn a_jwks_uri_that_answers_too_much_or_nothing_authenticates_nobody(setup: &Setup) {
    let s = &setup.s;
    // A URL that answers 404: refused, and the next requests within the cooldown fetch nothing.
    let changed = suite(&setup.signer, &format!("http://127.0.0.1:{}/gone", setup.published.port));
    let parsed = portico_server::suite::Suite::parse("suite.toml", &changed, &Default::default()).unwrap();
    parsed.apply(s.store(), &s.running.provider.kek, "test", now(s)).await.unwrap();
    s.running.provider.reload().await.unwrap();
    for _ in 0..5 {
        assert_eq!(service_token(setup, &sign(&setup.remote, &claims(s, "ops-remote"))).await.0, 401);
    }
    assert_eq!(setup.published.misses.load(Ordering::SeqCst), 1, "one fetch per cooldown, failed or not");
    // The same client pointed at an answer over the size limit, then at a port nobody listens on.
    for uri in [format!("http://127.0.0.1:{}/huge", setup.published.port), "http://127.0.0.1:9/jwks".to_owned()] {
        let changed = suite(&setup.signer, &uri);
        let parsed = portico_server::suite::Suite::parse("suite.toml", &changed, &Default::default()).unwrap();
        parsed.apply(s.store(), &s.running.provider.kek, "test", now(s)).await.unwrap();
        s.running.provider.reload().await.unwrap();
        let (status, body) = service_token(setup, &sign(&setup.remote, &claims(s, "ops-remote"))).await;
        assert_eq!((status, body["error"].as_str()), (401, Some("invalid_client")), "{uri}: {body}");
    }
}
both!(a_jwks_uri_that_answers_too_much_or_nothing_authenticates_nobody);
