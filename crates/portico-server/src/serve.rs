//! Serving HTTP and HTTPS in an accept loop of Portico's own, so that a client cannot hold the
//! server's resources with connections that never finish (slowloris):
//!
//! - at most `max_connections` connections are open at once (the next waits in the kernel's
//!   backlog until one closes), and one client address (an IPv6 /64) holds at most
//!   `max_connections_per_address` of them (more are closed unserved; trusted proxies are exempt);
//! - a TLS handshake must finish within the read timeout, and a connection that starts no request
//!   for that long is closed, on HTTP/2 as on HTTP/1.1 (so a request's headers must arrive within
//!   it: until they do, no request has started);
//! - bodies are bounded in time by a layer of the router.
//!
//! The same hyper connection builder `axum::serve` uses, with those limits set.

use crate::Served;
use crate::http::proxy::TrustedProxies;
use axum::extract::ConnectInfo;
use axum_server::accept::Accept;
use axum_server::tls_rustls::RustlsAcceptor;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use tower::ServiceExt;

/// What clients may hold.
#[derive(Clone, Copy, Debug)]
pub struct ConnectionLimits {
    /// How long a TLS handshake, a request's headers, or the wait for the next request on an open
    /// connection may take.
    pub header_read_timeout: Duration,
    /// Connections open at once.
    pub max_connections: usize,
    /// Connections one client address may hold at once.
    pub max_connections_per_address: usize,
}

/// Serves `router` on `listener` (over TLS with `tls`) until `shutdown` changes, then lets open
/// connections finish for up to `grace`. `exempt`'s addresses have no per-address limit
/// (trusted proxies: every client behind one shares its address).
pub async fn serve(
    listener: TcpListener,
    router: Served,
    limits: ConnectionLimits,
    tls: Option<RustlsAcceptor>,
    exempt: Arc<TrustedProxies>,
    mut shutdown: watch::Receiver<bool>,
    grace: Duration,
) {
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    let per_address = Arc::new(PerAddress::default());
    let builder = Arc::new(http_builder());
    let mut tasks = tokio::task::JoinSet::new();
    let tls = tls.map(Arc::new);
    loop {
        let permit = tokio::select! {
            p = permits.clone().acquire_owned() => p.expect("the semaphore is never closed"),
            _ = shutdown.changed() => break,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(x) => x,
                Err(e) => {
                    // Out of file descriptors, say: wait a little rather than spin.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = shutdown.changed() => break,
        };
        let share = if exempt.trusts(peer.ip()) {
            None
        } else {
            match per_address.take(peer.ip(), limits.max_connections_per_address) {
                Some(share) => Some(share),
                // Over its share: closed unserved (dropping the stream), the permit given back.
                None => continue,
            }
        };
        // Finished connections' results, collected as they come, so the set holds only live ones.
        while tasks.try_join_next().is_some() {}
        let (router, builder, tls, shutdown) = (router.clone(), builder.clone(), tls.clone(), shutdown.clone());
        tasks.spawn(async move {
            let _held = (permit, share);
            match tls {
                Some(tls) => {
                    // A failed or timed-out handshake leaves nothing to serve.
                    if let Ok((stream, ())) = tls.accept(stream, ()).await {
                        connection(TokioIo::new(stream), peer, router, &builder, limits, shutdown, grace).await;
                    }
                }
                None => connection(TokioIo::new(stream), peer, router, &builder, limits, shutdown, grace).await,
            }
        });
    }
    drop(listener);
    finish(tasks, grace).await;
}

/// hyper's connection builder for HTTP/1.1 and HTTP/2.
fn http_builder() -> hyper_util::server::conn::auto::Builder<TokioExecutor> {
    let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    // No per-request header timer (hyper arms one per request whenever it has a timer, 30 s by
    // default): the connection's own watch closes one that starts no request for the read
    // timeout, which a request whose headers never finish never does.
    builder.http1().timer(TokioTimer::new()).header_read_timeout(None);
    // One connection's concurrent HTTP/2 streams count against nothing else: keep them few.
    builder.http2().timer(TokioTimer::new()).max_concurrent_streams(MAX_STREAMS);
    builder
}

/// Each connection finishes what it has within the grace period (a TLS handshake in progress
/// within the read timeout); whatever is left after that is cut off.
async fn finish(mut tasks: tokio::task::JoinSet<()>, grace: Duration) {
    let all_done = async { while tasks.join_next().await.is_some() {} };
    if tokio::time::timeout(grace + Duration::from_secs(1), all_done).await.is_err() {
        tracing::warn!("connections still open after the grace period: closing them");
        tasks.abort_all();
        while tasks.join_next().await.is_some() {}
    }
}

/// Concurrent requests one HTTP/2 connection may carry.
const MAX_STREAMS: u32 = 32;

/// Serves one connection until it ends, it starts no request for the read timeout, or the server
/// stops (then it finishes what it has, for up to `grace`).
async fn connection<I>(
    io: TokioIo<I>,
    peer: SocketAddr,
    router: Served,
    builder: &hyper_util::server::conn::auto::Builder<TokioExecutor>,
    limits: ConnectionLimits,
    mut shutdown: watch::Receiver<bool>,
    grace: Duration,
) where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let activity = Arc::new(Activity::new());
    let seen = activity.clone();
    let service = hyper::service::service_fn(move |mut req: hyper::Request<hyper::body::Incoming>| {
        req.extensions_mut().insert(ConnectInfo(peer));
        let busy = seen.begin();
        let answer = router.clone().oneshot(req.map(axum::body::Body::new));
        async move {
            let answer = answer.await;
            drop(busy);
            answer
        }
    });
    let conn = builder.serve_connection_with_upgrades(io, service);
    tokio::pin!(conn);
    // Stopping, the connection finishes what it has within the grace period; idle, it has
    // nothing to finish (HTTP/2 says GOAWAY and waits for a ping's answer: a second at most).
    let wait = tokio::select! {
        _ = conn.as_mut() => return,
        _ = shutdown.changed() => grace,
        _ = activity.idle_for(limits.header_read_timeout) => Duration::from_secs(1),
    };
    conn.as_mut().graceful_shutdown();
    let _ = tokio::time::timeout(wait, conn).await;
}

