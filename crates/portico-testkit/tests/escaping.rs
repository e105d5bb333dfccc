//! Names that people and operators choose reach the hosted pages escaped, everywhere: a user's,
//! a product's, a tenant's, a client's and a passkey's name each hold `<script>"'&`, and every page
//! a sign-in, a tenant choice, consent, the account page and the sign-out confirmation show is read
//! for it.

use crate::*;

const RAW: &str = "<script>\"'&";
const ESCAPED: &str = "&lt;script&gt;&quot;&#39;&amp;";

const NAMES: &str = r#"
[[product]]
slug = "crm"
name = "<script>\"'&Product"
audience = "https://crm.example.test"
tenant_aware = true
[product.roles]
viewer = ["read:contacts"]

[[client]]
id = "partner-web"
name = "<script>\"'&Client"
product = "crm"
kind = "confidential"
secret = "partner-secret-0123456789abcdef0123456789ab"
redirect_uris = ["http://127.0.0.1:9/callback"]
post_logout_redirect_uris = ["http://127.0.0.1:9/signed-out"]
first_party = false

[[tenant]]
slug = "acme"
name = "<script>\"'&Acme"

[[tenant]]
slug = "globex"
name = "<script>\"'&Globex"

[[user]]
email = "ada@example.test"
name = "<script>\"'&Ada"
password = "correct horse battery staple"

[[grant]]
user = "ada@example.test"
product = "crm"
tenant = "acme"
roles = ["viewer"]

[[grant]]
user = "ada@example.test"
product = "crm"
tenant = "globex"
roles = ["viewer"]
"#;

fn absolute(s: &TestServer, loc: &str) -> String {
    if loc.starts_with('/') { format!("{}{loc}", s.base) } else { loc.to_owned() }
}

/// Checks one page: nothing raw, and the escaped name where it is shown (by named entities, or by
/// the numeric ones templates write).
fn escaped(what: &str, page: &str, shows: &[&str]) {
    assert!(!page.contains(RAW), "{what}: a name reached the page unescaped: {page}");
    let page = page
        .replace("&#60;", "&lt;")
        .replace("&#62;", "&gt;")
        .replace("&#34;", "&quot;")
        .replace("&#38;", "&amp;");
    for name in shows {
        assert!(page.contains(&format!("{ESCAPED}{name}")), "{what}: {name} not shown (escaped): {page}");
    }
}

