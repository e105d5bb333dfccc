//! Sender-constrained tokens (RFC 9449, DPoP): a proof at the token endpoint binds what it gets to
//! its key; a public client's refresh token refreshes only with that key; userinfo and
//! introspection honour the binding; nonces when the deployment asks for them; portico-guard
//! refuses a bound token presented as a bearer token.

use crate::flow::decode_payload;
use crate::*;
use portico_guard::testing::TestKey;
use serde_json::{Value, json};
use std::sync::LazyLock;

pub static DPOP_SUITE: LazyLock<String> = LazyLock::new(|| {
    format!(
        "{SUITE}\n[[client]]\nid = \"crm-app\"\nproduct = \"crm\"\nkind = \"public\"\nredirect_uris = [\"{CALLBACK}\"]\nfirst_party = true\n\n[[client]]\nid = \"reports-bound\"\nproduct = \"reports\"\nkind = \"confidential\"\nsecret = \"{BOUND_SECRET}\"\ngrant_types = [\"client_credentials\"]\ndpop_bound_access_tokens = true\n\n[[grant]]\nclient = \"reports-bound\"\nproduct = \"reports\"\nroles = [\"service\"]\n"
    )
});
const BOUND_SECRET: &str = "bound-secret-0123456789abcdef0123456789abcd";

/// A DPoP key and the proofs it signs.
struct Holder {
    key: TestKey,
}

impl Holder {
    fn new() -> Self {
        Self { key: TestKey::generate() }
    }
    fn jkt(&self) -> String {
        portico_jose::dpop::thumbprint(&self.key.jwk()).unwrap()
    }
    /// A proof for `htm` `htu`, with these claims changed.
    fn proof_with(&self, htm: &str, htu: &str, change: impl FnOnce(&mut Value, &mut Value)) -> String {
        let mut header = json!({ "typ": "dpop+jwt", "alg": "EdDSA", "jwk": self.key.jwk() });
        let mut claims = json!({ "jti": portico_protocol::random::token(), "htm": htm, "htu": htu, "iat": portico_testkit::now() });
        change(&mut header, &mut claims);
        self.key.sign_with_header(&header, &claims)
    }
    fn proof(&self, htm: &str, htu: &str) -> String {
        self.proof_with(htm, htu, |_, _| {})
    }
    /// A proof for a request to a protected resource with `token`.
    fn proof_for(&self, htm: &str, htu: &str, token: &str) -> String {
        self.proof_with(htm, htu, |_, c| c["ath"] = json!(portico_jose::dpop::access_token_hash(token)))
    }
}

