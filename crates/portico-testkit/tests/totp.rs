//! TOTP as a second factor (RFC 6238): enrolment on the account page, the code step at sign-in,
//! codes good once and only within a step of now, and a product that requires a second factor.

use crate::flow::decode_payload;
use crate::tenancy::{BILLING_SECRET, CRM_SECRET, PASSWORD, TENANTS, tokens};
use crate::*;
use std::sync::LazyLock;
use totp_rs::{Algorithm, Secret, TOTP};

/// Billing requires a second factor.
static MFA: LazyLock<String> = LazyLock::new(|| TENANTS.replace("slug = \"billing\"\n", "slug = \"billing\"\nmfa = \"required\"\n"));

fn app(secret_b32: &str) -> TOTP {
    let secret = Secret::Encoded(secret_b32.to_owned()).to_bytes().expect("base32");
    TOTP::new_unchecked(Algorithm::SHA1, 6, 1, 30, secret, None, "ada".into())
}

fn code_at(app: &TOTP, t: i64) -> String {
    app.generate(t as u64)
}

/// Submits a form found in `page` (its csrf field) to `path`, with `fields`.
async fn submit(b: &mut Browser, s: &TestServer, page: &str, path: &str, fields: &[(&str, &str)]) -> (u16, Option<String>, String) {
    let csrf = hidden(page, "csrf").expect("csrf");
    let mut form = vec![("csrf", csrf.as_str())];
    form.extend_from_slice(fields);
    b.post_form(&format!("{}{path}", s.base), &form).await
}

/// Enrols Ada's authenticator from her account page; returns the app, the time step used and the
/// recovery codes shown.
async fn enrol(b: &mut Browser, s: &TestServer) -> (TOTP, i64, Vec<String>) {
    tokens(b, s, "crm-web", CRM_SECRET, "ada@example.test", Some("acme")).await;
    let (_, _, account) = b.get(&format!("{}/account", s.base)).await;
    assert!(account.contains("Set up an authenticator app"), "{account}");
    let (status, _, page) = submit(b, s, &account, "/account/totp/start", &[]).await;
    assert_eq!(status, 200);
    assert!(page.contains("data:image/svg+xml;base64,"), "a QR code drawn by the server");
    let secret = page
        .split("<code id=\"secret\">")
        .nth(1)
        .and_then(|x| x.split('<').next())
        .expect("the key")
        .to_owned();
    assert_eq!(secret.len(), 32, "160 bits in base32: {secret}");
    // A wrong code does not turn it on.
    let (status, _, _) = submit(b, s, &page, "/account/totp/confirm", &[("code", "000000")]).await;
    assert_eq!(status, 422);
    let (ada, _) = s.store().user_by_email("ada@example.test").await.unwrap().unwrap();
    assert!(!portico_protocol::totp::enrolled(&s.running.provider, &ada.id).await.unwrap());
    // Start again (a new key), then the right code.
    let (_, _, account) = b.get(&format!("{}/account", s.base)).await;
    let (_, _, page) = submit(b, s, &account, "/account/totp/start", &[]).await;
    let secret = page.split("<code id=\"secret\">").nth(1).and_then(|x| x.split('<').next()).unwrap().to_owned();
    let app = self::app(&secret);
    let now = portico_testkit::now();
    let (status, _, codes_page) = submit(b, s, &page, "/account/totp/confirm", &[("code", &code_at(&app, now))]).await;
    assert_eq!(status, 200);
    let (_, _, account) = b.get(&format!("{}/account", s.base)).await;
    assert!(account.contains("Authenticator app: <strong>on</strong>"), "{account}");
    assert!(account.contains("Recovery codes: <strong>10</strong> of 10 left."), "{account}");
    (app, now.div_euclid(30), recovery_codes(&codes_page))
}

/// The recovery codes a page shows.
fn recovery_codes(page: &str) -> Vec<String> {
    let list = page
        .split("<ul id=\"recovery-codes\"")
        .nth(1)
        .expect("the codes")
        .split("</ul>")
        .next()
        .unwrap();
    list.split("<code>").skip(1).map(|c| c.split('<').next().unwrap().to_owned()).collect()
}

