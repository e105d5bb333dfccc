//! Signing out: RP-initiated logout (OIDC RP-Initiated Logout 1.0) ends the SSO session and every
//! product session in it, and "sign out everywhere" (account page, admin API) ends every session on
//! every device. Products are told over the back channel; nothing survives: not silent SSO, not
//! refresh, not introspection.

use crate::admin_api::{OPS_SECRET, admin_token, api};
use crate::backchannel::{Answer, Port, Receiver, suite, verify_logout_token, with_receiver_port};
use crate::flow::decode_payload;
use crate::tenancy::{CRM_SECRET, REPORTS_SECRET, Step, redeem, refresh, start, tokens};
use crate::*;
use std::time::Duration;

const SIGNED_OUT: &str = "http://127.0.0.1:9/signed-out";

/// The back-channel suite, with a post-logout redirect URI for both web clients.
fn logout_suite(port: u16) -> String {
    let line = format!("post_logout_redirect_uris = [\"{SIGNED_OUT}\"]\n");
    suite(port)
        .replace("id = \"crm-web\"\n", &format!("id = \"crm-web\"\n{line}"))
        .replace("id = \"reports-web\"\n", &format!("id = \"reports-web\"\n{line}"))
}

fn logout_url(s: &TestServer, params: &[(&str, &str)]) -> String {
    format!(
        "{}/oauth2/logout?{}",
        s.base,
        url::form_urlencoded::Serializer::new(String::new()).extend_pairs(params).finish()
    )
}

/// Silent authorization (prompt=none) for `client` in this browser: the redirect it ends in.
async fn silent(b: &mut Browser, s: &TestServer, client: &str) -> (String, String) {
    match start(b, s, client, &[("organization", "acme"), ("prompt", "none")], "-").await {
        (Step::AtClient(loc), verifier) => (loc, verifier),
        (Step::Page(p), _) => panic!("prompt=none showed a page: {p}"),
    }
}

async fn signed_in(b: &mut Browser, s: &TestServer) -> bool {
    let (loc, _) = silent(b, s, "crm-web").await;
    match query_param(&loc, "error").as_deref() {
        None => true,
        Some("login_required") => false,
        Some(other) => panic!("unexpected {other}"),
    }
}

async fn logout_at_one_product_ends_them_all_and_tells_each(server: TestServer, port: Port) -> TestServer {
    let s = &server;
    let receiver = Receiver::serve(port.listen(), Answer::Ok).await;
    let mut b = Browser::new();
    let a = tokens(&mut b, s, "crm-web", CRM_SECRET, "ada@example.test", Some("acme")).await;
    // Silent SSO at the second product: a code, no page.
    let (loc, verifier) = silent(&mut b, s, "reports-web").await;
    let bt = redeem(s, "reports-web", REPORTS_SECRET, &loc, &verifier).await;

    let url = logout_url(
        s,
        &[
            ("id_token_hint", bt["id_token"].as_str().unwrap()),
            ("post_logout_redirect_uri", SIGNED_OUT),
            ("state", "bye"),
        ],
    );
    let (status, loc, _) = b.get(&url).await;
    assert_eq!((status, loc.as_deref()), (303, Some(format!("{SIGNED_OUT}?state=bye").as_str())));

    // Product A: silent auth needs a login now, its refresh token is dead, its access token inactive.
    let (loc, _) = silent(&mut b, s, "crm-web").await;
    assert_eq!(query_param(&loc, "error").as_deref(), Some("login_required"));
    let (status, e) = refresh(s, "crm-web", CRM_SECRET, a["refresh_token"].as_str().unwrap()).await;
    assert_eq!((status, e["error"].as_str()), (400, Some("invalid_grant")));
    let (_, i) = post_basic(
        s,
        "/oauth2/introspect",
        "crm-web",
        CRM_SECRET,
        &[("token", a["access_token"].as_str().unwrap())],
    )
    .await;
    assert_eq!(i["active"], false);

    // Both products were told, each with a logout token for its own session.
    let mut got = receiver.wait_for(2, Duration::from_secs(20)).await;
    got.sort();
    assert_eq!(got.len(), 2);
    for ((path, token), (client, t)) in got.iter().zip([("crm-web", &a), ("reports-web", &bt)]) {
        assert!(path.ends_with(if client == "crm-web" { "/crm" } else { "/reports" }));
        let claims = verify_logout_token(s, token, client).await;
        assert_eq!(claims["sid"], decode_payload(t["id_token"].as_str().unwrap())["sid"]);
    }
    // A second logout finds nothing to end and still goes back to the application.
    let (status, loc, _) = b.get(&url).await;
    assert_eq!((status, loc.as_deref()), (303, Some(format!("{SIGNED_OUT}?state=bye").as_str())));
    server
}
with_receiver_port!(
    logout_at_one_product_ends_them_all_and_tells_each_,
    logout_suite,
    logout_at_one_product_ends_them_all_and_tells_each
);

