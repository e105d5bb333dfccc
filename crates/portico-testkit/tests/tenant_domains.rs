//! Tenant custom domains: a client's `{tenant_domain}` templates serve every customer's domain
//! with one registration; matching stays exact; a request through a tenant's domain yields only
//! that tenant's tokens, and the session it starts cannot switch tenant.

use crate::flow::decode_payload;
use crate::tenancy::{CRM_SECRET, PASSWORD, TENANTS};
use crate::*;
use std::sync::LazyLock;

const ACME_CB: &str = "https://crm.acme.test/callback";
const GLOBEX_CB: &str = "https://crm.globex.test/callback";

static DOMAINS: LazyLock<String> = LazyLock::new(|| {
    let suite = TENANTS
        .replace(
            "id = \"crm-web\"\nproduct = \"crm\"\nkind = \"confidential\"\nsecret = \"crm-secret-0123456789abcdef0123456789abcdef\"\nredirect_uris = [\"http://127.0.0.1:9/callback\"]",
            "id = \"crm-web\"\nproduct = \"crm\"\nkind = \"confidential\"\nsecret = \"crm-secret-0123456789abcdef0123456789abcdef\"\nredirect_uris = [\"http://127.0.0.1:9/callback\", \"https://crm.{tenant_domain}/callback\"]\nweb_origins = [\"https://crm.{tenant_domain}\"]\npost_logout_redirect_uris = [\"https://crm.{tenant_domain}/signed-out\"]",
        )
        .replace("slug = \"acme\"\nname = \"Acme Bank\"\n", "slug = \"acme\"\nname = \"Acme Bank\"\ndomains = [\"acme.test\"]\n")
        .replace("slug = \"globex\"\nname = \"Globex\"\n", "slug = \"globex\"\nname = \"Globex\"\ndomains = [\"globex.test\", \"globex-bank.test\"]\n");
    assert_eq!(suite.matches("{tenant_domain}").count(), 3, "the suite is shaped as this test expects");
    assert!(suite.contains("acme.test\"]") && suite.contains("globex-bank.test"));
    suite
});

/// An authorization request for crm-web with `redirect_uri`; where it ends (a redirect away from
/// Portico, or a page) and the PKCE verifier.
async fn authorize_at(b: &mut Browser, s: &TestServer, redirect_uri: &str, email: &str, extra: &[(&str, &str)]) -> (u16, Option<String>, String, String) {
    let (verifier, challenge) = pkce();
    let mut q = vec![
        ("response_type", "code"),
        ("client_id", "crm-web"),
        ("redirect_uri", redirect_uri),
        ("scope", "openid offline_access"),
        ("state", "st"),
        ("code_challenge", challenge.as_str()),
        ("code_challenge_method", "S256"),
    ];
    q.extend_from_slice(extra);
    let url = format!(
        "{}/oauth2/authorize?{}",
        s.base,
        url::form_urlencoded::Serializer::new(String::new()).extend_pairs(&q).finish()
    );
    let (mut status, mut loc, mut page) = b.follow(&s.base, url).await;
    if status == 200 && page.contains("name=\"password\"") {
        (status, loc, page) = b.login(&s.base, &page, email, PASSWORD).await;
    }
    (status, loc, page, verifier)
}

async fn redeem_at(s: &TestServer, redirect_uri: &str, location: &str, verifier: &str) -> (u16, serde_json::Value) {
    let code = query_param(location, "code").unwrap_or_else(|| panic!("no code in {location}"));
    post_basic(
        s,
        "/oauth2/token",
        "crm-web",
        CRM_SECRET,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", redirect_uri),
            ("code_verifier", verifier),
        ],
    )
    .await
}

fn org_name(t: &serde_json::Value) -> String {
    decode_payload(t["access_token"].as_str().unwrap())["org_name"]
        .as_str()
        .unwrap_or("")
        .to_owned()
}

