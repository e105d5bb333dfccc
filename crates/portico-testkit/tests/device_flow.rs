//! The device authorization grant (RFC 8628): a command-line tool gets a device code and a user
//! code, its user approves in a browser, and the tool's polls are answered per §3.5.

use crate::*;
use serde_json::Value;
use std::sync::LazyLock;
use std::time::Duration;

const DEVICE_GRANT: &str = "urn:ietf:params:oauth:grant-type:device_code";

pub static DEVICE_SUITE: LazyLock<String> = LazyLock::new(|| {
    format!(
        "{SUITE}\n[[client]]\nid = \"crm-cli\"\nname = \"CRM command line\"\nproduct = \"crm\"\nkind = \"public\"\napplication_type = \"native\"\ngrant_types = [\"{DEVICE_GRANT}\", \"refresh_token\"]\n\n[[client]]\nid = \"other-cli\"\nproduct = \"crm\"\nkind = \"public\"\ngrant_types = [\"{DEVICE_GRANT}\"]\n"
    )
});

async fn form(s: &TestServer, path: &str, form: &[(&str, &str)]) -> (u16, Option<String>, Value) {
    let resp = openidconnect::reqwest::Client::new()
        .post(format!("{}{path}", s.base))
        .form(form)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let cache = resp.headers().get("cache-control").map(|v| v.to_str().unwrap().to_owned());
    (status, cache, serde_json::from_str(&resp.text().await.unwrap()).unwrap_or(Value::Null))
}

/// A device authorization for `client`.
async fn start(s: &TestServer, client: &str) -> Value {
    let (status, cache, body) = form(s, "/oauth2/device_authorization", &[("client_id", client), ("scope", "openid offline_access")]).await;
    assert_eq!((status, cache.as_deref()), (200, Some("no-store")), "{body}");
    body
}

async fn poll(s: &TestServer, client: &str, device_code: &str) -> (u16, Value) {
    let (status, _, body) = form(
        s,
        "/oauth2/token",
        &[("grant_type", DEVICE_GRANT), ("client_id", client), ("device_code", device_code)],
    )
    .await;
    (status, body)
}

fn error(answer: &(u16, Value)) -> (u16, Option<&str>) {
    (answer.0, answer.1["error"].as_str())
}

fn wait(s: &TestServer, seconds: u64) {
    s.running.provider.clock.advance(Duration::from_secs(seconds));
}

/// Types `typed` at /device in `b`, signs ada in if asked, and answers the consent page with
/// `decision`; returns the page the browser ends on and the consent page it saw.
async fn approve(b: &mut Browser, s: &TestServer, typed: &str, decision: &str) -> (u16, String, String) {
    let (_, _, page) = b.get(&format!("{}/device", s.base)).await;
    let csrf = hidden(&page, "csrf").expect("the code form");
    let (status, loc, body) = b.post_form(&format!("{}/device", s.base), &[("csrf", &csrf), ("user_code", typed)]).await;
    assert_eq!(status, 303, "{body}");
    let (mut status, _, mut page) = b.follow(&s.base, format!("{}{}", s.base, loc.unwrap())).await;
    if page.contains("name=\"password\"") {
        let (st, loc, pg) = b.login(&s.base, &page, "ada@example.test", "correct horse battery staple").await;
        (status, page) = (st, pg);
        assert!(loc.is_none(), "{loc:?}");
    }
    assert_eq!(status, 200, "{page}");
    let consent = page.clone();
    let (csrf, req) = (hidden(&page, "csrf").expect("consent"), hidden(&page, "req").unwrap());
    let (_, loc, _) = b
        .post_form(&format!("{}/consent", s.base), &[("csrf", &csrf), ("req", &req), ("decision", decision)])
        .await;
    let (status, _, done) = b.follow(&s.base, format!("{}{}", s.base, loc.expect("where the answer goes"))).await;
    (status, done, consent)
}