async fn a_logout_nobody_can_prove_is_confirmed_first(server: TestServer, _port: Port) -> TestServer {
    let s = &server;
    let mut b = Browser::new();
    tokens(&mut b, s, "crm-web", CRM_SECRET, "ada@example.test", Some("acme")).await;
    let bob = tokens(&mut Browser::new(), s, "crm-web", CRM_SECRET, "bob@example.test", Some("acme")).await;
    // No hint, or a hint for somebody else: a page that asks; the session lives on meanwhile.
    for params in [
        vec![("client_id", "crm-web"), ("post_logout_redirect_uri", SIGNED_OUT), ("state", "s1")],
        vec![
            ("id_token_hint", bob["id_token"].as_str().unwrap()),
            ("post_logout_redirect_uri", SIGNED_OUT),
            ("state", "s1"),
        ],
    ] {
        let (status, loc, page) = b.get(&logout_url(s, &params)).await;
        assert_eq!((status, loc), (200, None));
        assert!(page.contains("Sign out?") && page.contains("ada@example.test"), "{page}");
        assert!(signed_in(&mut b, s).await, "asking ended nothing");
    }
    let (_, _, page) = b
        .get(&logout_url(
            s,
            &[("client_id", "crm-web"), ("post_logout_redirect_uri", SIGNED_OUT), ("state", "s1")],
        ))
        .await;
    let field = |n: &str| hidden(&page, n).unwrap_or_default();
    // A confirmation forged from another site (no CSRF token) ends nothing.
    let (status, _, _) = b
        .post_form(
            &format!("{}/oauth2/logout", s.base),
            &[
                ("confirm", "yes"),
                ("client_id", "crm-web"),
                ("csrf", "forged-forged-forged-forged-forged-forged"),
            ],
        )
        .await;
    assert_eq!(status, 403);
    assert!(signed_in(&mut b, s).await);
    let form = [
        ("csrf", field("csrf")),
        ("confirm", field("confirm")),
        ("client_id", field("client_id")),
        ("post_logout_redirect_uri", field("post_logout_redirect_uri")),
        ("state", field("state")),
    ];
    let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let (status, loc, _) = b.post_form(&format!("{}/oauth2/logout", s.base), &form).await;
    assert_eq!((status, loc.as_deref()), (303, Some(format!("{SIGNED_OUT}?state=s1").as_str())));
    assert!(!signed_in(&mut b, s).await);
    server
}
with_receiver_port!(
    a_logout_nobody_can_prove_is_confirmed_first_,
    logout_suite,
    a_logout_nobody_can_prove_is_confirmed_first
);

async fn bad_logout_requests_are_refused_and_end_nothing(server: TestServer, _port: Port) -> TestServer {
    let s = &server;
    let mut b = Browser::new();
    let t = tokens(&mut b, s, "crm-web", CRM_SECRET, "ada@example.test", Some("acme")).await;
    let id_token = t["id_token"].as_str().unwrap().to_owned();
    let mut bad: Vec<Vec<(&str, String)>> = vec![
        // Off by one character from the registered URI.
        vec![
            ("client_id", "crm-web".into()),
            ("post_logout_redirect_uri", "http://127.0.0.1:9/signed-ou".into()),
        ],
        vec![("client_id", "crm-web".into()), ("post_logout_redirect_uri", format!("{SIGNED_OUT}/"))],
        // A redirect URI with nobody to vouch for it.
        vec![("post_logout_redirect_uri", SIGNED_OUT.into())],
        vec![("client_id", "no-such-client".into())],
        // The hint was issued to crm-web, not to the client named.
        vec![("id_token_hint", id_token.clone()), ("client_id", "reports-web".into())],
    ];
    for forged in forgeries(&id_token, |c| c["sub"] = serde_json::json!("usr_someone_else")) {
        bad.push(vec![("id_token_hint", forged), ("post_logout_redirect_uri", SIGNED_OUT.into())]);
    }
    for params in &bad {
        let params: Vec<(&str, &str)> = params.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let (status, loc, page) = b.get(&logout_url(s, &params)).await;
        assert_eq!((status, loc), (400, None), "{params:?}: never redirected");
        assert!(page.contains("cannot be completed"), "{page}");
        assert!(signed_in(&mut b, s).await, "{params:?} ended the session");
    }
    // An expired ID token still names its user (§2): accepted as a hint a day later.
    let req = portico_protocol::logout::LogoutRequest {
        id_token_hint: Some(id_token.clone()),
        ..Default::default()
    };
    let later = portico_testkit::now() + 86_400;
    let v = portico_protocol::logout::validate(&s.running.provider, &req, later).expect("an expired hint is a hint");
    assert_eq!(v.hinted_user.unwrap().as_str(), decode_payload(&id_token)["sub"].as_str().unwrap());
    server
}
with_receiver_port!(
    bad_logout_requests_are_refused_and_end_nothing_,
    logout_suite,
    bad_logout_requests_are_refused_and_end_nothing
);