async fn a_tenants_domain_yields_that_tenants_tokens_only(s: &TestServer) {
    // Ada holds CRM in Acme and Globex: through Acme's domain there is no picker, only Acme.
    let mut b = Browser::new();
    let (status, loc, page, verifier) = authorize_at(&mut b, s, ACME_CB, "ada@example.test", &[]).await;
    let loc = loc.unwrap_or_else(|| panic!("{status}: {page}"));
    assert!(loc.starts_with(&format!("{ACME_CB}?code=")), "{loc}");
    let (status, t) = redeem_at(s, ACME_CB, &loc, &verifier).await;
    assert_eq!((status, org_name(&t).as_str()), (200, "Acme Bank"), "{t}");
    // The code is bound to the redirect URI it went to, as always.
    let (_, loc, _, verifier) = authorize_at(&mut b, s, ACME_CB, "ada@example.test", &[]).await;
    let (status, e) = redeem_at(s, GLOBEX_CB, &loc.unwrap(), &verifier).await;
    assert_eq!((status, e["error"].as_str()), (400, Some("invalid_grant")));

    // Globex's domains, either of them: Globex.
    for cb in [GLOBEX_CB, "https://crm.globex-bank.test/callback"] {
        let (_, loc, page, verifier) = authorize_at(&mut b, s, cb, "ada@example.test", &[]).await;
        let loc = loc.unwrap_or_else(|| panic!("{page}"));
        assert!(loc.starts_with(&format!("{cb}?code=")), "{loc}");
        let (status, t) = redeem_at(s, cb, &loc, &verifier).await;
        assert_eq!((status, org_name(&t).as_str()), (200, "Globex"));
    }

    // Naming another tenant on Acme's domain is refused at the client's own redirect URI.
    for other in ["globex", "initech", "no-such-tenant"] {
        let (_, loc, _, _) = authorize_at(&mut b, s, ACME_CB, "ada@example.test", &[("organization", other)]).await;
        let loc = loc.expect("an error redirect");
        assert!(loc.starts_with(ACME_CB), "{loc}");
        assert_eq!(query_param(&loc, "error").as_deref(), Some("invalid_request"), "{other}: {loc}");
        assert!(query_param(&loc, "code").is_none());
    }
    // Naming Acme again is fine.
    let (_, loc, _, _) = authorize_at(&mut b, s, ACME_CB, "ada@example.test", &[("organization", "acme")]).await;
    assert!(query_param(&loc.unwrap(), "code").is_some());

    // Bob holds CRM in Acme only: Globex's domain has nothing for him.
    let (_, loc, page, _) = authorize_at(&mut Browser::new(), s, GLOBEX_CB, "bob@example.test", &[]).await;
    let loc = loc.unwrap_or_else(|| panic!("{page}"));
    assert_eq!(query_param(&loc, "error").as_deref(), Some("access_denied"), "{loc}");
}
both_stores!(a_tenants_domain_yields_that_tenants_tokens_only, &DOMAINS);

async fn matching_stays_exact(s: &TestServer) {
    let mut b = Browser::new();
    for bad in [
        "https://crm.acme.test/callback/",
        "https://crm.acme.test/Callback",
        "https://crm.acme.tes/callback",
        "http://crm.acme.test/callback",
        "https://crm.acme.test:443/callback",
        "https://crm.ACME.test/callback",
        "https://crm.initech.test/callback",
        "https://crm.acme.test.evil.test/callback",
        "https://crm.evil.test/callback",
        "https://crm.acme.test/callback?x=1",
        "https://crm.acme.test%2F@evil.test/callback",
        "https://reports.acme.test/callback",
        "https://crm.{tenant_domain}/callback",
    ] {
        let (status, loc, page, _) = authorize_at(&mut b, s, bad, "ada@example.test", &[]).await;
        assert_eq!((status, loc.as_deref()), (400, None), "{bad} was taken");
        assert!(page.contains("not registered"), "{bad}: {page}");
    }
}
both_stores!(matching_stays_exact, &DOMAINS);