async fn every_name_reaches_every_page_escaped(s: &TestServer) {
    let mut b = Browser::new();
    let (_, challenge) = pkce();
    let url = format!(
        "{}/oauth2/authorize?response_type=code&client_id=partner-web&redirect_uri={}&scope=openid&state=st&code_challenge={challenge}&code_challenge_method=S256",
        s.base,
        url::form_urlencoded::byte_serialize(CALLBACK.as_bytes()).collect::<String>()
    );
    let (_, _, login) = b.follow(&s.base, url).await;
    escaped("login", &login, &["Product"]);
    // A wrong password: the page again, with the error.
    let csrf = hidden(&login, "csrf").unwrap();
    let req = hidden(&login, "req").unwrap();
    let wrong = [
        ("email", "ada@example.test"),
        ("password", "not it"),
        ("csrf", csrf.as_str()),
        ("req", req.as_str()),
    ];
    let (status, _, again) = b.post_form(&format!("{}/login", s.base), &wrong).await;
    assert_eq!(status, 401);
    escaped("login, refused", &again, &["Product"]);
    // Two tenants: the picker names both and the product.
    let (_, _, picker) = b.login(&s.base, &login, "ada@example.test", "correct horse battery staple").await;
    escaped("tenant picker", &picker, &["Acme", "Globex", "Product"]);
    let handle = picker
        .split("name=\"organization\" value=\"")
        .nth(1)
        .and_then(|x| x.split('"').next())
        .unwrap()
        .to_owned();
    let csrf = hidden(&picker, "csrf").unwrap();
    let req = hidden(&picker, "req").unwrap();
    let (_, loc, _) = b
        .post_form(
            &format!("{}/select-tenant", s.base),
            &[("csrf", &csrf), ("req", &req), ("organization", &handle)],
        )
        .await;
    let (_, _, consent) = b.follow(&s.base, absolute(s, &loc.unwrap())).await;
    escaped("consent", &consent, &["Client", "Product", "Acme"]);
    let csrf = hidden(&consent, "csrf").unwrap();
    let req = hidden(&consent, "req").unwrap();
    let (_, loc, _) = b
        .post_form(&format!("{}/consent", s.base), &[("csrf", &csrf), ("req", &req), ("decision", "allow")])
        .await;
    let loc = loc.unwrap();
    let loc = if loc.starts_with('/') {
        b.follow(&s.base, absolute(s, &loc)).await.1.unwrap()
    } else {
        loc
    };
    assert!(query_param(&loc, "code").is_some(), "{loc}");
    // The account page: the user's name, the application in the session, then a passkey's name.
    let (_, _, account) = b.get(&format!("{}/account", s.base)).await;
    escaped("account", &account, &["Ada", "Client"]);
    let (ada, _) = s.store().user_by_email("ada@example.test").await.unwrap().unwrap();
    plant_passkey(s, "cred-1", &ada.id, &format!("{RAW}Key")).await;
    let (_, _, account) = b.get(&format!("{}/account", s.base)).await;
    escaped("account with a passkey", &account, &["Ada", "Client", "Key"]);
    // The sign-out confirmation names the client.
    let (_, _, confirm) = b
        .get(&format!(
            "{}/oauth2/logout?client_id=partner-web&post_logout_redirect_uri={}",
            s.base,
            url::form_urlencoded::byte_serialize(b"http://127.0.0.1:9/signed-out").collect::<String>()
        ))
        .await;
    escaped("sign-out confirmation", &confirm, &["Client"]);
    // Confirmed without a post-logout URI: the signed-out page names the application to return to.
    let (_, _, confirm) = b.get(&format!("{}/oauth2/logout?client_id=partner-web", s.base)).await;
    let csrf = hidden(&confirm, "csrf").unwrap();
    let form = [("csrf", csrf.as_str()), ("confirm", "yes"), ("client_id", "partner-web")];
    let (status, _, done) = b.post_form(&format!("{}/oauth2/logout", s.base), &form).await;
    assert_eq!(status, 200, "{done}");
    escaped("signed out", &done, &["Client"]);
}
/// The issuer at `localhost`, so the pages offer passkeys (WebAuthn refuses IP addresses).
fn on_localhost(c: &mut portico_server::config::Config) {
    c.issuer = c.issuer.replace("127.0.0.1", "localhost");
}
both_stores_with!(every_name_reaches_every_page_escaped, NAMES, on_localhost);

/// What a client sends comes back escaped too: a `state` holding `<script>"'&` reaches the
/// form_post page as a hidden field's value, never as markup.
async fn what_a_client_sends_comes_back_escaped(s: &TestServer) {
    let mut b = Browser::new();
    let (_, challenge) = pkce();
    let state = url::form_urlencoded::byte_serialize(RAW.as_bytes()).collect::<String>();
    let url = format!(
        "{}/oauth2/authorize?response_type=code&response_mode=form_post&client_id=crm-web&redirect_uri={}&scope=openid&state={state}&code_challenge={challenge}&code_challenge_method=S256",
        s.base,
        url::form_urlencoded::byte_serialize(CALLBACK.as_bytes()).collect::<String>()
    );
    let (_, _, login) = b.follow(&s.base, url).await;
    let (status, _, page) = b.login(&s.base, &login, "ada@example.test", "correct horse battery staple").await;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("document.forms[0].submit()"), "the form_post page: {page}");
    escaped("form_post", &page, &[]);
    // What the browser posts on is the value decoded: the state whole.
    let state = hidden(&page, "state").unwrap();
    let decoded = state.replace("&#60;", "<").replace("&#62;", ">").replace("&#34;", "\"").replace("&#39;", "'");
    assert_eq!(decoded, RAW, "the state comes back whole: {page}");
}
both_stores!(what_a_client_sends_comes_back_escaped);

/// The templates embed unescaped only what a template made (`html::Fragment` fields) and the web
/// message page's script-escaped JSON: a new `|safe` must be one of these, or added here knowingly.
#[test]
fn templates_embed_unescaped_only_fragments_and_script_json() {
    const FRAGMENTS: [&str; 6] = ["body", "offer", "passkey", "passkey_add", "password_field", "passwordless"];
    const SCRIPT_JSON: [&str; 3] = ["message", "origin", "fallback"];
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../portico-server/templates");
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        for (i, _) in text.match_indices("|safe") {
            let name = text[..i].rsplit("{{").next().unwrap().trim();
            let allowed = FRAGMENTS.contains(&name) || (SCRIPT_JSON.contains(&name) && path.ends_with("web_message.html"));
            assert!(allowed, "{}: {name}|safe is neither a Fragment nor ScriptJson", path.display());
            seen += 1;
        }
    }
    assert!(seen >= 8, "{seen}");
}
