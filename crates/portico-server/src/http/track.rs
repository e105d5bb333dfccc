//! Request counts and latencies by route (the matched route, never the raw path), method and
//! status, as a tower layer.
//!
//! Two costs of the obvious version (`axum::middleware::from_fn` and the `metrics` macros with
//! labels) showed up in every request's profile: `from_fn` clones and boxes the route's service
//! per request, and each macro call builds its key (a label vector, the route and the status as
//! new strings) and looks it up in the recorder's registry. Here the layer calls the inner service
//! directly and wraps its future, and each worker thread keeps the handles it has used, so a
//! request after the first of its kind builds no key and looks up no shared map (the histogram
//! still appends its sample to the recorder's buckets). Handles of one key are the same counter
//! whichever thread holds them, so the figures are those of the macros.
//!
//! Two things this relies on: the recorder is installed before the first request (`start` installs
//! it first; a thread that counted before it would keep no-op handles), and the exporter keeps
//! every key it has seen (no idle timeout, which would orphan the held handles).

use axum::extract::{MatchedPath, Request};
use axum::http::Method;
use axum::response::Response;
use metrics::{Counter, Histogram};
use std::cell::RefCell;
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

/// What requests that matched no route are counted under.
const UNMATCHED: &str = "unmatched";

#[derive(Clone, Copy, Default)]
pub struct TrackLayer;

impl<S> tower::Layer<S> for TrackLayer {
    type Service = Track<S>;
    fn layer(&self, inner: S) -> Track<S> {
        Track { inner }
    }
}

#[derive(Clone)]
pub struct Track<S> {
    inner: S,
}

impl<S> tower::Service<Request> for Track<S>
where
    S: tower::Service<Request, Response = Response>,
{
    type Response = Response;
    type Error = S::Error;
    type Future = Tracked<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request) -> Self::Future {
        let start = Instant::now();
        let route = req.extensions().get::<MatchedPath>().cloned();
        let method = method_label(req.method());
        Tracked {
            inner: self.inner.call(req),
            start,
            route,
            method,
        }
    }
}

pin_project_lite::pin_project! {
    /// The inner service's future; when it answers, the answer is counted and timed.
    pub struct Tracked<F> {
        #[pin]
        inner: F,
        start: Instant,
        route: Option<MatchedPath>,
        method: &'static str,
    }
}

impl<F, E> Future for Tracked<F>
where
    F: Future<Output = Result<Response, E>>,
{
    type Output = Result<Response, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let out = std::task::ready!(this.inner.poll(cx));
        if let Ok(resp) = &out {
            let route = this.route.as_ref().map_or(UNMATCHED, |m| m.as_str());
            record(route, this.method, resp.status().as_u16(), this.start.elapsed().as_secs_f64());
        }
        Poll::Ready(out)
    }
}

/// A request method as a metrics label: the standard ones by name, anything else `OTHER`, so a
/// client cannot mint label values (and memory) by sending made-up methods.
fn method_label(m: &Method) -> &'static str {
    match *m {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        Method::PATCH => "PATCH",
        Method::CONNECT => "CONNECT",
        Method::TRACE => "TRACE",
        _ => "OTHER",
    }
}

/// One route's handles on this thread: its latency histogram and a counter per (method, status)
/// seen. Bounded: routes are the router's own, methods the ten labels above, statuses below 1000.
struct RouteHandles {
    duration: Histogram,
    counts: Vec<(&'static str, u16, Counter)>,
}

thread_local! {
    static HANDLES: RefCell<HashMap<Box<str>, RouteHandles>> = RefCell::new(HashMap::new());
}

fn record(route: &str, method: &'static str, status: u16, seconds: f64) {
    HANDLES.with(|cell| {
        let mut handles = cell.borrow_mut();
        let h = match handles.get_mut(route) {
            Some(h) => h,
            None => {
                let duration = metrics::histogram!("portico_http_request_duration_seconds", "route" => route.to_owned());
                handles.entry(route.into()).or_insert(RouteHandles { duration, counts: Vec::new() })
            }
        };
        h.duration.record(seconds);
        match h.counts.iter().find(|(m, s, _)| *m == method && *s == status) {
            Some((_, _, counter)) => counter.increment(1),
            None => {
                let counter = metrics::counter!("portico_http_requests_total",
                    "route" => route.to_owned(), "method" => method, "status" => status.to_string());
                counter.increment(1);
                h.counts.push((method, status, counter));
            }
        }
    });
}
