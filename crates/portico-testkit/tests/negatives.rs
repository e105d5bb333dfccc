//! Attacks on the rules: each must fail with the exact error the RFCs name, and change nothing.

use crate::flow::urlenc;
use crate::*;

async fn redirect_uri_off_by_anything_gets_an_error_page(s: &TestServer) {
    for bad in [
        "http://127.0.0.1:9/callbacK",
        "http://127.0.0.1:9/callback/",
        "http://127.0.0.1:10/callback",
        "http://127.0.0.1:9/callback/x",
        "http://127.0.0.1:9/callback?a=1",
    ] {
        let mut b = Browser::new();
        let (_, c) = pkce();
        let url = format!(
            "{}/oauth2/authorize?response_type=code&client_id=crm-web&redirect_uri={}&code_challenge={c}&code_challenge_method=S256",
            s.base,
            urlenc(bad)
        );
        let (status, loc, _) = b.get(&url).await;
        assert_eq!(status, 400, "{bad}");
        assert!(loc.is_none(), "never a redirect for {bad}");
    }
    let mut b = Browser::new();
    let (status, loc, _) = b
        .get(&format!(
            "{}/oauth2/authorize?response_type=code&client_id=nobody&redirect_uri={}",
            s.base,
            urlenc(CALLBACK)
        ))
        .await;
    assert_eq!((status, loc), (400, None));
}
both_stores!(redirect_uri_off_by_anything_gets_an_error_page);

async fn code_replay_revokes_what_it_issued(s: &TestServer) {
    let (code, verifier) = crm_code(s).await;
    let form = [
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("redirect_uri", CALLBACK),
        ("code_verifier", verifier.as_str()),
    ];
    let (status, first) = post_basic(s, "/oauth2/token", "crm-web", SECRET, &form).await;
    assert_eq!(status, 200);
    let (status, again) = post_basic(s, "/oauth2/token", "crm-web", SECRET, &form).await;
    assert_eq!((status, again["error"].as_str()), (400, Some("invalid_grant")));
    let (_, intro) = post_basic(
        s,
        "/oauth2/introspect",
        "crm-web",
        SECRET,
        &[("token", first["access_token"].as_str().unwrap())],
    )
    .await;
    assert_eq!(intro["active"], false, "the replay revoked the access token");
    let (_, refreshed) = post_basic(
        s,
        "/oauth2/token",
        "crm-web",
        SECRET,
        &[("grant_type", "refresh_token"), ("refresh_token", first["refresh_token"].as_str().unwrap())],
    )
    .await;
    assert_eq!(refreshed["error"], "invalid_grant", "the replay revoked the refresh token");
}
both_stores!(code_replay_revokes_what_it_issued);

async fn wrong_or_missing_pkce_verifier_is_refused(s: &TestServer) {
    for verifier in [None, Some("x".repeat(43)), Some(pkce().0)] {
        let mut b = Browser::new();
        let (_, challenge) = pkce();
        let resp = authorize(
            &mut b,
            s,
            &[
                ("response_type", "code"),
                ("client_id", "crm-web"),
                ("redirect_uri", CALLBACK),
                ("code_challenge", &challenge),
                ("code_challenge_method", "S256"),
            ],
            "ada@example.test",
            "correct horse battery staple",
        )
        .await;
        let code = query_param(&resp, "code").unwrap();
        let mut form = vec![("grant_type", "authorization_code"), ("code", code.as_str()), ("redirect_uri", CALLBACK)];
        if let Some(v) = &verifier {
            form.push(("code_verifier", v.as_str()));
        }
        let (status, body) = post_basic(s, "/oauth2/token", "crm-web", SECRET, &form).await;
        assert_eq!((status, body["error"].as_str()), (400, Some("invalid_grant")), "{verifier:?}");
    }
}
both_stores!(wrong_or_missing_pkce_verifier_is_refused);

