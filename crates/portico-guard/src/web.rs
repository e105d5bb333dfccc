//! axum integration: the access token of a request — a bearer token (RFC 6750 §2.1) or a
//! DPoP-bound one with its proof (RFC 9449 §7.1), from the `Authorization` header only, never a
//! query parameter: no bearer token in a URL — and [`Principal`] as an extractor.

use crate::{Guard, Principal, Reason, Refusal};
use axum::extract::{FromRef, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{HeaderMap, header};

/// The bearer token of `headers` (RFC 6750 §2.1). No header (or another scheme) is
/// [`Reason::Missing`]; two `Authorization` headers are a bad request; a value that is not a
/// `b64token` is malformed.
pub fn bearer(headers: &HeaderMap) -> Result<&str, Refusal> {
    let mut values = headers.get_all(header::AUTHORIZATION).iter();
    let (Some(value), None) = (values.next(), values.next()) else {
        return Err(if headers.contains_key(header::AUTHORIZATION) {
            Refusal::BadRequest("more than one Authorization header")
        } else {
            Refusal::Unauthorized(Reason::Missing)
        });
    };
    let value = value.to_str().map_err(|_| Refusal::Unauthorized(Reason::Malformed))?;
    let Some((scheme, token)) = value.split_once(' ') else {
        return Err(Refusal::Unauthorized(Reason::Missing));
    };
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(Refusal::Unauthorized(Reason::Missing));
    }
    let token = token.trim_start_matches(' ');
    // b64token = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="
    let body = token.trim_end_matches('=');
    if body.is_empty() || !body.bytes().all(|b| b.is_ascii_alphanumeric() || b"-._~+/".contains(&b)) {
        return Err(Refusal::Unauthorized(Reason::Malformed));
    }
    Ok(token)
}

/// The token of `Authorization: DPoP <token>` (RFC 9449 §7.1), if that is the scheme.
pub fn dpop_token(headers: &HeaderMap) -> Result<Option<&str>, Refusal> {
    let mut values = headers.get_all(header::AUTHORIZATION).iter();
    let (Some(value), None) = (values.next(), values.next()) else {
        return Ok(None);
    };
    let value = value.to_str().map_err(|_| Refusal::Unauthorized(Reason::Malformed))?;
    match value.split_once(' ') {
        Some((scheme, token)) if scheme.eq_ignore_ascii_case("dpop") => Ok(Some(token.trim_start_matches(' '))),
        _ => Ok(None),
    }
}

/// The request's one `DPoP` header (RFC 9449 §4.3: not more than one).
fn one_proof(headers: &HeaderMap) -> Result<&str, Refusal> {
    let mut values = headers.get_all("dpop").iter();
    match (values.next(), values.next()) {
        (Some(v), None) => v.to_str().map_err(|_| Refusal::Unauthorized(Reason::DpopProof)),
        _ => Err(Refusal::Unauthorized(Reason::DpopProof)),
    }
}

/// A principal verified earlier in this request (by a gate), and for which audience.
#[derive(Clone)]
struct Verified {
    audience: String,
    principal: Principal,
}

/// Verifies the request's bearer token once per request and guard: a gate layer and the
/// extractor after it share the result.
pub(crate) async fn authenticate(guard: &Guard, parts: &mut Parts) -> Result<Principal, Refusal> {
    if let Some(v) = parts.extensions.get::<Verified>().filter(|v| v.audience == guard.audience()) {
        return Ok(v.principal.clone());
    }
    let principal = match dpop_token(&parts.headers)? {
        Some(token) => {
            let proof = one_proof(&parts.headers)?;
            // The path the client asked for: under `Router::nest`, `parts.uri` has lost its prefix.
            let path = parts
                .extensions
                .get::<axum::extract::OriginalUri>()
                .map_or_else(|| parts.uri.path().to_owned(), |o| o.0.path().to_owned());
            guard.verify_dpop(token, proof, parts.method.as_str(), &path).await?
        }
        None => guard.verify(bearer(&parts.headers)?).await?,
    };
    parts.extensions.insert(Verified {
        audience: guard.audience().to_owned(),
        principal: principal.clone(),
    });
    Ok(principal)
}

/// The extractor: the state must hold the [`Guard`] (`Guard: FromRef<S>`). A handler taking a
/// `Principal` runs only for a verified token of this product; otherwise the request is answered
/// with the [`Refusal`].
impl<S: Send + Sync> FromRequestParts<S> for Principal
where
    Guard: FromRef<S>,
{
    type Rejection = Refusal;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        authenticate(&Guard::from_ref(state), parts).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(values: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append(header::AUTHORIZATION, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn bearer_reads_only_a_well_formed_header() {
        assert_eq!(bearer(&headers(&["Bearer abc.def-_~+/=="])), Ok("abc.def-_~+/=="));
        assert_eq!(bearer(&headers(&["bearer  abc"])), Ok("abc"));
        assert_eq!(bearer(&headers(&[])), Err(Refusal::Unauthorized(Reason::Missing)));
        assert_eq!(bearer(&headers(&["Basic abc"])), Err(Refusal::Unauthorized(Reason::Missing)));
        assert_eq!(bearer(&headers(&["Bearer"])), Err(Refusal::Unauthorized(Reason::Missing)));
        assert_eq!(bearer(&headers(&["Bearer a b"])), Err(Refusal::Unauthorized(Reason::Malformed)));
        assert_eq!(bearer(&headers(&["Bearer ==="])), Err(Refusal::Unauthorized(Reason::Malformed)));
        assert!(matches!(bearer(&headers(&["Bearer a", "Bearer b"])), Err(Refusal::BadRequest(_))));
    }
}
