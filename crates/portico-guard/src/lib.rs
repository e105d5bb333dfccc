//! # portico-guard
//!
//! What a product's backend needs to trust a Portico access token, and to enforce it where the
//! data lives:
//!
//! - [`Guard`] verifies access tokens (RFC 9068) for one product's audience, with a JWKS cache
//!   that refreshes in the background, refetches at most once per cooldown for an unknown key,
//!   and keeps serving the last good keys when the issuer is unreachable.
//! - [`Principal`] is the verified caller; [`Principal::require_permission`] and the [`gate`]
//!   layers check it; refusals answer as RFC 6750 says.
//! - [`logout`] receives OpenID Connect back-channel logout tokens and makes the guard refuse the
//!   ended session's tokens for the rest of their lifetime.
//! - [`rls`] runs each request's queries in a PostgreSQL transaction that carries the verified
//!   claims, for row-level-security policies.
//! - [`testing`] mints Portico-shaped tokens with a local key, so product tests need no Portico.
//!
//! The claims type is the issuer's own ([`portico_claims`]): minting and verifying read one
//! definition.

#![deny(missing_docs)]

mod cache;
pub mod clock;
mod dpop;
pub mod gate;
pub mod handoff;
use portico_jose::jwks as keys;
pub mod logout;
pub mod marks;
mod principal;
mod refusal;
pub mod rls;
pub mod source;
pub mod testing;
mod verify;
mod web;

pub use cache::{MAX_MAX_AGE, MIN_MAX_AGE};
pub use clock::{Clock, ManualClock, SystemClock};
pub use jsonwebtoken::Algorithm;
pub use portico_claims::{AccessClaims, LogoutClaims};
pub use principal::Principal;
pub use refusal::{Reason, Refusal};
pub use verify::MAX_TOKEN_BYTES;
pub use web::bearer;

use cache::{Cache, CachePolicy};
use marks::{MemoryMarks, SessionMarks};
use source::{HttpKeys, KeySource, SourceError};
use std::sync::Arc;

/// Verifies Portico access tokens for one product. Cheap to clone (one `Arc`); build it once with
/// [`Guard::connect`] or [`Guard::builder`] and share it (axum state, a layer).
#[derive(Clone)]
pub struct Guard {
    inner: Arc<Inner>,
}

struct Inner {
    issuer: String,
    audience: String,
    leeway: i64,
    algorithms: Vec<Algorithm>,
    cache: Arc<Cache>,
    clock: Arc<dyn Clock>,
    marks: Arc<dyn SessionMarks>,
    mark_lifetime: i64,
    logout: logout::Receiver,
    endpoints: Endpoints,
    client: Option<handoff::ClientCredentials>,
    http: reqwest::Client,
    introspection: handoff::IntrospectionCache,
    /// Where clients reach this API: DPoP proofs name URLs under it.
    public_origin: Option<String>,
    dpop_seen: dpop::SeenProofs,
}

/// The issuer's endpoints the guard uses beyond its keys (from discovery).
#[derive(Clone, Debug, Default)]
struct Endpoints {
    token: Option<String>,
    introspection: Option<String>,
    handoff: Option<String>,
}

impl std::fmt::Debug for Guard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let i = &self.inner;
        f.debug_struct("Guard")
            .field("issuer", &i.issuer)
            .field("audience", &i.audience)
            .field("leeway_seconds", &i.leeway)
            .field("algorithms", &i.algorithms)
            .field("unknown_kid_cooldown_seconds", &i.cache.policy.cooldown)
            .field("max_stale_seconds", &i.cache.policy.max_stale)
            .field("client_id", &i.client.as_ref().map(|c| c.id.as_str()))
            .finish_non_exhaustive()
    }
}

/// Why [`Guard::connect`] failed: each names what to fix.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConnectError {
    /// The issuer is not an absolute `https` URL (plain `http` only on loopback).
    #[error("issuer {0:?} must be an https URL (http only for 127.0.0.1, [::1] or localhost)")]
    InsecureIssuer(String),
    /// The audience is empty or a wildcard.
    #[error("audience {0:?} must name this product (not empty, not \"*\")")]
    InvalidAudience(String),
    /// Discovery could not be fetched.
    #[error("fetching the issuer's discovery document: {0}")]
    Discovery(SourceError),
    /// Discovery names another issuer (OpenID Connect Discovery §4.3: they MUST be identical).
    #[error("discovery at {expected:?} names issuer {found:?}; configure the issuer exactly as it names itself")]
    IssuerMismatch {
        /// The issuer configured.
        expected: String,
        /// The issuer discovery names.
        found: String,
    },
    /// Discovery lacks a member the guard needs.
    #[error("discovery lacks {0}")]
    Incomplete(&'static str),
    /// Discovery names an endpoint that is not https (keys or the client secret would travel in
    /// the clear).
    #[error("discovery names {0:?}, which is not https (http only on loopback)")]
    InsecureEndpoint(String),
    /// No algorithm both the issuer signs with and the guard verifies.
    #[error("the issuer signs with none of the algorithms the guard verifies (EdDSA, ES256, ES384, RS*, PS*)")]
    NoAlgorithms,
    /// The first key fetch failed or published no usable key.
    #[error("fetching the issuer's keys: {0}")]
    Keys(SourceError),
}

