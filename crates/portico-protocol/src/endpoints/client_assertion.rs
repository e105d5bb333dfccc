//! `private_key_jwt` (RFC 7523 §2.2 and §3, OpenID Connect Core §9): a client authenticates with a
//! JWT it signed with one of its own registered keys. Portico keeps no secret of the client's.
//!
//! An assertion is good when it is signed by a key of the client's set with an algorithm that
//! key's type admits (never `none` or `HS*`); `iss` and `sub` are both the client id (§3, items 1
//! and 2); `aud` names Portico alone — its issuer or its token endpoint (item 3); `exp` has not passed
//! and is at most [`MAX_LIFETIME`] away (item 4: "The authorization server MUST reject any JWT with
//! an expiration time that has passed"); `nbf` and `iat` are not in the future; and its `jti` has
//! not been seen from that client before (item 7: the server "MAY ensure that JWTs are not
//! replayed by maintaining the set of used jti values"), remembered until the assertion expires.

use crate::error::{OAuthError, oauth};
use crate::interaction::pending;
use crate::provider::Provider;
use crate::snapshot::ClientEntry;
use jsonwebtoken::{Algorithm, Validation};
use portico_jose::jwks::SUPPORTED;
use portico_model::{AuthMethod, ClientKeys};
use serde::Deserialize;

/// RFC 7523 §2.2: the one `client_assertion_type`.
pub const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
/// The furthest in the future an assertion's `exp` may be: it is made for one request.
pub const MAX_LIFETIME: i64 = 300;
/// Clock skew allowed between the client and Portico.
pub const LEEWAY: i64 = 30;
/// The longest assertion read (bytes), and the longest `jti` remembered.
pub const MAX_ASSERTION: usize = 8 * 1024;
const MAX_JTI: usize = 256;

/// What is read of an assertion once it verified; `iss` and `sub` are checked by the validation.
#[derive(Deserialize)]
struct Claims {
    aud: serde_json::Value,
    exp: i64,
    #[serde(default)]
    nbf: Option<i64>,
    #[serde(default)]
    iat: Option<i64>,
    #[serde(default)]
    jti: Option<String>,
}

/// Only the client id an assertion claims, read before anything is verified: it says whose keys
/// to verify it with, and nothing else is believed until they have.
#[derive(Deserialize)]
struct Claimed {
    sub: Option<String>,
}

fn refused(detail: impl Into<String>) -> OAuthError {
    oauth!(InvalidClient, "client authentication failed").detail(detail.into())
}

/// The client id an assertion names as its `sub`, unverified: for finding the client, and for
/// naming it in the audit of a refusal.
pub fn claimed_client(assertion: &str) -> Option<String> {
    use base64::Engine;
    let payload = assertion.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload).ok()?;
    serde_json::from_slice::<Claimed>(&bytes).ok()?.sub
}

/// Authenticates the client an assertion names; `body_id` is the request's `client_id`, if any,
/// which must be the same client.
pub async fn authenticate(p: &Provider, assertion: &str, body_id: Option<&str>, now: i64) -> Result<ClientEntry, OAuthError> {
    if assertion.len() > MAX_ASSERTION {
        return Err(refused("the assertion is too long"));
    }
    let id = claimed_client(assertion).ok_or_else(|| refused("the assertion names no client (sub)"))?;
    if body_id.is_some_and(|b| b != id) {
        return Err(oauth!(InvalidRequest, "client_id differs from the client the assertion names"));
    }
    let entry = p
        .config()
        .client(&id)
        .cloned()
        .ok_or_else(|| refused(format!("unknown client {:?}", id.chars().take(128).collect::<String>())))?;
    let client = &entry.client;
    if client.auth_method != AuthMethod::PrivateKeyJwt {
        return Err(refused(format!(
            "client {id} is registered for {}, not private_key_jwt",
            client.auth_method.as_str()
        )));
    }
    let header = jsonwebtoken::decode_header(assertion).map_err(|_| refused("the assertion is not a JWS"))?;
    // `none` and the HMAC algorithms are not among them: a public key is no shared secret.
    if !SUPPORTED.contains(&header.alg) {
        return Err(refused(format!("the assertion's algorithm {:?} is not accepted", header.alg)));
    }
    let keys = match &client.keys {
        Some(ClientKeys::Jwks(_)) => entry
            .registered_keys
            .clone()
            .ok_or_else(|| refused(format!("client {id} has no usable keys")))?,
        Some(ClientKeys::JwksUri(uri)) => p.client_keys.fetched(uri, header.kid.as_deref(), header.alg, now).await.map_err(refused)?,
        None => return Err(refused(format!("client {id} has no keys"))),
    };
    let key = keys
        .find(header.kid.as_deref(), header.alg)
        .ok_or_else(|| refused(format!("no key of {id} verifies {:?} with kid {:?}", header.alg, header.kid)))?;
    let claims = verify(p, assertion, header.alg, &key.decoding, &id)?;
    check_times(&claims, now)?;
    remember_jti(p, &id, &claims, now).await?;
    Ok(entry)
}

