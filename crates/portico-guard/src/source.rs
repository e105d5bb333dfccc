//! Where keys come from: the issuer's `jwks_uri` over HTTPS (loopback HTTP for development), with
//! a timeout and a size limit, or any other [`KeySource`] (a test's local key).

use async_trait::async_trait;
pub use portico_jose::fetch::{MAX_DOCUMENT, SourceError};
pub(crate) use portico_jose::fetch::{client, get_json, read_capped};
use serde_json::Value;

/// One answer of a key source: a JWK Set and how long it may be cached.
#[derive(Clone, Debug)]
pub struct Fetched {
    /// The JWK Set (`{"keys": [...]}`).
    pub jwks: Value,
    /// `Cache-Control: max-age`, in seconds, when the source said.
    pub max_age: Option<u64>,
}

/// A source of the issuer's public keys. The guard calls it at start, before `max-age` runs out,
/// and (at most once per cooldown) when a token names a key it does not know.
#[async_trait]
pub trait KeySource: Send + Sync + 'static {
    /// Fetches the current key set.
    async fn fetch(&self) -> Result<Fetched, SourceError>;
}

/// Keys fetched from a `jwks_uri`.
pub struct HttpKeys {
    client: reqwest::Client,
    uri: String,
}

impl HttpKeys {
    /// Keys at `jwks_uri` (the guard reads it from the issuer's discovery).
    pub fn new(jwks_uri: impl Into<String>) -> Self {
        Self::with_client(client(), jwks_uri)
    }

    /// Keys at `jwks_uri`, fetched with the guard's own client (one connection pool).
    pub(crate) fn with_client(client: reqwest::Client, jwks_uri: impl Into<String>) -> Self {
        Self { client, uri: jwks_uri.into() }
    }
}

#[async_trait]
impl KeySource for HttpKeys {
    async fn fetch(&self) -> Result<Fetched, SourceError> {
        let (jwks, max_age) = get_json(&self.client, &self.uri).await?;
        Ok(Fetched { jwks, max_age })
    }
}