/// When a connection last started or finished a request, and how many it is answering.
struct Activity {
    start: Instant,
    last_ms: AtomicU64,
    in_flight: AtomicUsize,
}

impl Activity {
    fn new() -> Self {
        Self {
            start: Instant::now(),
            last_ms: AtomicU64::new(0),
            in_flight: AtomicUsize::new(0),
        }
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn begin(self: &Arc<Self>) -> Busy {
        self.in_flight.fetch_add(1, Ordering::SeqCst);
        self.last_ms.store(self.now_ms(), Ordering::SeqCst);
        Busy(self.clone())
    }

    /// Resolves once no request has started or finished for `idle`, and none is in flight.
    async fn idle_for(&self, idle: Duration) {
        let idle_ms = u64::try_from(idle.as_millis()).unwrap_or(u64::MAX);
        loop {
            let quiet = self.now_ms().saturating_sub(self.last_ms.load(Ordering::SeqCst));
            if quiet >= idle_ms && self.in_flight.load(Ordering::SeqCst) == 0 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(idle_ms.saturating_sub(quiet).max(100))).await;
        }
    }
}

/// A request in flight; its end counts as activity.
struct Busy(Arc<Activity>);

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.last_ms.store(self.0.now_ms(), Ordering::SeqCst);
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Open connections per client address (an IPv6 address counts as its /64).
#[derive(Default)]
struct PerAddress(Mutex<HashMap<String, usize>>);

impl PerAddress {
    /// One more connection for `ip`, unless it holds `limit` already.
    fn take(self: &Arc<Self>, ip: IpAddr, limit: usize) -> Option<Share> {
        let key = portico_protocol::throttle::address_key(&ip.to_string());
        let mut open = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if open.get(&key).is_some_and(|n| *n >= limit) {
            return None;
        }
        *open.entry(key.clone()).or_insert(0) += 1;
        Some(Share(self.clone(), key))
    }
}

/// One connection's place in its address's share; given back when dropped.
struct Share(Arc<PerAddress>, String);

impl Drop for Share {
    fn drop(&mut self) {
        let mut open = self.0.0.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = open.get_mut(&self.1) {
            *n -= 1;
            if *n == 0 {
                open.remove(&self.1);
            }
        }
    }
}