async fn a_session_begun_on_a_tenants_domain_cannot_switch_tenant(s: &TestServer) {
    let mut b = Browser::new();
    let (_, loc, _, verifier) = authorize_at(&mut b, s, ACME_CB, "ada@example.test", &[]).await;
    let (_, t) = redeem_at(s, ACME_CB, &loc.unwrap(), &verifier).await;
    let rt = t["refresh_token"].as_str().unwrap();
    let switch = |rt: String| async move {
        post_basic(
            s,
            "/oauth2/token",
            "crm-web",
            CRM_SECRET,
            &[("grant_type", "refresh_token"), ("refresh_token", &rt), ("organization", "globex")],
        )
        .await
    };
    let (status, e) = switch(rt.to_owned()).await;
    assert_eq!((status, e["error"].as_str()), (400, Some("invalid_grant")), "{e}");
    // Refreshing within Acme still works, and stays pinned through rotation.
    let (status, r) = post_basic(
        s,
        "/oauth2/token",
        "crm-web",
        CRM_SECRET,
        &[("grant_type", "refresh_token"), ("refresh_token", rt)],
    )
    .await;
    assert_eq!((status, org_name(&r).as_str()), (200, "Acme Bank"));
    let (status, _) = switch(r["refresh_token"].as_str().unwrap().to_owned()).await;
    assert_eq!(status, 400, "the pin survives rotation");

    // The same user through the shared callback may switch.
    let (_, loc, _, verifier) = authorize_at(&mut b, s, CALLBACK, "ada@example.test", &[("organization", "acme")]).await;
    let (_, t) = redeem_at(s, CALLBACK, &loc.unwrap(), &verifier).await;
    let (status, g) = switch(t["refresh_token"].as_str().unwrap().to_owned()).await;
    assert_eq!((status, org_name(&g).as_str()), (200, "Globex"), "{g}");
}
both_stores!(a_session_begun_on_a_tenants_domain_cannot_switch_tenant, &DOMAINS);

async fn cors_and_logout_follow_the_tenant_domains(s: &TestServer) {
    let http = openidconnect::reqwest::Client::new();
    let preflight = |origin: &'static str| {
        let http = http.clone();
        async move {
            let r = http
                .request(openidconnect::http::Method::OPTIONS, format!("{}/oauth2/token", s.base))
                .header("Origin", origin)
                .header("Access-Control-Request-Method", "POST")
                .send()
                .await
                .unwrap();
            r.headers().get("access-control-allow-origin").map(|v| v.to_str().unwrap().to_owned())
        }
    };
    assert_eq!(preflight("https://crm.acme.test").await.as_deref(), Some("https://crm.acme.test"));
    assert_eq!(preflight("https://crm.globex-bank.test").await.as_deref(), Some("https://crm.globex-bank.test"));
    for bad in [
        "https://crm.initech.test",
        "https://crm.acme.test:8443",
        "https://acme.test",
        "http://crm.acme.test",
    ] {
        assert_eq!(preflight(bad).await, None, "{bad}");
    }

    // Post-logout redirects follow the templates too, exactly.
    let mut b = Browser::new();
    let logout = |uri: &str| {
        format!(
            "{}/oauth2/logout?{}",
            s.base,
            url::form_urlencoded::Serializer::new(String::new())
                .extend_pairs([("client_id", "crm-web"), ("post_logout_redirect_uri", uri)])
                .finish()
        )
    };
    let (status, _, page) = b.get(&logout("https://crm.acme.test/signed-out")).await;
    assert!(status < 400 && !page.contains("not registered"), "{status}: {page}");
    let (status, _, page) = b.get(&logout("https://crm.evil.test/signed-out")).await;
    assert!(status >= 400 && page.contains("not registered"), "{status}: {page}");
}
both_stores!(cors_and_logout_follow_the_tenant_domains, &DOMAINS);

#[test]
fn templates_and_domains_are_checked_when_the_suite_is_applied() {
    let parse = |suite: &str| {
        portico_server::suite::Suite::parse("suite.toml", suite, &std::collections::HashSet::new())
            .err()
            .map(|e| e.to_string())
    };
    assert_eq!(parse(&DOMAINS), None);
    let cases: [(String, &str, &str); 7] = [
        // A product without tenants has no tenant domains to follow.
        (
            DOMAINS.replace(
                "id = \"billing-web\"\nproduct = \"billing\"\nkind = \"confidential\"\nsecret = \"billing-secret-0123456789abcdef0123456789a\"\nredirect_uris = [\"http://127.0.0.1:9/callback\"]",
                "id = \"billing-web\"\nproduct = \"billing\"\nkind = \"confidential\"\nsecret = \"billing-secret-0123456789abcdef0123456789a\"\nredirect_uris = [\"https://{tenant_domain}/callback\"]",
            ),
            "redirect_uris",
            "tenant_aware",
        ),
        (DOMAINS.replace("https://crm.{tenant_domain}/callback", "http://crm.{tenant_domain}/callback"), "redirect_uris", "https"),
        (DOMAINS.replace("https://crm.{tenant_domain}/callback", "https://example.test/{tenant_domain}"), "redirect_uris", "host"),
        (DOMAINS.replace("https://crm.{tenant_domain}/callback", "https://crm.{tenant_domain}/cb#x"), "redirect_uris", "fragment"),
        (DOMAINS.replace("\"https://crm.{tenant_domain}\"", "\"https://crm.{tenant_domain}/\""), "web_origins", "origin"),
        (DOMAINS.replace("domains = [\"acme.test\"]", "domains = [\"globex.test\"]"), "domains", "one tenant"),
        (DOMAINS.replace("domains = [\"acme.test\"]", "domains = [\"https://acme.test\"]"), "domains", "host name"),
    ];
    for (suite, field, why) in cases {
        let e = parse(&suite).unwrap_or_else(|| panic!("taken: {field} {why}"));
        assert!(e.contains(&format!("field {field}")) && e.contains(why), "{field} {why}: {e}");
    }
}

