//! Passkeys from the outside, short of a browser (the ceremonies themselves run in Chromium, in
//! e2e/tests/passkey.test.mjs): what the options ask of the authenticator, forged and replayed
//! answers, and who may add, rename or remove a passkey.

use crate::tenancy::{CRM_SECRET, TENANTS, tokens};
use crate::*;

/// The issuer at `localhost` (WebAuthn refuses IP addresses).
fn on_localhost(c: &mut portico_server::config::Config) {
    c.issuer = c.issuer.replace("127.0.0.1", "localhost");
}

/// POSTs `fields` and the page's CSRF token to `path`; the status and body.
async fn post(b: &mut Browser, s: &TestServer, page: &str, path: &str, fields: &[(&str, &str)]) -> (u16, Option<String>, String) {
    let csrf = hidden(page, "csrf").expect("a csrf field");
    let mut form = vec![("csrf", csrf.as_str())];
    form.extend_from_slice(fields);
    b.post_form(&format!("{}{path}", s.base), &form).await
}

async fn login_page(b: &mut Browser, s: &TestServer) -> String {
    let (status, _, page) = b.get(&format!("{}/login", s.base)).await;
    assert_eq!(status, 200);
    page
}

async fn passkeys_need_a_domain_name(s: &TestServer) {
    let mut b = Browser::new();
    let page = login_page(&mut b, s).await;
    assert!(!page.contains("Sign in with a passkey"), "an IP-address issuer offers no passkeys: {page}");
    let (status, _, body) = post(&mut b, s, &page, "/login/passkey/options", &[]).await;
    assert_eq!(status, 404, "{body}");
    assert!(body.contains("not available"), "{body}");
}
both_stores!(passkeys_need_a_domain_name, TENANTS);

async fn passkey_options_and_forged_answers(s: &TestServer) {
    let mut b = Browser::new();
    let page = login_page(&mut b, s).await;
    assert!(page.contains("Sign in with a passkey"));
    // No CSRF token, no ceremony.
    let (status, _, _) = b
        .post_form(&format!("{}/login/passkey/options", s.base), &[("csrf", "x".repeat(43).as_str())])
        .await;
    assert_eq!(status, 403);
    let (status, _, body) = post(&mut b, s, &page, "/login/passkey/options", &[]).await;
    assert_eq!(status, 200, "{body}");
    let options: serde_json::Value = serde_json::from_str(&body).unwrap();
    let key = &options["publicKey"];
    assert_eq!(key["rpId"], "localhost");
    assert_eq!(
        key["userVerification"], "required",
        "a passkey sign-in is two factors only with user verification"
    );
    assert!(key["challenge"].as_str().is_some_and(|c| c.len() >= 43), "{key}");
    let token = options["token"].as_str().unwrap().to_owned();

    // A forged answer is refused and audited; the challenge it answered is spent.
    let forged = serde_json::json!({
        "id": "AAAA", "rawId": "AAAA", "type": "public-key",
        "response": {"clientDataJSON": "e30", "authenticatorData": "AAAA", "signature": "AAAA", "userHandle": "AAAA"},
    })
    .to_string();
    let (status, _, body) = post(&mut b, s, &page, "/login/passkey", &[("token", &token), ("credential", &forged)]).await;
    assert_eq!(status, 401, "{body}");
    assert!(body.contains("not accepted"), "{body}");
    let (status, _, body) = post(&mut b, s, &page, "/login/passkey", &[("token", &token), ("credential", &forged)]).await;
    assert_eq!(status, 401);
    assert!(body.contains("expired"), "a ceremony is answered once: {body}");
    let (status, loc, _) = b.get(&format!("{}/account", s.base)).await;
    assert_eq!((status, loc.as_deref()), (303, Some("/login?next=/account")), "no session came of it");
    s.running.provider.writer.flush().await;
    let refused = s
        .store()
        .audit_records(0, 1000)
        .await
        .unwrap()
        .into_iter()
        .filter(|r| r.event.kind == "mfa.passkey_refused")
        .count();
    assert_eq!(refused, 1);

    // Registration options for a signed-in user: a discoverable credential with user verification,
    // a user handle that is not the email.
    tokens(&mut b, s, "crm-web", CRM_SECRET, "ada@example.test", Some("acme")).await;
    let (_, _, account) = b.get(&format!("{}/account", s.base)).await;
    assert!(account.contains("Add a passkey"), "{account}");
    let (status, _, body) = post(&mut b, s, &account, "/account/passkeys/options", &[]).await;
    assert_eq!(status, 200, "{body}");
    let key = &serde_json::from_str::<serde_json::Value>(&body).unwrap()["publicKey"];
    assert_eq!(key["authenticatorSelection"]["residentKey"], "required");
    assert_eq!(key["authenticatorSelection"]["userVerification"], "required");
    assert_eq!(key["user"]["name"], "ada@example.test");
    assert!(!key["user"]["id"].as_str().unwrap().is_empty());
    assert!(!body.contains(&portico_protocol::random::b64url(b"ada@example.test")));
    assert_eq!(key["rp"]["id"], "localhost");
}
both_stores_with!(passkey_options_and_forged_answers, TENANTS, on_localhost);

