//! Account flows that go through mail: password reset, self-service sign-up, email verification,
//! and the password change on `/account`. Mail travels over SMTP to the test server's loopback
//! sink. Each answer that could tell whether an email has an account is compared byte for byte.

use crate::*;
use portico_server::config::Config;
use std::time::Duration;

const ADA: &str = "ada@example.test";
const ADA_PASSWORD: &str = "correct horse battery staple";
const NEW_PASSWORD: &str = "lighthouse keeper oyster violin";

/// SUITE with Reports open to sign-ups.
fn signup_suite() -> String {
    SUITE.replace(
        "audience = \"https://reports.example.test\"\n",
        "audience = \"https://reports.example.test\"\nsignup = true\n",
    )
}

/// The link to `path` in the one mail to `to` (waits for it).
async fn mailed_link(s: &TestServer, to: &str, count: usize, path: &str) -> String {
    let mails = s.mail.wait_for(to, count, Duration::from_secs(10)).await;
    assert_eq!(mails.len(), count, "mails to {to}: {mails:?}");
    let prefix = format!("{}{path}?token=", s.base);
    let text = &mails[count - 1].text;
    text.split_whitespace()
        .find(|w| w.starts_with(&prefix))
        .unwrap_or_else(|| panic!("no {path} link in {text}"))
        .to_owned()
}

/// A page's CSRF token (the browser keeps the cookie).
async fn csrf_of(b: &mut Browser, url: &str) -> (String, String) {
    let (status, _, page) = b.get(url).await;
    assert_eq!(status, 200, "{url}: {page}");
    (hidden(&page, "csrf").expect("csrf field"), page)
}

async fn forgot(s: &TestServer, email: &str) -> (u16, String) {
    let mut b = Browser::new();
    let (csrf, _) = csrf_of(&mut b, &format!("{}/password/forgot", s.base)).await;
    let (status, _, body) = b.post_form(&format!("{}/password/forgot", s.base), &[("email", email), ("csrf", &csrf)]).await;
    (status, body)
}

/// Sets a new password through a reset link: (status, body).
async fn reset_with(s: &TestServer, link: &str, password: &str) -> (u16, String) {
    let mut b = Browser::new();
    let (status, _, page) = b.get(link).await;
    if status != 200 {
        return (status, page);
    }
    let csrf = hidden(&page, "csrf").unwrap();
    let token = hidden(&page, "token").unwrap();
    let (status, _, body) = b
        .post_form(
            &format!("{}/password/reset", s.base),
            &[("token", &token), ("new_password", password), ("csrf", &csrf)],
        )
        .await;
    (status, body)
}

/// The login form's answer: 303 signed in, 401 refused.
async fn login_status(s: &TestServer, email: &str, password: &str) -> u16 {
    let mut b = Browser::new();
    let (csrf, _) = csrf_of(&mut b, &format!("{}/login", s.base)).await;
    let form = [("email", email), ("password", password), ("csrf", csrf.as_str())];
    b.post_form(&format!("{}/login", s.base), &form).await.0
}

async fn refresh(s: &TestServer, token: &str) -> (u16, serde_json::Value) {
    post_basic(
        s,
        "/oauth2/token",
        "crm-web",
        SECRET,
        &[("grant_type", "refresh_token"), ("refresh_token", token)],
    )
    .await
}

async fn audited(s: &TestServer, kind: &str) -> usize {
    crate::backchannel::audited(s, kind).await.len()
}

async fn a_reset_link_sets_a_new_password_once_and_signs_out_everywhere(s: &TestServer) {
    let tokens = code_flow_tokens(s).await;
    let refresh_token = tokens["refresh_token"].as_str().unwrap().to_owned();
    let (status, page) = forgot(s, ADA).await;
    assert_eq!(status, 200);
    assert!(page.contains("Check your email"), "{page}");
    let link = mailed_link(s, ADA, 1, "/password/reset").await;
    // A weak password is refused and the link still works afterwards.
    let (status, page) = reset_with(s, &link, "password").await;
    assert_eq!(status, 400);
    assert!(page.contains("Use at least 15 characters."), "{page}");
    let (status, page) = reset_with(s, &link, "aaaaaaaaaaaaaaaaaaaa").await;
    assert_eq!(status, 400);
    assert!(page.contains("easy to guess"), "{page}");
    let (status, page) = reset_with(s, &link, NEW_PASSWORD).await;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("Your password is changed"));
    // Once only.
    let (status, page) = reset_with(s, &link, "another long passphrase entirely").await;
    assert_eq!(status, 400);
    assert!(page.contains("This link no longer works"), "{page}");
    // The sessions that existed are gone: the product's refresh token is dead.
    let (status, body) = refresh(s, &refresh_token).await;
    assert_eq!((status, body["error"].as_str()), (400, Some("invalid_grant")));
    assert_eq!(login_status(s, ADA, ADA_PASSWORD).await, 401, "the old password");
    assert_eq!(login_status(s, ADA, NEW_PASSWORD).await, 303);
    assert_eq!(audited(s, "password.reset_requested").await, 1);
    assert_eq!(audited(s, "password.reset").await, 1);
}
both_stores!(a_reset_link_sets_a_new_password_once_and_signs_out_everywhere);