/// POSTs a form to the token endpoint with these `DPoP` headers (and Basic authentication).
async fn token_request(s: &TestServer, basic: Option<(&str, &str)>, proofs: &[&str], form: &[(&str, &str)]) -> (u16, reqwest_headers::Headers, Value) {
    let mut req = openidconnect::reqwest::Client::new().post(format!("{}/oauth2/token", s.base)).form(form);
    if let Some((id, secret)) = basic {
        req = req.basic_auth(id, Some(secret));
    }
    for p in proofs {
        req = req.header("DPoP", *p);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let headers = reqwest_headers::Headers(resp.headers().clone());
    (status, headers, serde_json::from_str(&resp.text().await.unwrap()).unwrap_or(Value::Null))
}

mod reqwest_headers {
    pub struct Headers(pub openidconnect::http::HeaderMap);
    impl Headers {
        pub fn get(&self, name: &str) -> Option<String> {
            self.0.get(name).map(|v| v.to_str().unwrap().to_owned())
        }
    }
}

fn token_url(s: &TestServer) -> String {
    format!("{}/oauth2/token", s.base)
}

/// Signs ada in for crm-app (offline access); returns (code, verifier).
async fn app_code(s: &TestServer) -> (String, String) {
    let (verifier, challenge) = pkce();
    let resp = app_authorize(s, &challenge, &[("scope", "openid offline_access")]).await;
    (query_param(&resp, "code").unwrap(), verifier)
}

/// A bound token set for crm-app, held by `holder`.
async fn bound_tokens(s: &TestServer, holder: &Holder) -> Value {
    let (code, verifier) = app_code(s).await;
    let form = [
        ("grant_type", "authorization_code"),
        ("client_id", "crm-app"),
        ("code", &code),
        ("redirect_uri", CALLBACK),
        ("code_verifier", &verifier),
    ];
    let (status, _, body) = token_request(s, None, &[&holder.proof("POST", &token_url(s))], &form).await;
    assert_eq!(status, 200, "{body}");
    body
}

async fn refresh(s: &TestServer, refresh_token: &str, proofs: &[&str]) -> (u16, Value) {
    let form = [("grant_type", "refresh_token"), ("client_id", "crm-app"), ("refresh_token", refresh_token)];
    let (status, _, body) = token_request(s, None, proofs, &form).await;
    (status, body)
}

async fn a_proof_binds_the_tokens_to_its_key_and_a_public_clients_refresh_token_too(s: &TestServer) {
    let holder = Holder::new();
    let t = bound_tokens(s, &holder).await;
    assert_eq!(t["token_type"], "DPoP");
    let claims = decode_payload(t["access_token"].as_str().unwrap());
    assert_eq!(claims["cnf"]["jkt"], holder.jkt(), "{claims}");
    let rt = t["refresh_token"].as_str().unwrap();
    // Another key, no proof, or a bad one: refused, and the refresh token is not spent.
    let thief = Holder::new();
    let url = token_url(s);
    for proofs in [vec![thief.proof("POST", &url)], vec![], vec![holder.proof("GET", &url)]] {
        let refs: Vec<&str> = proofs.iter().map(String::as_str).collect();
        let (status, body) = refresh(s, rt, &refs).await;
        assert_eq!((status, body["error"].as_str()), (400, Some("invalid_dpop_proof")), "{body}");
    }
    let (status, renewed) = refresh(s, rt, &[&holder.proof("POST", &url)]).await;
    assert_eq!(status, 200, "{renewed}");
    assert_eq!(renewed["token_type"], "DPoP");
    assert_eq!(decode_payload(renewed["access_token"].as_str().unwrap())["cnf"]["jkt"], holder.jkt());
    // Rotation keeps the binding.
    let (status, body) = refresh(s, renewed["refresh_token"].as_str().unwrap(), &[&thief.proof("POST", &url)]).await;
    assert_eq!((status, body["error"].as_str()), (400, Some("invalid_dpop_proof")));
    // Without a proof, the same flow gets plain bearer tokens.
    let (code, verifier) = app_code(s).await;
    let form = [
        ("grant_type", "authorization_code"),
        ("client_id", "crm-app"),
        ("code", &code),
        ("redirect_uri", CALLBACK),
        ("code_verifier", &verifier),
    ];
    let (_, _, plain) = token_request(s, None, &[], &form).await;
    assert_eq!(plain["token_type"], "Bearer");
    assert!(decode_payload(plain["access_token"].as_str().unwrap()).get("cnf").is_none());
}
both_stores!(
    a_proof_binds_the_tokens_to_its_key_and_a_public_clients_refresh_token_too,
    &crate::dpop::DPOP_SUITE
);

async fn a_bad_replayed_or_doubled_proof_gets_nothing_at_the_token_endpoint(s: &TestServer) {
    let holder = Holder::new();
    let url = token_url(s);
    let cc = [("grant_type", "client_credentials")];
    let basic = Some(("reports-web", REPORTS_SECRET));
    let now = portico_testkit::now();
    let private = {
        let mut jwk = holder.key.jwk();
        jwk["d"] = json!("AAAA");
        jwk
    };
    let cases: Vec<(&str, String)> = vec![
        ("another URL", holder.proof("POST", &format!("{}/oauth2/introspect", s.base))),
        ("another method", holder.proof("GET", &url)),
        ("old", holder.proof_with("POST", &url, |_, c| c["iat"] = json!(now - 400))),
        ("from the future", holder.proof_with("POST", &url, |_, c| c["iat"] = json!(now + 120))),
        ("no jti", holder.proof_with("POST", &url, |_, c| drop(c.as_object_mut().unwrap().remove("jti")))),
        ("typ JWT", holder.proof_with("POST", &url, |h, _| h["typ"] = json!("JWT"))),
        ("alg none", holder.proof_with("POST", &url, |h, _| h["alg"] = json!("none"))),
        ("HS256", holder.proof_with("POST", &url, |h, _| h["alg"] = json!("HS256"))),
        ("no jwk", holder.proof_with("POST", &url, |h, _| drop(h.as_object_mut().unwrap().remove("jwk")))),
        ("a private jwk", holder.proof_with("POST", &url, |h, _| h["jwk"] = private.clone())),
        ("another key's jwk", holder.proof_with("POST", &url, |h, _| h["jwk"] = Holder::new().key.jwk())),
        ("not a JWT", "garbage".into()),
    ];
    for (why, proof) in &cases {
        let (status, _, body) = token_request(s, basic, &[proof], &cc).await;
        assert_eq!((status, body["error"].as_str()), (400, Some("invalid_dpop_proof")), "{why}: {body}");
    }
    // Two DPoP headers; then a good proof, good once.
    let (a, b) = (holder.proof("POST", &url), holder.proof("POST", &url));
    let (status, _, body) = token_request(s, basic, &[&a, &b], &cc).await;
    assert_eq!((status, body["error"].as_str()), (400, Some("invalid_dpop_proof")), "two proofs");
    let (status, _, body) = token_request(s, basic, &[&a], &cc).await;
    assert_eq!((status, body["token_type"].as_str()), (200, Some("DPoP")), "{body}");
    assert_eq!(decode_payload(body["access_token"].as_str().unwrap())["cnf"]["jkt"], holder.jkt());
    let (status, _, body) = token_request(s, basic, &[&a], &cc).await;
    assert_eq!((status, body["error"].as_str()), (400, Some("invalid_dpop_proof")), "replayed");
    // A client registered for bound tokens gets none without a proof.
    let bound = Some(("reports-bound", BOUND_SECRET));
    let (status, _, body) = token_request(s, bound, &[], &cc).await;
    assert_eq!((status, body["error"].as_str()), (400, Some("invalid_dpop_proof")));
    let (status, _, body) = token_request(s, bound, &[&holder.proof("POST", &url)], &cc).await;
    assert_eq!((status, body["token_type"].as_str()), (200, Some("DPoP")));
    // Introspection names the key.
    let at = body["access_token"].as_str().unwrap();
    let (status, intro) = post_basic(s, "/oauth2/introspect", "reports-web", REPORTS_SECRET, &[("token", at)]).await;
    assert_eq!(
        (status, intro["active"].as_bool(), intro["token_type"].as_str()),
        (200, Some(true), Some("DPoP"))
    );
    assert_eq!(intro["cnf"]["jkt"], holder.jkt());
}
both_stores!(a_bad_replayed_or_doubled_proof_gets_nothing_at_the_token_endpoint, &crate::dpop::DPOP_SUITE);

/// GET /oauth2/userinfo with this Authorization and DPoP header; (status, WWW-Authenticate).
async fn userinfo(s: &TestServer, authorization: &str, proof: Option<&str>) -> (u16, Option<String>) {
    let mut req = openidconnect::reqwest::Client::new()
        .get(format!("{}/oauth2/userinfo", s.base))
        .header("Authorization", authorization);
    if let Some(p) = proof {
        req = req.header("DPoP", p);
    }
    let resp = req.send().await.unwrap();
    (
        resp.status().as_u16(),
        resp.headers().get("www-authenticate").map(|v| v.to_str().unwrap().to_owned()),
    )
}

async fn userinfo_takes_a_bound_token_only_with_a_proof_of_its_key(s: &TestServer) {
    let holder = Holder::new();
    let t = bound_tokens(s, &holder).await;
    let at = t["access_token"].as_str().unwrap();
    let url = format!("{}/oauth2/userinfo", s.base);
    let dpop = format!("DPoP {at}");
    // As a bearer token: refused, with a DPoP challenge.
    let (status, challenge) = userinfo(s, &format!("Bearer {at}"), None).await;
    assert_eq!(status, 401);
    assert!(
        challenge.as_deref().is_some_and(|c| c.starts_with("DPoP ") && c.contains("invalid_token")),
        "{challenge:?}"
    );
    for (why, proof) in [
        ("no proof", None),
        ("no ath", Some(holder.proof("GET", &url))),
        ("another token's ath", Some(holder.proof_for("GET", &url, "another.token.here"))),
        ("another key", Some(Holder::new().proof_for("GET", &url, at))),
        ("another method", Some(holder.proof_for("POST", &url, at))),
        ("another URL", Some(holder.proof_for("GET", &token_url(s), at))),
    ] {
        let (status, challenge) = userinfo(s, &dpop, proof.as_deref()).await;
        assert_eq!(status, 401, "{why}");
        assert!(challenge.is_some_and(|c| c.starts_with("DPoP ")), "{why}");
    }
    let good = holder.proof_for("GET", &url, at);
    assert_eq!(userinfo(s, &dpop, Some(&good)).await.0, 200);
    assert_eq!(userinfo(s, &dpop, Some(&good)).await.0, 401, "a proof is good once");
    // An unbound token is not taken with the DPoP scheme.
    let plain = code_flow_tokens(s).await;
    let plain_at = plain["access_token"].as_str().unwrap();
    assert_eq!(
        userinfo(s, &format!("DPoP {plain_at}"), Some(&holder.proof_for("GET", &url, plain_at))).await.0,
        401
    );
    assert_eq!(userinfo(s, &format!("Bearer {plain_at}"), None).await.0, 200);
}
both_stores!(userinfo_takes_a_bound_token_only_with_a_proof_of_its_key, &crate::dpop::DPOP_SUITE);

async fn a_deployment_that_asks_for_nonces_gives_and_requires_them(s: &TestServer) {
    let holder = Holder::new();
    let url = token_url(s);
    let cc = [("grant_type", "client_credentials")];
    let basic = Some(("reports-web", REPORTS_SECRET));
    let (status, headers, body) = token_request(s, basic, &[&holder.proof("POST", &url)], &cc).await;
    assert_eq!((status, body["error"].as_str()), (400, Some("use_dpop_nonce")), "{body}");
    let nonce = headers.get("dpop-nonce").expect("a nonce to use");
    let wrong = holder.proof_with("POST", &url, |_, c| c["nonce"] = json!("made-up"));
    assert_eq!(token_request(s, basic, &[&wrong], &cc).await.2["error"], "use_dpop_nonce");
    let with = holder.proof_with("POST", &url, |_, c| c["nonce"] = json!(nonce));
    let (status, headers, body) = token_request(s, basic, &[&with], &cc).await;
    assert_eq!((status, body["token_type"].as_str()), (200, Some("DPoP")), "{body}");
    assert!(headers.get("dpop-nonce").is_some(), "each answer carries the nonce to use next");
    // Userinfo too: a proof without the nonce is told to use one, and given it.
    let at = body["access_token"].as_str().unwrap();
    let resp = openidconnect::reqwest::Client::new()
        .get(format!("{}/oauth2/userinfo", s.base))
        .header("Authorization", format!("DPoP {at}"))
        .header("DPoP", holder.proof_for("GET", &format!("{}/oauth2/userinfo", s.base), at))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 401);
    assert!(resp.headers().get("dpop-nonce").is_some());
    assert!(
        resp.headers()
            .get("www-authenticate")
            .is_some_and(|v| v.to_str().unwrap().contains("use_dpop_nonce"))
    );
    // The nonce of the window before is still good; older ones are not.
    s.running
        .provider
        .clock
        .advance(std::time::Duration::from_secs(portico_protocol::dpop::NONCE_WINDOW as u64));
    let later = |n: &str| {
        holder.proof_with("POST", &url, |_, c| {
            c["nonce"] = json!(n);
            c["iat"] = json!(s.running.provider.clock.now());
        })
    };
    assert_eq!(token_request(s, basic, &[&later(&nonce)], &cc).await.0, 200);
    s.running
        .provider
        .clock
        .advance(std::time::Duration::from_secs(portico_protocol::dpop::NONCE_WINDOW as u64));
    assert_eq!(token_request(s, basic, &[&later(&nonce)], &cc).await.2["error"], "use_dpop_nonce");
}
both_stores_with!(
    a_deployment_that_asks_for_nonces_gives_and_requires_them,
    &crate::dpop::DPOP_SUITE,
    |c: &mut portico_server::config::Config| c.dpop_require_nonce = true
);

