//! A product's refresh-token reuse grace (`refresh_reuse_grace`, off by default): within the
//! grace, the immediate parent of the current refresh token answers with that same current token
//! instead of revoking the family; anything older, or later, still revokes it.

use crate::*;
use portico_model::Secret;
use portico_protocol::client_auth::ClientCredentials;
use portico_protocol::token::{self, TokenRequest};
use std::sync::LazyLock;

static GRACE: LazyLock<String> = LazyLock::new(|| {
    let suite = SUITE.replacen(
        "audience = \"https://crm.example.test\"\n",
        "audience = \"https://crm.example.test\"\nrefresh_reuse_grace = \"5s\"\n",
        1,
    );
    assert_ne!(suite, SUITE);
    suite
});

fn crm() -> ClientCredentials {
    ClientCredentials {
        basic: Some(("crm-web".into(), Secret::new(SECRET))),
        ..Default::default()
    }
}

async fn refresh_at(s: &TestServer, rt: &str, at: i64) -> Result<(String, String), String> {
    let req = TokenRequest {
        grant_type: Some("refresh_token".into()),
        refresh_token: Some(rt.into()),
        ..Default::default()
    };
    match token::exchange(&s.running.provider, &crm(), req, at).await.1 {
        Ok(t) => Ok((t.refresh_token.expect("a refresh token"), t.access_token)),
        Err(e) => Err(e.code.as_str().to_owned()),
    }
}

async fn the_parent_answers_with_the_current_token_within_the_grace_only(s: &TestServer) {
    let t0 = portico_testkit::now();
    let rt1 = code_flow_tokens(s).await["refresh_token"].as_str().unwrap().to_owned();
    let (rt2, at2) = refresh_at(s, &rt1, t0).await.unwrap();
    assert_ne!(rt1, rt2);
    // Within the grace, the parent again: the same successor, a new access token.
    let (again, at_again) = refresh_at(s, &rt1, t0 + 5).await.unwrap();
    assert_eq!(again, rt2, "the current token, not a fork of the family");
    assert_ne!(at_again, at2);
    // The current token still rotates.
    let (rt3, _) = refresh_at(s, &rt2, t0 + 6).await.unwrap();
    // Its grandparent, though within five seconds of its own rotation, is older than the
    // current token's parent: the family is revoked.
    assert_eq!(refresh_at(s, &rt1, t0 + 4).await, Err("invalid_grant".into()));
    assert_eq!(refresh_at(s, &rt3, t0 + 7).await, Err("invalid_grant".into()), "the whole family ended");
}
both_stores!(the_parent_answers_with_the_current_token_within_the_grace_only, &GRACE);

async fn after_the_grace_reuse_revokes_the_family(s: &TestServer) {
    let t0 = portico_testkit::now();
    let rt1 = code_flow_tokens(s).await["refresh_token"].as_str().unwrap().to_owned();
    let (rt2, _) = refresh_at(s, &rt1, t0).await.unwrap();
    assert_eq!(refresh_at(s, &rt1, t0 + 6).await, Err("invalid_grant".into()));
    assert_eq!(refresh_at(s, &rt2, t0 + 6).await, Err("invalid_grant".into()));
    // Another client presenting the parent in time gets nothing.
    let t0 = portico_testkit::now();
    let rt1 = code_flow_tokens(s).await["refresh_token"].as_str().unwrap().to_owned();
    refresh_at(s, &rt1, t0).await.unwrap();
    let (status, body) = post_basic(
        s,
        "/oauth2/token",
        "reports-web",
        REPORTS_SECRET,
        &[("grant_type", "refresh_token"), ("refresh_token", &rt1)],
    )
    .await;
    assert_eq!((status, body["error"].as_str()), (400, Some("invalid_grant")));
    assert!(body.get("refresh_token").is_none());
}
both_stores!(after_the_grace_reuse_revokes_the_family, &GRACE);