async fn older_and_expired_reset_links_are_dead(s: &TestServer) {
    forgot(s, ADA).await;
    let first = mailed_link(s, ADA, 1, "/password/reset").await;
    forgot(s, ADA).await;
    let second = mailed_link(s, ADA, 2, "/password/reset").await;
    forgot(s, ADA).await;
    let third = mailed_link(s, ADA, 3, "/password/reset").await;
    assert_eq!(reset_with(s, &second, NEW_PASSWORD).await.0, 200);
    // The first link was issued for the password that is gone.
    let (status, page) = reset_with(s, &first, "yet another long passphrase").await;
    assert_eq!(status, 400);
    assert!(page.contains("no longer works"));
    // An expired link: the third, its record aged past its lifetime.
    let token = query_param(&third, "token").unwrap();
    let key = portico_protocol::random::hash(&token);
    let payload = s.store().take_pending("link_reset", &key, portico_testkit::now()).await.unwrap().unwrap();
    s.store().put_pending("link_reset", &key, &payload, portico_testkit::now() - 1).await.unwrap();
    assert_eq!(reset_with(s, &third, "yet another long passphrase").await.0, 400);
    assert_eq!(login_status(s, ADA, NEW_PASSWORD).await, 303, "neither changed the password");
}
both_stores!(older_and_expired_reset_links_are_dead);

async fn reset_and_signup_answers_do_not_reveal_accounts(s: &TestServer) {
    // Reset: the same bytes for an account and for nobody; only the account gets mail.
    let known = forgot(s, ADA).await;
    let unknown = forgot(s, "nobody@example.test").await;
    assert_eq!(known, unknown);
    mailed_link(s, ADA, 1, "/password/reset").await;
    // Sign-up, from one sign-in request: the same page for a taken email and a new one (the email
    // typed aside), the difference is in the mail.
    let mut b = Browser::new();
    let (_, login) = authorize_page(&mut b, s, "reports-web").await;
    assert!(login.contains("Create an account"), "{login}");
    let req = hidden(&login, "req").unwrap();
    let taken = sign_up(&mut b, s, &req, "Someone New", ADA, NEW_PASSWORD).await;
    let new = sign_up(&mut b, s, &req, "Someone New", "newcomer@example.test", NEW_PASSWORD).await;
    let (taken, new) = (
        (taken.0, taken.1.replace(ADA, "EMAIL")),
        (new.0, new.1.replace("newcomer@example.test", "EMAIL")),
    );
    assert_eq!(taken.0, 200, "{}", taken.1);
    assert_eq!(taken, new);
    let to_ada = s.mail.wait_for(ADA, 2, Duration::from_secs(10)).await;
    assert_eq!(to_ada[1].subject, "You already have an account");
    assert!(!to_ada[1].text.contains("token="), "no link that could make a second account");
    let to_new = s.mail.wait_for("newcomer@example.test", 1, Duration::from_secs(10)).await;
    assert_eq!(to_new[0].subject, "Confirm your email");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        s.mail.mails().iter().all(|m| !m.to.iter().any(|t| t == "nobody@example.test")),
        "no mail to a stranger's address"
    );
}
both_stores_with!(reset_and_signup_answers_do_not_reveal_accounts, &signup_suite(), |_| {});

/// Submits the sign-up form of authorization request `req`: (status, body).
async fn sign_up(b: &mut Browser, s: &TestServer, req: &str, name: &str, email: &str, password: &str) -> (u16, String) {
    let (csrf, _) = csrf_of(b, &format!("{}/signup?req={req}", s.base)).await;
    let form = [("name", name), ("email", email), ("password", password), ("csrf", &csrf), ("req", req)];
    let (status, _, body) = b.post_form(&format!("{}/signup", s.base), &form).await;
    (status, body)
}

/// Starts a code flow for `client` in `b`; returns (PKCE verifier, the login page).
async fn authorize_page(b: &mut Browser, s: &TestServer, client: &str) -> (String, String) {
    let (verifier, challenge) = pkce();
    let query = [
        ("response_type", "code"),
        ("client_id", client),
        ("redirect_uri", CALLBACK),
        ("scope", "openid email profile"),
        ("state", "st"),
        ("code_challenge", challenge.as_str()),
        ("code_challenge_method", "S256"),
    ];
    let url = format!(
        "{}/oauth2/authorize?{}",
        s.base,
        url::form_urlencoded::Serializer::new(String::new()).extend_pairs(query).finish()
    );
    let (status, _, page) = b.follow(&s.base, url).await;
    assert_eq!(status, 200, "{page}");
    (verifier, page)
}

