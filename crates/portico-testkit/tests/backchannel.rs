//! Back-channel logout (OIDC Back-Channel Logout 1.0) through the durable outbox: a revoked grant or
//! a disabled user ends product sessions, and each product with a back-channel logout URI receives
//! a logout token that verifies with the JWKS — at once when it is up, when it comes back when it
//! is down (across a restart of Portico too), never holding up the change that caused it.

use crate::admin_api::{ADMIN, OPS_SECRET, admin_token, api};
use crate::tenancy::{CRM_SECRET, REPORTS_SECRET, tokens};
use crate::*;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// What a receiver does with a request.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Answer {
    Ok,
    /// 503 for this many requests, then 200.
    FailFirst(usize),
    /// Never answers.
    Hang,
}

/// A product's back-channel logout endpoint on loopback: records `(path, logout_token)`.
pub(crate) struct Receiver {
    got: Arc<Mutex<Vec<(String, String)>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Receiver {
    pub(crate) async fn serve(listener: tokio::net::TcpListener, answer: Answer) -> Self {
        use axum::extract::{Form, OriginalUri};
        let got = Arc::new(Mutex::new(Vec::new()));
        let failures = Arc::new(Mutex::new(match answer {
            Answer::FailFirst(n) => n,
            _ => 0,
        }));
        let record = got.clone();
        let app = axum::Router::new().fallback(axum::routing::post(
            move |uri: OriginalUri, Form(form): Form<std::collections::HashMap<String, String>>| {
                let (record, failures) = (record.clone(), failures.clone());
                async move {
                    record
                        .lock()
                        .unwrap()
                        .push((uri.path().to_owned(), form.get("logout_token").cloned().unwrap_or_default()));
                    if answer == Answer::Hang {
                        std::future::pending::<()>().await;
                    }
                    let mut left = failures.lock().unwrap();
                    if *left > 0 {
                        *left -= 1;
                        return axum::http::StatusCode::SERVICE_UNAVAILABLE;
                    }
                    axum::http::StatusCode::OK
                }
            },
        ));
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self { got, task }
    }

    pub(crate) fn received(&self) -> Vec<(String, String)> {
        self.got.lock().unwrap().clone()
    }

    /// Waits (up to `limit`) until `n` requests arrived.
    pub(crate) async fn wait_for(&self, n: usize, limit: Duration) -> Vec<(String, String)> {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let got = self.received();
            if got.len() >= n || tokio::time::Instant::now() > deadline {
                return got;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The admin suite with back-channel logout URIs on crm-web and reports-web at `port`;
/// billing-web has none.
pub(crate) fn suite(port: u16) -> String {
    ADMIN
        .replace(
            "id = \"crm-web\"\n",
            &format!("id = \"crm-web\"\nbackchannel_logout_uri = \"http://127.0.0.1:{port}/bcl/crm\"\n"),
        )
        .replace(
            "id = \"reports-web\"\n",
            &format!("id = \"reports-web\"\nbackchannel_logout_uri = \"http://127.0.0.1:{port}/bcl/reports\"\n"),
        )
}

/// A loopback port held for a receiver: bound but not listening, so a connection to it is refused
/// (the product is down) and no other socket can take it until the receiver listens on it.
pub(crate) struct Port(socket2::Socket);

impl Port {
    pub(crate) fn reserve() -> Self {
        use socket2::{Domain, Protocol, Socket, Type};
        let socket = Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP)).expect("socket");
        socket
            .bind(&std::net::SocketAddr::from(([127, 0, 0, 1], 0)).into())
            .expect("bind a loopback port");
        Self(socket)
    }

    pub(crate) fn number(&self) -> u16 {
        self.0.local_addr().expect("addr").as_socket().expect("an IP socket").port()
    }

    /// The product comes up: it listens on the held port.
    pub(crate) fn listen(self) -> tokio::net::TcpListener {
        self.0.listen(128).expect("listen");
        self.0.set_nonblocking(true).expect("non-blocking");
        tokio::net::TcpListener::from_std(self.0.into()).expect("listener")
    }
}

/// Verifies a logout token as an RP must (§2.6): signature by a key of the JWKS, `typ`, issuer,
/// audience, `iat`/`exp`, the event, `sid`/`sub`, no `nonce`. Returns its claims.
pub(crate) async fn verify_logout_token(s: &TestServer, token: &str, client: &str) -> serde_json::Value {
    let header = jsonwebtoken::decode_header(token).expect("a JWS");
    assert_eq!(header.typ.as_deref(), Some("logout+jwt"));
    let jwks = openidconnect::reqwest::get(format!("{}/oauth2/jwks", s.base))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let jwks: jsonwebtoken::jwk::JwkSet = serde_json::from_str(&jwks).unwrap();
    let jwk = jwks.find(header.kid.as_deref().expect("kid")).expect("the signing key is published");
    let mut v = jsonwebtoken::Validation::new(header.alg);
    v.set_audience(&[client]);
    v.set_issuer(&[&s.base]);
    v.set_required_spec_claims(&["iss", "aud", "exp", "iat", "sub"]);
    let claims = jsonwebtoken::decode::<serde_json::Value>(token, &jsonwebtoken::DecodingKey::from_jwk(jwk).unwrap(), &v)
        .expect("the logout token verifies with the JWKS")
        .claims;
    assert_eq!(claims["events"], serde_json::json!({"http://schemas.openid.net/event/backchannel-logout": {}}));
    assert!(claims.get("nonce").is_none(), "a logout token never carries a nonce");
    assert!(claims["jti"].as_str().is_some_and(|j| !j.is_empty()));
    let (iat, exp) = (claims["iat"].as_i64().unwrap(), claims["exp"].as_i64().unwrap());
    assert!(exp > iat && exp - iat <= 300, "short-lived: {claims}");
    claims
}

/// The audit events of `kind`, oldest first.
pub(crate) async fn audited(s: &TestServer, kind: &str) -> Vec<portico_store::AuditEvent> {
    s.running.provider.writer.flush().await;
    s.store()
        .audit_records(0, 100_000)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.event)
        .filter(|e| e.kind == kind)
        .collect()
}

/// Waits until the outbox is empty: a notice leaves it in the same write that audits its outcome,
/// after the receiver has answered.
pub(crate) async fn outbox_drained(s: &TestServer) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !s.store().pending_logouts().await.unwrap().is_empty() {
        assert!(tokio::time::Instant::now() < deadline, "the outbox still holds a notice");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn revoke_ada_crm_acme(s: &TestServer) {
    let ops = admin_token(s, "ops-bot", OPS_SECRET).await;
    let (status, _, body) = api(s, "DELETE", "/api/v1/grants?user=ada@example.test&product=crm&tenant=acme", Some(&ops), None).await;
    assert_eq!(status, 204, "{body}");
}

/// Runs `body(server, port)` on both stores, the server started with `suite(port.number())` (default: this
/// module's [`suite`]), `port` held for a receiver to listen on.
macro_rules! with_receiver_port {
    ($name:ident, $body:expr) => {
        $crate::backchannel::with_receiver_port!($name, $crate::backchannel::suite, $body);
    };
    ($name:ident, $suite:path, $body:expr) => {
        mod $name {
            use super::*;
            async fn run(backend: Backend) {
                let port = Port::reserve();
                let Some(s) = TestServer::start(backend, &$suite(port.number())).await else {
                    return;
                };
                let s = ($body)(s, port).await;
                TestServer::stop(s).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                run(Backend::Sqlite).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                run(Backend::Postgres).await;
            }
        }
    };
}
pub(crate) use with_receiver_port;

with_receiver_port!(
    revoking_a_grant_tells_the_product_with_a_verifiable_logout_token,
    |s: TestServer, port: Port| async move {
        let receiver = Receiver::serve(port.listen(), Answer::Ok).await;
        let crm = tokens(&mut Browser::new(), &s, "crm-web", CRM_SECRET, "ada@example.test", Some("acme")).await;
        let id = flow::decode_payload(crm["id_token"].as_str().unwrap());
        // Billing has no back-channel URI: its session ends with the user's, untold; nothing queued.
        tokens(&mut Browser::new(), &s, "billing-web", crate::tenancy::BILLING_SECRET, "ada@example.test", None).await;

        revoke_ada_crm_acme(&s).await;
        let got = receiver.wait_for(1, Duration::from_secs(20)).await;
        assert_eq!(got.len(), 1, "one notice for the one product session that ended");
        assert_eq!(got[0].0, "/bcl/crm");
        let claims = verify_logout_token(&s, &got[0].1, "crm-web").await;
        assert_eq!(claims["sid"], id["sid"], "names the product session the ID token named");
        assert_eq!(claims["sub"], id["sub"]);

        outbox_drained(&s).await;
        let delivered = audited(&s, "logout.delivered").await;
        assert_eq!(delivered.len(), 1);
        assert_eq!(delivered[0].data["client_id"], "crm-web");
        assert_eq!(delivered[0].data["reason"], "grant_revoked");
        assert_eq!(delivered[0].product.as_deref(), Some("crm"));
        // The revoke itself names the caller and where it came from.
        let revoked = audited(&s, "grant.revoked").await;
        assert_eq!(revoked[0].actor, "client:ops-bot");
        assert_eq!(revoked[0].ip.as_deref(), Some("127.0.0.1"));
        s
    }
);

with_receiver_port!(
    disabling_a_user_tells_every_product_she_was_signed_in_to,
    |s: TestServer, port: Port| async move {
        let receiver = Receiver::serve(port.listen(), Answer::Ok).await;
        let mut b = Browser::new();
        let crm = tokens(&mut b, &s, "crm-web", CRM_SECRET, "ada@example.test", Some("acme")).await;
        let reports = tokens(&mut b, &s, "reports-web", REPORTS_SECRET, "ada@example.test", Some("acme")).await;
        // Bob's session is not hers: it must not be touched.
        tokens(&mut Browser::new(), &s, "crm-web", CRM_SECRET, "bob@example.test", Some("acme")).await;
        let ada = flow::decode_payload(crm["id_token"].as_str().unwrap())["sub"].as_str().unwrap().to_owned();

        let ops = admin_token(&s, "ops-bot", OPS_SECRET).await;
        let (status, _, body) = api(&s, "POST", &format!("/api/v1/users/{ada}/disable"), Some(&ops), None).await;
        assert_eq!(status, 200, "{body}");
        let mut got = receiver.wait_for(2, Duration::from_secs(20)).await;
        got.sort();
        assert_eq!(got.iter().map(|g| g.0.as_str()).collect::<Vec<_>>(), ["/bcl/crm", "/bcl/reports"]);
        for ((_, token), (client, resp)) in got.iter().zip([("crm-web", &crm), ("reports-web", &reports)]) {
            let claims = verify_logout_token(&s, token, client).await;
            assert_eq!(claims["sid"], flow::decode_payload(resp["id_token"].as_str().unwrap())["sid"]);
            assert_eq!(claims["sub"], ada.as_str());
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(receiver.received().len(), 2, "bob's session was not ended");
        s
    }
);

with_receiver_port!(a_product_that_hangs_holds_up_nothing, |s: TestServer, port: Port| async move {
    let receiver = Receiver::serve(port.listen(), Answer::Hang).await;
    let mut b = Browser::new();
    tokens(&mut b, &s, "crm-web", CRM_SECRET, "ada@example.test", Some("acme")).await;
    tokens(&mut b, &s, "reports-web", REPORTS_SECRET, "ada@example.test", Some("acme")).await;
    // The crm notice is in flight and will never be answered; the revoke has already returned,
    // and another product's notice is delivered beside the hanging one.
    revoke_ada_crm_acme(&s).await;
    assert_eq!(receiver.wait_for(1, Duration::from_secs(20)).await.len(), 1);
    let ops = admin_token(&s, "ops-bot", OPS_SECRET).await;
    let (status, _, _) = api(
        &s,
        "DELETE",
        "/api/v1/grants?user=ada@example.test&product=reports&tenant=acme",
        Some(&ops),
        None,
    )
    .await;
    assert_eq!(status, 204, "a second revoke is not queued behind the hanging delivery");
    let got = receiver.wait_for(2, Duration::from_secs(20)).await;
    assert_eq!(got.len(), 2, "the reports notice went out while crm's still hangs");
    s
});

with_receiver_port!(
    a_product_that_is_down_gets_its_notice_when_it_comes_back_even_across_a_restart,
    |s: TestServer, port: Port| async move {
        let crm = tokens(&mut Browser::new(), &s, "crm-web", CRM_SECRET, "ada@example.test", Some("acme")).await;
        let sid = flow::decode_payload(crm["id_token"].as_str().unwrap())["sid"].clone();
        // Nothing listens on the port: the first attempt fails at once and is scheduled again.
        revoke_ada_crm_acme(&s).await;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        while audited(&s, "logout.failed").await.is_empty() {
            assert!(tokio::time::Instant::now() < deadline, "no failed attempt was recorded");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let failed = audited(&s, "logout.failed").await;
        assert_eq!(failed[0].data["attempt"], 1);
        assert!(failed[0].data["error"].as_str().unwrap().contains("connect"), "{:?}", failed[0].data);
        let pending = s.store().pending_logouts().await.unwrap();
        assert_eq!(pending.len(), 1);
        assert_eq!(serde_json::json!(pending[0].sid), sid);

        // Portico restarts; then the product comes back. The notice survives and reaches it.
        let s = s.restart().await;
        let receiver = Receiver::serve(port.listen(), Answer::Ok).await;
        let got = receiver.wait_for(1, Duration::from_secs(90)).await;
        assert_eq!(got.len(), 1, "the notice was delivered after the restart");
        let claims = verify_logout_token(&s, &got[0].1, "crm-web").await;
        assert_eq!(claims["sid"], sid);
        outbox_drained(&s).await;
        assert_eq!(audited(&s, "logout.delivered").await.len(), 1);
        s
    }
);

with_receiver_port!(every_attempt_sends_a_freshly_signed_token, |s: TestServer, port: Port| async move {
    let receiver = Receiver::serve(port.listen(), Answer::FailFirst(2)).await;
    tokens(&mut Browser::new(), &s, "crm-web", CRM_SECRET, "ada@example.test", Some("acme")).await;
    revoke_ada_crm_acme(&s).await;
    // Attempts 1 and 2 get 503; attempt 3 (about 1 + 2 seconds later) is taken.
    let got = receiver.wait_for(3, Duration::from_secs(30)).await;
    assert_eq!(got.len(), 3);
    let mut jtis = Vec::new();
    for (_, token) in &got {
        jtis.push(verify_logout_token(&s, token, "crm-web").await["jti"].clone());
    }
    jtis.dedup();
    assert_eq!(jtis.len(), 3, "each attempt has its own jti");
    let failed = audited(&s, "logout.failed").await;
    assert_eq!(failed.len(), 2);
    assert_eq!(failed[0].data["error"], "HTTP 503");
    outbox_drained(&s).await;
    let delivered = audited(&s, "logout.delivered").await;
    assert_eq!(delivered.len(), 1);
    assert_eq!(delivered[0].data["attempt"], 3);
    s
});

/// A notice to a product that never comes back is given up once the window has passed.
async fn notices_are_given_up_after_the_window(backend: Backend) {
    let port = Port::reserve();
    let Some(s) = TestServer::start_with(backend, &suite(port.number()), |c| c.backchannel_logout_window = "3s".into()).await else {
        return;
    };
    tokens(&mut Browser::new(), &s, "crm-web", CRM_SECRET, "ada@example.test", Some("acme")).await;
    revoke_ada_crm_acme(&s).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while audited(&s, "logout.abandoned").await.is_empty() {
        assert!(tokio::time::Instant::now() < deadline, "the notice was never given up");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(s.store().pending_logouts().await.unwrap().is_empty());
    assert!(!audited(&s, "logout.failed").await.is_empty());
    assert!(audited(&s, "logout.delivered").await.is_empty());
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notices_are_given_up_after_the_window_sqlite() {
    notices_are_given_up_after_the_window(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notices_are_given_up_after_the_window_postgres() {
    notices_are_given_up_after_the_window(Backend::Postgres).await;
}