async fn only_a_passkeys_owner_changes_it(s: &TestServer) {
    let (ada, _) = s.store().user_by_email("ada@example.test").await.unwrap().unwrap();
    let (bob, _) = s.store().user_by_email("bob@example.test").await.unwrap().unwrap();
    // A session with the password alone, from before Ada had a second factor (as a stolen cookie).
    let mut thief = Browser::new();
    tokens(&mut thief, s, "crm-web", CRM_SECRET, "ada@example.test", Some("acme")).await;
    plant_passkey(s, "bob-key", &bob.id, "Bob's").await;
    plant_passkey(s, "ada-key", &ada.id, "Ada's").await;
    let (_, _, account) = thief.get(&format!("{}/account", s.base)).await;
    assert!(account.contains("Ada&#39;s") && !account.contains("Bob"), "her own passkeys only: {account}");

    // It can neither add a passkey of its own nor take hers away.
    let (status, _, _) = post(&mut thief, s, &account, "/account/passkeys/options", &[]).await;
    assert_eq!(status, 403);
    let (status, _, _) = post(&mut thief, s, &account, "/account/passkeys", &[("token", "t"), ("credential", "{}")]).await;
    assert_eq!(status, 403);
    let (status, _, _) = post(&mut thief, s, &account, "/account/passkeys/remove", &[("id", "ada-key")]).await;
    assert_eq!(status, 403);
    assert_eq!(s.store().passkeys_of(&ada.id).await.unwrap().len(), 1);
    // Renaming is harmless; renaming or removing Bob's passkey changes nothing.
    let (status, loc, _) = post(
        &mut thief,
        s,
        &account,
        "/account/passkeys/rename",
        &[("id", "ada-key"), ("name", "  Phone\n ")],
    )
    .await;
    assert_eq!((status, loc.as_deref()), (303, Some("/account")));
    assert_eq!(s.store().passkey("ada-key").await.unwrap().unwrap().name, "Phone");
    post(&mut thief, s, &account, "/account/passkeys/rename", &[("id", "bob-key"), ("name", "mine")]).await;
    assert_eq!(s.store().passkey("bob-key").await.unwrap().unwrap().name, "Bob's");

    // Signing in with the password now asks for the passkey: no session before it.
    let mut b = Browser::new();
    let (step, _) = crate::tenancy::start(&mut b, s, "crm-web", &[], "ada@example.test").await;
    let crate::tenancy::Step::Page(page) = step else {
        panic!("signed in without the second factor")
    };
    assert!(page.contains("Use a passkey"), "{page}");
}
both_stores_with!(only_a_passkeys_owner_changes_it, TENANTS, on_localhost);

fn on_localhost_three_a_minute(c: &mut portico_server::config::Config) {
    on_localhost(c);
    c.pending_requests_per_minute = 3;
}

/// A passkey ceremony is a stored write: a passwordless one is bounded per address, one of a sign-in
/// under way (second factor, step-up, registration) per user, and only a request whose CSRF token
/// matched counts — so neither a page on another site nor a flood from a shared address can spend
/// the allowance of someone's second factor.
async fn passkey_ceremonies_are_bounded_per_address_and_per_user(s: &TestServer) {
    let (ada, _) = s.store().user_by_email("ada@example.test").await.unwrap().unwrap();
    let mut signed_in = Browser::new();
    tokens(&mut signed_in, s, "crm-web", CRM_SECRET, "ada@example.test", Some("acme")).await;
    plant_usable_passkey(s, "ada-key", &ada.id).await;
    let (_, _, account) = signed_in.get(&format!("{}/account", s.base)).await;
    // A sign-in waiting for Ada's passkey after her password.
    let mut waiting = Browser::new();
    let (step, _) = crate::tenancy::start(&mut waiting, s, "crm-web", &[], "ada@example.test").await;
    let crate::tenancy::Step::Page(factor_page) = step else {
        panic!("signed in without the second factor")
    };
    // Bob, signed in, with no factor yet: he may add a first passkey.
    let mut bob = Browser::new();
    tokens(&mut bob, s, "crm-web", CRM_SECRET, "bob@example.test", Some("acme")).await;
    let (_, _, bobs_account) = bob.get(&format!("{}/account", s.base)).await;

    // Forged requests (a page on another site cannot read the CSRF cookie) spend nothing.
    let mut anyone = Browser::new();
    let login = login_page(&mut anyone, s).await;
    for _ in 0..5 {
        let (status, _, _) = anyone
            .post_form(&format!("{}/login/passkey/options", s.base), &[("csrf", "x".repeat(43).as_str())])
            .await;
        assert_eq!(status, 403);
    }
    for _ in 0..3 {
        let (status, _, body) = post(&mut anyone, s, &login, "/login/passkey/options", &[]).await;
        assert_eq!(status, 200, "{body}");
    }
    let (status, _, _) = post(&mut anyone, s, &login, "/login/passkey/options", &[]).await;
    assert_eq!(status, 429, "passwordless ceremonies are bounded per address");

    // From the same address, Ada's second factor still has her own allowance, bounded too; another
    // browser of hers shares it.
    for _ in 0..3 {
        let (status, _, body) = post(&mut waiting, s, &factor_page, "/login/mfa/passkey/options", &[]).await;
        assert_eq!(status, 200, "{body}");
    }
    let (status, _, _) = post(&mut waiting, s, &factor_page, "/login/mfa/passkey/options", &[]).await;
    assert_eq!(status, 429, "a second factor's ceremonies are bounded per user");
    let (status, _, body) = post(&mut signed_in, s, &account, "/login/second-factor/passkey/options", &[]).await;
    assert_eq!(status, 429, "the step-up's count as hers: {body}");
    // Bob's registrations have his.
    for _ in 0..3 {
        let (status, _, body) = post(&mut bob, s, &bobs_account, "/account/passkeys/options", &[]).await;
        assert_eq!(status, 200, "{body}");
    }
    let (status, _, _) = post(&mut bob, s, &bobs_account, "/account/passkeys/options", &[]).await;
    assert_eq!(status, 429, "registration ceremonies are bounded per user");
}
both_stores_with!(passkey_ceremonies_are_bounded_per_address_and_per_user, TENANTS, on_localhost_three_a_minute);
