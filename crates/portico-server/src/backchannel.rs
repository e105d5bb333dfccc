//! The back-channel logout delivery worker: takes due notices from the store's outbox (on any
//! node; a claim is a lease, so a crash or restart only delays a notice) and POSTs each client a
//! freshly signed logout token, many at a time, so a product that hangs delays only its own.
//! Logout itself never waits for this: it commits the notices and wakes the worker.

use portico_protocol::Provider;
use portico_protocol::backchannel::{self, Delivery};
use portico_store::LogoutNotice;
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinSet;

/// Deliveries in flight at once.
const IN_FLIGHT: usize = 32;
/// How long a product may take to answer.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// A claimed notice is due again after this many seconds if its attempt never reports.
const LEASE: i64 = 30;
/// How often the outbox is read when nothing wakes the worker (notices queued by the CLI or
/// another node, retries coming due).
const POLL: Duration = Duration::from_secs(1);

/// The HTTP client for logout tokens: no redirects followed (a notice goes to the registered URI
/// or nowhere), bounded in time, TLS on the system's roots.
fn client() -> anyhow::Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(REQUEST_TIMEOUT)
        .connect_timeout(Duration::from_secs(5))
        .user_agent(concat!("Portico/", env!("CARGO_PKG_VERSION"), " (back-channel logout)"))
        .build()?)
}

/// Runs the worker until `stop` changes. Deliveries still in flight are dropped; their leases
/// expire and they are tried again. The HTTP client is built at the first notice, not at
/// start-up: loading the system's roots would cost every start, also of nodes that never send one.
pub fn spawn(provider: Arc<Provider>, mut stop: tokio::sync::watch::Receiver<bool>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut http: Option<reqwest::Client> = None;
        let mut in_flight = JoinSet::new();
        loop {
            let room = IN_FLIGHT - in_flight.len();
            if room > 0 {
                let now = provider.clock.now();
                match provider.store.claim_logouts(now, now + LEASE, room as i64).await {
                    Ok(notices) if !notices.is_empty() => {
                        if http.is_none() {
                            // Should it fail, the claimed notices' leases expire and they are tried again.
                            http = client().map_err(|e| tracing::error!(error = %e, "back-channel HTTP client")).ok();
                        }
                        if let Some(http) = &http {
                            for n in notices {
                                in_flight.spawn(deliver(provider.clone(), http.clone(), n));
                            }
                        }
                    }
                    Ok(_) => {}
                    Err(e) => tracing::warn!(error = %e, "back-channel logout outbox unavailable"),
                }
            }
            tokio::select! {
                _ = tokio::time::sleep(POLL) => {}
                _ = provider.store.logout_due().notified() => {}
                Some(_) = in_flight.join_next(), if !in_flight.is_empty() => {}
                _ = stop.changed() => break,
            }
        }
    })
}

/// One attempt for one notice, and its outcome recorded.
async fn deliver(p: Arc<Provider>, http: reqwest::Client, n: LogoutNotice) {
    let result = async {
        let Delivery::Send { uri, logout_token } = backchannel::prepare(&p, &n, p.clock.now()).await? else {
            return Ok(());
        };
        // §2.5: an application/x-www-form-urlencoded POST with the one parameter logout_token.
        let outcome = match http.post(&uri).form(&[("logout_token", logout_token.as_str())]).send().await {
            Ok(resp) => Ok(resp.status().as_u16()),
            // The error names the URI and the failure, never the token (which is in the body).
            Err(e) => Err(without_url(e)),
        };
        backchannel::record(&p, &n, outcome, p.clock.now()).await
    };
    if let Err(e) = result.await {
        tracing::warn!(error = %e, sid = %n.sid, client_id = %n.client_id, "back-channel logout attempt not recorded; it will be retried");
    }
}

/// What went wrong, without the URL reqwest's errors print (a registered URI may carry a
/// credential in its query; the audit event names the client instead).
fn without_url(e: reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "could not connect"
    } else {
        "request failed"
    };
    let mut cause = String::new();
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        cause = s.to_string();
        source = s.source();
    }
    if cause.is_empty() { kind.to_owned() } else { format!("{kind}: {cause}") }
}