async fn signing_in_takes_a_code_once_enrolled(s: &TestServer) {
    let mut first = Browser::new();
    let (app, step, _) = enrol(&mut first, s).await;

    // A new browser: the password leads to the code page, and no session before the code.
    let mut b = Browser::new();
    let (step_page, _) = crate::tenancy::start(&mut b, s, "billing-web", &[], "ada@example.test").await;
    let crate::tenancy::Step::Page(page) = step_page else {
        panic!("no code page")
    };
    assert!(
        page.contains("Two-step verification") && page.contains("autocomplete=\"one-time-code\""),
        "{page}"
    );
    assert!(!b_has_session(&b), "no session between the password and the code");
    // Wrong, malformed and replayed codes are refused; the page stays.
    let replayed = code_at(&app, step * 30);
    for bad in ["123456", "12345", "abcdef", replayed.as_str()] {
        let (status, _, again) = submit(&mut b, s, &page, "/login/mfa", &[("code", bad)]).await;
        assert_eq!(status, 401, "{bad}");
        assert!(again.contains("not right, or was used already"));
    }
    // The next step's code (one step of skew) is taken; the authorization goes on to Billing.
    let (status, loc, _) = submit(&mut b, s, &page, "/login/mfa", &[("code", &code_at(&app, (step + 1) * 30))]).await;
    assert_eq!(status, 303);
    let (_, loc, body) = b.follow(&s.base, format!("{}{}", s.base, loc.unwrap())).await;
    let loc = loc.unwrap_or_else(|| panic!("no authorization response: {body}"));
    assert!(
        query_param(&loc, "code").is_some(),
        "Billing, which requires a second factor, gets a code: {loc}"
    );
    assert!(b_has_session(&b));
    // The ID token says how: password and one-time code, at the MFA level.
    let t = tokens(&mut b, s, "billing-web", BILLING_SECRET, "-", None).await;
    let id = decode_payload(t["id_token"].as_str().unwrap());
    assert_eq!(id["amr"], serde_json::json!(["pwd", "otp"]));
    assert_eq!(id["acr"], "urn:portico:acr:mfa");
    // The first browser signed in with the password alone before enrolling: Billing refuses it.
    let (step_page, _) = crate::tenancy::start(&mut first, s, "billing-web", &[("prompt", "none")], "-").await;
    let crate::tenancy::Step::AtClient(loc) = step_page else { panic!() };
    assert_eq!(query_param(&loc, "error").as_deref(), Some("interaction_required"));
}
both_stores!(signing_in_takes_a_code_once_enrolled, &MFA);

fn b_has_session(b: &Browser) -> bool {
    b.cookies.get("portico_session").is_some_and(|v| !v.is_empty())
}

async fn codes_are_good_once_and_within_a_step(s: &TestServer) {
    let (app, step, _) = enrol(&mut Browser::new(), s).await;
    let p = &s.running.provider;
    let (ada, _) = s.store().user_by_email("ada@example.test").await.unwrap().unwrap();
    let ada = &ada;
    let check = |code: String, at: i64| async move { portico_protocol::totp::check(p, ada, &code, false, None, at).await.unwrap() };
    let t = |k: i64| (step + k) * 30;
    // Two steps ahead is outside the window; one step ahead is inside (late clock on the phone).
    assert!(!check(code_at(&app, t(3)), t(1)).await, "two steps early");
    assert!(check(code_at(&app, t(2)), t(1) + 29).await, "one step early");
    assert!(!check(code_at(&app, t(2)), t(1) + 29).await, "the same code twice");
    // A code of an older step than one already used is refused even inside its window.
    assert!(!check(code_at(&app, t(1)), t(2)).await, "older than the last accepted");
    // One step late (slow clock) is accepted; two steps late is not.
    assert!(check(code_at(&app, t(3)), t(4)).await, "one step late");
    assert!(!check(code_at(&app, t(4)), t(6)).await, "two steps late");
    // Turning it off takes a current code: a wrong one keeps it on.
    let mut b = Browser::new();
    let (_, _, login) = b.get(&format!("{}/login?next=/account", s.base)).await;
    let (status, loc, page) = b.login(&s.base, &login, "ada@example.test", PASSWORD).await;
    assert_eq!((status, loc), (200, None), "the code page");
    assert!(page.contains("Two-step verification"));
    let refusals = s.store().audit_records(0, 100_000).await.unwrap();
    assert!(refusals.iter().any(|r| r.event.kind == "mfa.totp_enrolled"));
    assert!(portico_protocol::totp::remove(p, &ada.id, None, portico_testkit::now()).await.unwrap());
    assert!(!portico_protocol::totp::enrolled(p, &ada.id).await.unwrap());
}
both_stores!(codes_are_good_once_and_within_a_step, &MFA);