/// How to build a [`Guard`]; every setting has a safe default.
pub struct GuardBuilder {
    issuer: String,
    audience: String,
    leeway: i64,
    cooldown: i64,
    max_stale: i64,
    clock: Arc<dyn Clock>,
    source: Option<Arc<dyn KeySource>>,
    algorithms: Option<Vec<Algorithm>>,
    marks: Arc<dyn SessionMarks>,
    mark_lifetime: i64,
    logout_audiences: Vec<String>,
    client: Option<handoff::ClientCredentials>,
    public_origin: Option<String>,
}

impl Guard {
    /// Connects to `issuer` (its discovery and keys) to verify tokens for `audience`; fails fast
    /// on a misconfiguration. The same as `Guard::builder(issuer, audience).connect()`.
    pub async fn connect(issuer: &str, audience: &str) -> Result<Guard, ConnectError> {
        Guard::builder(issuer, audience).connect().await
    }

    /// A builder for `issuer` and this product's `audience`.
    pub fn builder(issuer: &str, audience: &str) -> GuardBuilder {
        GuardBuilder {
            issuer: issuer.trim_end_matches('/').to_owned(),
            audience: audience.to_owned(),
            leeway: 10,
            cooldown: 30,
            max_stale: 6 * 3600,
            clock: Arc::new(SystemClock),
            source: None,
            algorithms: None,
            marks: Arc::new(MemoryMarks::default()),
            mark_lifetime: 24 * 3600,
            logout_audiences: Vec::new(),
            client: None,
            public_origin: None,
        }
    }

    /// The issuer tokens must name.
    pub fn issuer(&self) -> &str {
        &self.inner.issuer
    }

    /// The one audience tokens must name.
    pub fn audience(&self) -> &str {
        &self.inner.audience
    }

    /// Now, by the guard's clock.
    pub fn now(&self) -> i64 {
        self.inner.clock.now()
    }

    /// Verifies an access token for this product and returns the caller.
    pub async fn verify(&self, token: &str) -> Result<Principal, Refusal> {
        self.counted(self.check(token, None).await)
    }

    /// Verifies a DPoP-bound access token (RFC 9449 §7): `Authorization: DPoP <token>` with the
    /// request's `DPoP` proof, for the request's `method` and `path` (its query is not part of
    /// it). The token must be bound (`cnf.jkt`) to the key that signed the proof; the proof must
    /// be for this request and this token (`ath`), recent, and new. An unbound token is refused
    /// here: it is a bearer token, for [`Guard::verify`].
    pub async fn verify_dpop(&self, token: &str, proof: &str, method: &str, path: &str) -> Result<Principal, Refusal> {
        let Some(origin) = &self.inner.public_origin else {
            tracing::error!("portico-guard: a DPoP request, and no public_origin to check its proof against; refusing");
            return self.counted(Err(Reason::DpopProof));
        };
        let htu = format!("{origin}{path}");
        self.counted(self.check(token, Some((proof, method, &htu))).await)
    }

    fn counted(&self, outcome: Result<Principal, Reason>) -> Result<Principal, Refusal> {
        let label = match &outcome {
            Ok(_) => "ok",
            Err(reason) => reason.as_str(),
        };
        metrics::counter!("portico_guard_verifications_total", "outcome" => label).increment(1);
        outcome.map_err(Refusal::Unauthorized)
    }

