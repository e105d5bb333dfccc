//! The whole code flow with a real relying-party library (`openidconnect`), and SSO.

use crate::*;
use openidconnect::core::{CoreAuthenticationFlow, CoreClient, CoreProviderMetadata};
use openidconnect::{
    AuthorizationCode, ClientId, ClientSecret, CsrfToken, IssuerUrl, Nonce, OAuth2TokenResponse, PkceCodeChallenge, RedirectUrl, Scope, TokenResponse,
};

async fn relying_party_signs_in(s: &TestServer) {
    let http = openidconnect::reqwest::Client::builder()
        .redirect(openidconnect::reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let meta = CoreProviderMetadata::discover_async(IssuerUrl::new(s.base.clone()).unwrap(), &http)
        .await
        .expect("discovery");
    let client = CoreClient::from_provider_metadata(meta, ClientId::new("crm-web".into()), Some(ClientSecret::new(SECRET.into())))
        .set_redirect_uri(RedirectUrl::new(CALLBACK.into()).unwrap());
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let (url, csrf, nonce) = client
        .authorize_url(CoreAuthenticationFlow::AuthorizationCode, CsrfToken::new_random, Nonce::new_random)
        .add_scope(Scope::new("profile".into()))
        .add_scope(Scope::new("email".into()))
        .set_pkce_challenge(challenge)
        .url();
    let mut b = Browser::new();
    let (status, _, page) = b.follow(&s.base, url.to_string()).await;
    assert_eq!(status, 200);
    assert!(page.contains("name=\"email\"") && page.contains("name=\"password\""), "login form fields");
    let (_, loc, _) = b.login(&s.base, &page, "ada@example.test", "correct horse battery staple").await;
    let loc = loc.expect("redirect to the client");
    assert!(loc.starts_with(CALLBACK));
    assert_eq!(query_param(&loc, "state").as_deref(), Some(csrf.secret().as_str()));
    assert_eq!(query_param(&loc, "iss").as_deref(), Some(s.base.as_str()), "RFC 9207 iss");
    let code = query_param(&loc, "code").unwrap();
    let token = client
        .exchange_code(AuthorizationCode::new(code))
        .unwrap()
        .set_pkce_verifier(verifier)
        .request_async(&http)
        .await
        .expect("token");
    let id = token.id_token().expect("id token");
    let claims = id.claims(&client.id_token_verifier(), &nonce).expect("a valid ID token");
    assert!(claims.subject().as_str().starts_with("usr_"));
    assert_eq!(claims.email().map(|e| e.as_str()), Some("ada@example.test"));

    // The access token is for exactly one product, with only that product's roles.
    let at = token.access_token().secret();
    let payload: serde_json::Value = decode_payload(at);
    assert_eq!(payload["aud"], "https://crm.example.test");
    assert_eq!(payload["roles"], serde_json::json!(["editor"]));
    assert_eq!(payload["permissions"], serde_json::json!(["read:contacts", "write:contacts"]));
    assert_eq!(payload["sub"], claims.subject().as_str());

    // Userinfo with the access token.
    let resp = http.get(format!("{}/oauth2/userinfo", s.base)).bearer_auth(at).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let info: serde_json::Value = serde_json::from_str(&resp.text().await.unwrap()).unwrap();
    assert_eq!(info["email"], "ada@example.test");

    // A second client signs in with no login form: the SSO session carries over.
    let (_, challenge2) = pkce();
    let url2 = format!(
        "{}/oauth2/authorize?response_type=code&client_id=reports-web&redirect_uri={}&scope=openid&code_challenge={challenge2}&code_challenge_method=S256&prompt=none",
        s.base,
        urlenc(CALLBACK)
    );
    let (_, loc2, _) = b.follow(&s.base, url2).await;
    // Ada has no grant for reports: the answer is access_denied at the redirect URI.
    assert_eq!(query_param(loc2.as_deref().unwrap(), "error").as_deref(), Some("access_denied"));
}
both_stores!(relying_party_signs_in);

pub fn urlenc(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

pub fn decode_payload(jwt: &str) -> serde_json::Value {
    use base64::Engine;
    let part = jwt.split('.').nth(1).unwrap();
    serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap()
}

async fn second_client_needs_no_login(s: &TestServer) {
    let mut b = Browser::new();
    let (_, c1) = pkce();
    let first = authorize(
        &mut b,
        s,
        &[
            ("response_type", "code"),
            ("client_id", "crm-web"),
            ("redirect_uri", CALLBACK),
            ("code_challenge", &c1),
            ("code_challenge_method", "S256"),
        ],
        "ada@example.test",
        "correct horse battery staple",
    )
    .await;
    assert!(query_param(&first, "code").is_some());
    // prompt=none now yields a code with no page.
    let (_, c2) = pkce();
    let url = format!(
        "{}/oauth2/authorize?response_type=code&client_id=crm-web&redirect_uri={}&code_challenge={c2}&code_challenge_method=S256&prompt=none&state=x",
        s.base,
        urlenc(CALLBACK)
    );
    let (status, loc, _) = b.follow(&s.base, url).await;
    assert_eq!(status, 303);
    assert!(query_param(loc.as_deref().unwrap(), "code").is_some());
    // A browser without the session gets login_required.
    let mut other = Browser::new();
    let url = format!(
        "{}/oauth2/authorize?response_type=code&client_id=crm-web&redirect_uri={}&code_challenge={c2}&code_challenge_method=S256&prompt=none&state=x",
        s.base,
        urlenc(CALLBACK)
    );
    let (_, loc, _) = other.follow(&s.base, url).await;
    let loc = loc.unwrap();
    assert_eq!(query_param(&loc, "error").as_deref(), Some("login_required"));
    assert_eq!(query_param(&loc, "state").as_deref(), Some("x"));
}
both_stores!(second_client_needs_no_login);

async fn eddsa_token_verifies_with_jwks(s: &TestServer) {
    let (status, body) = post_basic(
        s,
        "/oauth2/token",
        "reports-web",
        REPORTS_SECRET,
        &[("grant_type", "client_credentials"), ("scope", "api:read")],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let at = body["access_token"].as_str().unwrap();
    let header = jsonwebtoken::decode_header(at).unwrap();
    assert_eq!(header.alg, jsonwebtoken::Algorithm::EdDSA);
    assert_eq!(header.typ.as_deref(), Some("at+jwt"));
    let jwks: serde_json::Value = serde_json::from_str(
        &openidconnect::reqwest::get(format!("{}/oauth2/jwks", s.base))
            .await
            .unwrap()
            .text()
            .await
            .unwrap(),
    )
    .unwrap();
    let jwk = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["kid"] == header.kid.clone().unwrap().as_str())
        .expect("kid published");
    let key = jsonwebtoken::DecodingKey::from_ed_components(jwk["x"].as_str().unwrap()).unwrap();
    let mut v = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::EdDSA);
    v.set_audience(&["https://reports.example.test"]);
    v.set_issuer(&[&s.base]);
    let claims = jsonwebtoken::decode::<serde_json::Value>(at, &key, &v).expect("verifies").claims;
    assert_eq!(claims["sub"], "reports-web");
    assert_eq!(claims["scope"], "api:read");
    assert_eq!(claims["roles"], serde_json::json!(["service"]));
}
both_stores!(eddsa_token_verifies_with_jwks);