async fn signing_out_everywhere_ends_both_devices(server: TestServer, port: Port) -> TestServer {
    let s = &server;
    let receiver = Receiver::serve(port.listen(), Answer::Ok).await;
    let (mut laptop, mut phone) = (Browser::new(), Browser::new());
    let on_laptop = tokens(&mut laptop, s, "crm-web", CRM_SECRET, "ada@example.test", Some("acme")).await;
    let on_phone = tokens(&mut phone, s, "reports-web", REPORTS_SECRET, "ada@example.test", Some("acme")).await;

    // The account page lists both sessions, this device marked once.
    let (status, _, page) = laptop.get(&format!("{}/account", s.base)).await;
    assert_eq!(status, 200);
    assert_eq!(page.matches("<form method=\"post\" action=\"/account/sessions/end\">").count(), 2, "{page}");
    assert_eq!(page.matches("This device").count(), 1);
    assert!(page.contains("CRM") || page.contains("crm-web"), "{page}");

    let form = [("csrf", hidden(&page, "csrf").unwrap())];
    let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let (status, _, body) = laptop.post_form(&format!("{}/account/sessions/end-all", s.base), &form).await;
    assert_eq!(status, 200);
    assert!(body.contains("You have signed out"));
    assert!(!signed_in(&mut laptop, s).await);
    assert!(!signed_in(&mut phone, s).await, "the other device is signed out too");
    for (client, secret, t) in [("crm-web", CRM_SECRET, &on_laptop), ("reports-web", REPORTS_SECRET, &on_phone)] {
        let (status, _) = refresh(s, client, secret, t["refresh_token"].as_str().unwrap()).await;
        assert_eq!(status, 400, "{client}'s refresh token died");
    }
    assert_eq!(receiver.wait_for(2, Duration::from_secs(20)).await.len(), 2, "both products told");
    let (status, loc, _) = laptop.get(&format!("{}/account", s.base)).await;
    assert_eq!((status, loc.as_deref()), (303, Some("/login?next=/account")));
    server
}
with_receiver_port!(
    signing_out_everywhere_ends_both_devices_,
    logout_suite,
    signing_out_everywhere_ends_both_devices
);

async fn the_account_page_ends_another_device_only(server: TestServer, _port: Port) -> TestServer {
    let s = &server;
    let (mut laptop, mut phone) = (Browser::new(), Browser::new());
    // Signing in from the account page itself returns there.
    let (_, loc, _) = laptop.get(&format!("{}/account", s.base)).await;
    let (_, _, login) = laptop.get(&format!("{}{}", s.base, loc.unwrap())).await;
    let (status, loc, _) = laptop.login(&s.base, &login, "ada@example.test", crate::tenancy::PASSWORD).await;
    assert_eq!((status, loc), (200, None), "followed back to /account");
    tokens(&mut phone, s, "crm-web", CRM_SECRET, "ada@example.test", Some("acme")).await;
    let (_, _, page) = laptop.get(&format!("{}/account", s.base)).await;
    // The phone's row: the one without the "This device" mark.
    let phone_row = page
        .split("<tr>")
        .find(|r| r.contains("name=\"session\"") && !r.contains("This device"))
        .expect("the phone's session");
    let form = [("csrf", hidden(&page, "csrf").unwrap()), ("session", hidden(phone_row, "session").unwrap())];
    let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let (status, loc, _) = laptop.post_form(&format!("{}/account/sessions/end", s.base), &form).await;
    assert_eq!((status, loc.as_deref()), (303, Some("/account")));
    assert!(!signed_in(&mut phone, s).await);
    assert!(signed_in(&mut laptop, s).await, "this device stays signed in");
    // Another user's session id is not this user's to end.
    let mut other = Browser::new();
    tokens(&mut other, s, "crm-web", CRM_SECRET, "bob@example.test", Some("acme")).await;
    let (bob, _) = s.store().user_by_email("bob@example.test").await.unwrap().unwrap();
    let bob_session = s.store().sessions_of(&bob.id, portico_testkit::now()).await.unwrap()[0].id.clone();
    let form = [("csrf", hidden(&page, "csrf").unwrap()), ("session", bob_session)];
    let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
    laptop.post_form(&format!("{}/account/sessions/end", s.base), &form).await;
    assert!(signed_in(&mut other, s).await, "bob's session is untouched");
    server
}
with_receiver_port!(
    the_account_page_ends_another_device_only_,
    logout_suite,
    the_account_page_ends_another_device_only
);