/// Signature, `iss` = `sub` = the client, `aud` = Portico. Times are checked against the
/// provider's clock by [`check_times`].
fn verify(p: &Provider, assertion: &str, alg: Algorithm, key: &jsonwebtoken::DecodingKey, id: &str) -> Result<Claims, OAuthError> {
    let mut v = Validation::new(alg);
    v.set_issuer(&[id]);
    v.sub = Some(id.to_owned());
    // `aud` is checked below: one value, not a list that merely contains one.
    v.validate_aud = false;
    v.set_required_spec_claims(&["exp", "iss", "sub", "aud"]);
    v.validate_exp = false;
    v.validate_nbf = false;
    let claims = jsonwebtoken::decode::<Claims>(assertion, key, &v).map_err(|e| refused(format!("the assertion of {id} does not verify: {e}")))?;
    let claims = claims.claims;
    let aud = match &claims.aud {
        serde_json::Value::String(a) => Some(a.as_str()),
        serde_json::Value::Array(a) if a.len() == 1 => a[0].as_str(),
        _ => None,
    };
    if !aud.is_some_and(|a| audiences(&p.issuer).iter().any(|x| x == a)) {
        return Err(refused(format!("the assertion of {id} is not for this server alone (aud)")));
    }
    Ok(claims)
}

/// What an assertion's `aud` may name, as its one value: the issuer, or the token endpoint (OIDC
/// Core §9: "SHOULD be the URL of the Authorization Server's Token Endpoint"), whichever endpoint
/// it is presented at. An assertion naming another endpoint, or listing other audiences beside
/// Portico, is refused: one made for another server must never pass here.
fn audiences(issuer: &str) -> [String; 3] {
    // RFC 9126 §2: at the PAR endpoint, the server "MUST accept its issuer identifier, token
    // endpoint URL, or pushed authorization request endpoint URL".
    [issuer.to_owned(), format!("{issuer}/oauth2/token"), format!("{issuer}/oauth2/par")]
}

fn check_times(c: &Claims, now: i64) -> Result<(), OAuthError> {
    if c.exp <= now - LEEWAY {
        return Err(refused(format!("the assertion expired at {}", c.exp)));
    }
    if c.exp > now + MAX_LIFETIME + LEEWAY {
        return Err(refused(format!("the assertion's exp is more than {MAX_LIFETIME} s away")));
    }
    if c.nbf.is_some_and(|t| t > now + LEEWAY) || c.iat.is_some_and(|t| t > now + LEEWAY) {
        return Err(refused("the assertion is not valid yet"));
    }
    Ok(())
}

/// Records the assertion's `jti` until it expires; one seen before from this client is a replay.
async fn remember_jti(p: &Provider, id: &str, c: &Claims, now: i64) -> Result<(), OAuthError> {
    let jti = c.jti.as_deref().filter(|j| !j.is_empty()).ok_or_else(|| refused("the assertion has no jti"))?;
    if jti.len() > MAX_JTI {
        return Err(refused("the assertion's jti is too long"));
    }
    let handle = format!("{id}\u{0}{jti}");
    let first = pending::put_once(&p.store, pending::Kind::AssertionJti, &handle, &(), c.exp + LEEWAY, now, &p.settings).await?;
    if !first {
        return Err(refused(format!("the assertion of {id} was used before (jti replayed)")));
    }
    Ok(())
}
