//! Pushed authorization requests (RFC 9126): the request goes to Portico directly, authenticated;
//! the browser carries only `client_id` and a single-use, short-lived `request_uri`.

use crate::flow::urlenc;
use crate::*;
use std::sync::LazyLock;

/// The suite, with a client that must push its requests (RFC 9126 §6).
pub static PAR_SUITE: LazyLock<String> = LazyLock::new(|| {
    format!(
        "{SUITE}\n[[client]]\nid = \"crm-pushed\"\nproduct = \"crm\"\nkind = \"confidential\"\nsecret = \"{PUSHED_SECRET}\"\nauth_method = \"client_secret_post\"\nredirect_uris = [\"{CALLBACK}\"]\nfirst_party = true\nrequire_pushed_authorization_requests = true\n"
    )
});
const PUSHED_SECRET: &str = "pushed-secret-0123456789abcdef0123456789ab";

/// The authorization request's parameters, with a fresh PKCE pair; returns them and the verifier.
fn request(client: &str, state: &str) -> (Vec<(&'static str, String)>, String) {
    let (verifier, challenge) = pkce();
    let params = vec![
        ("response_type", "code".to_owned()),
        ("client_id", client.to_owned()),
        ("redirect_uri", CALLBACK.to_owned()),
        ("scope", "openid offline_access".to_owned()),
        ("state", state.to_owned()),
        ("code_challenge", challenge),
        ("code_challenge_method", "S256".to_owned()),
    ];
    (params, verifier)
}

fn pairs<'a>(params: &'a [(&'static str, String)]) -> Vec<(&'a str, &'a str)> {
    params.iter().map(|(k, v)| (*k, v.as_str())).collect()
}

/// Pushes with HTTP Basic as crm-web; returns (status, headers' Cache-Control, JSON).
async fn push_basic(s: &TestServer, form: &[(&str, &str)]) -> (u16, serde_json::Value) {
    post_basic(s, "/oauth2/par", "crm-web", SECRET, form).await
}

async fn push_form(s: &TestServer, form: &[(&str, &str)]) -> (u16, Option<String>, serde_json::Value) {
    let resp = openidconnect::reqwest::Client::new()
        .post(format!("{}/oauth2/par", s.base))
        .form(form)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let cache = resp.headers().get("cache-control").map(|v| v.to_str().unwrap().to_owned());
    (status, cache, serde_json::from_str(&resp.text().await.unwrap()).unwrap_or_default())
}

/// Whether the authorization endpoint took the request on: it sends the browser to sign in.
async fn goes_to_login(url: &str) -> bool {
    let (status, loc, _) = Browser::new().get(url).await;
    status == 303 && loc.is_some_and(|l| l.starts_with("/login"))
}

fn authorize_url(s: &TestServer, client: &str, request_uri: &str) -> String {
    format!("{}/oauth2/authorize?client_id={client}&request_uri={}", s.base, urlenc(request_uri))
}

async fn a_pushed_request_signs_in_with_only_its_client_id_and_request_uri(s: &TestServer) {
    let (params, verifier) = request("crm-web", "pushed-state");
    let (status, body) = push_basic(s, &pairs(&params)).await;
    assert_eq!(status, 201, "{body}");
    let uri = body["request_uri"].as_str().unwrap();
    assert!(uri.starts_with("urn:ietf:params:oauth:request_uri:") && uri.len() > 60, "{uri}");
    assert_eq!(body["expires_in"], 60);
    // What else the browser sends is not the request: the pushed one is.
    let mut b = Browser::new();
    let url = format!(
        "{}&state=changed&redirect_uri={}&scope=email",
        authorize_url(s, "crm-web", uri),
        urlenc("http://127.0.0.1:9/evil")
    );
    let (status, _, page) = b.follow(&s.base, url).await;
    assert_eq!(status, 200, "the login page: {page}");
    let (_, loc, _) = b.login(&s.base, &page, "ada@example.test", "correct horse battery staple").await;
    let loc = loc.expect("an authorization response");
    assert!(loc.starts_with(&format!("{CALLBACK}?")), "{loc}");
    assert_eq!(query_param(&loc, "state").as_deref(), Some("pushed-state"));
    let code = query_param(&loc, "code").unwrap();
    let form = [
        ("grant_type", "authorization_code"),
        ("code", &code),
        ("redirect_uri", CALLBACK),
        ("code_verifier", &verifier),
    ];
    let (status, tokens) = post_basic(s, "/oauth2/token", "crm-web", SECRET, &form).await;
    assert_eq!(status, 200, "{tokens}");
    assert_eq!(tokens["scope"], "openid offline_access", "the pushed scope, not the one added in the browser");
    // A public client pushes with its id alone, and PKCE.
    let (params, _) = request("crm-spa", "spa");
    let (status, cache, body) = push_form(s, &pairs(&params)).await;
    assert_eq!((status, cache.as_deref()), (201, Some("no-store")), "{body}");
}
both_stores!(a_pushed_request_signs_in_with_only_its_client_id_and_request_uri, &crate::par::PAR_SUITE);

async fn a_request_uri_is_single_use_short_lived_and_its_clients_alone(s: &TestServer) {
    let push = || async {
        let (params, _) = request("crm-web", "s");
        let (status, body) = push_basic(s, &pairs(&params)).await;
        assert_eq!(status, 201);
        body["request_uri"].as_str().unwrap().to_owned()
    };
    let refused = |url: String| async move {
        let (status, loc, page) = Browser::new().get(&url).await;
        assert_eq!((status, loc.as_deref()), (400, None), "{url}: {page}");
        page
    };
    // Used once, then spent.
    let uri = push().await;
    assert!(goes_to_login(&authorize_url(s, "crm-web", &uri)).await);
    let page = refused(authorize_url(s, "crm-web", &uri)).await;
    assert!(page.contains("expired or was used already"), "{page}");
    // Another client cannot use it, and having tried, nobody can.
    let uri = push().await;
    refused(authorize_url(s, "reports-web", &uri)).await;
    refused(authorize_url(s, "crm-web", &uri)).await;
    // Without its client_id, repeated, made up or off by one character.
    let uri = push().await;
    refused(format!("{}/oauth2/authorize?request_uri={}", s.base, urlenc(&uri))).await;
    refused(format!("{}&request_uri={}", authorize_url(s, "crm-web", &uri), urlenc(&uri))).await;
    refused(authorize_url(s, "crm-web", &format!("{uri}x"))).await;
    refused(authorize_url(s, "crm-web", "urn:ietf:params:oauth:request_uri:")).await;
    refused(authorize_url(s, "crm-web", "https://attacker.example/request.jwt")).await;
    // Past its 60 seconds, it is gone.
    let uri = push().await;
    let params = vec![("client_id".to_owned(), "crm-web".to_owned()), ("request_uri".to_owned(), uri.clone())];
    let later = portico_testkit::now() + portico_protocol::interaction::pending::PUSHED_REQUEST_TTL + 1;
    let resolved = portico_protocol::par::resolve(&s.running.provider, &params, later).await.unwrap();
    assert!(matches!(resolved, Err(portico_protocol::authorize::AuthorizeError::Page(m)) if m.contains("expired or was used already")));
    // The request it started, opened in another browser, is refused there, never started over:
    // the request_uri was good once.
    let uri = push().await;
    let (status, loc, _) = Browser::new().get(&authorize_url(s, "crm-web", &uri)).await;
    let step = loc.filter(|l| status == 303 && l.starts_with("/login?req=")).expect("the login step");
    let mut other = Browser::new();
    let (status, loc, page) = other.get(&format!("{}{step}", s.base)).await;
    assert_eq!((status, loc), (403, None), "{page}");
    assert!(!page.contains("name=\"password\""), "{page}");
}
both_stores!(a_request_uri_is_single_use_short_lived_and_its_clients_alone, &crate::par::PAR_SUITE);

async fn fifty_browsers_racing_one_request_uri_get_one_sign_in(s: &TestServer) {
    let (params, _) = request("crm-web", "race");
    let (_, body) = push_basic(s, &pairs(&params)).await;
    let url = authorize_url(s, "crm-web", body["request_uri"].as_str().unwrap());
    let tasks: Vec<_> = (0..50)
        .map(|_| {
            let url = url.clone();
            tokio::spawn(async move { Browser::new().get(&url).await })
        })
        .collect();
    let mut statuses = Vec::new();
    for t in tasks {
        let (status, loc, _) = t.await.unwrap();
        statuses.push((status, loc.is_some_and(|l| l.starts_with("/login"))));
    }
    assert_eq!(statuses.iter().filter(|s| **s == (303, true)).count(), 1, "{statuses:?}");
    assert_eq!(statuses.iter().filter(|s| **s == (400, false)).count(), 49, "{statuses:?}");
}
both_stores!(fifty_browsers_racing_one_request_uri_get_one_sign_in, &crate::par::PAR_SUITE);

async fn a_pushed_request_is_validated_as_the_authorization_endpoint_would(s: &TestServer) {
    let (good, _) = request("crm-web", "v");
    let with = |k: &'static str, v: &str| {
        let mut p: Vec<(&'static str, String)> = good.iter().filter(|(n, _)| *n != k).cloned().collect();
        p.push((k, v.to_owned()));
        p
    };
    let without = |k: &'static str| good.iter().filter(|(n, _)| *n != k).cloned().collect::<Vec<_>>();
    for (params, error) in [
        (with("redirect_uri", "http://127.0.0.1:9/callback/"), "invalid_request"),
        (with("redirect_uri", "http://127.0.0.1:10/callback"), "invalid_request"),
        (without("redirect_uri"), "invalid_request"),
        (without("response_type"), "invalid_request"),
        (with("response_type", "token"), "unsupported_response_type"),
        (with("scope", "openid admin"), "invalid_scope"),
        (with("code_challenge_method", "plain"), "invalid_request"),
        (with("resource", "https://nobody.example.test"), "invalid_target"),
        (with("request_uri", "urn:ietf:params:oauth:request_uri:abc"), "invalid_request"),
        (with("request", "eyJhbGciOiJub25lIn0.e30."), "request_not_supported"),
        (with("state", &"x".repeat(2000)), "invalid_request"),
        (with("client_id", "reports-web"), "invalid_request"),
    ] {
        let (status, body) = push_basic(s, &pairs(&params)).await;
        assert_eq!((status, body["error"].as_str()), (400, Some(error)), "{params:?}: {body}");
        assert!(body.get("request_uri").is_none());
    }
    // A repeated parameter, and the wrong secret.
    let mut twice = pairs(&good);
    twice.push(("scope", "openid"));
    assert_eq!(push_basic(s, &twice).await.1["error"], "invalid_request");
    let (status, body) = post_basic(s, "/oauth2/par", "crm-web", "wrong-secret-0123456789abcdef0123456789", &pairs(&good)).await;
    assert_eq!((status, body["error"].as_str()), (401, Some("invalid_client")));
    // A public client without PKCE, and a client that may not use the code grant.
    let (public, _) = request("crm-spa", "p");
    let public: Vec<_> = public.into_iter().filter(|(k, _)| !k.starts_with("code_challenge")).collect();
    let (status, _, body) = push_form(s, &pairs(&public)).await;
    assert_eq!((status, body["error"].as_str()), (400, Some("invalid_request")), "{body}");
}
both_stores!(a_pushed_request_is_validated_as_the_authorization_endpoint_would, &crate::par::PAR_SUITE);

async fn a_client_that_must_push_cannot_start_in_the_browser_and_its_secret_is_not_kept(s: &TestServer) {
    let (params, _) = request("crm-pushed", "must");
    let url = format!(
        "{}/oauth2/authorize?{}",
        s.base,
        url::form_urlencoded::Serializer::new(String::new()).extend_pairs(pairs(&params)).finish()
    );
    let (status, loc, _) = Browser::new().get(&url).await;
    let loc = loc.expect("an error at the redirect URI");
    assert!((300..400).contains(&status) && loc.starts_with(CALLBACK), "{loc}");
    assert_eq!(query_param(&loc, "error").as_deref(), Some("invalid_request"));
    assert_eq!(query_param(&loc, "code"), None);
    // Pushed, with client_secret_post: it goes on, and the secret is not among what is kept.
    let mut form = pairs(&params);
    form.push(("client_secret", PUSHED_SECRET));
    let (status, _, body) = push_form(s, &form).await;
    assert_eq!(status, 201, "{body}");
    let uri = body["request_uri"].as_str().unwrap();
    let handle = uri.strip_prefix(portico_protocol::par::REQUEST_URI_PREFIX).unwrap();
    let kept = s
        .store()
        .pending("pushed_authorization", &portico_protocol::random::hash(handle), portico_testkit::now())
        .await
        .unwrap()
        .expect("kept");
    assert!(
        kept.contains("must") && !kept.contains(PUSHED_SECRET) && !kept.contains("client_secret"),
        "{kept}"
    );
    assert!(goes_to_login(&authorize_url(s, "crm-pushed", uri)).await);
    // Discovery says where to push.
    let (_, _, meta) = Browser::new().get(&format!("{}/.well-known/openid-configuration", s.base)).await;
    let meta: serde_json::Value = serde_json::from_str(&meta).unwrap();
    assert_eq!(meta["pushed_authorization_request_endpoint"], format!("{}/oauth2/par", s.base));
    assert_eq!(meta["require_pushed_authorization_requests"], false);
}
both_stores!(
    a_client_that_must_push_cannot_start_in_the_browser_and_its_secret_is_not_kept,
    &crate::par::PAR_SUITE
);