async fn signing_up_makes_a_verified_account_with_access_to_the_product(s: &TestServer) {
    let email = "lin@example.test";
    let mut b = Browser::new();
    let (verifier, login) = authorize_page(&mut b, s, "reports-web").await;
    let req = hidden(&login, "req").unwrap();
    let (_, page) = csrf_of(&mut b, &format!("{}/signup?req={req}", s.base)).await;
    assert!(page.contains("data-strength"), "the meter is on the form");
    // The user's own name is no password.
    let (status, body) = sign_up(&mut b, s, &req, "Lin Chen", email, "lin chen lin chen lin chen").await;
    assert_eq!(status, 400);
    assert!(body.contains("easy to guess"), "{body}");
    assert_eq!(sign_up(&mut b, s, &req, "Lin Chen", email, "password").await.0, 400);
    let (status, body) = sign_up(&mut b, s, &req, "Lin Chen", email, NEW_PASSWORD).await;
    assert_eq!(status, 200, "{body}");
    assert!(
        s.store().user_by_email(email).await.unwrap().is_none(),
        "no account before the email is confirmed"
    );
    let link = mailed_link(s, email, 1, "/signup/confirm").await;
    // Following the link shows a button and spends nothing (mail scanners fetch links).
    let (csrf, page) = csrf_of(&mut b, &link).await;
    assert!(page.contains("Create my account"));
    let token = hidden(&page, "token").unwrap();
    let confirm = format!("{}/signup/confirm", s.base);
    // Whoever holds the mailbox but not the password chosen at sign-up makes no account (someone
    // signing up with a stranger's address cannot have the stranger create it for them).
    let (status, _, page) = b
        .post_form(&confirm, &[("token", &token), ("csrf", &csrf), ("password", "not the chosen one")])
        .await;
    assert_eq!(status, 401, "{page}");
    assert!(s.store().user_by_email(email).await.unwrap().is_none());
    let (status, _, page) = b.post_form(&confirm, &[("token", &token), ("csrf", &csrf), ("password", NEW_PASSWORD)]).await;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains(&format!("/login?req={req}")), "back into the application's request: {page}");
    let (status, _, page) = b.post_form(&confirm, &[("token", &token), ("csrf", &csrf), ("password", NEW_PASSWORD)]).await;
    assert_eq!(status, 400, "once only: {page}");
    // Sign in with the new account: the product gets a code, the ID token says the email is verified.
    let (_, _, login) = b.get(&format!("{}/login?req={req}", s.base)).await;
    let (status, loc, page) = b.login(&s.base, &login, email, NEW_PASSWORD).await;
    let loc = loc.unwrap_or_else(|| panic!("{status}: {page}"));
    let code = query_param(&loc, "code").expect("a code for the product");
    let (status, body) = post_basic(
        s,
        "/oauth2/token",
        "reports-web",
        REPORTS_SECRET,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", CALLBACK),
            ("code_verifier", &verifier),
        ],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let id_token = body["id_token"].as_str().unwrap();
    let claims = claims_of(id_token);
    assert_eq!((claims["email"].as_str(), claims["email_verified"].as_bool()), (Some(email), Some(true)));
    assert_eq!(audited(s, "user.signed_up").await, 1);
    // Invariant 3: signing up for Reports grants Reports, nothing else. The same browser, signed in,
    // asks CRM for a code and is refused.
    let (_, challenge) = pkce();
    let query = [
        ("response_type", "code"),
        ("client_id", "crm-web"),
        ("redirect_uri", CALLBACK),
        ("scope", "openid"),
        ("state", "crm"),
        ("code_challenge", challenge.as_str()),
        ("code_challenge_method", "S256"),
    ];
    let url = format!(
        "{}/oauth2/authorize?{}",
        s.base,
        url::form_urlencoded::Serializer::new(String::new()).extend_pairs(query).finish()
    );
    let (_, loc, page) = b.follow(&s.base, url).await;
    let loc = loc.unwrap_or_else(|| panic!("no answer for CRM: {page}"));
    assert_eq!(query_param(&loc, "error").as_deref(), Some("access_denied"), "{loc}");
    assert_eq!(query_param(&loc, "code"), None);
}
both_stores_with!(signing_up_makes_a_verified_account_with_access_to_the_product, &signup_suite(), |_| {});

fn claims_of(jwt: &str) -> serde_json::Value {
    use base64::Engine;
    let part = jwt.split('.').nth(1).unwrap();
    serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap()
}