async fn an_administrator_signs_a_user_out_everywhere(server: TestServer, _port: Port) -> TestServer {
    let s = &server;
    let (mut laptop, mut phone) = (Browser::new(), Browser::new());
    tokens(&mut laptop, s, "crm-web", CRM_SECRET, "ada@example.test", Some("acme")).await;
    tokens(&mut phone, s, "crm-web", CRM_SECRET, "ada@example.test", Some("acme")).await;
    let (ada, _) = s.store().user_by_email("ada@example.test").await.unwrap().unwrap();
    let ops = admin_token(s, "ops-bot", OPS_SECRET).await;
    let path = format!("/api/v1/users/{}/sessions", ada.id);
    let (status, _, list) = api(s, "GET", &path, Some(&ops), None).await;
    assert_eq!(status, 200);
    let sessions = list["sessions"].as_array().unwrap();
    assert_eq!(sessions.len(), 2);
    assert_eq!(sessions[0]["products"][0]["client_id"], "crm-web");
    // One session by id, then the rest.
    let first = sessions[0]["id"].as_str().unwrap().to_owned();
    assert_eq!(api(s, "DELETE", &format!("{path}/{first}"), Some(&ops), None).await.0, 204);
    assert_eq!(api(s, "DELETE", &format!("{path}/{first}"), Some(&ops), None).await.0, 404, "already ended");
    let (status, _, ended) = api(s, "DELETE", &path, Some(&ops), None).await;
    assert_eq!((status, ended["ended"].as_i64()), (200, Some(1)));
    assert!(!signed_in(&mut laptop, s).await && !signed_in(&mut phone, s).await);
    assert_eq!(api(s, "GET", &path, Some(&ops), None).await.2["sessions"], serde_json::json!([]));
    // The audit log names the administrator and where it called from.
    s.running.provider.writer.flush().await;
    let records = s.store().audit_records(0, 10_000).await.unwrap();
    let e = records.iter().find(|r| r.event.kind == "session.ended_all").expect("audited");
    assert_eq!((e.event.actor.as_str(), e.event.ip.as_deref()), ("client:ops-bot", Some("127.0.0.1")));
    server
}
with_receiver_port!(
    an_administrator_signs_a_user_out_everywhere_,
    logout_suite,
    an_administrator_signs_a_user_out_everywhere
);

/// The logout suite with CRM (where Ada holds Acme and Globex) as a `single_session` product.
fn single_session_suite(port: u16) -> String {
    logout_suite(port).replace("slug = \"crm\"\n", "slug = \"crm\"\nsingle_session = true\n")
}

