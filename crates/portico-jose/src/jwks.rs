//! Public keys of a JWK Set (RFC 7517), read defensively: a key is usable only for the
//! algorithms its own type admits (RFC 7518 §3: `EdDSA` needs an `OKP`/`Ed25519` key, `ES256` an
//! `EC`/`P-256` key, `RS*`/`PS*` an `RSA` key) and the guard's allow-list permits. Keys meant for
//! encryption, of unknown types, without a `kid`, carrying private members or sharing a `kid` are
//! skipped, never fatal: the rest of the set still serves.

use jsonwebtoken::{Algorithm, DecodingKey};
use serde_json::Value;
use std::collections::HashMap;
use std::sync::Arc;

/// The asymmetric signature algorithms that can be verified. `none` and `HS*` are not among them:
/// a symmetric "key" in a public JWK Set would let anyone who reads it sign. The RSA algorithms
/// come last ([`family`] relies on it).
pub const SUPPORTED: [Algorithm; 9] = [
    Algorithm::EdDSA,
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
];

/// [`SUPPORTED`]'s names, as discovery documents and `DPoP` challenges list them.
pub const SUPPORTED_NAMES: [&str; 9] = ["EdDSA", "ES256", "ES384", "RS256", "RS384", "RS512", "PS256", "PS384", "PS512"];

/// [`SUPPORTED_NAMES`], space-separated (a `WWW-Authenticate: DPoP` challenge's `algs`).
pub fn supported_names() -> String {
    SUPPORTED_NAMES.join(" ")
}

/// Reads an algorithm name (from discovery, a JWT header), if it is one that can be verified.
pub fn supported(name: &str) -> Option<Algorithm> {
    name.parse::<Algorithm>().ok().filter(|a| SUPPORTED.contains(a))
}

/// One usable verification key.
#[derive(Clone)]
pub struct Key {
    /// The algorithms it verifies: its type's, narrowed by its own `alg` and the caller's list.
    pub algs: Vec<Algorithm>,
    /// The key, ready to verify with.
    pub decoding: DecodingKey,
}

/// The usable keys of one JWK Set answer, by `kid`.
#[derive(Clone, Default)]
pub struct KeySet {
    /// By `kid`: a set's keys without one, or sharing one, are not here.
    pub keys: HashMap<String, Arc<Key>>,
}

impl KeySet {
    /// The key `kid` names for `alg`, or — a JWT without `kid` — the one key of the set that
    /// verifies `alg`, when there is exactly one.
    pub fn find(&self, kid: Option<&str>, alg: Algorithm) -> Option<&Key> {
        let key = match kid {
            Some(kid) => self.keys.get(kid).map(|k| &**k),
            None => {
                let mut able = self.keys.values().filter(|k| k.algs.contains(&alg));
                match (able.next(), able.next()) {
                    (Some(one), None) => Some(&**one),
                    _ => None,
                }
            }
        };
        key.filter(|k| k.algs.contains(&alg))
    }

    /// The usable keys of `jwks` for the algorithms in `allowed`; `skipped` counts the rest.
    pub fn parse(jwks: &Value, allowed: &[Algorithm]) -> (KeySet, usize) {
        let entries = jwks.get("keys").and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default();
        let mut seen: HashMap<&str, usize> = HashMap::new();
        for kid in entries.iter().filter_map(|k| k.get("kid").and_then(Value::as_str)) {
            *seen.entry(kid).or_default() += 1;
        }
        let mut keys = HashMap::new();
        for entry in entries {
            let Some(kid) = entry.get("kid").and_then(Value::as_str).filter(|k| seen.get(k) == Some(&1)) else {
                continue;
            };
            if let Some(key) = usable(entry, allowed) {
                keys.insert(kid.to_owned(), Arc::new(key));
            }
        }
        let skipped = entries.len() - keys.len();
        (KeySet { keys }, skipped)
    }
}

/// The algorithms a key's own type admits (RFC 7518 §3.1 and RFC 8037 §3.1).
fn family(jwk: &Value) -> &'static [Algorithm] {
    let s = |name: &str| jwk.get(name).and_then(Value::as_str);
    match (s("kty"), s("crv")) {
        (Some("OKP"), Some("Ed25519")) => &[Algorithm::EdDSA],
        (Some("EC"), Some("P-256")) => &[Algorithm::ES256],
        (Some("EC"), Some("P-384")) => &[Algorithm::ES384],
        // Every RSA algorithm: the last six of the list.
        (Some("RSA"), None) => &SUPPORTED[3..],
        _ => &[],
    }
}

