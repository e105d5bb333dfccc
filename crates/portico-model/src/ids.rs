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
    /// Whether this is a loopback IP redirect (RFC 8252 §7.3): `http`, and the host exactly
    /// `127.0.0.1` or `[::1]`. `localhost` is not one (§8.3).
    pub fn is_loopback_ip(&self) -> bool {
        loopback_parts(&self.0).is_some()
    }
    /// RFC 8252 §7.3: "The authorization server MUST allow any port to be specified at the time
    /// of the request for loopback IP redirect URIs". Everything but the port is compared
    /// character for character; the port, when present, is 1 to 65535 in plain digits. For native
    /// clients only: [`crate::Client::registered_redirect`] decides.
    pub fn matches_loopback_any_port(&self, presented: &str) -> bool {
        match (loopback_parts(&self.0), loopback_parts(presented)) {
            (Some((host, _, rest)), Some((p_host, _, p_rest))) => host == p_host && rest == p_rest,
            _ => false,
        }
    }
}

/// A loopback IP redirect split into its host prefix, its port and the rest (path, query), without
/// any normalization: `http://127.0.0.1:51004/cb` → (`http://127.0.0.1`, Some(51004), `/cb`).
fn loopback_parts(uri: &str) -> Option<(&'static str, Option<u16>, &str)> {
    let host = ["http://127.0.0.1", "http://[::1]"].into_iter().find(|h| uri.starts_with(h))?;
    let after = &uri[host.len()..];
    let (port, rest) = match after.strip_prefix(':') {
        None => (None, after),
        Some(p) => {
            let digits = p.bytes().take_while(u8::is_ascii_digit).count();
            // No empty port, no leading zero (`:080` names port 80 in another spelling).
            if digits == 0 || digits > 5 || p.starts_with('0') {
                return None;
            }
            let port: u16 = p[..digits].parse().ok()?;
            (Some(port), &p[digits..])
        }
    };
    // The host ends here: what follows is the path or the query, never more authority
    // (`http://127.0.0.1.evil.test`, `http://127.0.0.1@evil.test`).
    if !(rest.is_empty() || rest.starts_with('/') || rest.starts_with('?')) {
        return None;
    }
    Some((host, port, rest))
}

impl fmt::Display for RedirectUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}
