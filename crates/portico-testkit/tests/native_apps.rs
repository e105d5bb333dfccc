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
post_logout_redirect_uris = ["http://127.0.0.1/logged-out"]

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

/// Signs ada in for the native app at `redirect_uri` in a new browser; returns (authorization
/// response, verifier).
async fn sign_in(s: &TestServer, redirect_uri: &str) -> (String, String) {
    sign_in_with(&mut Browser::new(), s, redirect_uri, &[]).await
}

/// The authorization URL of the native app at `redirect_uri`, and its PKCE verifier.
fn authorize_url(s: &TestServer, redirect_uri: &str, extra: &[(&str, &str)]) -> (String, String) {
    let (verifier, challenge) = pkce();
    let mut query = vec![
        ("response_type", "code"),
        ("client_id", "crm-desktop"),
        ("redirect_uri", redirect_uri),
        ("scope", "openid offline_access"),
        ("state", "n1"),
        ("code_challenge", &challenge),
        ("code_challenge_method", "S256"),
    ];
    query.extend_from_slice(extra);
    let url = format!(
        "{}/oauth2/authorize?{}",
        s.base,
        url::form_urlencoded::Serializer::new(String::new()).extend_pairs(&query).finish()
    );
    (url, verifier)
}

/// Signs ada in (when `b` is not yet) and allows the app on the consent page, which a native app
/// whose redirect proves nothing always gets (RFC 8252 §8.6).
async fn sign_in_with(b: &mut Browser, s: &TestServer, redirect_uri: &str, extra: &[(&str, &str)]) -> (String, String) {
    let (url, verifier) = authorize_url(s, redirect_uri, extra);
    let (mut status, mut loc, mut page) = b.follow(&s.base, url).await;
    if status == 200 && page.contains("name=\"password\"") {
        (status, loc, page) = b.login(&s.base, &page, "ada@example.test", "correct horse battery staple").await;
    }
    if status == 200 && page.contains("Allow access?") {
        (status, loc, page) = allow(b, s, &page).await;
    }
    assert!((300..400).contains(&status), "no authorization response ({status}): {page}");
    (loc.expect("authorization response"), verifier)
}

async fn allow(b: &mut Browser, s: &TestServer, page: &str) -> (u16, Option<String>, String) {
    let (csrf, req) = (hidden(page, "csrf").unwrap(), hidden(page, "req").unwrap());
    let (status, loc, body) = b
        .post_form(&format!("{}/consent", s.base), &[("csrf", &csrf), ("req", &req), ("decision", "allow")])
        .await;
    match loc {
        Some(l) if l.starts_with('/') => b.follow(&s.base, format!("{}{l}", s.base)).await,
        other => (status, other, body),
    }
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

async fn a_native_app_whose_redirect_proves_nothing_is_asked_every_time(s: &TestServer) {
    // Any app on the device can listen on a loopback port or claim a private-use scheme, and send
    // this client_id with a PKCE pair of its own: the user is asked each time, first-party or not.
    let mut b = Browser::new();
    sign_in_with(&mut b, s, "http://127.0.0.1:53412/callback", &[]).await;
    for uri in ["http://127.0.0.1:40001/callback", "com.example.crm:/oauth2redirect"] {
        let (url, _) = authorize_url(s, uri, &[]);
        let (status, loc, page) = b.follow(&s.base, url).await;
        assert_eq!((status, loc), (200, None), "{uri}");
        assert!(page.contains("Allow access?") && page.contains("crm-desktop"), "{uri}: {page}");
        // Silently, it cannot be: consent_required, no code.
        let (url, _) = authorize_url(s, uri, &[("prompt", "none")]);
        let (_, loc, _) = b.follow(&s.base, url).await;
        let loc = loc.expect("an error at the redirect URI");
        assert_eq!(query_param(&loc, "error").as_deref(), Some("consent_required"), "{loc}");
        assert_eq!(query_param(&loc, "code"), None);
    }
    // A claimed https redirect is the app's own (the operating system verified the claim): a
    // first-party app signs in silently there.
    let (url, _) = authorize_url(s, "https://app.crm.example.test/native", &[("prompt", "none")]);
    let (_, loc, _) = b.follow(&s.base, url).await;
    assert!(query_param(&loc.unwrap(), "code").is_some());
}
both_stores!(a_native_app_whose_redirect_proves_nothing_is_asked_every_time, crate::native_apps::NATIVE_SUITE);

async fn a_native_app_signs_out_to_its_loopback_redirect_at_any_port(s: &TestServer) {
    let mut b = Browser::new();
    let (resp, verifier) = sign_in_with(&mut b, s, "http://127.0.0.1:53412/callback", &[]).await;
    let code = query_param(&resp, "code").unwrap();
    let (_, tokens) = redeem(s, &code, "http://127.0.0.1:53412/callback", &verifier).await;
    let hint = tokens["id_token"].as_str().unwrap();
    let logout = |redirect: &str| {
        format!(
            "{}/oauth2/logout?id_token_hint={hint}&post_logout_redirect_uri={}&state=bye",
            s.base,
            urlenc(redirect)
        )
    };
    // Off by one character: an error page, and still signed in.
    for bad in [
        "http://127.0.0.1:53412/logged-ou",
        "http://localhost:53412/logged-out",
        "http://127.0.0.1:053412/logged-out",
    ] {
        let (status, loc, _) = b.get(&logout(bad)).await;
        assert!(status >= 400 && loc.is_none(), "{bad}: {status}");
    }
    let (status, loc, _) = b.get(&logout("http://127.0.0.1:53412/logged-out")).await;
    assert_eq!((status, loc.as_deref()), (303, Some("http://127.0.0.1:53412/logged-out?state=bye")));
}
both_stores!(a_native_app_signs_out_to_its_loopback_redirect_at_any_port, crate::native_apps::NATIVE_SUITE);