/// Signs ada in for crm-app with these extra parameters; returns the authorization response.
async fn app_authorize(s: &TestServer, challenge: &str, extra: &[(&str, &str)]) -> String {
    let mut query = vec![
        ("response_type", "code"),
        ("client_id", "crm-app"),
        ("redirect_uri", CALLBACK),
        ("code_challenge", challenge),
        ("code_challenge_method", "S256"),
    ];
    if !extra.iter().any(|(k, _)| *k == "scope") {
        query.push(("scope", "openid"));
    }
    query.extend_from_slice(extra);
    authorize(&mut Browser::new(), s, &query, "ada@example.test", "correct horse battery staple").await
}

async fn redeem_with(s: &TestServer, code: &str, verifier: &str, proof: &str) -> (u16, Value) {
    let form = [
        ("grant_type", "authorization_code"),
        ("client_id", "crm-app"),
        ("code", code),
        ("redirect_uri", CALLBACK),
        ("code_verifier", verifier),
    ];
    let (status, _, body) = token_request(s, None, &[proof], &form).await;
    (status, body)
}

async fn a_code_bound_with_dpop_jkt_or_a_pushed_proof_is_redeemed_only_with_that_key(s: &TestServer) {
    let (holder, thief) = (Holder::new(), Holder::new());
    let url = token_url(s);
    let jkt = holder.jkt();
    for (who, ok) in [(&thief, false), (&holder, true)] {
        let (verifier, challenge) = pkce();
        let resp = app_authorize(s, &challenge, &[("dpop_jkt", &jkt)]).await;
        let (status, body) = redeem_with(s, &query_param(&resp, "code").unwrap(), &verifier, &who.proof("POST", &url)).await;
        if ok {
            assert_eq!((status, body["token_type"].as_str()), (200, Some("DPoP")), "{body}");
        } else {
            assert_eq!((status, body["error"].as_str()), (400, Some("invalid_grant")), "{body}");
        }
    }
    // Not a thumbprint: an error at the redirect URI.
    let (_, challenge) = pkce();
    let resp = app_authorize(s, &challenge, &[("dpop_jkt", "short")]).await;
    assert_eq!(query_param(&resp, "error").as_deref(), Some("invalid_request"));
    // A proof at the PAR endpoint binds the same way (RFC 9449 §10.1).
    let (verifier, challenge) = pkce();
    let form = [
        ("client_id", "crm-app"),
        ("response_type", "code"),
        ("redirect_uri", CALLBACK),
        ("scope", "openid"),
        ("code_challenge", challenge.as_str()),
        ("code_challenge_method", "S256"),
    ];
    let resp = openidconnect::reqwest::Client::new()
        .post(format!("{}/oauth2/par", s.base))
        .header("DPoP", holder.proof("POST", &format!("{}/oauth2/par", s.base)))
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 201);
    let pushed: Value = serde_json::from_str(&resp.text().await.unwrap()).unwrap();
    let url_par = format!(
        "{}/oauth2/authorize?client_id=crm-app&request_uri={}",
        s.base,
        crate::flow::urlenc(pushed["request_uri"].as_str().unwrap())
    );
    let mut b = Browser::new();
    let (_, _, page) = b.follow(&s.base, url_par).await;
    let (_, loc, _) = b.login(&s.base, &page, "ada@example.test", "correct horse battery staple").await;
    let code = query_param(&loc.unwrap(), "code").unwrap();
    let (status, body) = redeem_with(s, &code, &verifier, &thief.proof("POST", &url)).await;
    assert_eq!((status, body["error"].as_str()), (400, Some("invalid_grant")), "{body}");
}
both_stores!(
    a_code_bound_with_dpop_jkt_or_a_pushed_proof_is_redeemed_only_with_that_key,
    &crate::dpop::DPOP_SUITE
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn portico_guard_takes_a_bound_token_only_with_a_proof_of_its_key_for_the_request() {
    use portico_guard::{Reason, Refusal};
    let s = TestServer::start(Backend::Sqlite, &DPOP_SUITE).await.unwrap();
    let holder = Holder::new();
    let t = bound_tokens(&s, &holder).await;
    let at = t["access_token"].as_str().unwrap();
    let guard = portico_guard::Guard::connect(&s.base, "https://crm.example.test").await.unwrap();
    let url = "https://crm.example.test/contacts";
    let refused = Err(Refusal::Unauthorized(Reason::DpopProof));
    // As a bearer token: refused.
    assert_eq!(guard.verify(at).await, Err(Refusal::Unauthorized(Reason::DpopBound)));
    let good = holder.proof_for("GET", url, at);
    let p = guard.verify_dpop(at, &good, "GET", "/contacts").await.expect("a bound token with its proof");
    assert!(p.sub.starts_with("usr_"));
    assert_eq!(guard.verify_dpop(at, &good, "GET", "/contacts").await.map(|_| ()), refused.clone(), "replayed");
    for (why, proof, method, path) in [
        (
            "another path",
            holder.proof_for("GET", "https://crm.example.test/other", at),
            "GET",
            "/contacts",
        ),
        (
            "another origin",
            holder.proof_for("GET", "https://evil.example.test/contacts", at),
            "GET",
            "/contacts",
        ),
        ("another method", holder.proof_for("POST", url, at), "GET", "/contacts"),
        ("no ath", holder.proof("GET", url), "GET", "/contacts"),
        ("another key", Holder::new().proof_for("GET", url, at), "GET", "/contacts"),
        ("not a proof", "garbage".to_owned(), "GET", "/contacts"),
    ] {
        assert_eq!(guard.verify_dpop(at, &proof, method, path).await.map(|_| ()), refused.clone(), "{why}");
    }
    // Asked of the issuer too (introspection as crm-web): active while live, with a fresh proof.
    let introspecting = portico_guard::Guard::builder(&s.base, "https://crm.example.test")
        .client_credentials("crm-web", SECRET)
        .connect()
        .await
        .unwrap();
    let p = introspecting
        .verify_dpop_introspected(at, &holder.proof_for("GET", url, at), "GET", "/contacts")
        .await;
    assert!(p.is_ok(), "{p:?}");
    assert_eq!(
        introspecting.verify_introspected(at).await.map(|_| ()),
        Err(Refusal::Unauthorized(Reason::DpopBound))
    );
    // An unbound token is a bearer token, not a DPoP one.
    let plain = code_flow_tokens(&s).await;
    let plain_at = plain["access_token"].as_str().unwrap();
    assert_eq!(
        guard
            .verify_dpop(plain_at, &holder.proof_for("GET", url, plain_at), "GET", "/contacts")
            .await
            .map(|_| ()),
        refused
    );

    // Through the axum extractor: the scheme and the DPoP header of the request.
    use tower::ServiceExt;
    let app = axum::Router::new()
        .route("/contacts", axum::routing::get(|p: portico_guard::Principal| async move { p.sub.clone() }))
        .with_state(guard);
    let call = |auth: String, proofs: Vec<String>| {
        let app = app.clone();
        async move {
            let mut req = axum::http::Request::get("/contacts").header("authorization", auth);
            for p in proofs {
                req = req.header("dpop", p);
            }
            let resp = app.oneshot(req.body(axum::body::Body::empty()).unwrap()).await.unwrap();
            let challenge = resp.headers().get("www-authenticate").map(|v| v.to_str().unwrap().to_owned());
            (resp.status().as_u16(), challenge)
        }
    };
    assert_eq!(call(format!("DPoP {at}"), vec![holder.proof_for("GET", url, at)]).await.0, 200);
    let (status, challenge) = call(format!("Bearer {at}"), vec![]).await;
    assert_eq!(status, 401);
    assert!(challenge.is_some_and(|c| c.starts_with("DPoP error=\"invalid_token\"")));
    let (status, challenge) = call(format!("DPoP {at}"), vec![holder.proof_for("GET", url, at), holder.proof_for("GET", url, at)]).await;
    assert_eq!(status, 401, "two proofs");
    assert!(challenge.is_some_and(|c| c.starts_with("DPoP error=\"invalid_dpop_proof\"")));
    assert_eq!(call(format!("DPoP {at}"), vec![]).await.0, 401, "no proof");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_api_takes_a_bound_token_only_with_a_proof_of_its_key() {
    let s = TestServer::start(Backend::Sqlite, &crate::admin_api::ADMIN).await.unwrap();
    let holder = Holder::new();
    let (status, _, t) = token_request(
        &s,
        Some(("ops-bot", crate::admin_api::OPS_SECRET)),
        &[&holder.proof("POST", &token_url(&s))],
        &[("grant_type", "client_credentials")],
    )
    .await;
    assert_eq!((status, t["token_type"].as_str()), (200, Some("DPoP")), "{t}");
    let at = t["access_token"].as_str().unwrap();
    let url = format!("{}/api/v1/grants", s.base);
    let get = |auth: String, proof: Option<String>| {
        let url = url.clone();
        async move {
            let mut req = openidconnect::reqwest::Client::new().get(&url).header("Authorization", auth);
            if let Some(p) = proof {
                req = req.header("DPoP", p);
            }
            req.send().await.unwrap().status().as_u16()
        }
    };
    // A stolen bound token, as a bearer token: nothing.
    assert_eq!(get(format!("Bearer {at}"), None).await, 401);
    assert_eq!(get(format!("DPoP {at}"), None).await, 401, "no proof");
    assert_eq!(
        get(format!("DPoP {at}"), Some(Holder::new().proof_for("GET", &url, at))).await,
        401,
        "another key"
    );
    assert_eq!(
        get(format!("DPoP {at}"), Some(holder.proof_for("DELETE", &url, at))).await,
        401,
        "another method"
    );
    assert_eq!(get(format!("DPoP {at}"), Some(holder.proof_for("GET", &url, at))).await, 200);
    s.stop().await;
}

async fn a_bound_token_is_not_traded_for_an_unbound_one_without_its_proof(s: &TestServer) {
    // crm-web's backend hands its user's bound token to the hand-off endpoint: without a proof
    // of the key it is refused (a thief could otherwise launder it into unbound tokens).
    let holder = Holder::new();
    let (code, verifier) = crm_code(s).await;
    let form = [
        ("grant_type", "authorization_code"),
        ("code", &code),
        ("redirect_uri", CALLBACK),
        ("code_verifier", &verifier),
    ];
    let (status, _, t) = token_request(s, Some(("crm-web", SECRET)), &[&holder.proof("POST", &token_url(s))], &form).await;
    assert_eq!((status, t["token_type"].as_str()), (200, Some("DPoP")), "{t}");
    let at = t["access_token"].as_str().unwrap();
    let (status, body) = post_basic(
        s,
        "/oauth2/handoff",
        "crm-web",
        SECRET,
        &[("subject_token", at), ("resource", "https://reports.example.test")],
    )
    .await;
    assert_eq!((status, body["error"].as_str()), (400, Some("invalid_request")), "{body}");
    assert!(body["error_description"].as_str().unwrap().contains("DPoP-bound"), "{body}");
}
both_stores!(a_bound_token_is_not_traded_for_an_unbound_one_without_its_proof, &crate::dpop::DPOP_SUITE);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn portico_guard_checks_the_path_the_client_asked_for_under_a_nested_router() {
    use tower::ServiceExt;
    let s = TestServer::start(Backend::Sqlite, &DPOP_SUITE).await.unwrap();
    let holder = Holder::new();
    let at = bound_tokens(&s, &holder).await["access_token"].as_str().unwrap().to_owned();
    let guard = portico_guard::Guard::connect(&s.base, "https://crm.example.test").await.unwrap();
    let api = axum::Router::new().route("/contacts", axum::routing::get(|p: portico_guard::Principal| async move { p.sub.clone() }));
    let app = axum::Router::new().nest("/api", api).with_state(guard);
    let call = |proof: String| {
        let (app, at) = (app.clone(), at.clone());
        async move {
            let req = axum::http::Request::get("/api/contacts")
                .header("authorization", format!("DPoP {at}"))
                .header("dpop", proof);
            app.oneshot(req.body(axum::body::Body::empty()).unwrap()).await.unwrap().status().as_u16()
        }
    };
    assert_eq!(
        call(holder.proof_for("GET", "https://crm.example.test/contacts", &at)).await,
        401,
        "the path without its prefix"
    );
    assert_eq!(call(holder.proof_for("GET", "https://crm.example.test/api/contacts", &at)).await, 200);
    s.stop().await;
}
