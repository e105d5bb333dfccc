//! The pending authorization request: stored under the hash of its id (which the browser carries
//! in `?req=` and forms), bound to the browser that started it.

use super::pending::{self, Kind};
use crate::authorize::AuthRequest;
use crate::provider::Settings;
use portico_store::{Store, StoreError};
use subtle::ConstantTimeEq;

/// A stored authorization request as a page or form finds it.
#[derive(Debug)]
pub enum Loaded {
    /// Started in this browser.
    Found(AuthRequest),
    /// Started in another browser: it does not go on here.
    OtherBrowser(AuthRequest),
    Gone,
}

/// The stored request `id`, and whether the browser bound by `bound` (its binding's hash) started it.
pub async fn load(store: &Store, bound: Option<&str>, id: &str, now: i64) -> Result<Loaded, StoreError> {
    let Some(req) = peek(store, id, now).await? else { return Ok(Loaded::Gone) };
    let ours = bound.is_some_and(|h| !req.browser.is_empty() && bool::from(h.as_bytes().ct_eq(req.browser.as_bytes())));
    Ok(if ours { Loaded::Found(req) } else { Loaded::OtherBrowser(req) })
}

/// The stored request `id`, whoever started it: only to tell whether it still waits. It keeps
/// the record it was read from ([`AuthRequest::stored`]).
pub async fn peek(store: &Store, id: &str, now: i64) -> Result<Option<AuthRequest>, StoreError> {
    let found = pending::get_with_record::<AuthRequest>(store, Kind::Authorize, id, now).await?;
    Ok(found.map(|(mut req, record)| {
        req.stored = Some(record);
        req
    }))
}

/// Whether the request `id` still waits (a sign-up confirmed in a mailed link goes back into it);
/// a store failure reads as no.
pub async fn still_waiting(p: &crate::provider::Provider, id: &str, now: i64) -> bool {
    matches!(peek(&p.store, id, now).await, Ok(Some(_)))
}

/// Stores (or updates) the request until its lifetime after it was made.
pub(super) async fn save(store: &Store, settings: &Settings, req: &AuthRequest) -> Result<(), StoreError> {
    pending::put(store, settings, Kind::Authorize, &req.id, req, req.created_at).await
}

/// Takes the request out as it was read, once: of two answers sent at once only one goes on, and
/// an answer decided on a copy that another step has since moved on takes nothing.
pub(super) async fn take(store: &Store, req: &AuthRequest, now: i64) -> Result<bool, StoreError> {
    match &req.stored {
        Some(record) => pending::take_if_unchanged(store, Kind::Authorize, &req.id, record, now).await,
        // Never read from the store: nothing to take.
        None => Ok(false),
    }
}

/// Removes the request: it has been answered.
pub(super) async fn finish(store: &Store, id: &str) -> Result<(), StoreError> {
    pending::forget(store, Kind::Authorize, id).await
}
