//! Pushed authorization requests (RFC 9126): a client sends its authorization request to the
//! server directly, authenticated as at the token endpoint, and sends the browser on with only
//! `client_id` and the `request_uri` it got back. The request never travels through the browser,
//! so nobody on the way can read or change it.
//!
//! [`push`] validates the request exactly as `/oauth2/authorize` would and keeps it for
//! [`PUSHED_REQUEST_TTL`] seconds; [`resolve`] takes it out at the authorization endpoint, once.

use crate::authorize::{self, AuthorizeError};
use crate::client_auth::{ClientCredentials, authenticate_client};
use crate::error::{OAuthError, oauth};
use crate::interaction::pending::{self, Kind, PUSHED_REQUEST_TTL};
use crate::params::Params;
use crate::provider::Provider;
use crate::random;
use portico_store::StoreError;
use serde::{Deserialize, Serialize};

/// RFC 9126 §2.2: the prefix of every `request_uri` Portico issues.
pub const REQUEST_URI_PREFIX: &str = "urn:ietf:params:oauth:request_uri:";

/// Parameters of a pushed request that authenticate the client: checked, never kept.
const CLIENT_AUTHENTICATION: [&str; 3] = ["client_secret", "client_assertion", "client_assertion_type"];

/// RFC 9126 §2.2, answered with `201 Created`.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct PushedResponse {
    pub request_uri: String,
    pub expires_in: i64,
}

/// What is kept under a `request_uri`: whose request it is, and its parameters.
#[derive(Serialize, Deserialize)]
struct Pushed {
    client_id: String,
    params: Vec<(String, String)>,
}

/// `POST /oauth2/par`: authenticates the client, validates the request as the authorization
/// endpoint would, and keeps it.
pub async fn push(
    p: &Provider,
    creds: &ClientCredentials,
    dpop: &crate::dpop::Presented,
    form: &[(String, String)],
    now: i64,
) -> Result<PushedResponse, OAuthError> {
    let client = authenticate_client(p, creds, now).await?.client;
    // RFC 9449 §10.1: a DPoP proof here binds the code to its key, as `dpop_jkt` would; both must
    // then name the same key.
    let proof = crate::dpop::verify(p, dpop, "POST", &format!("{}/oauth2/par", p.issuer), None, now).await?;
    // §2.1: "The request_uri authorization request parameter is one exception, and it MUST NOT
    // be provided."
    if Params(form).count("request_uri") > 0 {
        return Err(oauth!(InvalidRequest, "a pushed request cannot name a request_uri"));
    }
    // The client as authenticated names the request's client_id (§2.1); the credentials are not
    // part of the request, and are not kept.
    // Only parameters the authorization endpoint reads are kept: any other it ignores, and
    // nothing is stored that nothing reads.
    let read = |k: &str| authorize::MAX_PARAM.iter().any(|(n, _)| *n == k) || ["code_challenge_method", "request"].contains(&k);
    let mut params: Vec<(String, String)> = form
        .iter()
        .filter(|(k, _)| k != "client_id" && !CLIENT_AUTHENTICATION.contains(&k.as_str()) && read(k))
        .cloned()
        .collect();
    params.push(("client_id".into(), client.id.as_str().to_owned()));
    if let Some(proof) = proof {
        match Params(&params).get("dpop_jkt") {
            Some(named) if named != proof.jkt => return Err(oauth!(InvalidDpopProof, "dpop_jkt names another key than the DPoP proof's")),
            Some(_) => {}
            None => params.push(("dpop_jkt".into(), proof.jkt)),
        }
    }
    // §2.1: "The authorization server MUST validate the request in the same way as at the
    // authorization endpoint."
    authorize::validate(p, &params, true, now).map_err(|e| match e {
        AuthorizeError::Page(why) => OAuthError::new(crate::ErrorCode::InvalidRequest, why),
        AuthorizeError::Redirect(_, e) => e,
    })?;
    let handle = random::token();
    let pushed = Pushed {
        client_id: client.id.as_str().to_owned(),
        params,
    };
    pending::put(&p.store, &p.settings, Kind::Pushed, &handle, &pushed, now).await?;
    Ok(PushedResponse {
        request_uri: format!("{REQUEST_URI_PREFIX}{handle}"),
        expires_in: PUSHED_REQUEST_TTL,
    })
}

/// The parameters an authorization request stands for, and whether they were pushed: the
/// request's own, or — when it names a `request_uri` — the pushed request's, taken out once.
/// RFC 9126 §4: the client sends `client_id` with it, and it must be the client that pushed.
/// Any other parameter sent beside `request_uri` is ignored: only what was pushed counts.
/// The outer error is the store's.
pub async fn resolve(p: &Provider, params: &[(String, String)], now: i64) -> Result<Result<(Vec<(String, String)>, bool), AuthorizeError>, StoreError> {
    let q = Params(params);
    if q.count("request_uri") == 0 {
        return Ok(Ok((params.to_vec(), false)));
    }
    take(p, q, now).await
}

async fn take(p: &Provider, q: Params<'_>, now: i64) -> Result<Result<(Vec<(String, String)>, bool), AuthorizeError>, StoreError> {
    let page = |why: &'static str| Ok(Err(AuthorizeError::Page(why)));
    if q.count("request_uri") > 1 || q.count("client_id") > 1 {
        return page("The request names its client or request URI more than once.");
    }
    let handle = q
        .get("request_uri")
        .and_then(|u| u.strip_prefix(REQUEST_URI_PREFIX).map(str::to_owned))
        .filter(|h| !h.is_empty() && h.len() <= 128);
    let Some(handle) = handle else {
        return page("The request names a request_uri this server did not issue.");
    };
    let Some(client_id) = q.get("client_id") else {
        return page("The request has no client_id.");
    };
    match pending::take::<Pushed>(&p.store, Kind::Pushed, &handle, now).await? {
        // Taken even when the client differs: a request_uri shown to the wrong client is spent.
        Some(pushed) if pushed.client_id == client_id => Ok(Ok((pushed.params, true))),
        Some(_) => page("The request_uri was issued to another application."),
        None => page("This sign-in request has expired or was used already. Go back to the application and start again."),
    }
}
