//! Serving plain HTTP in an accept loop of Portico's own, so that a client cannot hold the server's
//! resources with connections that never finish (slowloris): a request's headers must arrive
//! within the header timeout, at most `max_connections` connections are open at once (the next
//! waits in the kernel's backlog until one closes), and bodies are bounded in time by a layer of
//! the router. The same hyper connection builder `axum::serve` uses, with those limits set.

use axum::Router;
use axum::extract::ConnectInfo;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use tower::Service;

/// What one client may hold.
#[derive(Clone, Copy, Debug)]
pub struct ConnectionLimits {
    /// How long a request's headers may take to arrive (also on a kept-alive connection).
    pub header_read_timeout: Duration,
    /// Connections open at once.
    pub max_connections: usize,
}

/// The hyper builder with the header timeout set, for plain and TLS connections alike.
pub fn http_builder(b: &mut hyper_util::server::conn::auto::Builder<TokioExecutor>, limits: ConnectionLimits) {
    b.http1().timer(TokioTimer::new()).header_read_timeout(limits.header_read_timeout);
    b.http2().timer(TokioTimer::new());
}

/// Serves `router` on `listener` until `shutdown` changes, then lets open connections finish for
/// up to `grace`.
pub async fn serve_plain(listener: TcpListener, router: Router, limits: ConnectionLimits, mut shutdown: watch::Receiver<bool>, grace: Duration) {
    let permits = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    http_builder(&mut builder, limits);
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
        let router = router.clone();
        let service = hyper::service::service_fn(move |mut req: hyper::Request<hyper::body::Incoming>| {
            req.extensions_mut().insert(ConnectInfo(peer));
            router.clone().call(req.map(axum::body::Body::new))
        });
        let conn = builder.serve_connection_with_upgrades(TokioIo::new(stream), service).into_owned();
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            let _ = conn.await;
            drop(permit);
        });
    }
    drop(listener);
    tokio::select! {
        _ = graceful.shutdown() => {}
        _ = tokio::time::sleep(grace) => tracing::warn!("connections still open after the grace period: closing them"),
    }
}