/// The domains suite with each product's sign-in page: CRM's follows the tenant domains,
/// Reports' is one page for every tenant, Billing's is local.
static LAUNCH: LazyLock<String> = LazyLock::new(|| {
    let suite = DOMAINS
        .replace(
            "id = \"crm-web\"\n",
            "id = \"crm-web\"\ninitiate_login_uri = \"https://crm.{tenant_domain}/login\"\n",
        )
        .replace(
            "id = \"reports-web\"\n",
            "id = \"reports-web\"\ninitiate_login_uri = \"https://reports.example.test/start\"\n",
        )
        .replace(
            "id = \"billing-web\"\n",
            "id = \"billing-web\"\ninitiate_login_uri = \"http://127.0.0.1:7105/login\"\n",
        );
    assert_eq!(suite.matches("initiate_login_uri").count(), 3);
    suite
});

async fn the_launcher_lists_exactly_what_the_grants_let_the_user_enter(s: &TestServer) {
    let p = &s.running.provider;
    let now = portico_testkit::now();
    let id = |email: &'static str| async move { s.store().user_by_email(email).await.unwrap().unwrap().0.id };
    let lines = portico_protocol::account::launcher(p, &id("ada@example.test").await, now).await.unwrap();
    let seen: Vec<(String, Option<String>, Vec<String>)> = lines
        .iter()
        .map(|l| (l.product.clone(), l.tenant.clone(), l.links.iter().map(|k| k.host.clone()).collect()))
        .collect();
    let line = |product: &str, tenant: Option<&str>, hosts: &[&str]| {
        (
            product.to_owned(),
            tenant.map(str::to_owned),
            hosts.iter().map(|h| h.to_string()).collect::<Vec<_>>(),
        )
    };
    assert_eq!(
        seen,
        [
            line("Billing", None, &["127.0.0.1"]),
            line("CRM", Some("Acme Bank"), &["crm.acme.test"]),
            line("CRM", Some("Globex"), &["crm.globex.test", "crm.globex-bank.test"]),
            line("Reports", Some("Acme Bank"), &["reports.example.test"]),
        ]
    );
    assert_eq!(lines[2].domains, ["globex.test", "globex-bank.test"], "the permitted domains");
    // OIDC Core §4: the page gets `iss`; one page for every tenant also gets the tenant (a handle).
    let crm = url::Url::parse(&lines[1].links[0].url).unwrap();
    assert_eq!(
        (crm.path(), crm.query_pairs().collect::<Vec<_>>()),
        ("/login", vec![("iss".into(), s.base.clone().into())])
    );
    let reports = url::Url::parse(&lines[3].links[0].url).unwrap();
    let organization = reports.query_pairs().find(|(k, _)| k == "organization").unwrap().1.into_owned();
    assert!(organization.starts_with("th_"), "a handle, not the tenant's id: {organization}");
    assert_eq!(
        portico_protocol::tenants::find(p, &p.config(), &organization, now)
            .map(|t| t.slug.clone())
            .as_deref(),
        Some("acme")
    );

    // Bob holds CRM in Acme only; Olga holds CRM in every tenant ("*"), Initech has no domain.
    let bob = portico_protocol::account::launcher(p, &id("bob@example.test").await, now).await.unwrap();
    assert_eq!(
        bob.iter().map(|l| (l.product.as_str(), l.tenant.as_deref())).collect::<Vec<_>>(),
        [("CRM", Some("Acme Bank"))]
    );
    let olga = portico_protocol::account::launcher(p, &id("olga@example.test").await, now).await.unwrap();
    let tenants: Vec<_> = olga.iter().map(|l| (l.tenant.as_deref().unwrap(), l.links.len())).collect();
    assert_eq!(tenants, [("Acme Bank", 1), ("Globex", 2), ("Initech", 0)]);

    // The account page shows it.
    let mut b = Browser::new();
    crate::tenancy::tokens(&mut b, s, "crm-web", CRM_SECRET, "ada@example.test", Some("acme")).await;
    let (status, _, page) = b.get(&format!("{}/account", s.base)).await;
    assert_eq!(status, 200);
    let table = page
        .split("aria-label=\"Applications\"")
        .nth(1)
        .expect("the launcher")
        .split("</table>")
        .next()
        .unwrap();
    assert!(table.contains("href=\"https://crm.globex-bank.test/login?iss="), "{table}");
    assert_eq!(table.matches("<a href=").count(), 5, "{table}");
    assert!(!table.contains("Initech"));
}
both_stores!(the_launcher_lists_exactly_what_the_grants_let_the_user_enter, &LAUNCH);

