//! CORS for browser-based clients: discovery and JWKS answer any origin; the token, revocation and
//! UserInfo endpoints answer exactly the origins the requesting client registered, and refuse any
//! other before anything changes; nothing says cookies may cross; introspection, hand-off and the
//! admin API answer no web page. (The browser itself enforces CORS: e2e/tests/cors.test.mjs.)

use crate::*;
use openidconnect::http::HeaderMap;
use serde_json::Value;
use std::sync::LazyLock;

const SPA_ORIGIN: &str = "https://app.example.test";
/// Registered, but by another client (crm-web): a pre-flight passes, the request does not.
const OTHER_ORIGIN: &str = "https://backoffice.example.test";
const EVIL: &str = "https://app.example.test.evil.test";

static CORS_SUITE: LazyLock<String> = LazyLock::new(|| {
    let suite = SUITE.replace(
        "redirect_uris = [\"http://127.0.0.1:9/callback\"]\ngrant_types = [\"authorization_code\", \"refresh_token\", \"client_credentials\"]\nresources = [\"reports\"]",
        &format!("redirect_uris = [\"http://127.0.0.1:9/callback\"]\nweb_origins = [\"{OTHER_ORIGIN}\"]\ngrant_types = [\"authorization_code\", \"refresh_token\", \"client_credentials\"]\nresources = [\"reports\"]"),
    );
    assert_ne!(suite, SUITE, "crm-web is where this test expects it");
    format!(
        "{suite}\n[[client]]\nid = \"crm-browser\"\nproduct = \"crm\"\nkind = \"public\"\nredirect_uris = [\"{CALLBACK}\"]\nweb_origins = [\"{SPA_ORIGIN}\"]\nfirst_party = true\n\n{ADMIN_BOT}"
    )
});
const ADMIN_BOT: &str = "[[client]]\nid = \"ops-bot\"\nproduct = \"portico-admin\"\nkind = \"confidential\"\nsecret = \"ops-bot-secret-0123456789abcdef0123456789\"\ngrant_types = [\"client_credentials\"]\n\n[[grant]]\nclient = \"ops-bot\"\nproduct = \"portico-admin\"\nroles = [\"admin\"]\n";

fn header<'a>(h: &'a HeaderMap, name: &str) -> Option<&'a str> {
    h.get(name).and_then(|v| v.to_str().ok())
}