    async fn check(&self, token: &str, dpop: Option<(&str, &str, &str)>) -> Result<Principal, Reason> {
        let i = &self.inner;
        let parts = verify::parse::<AccessClaims>(token, portico_claims::ACCESS_TOKEN_TYP, &i.algorithms)?;
        let c = &parts.claims;
        if c.iss != i.issuer {
            return Err(Reason::Issuer);
        }
        if c.aud != i.audience {
            return Err(Reason::Audience);
        }
        if c.sub.is_empty() || c.client_id.is_empty() || c.jti.is_empty() {
            return Err(Reason::Claims);
        }
        // RFC 9449 §7.1: a bound token is never accepted as a bearer token, and an unbound one
        // is no DPoP token.
        match (&c.cnf, dpop) {
            (Some(_), None) => return Err(Reason::DpopBound),
            (None, Some(_)) => return Err(Reason::DpopProof),
            _ => {}
        }
        verify::times(i.clock.now(), i.leeway, c.iat, c.nbf, c.exp)?;
        self.signature(&parts).await?;
        if let (Some(cnf), Some((proof, htm, htu))) = (&c.cnf, dpop) {
            let now = i.clock.now();
            let expected = portico_jose::dpop::Expected {
                htm,
                htu,
                access_token: Some(token),
                now,
            };
            let proof = portico_jose::dpop::verify(proof, &expected).map_err(|why| {
                tracing::debug!(why, "portico-guard: a DPoP proof is refused");
                Reason::DpopProof
            })?;
            if proof.jkt != cnf.jkt || !i.dpop_seen.first(&proof.jkt, &proof.jti, proof.iat, now) {
                return Err(Reason::DpopProof);
            }
        }
        match i.marks.ended(c.sid.as_deref(), &c.sub, c.iat, i.clock.now()).await {
            Ok(false) => Ok(Principal::of(parts.claims)),
            Ok(true) => Err(Reason::SessionEnded),
            Err(e) => {
                tracing::error!(error = %e, "portico-guard: the session marks could not be read; refusing");
                Err(Reason::Unavailable)
            }
        }
    }

    /// Refetches the issuer's keys now (single-flight with the background refresh), e.g. after a
    /// key rotation announced out of band. The last good set keeps serving when it fails.
    pub async fn refresh_keys(&self) -> Result<(), SourceError> {
        self.inner.cache.refresh_now().await
    }

    /// How many times the guard has fetched keys (successfully or not).
    pub fn key_fetches(&self) -> u64 {
        self.inner.cache.attempts()
    }
}

impl GuardBuilder {
    /// Clock skew tolerated on `exp`, `nbf` and `iat` (default 10 s, at most 5 minutes).
    pub fn leeway(mut self, seconds: u32) -> Self {
        self.leeway = i64::from(seconds.min(300));
        self
    }

    /// At most one refetch for unknown key ids per this many seconds (default 30, at least 1).
    pub fn unknown_kid_cooldown(mut self, seconds: u32) -> Self {
        self.cooldown = i64::from(seconds.max(1));
        self
    }

    /// How long past their freshness cached keys keep serving while refreshes fail (default 6 h).
    /// After that the guard refuses every token until the issuer answers again. At most 7 days.
    pub fn max_stale(mut self, seconds: u32) -> Self {
        self.max_stale = i64::from(seconds.min(7 * 24 * 3600));
        self
    }

    /// The clock (default: the system clock).
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// Keys from `source` instead of the issuer's `jwks_uri`; discovery is then not fetched, and
    /// the allow-list is every algorithm the guard verifies, narrowed by
    /// [`GuardBuilder::algorithms`]. For tests (see [`testing`]).
    pub fn key_source(mut self, source: impl KeySource) -> Self {
        self.source = Some(Arc::new(source));
        self
    }

    /// Narrows the algorithms accepted to these (still only those the issuer advertises).
    pub fn algorithms(mut self, algorithms: &[Algorithm]) -> Self {
        self.algorithms = Some(algorithms.to_vec());
        self
    }

    /// Where ended sessions are recorded (default: in memory; [`marks::PgMarks`] for several
    /// replicas).
    pub fn session_marks(mut self, marks: impl SessionMarks) -> Self {
        self.marks = Arc::new(marks);
        self
    }

    /// How long a session mark is kept: at least the longest access-token lifetime of the
    /// product (default 24 h, at least 1 h).
    pub fn mark_lifetime(mut self, seconds: u32) -> Self {
        self.mark_lifetime = i64::from(seconds.max(3600));
        self
    }

    /// The client whose back-channel logout tokens [`logout`] accepts (their `aud`). Repeat for
    /// each client of the product that registered this receiver.
    pub fn logout_client(mut self, client_id: &str) -> Self {
        self.logout_audiences.push(client_id.to_owned());
        self
    }

    /// Where clients reach this API (`https://api.crm.example.test`): a DPoP proof's `htu` is this
    /// origin and the request's path (RFC 9449 §4.3). Default: the audience's origin, when the
    /// audience is a URL. Behind a proxy that changes the host or path, set what clients see.
    pub fn public_origin(mut self, origin: &str) -> Self {
        self.public_origin = Some(origin.trim_end_matches('/').to_owned());
        self
    }