async fn a_recovery_code_signs_in_once(s: &TestServer) {
    let (_, _, codes) = enrol(&mut Browser::new(), s).await;
    assert_eq!(codes.len(), 10);
    assert!(codes.iter().all(|c| c.len() == 11 && c.as_bytes()[5] == b'-'), "{codes:?}");
    let mut unique = codes.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), 10);
    let sign_in = |code: String| async move {
        let mut b = Browser::new();
        let (_, _, login) = b.get(&format!("{}/login?next=/account", s.base)).await;
        let (_, _, page) = b.login(&s.base, &login, "ada@example.test", PASSWORD).await;
        assert!(page.contains("recovery codes"), "{page}");
        let (status, _, _) = submit(&mut b, s, &page, "/login/mfa", &[("code", &code)]).await;
        (status, b)
    };
    // Typed in capitals, without the dash: still the code.
    let (status, mut b) = sign_in(codes[3].replace('-', "").to_uppercase()).await;
    assert_eq!(status, 303);
    let (_, _, account) = b.get(&format!("{}/account", s.base)).await;
    assert!(account.contains("Recovery codes: <strong>9</strong> of 10 left; one was used on"), "{account}");
    // Once only; and a made-up one is refused.
    assert_eq!(sign_in(codes[3].clone()).await.0, 401);
    assert_eq!(sign_in("aaaaa-bbbbb".into()).await.0, 401);
    s.running.provider.writer.flush().await;
    let used: Vec<_> = s
        .store()
        .audit_records(0, 100_000)
        .await
        .unwrap()
        .into_iter()
        .filter(|r| r.event.kind == "mfa.recovery_code_used")
        .collect();
    assert_eq!(used.len(), 1);
    assert_eq!(used[0].event.data["left"], 9);
    // New codes replace the old: an old unused one stops working.
    let (_, _, account) = b.get(&format!("{}/account", s.base)).await;
    let app_code = {
        let p = &s.running.provider;
        let (ada, _) = s.store().user_by_email("ada@example.test").await.unwrap().unwrap();
        let fresh = portico_protocol::totp::new_recovery_codes(p, &ada.id, None, portico_testkit::now())
            .await
            .unwrap();
        assert_eq!(fresh.len(), 10);
        fresh
    };
    assert!(account.contains("New recovery codes"));
    assert_eq!(sign_in(codes[4].clone()).await.0, 401, "replaced");
    assert_eq!(sign_in(app_code[0].clone()).await.0, 303);
}
both_stores!(a_recovery_code_signs_in_once, &MFA);

async fn one_pending_sign_in_starts_one_session(s: &TestServer) {
    let (_, _, codes) = enrol(&mut Browser::new(), s).await;
    let (ada, _) = s.store().user_by_email("ada@example.test").await.unwrap().unwrap();
    let before = s.store().sessions_of(&ada.id, portico_testkit::now()).await.unwrap().len();
    let mut b = Browser::new();
    let (_, _, login) = b.get(&format!("{}/login", s.base)).await;
    let (_, _, page) = b.login(&s.base, &login, "ada@example.test", PASSWORD).await;
    // Two good answers to the same second-factor step, sent at once from two copies of the browser.
    let mut twin = Browser {
        http: b.http.clone(),
        cookies: b.cookies.clone(),
    };
    let (one, other) = ([("code", codes[0].as_str())], [("code", codes[1].as_str())]);
    let (first, second) = tokio::join!(submit(&mut b, s, &page, "/login/mfa", &one), submit(&mut twin, s, &page, "/login/mfa", &other),);
    let mut statuses = [first.0, second.0];
    statuses.sort();
    assert_eq!(statuses[0], 303, "one of them signs in");
    assert_ne!(statuses[1], 303, "the other finds the step spent");
    let after = s.store().sessions_of(&ada.id, portico_testkit::now()).await.unwrap().len();
    assert_eq!(after, before + 1);
}
both_stores!(one_pending_sign_in_starts_one_session, &MFA);