async fn a_command_line_tool_signs_in_with_the_device_flow(s: &TestServer) {
    let d = start(s, "crm-cli").await;
    let user_code = d["user_code"].as_str().unwrap();
    assert!(
        user_code.len() == 9
            && user_code
                .chars()
                .enumerate()
                .all(|(i, c)| if i == 4 { c == '-' } else { "BCDFGHJKLMNPQRSTVWXZ".contains(c) }),
        "{user_code}"
    );
    assert_eq!(d["verification_uri"], format!("{}/device", s.base));
    assert_eq!(d["verification_uri_complete"], format!("{}/device?user_code={user_code}", s.base));
    assert_eq!((d["expires_in"].as_i64(), d["interval"].as_i64()), (Some(600), Some(5)));
    let device_code = d["device_code"].as_str().unwrap();
    assert_eq!(error(&poll(s, "crm-cli", device_code).await), (400, Some("authorization_pending")));
    // The link the device shows fills the form in.
    let mut b = Browser::new();
    let (_, _, page) = b.get(d["verification_uri_complete"].as_str().unwrap()).await;
    assert!(page.contains(&format!("value=\"{user_code}\"")), "{page}");
    // Typed as people type it: lower case, a space for the dash.
    let typed = user_code.to_lowercase().replace('-', " ");
    let (status, done, consent) = approve(&mut b, s, &typed, "allow").await;
    assert!(
        consent.contains("CRM command line") && consent.contains("CRM") && consent.contains(user_code),
        "{consent}"
    );
    assert!(consent.contains("This signs in a device"), "{consent}");
    assert!(
        consent.contains("signed in as <strong>ada@example.test</strong>"),
        "the account it signs in to: {consent}"
    );
    assert_eq!(status, 200);
    assert!(done.contains("Your device is signed in"), "{done}");
    wait(s, 6);
    let (status, tokens) = poll(s, "crm-cli", device_code).await;
    assert_eq!(status, 200, "{tokens}");
    let claims = crate::flow::decode_payload(tokens["access_token"].as_str().unwrap());
    assert_eq!(
        (claims["aud"].as_str(), claims["client_id"].as_str()),
        (Some("https://crm.example.test"), Some("crm-cli"))
    );
    assert!(tokens["refresh_token"].is_string() && tokens["id_token"].is_string(), "{tokens}");
    // Single use.
    wait(s, 6);
    assert_eq!(error(&poll(s, "crm-cli", device_code).await), (400, Some("invalid_grant")));
    // The code it was approved with is spent too: the form says so.
    let (_, _, page) = b.get(&format!("{}/device", s.base)).await;
    let csrf = hidden(&page, "csrf").unwrap();
    let (status, _, page) = b.post_form(&format!("{}/device", s.base), &[("csrf", &csrf), ("user_code", user_code)]).await;
    assert!(status == 400 && page.contains("not right, or it has expired"), "{page}");
}
both_stores!(a_command_line_tool_signs_in_with_the_device_flow, &crate::device_flow::DEVICE_SUITE);

async fn polling_too_fast_slows_down_and_the_interval_grows_by_five_seconds(s: &TestServer) {
    let d = start(s, "crm-cli").await;
    let code = d["device_code"].as_str().unwrap();
    assert_eq!(error(&poll(s, "crm-cli", code).await).1, Some("authorization_pending"));
    assert_eq!(error(&poll(s, "crm-cli", code).await).1, Some("slow_down"));
    // The interval is 10 s now: 6 s later is still too soon.
    wait(s, 6);
    assert_eq!(error(&poll(s, "crm-cli", code).await).1, Some("slow_down"));
    wait(s, 16);
    assert_eq!(error(&poll(s, "crm-cli", code).await).1, Some("authorization_pending"));
}
both_stores!(
    polling_too_fast_slows_down_and_the_interval_grows_by_five_seconds,
    &crate::device_flow::DEVICE_SUITE
);

async fn a_denied_device_hears_access_denied_and_an_expired_one_expired_token(s: &TestServer) {
    let d = start(s, "crm-cli").await;
    let (_, done, _) = approve(&mut Browser::new(), s, d["user_code"].as_str().unwrap(), "deny").await;
    assert!(done.contains("was not signed in"), "{done}");
    let code = d["device_code"].as_str().unwrap();
    assert_eq!(error(&poll(s, "crm-cli", code).await), (400, Some("access_denied")));
    assert_eq!(error(&poll(s, "crm-cli", code).await).1, Some("invalid_grant"));
    // Ten minutes on, a code nobody answered has expired, for the device and at the form.
    let d = start(s, "crm-cli").await;
    wait(s, 601);
    assert_eq!(
        error(&poll(s, "crm-cli", d["device_code"].as_str().unwrap()).await),
        (400, Some("expired_token"))
    );
    let mut b = Browser::new();
    let (_, _, page) = b.get(&format!("{}/device", s.base)).await;
    let csrf = hidden(&page, "csrf").unwrap();
    let (status, _, _) = b
        .post_form(
            &format!("{}/device", s.base),
            &[("csrf", &csrf), ("user_code", d["user_code"].as_str().unwrap())],
        )
        .await;
    assert_eq!(status, 400);
}
both_stores!(
    a_denied_device_hears_access_denied_and_an_expired_one_expired_token,
    &crate::device_flow::DEVICE_SUITE
);

