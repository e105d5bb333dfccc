//! `response_mode=web_message` (OAuth 2.0 Web Message Response Mode): the answer is a page that
//! posts the response only to the client's registered origin and that only that origin may frame;
//! every other page refuses framing. (The browser side is in e2e/tests/web_message.test.mjs.)

use crate::tenancy::{CRM_SECRET, TENANTS, tokens};
use crate::*;
use std::sync::LazyLock;

static WEB: LazyLock<String> = LazyLock::new(|| TENANTS.replace("id = \"crm-web\"\n", "id = \"crm-web\"\nweb_origins = [\"http://127.0.0.1:9\"]\n"));

fn authorize_url(s: &TestServer, client: &str, extra: &[(&str, &str)]) -> String {
    let (_, challenge) = pkce();
    let mut q = vec![
        ("response_type", "code"),
        ("client_id", client),
        ("redirect_uri", CALLBACK),
        ("scope", "openid"),
        ("state", "st-1"),
        ("code_challenge", challenge.as_str()),
        ("code_challenge_method", "S256"),
        ("response_mode", "web_message"),
        ("organization", "acme"),
    ];
    q.extend_from_slice(extra);
    format!(
        "{}/oauth2/authorize?{}",
        s.base,
        url::form_urlencoded::Serializer::new(String::new()).extend_pairs(&q).finish()
    )
}

fn csp(h: &openidconnect::http::HeaderMap) -> String {
    h.get("content-security-policy").and_then(|v| v.to_str().ok()).unwrap_or("").to_owned()
}

/// The message a web_message page posts, and the origin it posts it to.
fn posted(page: &str) -> (serde_json::Value, String) {
    let call = page.split("t.postMessage(").nth(1).expect("a postMessage call");
    let call = &call[..call.find(");}").expect("end of the call")];
    let args: Vec<serde_json::Value> = serde_json::from_str(&format!("[{call}]")).expect("JSON arguments");
    (args[0].clone(), args[1].as_str().unwrap().to_owned())
}

async fn the_response_goes_only_to_the_registered_origin(s: &TestServer) {
    let mut b = Browser::new();
    tokens(&mut b, s, "crm-web", CRM_SECRET, "ada@example.test", Some("acme")).await;
    // Silent authorization, as a hidden iframe would make it.
    let (status, h, page) = b.get_with_headers(&authorize_url(s, "crm-web", &[("prompt", "none")])).await;
    assert_eq!(status, 200);
    let (message, origin) = posted(&page);
    assert_eq!(origin, "http://127.0.0.1:9");
    assert_eq!(message["type"], "authorization_response");
    assert_eq!(message["response"]["state"], "st-1");
    assert_eq!(message["response"]["iss"], s.base.as_str());
    assert!(message["response"]["code"].as_str().is_some_and(|c| c.len() > 20));
    // With neither opener nor parent (a popup its opener's COOP cut off) the page sends the same
    // response to the registered redirect URI instead.
    let code = message["response"]["code"].as_str().unwrap();
    let fallback = format!("window.location.replace(\"http://127.0.0.1:9/callback?code={code}\\u0026state=st-1");
    assert!(page.contains(&fallback), "{page}");
    // Only that origin may frame this page; the script runs by nonce only.
    let policy = csp(&h);
    assert!(
        policy.contains("frame-ancestors http://127.0.0.1:9") && policy.contains("script-src 'nonce-"),
        "{policy}"
    );
    assert!(h.get("x-frame-options").is_none());

    // Errors travel the same way: without a session, login_required.
    let (status, _, page) = Browser::new().get_with_headers(&authorize_url(s, "crm-web", &[("prompt", "none")])).await;
    assert_eq!(status, 200);
    let (message, origin) = posted(&page);
    assert_eq!(
        (message["response"]["error"].as_str(), origin.as_str()),
        (Some("login_required"), "http://127.0.0.1:9")
    );

    // A client that registered no origin gets no message, no code and no framing.
    let (status, h, page) = b.get_with_headers(&authorize_url(s, "reports-web", &[("prompt", "none")])).await;
    assert_eq!(status, 400);
    assert!(!page.contains("postMessage") && !page.contains("code"), "{page}");
    assert!(csp(&h).contains("frame-ancestors 'none'"));
    assert_eq!(h.get("x-frame-options").and_then(|v| v.to_str().ok()), Some("DENY"));

    // The login form itself may never be framed, web_message or not.
    let (status, h, page) = Browser::new().get_with_headers(&format!("{}/login", s.base)).await;
    assert_eq!(status, 200, "{page}");
    assert!(csp(&h).contains("frame-ancestors 'none'"));
}
both_stores!(the_response_goes_only_to_the_registered_origin, &WEB);

#[test]
fn web_origins_must_be_origins() {
    let suite = |origin: &str| {
        format!(
            "[[product]]\nslug = \"crm\"\nname = \"CRM\"\naudience = \"https://crm.example.test\"\n[[client]]\nid = \"x\"\nproduct = \"crm\"\nkind = \"public\"\nredirect_uris = [\"https://a.test/cb\"]\nweb_origins = [\"{origin}\"]\n"
        )
    };
    for bad in ["https://a.test/", "https://a.test/cb", "a.test", "https://a.test:443", "*"] {
        let e = portico_server::suite::Suite::parse("s.toml", &suite(bad), &Default::default())
            .err()
            .expect(bad)
            .to_string();
        assert!(e.contains("field web_origins"), "{bad}: {e}");
    }
    portico_server::suite::Suite::parse("s.toml", &suite("https://a.test:8443"), &Default::default()).expect("an origin with a port");
}

/// The one value a page embeds in a script, the message, is JSON that cannot end the script: a
/// `state` holding `</script><script>`, quotes, `&` and the line separators U+2028/U+2029 comes
/// back inside the message whole, and nowhere as markup.
async fn a_hostile_state_stays_inside_the_message(s: &TestServer) {
    let mut b = Browser::new();
    tokens(&mut b, s, "crm-web", CRM_SECRET, "ada@example.test", Some("acme")).await;
    let hostile = "</script><script>alert(1)</script>\"'&\u{2028}\u{2029}<!--";
    let mut url = authorize_url(s, "crm-web", &[("prompt", "none")]);
    url = url.replace(
        "state=st-1",
        &format!("state={}", url::form_urlencoded::byte_serialize(hostile.as_bytes()).collect::<String>()),
    );
    let (status, _, page) = b.get_with_headers(&url).await;
    assert_eq!(status, 200, "{page}");
    let script = page.split("<script nonce=").nth(1).expect("the page's script");
    let script = &script[..script.find("</script>").expect("the script ends")];
    assert!(
        script.contains("t.postMessage("),
        "the script ends where the page ends it, not in the state: {script}"
    );
    for raw in ["<", ">", "&", "\u{2028}", "\u{2029}"] {
        assert!(!script[script.find('>').unwrap() + 1..].contains(raw), "{raw:?} raw in the script: {script}");
    }
    let (message, _) = posted(&page);
    assert_eq!(message["response"]["state"], hostile, "the state reaches the client whole");
    assert_eq!(page.matches("<script").count(), 1, "no script but the page's own: {page}");
}
both_stores!(a_hostile_state_stays_inside_the_message, &WEB);