/// Five tabs whose access tokens expired together present the same refresh token at once.
async fn five_at_once(s: &TestServer) -> Vec<(u16, serde_json::Value)> {
    let rt = code_flow_tokens(s).await["refresh_token"].as_str().unwrap().to_owned();
    let form = [("grant_type", "refresh_token"), ("refresh_token", rt.as_str())];
    let calls = (0..5).map(|_| post_basic(s, "/oauth2/token", "crm-web", SECRET, &form));
    futures_util::future::join_all(calls).await
}

async fn concurrent_refreshes_under_the_grace_all_end_with_one_token(s: &TestServer) {
    let answers = five_at_once(s).await;
    assert!(answers.iter().all(|(status, _)| *status == 200), "{answers:?}");
    let tokens: std::collections::HashSet<_> = answers.iter().map(|(_, b)| b["refresh_token"].as_str().unwrap().to_owned()).collect();
    assert_eq!(tokens.len(), 1, "every tab holds the same refresh token");
    let rt = tokens.into_iter().next().unwrap();
    let (status, _) = post_basic(
        s,
        "/oauth2/token",
        "crm-web",
        SECRET,
        &[("grant_type", "refresh_token"), ("refresh_token", &rt)],
    )
    .await;
    assert_eq!(status, 200, "the family lives on");
}
both_stores!(concurrent_refreshes_under_the_grace_all_end_with_one_token, &GRACE);

async fn without_a_grace_concurrent_refreshes_end_the_family(s: &TestServer) {
    let answers = five_at_once(s).await;
    let ok: Vec<_> = answers.iter().filter(|(status, _)| *status == 200).collect();
    assert!(ok.len() <= 1, "{answers:?}");
    assert!(answers.iter().any(|(_, b)| b["error"] == "invalid_grant"), "{answers:?}");
    for (_, b) in ok {
        let rt = b["refresh_token"].as_str().unwrap();
        let (status, _) = post_basic(s, "/oauth2/token", "crm-web", SECRET, &[("grant_type", "refresh_token"), ("refresh_token", rt)]).await;
        assert_eq!(status, 400, "reuse revoked the family, the winner's token too");
    }
}
both_stores!(without_a_grace_concurrent_refreshes_end_the_family);

#[test]
fn the_grace_is_at_most_a_minute() {
    for (grace, ok) in [
        ("5s", true),
        ("60s", true),
        ("1m", true),
        ("61s", false),
        ("2m", false),
        ("0s", false),
        ("soon", false),
    ] {
        let suite = SUITE.replacen(
            "audience = \"https://crm.example.test\"\n",
            &format!("audience = \"https://crm.example.test\"\nrefresh_reuse_grace = \"{grace}\"\n"),
            1,
        );
        let checked = portico_server::suite::Suite::parse("suite.toml", &suite, &std::collections::HashSet::new());
        assert_eq!(checked.is_ok(), ok, "{grace}: {:?}", checked.err().map(|e| e.to_string()));
        if let Err(e) = checked {
            assert!(e.to_string().contains("refresh_reuse_grace"), "{e}");
        }
    }
}

async fn a_replay_revokes_the_family_whatever_resource_it_names(s: &TestServer) {
    let rt1 = code_flow_tokens(s).await["refresh_token"].as_str().unwrap().to_owned();
    let (status, t2) = post_basic(
        s,
        "/oauth2/token",
        "crm-web",
        SECRET,
        &[("grant_type", "refresh_token"), ("refresh_token", &rt1)],
    )
    .await;
    assert_eq!(status, 200);
    // The spent token again, naming another product: still reuse, and the family ends.
    let (status, _) = post_basic(
        s,
        "/oauth2/token",
        "crm-web",
        SECRET,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", &rt1),
            ("resource", "https://reports.example.test"),
        ],
    )
    .await;
    assert_eq!(status, 400);
    let (status, _) = post_basic(
        s,
        "/oauth2/token",
        "crm-web",
        SECRET,
        &[("grant_type", "refresh_token"), ("refresh_token", t2["refresh_token"].as_str().unwrap())],
    )
    .await;
    assert_eq!(status, 400, "the replay did not revoke the family");
}
both_stores!(a_replay_revokes_the_family_whatever_resource_it_names);
