//! Brute force: sign-in throttling per account and per client IP (growing delays, then a lock
//! that expires), answered `429` with `Retry-After`, identical for known and unknown emails; and
//! per-client limits at the token endpoint. Limits are small here so the tests run in seconds.

use crate::*;
use portico_server::config::Config;

const ADA: &str = "ada@example.test";
const ADA_PASSWORD: &str = "correct horse battery staple";
const NOBODY: &str = "nobody@example.test";

/// Two free failures per account, then waits of 1 and 2 s, and the fourth locks it for 3 s; the
/// per-address limits out of the way.
fn small(c: &mut Config) {
    c.login_account_delay_after = 2;
    c.login_account_lock_after = 4;
    c.login_lock = "3s".into();
    c.token_requests_per_client = 2;
}

/// Five free failures per address.
fn per_ip(c: &mut Config) {
    small(c);
    c.login_ip_delay_after = 5;
    c.login_ip_lock_after = 10;
}

/// One sign-in attempt from a fresh login page: status, `Retry-After`, body.
async fn attempt(s: &TestServer, email: &str, password: &str) -> (u16, Option<u64>, String) {
    let mut b = Browser::new();
    let (_, _, page) = b.get(&format!("{}/login", s.base)).await;
    let csrf = hidden(&page, "csrf").unwrap();
    let (status, headers, body) = b
        .post_form_with_headers(&format!("{}/login", s.base), &[("email", email), ("password", password), ("csrf", &csrf)])
        .await;
    let retry = headers.get("retry-after").map(|v| v.to_str().unwrap().parse().expect("Retry-After in seconds"));
    // The page minus what differs by design: the CSRF token and the email typed.
    let body = body.replace(&csrf, "CSRF").replace(email, "EMAIL");
    (status, retry, body)
}

async fn audited(s: &TestServer, kind: &str) -> usize {
    crate::backchannel::audited(s, kind).await.len()
}

/// Moves the server's throttle clock on by `seconds`: what waiting would do, without the wait.
fn wait(s: &TestServer, seconds: f64) {
    s.running.provider.clock.advance(std::time::Duration::from_secs_f64(seconds));
}

async fn an_account_waits_then_locks_then_unlocks(s: &TestServer) {
    for _ in 0..2 {
        assert_eq!(attempt(s, ADA, "wrong").await.0, 401);
    }
    // Past the free failures the next attempt waits 1 s, even with the right password.
    let (status, retry, body) = attempt(s, ADA, ADA_PASSWORD).await;
    assert_eq!((status, retry), (429, Some(1)), "{body}");
    assert!(body.contains("Too many sign-in attempts"), "{body}");
    // Delays grow: then 2 s.
    wait(s, 1.1);
    assert_eq!(attempt(s, ADA, "wrong").await.0, 401);
    assert_eq!(attempt(s, ADA, ADA_PASSWORD).await.1, Some(2));
    // The fourth failure locks the account for the lock duration (3 s).
    wait(s, 2.1);
    assert_eq!(attempt(s, ADA, "wrong").await.0, 401);
    let (status, retry, _) = attempt(s, ADA, ADA_PASSWORD).await;
    assert_eq!((status, retry), (429, Some(3)));
    // Another account is not held up by hers.
    assert_eq!(attempt(s, "bob@example.test", "bob's long enough password").await.0, 303);
    // The lock expires; the right password then signs in and forgets her failures.
    wait(s, 3.1);
    assert_eq!(attempt(s, ADA, ADA_PASSWORD).await.0, 303);
    assert_eq!(attempt(s, ADA, "wrong").await.0, 401);
    assert_eq!(attempt(s, ADA, "wrong").await.0, 401, "the count started again");
    assert_eq!(audited(s, "login.delayed").await, 2, "the first wait, each time");
    assert_eq!(audited(s, "login.locked").await, 1);
    assert_eq!(audited(s, "login.throttled").await, 3);
}
both_stores_with!(an_account_waits_then_locks_then_unlocks, SUITE, small);

async fn a_locked_account_is_not_revealed(s: &TestServer) {
    // The same failures against a real account and an unknown email: the same answers.
    for _ in 0..4 {
        let (known, unknown) = (attempt(s, ADA, "wrong").await, attempt(s, NOBODY, "wrong").await);
        assert_eq!(known, unknown);
    }
    let (known, unknown) = (attempt(s, ADA, "wrong").await, attempt(s, NOBODY, "wrong").await);
    assert_eq!(known.0, 429);
    assert_eq!(known, unknown, "a lock says nothing about whether the account exists");
}
both_stores_with!(a_locked_account_is_not_revealed, SUITE, small);

async fn one_address_spraying_many_accounts_waits(s: &TestServer) {
    // Password spraying: one guess each at many emails from one address.
    for i in 0..5 {
        assert_eq!(attempt(s, &format!("user{i}@example.test"), "Summer2026!").await.0, 401);
    }
    let (status, retry, _) = attempt(s, "user9@example.test", "Summer2026!").await;
    assert_eq!((status, retry), (429, Some(1)), "the address waits, whatever email it tries next");
    let (status, _, _) = attempt(s, ADA, ADA_PASSWORD).await;
    assert_eq!(status, 429, "even a right password from that address waits");
}
both_stores_with!(one_address_spraying_many_accounts_waits, SUITE, per_ip);

async fn a_client_over_its_rate_gets_429(s: &TestServer) {
    let form = [("grant_type", "client_credentials"), ("resource", "https://reports.example.test")];
    let mut refused = None;
    for _ in 0..12 {
        let resp = openidconnect::reqwest::Client::new()
            .post(format!("{}/oauth2/token", s.base))
            .basic_auth("reports-web", Some(REPORTS_SECRET))
            .form(&form)
            .send()
            .await
            .unwrap();
        if resp.status() == 429 {
            refused = Some(resp);
            break;
        }
        assert_eq!(resp.status(), 200);
    }
    let resp = refused.expect("2 requests a second, bursts of 4: twelve at once are too many");
    let retry: u64 = resp.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=2).contains(&retry), "{retry}");
    let body: serde_json::Value = serde_json::from_str(&resp.text().await.unwrap()).unwrap();
    assert_eq!(body["error"], "temporarily_unavailable");
    // Another client is not held up.
    let (status, _) = post_basic(
        s,
        "/oauth2/token",
        "crm-web",
        SECRET,
        &[("grant_type", "client_credentials"), ("resource", "https://reports.example.test")],
    )
    .await;
    assert_ne!(status, 429);
    assert_eq!(audited(s, "token.throttled").await, 1, "audited once a second, not once a request");
}
both_stores_with!(a_client_over_its_rate_gets_429, SUITE, small);