async fn a_product_without_signup_offers_none(s: &TestServer) {
    let mut b = Browser::new();
    let (_, login) = authorize_page(&mut b, s, "crm-web").await;
    assert!(!login.contains("Create an account"));
    assert!(login.contains("Forgot your password?"));
    let req = hidden(&login, "req").unwrap();
    let (status, _, _) = b.get(&format!("{}/signup?req={req}", s.base)).await;
    assert_eq!(status, 404);
    let (status, _, _) = b.get(&format!("{}/signup", s.base)).await;
    assert_eq!(status, 404, "no application, no sign-up");
}
both_stores_with!(a_product_without_signup_offers_none, &signup_suite(), |_| {});

async fn changing_the_password_ends_the_other_sessions_only(s: &TestServer) {
    let other = code_flow_tokens(s).await;
    let other_refresh = other["refresh_token"].as_str().unwrap().to_owned();
    let introspect = |token: String| async move { post_basic(s, "/oauth2/introspect", "crm-web", SECRET, &[("token", &token)]).await.1["active"].clone() };
    let other_access = other["access_token"].as_str().unwrap().to_owned();
    assert_eq!(introspect(other_access.clone()).await, true);
    let mut b = Browser::new();
    let (_, page) = csrf_of(&mut b, &format!("{}/login?next=/account", s.base)).await;
    assert_eq!(b.login(&s.base, &page, ADA, ADA_PASSWORD).await.0, 200);
    let url = format!("{}/account/password", s.base);
    let (csrf, _) = csrf_of(&mut b, &url).await;
    let change = |current: &'static str, new: &'static str| [("current_password", current), ("new_password", new)];
    let mut post = async |fields: [(&str, &str); 2]| {
        let mut form = fields.to_vec();
        form.push(("csrf", &csrf));
        b.post_form(&url, &form).await
    };
    let (status, _, page) = post(change("not my password", NEW_PASSWORD)).await;
    assert_eq!(status, 400);
    assert!(page.contains("current password is not right"), "{page}");
    let (status, _, page) = post(change(ADA_PASSWORD, "ada@example.test")).await;
    assert_eq!(status, 400, "{page}");
    let (status, loc, _) = post(change(ADA_PASSWORD, NEW_PASSWORD)).await;
    assert_eq!((status, loc.as_deref()), (303, Some("/account?done=password")));
    // This browser stays signed in; the other session's refresh token is dead.
    let (status, _, page) = b.get(&format!("{}/account?done=password", s.base)).await;
    assert_eq!(status, 200);
    assert!(page.contains("Your password is changed"));
    let (status, body) = refresh(s, &other_refresh).await;
    assert_eq!((status, body["error"].as_str()), (400, Some("invalid_grant")));
    // Invariant 4: the other session's access token is inactive at once.
    assert_eq!(introspect(other_access).await, false);
    assert_eq!(login_status(s, ADA, NEW_PASSWORD).await, 303);
    assert_eq!(audited(s, "password.changed").await, 1);
    assert_eq!(audited(s, "password.change_failed").await, 1);
}
both_stores!(changing_the_password_ends_the_other_sessions_only);

async fn a_password_change_needs_a_session_and_the_form(s: &TestServer) {
    let mut b = Browser::new();
    let (status, loc, _) = b
        .post_form(
            &format!("{}/account/password", s.base),
            &[("current_password", ADA_PASSWORD), ("new_password", NEW_PASSWORD)],
        )
        .await;
    assert_eq!((status, loc.as_deref()), (303, Some("/login?next=/account")));
    let (_, page) = csrf_of(&mut b, &format!("{}/login?next=/account", s.base)).await;
    b.login(&s.base, &page, ADA, ADA_PASSWORD).await;
    let form = [
        ("current_password", ADA_PASSWORD),
        ("new_password", NEW_PASSWORD),
        ("csrf", "forged-forged-forged-forged-forged-forged"),
    ];
    let (status, _, _) = b.post_form(&format!("{}/account/password", s.base), &form).await;
    assert_eq!(status, 403, "a cross-site form");
    assert_eq!(login_status(s, ADA, ADA_PASSWORD).await, 303, "unchanged");
}
both_stores!(a_password_change_needs_a_session_and_the_form);