async fn a_single_session_product_keeps_one_session_per_browser(server: TestServer, port: Port) -> TestServer {
    let s = &server;
    let receiver = Receiver::serve(port.listen(), Answer::Ok).await;
    let mut b = Browser::new();
    let acme = tokens(&mut b, s, "crm-web", CRM_SECRET, "ada@example.test", Some("acme")).await;
    // A second tab of the same browser enters the other tenant: a new product session, and the
    // first one ends with everything in it.
    let globex = match start(&mut b, s, "crm-web", &[("organization", "globex"), ("prompt", "none")], "-").await {
        (Step::AtClient(loc), verifier) => redeem(s, "crm-web", CRM_SECRET, &loc, &verifier).await,
        (Step::Page(p), _) => panic!("{p}"),
    };
    let sid = |t: &serde_json::Value| decode_payload(t["id_token"].as_str().unwrap())["sid"].clone();
    assert_ne!(sid(&acme), sid(&globex));
    let (status, e) = refresh(s, "crm-web", CRM_SECRET, acme["refresh_token"].as_str().unwrap()).await;
    assert_eq!((status, e["error"].as_str()), (400, Some("invalid_grant")), "the first tab's session ended");
    let (_, i) = post_basic(
        s,
        "/oauth2/introspect",
        "crm-web",
        CRM_SECRET,
        &[("token", acme["access_token"].as_str().unwrap())],
    )
    .await;
    assert_eq!(i["active"], false);
    let (status, _) = refresh(s, "crm-web", CRM_SECRET, globex["refresh_token"].as_str().unwrap()).await;
    assert_eq!(status, 200, "the new one lives");
    let got = receiver.wait_for(1, Duration::from_secs(20)).await;
    assert_eq!(got.len(), 1);
    assert_eq!(verify_logout_token(s, &got[0].1, "crm-web").await["sid"], sid(&acme));

    // Reports is not single-session: a second authorization joins the same product session.
    let r1 = tokens(&mut b, s, "reports-web", REPORTS_SECRET, "-", Some("acme")).await;
    let (loc, verifier) = silent(&mut b, s, "reports-web").await;
    let r2 = redeem(s, "reports-web", REPORTS_SECRET, &loc, &verifier).await;
    assert_eq!(sid(&r1), sid(&r2));
    assert_eq!(refresh(s, "reports-web", REPORTS_SECRET, r1["refresh_token"].as_str().unwrap()).await.0, 200);
    // The account page's data: each product session with when and from where it was last used.
    let (ada, _) = s.store().user_by_email("ada@example.test").await.unwrap().unwrap();
    let sessions = s.store().sessions_of(&ada.id, portico_testkit::now()).await.unwrap();
    assert_eq!(sessions.len(), 1);
    let products: Vec<&str> = sessions[0].products.iter().map(|p| p.client_id.as_str()).collect();
    assert_eq!(products, ["crm-web", "reports-web"]);
    assert!(sessions[0].products.iter().all(|p| p.ip == "127.0.0.1" && p.last_seen >= p.created_at));
    server
}
with_receiver_port!(
    a_single_session_product_keeps_one_session_per_browser_,
    single_session_suite,
    a_single_session_product_keeps_one_session_per_browser
);

async fn logout_never_waits_for_a_product_that_hangs(server: TestServer, port: Port) -> TestServer {
    let s = &server;
    let receiver = Receiver::serve(port.listen(), Answer::Hang).await;
    let mut b = Browser::new();
    let t = tokens(&mut b, s, "crm-web", CRM_SECRET, "ada@example.test", Some("acme")).await;
    let url = logout_url(
        s,
        &[("id_token_hint", t["id_token"].as_str().unwrap()), ("post_logout_redirect_uri", SIGNED_OUT)],
    );
    let (status, loc, _) = b.get(&url).await;
    assert_eq!((status, loc.as_deref()), (303, Some(SIGNED_OUT)));
    // The notice went out and its answer never came: the logout above had already completed.
    assert_eq!(receiver.wait_for(1, Duration::from_secs(20)).await.len(), 1);
    assert!(!signed_in(&mut b, s).await);
    server
}
with_receiver_port!(logout_never_waits_, logout_suite, logout_never_waits_for_a_product_that_hangs);

async fn a_refresh_token_works_only_for_its_client_and_session(server: TestServer, _port: Port) -> TestServer {
    let s = &server;
    let mut b = Browser::new();
    let crm = tokens(&mut b, s, "crm-web", CRM_SECRET, "ada@example.test", Some("acme")).await;
    let rt = crm["refresh_token"].as_str().unwrap();
    // Another client, even of the same user and tenant, cannot use it.
    let (status, e) = refresh(s, "reports-web", REPORTS_SECRET, rt).await;
    assert_eq!((status, e["error"].as_str()), (400, Some("invalid_grant")));
    let (status, rotated) = refresh(s, "crm-web", CRM_SECRET, rt).await;
    assert_eq!(status, 200, "its own client still can");
    // Ending the product session (here: its SSO session, from the account page) ends it.
    let (_, _, page) = b.get(&format!("{}/account", s.base)).await;
    let form = [("csrf", hidden(&page, "csrf").unwrap()), ("session", hidden(&page, "session").unwrap())];
    let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let (status, _, _) = b.post_form(&format!("{}/account/sessions/end", s.base), &form).await;
    assert_eq!(status, 200);
    let (status, _) = refresh(s, "crm-web", CRM_SECRET, rotated["refresh_token"].as_str().unwrap()).await;
    assert_eq!(status, 400);
    server
}
with_receiver_port!(
    refresh_bound_to_client_and_session_,
    logout_suite,
    a_refresh_token_works_only_for_its_client_and_session
);
