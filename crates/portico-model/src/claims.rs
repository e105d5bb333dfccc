//! The access-token claims (RFC 9068 §2.2), one definition for minting and verifying.

use serde::{Deserialize, Serialize};

/// An access token's claims. `aud` is one string, never a list: one token, one product.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessClaims {
    pub iss: String,
    pub sub: String,
    pub aud: String,
    pub client_id: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub scope: String,
    pub iat: i64,
    pub exp: i64,
    pub jti: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_time: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acr: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub amr: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub org_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub org_name: Option<String>,
    /// Present (true) when the tenant was entered through a grant that covers every tenant of the
    /// product (an operator), so the product can show it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub all_tenants: Option<bool>,
    #[serde(default)]
    pub roles: Vec<String>,
    #[serde(default)]
    pub permissions: Vec<String>,
    /// RFC 8693 §4.1: the party acting on the subject's behalf (token exchange).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub act: Option<Actor>,
}

impl AccessClaims {
    /// Whom the token is about.
    pub fn subject(&self) -> crate::Subject {
        crate::Subject::of_claim(&self.sub)
    }
}

/// RFC 8693 §4.1 `act`: who acts for the subject; a chain of delegation nests.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Actor {
    /// The acting client's id.
    pub sub: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub act: Option<Box<Actor>>,
}