async fn an_unverified_email_is_verified_by_its_link(s: &TestServer) {
    let email = "cli-made@example.test";
    let user = portico_model::User {
        id: portico_model::UserId::new("usr_unverified".to_owned()),
        email: email.into(),
        email_verified: false,
        name: "Made By Cli".into(),
        status: portico_model::UserStatus::Active,
        created_at: portico_testkit::now(),
    };
    let hash = portico_protocol::password::hash(ADA_PASSWORD);
    committed!(s.store(), t => t.insert_user(&user, Some(&hash), &[])).await.unwrap();
    let mut b = Browser::new();
    let (csrf, _) = csrf_of(&mut b, &format!("{}/login?next=/account", s.base)).await;
    let form = [("email", email), ("password", ADA_PASSWORD), ("csrf", csrf.as_str()), ("next", "/account")];
    let (_, loc, _) = b.post_form(&format!("{}/login", s.base), &form).await;
    let (_, _, account) = b.get(&format!("{}{}", s.base, loc.unwrap())).await;
    assert!(account.contains("Your email is not verified yet"), "{account}");
    let csrf = hidden(&account, "csrf").unwrap();
    let (status, loc, _) = b.post_form(&format!("{}/account/verify-email/send", s.base), &[("csrf", &csrf)]).await;
    assert_eq!((status, loc.as_deref()), (303, Some("/account?done=verification-sent")));
    let link = mailed_link(s, email, 1, "/account/verify-email").await;
    let mut other = Browser::new();
    let (csrf, page) = csrf_of(&mut other, &link).await;
    let token = hidden(&page, "token").unwrap();
    let (status, _, page) = other
        .post_form(&format!("{}/account/verify-email", s.base), &[("token", &token), ("csrf", &csrf)])
        .await;
    assert_eq!(status, 200, "{page}");
    assert!(s.store().user_by_email(email).await.unwrap().unwrap().0.email_verified);
    let (status, _, _) = other
        .post_form(&format!("{}/account/verify-email", s.base), &[("token", &token), ("csrf", &csrf)])
        .await;
    assert_eq!(status, 400, "once only");
    let (_, _, account) = b.get(&format!("{}/account", s.base)).await;
    assert!(account.contains("Your email is verified."));
    assert_eq!(audited(s, "email.verified").await, 1);
}
both_stores!(an_unverified_email_is_verified_by_its_link);

async fn the_meter_gives_the_servers_verdict(s: &TestServer) {
    let ask = |password: &'static str| async move {
        let resp = openidconnect::reqwest::Client::new()
            .post(format!("{}/password/strength", s.base))
            .form(&[("password", password), ("email", "lin@example.test"), ("name", "Lin Chen")])
            .send()
            .await
            .unwrap();
        serde_json::from_str::<serde_json::Value>(&resp.text().await.unwrap()).unwrap()
    };
    let weak = ask("iloveyou").await;
    assert_eq!(weak["acceptable"], false);
    assert_eq!(weak["message"], "Use at least 15 characters.");
    assert_eq!(ask("iloveyouiloveyou").await["acceptable"], false, "a repeated common password");
    assert_eq!(ask("lin@example.test").await["acceptable"], false, "the user's own email");
    let strong = ask(NEW_PASSWORD).await;
    assert_eq!(strong["acceptable"], true, "{strong}");
    assert!(strong["score"].as_u64().unwrap() >= 3);
    // The estimate costs CPU: one address gets a few a second, then 429.
    let http = openidconnect::reqwest::Client::new();
    let mut refused = None;
    for _ in 0..400 {
        let resp = http
            .post(format!("{}/password/strength", s.base))
            .form(&[("password", "x")])
            .send()
            .await
            .unwrap();
        if resp.status() == 429 {
            refused = Some(resp);
            break;
        }
    }
    let refused = refused.expect("refused within 400 readings");
    assert!(refused.headers().get("retry-after").is_some());
}
both_stores!(the_meter_gives_the_servers_verdict);

async fn one_address_cannot_flood_inboxes(s: &TestServer) {
    for _ in 0..10 {
        assert_eq!(forgot(s, ADA).await.0, 200);
    }
    let mut b = Browser::new();
    let (csrf, _) = csrf_of(&mut b, &format!("{}/password/forgot", s.base)).await;
    let (status, headers, _) = b
        .post_form_with_headers(&format!("{}/password/forgot", s.base), &[("email", ADA), ("csrf", &csrf)])
        .await;
    assert_eq!(status, 429);
    assert!(headers.get("retry-after").is_some());
}
both_stores!(one_address_cannot_flood_inboxes);

fn blocklisted(c: &mut Config) {
    let path = c.data_dir.join("blocklist.txt");
    std::fs::create_dir_all(&c.data_dir).unwrap();
    std::fs::write(&path, "# ours\nlighthouse keeper oyster violin\n").unwrap();
    c.password_blocklist = Some(path);
}

async fn the_operators_blocklist_is_honoured(s: &TestServer) {
    forgot(s, ADA).await;
    let link = mailed_link(s, ADA, 1, "/password/reset").await;
    let (status, page) = reset_with(s, &link, &NEW_PASSWORD.to_uppercase()).await;
    assert_eq!(status, 400);
    assert!(page.contains("one of the most common"), "{page}");
}
both_stores_with!(the_operators_blocklist_is_honoured, SUITE, blocklisted);