async fn refresh_reuse_revokes_whole_family(s: &TestServer) {
    let t = code_flow_tokens(s).await;
    let rt1 = t["refresh_token"].as_str().unwrap();
    let (status, t2) = post_basic(
        s,
        "/oauth2/token",
        "crm-web",
        SECRET,
        &[("grant_type", "refresh_token"), ("refresh_token", rt1)],
    )
    .await;
    assert_eq!(status, 200, "{t2}");
    let rt2 = t2["refresh_token"].as_str().unwrap();
    assert_ne!(rt1, rt2, "rotated");
    let (_, reuse) = post_basic(
        s,
        "/oauth2/token",
        "crm-web",
        SECRET,
        &[("grant_type", "refresh_token"), ("refresh_token", rt1)],
    )
    .await;
    assert_eq!(reuse["error"], "invalid_grant");
    let (_, after) = post_basic(
        s,
        "/oauth2/token",
        "crm-web",
        SECRET,
        &[("grant_type", "refresh_token"), ("refresh_token", rt2)],
    )
    .await;
    assert_eq!(after["error"], "invalid_grant", "the newest token of the family died too");
    let (_, intro) = post_basic(s, "/oauth2/introspect", "crm-web", SECRET, &[("token", t2["access_token"].as_str().unwrap())]).await;
    assert_eq!(intro["active"], false);
}
both_stores!(refresh_reuse_revokes_whole_family);

async fn wrong_secret_and_public_client_posing_as_confidential(s: &TestServer) {
    let (status, body) = post_basic(
        s,
        "/oauth2/token",
        "crm-web",
        "crm-secret-0123456789abcdef0123456789abcdeF",
        &[("grant_type", "client_credentials")],
    )
    .await;
    assert_eq!((status, body["error"].as_str()), (401, Some("invalid_client")));
    let (status, body) = post_basic(s, "/oauth2/token", "crm-spa", SECRET, &[("grant_type", "client_credentials")]).await;
    assert_eq!((status, body["error"].as_str()), (401, Some("invalid_client")));
}
both_stores!(wrong_secret_and_public_client_posing_as_confidential);

async fn product_b_cannot_introspect_product_a_tokens(s: &TestServer) {
    let t = code_flow_tokens(s).await;
    let at = t["access_token"].as_str().unwrap();
    let (_, own) = post_basic(s, "/oauth2/introspect", "crm-web", SECRET, &[("token", at)]).await;
    assert_eq!(own["active"], true);
    assert_eq!(own["aud"], "https://crm.example.test");
    let (_, other) = post_basic(s, "/oauth2/introspect", "reports-web", REPORTS_SECRET, &[("token", at)]).await;
    assert_eq!(other, serde_json::json!({"active": false}));
}
both_stores!(product_b_cannot_introspect_product_a_tokens);

async fn tampered_tokens_are_inactive(s: &TestServer) {
    let t = code_flow_tokens(s).await;
    let at = t["access_token"].as_str().unwrap();
    for bad in forgeries(at, |c| c["roles"] = serde_json::json!(["admin"])) {
        let (_, r) = post_basic(s, "/oauth2/introspect", "crm-web", SECRET, &[("token", bad.as_str())]).await;
        assert_eq!(r["active"], false);
        let resp = openidconnect::reqwest::Client::new()
            .get(format!("{}/oauth2/userinfo", s.base))
            .bearer_auth(&bad)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), 401);
    }
}
both_stores!(tampered_tokens_are_inactive);

async fn user_without_grant_gets_access_denied(s: &TestServer) {
    let mut b = Browser::new();
    let (_, challenge) = pkce();
    let resp = authorize(
        &mut b,
        s,
        &[
            ("response_type", "code"),
            ("client_id", "crm-web"),
            ("redirect_uri", CALLBACK),
            ("state", "st"),
            ("code_challenge", &challenge),
            ("code_challenge_method", "S256"),
        ],
        "bob@example.test",
        "bob's long enough password",
    )
    .await;
    assert_eq!(query_param(&resp, "error").as_deref(), Some("access_denied"));
    assert_eq!(query_param(&resp, "state").as_deref(), Some("st"));
    assert!(query_param(&resp, "code").is_none());
}
both_stores!(user_without_grant_gets_access_denied);

async fn revoked_grant_stops_refresh_at_once(s: &TestServer) {
    let t = code_flow_tokens(s).await;
    let user = s.store().user_by_email("ada@example.test").await.unwrap().unwrap().0;
    let done = committed!(s.store(), t => t.revoke_grant(
        &portico_model::Grantee::User(user.id),
        &portico_model::ProductSlug::new("crm"),
        &portico_model::GrantScope::NoTenant,
        "test",
        portico_testkit::now(),
        &|_| false,
    ))
    .await
    .unwrap();
    assert!(done);
    let (_, r) = post_basic(
        s,
        "/oauth2/token",
        "crm-web",
        SECRET,
        &[("grant_type", "refresh_token"), ("refresh_token", t["refresh_token"].as_str().unwrap())],
    )
    .await;
    assert_eq!(r["error"], "invalid_grant");
    let (_, intro) = post_basic(s, "/oauth2/introspect", "crm-web", SECRET, &[("token", t["access_token"].as_str().unwrap())]).await;
    assert_eq!(intro["active"], false);
}
both_stores!(revoked_grant_stops_refresh_at_once);

