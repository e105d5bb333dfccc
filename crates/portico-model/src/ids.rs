//! Newtypes for identifiers and protocol values, so a client id can never be passed where a
//! redirect URI is expected, and a tenant's database-free id never where its slug is.

use serde::{Deserialize, Serialize};
use std::fmt;

macro_rules! string_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            pub fn new(value: impl Into<String>) -> Self {
                Self(value.into())
            }
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }
        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({:?})", stringify!($name), self.0)
            }
        }
    };
}

string_id!(
    /// A user's id (`usr_…`): the same `sub` at every product of the suite.
    UserId
);

/// What every user id begins with ([`crate::Subject::of_claim`]).
pub const USER_ID_PREFIX: &str = "usr_";
string_id!(
    /// An OAuth client's id, as registered.
    ClientId
);
string_id!(
    /// A product's slug (`crm`).
    ProductSlug
);
string_id!(
    /// A product's audience URI: the one value an access token's `aud` may hold.
    Audience
);
string_id!(
    /// A tenant's stable, opaque, random id (`ten_…`); never a database key.
    TenantId
);
string_id!(
    /// A product session id (`sid`), carried in ID and access tokens.
    Sid
);
string_id!(
    /// A token family's id (`fam_…`): everything issued from one authorization code, hand-off
    /// or exchange, revoked as one.
    FamilyId
);

/// A redirect URI as registered. It is compared by exact string equality only
/// (RFC 9700 §4.1.3: "the authorization server MUST ensure that the two URIs are equal");
/// there is deliberately no prefix or pattern matching.
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize, Debug)]
#[serde(transparent)]
pub struct RedirectUri(String);

impl RedirectUri {
    /// Parses a URI for registration: absolute, no fragment (RFC 6749 §3.1.2), and a scheme a
    /// response can be sent to: http(s), or a native app's private-use scheme (RFC 8252 §7.1);
    /// never one that runs or embeds content where it is opened (`javascript:`, `data:`, …).
    pub fn parse(value: &str) -> Result<Self, String> {
        let url = url::Url::parse(value).map_err(|e| format!("not an absolute URI: {e}"))?;
        if url.fragment().is_some() {
            return Err("must not contain a fragment".into());
        }
        if matches!(url.scheme(), "javascript" | "data" | "vbscript" | "blob" | "file" | "about" | "filesystem") {
            return Err(format!("must not use the {}: scheme", url.scheme()));
        }
        Ok(Self(value.to_owned()))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
    /// Exact, character-for-character comparison with what a request presented.
    pub fn is_exactly(&self, presented: &str) -> bool {
        self.0 == presented
    }
}

impl fmt::Display for RedirectUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}