#[test]
fn configuration_refuses_bad_password_and_mail_settings() {
    let refusal = |c: Config| c.validate().unwrap_err().to_string();
    let base = Config::default;
    assert!(
        refusal(Config {
            password_min_length: 6,
            ..base()
        })
        .contains("password_min_length")
    );
    assert!(
        refusal(Config {
            password_blocklist: Some("/nonexistent/blocklist.txt".into()),
            ..base()
        })
        .contains("/nonexistent/blocklist.txt")
    );
    assert!(
        refusal(Config {
            smtp_url: Some("gopher://mail".into()),
            ..base()
        })
        .contains("smtp_url")
    );
    assert!(
        refusal(Config {
            reset_link_lifetime: "2d".into(),
            ..base()
        })
        .contains("reset_link_lifetime")
    );
    assert!(
        refusal(Config {
            mail_from: Some("not a mailbox".into()),
            ..base()
        })
        .contains("mail_from")
    );
}

#[test]
fn a_product_with_tenants_cannot_take_signups() {
    let suite = "[[product]]\nslug = \"crm\"\nname = \"CRM\"\naudience = \"https://crm.example.test\"\ntenant_aware = true\nsignup = true\n";
    let err = portico_server::suite::Suite::parse("suite.toml", suite, &Default::default())
        .err()
        .expect("refused");
    let text = err.to_string();
    assert!(text.contains("field signup") && text.starts_with("suite.toml:1:"), "{text}");
}

/// SUITE with CRM requiring a second factor and refusing one set up by a password alone.
static LINK_FIRST: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    SUITE.replace(
        "audience = \"https://crm.example.test\"\n",
        "audience = \"https://crm.example.test\"\nmfa = \"required\"\nmfa_enrolment = \"email_link\"\n",
    )
});

/// A browser signed in (password only) and on its account page.
async fn on_account(s: &TestServer, email: &str, password: &str) -> (Browser, String) {
    let mut b = Browser::new();
    let (csrf, _) = csrf_of(&mut b, &format!("{}/login?next=/account", s.base)).await;
    let form = [("email", email), ("password", password), ("csrf", csrf.as_str()), ("next", "/account")];
    let (status, _, _) = b.post_form(&format!("{}/login", s.base), &form).await;
    assert_eq!(status, 303);
    let (_, _, account) = b.get(&format!("{}/account", s.base)).await;
    (b, account)
}

/// Opens the mailed link in `b`: the page, then its button.
async fn open_link(b: &mut Browser, s: &TestServer, link: &str) -> (u16, Option<String>, String) {
    let (csrf, page) = csrf_of(b, link).await;
    let token = hidden(&page, "token").unwrap();
    b.post_form(&format!("{}/account/factor-link", s.base), &[("token", &token), ("csrf", &csrf)])
        .await
}

