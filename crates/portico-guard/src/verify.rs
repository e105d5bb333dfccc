//! The checks a token passes, in an order that keeps the cheap and network-free ones first:
//! size, shape, header `typ` and `alg`, then the claims (`iss` exact, `aud` exactly this product,
//! times within the leeway) — all before any key is looked up — then the key by `kid`, the
//! algorithm the key admits, and the signature (jsonwebtoken on aws-lc-rs). A token that fails a
//! check before the key lookup can never make the guard fetch keys.

use crate::Guard;
use crate::cache::Lookup;
use crate::refusal::Reason;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, Header};
use serde::de::DeserializeOwned;

/// The longest token the guard reads (8 KiB); anything longer is refused unread.
pub const MAX_TOKEN_BYTES: usize = 8 * 1024;

/// A token taken apart, not yet trusted.
pub(crate) struct Parts<'t, T> {
    pub header: Header,
    pub claims: T,
    signed: &'t str,
    signature: &'t str,
}

/// RFC 7515 §4.1.9: `typ` compares case-insensitively and may omit `application/`.
fn typ_is(header: &Header, expected: &str) -> bool {
    header.typ.as_deref().is_some_and(|t| {
        let media = match t.get(..12) {
            Some(prefix) if prefix.eq_ignore_ascii_case("application/") => &t[12..],
            _ => t,
        };
        media.eq_ignore_ascii_case(expected)
    })
}

/// Takes a compact JWS apart and reads its header and claims, checking `typ` and `alg`.
pub(crate) fn parse<'t, T: DeserializeOwned>(token: &'t str, typ: &str, allowed: &[Algorithm]) -> Result<Parts<'t, T>, Reason> {
    if token.len() > MAX_TOKEN_BYTES {
        return Err(Reason::Oversized);
    }
    let mut segments = token.split('.');
    let (Some(head), Some(body), Some(signature), None) = (segments.next(), segments.next(), segments.next(), segments.next()) else {
        return Err(Reason::Malformed);
    };
    if head.is_empty() || body.is_empty() || signature.is_empty() {
        return Err(Reason::Malformed);
    }
    let header = jsonwebtoken::decode_header(token).map_err(|_| Reason::Malformed)?;
    if !typ_is(&header, typ) {
        return Err(Reason::Type);
    }
    // RFC 7515 §4.1.11: extensions the guard does not understand must not be ignored.
    if header.crit.is_some() || !allowed.contains(&header.alg) {
        return Err(Reason::Algorithm);
    }
    let bytes = URL_SAFE_NO_PAD.decode(body).map_err(|_| Reason::Malformed)?;
    // One parse into the claims type on the way that succeeds; only a refusal reads the payload
    // again, to say why.
    let claims = serde_json::from_slice(&bytes).map_err(|_| why_not(&bytes))?;
    Ok(Parts {
        header,
        claims,
        signed: &token[..head.len() + 1 + body.len()],
        signature,
    })
}

/// Why a payload did not deserialize: not a JSON object; an `aud` that is not one string or an
/// array of exactly one string (the audience's fault); or another claim.
fn why_not(payload: &[u8]) -> Reason {
    match serde_json::from_slice::<serde_json::Value>(payload) {
        Ok(serde_json::Value::Object(claims)) => match claims.get("aud") {
            Some(serde_json::Value::String(_)) => Reason::Claims,
            Some(serde_json::Value::Array(a)) if a.len() == 1 && a[0].is_string() => Reason::Claims,
            _ => Reason::Audience,
        },
        _ => Reason::Malformed,
    }
}

/// `iat`/`nbf` not in the future and `exp` not past, each with `leeway` seconds of skew.
pub(crate) fn times(now: i64, leeway: i64, iat: i64, nbf: Option<i64>, exp: i64) -> Result<(), Reason> {
    // RFC 7519 §4.1.4: "the current date/time MUST be before the expiration date/time".
    if now >= exp.saturating_add(leeway) {
        return Err(Reason::Expired);
    }
    // §4.1.5: "MUST NOT be accepted for processing" before `nbf`.
    if nbf.is_some_and(|nbf| nbf > now.saturating_add(leeway)) || iat > now.saturating_add(leeway) {
        return Err(Reason::NotYetValid);
    }
    Ok(())
}

impl Guard {
    /// Looks the key up by `kid` and verifies the signature with the token's (allowed) algorithm.
    pub(crate) async fn signature<T>(&self, parts: &Parts<'_, T>) -> Result<(), Reason> {
        let kid = parts.header.kid.as_deref().ok_or(Reason::UnknownKey)?;
        let key = match self.inner.cache.lookup(kid).await {
            Lookup::Found(key) => key,
            Lookup::Unknown => return Err(Reason::UnknownKey),
            Lookup::Expired => return Err(Reason::StaleKeys),
        };
        if !key.algs.contains(&parts.header.alg) {
            return Err(Reason::Algorithm);
        }
        match jsonwebtoken::crypto::verify(parts.signature, parts.signed.as_bytes(), &key.decoding, parts.header.alg) {
            Ok(true) => Ok(()),
            _ => Err(Reason::Signature),
        }
    }
}
