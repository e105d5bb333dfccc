//! Native apps (RFC 8252): loopback redirects at any port, private-use URI schemes, claimed
//! `https` redirects; public clients with PKCE, never a secret.

use crate::flow::urlenc;
use crate::*;

pub const NATIVE_SUITE: &str = r#"
[[product]]
slug = "crm"
name = "CRM"
audience = "https://crm.example.test"
[product.roles]
editor = ["read:contacts", "write:contacts"]

[[client]]
id = "crm-desktop"
product = "crm"
kind = "public"
application_type = "native"
first_party = true
redirect_uris = ["http://127.0.0.1/callback", "http://[::1]/callback", "com.example.crm:/oauth2redirect", "https://app.crm.example.test/native"]

[[client]]
id = "crm-web"
product = "crm"
kind = "confidential"
secret = "crm-secret-0123456789abcdef0123456789abcdef"
redirect_uris = ["http://127.0.0.1:9/callback"]

[[user]]
email = "ada@example.test"
name = "Ada Lovelace"
password = "correct horse battery staple"

[[grant]]
user = "ada@example.test"
product = "crm"
roles = ["editor"]
"#;

/// Signs ada in for the native app at `redirect_uri`; returns (authorization response, verifier).
async fn sign_in(s: &TestServer, redirect_uri: &str) -> (String, String) {
    let mut b = Browser::new();
    let (verifier, challenge) = pkce();
    let resp = authorize(
        &mut b,
        s,
        &[
            ("response_type", "code"),
            ("client_id", "crm-desktop"),
            ("redirect_uri", redirect_uri),
            ("scope", "openid offline_access"),
            ("state", "n1"),
            ("code_challenge", &challenge),
            ("code_challenge_method", "S256"),
        ],
        "ada@example.test",
        "correct horse battery staple",
    )
    .await;
    (resp, verifier)
}

async fn redeem(s: &TestServer, code: &str, redirect_uri: &str, verifier: &str) -> (u16, serde_json::Value) {
    let http = openidconnect::reqwest::Client::new();
    let resp = http
        .post(format!("{}/oauth2/token", s.base))
        .form(&[
            ("grant_type", "authorization_code"),
            ("client_id", "crm-desktop"),
            ("code", code),
            ("redirect_uri", redirect_uri),
            ("code_verifier", verifier),
        ])
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    (status, serde_json::from_str(&resp.text().await.unwrap()).unwrap_or_default())
}

async fn a_native_app_signs_in_at_any_loopback_port_and_redeems_at_the_same_one(s: &TestServer) {
    for uri in ["http://127.0.0.1:53412/callback", "http://[::1]:8000/callback", "http://127.0.0.1/callback"] {
        let (resp, verifier) = sign_in(s, uri).await;
        assert!(resp.starts_with(&format!("{uri}?")), "the response goes to the port asked for: {resp}");
        let code = query_param(&resp, "code").expect("code");
        let (status, body) = redeem(s, &code, uri, &verifier).await;
        assert_eq!(status, 200, "{uri}: {body}");
        assert_eq!(body["token_type"], "Bearer");
        assert!(body["refresh_token"].is_string(), "{body}");
    }
    // "ensure that their values are identical" (RFC 6749 §4.1.3): the port too.
    for other in ["http://127.0.0.1:53413/callback", "http://127.0.0.1/callback", "http://[::1]:53412/callback"] {
        let (resp, verifier) = sign_in(s, "http://127.0.0.1:53412/callback").await;
        let code = query_param(&resp, "code").expect("code");
        let (status, body) = redeem(s, &code, other, &verifier).await;
        assert_eq!((status, body["error"].as_str()), (400, Some("invalid_grant")), "{other}: {body}");
    }
}
both_stores!(
    a_native_app_signs_in_at_any_loopback_port_and_redeems_at_the_same_one,
    crate::native_apps::NATIVE_SUITE
);

async fn a_private_use_scheme_or_claimed_https_redirect_receives_the_code(s: &TestServer) {
    for uri in ["com.example.crm:/oauth2redirect", "https://app.crm.example.test/native"] {
        let (resp, verifier) = sign_in(s, uri).await;
        assert!(resp.starts_with(&format!("{uri}?code=")), "{resp}");
        assert_eq!(query_param(&resp, "state").as_deref(), Some("n1"));
        let (status, body) = redeem(s, &query_param(&resp, "code").unwrap(), uri, &verifier).await;
        assert_eq!(status, 200, "{body}");
    }
}
both_stores!(
    a_private_use_scheme_or_claimed_https_redirect_receives_the_code,
    crate::native_apps::NATIVE_SUITE
);

async fn a_native_apps_redirect_off_by_one_character_is_an_error_page(s: &TestServer) {
    for bad in [
        "http://127.0.0.1:53412/callback/",
        "http://127.0.0.1:53412/callbacK",
        "http://127.0.0.2:53412/callback",
        "http://localhost:53412/callback",
        "https://127.0.0.1:53412/callback",
        "http://127.0.0.1:53412@evil.test/callback",
        "http://127.0.0.1.evil.test/callback",
        "http://127.0.0.1:0/callback",
        "http://127.0.0.1:053412/callback",
        "http://127.0.0.1:/callback",
        "com.example.crm:/oauth2redirect/",
        "com.example.crm://oauth2redirect",
        "com.example.crn:/oauth2redirect",
        "https://app.crm.example.test:8443/native",
    ] {
        let mut b = Browser::new();
        let (_, c) = pkce();
        let url = format!(
            "{}/oauth2/authorize?response_type=code&client_id=crm-desktop&redirect_uri={}&code_challenge={c}&code_challenge_method=S256",
            s.base,
            urlenc(bad)
        );
        let (status, loc, _) = b.get(&url).await;
        assert_eq!((status, loc.as_deref()), (400, None), "never a redirect for {bad}");
    }
    // The port is free for native apps only: a web application's loopback redirect is exact.
    let mut b = Browser::new();
    let (_, c) = pkce();
    let url = format!(
        "{}/oauth2/authorize?response_type=code&client_id=crm-web&redirect_uri={}&code_challenge={c}&code_challenge_method=S256",
        s.base,
        urlenc("http://127.0.0.1:10/callback")
    );
    assert_eq!(b.get(&url).await.0, 400);
}
both_stores!(a_native_apps_redirect_off_by_one_character_is_an_error_page, crate::native_apps::NATIVE_SUITE);

async fn a_native_app_must_use_pkce_and_has_no_secret(s: &TestServer) {
    let mut b = Browser::new();
    let uri = "http://127.0.0.1:53412/callback";
    let url = format!(
        "{}/oauth2/authorize?response_type=code&client_id=crm-desktop&redirect_uri={}&state=p",
        s.base,
        urlenc(uri)
    );
    let (status, loc, _) = b.get(&url).await;
    let loc = loc.expect("an error at the redirect URI");
    assert!((300..400).contains(&status) && loc.starts_with(uri), "{loc}");
    assert_eq!(query_param(&loc, "error").as_deref(), Some("invalid_request"));
    // A secret presented by a client that has none is not a way in.
    let (resp, verifier) = sign_in(s, uri).await;
    let code = query_param(&resp, "code").unwrap();
    let (status, body) = post_basic(
        s,
        "/oauth2/token",
        "crm-desktop",
        "a-secret-the-app-never-had-0123456789",
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", uri),
            ("code_verifier", &verifier),
        ],
    )
    .await;
    assert_eq!((status, body["error"].as_str()), (401, Some("invalid_client")), "{body}");
}
both_stores!(a_native_app_must_use_pkce_and_has_no_secret, crate::native_apps::NATIVE_SUITE);