/// A request as a page on `origin` sends it (no origin: a backend).
async fn send(s: &TestServer, method: &str, path: &str, origin: Option<&str>, headers: &[(&str, &str)], form: &[(&str, &str)]) -> (u16, HeaderMap, Value) {
    let http = openidconnect::reqwest::Client::new();
    let mut req = http.request(method.parse().unwrap(), format!("{}{path}", s.base));
    if let Some(o) = origin {
        req = req.header("Origin", o);
    }
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    if !form.is_empty() {
        req = req.form(form);
    }
    let resp = req.send().await.expect("request");
    let status = resp.status().as_u16();
    let h = resp.headers().clone();
    let text = resp.text().await.unwrap_or_default();
    (status, h, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// What a page on an allowed origin may read: its origin echoed, the headers it reads exposed,
/// never credentials.
fn readable_by(h: &HeaderMap, origin: &str) {
    assert_eq!(header(h, "access-control-allow-origin"), Some(origin), "{h:?}");
    let exposed = header(h, "access-control-expose-headers").unwrap_or("").to_ascii_lowercase();
    assert!(exposed.contains("dpop-nonce") && exposed.contains("www-authenticate"), "{exposed}");
    assert!(h.get_all("vary").iter().any(|v| v.to_str().unwrap().contains("Origin")), "{h:?}");
    assert!(h.get("access-control-allow-credentials").is_none());
}

fn basic(client: &str, secret: &str) -> String {
    use base64::Engine;
    format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{client}:{secret}")))
}

fn unreadable(h: &HeaderMap) {
    assert!(h.get("access-control-allow-origin").is_none(), "{h:?}");
    assert!(h.get("access-control-allow-credentials").is_none());
}

async fn browser_code(s: &TestServer) -> (String, String) {
    let mut b = Browser::new();
    let (verifier, challenge) = pkce();
    let resp = authorize(
        &mut b,
        s,
        &[
            ("response_type", "code"),
            ("client_id", "crm-browser"),
            ("redirect_uri", CALLBACK),
            ("scope", "openid profile offline_access"),
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

/// A fresh code of crm-browser's, as the form that redeems it.
async fn redeemable(s: &TestServer) -> Vec<(&'static str, String)> {
    let (code, verifier) = browser_code(s).await;
    vec![
        ("grant_type", "authorization_code".into()),
        ("client_id", "crm-browser".into()),
        ("code", code),
        ("redirect_uri", CALLBACK.into()),
        ("code_verifier", verifier),
    ]
}

fn as_pairs<'a>(form: &'a [(&'static str, String)]) -> Vec<(&'a str, &'a str)> {
    form.iter().map(|(k, v)| (*k, v.as_str())).collect()
}

async fn public_documents_answer_any_origin(s: &TestServer) {
    for path in ["/.well-known/openid-configuration", "/.well-known/oauth-authorization-server", "/oauth2/jwks"] {
        let (status, h, body) = send(s, "GET", path, Some(EVIL), &[], &[]).await;
        assert_eq!(status, 200, "{path}");
        assert!(body.is_object());
        assert_eq!(header(&h, "access-control-allow-origin"), Some("*"), "{path}");
        assert!(h.get("access-control-allow-credentials").is_none());
        let (status, h, _) = send(s, "OPTIONS", path, Some(EVIL), &[("Access-Control-Request-Method", "GET")], &[]).await;
        assert_eq!((status, header(&h, "access-control-allow-origin")), (204, Some("*")), "{path}");
    }
}
both_stores!(public_documents_answer_any_origin, &CORS_SUITE);

async fn preflights_name_no_client_so_they_pass_any_registered_origin(s: &TestServer) {
    let ask = [
        ("Access-Control-Request-Method", "POST"),
        ("Access-Control-Request-Headers", "dpop, content-type"),
    ];
    for path in [
        "/oauth2/token",
        "/oauth2/revoke",
        "/oauth2/userinfo",
        "/oauth2/par",
        "/oauth2/device_authorization",
    ] {
        for origin in [SPA_ORIGIN, OTHER_ORIGIN] {
            let (status, h, _) = send(s, "OPTIONS", path, Some(origin), &ask, &[]).await;
            assert_eq!(status, 204, "{path}");
            assert_eq!(header(&h, "access-control-allow-origin"), Some(origin), "{path}");
            assert!(header(&h, "access-control-allow-methods").unwrap().contains("POST"));
            let allowed = header(&h, "access-control-allow-headers").unwrap().to_ascii_lowercase();
            assert!(allowed.contains("dpop") && allowed.contains("authorization"), "{allowed}");
            assert!(h.get("access-control-allow-credentials").is_none());
        }
        // An origin no client registered, one a character off, the literal "null" of a sandboxed
        // frame: no CORS header, which the browser takes as a refusal.
        for origin in [
            EVIL,
            "https://app.example.tes",
            "http://app.example.test",
            "https://app.example.test:443",
            "null",
        ] {
            let (status, h, _) = send(s, "OPTIONS", path, Some(origin), &ask, &[]).await;
            assert_eq!(status, 204);
            unreadable(&h);
        }
    }
    // Backend-only endpoints answer no pre-flight.
    for path in ["/oauth2/introspect", "/oauth2/handoff", "/api/v1/grants"] {
        let (status, h, _) = send(s, "OPTIONS", path, Some(SPA_ORIGIN), &ask, &[]).await;
        assert_eq!(status, 405, "{path}");
        unreadable(&h);
    }
}
both_stores!(preflights_name_no_client_so_they_pass_any_registered_origin, &CORS_SUITE);

async fn the_token_endpoint_answers_only_its_clients_origins_and_a_refusal_changes_nothing(s: &TestServer) {
    let form = redeemable(s).await;
    let redeem = as_pairs(&form);
    // Another client's origin, an unregistered one, two Origin headers at once: refused, unreadable.
    for origin in [OTHER_ORIGIN, EVIL, "null"] {
        let (status, h, body) = send(s, "POST", "/oauth2/token", Some(origin), &[], &redeem).await;
        assert_eq!((status, body["error"].as_str()), (400, Some("invalid_request")), "{origin}: {body}");
        unreadable(&h);
    }
    let (status, h, _) = send(s, "POST", "/oauth2/token", Some(SPA_ORIGIN), &[("Origin", SPA_ORIGIN)], &redeem).await;
    assert_eq!(status, 400);
    unreadable(&h);
    // The code was not spent: its own origin redeems it, and may read the answer.
    let (status, h, tokens) = send(s, "POST", "/oauth2/token", Some(SPA_ORIGIN), &[], &redeem).await;
    assert_eq!(status, 200, "{tokens}");
    readable_by(&h, SPA_ORIGIN);
    let refresh = tokens["refresh_token"].as_str().unwrap().to_owned();

    // A refresh from another origin does not rotate the token (rotation would make the
    // browser's copy a reused one and end the whole family).
    let rotate = |rt: &str| {
        vec![
            ("grant_type", "refresh_token".to_owned()),
            ("client_id", "crm-browser".to_owned()),
            ("refresh_token", rt.to_owned()),
        ]
    };
    let form = rotate(&refresh);
    let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let (status, h, _) = send(s, "POST", "/oauth2/token", Some(EVIL), &[], &form).await;
    assert_eq!(status, 400);
    unreadable(&h);
    // A refusal the client earns itself is readable by its own page.
    let (status, h, body) = send(
        s,
        "POST",
        "/oauth2/token",
        Some(SPA_ORIGIN),
        &[],
        &[("grant_type", "refresh_token"), ("client_id", "crm-browser"), ("refresh_token", "nope")],
    )
    .await;
    assert_eq!((status, body["error"].as_str()), (400, Some("invalid_grant")));
    readable_by(&h, SPA_ORIGIN);
    let (status, h, rotated) = send(s, "POST", "/oauth2/token", Some(SPA_ORIGIN), &[], &form).await;
    assert_eq!(status, 200, "{rotated}");
    readable_by(&h, SPA_ORIGIN);

    // A backend (no Origin) is not a cross-origin request: no CORS header at all.
    let reports = basic("reports-web", REPORTS_SECRET);
    let reports = [("Authorization", reports.as_str())];
    let (status, h, _) = send(s, "POST", "/oauth2/token", None, &reports, &[("grant_type", "client_credentials")]).await;
    assert_eq!(status, 200);
    unreadable(&h);
    // A confidential client that registered no origin is not callable from any page.
    let (status, h, _) = send(s, "POST", "/oauth2/token", Some(SPA_ORIGIN), &reports, &[("grant_type", "client_credentials")]).await;
    assert_eq!(status, 400);
    unreadable(&h);
}
both_stores!(the_token_endpoint_answers_only_its_clients_origins_and_a_refusal_changes_nothing, &CORS_SUITE);

async fn revocation_and_userinfo_judge_the_origin_against_their_client(s: &TestServer) {
    let form = redeemable(s).await;
    let redeem = as_pairs(&form);
    let (status, _, tokens) = send(s, "POST", "/oauth2/token", Some(SPA_ORIGIN), &[], &redeem).await;
    assert_eq!(status, 200);
    let access = tokens["access_token"].as_str().unwrap();
    let refresh = tokens["refresh_token"].as_str().unwrap();
    let bearer = format!("Bearer {access}");

    // UserInfo: the token's client decides, not any client.
    for origin in [OTHER_ORIGIN, EVIL] {
        let (status, h, body) = send(s, "GET", "/oauth2/userinfo", Some(origin), &[("Authorization", &bearer)], &[]).await;
        assert_eq!((status, body["error"].as_str()), (400, Some("invalid_request")), "{origin}");
        assert!(body.get("sub").is_none());
        unreadable(&h);
    }
    let (status, h, body) = send(s, "GET", "/oauth2/userinfo", Some(SPA_ORIGIN), &[("Authorization", &bearer)], &[]).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["name"], "Ada Lovelace");
    readable_by(&h, SPA_ORIGIN);
    // A token that does not verify names no client: its refusal is readable by a registered
    // origin (the challenge is exposed), by no other.
    let (status, h, _) = send(s, "GET", "/oauth2/userinfo", Some(SPA_ORIGIN), &[("Authorization", "Bearer not-a-token")], &[]).await;
    assert_eq!(status, 401);
    readable_by(&h, SPA_ORIGIN);
    assert!(header(&h, "www-authenticate").unwrap().contains("invalid_token"));
    let (_, h, _) = send(s, "GET", "/oauth2/userinfo", Some(EVIL), &[("Authorization", "Bearer not-a-token")], &[]).await;
    unreadable(&h);

    // Revocation from another origin revokes nothing.
    let revoke = [("client_id", "crm-browser"), ("token", refresh)];
    for origin in [OTHER_ORIGIN, EVIL] {
        let (status, h, _) = send(s, "POST", "/oauth2/revoke", Some(origin), &[], &revoke).await;
        assert_eq!(status, 400, "{origin}");
        unreadable(&h);
    }
    let introspect = |token: &str| {
        let token = token.to_owned();
        async move { post_basic(s, "/oauth2/introspect", "crm-web", SECRET, &[("token", &token)]).await.1["active"].as_bool() }
    };
    assert_eq!(introspect(refresh).await, Some(true), "a refused revocation left the token alive");
    let (status, h, _) = send(s, "POST", "/oauth2/revoke", Some(SPA_ORIGIN), &[], &revoke).await;
    assert_eq!(status, 200);
    readable_by(&h, SPA_ORIGIN);
    assert_eq!(introspect(refresh).await, Some(false));
}
both_stores!(revocation_and_userinfo_judge_the_origin_against_their_client, &CORS_SUITE);

async fn backend_endpoints_answer_no_web_page(s: &TestServer) {
    let tokens = code_flow_tokens(s).await;
    let access = tokens["access_token"].as_str().unwrap();
    // Introspection: a page that holds the client's secret still reads nothing, and learns nothing.
    let crm = basic("crm-web", SECRET);
    let as_crm = [("Authorization", crm.as_str())];
    let auth = [("token", access)];
    let (status, h, body) = send(s, "POST", "/oauth2/introspect", Some(OTHER_ORIGIN), &as_crm, &auth).await;
    assert_eq!((status, body["error"].as_str()), (400, Some("invalid_request")), "{body}");
    assert!(body.get("active").is_none());
    unreadable(&h);
    let (status, _, body) = send(s, "POST", "/oauth2/introspect", None, &as_crm, &auth).await;
    assert_eq!((status, body["active"].as_bool()), (200, Some(true)));

    // Hand-off: no code is made for a page.
    let form = [("subject_token", access), ("resource", "https://reports.example.test")];
    let (status, h, body) = send(s, "POST", "/oauth2/handoff", Some(OTHER_ORIGIN), &as_crm, &form).await;
    assert_eq!(status, 400, "{body}");
    assert!(body.get("handoff_code").is_none());
    unreadable(&h);

    // The admin API: refused before the token is looked at.
    let ops = basic("ops-bot", "ops-bot-secret-0123456789abcdef0123456789");
    let (status, _, admin) = send(
        s,
        "POST",
        "/oauth2/token",
        None,
        &[("Authorization", &ops)],
        &[("grant_type", "client_credentials")],
    )
    .await;
    assert_eq!(status, 200);
    let bearer = format!("Bearer {}", admin["access_token"].as_str().unwrap());
    let (status, h, body) = send(s, "GET", "/api/v1/grants", Some(OTHER_ORIGIN), &[("Authorization", &bearer)], &[]).await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(header(&h, "content-type"), Some("application/problem+json"));
    unreadable(&h);
    let (status, _, _) = send(s, "GET", "/api/v1/grants", None, &[("Authorization", &bearer)], &[]).await;
    assert_eq!(status, 200);
}
both_stores!(backend_endpoints_answer_no_web_page, &CORS_SUITE);

async fn requests_that_leave_state_behind_come_only_from_their_clients_origins(s: &TestServer) {
    let (_, challenge) = pkce();
    let push = [
        ("client_id", "crm-browser"),
        ("response_type", "code"),
        ("redirect_uri", CALLBACK),
        ("scope", "openid"),
        ("code_challenge", challenge.as_str()),
        ("code_challenge_method", "S256"),
    ];
    // A pushed request from another site: refused, unreadable, nothing pushed.
    for origin in [EVIL, OTHER_ORIGIN] {
        let (status, h, body) = send(s, "POST", "/oauth2/par", Some(origin), &[], &push).await;
        assert_eq!((status, body["error"].as_str()), (400, Some("invalid_request")), "{origin}: {body}");
        assert!(body.get("request_uri").is_none());
        unreadable(&h);
    }
    let (status, h, body) = send(s, "POST", "/oauth2/par", Some(SPA_ORIGIN), &[], &push).await;
    assert_eq!(status, 201, "{body}");
    assert!(
        body["request_uri"]
            .as_str()
            .is_some_and(|u| u.starts_with("urn:ietf:params:oauth:request_uri:"))
    );
    readable_by(&h, SPA_ORIGIN);
    // Device authorization: the same rule (this client may not use the grant: its own page reads
    // why, another site's does not even get that far).
    let ask = [("client_id", "crm-browser"), ("scope", "openid")];
    let (status, h, body) = send(s, "POST", "/oauth2/device_authorization", Some(EVIL), &[], &ask).await;
    assert_eq!((status, body["error"].as_str()), (400, Some("invalid_request")), "{body}");
    assert!(body.get("device_code").is_none());
    unreadable(&h);
    let (status, h, body) = send(s, "POST", "/oauth2/device_authorization", Some(SPA_ORIGIN), &[], &ask).await;
    assert_eq!((status, body["error"].as_str()), (400, Some("unauthorized_client")), "{body}");
    readable_by(&h, SPA_ORIGIN);
}
both_stores!(requests_that_leave_state_behind_come_only_from_their_clients_origins, &CORS_SUITE);