    /// This product's confidential client, for hand-off redemption and introspection.
    pub fn client_credentials(mut self, client_id: &str, secret: &str) -> Self {
        self.client = Some(handoff::ClientCredentials::new(client_id, secret));
        self
    }

    /// Fetches discovery (unless a key source was given) and the first key set.
    pub async fn connect(self) -> Result<Guard, ConnectError> {
        check_issuer(&self.issuer)?;
        if self.audience.trim().is_empty() || self.audience.trim() == "*" {
            return Err(ConnectError::InvalidAudience(self.audience));
        }
        let http = source::client();
        let (source, advertised, endpoints) = match self.source {
            Some(source) => (source, keys::SUPPORTED.to_vec(), Endpoints::default()),
            None => discover(&http, &self.issuer).await?,
        };
        let mut algorithms: Vec<Algorithm> = advertised.into_iter().filter(|a| keys::SUPPORTED.contains(a)).collect();
        if let Some(narrowed) = &self.algorithms {
            algorithms.retain(|a| narrowed.contains(a));
        }
        if algorithms.is_empty() {
            return Err(ConnectError::NoAlgorithms);
        }
        let policy = CachePolicy {
            cooldown: self.cooldown,
            max_stale: self.max_stale,
        };
        let cache = Cache::load(source, self.clock.clone(), algorithms.clone(), policy)
            .await
            .map_err(ConnectError::Keys)?;
        cache.spawn_refresher();
        let public_origin = self.public_origin.or_else(|| dpop::origin_of(&self.audience));
        let inner = Inner {
            issuer: self.issuer,
            audience: self.audience,
            leeway: self.leeway,
            algorithms,
            cache,
            clock: self.clock,
            marks: self.marks,
            mark_lifetime: self.mark_lifetime,
            logout: logout::Receiver::new(self.logout_audiences),
            endpoints,
            client: self.client,
            http,
            introspection: handoff::IntrospectionCache::default(),
            public_origin,
            dpop_seen: dpop::SeenProofs::default(),
        };
        Ok(Guard { inner: Arc::new(inner) })
    }
}

/// An https URL, or http on loopback (development).
fn secure(url: &str) -> bool {
    url::Url::parse(url).is_ok_and(|u| {
        let loopback = matches!(u.host_str(), Some("127.0.0.1" | "[::1]" | "localhost"));
        u.scheme() == "https" || (u.scheme() == "http" && loopback)
    })
}

fn check_issuer(issuer: &str) -> Result<(), ConnectError> {
    let plain = url::Url::parse(issuer).is_ok_and(|u| u.query().is_none() && u.fragment().is_none());
    if secure(issuer) && plain {
        Ok(())
    } else {
        Err(ConnectError::InsecureIssuer(issuer.to_owned()))
    }
}

/// OpenID Connect Discovery §4: the document at `<issuer>/.well-known/openid-configuration`.
async fn discover(http: &reqwest::Client, issuer: &str) -> Result<(Arc<dyn KeySource>, Vec<Algorithm>, Endpoints), ConnectError> {
    let url = format!("{issuer}/.well-known/openid-configuration");
    let (doc, _) = source::get_json(http, &url).await.map_err(ConnectError::Discovery)?;
    let text = |name: &str| doc.get(name).and_then(serde_json::Value::as_str).map(str::to_owned);
    let found = text("issuer").ok_or(ConnectError::Incomplete("issuer"))?;
    if found != issuer {
        return Err(ConnectError::IssuerMismatch {
            expected: issuer.to_owned(),
            found,
        });
    }
    let jwks_uri = text("jwks_uri").ok_or(ConnectError::Incomplete("jwks_uri"))?;
    let algorithms = doc
        .get("id_token_signing_alg_values_supported")
        .and_then(serde_json::Value::as_array)
        .ok_or(ConnectError::Incomplete("id_token_signing_alg_values_supported"))?
        .iter()
        .filter_map(|a| a.as_str().and_then(keys::supported))
        .collect();
    let endpoints = Endpoints {
        token: text("token_endpoint"),
        introspection: text("introspection_endpoint"),
        handoff: text("handoff_endpoint"),
    };
    for url in [
        Some(&jwks_uri),
        endpoints.token.as_ref(),
        endpoints.introspection.as_ref(),
        endpoints.handoff.as_ref(),
    ]
    .into_iter()
    .flatten()
    {
        if !secure(url) {
            return Err(ConnectError::InsecureEndpoint(url.clone()));
        }
    }
    Ok((Arc::new(HttpKeys::with_client(http.clone(), jwks_uri)), algorithms, endpoints))
}