/// Follows the authorization after a step-up until it reaches the client.
async fn follow_to_client(b: &mut Browser, s: &TestServer, path: &str) -> String {
    let (_, loc, body) = b.follow(&s.base, format!("{}{path}", s.base)).await;
    loc.unwrap_or_else(|| panic!("no authorization response: {body}"))
}

async fn a_product_requiring_mfa_leads_through_setup_and_step_up(s: &TestServer) {
    // Browser A signs in to CRM with the password only (Ada has no authenticator yet).
    let mut a = Browser::new();
    tokens(&mut a, s, "crm-web", CRM_SECRET, "ada@example.test", Some("acme")).await;

    // Browser B goes to Billing, which requires a second factor: after the password, the setup.
    let mut b = Browser::new();
    let (step, verifier) = crate::tenancy::start(&mut b, s, "billing-web", &[], "ada@example.test").await;
    let crate::tenancy::Step::Page(page) = step else {
        panic!("Billing gave a code without a second factor")
    };
    assert!(
        page.contains("asks for two-step verification") && page.contains("data:image/svg+xml;base64,"),
        "{page}"
    );
    let secret = page.split("<code id=\"secret\">").nth(1).and_then(|x| x.split('<').next()).unwrap().to_owned();
    let app = app(&secret);
    let now = portico_testkit::now();
    let req = hidden(&page, "req").unwrap();
    let (status, _, codes) = submit(
        &mut b,
        s,
        &page,
        "/login/second-factor",
        &[("req", &req), ("enrol", "1"), ("code", &code_at(&app, now))],
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(recovery_codes(&codes).len(), 10);
    let done = codes
        .split("class=\"button\" href=\"")
        .nth(1)
        .and_then(|x| x.split('"').next())
        .unwrap()
        .replace("&amp;", "&");
    let loc = follow_to_client(&mut b, s, &done).await;
    let t = crate::tenancy::redeem(s, "billing-web", BILLING_SECRET, &loc, &verifier).await;
    assert_eq!(decode_payload(t["id_token"].as_str().unwrap())["amr"], serde_json::json!(["pwd", "otp"]));

    // Browser A's session predates the authenticator: Billing asks it for a code (step-up), and a
    // wrong one is refused.
    let (step, verifier) = crate::tenancy::start(&mut a, s, "billing-web", &[], "-").await;
    let crate::tenancy::Step::Page(page) = step else { panic!("no step-up") };
    assert!(page.contains("Enter the 6-digit code") && !page.contains("data:image/svg"), "{page}");
    let req = hidden(&page, "req").unwrap();
    let (status, _, _) = submit(&mut a, s, &page, "/login/second-factor", &[("req", &req), ("code", "000000")]).await;
    assert_eq!(status, 401);
    let next = code_at(&app, now + 30);
    let (status, loc, _) = submit(&mut a, s, &page, "/login/second-factor", &[("req", &req), ("code", &next)]).await;
    assert_eq!(status, 303);
    let loc = follow_to_client(&mut a, s, &loc.unwrap()).await;
    let t = crate::tenancy::redeem(s, "billing-web", BILLING_SECRET, &loc, &verifier).await;
    let id = decode_payload(t["id_token"].as_str().unwrap());
    assert_eq!(
        (id["amr"].clone(), id["acr"].as_str()),
        (serde_json::json!(["pwd", "otp"]), Some("urn:portico:acr:mfa"))
    );
}
both_stores!(a_product_requiring_mfa_leads_through_setup_and_step_up, &MFA);

async fn five_wrong_codes_lock_the_second_factor_for_five_minutes(s: &TestServer) {
    let (app, step, _) = enrol(&mut Browser::new(), s).await;
    let p = &s.running.provider;
    let (ada, _) = s.store().user_by_email("ada@example.test").await.unwrap().unwrap();
    let at = (step + 1) * 30;
    for _ in 0..portico_protocol::totp::MAX_FAILURES {
        assert!(!portico_protocol::totp::check(p, &ada, "000000", false, None, at).await.unwrap());
    }
    // Locked: even the right code is refused now, and the lock is audited.
    assert!(!portico_protocol::totp::check(p, &ada, &code_at(&app, at), false, None, at).await.unwrap());
    s.running.provider.writer.flush().await;
    let records = s.store().audit_records(0, 100_000).await.unwrap();
    assert_eq!(records.iter().filter(|r| r.event.kind == "mfa.totp_locked").count(), 1);
    // The code page says so.
    let mut b = Browser::new();
    let (_, _, login) = b.get(&format!("{}/login?next=/account", s.base)).await;
    let (_, _, page) = b.login(&s.base, &login, "ada@example.test", PASSWORD).await;
    let (status, _, refused) = submit(&mut b, s, &page, "/login/mfa", &[("code", &code_at(&app, portico_testkit::now()))]).await;
    assert_eq!(status, 401);
    assert!(refused.contains("Too many wrong codes"), "{refused}");
    // Five minutes later a right code works again.
    let later = at + portico_protocol::totp::LOCKOUT + 1;
    assert!(portico_protocol::totp::check(p, &ada, &code_at(&app, later), false, None, later).await.unwrap());
}
both_stores!(five_wrong_codes_lock_the_second_factor_for_five_minutes, &MFA);

async fn acr_values_asks_for_a_second_factor_for_one_request(s: &TestServer) {
    let mut a = Browser::new();
    tokens(&mut a, s, "crm-web", CRM_SECRET, "ada@example.test", Some("acme")).await;
    let (app, step, _) = enrol(&mut Browser::new(), s).await;
    // CRM does not require a second factor, but this request asks for the MFA level.
    let mfa = [("organization", "acme"), ("acr_values", "urn:portico:acr:mfa")];
    let (page, verifier) = crate::tenancy::start(&mut a, s, "crm-web", &mfa, "-").await;
    let crate::tenancy::Step::Page(page) = page else {
        panic!("no step-up for acr_values")
    };
    let req = hidden(&page, "req").unwrap();
    let (status, loc, _) = submit(
        &mut a,
        s,
        &page,
        "/login/second-factor",
        &[("req", &req), ("code", &code_at(&app, (step + 1) * 30))],
    )
    .await;
    assert_eq!(status, 303);
    let loc = follow_to_client(&mut a, s, &loc.unwrap()).await;
    let t = crate::tenancy::redeem(s, "crm-web", CRM_SECRET, &loc, &verifier).await;
    assert_eq!(decode_payload(t["id_token"].as_str().unwrap())["acr"], "urn:portico:acr:mfa");
    // Silently, a voluntary preference a session cannot meet is no error (OIDC Core §5.5.1):
    // the code's `acr` says what the session did reach.
    let mut b = Browser::new();
    tokens(&mut b, s, "crm-web", CRM_SECRET, "bob@example.test", Some("acme")).await;
    let silent = [("organization", "acme"), ("acr_values", "urn:portico:acr:mfa"), ("prompt", "none")];
    assert_eq!(acr_of(&mut b, s, &silent).await, "urn:portico:acr:pwd");
    // Made essential by the `claims` parameter, it needs the user: interaction_required.
    let essential = r#"{"id_token":{"acr":{"essential":true,"values":["urn:portico:acr:mfa"]}}}"#;
    let silent = [("organization", "acme"), ("claims", essential), ("prompt", "none")];
    assert_eq!(at_client(&mut b, s, &silent).await.1.as_deref(), Some("interaction_required"));
}
both_stores!(acr_values_asks_for_a_second_factor_for_one_request, &MFA);

/// Runs an authorization for crm-web in `b`'s session that must come back to the client; returns
/// the redirect and its `error`, if any.
async fn at_client(b: &mut Browser, s: &TestServer, extra: &[(&str, &str)]) -> (String, Option<String>) {
    let (step, _) = crate::tenancy::start(b, s, "crm-web", extra, "-").await;
    let crate::tenancy::Step::AtClient(loc) = step else {
        panic!("a page for {extra:?}")
    };
    let error = query_param(&loc, "error");
    (loc, error)
}

/// The `acr` of the ID token an authorization in `b`'s session gets, with no page on the way.
async fn acr_of(b: &mut Browser, s: &TestServer, extra: &[(&str, &str)]) -> String {
    let (step, verifier) = crate::tenancy::start(b, s, "crm-web", extra, "-").await;
    let crate::tenancy::Step::AtClient(loc) = step else {
        panic!("a page for {extra:?}")
    };
    assert_eq!(query_param(&loc, "error"), None, "{extra:?}: {loc}");
    let t = crate::tenancy::redeem(s, "crm-web", CRM_SECRET, &loc, &verifier).await;
    let id = decode_payload(t["id_token"].as_str().unwrap());
    // Access and ID tokens say the same.
    assert_eq!(decode_payload(t["access_token"].as_str().unwrap())["acr"], id["acr"]);
    id["acr"].as_str().unwrap().to_owned()
}

async fn acr_values_is_a_preference_a_session_that_meets_a_listed_value_is_not_stepped_up(s: &TestServer) {
    const PWD: &str = "urn:portico:acr:pwd";
    const MFA_ACR: &str = "urn:portico:acr:mfa";
    // Bob signs in with a password and has no second factor.
    let mut b = Browser::new();
    tokens(&mut b, s, "crm-web", CRM_SECRET, "bob@example.test", Some("acme")).await;
    for listed in [format!("{PWD} {MFA_ACR}"), format!("{MFA_ACR} {PWD}"), format!("urn:other:gold {PWD}")] {
        // No step-up, no page saying the application requires one: pwd is acceptable.
        assert_eq!(acr_of(&mut b, s, &[("organization", "acme"), ("acr_values", &listed)]).await, PWD, "{listed}");
    }
    // Unknown values only: a voluntary request nobody can meet is no request.
    assert_eq!(acr_of(&mut b, s, &[("organization", "acme"), ("acr_values", "urn:other:gold")]).await, PWD);
    // Only the MFA level listed: step up.
    let (step, _) = crate::tenancy::start(&mut b, s, "crm-web", &[("organization", "acme"), ("acr_values", MFA_ACR)], "-").await;
    let crate::tenancy::Step::Page(page) = step else {
        panic!("no step-up when no listed value is met")
    };
    assert!(page.contains("asks for two-step verification") && !page.contains("requires"), "{page}");

    // Ada signs in with a second factor: the first listed value she meets is the one named.
    let mut a = Browser::new();
    tokens(&mut a, s, "crm-web", CRM_SECRET, "ada@example.test", Some("acme")).await;
    let (app, step, _) = enrol(&mut Browser::new(), s).await;
    let (first, _) = crate::tenancy::start(&mut a, s, "crm-web", &[("organization", "acme"), ("acr_values", MFA_ACR)], "-").await;
    let crate::tenancy::Step::Page(page) = first else {
        panic!("no second-factor step")
    };
    let req = hidden(&page, "req").unwrap();
    let code = code_at(&app, (step + 1) * 30);
    let (status, loc, _) = submit(&mut a, s, &page, "/login/second-factor", &[("req", &req), ("code", &code)]).await;
    assert_eq!(status, 303);
    follow_to_client(&mut a, s, &loc.unwrap()).await;
    assert_eq!(
        acr_of(&mut a, s, &[("organization", "acme"), ("acr_values", &format!("{MFA_ACR} {PWD}"))]).await,
        MFA_ACR
    );
    // Whatever the order, the claim names the most the session did of what was asked.
    assert_eq!(
        acr_of(&mut a, s, &[("organization", "acme"), ("acr_values", &format!("{PWD} {MFA_ACR}"))]).await,
        MFA_ACR
    );
    assert_eq!(
        acr_of(&mut a, s, &[("organization", "acme"), ("acr_values", PWD)]).await,
        PWD,
        "only pwd was asked"
    );
    assert_eq!(
        acr_of(&mut a, s, &[("organization", "acme")]).await,
        MFA_ACR,
        "nothing asked: the session's level"
    );
    // The `claims` parameter names the values itself, over acr_values.
    let claims = format!(r#"{{"id_token":{{"acr":{{"essential":true,"values":["{MFA_ACR}"]}}}}}}"#);
    let extra = [("organization", "acme"), ("acr_values", PWD), ("claims", claims.as_str())];
    assert_eq!(acr_of(&mut a, s, &extra).await, MFA_ACR);
}
both_stores!(acr_values_is_a_preference_a_session_that_meets_a_listed_value_is_not_stepped_up, &MFA);

async fn an_essential_acr_nobody_can_meet_or_a_malformed_claims_parameter_is_refused(s: &TestServer) {
    let mut b = Browser::new();
    tokens(&mut b, s, "crm-web", CRM_SECRET, "bob@example.test", Some("acme")).await;
    for (claims, error) in [
        (r#"{"id_token":{"acr":{"essential":true,"values":["urn:other:gold"]}}}"#, "access_denied"),
        ("not json", "invalid_request"),
        ("[1]", "invalid_request"),
        (r#"{"id_token":{"acr":"urn:portico:acr:mfa"}}"#, "invalid_request"),
        (r#"{"id_token":{"acr":{"values":"urn:portico:acr:mfa"}}}"#, "invalid_request"),
        (r#"{"id_token":{"acr":{"value":"a","values":["b"]}}}"#, "invalid_request"),
    ] {
        let (loc, got) = at_client(&mut b, s, &[("organization", "acme"), ("claims", claims)]).await;
        assert_eq!(got.as_deref(), Some(error), "{claims}: {loc}");
        assert_eq!(query_param(&loc, "code"), None);
    }
    // Other members are voluntary requests Portico may leave out: no error. Userinfo returns no
    // acr, so its request for one is one of them.
    for other in [
        r#"{"userinfo":{"email":{"essential":true}},"id_token":{"acr":null}}"#,
        r#"{"userinfo":{"acr":{"essential":true,"value":"urn:other:gold"}}}"#,
    ] {
        assert_eq!(
            acr_of(&mut b, s, &[("organization", "acme"), ("claims", other)]).await,
            "urn:portico:acr:pwd",
            "{other}"
        );
    }
    // The ID token's request is the one: a userinfo member beside it changes nothing of it.
    let both = r#"{"id_token":{"acr":{"essential":true,"values":["urn:portico:acr:mfa"]}},"userinfo":{"acr":{"values":["urn:portico:acr:pwd"]}}}"#;
    let (loc, error) = at_client(&mut b, s, &[("organization", "acme"), ("claims", both), ("prompt", "none")]).await;
    assert_eq!(error.as_deref(), Some("interaction_required"), "{loc}");
    // Refused before anyone signs in: a new browser gets the error, not the login page.
    let claims = r#"{"id_token":{"acr":{"essential":true,"values":["urn:other:gold"]}}}"#;
    let (step, _) = crate::tenancy::start(&mut Browser::new(), s, "crm-web", &[("claims", claims)], "-").await;
    let crate::tenancy::Step::AtClient(loc) = step else {
        panic!("a page before an error nobody can fix")
    };
    assert_eq!(query_param(&loc, "error").as_deref(), Some("access_denied"));
}
both_stores!(an_essential_acr_nobody_can_meet_or_a_malformed_claims_parameter_is_refused, &MFA);

async fn a_session_alone_cannot_replace_the_authenticator(s: &TestServer) {
    // A session signed in with the password only, from before the authenticator existed (as a
    // stolen cookie would be).
    let mut thief = Browser::new();
    tokens(&mut thief, s, "crm-web", CRM_SECRET, "ada@example.test", Some("acme")).await;
    let (app, step, _) = enrol(&mut Browser::new(), s).await;
    // Setting up "another" app from the account page: refused, no new key shown.
    let (_, _, account) = thief.get(&format!("{}/account", s.base)).await;
    let (status, _, page) = submit(&mut thief, s, &account, "/account/totp/start", &[]).await;
    assert_eq!(status, 403, "{page}");
    assert!(!page.contains("data:image/svg"));
    // Nor through the setup step of an authorization that needs a second factor.
    let (step_page, _) = crate::tenancy::start(&mut thief, s, "billing-web", &[], "-").await;
    let crate::tenancy::Step::Page(page) = step_page else { panic!("no step-up") };
    assert!(!page.contains("data:image/svg"), "no setup for a user who has an app");
    let req = hidden(&page, "req").unwrap();
    let (status, _, _) = submit(
        &mut thief,
        s,
        &page,
        "/login/second-factor",
        &[("req", &req), ("enrol", "1"), ("code", "123456")],
    )
    .await;
    assert_ne!(status, 200, "no recovery codes for a guessed setup");
    // The real app still works.
    let p = &s.running.provider;
    let (ada, _) = s.store().user_by_email("ada@example.test").await.unwrap().unwrap();
    let at = (step + 1) * 30;
    assert!(portico_protocol::totp::check(p, &ada, &code_at(&app, at), false, None, at).await.unwrap());
}
both_stores!(a_session_alone_cannot_replace_the_authenticator, &MFA);

/// The CSP's form-action directive of a response.
fn form_action(headers: &openidconnect::http::HeaderMap) -> String {
    let csp = headers.get("content-security-policy").and_then(|v| v.to_str().ok()).unwrap_or("");
    csp.split(';').map(str::trim).find(|d| d.starts_with("form-action")).unwrap_or("").to_owned()
}

async fn every_page_of_a_pending_request_lets_its_forms_reach_that_client_alone(s: &TestServer) {
    const CLIENT: &str = "form-action 'self' http://127.0.0.1:9";
    // A session from before the authenticator (it will step up for Billing).
    let mut a = Browser::new();
    tokens(&mut a, s, "crm-web", CRM_SECRET, "ada@example.test", Some("acme")).await;
    let (app, step, _) = enrol(&mut Browser::new(), s).await;
    // The login page of a request, and the login page of none.
    let mut b = Browser::new();
    let url = format!(
        "{}/oauth2/authorize?response_type=code&client_id=billing-web&redirect_uri={}&scope=openid&state=st&code_challenge={}&code_challenge_method=S256",
        s.base,
        url::form_urlencoded::byte_serialize(CALLBACK.as_bytes()).collect::<String>(),
        pkce().1
    );
    let (_, loc, _) = b.get(&url).await;
    let (_, headers, page) = b.get_with_headers(&format!("{}{}", s.base, loc.unwrap())).await;
    assert!(page.contains("name=\"password\""));
    assert_eq!(form_action(&headers), CLIENT);
    let (_, headers, _) = Browser::new().get_with_headers(&format!("{}/login", s.base)).await;
    assert_eq!(form_action(&headers), "form-action 'self'");
    // A wrong password shows the page again, for the same client.
    let csrf = hidden(&page, "csrf").unwrap();
    let req = hidden(&page, "req").unwrap();
    let wrong = [("email", "ada@example.test"), ("password", "not it"), ("csrf", &csrf), ("req", &req)];
    let (status, headers, _) = b.post_form_with_headers(&format!("{}/login", s.base), &wrong).await;
    assert_eq!((status, form_action(&headers).as_str()), (401, CLIENT));
    // The code page after the password, shown again after a wrong code.
    let (status, _, _) = b.login(&s.base, &page, "ada@example.test", PASSWORD).await;
    assert_eq!(status, 200);
    let (_, headers, code_page) = b.get_with_headers(&format!("{}/login/mfa", s.base)).await;
    assert!(code_page.contains("Two-step verification"), "{code_page}");
    assert_eq!(form_action(&headers), CLIENT);
    let csrf = hidden(&code_page, "csrf").unwrap();
    let (status, headers, _) = b
        .post_form_with_headers(&format!("{}/login/mfa", s.base), &[("csrf", &csrf), ("code", "000000")])
        .await;
    assert_eq!((status, form_action(&headers).as_str()), (401, CLIENT));
    // Signed in with the code; the password-only session steps up for Billing.
    let (status, _, _) = submit(&mut b, s, &code_page, "/login/mfa", &[("code", &code_at(&app, (step + 1) * 30))]).await;
    assert_eq!(status, 303);
    let (crate::tenancy::Step::Page(page), _) = crate::tenancy::start(&mut a, s, "billing-web", &[], "-").await else {
        panic!("no step-up")
    };
    let req = hidden(&page, "req").unwrap();
    let (_, headers, _) = a.get_with_headers(&format!("{}/login/second-factor?req={req}", s.base)).await;
    assert_eq!(form_action(&headers), CLIENT);
    let csrf = hidden(&page, "csrf").unwrap();
    let (status, headers, _) = a
        .post_form_with_headers(
            &format!("{}/login/second-factor", s.base),
            &[("csrf", &csrf), ("req", &req), ("code", "000000")],
        )
        .await;
    assert_eq!((status, form_action(&headers).as_str()), (401, CLIENT));
}
both_stores!(every_page_of_a_pending_request_lets_its_forms_reach_that_client_alone, &MFA);