async fn a_device_code_is_its_clients_alone_and_user_codes_cannot_be_guessed(s: &TestServer) {
    let d = start(s, "crm-cli").await;
    let code = d["device_code"].as_str().unwrap();
    assert_eq!(error(&poll(s, "other-cli", code).await), (400, Some("invalid_grant")));
    assert_eq!(error(&poll(s, "crm-cli", &format!("{code}x")).await), (400, Some("invalid_grant")));
    assert_eq!(error(&poll(s, "crm-cli", "").await).1, Some("invalid_request"));
    // A client without the grant, an unknown scope, a product it may not ask for.
    let (status, _, body) = form(s, "/oauth2/device_authorization", &[("client_id", "crm-spa")]).await;
    assert_eq!((status, body["error"].as_str()), (400, Some("unauthorized_client")));
    let (_, _, body) = form(s, "/oauth2/device_authorization", &[("client_id", "crm-cli"), ("scope", "openid admin")]).await;
    assert_eq!(body["error"], "invalid_scope");
    let (_, _, body) = form(
        s,
        "/oauth2/device_authorization",
        &[("client_id", "crm-cli"), ("resource", "https://reports.example.test")],
    )
    .await;
    assert_eq!(body["error"], "invalid_target");
    let (status, _, body) = form(s, "/oauth2/device_authorization", &[("client_id", "nobody")]).await;
    assert_eq!((status, body["error"].as_str()), (401, Some("invalid_client")));
    // Wrong codes are told apart from nothing, and an address gets ten tries a minute.
    let mut b = Browser::new();
    let (_, _, page) = b.get(&format!("{}/device", s.base)).await;
    let csrf = hidden(&page, "csrf").unwrap();
    let mut statuses = Vec::new();
    for guess in [
        "BCDF-GHJK",
        "bcdfghjk",
        "AAAA-AAAA",
        "1234",
        "",
        "BCDF-GHJL",
        "BCDF-GHJM",
        "BCDF-GHJN",
        "BCDF-GHJP",
        "BCDF-GHJQ",
        d["user_code"].as_str().unwrap(),
    ] {
        let (status, _, page) = b.post_form(&format!("{}/device", s.base), &[("csrf", &csrf), ("user_code", guess)]).await;
        statuses.push(status);
        assert!(!page.contains("name=\"password\""), "{guess}");
    }
    assert_eq!(statuses, [400, 400, 400, 400, 400, 400, 400, 400, 400, 400, 429], "even the right code waits");
    // The device is still waiting: nothing anyone tried changed it.
    assert_eq!(error(&poll(s, "crm-cli", code).await).1, Some("authorization_pending"));
}
both_stores!(
    a_device_code_is_its_clients_alone_and_user_codes_cannot_be_guessed,
    &crate::device_flow::DEVICE_SUITE
);