#[test]
fn a_sign_in_page_is_https_and_one_per_product() {
    let parse = |suite: &str| {
        portico_server::suite::Suite::parse("suite.toml", suite, &std::collections::HashSet::new())
            .err()
            .map(|e| e.to_string())
    };
    assert_eq!(parse(&LAUNCH), None);
    for (from, to, why) in [
        ("https://reports.example.test/start", "http://reports.example.test/start", "https"),
        ("https://reports.example.test/start", "https://reports.example.test/start#x", "fragment"),
        ("https://reports.example.test/start", "start", "absolute"),
        ("https://crm.{tenant_domain}/login", "https://{tenant_domain}.evil.test/login", "host labels"),
        ("http://127.0.0.1:7105/login", "https://billing.{tenant_domain}/login", "tenant_aware"),
    ] {
        let e = parse(&LAUNCH.replace(from, to)).unwrap_or_else(|| panic!("{to} was taken"));
        assert!(e.contains("field initiate_login_uri") && e.contains(why), "{to}: {e}");
    }
    let two = LAUNCH.replace(
        "id = \"reports-spa\"\n",
        "id = \"reports-spa\"\ninitiate_login_uri = \"https://reports.example.test/other\"\n",
    );
    let e = parse(&two).expect("two pages refused");
    assert!(e.contains("field initiate_login_uri") && e.contains("one page per product"), "{e}");
}

async fn the_pin_holds_across_a_hand_off(s: &TestServer) {
    use crate::tenancy::{REPORTS_SECRET, handoff, redeem_handoff};
    // Olga holds CRM and Reports in every tenant; she signs in on Globex's own domain.
    let mut b = Browser::new();
    let (_, loc, page, verifier) = authorize_at(&mut b, s, GLOBEX_CB, "olga@example.test", &[]).await;
    let (status, t) = redeem_at(s, GLOBEX_CB, &loc.unwrap_or_else(|| panic!("{page}")), &verifier).await;
    assert_eq!((status, org_name(&t).as_str()), (200, "Globex"));
    let access = t["access_token"].as_str().unwrap();
    // A hand-off into another tenant is refused; into Globex it works.
    let (status, e) = handoff(s, access, &[("resource", "https://reports.example.test"), ("organization", "acme")]).await;
    assert_eq!((status, e["error"].as_str()), (400, Some("invalid_request")), "{e}");
    let (status, h) = handoff(s, access, &[("resource", "https://reports.example.test")]).await;
    assert_eq!(status, 200, "{h}");
    let (status, landed) = redeem_handoff(s, "reports-web", REPORTS_SECRET, h["handoff_code"].as_str().unwrap()).await;
    assert_eq!((status, org_name(&landed).as_str()), (200, "Globex"), "{landed}");
    // The Reports session it started is pinned too: no switch to Acme.
    let rt = landed["refresh_token"].as_str().expect("a refresh token");
    let (status, e) = post_basic(
        s,
        "/oauth2/token",
        "reports-web",
        REPORTS_SECRET,
        &[("grant_type", "refresh_token"), ("refresh_token", rt), ("organization", "acme")],
    )
    .await;
    assert_eq!((status, e["error"].as_str()), (400, Some("invalid_grant")), "{e}");
}
both_stores!(the_pin_holds_across_a_hand_off, &PIN_HANDOFF);

static PIN_HANDOFF: LazyLock<String> = LazyLock::new(|| {
    format!(
        "{}\n[[grant]]\nuser = \"olga@example.test\"\nproduct = \"reports\"\ntenant = \"*\"\nroles = [\"analyst\"]\n",
        *DOMAINS
    )
});
