//! Structured logs: JSON lines that name the request they belong to, and never a secret.

use crate::*;
use portico_server::config::LogFormat;
use std::sync::{Arc, Mutex};

#[derive(Clone, Default)]
struct Buf(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Buf {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("buffer").extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Portico's JSON log lines of whatever this thread runs while the guard lives.
fn json_logs() -> (Buf, tracing::subscriber::DefaultGuard) {
    let buf = Buf::default();
    let writer = buf.clone();
    let guard = tracing::subscriber::set_default(portico_server::cli::log_subscriber(LogFormat::Json, move || writer.clone()));
    (buf, guard)
}

impl Buf {
    /// Everything logged, and the "request refused" lines, each parsed (every line must be JSON).
    fn refusals(&self) -> (String, Vec<serde_json::Value>) {
        let text = String::from_utf8(self.0.lock().expect("buffer").clone()).expect("utf-8");
        let refused = text
            .lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).expect("every line is JSON"))
            .filter(|l| l["fields"]["message"] == "request refused")
            .collect();
        (text, refused)
    }
}

// One thread runs the server and the client, so the thread-local subscriber sees every request.
#[tokio::test(flavor = "current_thread")]
async fn json_logs_carry_request_ids_and_no_secrets() {
    let (buf, _guard) = json_logs();
    let s = TestServer::start(Backend::Sqlite, SUITE).await.expect("server");

    let tokens = code_flow_tokens(&s).await;
    let rt = tokens["refresh_token"].as_str().expect("refresh token");
    // Refusals are logged: a wrong client secret, then a refresh token presented twice.
    let (status, _) = post_basic(
        &s,
        "/oauth2/token",
        "crm-web",
        "wrong-secret-0123456789abcdef0123456789",
        &[("grant_type", "client_credentials")],
    )
    .await;
    assert_eq!(status, 401);
    for _ in 0..2 {
        post_basic(
            &s,
            "/oauth2/token",
            "crm-web",
            SECRET,
            &[("grant_type", "refresh_token"), ("refresh_token", rt)],
        )
        .await;
    }
    s.stop().await;

    let (text, refused) = buf.refusals();
    assert!(refused.len() >= 2, "refusals are logged: {text}");
    for l in &refused {
        let id = l["span"]["request_id"].as_str().unwrap_or("");
        assert_eq!(id.len(), 36, "each refusal names its request: {l}");
        assert_eq!(l["span"]["path"], "/oauth2/token");
    }
    let at = tokens["access_token"].as_str().expect("access token");
    for secret in [SECRET, "wrong-secret-0123456789abcdef0123456789", "correct horse battery staple", rt, at] {
        assert!(!text.contains(secret), "a secret reached the logs: {secret}");
    }
}

/// A client names its own request id (`x-request-id` is kept when sent): quotes, backslashes and
/// JSON punctuation in it stay inside the span's `request_id` string, so a line cannot be given
/// fields (or a level) by the client, and every line is still one JSON object.
#[tokio::test(flavor = "current_thread")]
async fn a_client_request_id_cannot_break_or_forge_a_json_line() {
    let (buf, _guard) = json_logs();
    let s = TestServer::start(Backend::Sqlite, SUITE).await.expect("server");
    let forged = r#"x","level":"ERROR","path":"/admin\"}{\\"#;
    let resp = openidconnect::reqwest::Client::new()
        .post(format!("{}/oauth2/token", s.base))
        .header("x-request-id", forged)
        .basic_auth("crm-web", Some("wrong-secret-0123456789abcdef0123456789"))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .expect("POST");
    assert_eq!(resp.status(), 401);
    assert_eq!(resp.headers()["x-request-id"], forged, "the id is echoed as sent");
    s.stop().await;

    let (text, refused) = buf.refusals();
    assert_eq!(refused.len(), 1, "one refusal: {text}");
    let line = &refused[0];
    assert_eq!(line["span"]["request_id"], forged, "the id is one string, byte for byte: {line}");
    assert_eq!(line["span"]["path"], "/oauth2/token", "{line}");
    assert_eq!(line["span"]["method"], "POST", "{line}");
    assert_ne!(line["level"], "ERROR", "{line}");
}