async fn fifty_polls_at_once_after_approval_get_one_token(s: &TestServer) {
    let d = start(s, "crm-cli").await;
    approve(&mut Browser::new(), s, d["user_code"].as_str().unwrap(), "allow").await;
    wait(s, 6);
    let code = d["device_code"].as_str().unwrap();
    let answers = futures_util::future::join_all((0..50).map(|_| poll(s, "crm-cli", code))).await;
    let ok: Vec<&Value> = answers.iter().filter(|(status, _)| *status == 200).map(|(_, b)| b).collect();
    assert_eq!(ok.len(), 1, "{answers:?}");
    // And the losers did not spend the code a second time (which revokes what it issued).
    let resp = openidconnect::reqwest::Client::new()
        .get(format!("{}/oauth2/userinfo", s.base))
        .bearer_auth(ok[0]["access_token"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200, "the token one poll got is live");
    assert!(
        answers
            .iter()
            .filter(|(status, _)| *status != 200)
            .all(|(_, b)| ["invalid_grant", "slow_down"].contains(&b["error"].as_str().unwrap_or("")))
    );
}
both_stores!(fifty_polls_at_once_after_approval_get_one_token, &crate::device_flow::DEVICE_SUITE);

async fn a_user_without_a_grant_cannot_approve_a_device_nor_end_its_flow(s: &TestServer) {
    // Bob holds no CRM grant: the gate refuses him, and says so; the device goes on waiting.
    let d = start(s, "crm-cli").await;
    let mut b = Browser::new();
    let (_, _, page) = b.get(&format!("{}/device", s.base)).await;
    let csrf = hidden(&page, "csrf").unwrap();
    let (_, loc, _) = b
        .post_form(
            &format!("{}/device", s.base),
            &[("csrf", &csrf), ("user_code", d["user_code"].as_str().unwrap())],
        )
        .await;
    let (_, _, login) = b.follow(&s.base, format!("{}{}", s.base, loc.unwrap())).await;
    let (status, loc, page) = b.login(&s.base, &login, "bob@example.test", "bob's long enough password").await;
    assert_eq!((status, loc), (400, None), "{page}");
    assert!(page.contains("This account cannot sign that device in"), "{page}");
    let code = d["device_code"].as_str().unwrap();
    assert_eq!(error(&poll(s, "crm-cli", code).await).1, Some("authorization_pending"));
    // Ada, who holds one, approves it after all.
    let (_, done, _) = approve(&mut Browser::new(), s, d["user_code"].as_str().unwrap(), "allow").await;
    assert!(done.contains("Your device is signed in"), "{done}");
    wait(s, 6);
    assert_eq!(poll(s, "crm-cli", code).await.0, 200);
}
both_stores!(
    a_user_without_a_grant_cannot_approve_a_device_nor_end_its_flow,
    &crate::device_flow::DEVICE_SUITE
);

async fn an_approved_device_that_polls_late_still_gets_its_tokens(s: &TestServer) {
    let d = start(s, "crm-cli").await;
    approve(&mut Browser::new(), s, d["user_code"].as_str().unwrap(), "allow").await;
    // Five minutes on (a device asleep, or slowed down a lot), within the code's ten.
    wait(s, 300);
    let (status, tokens) = poll(s, "crm-cli", d["device_code"].as_str().unwrap()).await;
    assert_eq!(status, 200, "{tokens}");
}
both_stores!(an_approved_device_that_polls_late_still_gets_its_tokens, &crate::device_flow::DEVICE_SUITE);

async fn a_device_approval_goes_on_only_in_the_browser_its_code_was_typed_in(s: &TestServer) {
    let d = start(s, "crm-cli").await;
    let mut a = Browser::new();
    let (_, _, page) = a.get(&format!("{}/device", s.base)).await;
    let csrf = hidden(&page, "csrf").unwrap();
    let (_, loc, _) = a
        .post_form(
            &format!("{}/device", s.base),
            &[("csrf", &csrf), ("user_code", d["user_code"].as_str().unwrap())],
        )
        .await;
    let step = loc.expect("the sign-in step");
    assert!(step.starts_with("/login?req="), "{step}");
    // The step's link, opened elsewhere (sent to a victim, say), is refused there: it neither
    // restarts nor skips the code form and its count.
    let (status, loc, page) = Browser::new().get(&format!("{}{step}", s.base)).await;
    assert_eq!((status, loc), (403, None), "{page}");
    assert!(!page.contains("name=\"password\""));
}
both_stores!(
    a_device_approval_goes_on_only_in_the_browser_its_code_was_typed_in,
    &crate::device_flow::DEVICE_SUITE
);

async fn a_device_has_a_session_of_its_own_that_outlives_the_browsers_sign_out(s: &TestServer) {
    let d = start(s, "crm-cli").await;
    let mut b = Browser::new();
    approve(&mut b, s, d["user_code"].as_str().unwrap(), "allow").await;
    wait(s, 6);
    let (status, tokens) = poll(s, "crm-cli", d["device_code"].as_str().unwrap()).await;
    assert_eq!(status, 200);
    // The account page lists the device.
    let (_, _, account) = b.get(&format!("{}/account", s.base)).await;
    assert!(account.contains("Device: CRM command line"), "{account}");
    // The browser signs out (confirming on the logout page): the device stays signed in.
    let (_, _, page) = b.get(&format!("{}/oauth2/logout", s.base)).await;
    let form: Vec<(String, String)> = ["csrf", "confirm"]
        .iter()
        .map(|n| (n.to_string(), hidden(&page, n).unwrap_or_default()))
        .collect();
    let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let (status, _, _) = b.post_form(&format!("{}/oauth2/logout", s.base), &form).await;
    assert!((200..400).contains(&status));
    let (_, _, after) = b.follow(&s.base, format!("{}/account", s.base)).await;
    assert!(after.contains("name=\"password\""), "the browser is signed out");
    let refresh = [
        ("grant_type", "refresh_token"),
        ("client_id", "crm-cli"),
        ("refresh_token", tokens["refresh_token"].as_str().unwrap()),
    ];
    let (status, _, renewed) = form_post(s, &refresh).await;
    assert_eq!(status, 200, "the device's session lives on: {renewed}");
    // Signing out everywhere ends it too.
    let (ada, _) = s.store().user_by_email("ada@example.test").await.unwrap().unwrap();
    let mut tx = s.store().write().await.unwrap();
    tx.end_user_sessions(&ada.id, portico_testkit::now(), &|_: &str| false).await.unwrap();
    tx.commit().await.unwrap();
    let refresh = [
        ("grant_type", "refresh_token"),
        ("client_id", "crm-cli"),
        ("refresh_token", renewed["refresh_token"].as_str().unwrap()),
    ];
    assert_eq!(form_post(s, &refresh).await.2["error"], "invalid_grant");
}
both_stores!(
    a_device_has_a_session_of_its_own_that_outlives_the_browsers_sign_out,
    &crate::device_flow::DEVICE_SUITE
);

async fn form_post(s: &TestServer, f: &[(&str, &str)]) -> (u16, Option<String>, Value) {
    form(s, "/oauth2/token", f).await
}

async fn two_browsers_approving_one_code_make_one_device_session(s: &TestServer) {
    let d = start(s, "crm-cli").await;
    let code = d["user_code"].as_str().unwrap();
    // Both reach the consent page.
    let mut pages = Vec::new();
    for _ in 0..2 {
        let mut b = Browser::new();
        let (_, _, page) = b.get(&format!("{}/device", s.base)).await;
        let csrf = hidden(&page, "csrf").unwrap();
        let (_, loc, _) = b.post_form(&format!("{}/device", s.base), &[("csrf", &csrf), ("user_code", code)]).await;
        let (_, _, login) = b.follow(&s.base, format!("{}{}", s.base, loc.unwrap())).await;
        let (status, _, consent) = b.login(&s.base, &login, "ada@example.test", "correct horse battery staple").await;
        assert!(status == 200 && consent.contains("Allow access?"), "{consent}");
        pages.push((b, consent));
    }
    let mut answers = Vec::new();
    for (b, consent) in &mut pages {
        let (csrf, req) = (hidden(consent, "csrf").unwrap(), hidden(consent, "req").unwrap());
        let (_, loc, body) = b
            .post_form(&format!("{}/consent", s.base), &[("csrf", &csrf), ("req", &req), ("decision", "allow")])
            .await;
        let answer = match loc {
            Some(l) => b.follow(&s.base, format!("{}{l}", s.base)).await,
            None => (400, None, body),
        };
        answers.push(answer);
    }
    assert!(answers[0].2.contains("Your device is signed in"), "{}", answers[0].2);
    assert_eq!(answers[1].0, 400, "the second is told it is taken: {}", answers[1].2);
    // One device session, not two.
    let (_, _, account) = pages[0].0.get(&format!("{}/account", s.base)).await;
    assert_eq!(account.matches("Device: CRM command line").count(), 1, "{account}");
    wait(s, 6);
    assert_eq!(poll(s, "crm-cli", d["device_code"].as_str().unwrap()).await.0, 200);
}
both_stores!(two_browsers_approving_one_code_make_one_device_session, &crate::device_flow::DEVICE_SUITE);
