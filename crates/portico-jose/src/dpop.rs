//! DPoP proofs (RFC 9449 §4): a JWT a client signs, per request, with a key it holds, carrying
//! that key's public half in its header. [`verify`] checks one the way §4.3 lists: one JWS
//! (`typ: dpop+jwt`, an asymmetric `alg`, a public `jwk` whose type admits it), signed by that
//! key, with `jti`, `htm` and `htu` matching the request, a recent `iat`, and — where an access
//! token is presented — `ath`. Remembering `jti`s against replay, and nonces, are the caller's:
//! the issuer keeps them in its store, the guard in memory.

use crate::jwks::{SUPPORTED, public_key};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::Validation;
use serde::Deserialize;
use serde_json::Value;

/// RFC 9449 §4.2: the proof's JWT type.
pub const TYP: &str = "dpop+jwt";
/// The longest proof read (bytes).
pub const MAX_PROOF: usize = 8 * 1024;
/// How old a proof's `iat` may be (§4.3: "within an acceptable window"), and how far ahead for
/// clock skew. A `jti` must be remembered this long.
pub const MAX_AGE: i64 = 300;
pub const SKEW: i64 = 60;
const MAX_JTI: usize = 256;

/// What the proof must match: the request it came with.
pub struct Expected<'a> {
    /// The request's method (`POST`).
    pub htm: &'a str,
    /// The request's URL; its query and fragment are ignored (§4.3, item 9).
    pub htu: &'a str,
    /// The access token presented with it, whose hash `ath` must be (§4.3, item 11).
    pub access_token: Option<&'a str>,
    pub now: i64,
}

/// A verified proof.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Proof {
    /// The JWK SHA-256 thumbprint of its key (RFC 7638): what a bound token's `cnf.jkt` names.
    pub jkt: String,
    pub jti: String,
    pub iat: i64,
    pub nonce: Option<String>,
}

#[derive(Deserialize)]
struct Claims {
    jti: String,
    htm: String,
    htu: String,
    iat: i64,
    #[serde(default)]
    ath: Option<String>,
    #[serde(default)]
    nonce: Option<String>,
}

/// Verifies `proof` against the request; the error says why, for logs.
pub fn verify(proof: &str, e: &Expected<'_>) -> Result<Proof, String> {
    if proof.len() > MAX_PROOF {
        return Err("the proof is too long".into());
    }
    let header = header(proof).ok_or("the proof is not a JWS")?;
    if header.get("typ").and_then(Value::as_str) != Some(TYP) {
        return Err("the proof's typ is not dpop+jwt".into());
    }
    let alg = header
        .get("alg")
        .and_then(Value::as_str)
        .and_then(crate::jwks::supported)
        .ok_or("the proof's alg is not an asymmetric one")?;
    let jwk = header.get("jwk").ok_or("the proof carries no jwk")?;
    let key = public_key(jwk, &SUPPORTED)
        .filter(|k| k.algs.contains(&alg))
        .ok_or("the proof's jwk is not a public key for its alg")?;
    let jkt = thumbprint(jwk).ok_or("the proof's jwk has no thumbprint")?;
    let mut v = Validation::new(alg);
    v.required_spec_claims.clear();
    v.validate_exp = false;
    v.validate_aud = false;
    let claims = jsonwebtoken::decode::<Claims>(proof, &key.decoding, &v)
        .map_err(|err| format!("the proof does not verify: {err}"))?
        .claims;
    if claims.jti.is_empty() || claims.jti.len() > MAX_JTI {
        return Err("the proof's jti is missing or too long".into());
    }
    if claims.htm != e.htm {
        return Err(format!("the proof is for {:?}, not {}", claims.htm.chars().take(16).collect::<String>(), e.htm));
    }
    if !same_uri(&claims.htu, e.htu) {
        return Err("the proof's htu is not this request's URL".into());
    }
    if claims.iat < e.now - MAX_AGE || claims.iat > e.now + SKEW {
        return Err("the proof's iat is outside the accepted window".into());
    }
    match (e.access_token, &claims.ath) {
        (Some(token), Some(ath)) if *ath == access_token_hash(token) => {}
        (Some(_), _) => return Err("the proof's ath is not the presented access token's hash".into()),
        (None, _) => {}
    }
    Ok(Proof {
        jkt,
        jti: claims.jti,
        iat: claims.iat,
        nonce: claims.nonce,
    })
}

fn header(jwt: &str) -> Option<serde_json::Map<String, Value>> {
    let first = jwt.split('.').next()?;
    let bytes = URL_SAFE_NO_PAD.decode(first).ok()?;
    serde_json::from_slice::<Value>(&bytes).ok()?.as_object().cloned()
}

/// RFC 9449 §4.3, item 9: the URIs compare without query and fragment, after syntax-based
/// normalization (scheme and host case, default port).
fn same_uri(claimed: &str, actual: &str) -> bool {
    let strip = |u: &str| {
        url::Url::parse(u).ok().map(|mut u| {
            u.set_query(None);
            u.set_fragment(None);
            u.to_string()
        })
    };
    matches!((strip(claimed), strip(actual)), (Some(a), Some(b)) if a == b)
}

/// `ath` (§4.2): base64url of the SHA-256 of the access token's ASCII.
pub fn access_token_hash(token: &str) -> String {
    URL_SAFE_NO_PAD.encode(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, token.as_bytes()))
}

/// The JWK SHA-256 thumbprint (RFC 7638 §3): the key's required members only, in lexicographic
/// order, without whitespace. `None` for a key type this does not know.
pub fn thumbprint(jwk: &Value) -> Option<String> {
    let s = |name: &str| jwk.get(name).and_then(Value::as_str);
    let members: Vec<(&str, &str)> = match s("kty")? {
        "EC" => vec![("crv", s("crv")?), ("kty", "EC"), ("x", s("x")?), ("y", s("y")?)],
        "OKP" => vec![("crv", s("crv")?), ("kty", "OKP"), ("x", s("x")?)],
        "RSA" => vec![("e", s("e")?), ("kty", "RSA"), ("n", s("n")?)],
        _ => return None,
    };
    let body: Vec<String> = members.iter().map(|(k, v)| format!("{}:{}", Value::from(*k), Value::from(*v))).collect();
    let canonical = format!("{{{}}}", body.join(","));
    Some(URL_SAFE_NO_PAD.encode(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, canonical.as_bytes())))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_thumbprint_is_rfc_7638s() {
        // RFC 7638 §3.1's example key and thumbprint.
        let jwk = json!({
            "kty": "RSA",
            "n": "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw",
            "e": "AQAB",
            "alg": "RS256",
            "kid": "2011-04-29"
        });
        assert_eq!(thumbprint(&jwk).as_deref(), Some("NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"));
        assert_eq!(thumbprint(&json!({"kty": "oct", "k": "c2VjcmV0"})), None);
    }

    #[test]
    fn urls_match_without_query_or_fragment_and_nothing_else_moves() {
        let t = "https://id.example.test/oauth2/token";
        for same in [t, "https://id.example.test/oauth2/token?x=1", "HTTPS://ID.example.test:443/oauth2/token#f"] {
            assert!(same_uri(same, t), "{same}");
        }
        for other in [
            "https://id.example.test/oauth2/token/",
            "http://id.example.test/oauth2/token",
            "https://id.example.test:8443/oauth2/token",
            "https://evil.test/oauth2/token",
            "not a url",
        ] {
            assert!(!same_uri(other, t), "{other}");
        }
    }
}
