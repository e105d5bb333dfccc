//! DPoP at Portico's own endpoints (RFC 9449): a proof presented at the token endpoint binds the
//! tokens it gets to the proof's key (§5); at userinfo a bound token is good only with a proof
//! of that key (§7). Proofs are checked by `portico-jose` (the guard checks them by the same
//! rules); here each `jti` is remembered in the store until the proof could no longer be
//! accepted (§11.1), and, when the deployment asks for them, nonces are given and required (§8).
//!
//! A nonce is an HMAC of the current five-minute window under a key every node derives from the
//! KEK: good for that window and the one before, at every node, with nothing stored.

use crate::error::{ErrorCode, OAuthError};
use crate::interaction::pending::{self, Kind};
use crate::provider::Provider;
use portico_jose::dpop::{self, Expected, Proof};

/// Seconds a nonce window lasts; a nonce is accepted in its window and the next.
pub const NONCE_WINDOW: i64 = 300;

/// What a request brought for DPoP: its `DPoP` header(s).
#[derive(Clone, Debug, Default)]
pub struct Presented {
    /// The `DPoP` header's value.
    pub proof: Option<String>,
    /// More than one `DPoP` header came (§4.3, item 1: refused).
    pub several: bool,
}

fn invalid(detail: impl Into<String>) -> OAuthError {
    OAuthError::new(ErrorCode::InvalidDpopProof, "the DPoP proof is invalid").detail(detail)
}

/// The nonce for `now`'s window.
pub fn nonce(p: &Provider, now: i64) -> String {
    nonce_for(p, now.div_euclid(NONCE_WINDOW))
}

fn nonce_for(p: &Provider, window: i64) -> String {
    let tag = p.kek.dpop_nonce_tag(format!("dpop-nonce:{window}").as_bytes());
    crate::random::b64url(&tag.as_ref()[..16])
}

/// The request's proof, verified against the request (`htm`, `htu`, the access token it came
/// with), its nonce checked when nonces are required, and its `jti` recorded: `None` when there is
/// no proof. A replayed proof is refused.
pub async fn verify(p: &Provider, presented: &Presented, htm: &str, htu: &str, access_token: Option<&str>, now: i64) -> Result<Option<Proof>, OAuthError> {
    verify_for_key(p, presented, htm, htu, access_token, None, now).await
}

/// As [`verify`]; with `key`, a proof of another key is refused before anything is recorded.
async fn verify_for_key(
    p: &Provider,
    presented: &Presented,
    htm: &str,
    htu: &str,
    access_token: Option<&str>,
    key: Option<&str>,
    now: i64,
) -> Result<Option<Proof>, OAuthError> {
    if presented.several {
        return Err(invalid("more than one DPoP header"));
    }
    let Some(proof) = presented.proof.as_deref() else {
        return Ok(None);
    };
    let proof = dpop::verify(proof, &Expected { htm, htu, access_token, now }).map_err(invalid)?;
    if key.is_some_and(|k| k != proof.jkt) {
        return Err(invalid("a proof of another key than the token's"));
    }
    if p.settings.dpop_nonces {
        let window = now.div_euclid(NONCE_WINDOW);
        let good = proof
            .nonce
            .as_deref()
            .is_some_and(|n| n == nonce_for(p, window) || n == nonce_for(p, window - 1));
        if !good {
            return Err(OAuthError {
                dpop_nonce: Some(nonce(p, now)),
                ..OAuthError::new(ErrorCode::UseDpopNonce, "the DPoP proof must carry the server's nonce")
            });
        }
    }
    // §11.1: a proof is good once. It is remembered as long as its iat is accepted.
    let handle = format!("{}\u{0}{}", proof.jkt, proof.jti);
    let until = proof.iat + dpop::MAX_AGE + dpop::SKEW;
    if !pending::put_once(&p.store, Kind::DpopJti, &handle, &(), until, now, &p.settings).await? {
        return Err(invalid("a DPoP proof presented again (jti replayed)"));
    }
    Ok(Some(proof))
}

/// How a protected resource of Portico's (userinfo, the admin API) received an access token.
#[derive(Clone, Debug, Default)]
pub struct AtResource {
    /// `Authorization: DPoP …` rather than `Bearer`.
    pub dpop_scheme: bool,
    /// The `DPoP` proof header.
    pub proof: Presented,
    /// The request's method, which the proof must name.
    pub method: String,
    /// The request's URL (Portico's issuer and the path), which the proof must name.
    pub htu: String,
}

/// RFC 9449 §7 at a protected resource: a bound token (`cnf`) only with the `DPoP` scheme and a
/// proof of its key for this request (with `ath` the token's hash); an unbound one only as
/// `Bearer`. Every refusal challenges with the DPoP scheme.
pub async fn bound_request(p: &Provider, at: &AtResource, token: &str, cnf: Option<&portico_claims::Confirmation>, now: i64) -> Result<(), OAuthError> {
    let refused = |why: &str| OAuthError {
        dpop_challenge: true,
        ..OAuthError::new(
            ErrorCode::InvalidToken,
            "the access token is DPoP-bound: present it with the DPoP scheme and a proof of its key",
        )
        .detail(why.to_owned())
    };
    let challenged = |e: OAuthError| OAuthError { dpop_challenge: true, ..e };
    match (cnf, at.dpop_scheme) {
        (None, false) => Ok(()),
        (None, true) => Err(challenged(
            OAuthError::new(ErrorCode::InvalidToken, "the access token is not DPoP-bound").detail("an unbound token with the DPoP scheme"),
        )),
        (Some(_), false) => Err(refused("a bound token as a bearer token")),
        (Some(cnf), true) => {
            let proof = verify_for_key(p, &at.proof, &at.method, &at.htu, Some(token), Some(&cnf.jkt), now).await;
            match proof {
                Ok(Some(_)) => Ok(()),
                Ok(None) => Err(refused("no DPoP proof")),
                // A store failure stays a server error, never a challenge to drop the token.
                Err(e) if e.code == ErrorCode::ServerError => Err(e),
                Err(e) => Err(challenged(e)),
            }
        }
    }
}
