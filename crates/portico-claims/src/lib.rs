//! The claims of the tokens Portico signs for products: access tokens (RFC 9068 §2.2) and logout
//! tokens (OpenID Connect Back-Channel Logout 1.0 §2.4). The issuer mints these types and
//! `portico-guard` verifies them, so both sides read one definition.

use serde::{Deserialize, Deserializer, Serialize};

/// The JWT `typ` of an access token (RFC 9068 §2.1).
pub const ACCESS_TOKEN_TYP: &str = "at+jwt";
/// The JWT `typ` of a logout token (Back-Channel Logout §2.4: explicit typing).
pub const LOGOUT_TOKEN_TYP: &str = "logout+jwt";
/// The event member a logout token's `events` claim carries (Back-Channel Logout §2.4).
pub const BACKCHANNEL_LOGOUT_EVENT: &str = "http://schemas.openid.net/event/backchannel-logout";

/// An access token's claims. `aud` is one string, never a list: one token, one product.
///
/// Deserializing tolerates an `aud` that is an array of exactly one string (RFC 7519 §4.1.3 allows
/// both forms); any other array is an error, so a token for two audiences never reads as one.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessClaims {
    /// The issuer, exactly as its discovery document names it.
    pub iss: String,
    /// Whom the token is about: a user's id (the same at every product) or, for
    /// `client_credentials`, the client's id.
    pub sub: String,
    /// The one product (its audience URI) the token is for.
    #[serde(deserialize_with = "one_audience")]
    pub aud: String,
    /// The client the token was issued to.
    pub client_id: String,
    /// The granted scopes, space-separated (RFC 6749 §3.3).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub scope: String,
    /// Issued at (seconds since the epoch).
    pub iat: i64,
    /// Expires at (seconds since the epoch).
    pub exp: i64,
    /// Not before (seconds since the epoch); Portico does not set it, verifiers honour it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<i64>,
    /// The token's unique id.
    pub jti: String,
    /// The product session (OIDC `sid`) the token belongs to, when a user signed in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sid: Option<String>,
    /// When the user authenticated (seconds since the epoch).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_time: Option<i64>,
    /// The authentication context class met (`urn:portico:acr:pwd`, `urn:portico:acr:mfa`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acr: Option<String>,
    /// The authentication methods used (RFC 8176: `pwd`, `otp`, `hwk`, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub amr: Option<Vec<String>>,
    /// The one tenant the token is for: its opaque handle.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub org_id: Option<String>,
    /// The tenant's display name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub org_name: Option<String>,
    /// Present (true) when the tenant was entered through a grant that covers every tenant of the
    /// product (an operator), so the product can show it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub all_tenants: Option<bool>,
    /// The subject's roles at this product (and tenant).
    #[serde(default)]
    pub roles: Vec<String>,
    /// The permissions those roles carry.
    #[serde(default)]
    pub permissions: Vec<String>,
    /// RFC 8693 §4.1: the party acting on the subject's behalf (token exchange).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub act: Option<Actor>,
    /// RFC 9449 §6.1: the key the token is bound to. A token with it is good only with a DPoP
    /// proof signed by that key, never as a bearer token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cnf: Option<Confirmation>,
}

/// RFC 7800 `cnf`, as DPoP uses it (RFC 9449 §6.1).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Confirmation {
    /// The JWK SHA-256 thumbprint (RFC 7638) of the key.
    pub jkt: String,
}

/// RFC 8693 §4.1 `act`: who acts for the subject; a chain of delegation nests.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Actor {
    /// The acting client's id.
    pub sub: String,
    /// Whoever acted for that client in turn.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub act: Option<Box<Actor>>,
}

/// A logout token's claims (Back-Channel Logout §2.4): `sid` and `sub`, the event, never a `nonce`.
///
/// Portico always sends both `sid` and `sub`; the spec requires at least one, so a verifier reads
/// both as optional.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogoutClaims {
    /// The issuer.
    pub iss: String,
    /// The user whose session ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sub: Option<String>,
    /// The client the notice is for (its client id).
    #[serde(deserialize_with = "one_audience")]
    pub aud: String,
    /// Issued at.
    pub iat: i64,
    /// Expires at.
    pub exp: i64,
    /// The token's unique id (replay protection).
    pub jti: String,
    /// The product session that ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sid: Option<String>,
    /// `{ "http://schemas.openid.net/event/backchannel-logout": {} }`.
    pub events: serde_json::Value,
    /// Must be absent (§2.4: "A nonce Claim MUST NOT be present"); read so a verifier can refuse it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nonce: Option<serde_json::Value>,
}

/// `aud` as one string: a string, or an array holding exactly one string.
fn one_audience<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Aud {
        One(String),
        Many(Vec<String>),
    }
    match Aud::deserialize(d)? {
        Aud::One(a) => Ok(a),
        Aud::Many(mut v) if v.len() == 1 => Ok(v.remove(0)),
        Aud::Many(_) => Err(serde::de::Error::custom("aud must name exactly one audience")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn with_aud(aud: serde_json::Value) -> serde_json::Result<AccessClaims> {
        serde_json::from_value(json!({"iss": "i", "sub": "s", "aud": aud, "client_id": "c", "iat": 1, "exp": 2, "jti": "j"}))
    }

    #[test]
    fn aud_is_one_string_or_an_array_of_one() {
        assert_eq!(with_aud(json!("https://crm")).unwrap().aud, "https://crm");
        assert_eq!(with_aud(json!(["https://crm"])).unwrap().aud, "https://crm");
        assert!(with_aud(json!(["https://crm", "https://reports"])).is_err());
        assert!(with_aud(json!([])).is_err());
        assert!(with_aud(json!(7)).is_err());
    }

    #[test]
    fn required_claims_are_required() {
        for missing in ["iss", "sub", "aud", "client_id", "iat", "exp", "jti"] {
            let mut v = json!({"iss": "i", "sub": "s", "aud": "a", "client_id": "c", "iat": 1, "exp": 2, "jti": "j"});
            v.as_object_mut().unwrap().remove(missing);
            assert!(serde_json::from_value::<AccessClaims>(v).is_err(), "{missing} must be required");
        }
    }
}