async fn public_client_needs_pkce(s: &TestServer) {
    let mut b = Browser::new();
    let url = format!(
        "{}/oauth2/authorize?response_type=code&client_id=crm-spa&redirect_uri={}&state=q",
        s.base,
        urlenc(CALLBACK)
    );
    let (status, loc, _) = b.get(&url).await;
    assert_eq!(status, 303);
    assert_eq!(query_param(loc.as_deref().unwrap(), "error").as_deref(), Some("invalid_request"));
}
both_stores!(public_client_needs_pkce);

async fn an_old_password_hash_is_replaced_at_sign_in(s: &TestServer) {
    use argon2::password_hash::{PasswordHasher, SaltString};
    let store = s.store();
    let (ada, _) = store.user_by_email("ada@example.test").await.unwrap().unwrap();
    // Hashed years ago with weaker parameters.
    let salt = SaltString::encode_b64(&[9u8; 16]).unwrap();
    let params = argon2::Params::new(4096, 1, 1, None).unwrap();
    let old = argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params)
        .hash_password(b"correct horse battery staple", &salt)
        .unwrap()
        .to_string();
    store.set_password_hash(&ada.id, &old, portico_testkit::now()).await.unwrap();
    code_flow_tokens(s).await;
    let (_, now_stored) = store.user_by_email("ada@example.test").await.unwrap().unwrap();
    let now_stored = now_stored.unwrap();
    assert_ne!(now_stored, old);
    assert!(!portico_protocol::password::needs_rehash(&now_stored), "{now_stored}");
    assert!(now_stored.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{now_stored}");
    // And the password still signs in.
    code_flow_tokens(s).await;
}
both_stores!(an_old_password_hash_is_replaced_at_sign_in);

/// RFC 6749 §3.1 and §3.2: a parameter sent twice is `invalid_request` at every endpoint that
/// takes form parameters, whichever copy would have been read; `resource` alone may repeat.
async fn a_repeated_parameter_is_refused_at_every_endpoint(s: &TestServer) {
    let (code, verifier) = crm_code(s).await;
    let redeem = [
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("redirect_uri", CALLBACK),
        ("code_verifier", verifier.as_str()),
    ];
    let twice: Vec<(&str, &str)> = redeem.iter().chain(&redeem[3..]).copied().collect();
    let (status, body) = post_basic(s, "/oauth2/token", "crm-web", SECRET, &twice).await;
    assert_eq!((status, body["error"].as_str()), (400, Some("invalid_request")), "{body}");
    // Refused before anything was read: the code still redeems once.
    let (status, tokens) = post_basic(s, "/oauth2/token", "crm-web", SECRET, &redeem).await;
    assert_eq!(status, 200, "{tokens}");
    let token = tokens["access_token"].as_str().unwrap();
    let cases: [(&str, Vec<(&str, &str)>); 4] = [
        ("/oauth2/token", vec![("grant_type", "refresh_token"), ("grant_type", "refresh_token")]),
        ("/oauth2/introspect", vec![("token", token), ("token", "something else")]),
        ("/oauth2/revoke", vec![("token", "something else"), ("token", token)]),
        ("/oauth2/handoff", vec![("subject_token", token), ("subject_token", token)]),
    ];
    for (path, form) in cases {
        let (status, body) = post_basic(s, path, "crm-web", SECRET, &form).await;
        assert_eq!((status, body["error"].as_str()), (400, Some("invalid_request")), "{path}: {body}");
    }
    // The refused revocation revoked nothing.
    let (_, intro) = post_basic(s, "/oauth2/introspect", "crm-web", SECRET, &[("token", token)]).await;
    assert_eq!(intro["active"], true, "{intro}");
    // The authorization endpoint answers at the redirect URI.
    let (_, c) = pkce();
    let url = format!(
        "{}/oauth2/authorize?response_type=code&client_id=crm-web&redirect_uri={}&code_challenge={c}&code_challenge_method=S256&scope=openid&scope=email",
        s.base,
        urlenc(CALLBACK)
    );
    let (status, loc, _) = Browser::new().get(&url).await;
    assert_eq!(status, 303);
    assert_eq!(query_param(&loc.unwrap(), "error").as_deref(), Some("invalid_request"));
}
both_stores!(a_repeated_parameter_is_refused_at_every_endpoint);