async fn a_product_refusing_trust_on_first_use_needs_the_mailed_link_before_the_first_factor(s: &TestServer) {
    let (ada, _) = s.store().user_by_email(ADA).await.unwrap().unwrap();
    // A password alone (a thief's, say) can set up nothing for Ada, who uses CRM.
    let (mut a, account) = on_account(s, ADA, ADA_PASSWORD).await;
    assert!(
        account.contains("Email me a link") && !account.contains("Set up an authenticator app"),
        "{account}"
    );
    let csrf = hidden(&account, "csrf").unwrap();
    let (status, _, page) = a.post_form(&format!("{}/account/totp/start", s.base), &[("csrf", &csrf)]).await;
    assert!(status == 403 && !page.contains("data:image/svg"), "{status} {page}");
    let (status, _, problem) = a.post_form(&format!("{}/account/passkeys/options", s.base), &[("csrf", &csrf)]).await;
    assert!(status == 403 && problem.contains("link we mail you"), "{status} {problem}");
    // Nor through the step-up page of CRM's sign-in.
    let (_, _, step_up) = a.follow(&s.base, authorize_url_for(s, "crm-web")).await;
    assert!(step_up.contains("Email me a link") && !step_up.contains("data:image/svg"), "{step_up}");
    assert!(s.store().totp_of(&ada.id).await.unwrap().is_none(), "no authenticator started");
    // An authenticator started some other way is not turned on by the step-up form either.
    let secret = [7u8; 20];
    let now = portico_testkit::now();
    let sealed = s.running.provider.kek.seal_totp(ada.id.as_str(), &secret);
    assert!(s.store().start_totp(&ada.id, &sealed, now).await.unwrap());
    let app = totp_rs::TOTP::new_unchecked(totp_rs::Algorithm::SHA1, 6, 1, 30, secret.to_vec(), None, "ada".into());
    let next = hidden(&step_up, "next").unwrap();
    let req = next.strip_prefix("/login/second-factor?req=").unwrap();
    let code = app.generate(now as u64);
    let form = [("csrf", csrf.as_str()), ("req", req), ("enrol", "1"), ("code", code.as_str())];
    let (status, _, page) = a.post_form(&format!("{}/login/second-factor", s.base), &form).await;
    assert!(status != 200 && !page.contains("recovery-codes"), "{status} {page}");
    assert!(!portico_protocol::totp::enrolled(&s.running.provider, &ada.id).await.unwrap());
    // Bob uses no such product: trust on first use, as by default.
    let (_, bobs) = on_account(s, "bob@example.test", "bob's long enough password").await;
    assert!(bobs.contains("Set up an authenticator app"), "{bobs}");

    // The link, mailed to Ada.
    let (status, _, sent) = a
        .post_form(&format!("{}/account/factor-link/send", s.base), &[("csrf", &csrf), ("next", "/account")])
        .await;
    assert!(status == 200 && sent.contains("Check your mail"), "{sent}");
    let link = mailed_link(s, ADA, 1, "/account/factor-link").await;
    // Opened by Bob, or by a browser signed in as nobody: refused, and still good.
    let (mut bob, _) = on_account(s, "bob@example.test", "bob's long enough password").await;
    let (status, _, page) = open_link(&mut bob, s, &link).await;
    assert!(status == 403 && page.contains("another account"), "{page}");
    let (status, _, page) = open_link(&mut Browser::new(), s, &link).await;
    assert!(status == 403 && page.contains("Sign in first"), "{page}");
    // Opened by another of Ada's sessions: that session, and it alone, may set up a factor.
    let (mut c, _) = on_account(s, ADA, ADA_PASSWORD).await;
    let (status, loc, _) = open_link(&mut c, s, &link).await;
    assert_eq!((status, loc.as_deref()), (303, Some("/account")));
    let (_, _, account) = c.get(&format!("{}/account", s.base)).await;
    let c_csrf = hidden(&account, "csrf").unwrap();
    let (status, _, page) = c.post_form(&format!("{}/account/totp/start", s.base), &[("csrf", &c_csrf)]).await;
    assert!(status == 200 && page.contains("data:image/svg"), "{status} {page}");
    let (status, _, _) = a.post_form(&format!("{}/account/totp/start", s.base), &[("csrf", &csrf)]).await;
    assert_eq!(status, 403, "the session that asked for the link did not open it");
    // Once only.
    let (status, _, _) = open_link(&mut c, s, &link).await;
    assert_eq!(status, 400);
    assert_eq!(audited(s, "mfa.enrolment_link_opened").await, 1);
}
both_stores!(a_product_refusing_trust_on_first_use_needs_the_mailed_link_before_the_first_factor, &LINK_FIRST);

/// An authorization request URL for a confidential client of SUITE.
fn authorize_url_for(s: &TestServer, client: &str) -> String {
    let (_, challenge) = pkce();
    let q = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs([
            ("response_type", "code"),
            ("client_id", client),
            ("redirect_uri", CALLBACK),
            ("scope", "openid"),
            ("state", "st"),
            ("code_challenge", challenge.as_str()),
            ("code_challenge_method", "S256"),
        ])
        .finish();
    format!("{}/oauth2/authorize?{q}", s.base)
}

/// Every form of the account pages: signed out, it goes to sign in; signed in with a forged CSRF
/// token, it is refused. Either way nothing is written (the audit log does not move) and the
/// session lives on.
async fn every_account_form_needs_the_session_and_its_own_csrf_token(s: &TestServer) {
    const FORMS: [&str; 12] = [
        "/account/sessions/end",
        "/account/sessions/end-all",
        "/account/totp/start",
        "/account/totp/confirm",
        "/account/totp/remove",
        "/account/recovery/new",
        "/account/passkeys",
        "/account/passkeys/rename",
        "/account/passkeys/remove",
        "/account/password",
        "/account/verify-email/send",
        "/account/factor-link/send",
    ];
    s.running.provider.writer.flush().await;
    let (head, _) = s.store().audit_head().await.unwrap();
    let mut stranger = Browser::new();
    let (csrf, _) = csrf_of(&mut stranger, &format!("{}/login", s.base)).await;
    for path in FORMS {
        let (status, loc, _) = stranger
            .post_form(
                &format!("{}{path}", s.base),
                &[
                    ("csrf", csrf.as_str()),
                    ("session", "x"),
                    ("code", "123456"),
                    ("current_password", "x"),
                    ("new_password", "y"),
                ],
            )
            .await;
        assert_eq!((status, loc.as_deref()), (303, Some("/login?next=/account")), "{path} without a session");
    }
    let mut b = Browser::new();
    let (_, page) = csrf_of(&mut b, &format!("{}/login?next=/account", s.base)).await;
    assert_eq!(b.login(&s.base, &page, ADA, ADA_PASSWORD).await.0, 200);
    s.running.provider.writer.flush().await;
    let (signed_in, _) = s.store().audit_head().await.unwrap();
    assert!(signed_in > head);
    for path in FORMS {
        let forged = "forged-forged-forged-forged-forged-forged";
        let (status, _, _) = b
            .post_form(
                &format!("{}{path}", s.base),
                &[
                    ("csrf", forged),
                    ("session", "x"),
                    ("code", "123456"),
                    ("current_password", "x"),
                    ("new_password", "y"),
                ],
            )
            .await;
        assert_eq!(status, 403, "{path} with a forged CSRF token");
    }
    s.running.provider.writer.flush().await;
    assert_eq!(s.store().audit_head().await.unwrap().0, signed_in, "nothing was written");
    let (status, _, page) = b.get(&format!("{}/account", s.base)).await;
    assert!(status == 200 && page.contains(ADA), "still signed in");
}
both_stores!(every_account_form_needs_the_session_and_its_own_csrf_token);

