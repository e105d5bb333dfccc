//! The provider: the store, the issuer, the settings, and the in-memory caches (configuration
//! snapshot and key ring) that every endpoint reads. Protocol functions take it (or the part of
//! it they read) and `now`.

use crate::kek::Kek;
use crate::keys::{self, KeyError, KeyRing};
use crate::snapshot::Snapshot;
use crate::tenants::TenantHandles;
use crate::writer::Writer;
use portico_store::{AuditEvent, Store, StoreError};
use std::sync::{Arc, RwLock};

/// Lifetimes and limits a deployment may tune.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Authorization code lifetime (≤ 2 minutes).
    pub code_ttl: i64,
    pub id_token_ttl: i64,
    pub refresh_ttl: i64,
    pub session_idle: i64,
    pub session_absolute: i64,
    /// How long a pending authorization request waits for login or consent.
    pub auth_request_ttl: i64,
    /// Seconds between rotations of tenant handles (a handle resolves for one more period).
    pub tenant_handle_period: i64,
    /// Lifetime of a hand-off code.
    pub handoff_ttl: i64,
    /// How long a back-channel logout notice is retried before it is given up.
    pub logout_window: i64,
    /// Sign-in throttling.
    pub throttle: crate::throttle::Limits,
    /// Which new passwords are accepted.
    pub password: crate::password_policy::PasswordPolicy,
    /// How long a password reset link works.
    pub reset_link_ttl: i64,
    /// How long an email verification (or sign-up confirmation) link works.
    pub verify_link_ttl: i64,
    /// RFC 9449 §8: DPoP proofs must carry a nonce Portico gave (`DPoP-Nonce`).
    pub dpop_nonces: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            code_ttl: 60,
            id_token_ttl: 600,
            refresh_ttl: 30 * 86_400,
            session_idle: 8 * 3600,
            session_absolute: 7 * 86_400,
            auth_request_ttl: 1800,
            tenant_handle_period: 1800,
            handoff_ttl: 120,
            logout_window: 86_400,
            throttle: crate::throttle::Limits::default(),
            password: Default::default(),
            reset_link_ttl: 1800,
            verify_link_ttl: 86_400,
            dpop_nonces: false,
        }
    }
}

pub struct Provider {
    pub store: Store,
    pub issuer: String,
    pub settings: Settings,
    pub kek: Kek,
    pub writer: Writer,
    /// The instant requests are answered at (seconds, and milliseconds for the sign-in throttle);
    /// tests move it.
    pub clock: crate::clock::Clock,
    pub tenant_handles: TenantHandles,
    /// The WebAuthn relying party; `None` when the issuer's host is an IP address (no passkeys).
    pub webauthn: Option<webauthn_rs::Webauthn>,
    config: RwLock<Arc<Snapshot>>,
    keys: RwLock<Arc<KeyRing>>,
    /// The discovery document, serialized once: it depends on the issuer alone.
    discovery: Arc<[u8]>,
    /// Access tokens whose signature has been checked (`verify::decode_access_token`).
    pub verified: crate::verify::Verified,
    /// The public keys of `private_key_jwt` clients.
    pub client_keys: crate::client_keys::ClientKeys,
}

#[derive(Debug, thiserror::Error)]
pub enum ProviderError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Keys(#[from] KeyError),
}

impl Provider {
    /// The discovery document (OIDC Discovery §3, RFC 8414 §2) as JSON bytes.
    pub fn discovery_json(&self) -> Arc<[u8]> {
        self.discovery.clone()
    }

    /// The issuer's host (`id.example.test`): how pages, mails and authenticator apps name this
    /// deployment.
    pub fn issuer_host(&self) -> Option<String> {
        url::Url::parse(&self.issuer).ok().and_then(|u| u.host_str().map(str::to_owned))
    }

    /// Loads configuration and keys; makes a first key for every algorithm that has none.
    pub async fn start(store: Store, issuer: String, settings: Settings, kek: Kek, writer: Writer, now: i64) -> Result<Self, ProviderError> {
        let webauthn = crate::passkey::relying_party(&issuer);
        let discovery = serde_json::to_vec(&crate::discovery::metadata(&issuer)).expect("metadata serializes").into();
        let p = Self {
            store,
            issuer,
            tenant_handles: TenantHandles::new(settings.tenant_handle_period),
            settings,
            kek,
            writer,
            clock: Default::default(),
            webauthn,
            config: RwLock::default(),
            keys: RwLock::default(),
            discovery,
            verified: Default::default(),
            client_keys: Default::default(),
        };
        p.reload().await?;
        let missing = p.keys().missing_algs();
        if !missing.is_empty() {
            for alg in missing {
                let row = keys::generate(alg, &p.kek, now, now);
                let event = AuditEvent::new(now, "key.created", "system").data(serde_json::json!({"kid": row.kid, "alg": row.alg}));
                let mut tx = p.store.write().await?;
                tx.insert_key(&row).await?;
                tx.audit(event);
                tx.commit().await?;
            }
            p.reload().await?;
        }
        Ok(p)
    }

    pub fn config(&self) -> Arc<Snapshot> {
        self.config.read().expect("config lock").clone()
    }

    pub fn keys(&self) -> Arc<KeyRing> {
        self.keys.read().expect("keys lock").clone()
    }

    /// Seconds a superseded key stays published: the longest lifetime of anything it signed.
    pub fn key_retention(&self) -> i64 {
        self.config().max_access_ttl().max(self.settings.id_token_ttl) + 60
    }

    /// Rebuilds the caches from the store.
    pub async fn reload(&self) -> Result<(), ProviderError> {
        // First, so a reload that fails part way has still forgotten them: the version may have
        // moved for a client grant another process changed.
        self.store.forget_client_grants();
        let docs = self.store.load_config().await?;
        let rows = self.store.list_keys().await?;
        let ring = KeyRing::load(&rows, &self.kek)?;
        *self.config.write().expect("config lock") = Arc::new(Snapshot::build(docs, &self.issuer));
        *self.keys.write().expect("keys lock") = Arc::new(ring);
        Ok(())
    }

    /// Reloads when another process (a second node, the CLI) changed the configuration or keys.
    /// The client grants held in memory are forgotten when the version moved ([`Provider::reload`])
    /// and when it cannot be read: they are never trusted past a change this process could not
    /// take in.
    pub async fn reload_if_changed(&self) -> Result<bool, ProviderError> {
        let version = self.store.config_version().await.inspect_err(|_| self.store.forget_client_grants())?;
        if version != self.config().version {
            self.reload().await?;
            return Ok(true);
        }
        Ok(false)
    }
}