/// One public key (a JWT header's `jwk`, as DPoP proofs carry it), usable for the algorithms its
/// type admits and `allowed` permits, by the rules a set's keys follow; `kid` plays no part.
pub fn public_key(jwk: &Value, allowed: &[Algorithm]) -> Option<Key> {
    usable(jwk, allowed)
}

fn usable(jwk: &Value, allowed: &[Algorithm]) -> Option<Key> {
    // RFC 7517 §4.2/§4.3: a key for encryption, or one whose operations exclude verifying, is not ours.
    if jwk.get("use").is_some_and(|u| u != "sig") {
        return None;
    }
    if jwk
        .get("key_ops")
        .is_some_and(|ops| !ops.as_array().is_some_and(|ops| ops.iter().any(|o| o == "verify")))
    {
        return None;
    }
    // Private members in a published set are a misconfiguration: never use such a key.
    if ["d", "p", "q", "dp", "dq", "qi", "k"].iter().any(|m| jwk.get(m).is_some()) {
        return None;
    }
    let mut algs: Vec<Algorithm> = family(jwk).iter().copied().filter(|a| allowed.contains(a)).collect();
    if let Some(declared) = jwk.get("alg") {
        let declared = declared.as_str().and_then(supported)?;
        algs.retain(|a| *a == declared);
    }
    if algs.is_empty() {
        return None;
    }
    let parsed: jsonwebtoken::jwk::Jwk = serde_json::from_value(jwk.clone()).ok()?;
    let decoding = DecodingKey::from_jwk(&parsed).ok()?;
    Some(Key { algs, decoding })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const X: &str = "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo";

    fn parse(keys: Value) -> (Vec<String>, usize) {
        let (set, skipped) = KeySet::parse(&json!({ "keys": keys }), &SUPPORTED);
        let mut kids: Vec<String> = set.keys.into_keys().collect();
        kids.sort();
        (kids, skipped)
    }

    #[test]
    fn unusable_keys_are_skipped_not_fatal() {
        let (kids, skipped) = parse(json!([
            { "kid": "good", "kty": "OKP", "crv": "Ed25519", "x": X, "use": "sig", "alg": "EdDSA" },
            { "kid": "enc", "kty": "OKP", "crv": "Ed25519", "x": X, "use": "enc" },
            { "kid": "weird", "kty": "XYZ", "foo": 1 },
            { "kid": "hmac", "kty": "oct", "k": "c2VjcmV0", "alg": "HS256" },
            { "kty": "OKP", "crv": "Ed25519", "x": X },
            { "kid": "private", "kty": "OKP", "crv": "Ed25519", "x": X, "d": X },
            { "kid": "ops", "kty": "OKP", "crv": "Ed25519", "x": X, "key_ops": ["encrypt"] },
            "not an object",
        ]));
        assert_eq!(kids, ["good"]);
        assert_eq!(skipped, 7);
    }

    #[test]
    fn a_key_whose_type_disagrees_with_its_alg_is_refused() {
        let (kids, _) = parse(json!([
            { "kid": "ed-as-es", "kty": "OKP", "crv": "Ed25519", "x": X, "alg": "ES256" },
            { "kid": "ed-as-hs", "kty": "OKP", "crv": "Ed25519", "x": X, "alg": "HS256" },
            { "kid": "ed-as-none", "kty": "OKP", "crv": "Ed25519", "x": X, "alg": "none" },
            { "kid": "x25519", "kty": "OKP", "crv": "X25519", "x": X },
        ]));
        assert!(kids.is_empty(), "{kids:?}");
    }

    #[test]
    fn a_shared_kid_is_ambiguous_and_skipped() {
        let (kids, skipped) = parse(json!([
            { "kid": "k", "kty": "OKP", "crv": "Ed25519", "x": X },
            { "kid": "k", "kty": "OKP", "crv": "Ed25519", "x": X },
        ]));
        assert!(kids.is_empty());
        assert_eq!(skipped, 2);
    }

    #[test]
    fn the_names_are_the_supported_algorithms() {
        let parsed: Vec<Algorithm> = SUPPORTED_NAMES.iter().filter_map(|n| supported(n)).collect();
        assert_eq!(parsed, SUPPORTED);
    }

    #[test]
    fn the_allow_list_bounds_every_key() {
        let (set, _) = KeySet::parse(
            &json!({ "keys": [{ "kid": "k", "kty": "OKP", "crv": "Ed25519", "x": X }] }),
            &[Algorithm::ES256],
        );
        assert!(set.keys.is_empty());
        assert_eq!(supported("EdDSA"), Some(Algorithm::EdDSA));
        assert_eq!(supported("HS256"), None);
        assert_eq!(supported("none"), None);
    }
}