/// Where the first factor needs the mailed link, no form that sets up or changes a factor takes a
/// password-only session — not even with a right code for an authenticator started some other
/// way. Each is refused and writes nothing.
async fn every_factor_form_keeps_the_mailed_link_rule(s: &TestServer) {
    let (ada, _) = s.store().user_by_email(ADA).await.unwrap().unwrap();
    let secret = [9u8; 20];
    let now = portico_testkit::now();
    let sealed = s.running.provider.kek.seal_totp(ada.id.as_str(), &secret);
    assert!(s.store().start_totp(&ada.id, &sealed, now).await.unwrap());
    let app = totp_rs::TOTP::new_unchecked(totp_rs::Algorithm::SHA1, 6, 1, 30, secret.to_vec(), None, "ada".into());
    let (mut a, account) = on_account(s, ADA, ADA_PASSWORD).await;
    let csrf = hidden(&account, "csrf").unwrap();
    s.running.provider.writer.flush().await;
    let (head, _) = s.store().audit_head().await.unwrap();
    for path in [
        "/account/totp/start",
        "/account/totp/confirm",
        "/account/recovery/new",
        "/account/totp/remove",
        "/account/passkeys",
        "/account/passkeys/remove",
    ] {
        let code = app.generate(portico_testkit::now() as u64);
        let form = [
            ("csrf", csrf.as_str()),
            ("code", code.as_str()),
            ("id", "x"),
            ("name", "x"),
            ("token", "x"),
            ("credential", "{}"),
        ];
        let (status, _, page) = a.post_form(&format!("{}{path}", s.base), &form).await;
        assert_eq!(status, 403, "{path}: {}", page.chars().take(300).collect::<String>());
    }
    assert!(!portico_protocol::totp::enrolled(&s.running.provider, &ada.id).await.unwrap(), "not turned on");
    assert_eq!(s.store().recovery_codes_left(&ada.id).await.unwrap().0, 0, "no recovery codes made");
    s.running.provider.writer.flush().await;
    assert_eq!(s.store().audit_head().await.unwrap().0, head, "nothing was written");
}
both_stores!(every_factor_form_keeps_the_mailed_link_rule, &LINK_FIRST);

/// Renaming a passkey changes a label, not how anyone signs in: a session that may not change
/// factors may still rename one of its user's passkeys, but not remove it.
async fn a_passkey_is_renamed_without_the_factor_rule_but_not_removed(s: &TestServer) {
    let (ada, _) = s.store().user_by_email(ADA).await.unwrap().unwrap();
    // A session from before the passkey (a password alone, as a stolen cookie would be).
    let (mut a, account) = on_account(s, ADA, ADA_PASSWORD).await;
    let csrf = hidden(&account, "csrf").unwrap();
    plant_passkey(s, "pk-ada", &ada.id, "Laptop").await;
    let form = [("csrf", csrf.as_str()), ("id", "pk-ada"), ("name", "Work laptop")];
    let (status, _, page) = a.post_form(&format!("{}/account/passkeys/remove", s.base), &form).await;
    assert_eq!(
        status,
        403,
        "a password-only session removes no factor: {}",
        page.chars().take(300).collect::<String>()
    );
    let (status, loc, _) = a.post_form(&format!("{}/account/passkeys/rename", s.base), &form).await;
    assert_eq!((status, loc.as_deref()), (303, Some("/account")));
    let names: Vec<String> = s.store().passkeys_of(&ada.id).await.unwrap().into_iter().map(|p| p.name).collect();
    assert_eq!(names, ["Work laptop"], "renamed, and still there");
}
both_stores!(a_passkey_is_renamed_without_the_factor_rule_but_not_removed, &LINK_FIRST);
