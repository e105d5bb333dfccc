//! For product tests: a [`TestIssuer`] holds a local Ed25519 key and mints tokens shaped exactly
//! as Portico mints them (the same claims type), and builds a [`Guard`] that trusts only that key
//! — no running Portico, no network.
//!
//! ```
//! # async fn run() {
//! use portico_guard::testing::TestIssuer;
//! let issuer = TestIssuer::new("https://id.example.test");
//! let guard = issuer.guard("https://crm.example.test").await;
//! let mut claims = issuer.claims("usr_ada", "https://crm.example.test");
//! claims.permissions = vec!["read:contacts".into()];
//! let principal = guard.verify(&issuer.sign(&claims)).await.unwrap();
//! assert!(principal.has_permission("read:contacts"));
//! # }
//! ```

use crate::source::{Fetched, KeySource, SourceError};
use crate::{AccessClaims, Guard, GuardBuilder, LogoutClaims};
use async_trait::async_trait;
use aws_lc_rs::rand::SecureRandom;
use aws_lc_rs::signature::{Ed25519KeyPair, KeyPair};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use portico_claims::{ACCESS_TOKEN_TYP, BACKCHANNEL_LOGOUT_EVENT, LOGOUT_TOKEN_TYP};
use serde::Serialize;
use serde_json::{Value, json};
use std::sync::{Arc, RwLock};

/// A random identifier (128 bits, hex).
pub fn random_id() -> String {
    let mut bytes = [0u8; 16];
    aws_lc_rs::rand::SystemRandom::new().fill(&mut bytes).expect("system randomness");
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// One Ed25519 signing key and its public JWK.
pub struct TestKey {
    /// Its key id.
    pub kid: String,
    pair: Ed25519KeyPair,
}

impl TestKey {
    /// A fresh key.
    pub fn generate() -> Self {
        let pkcs8 = Ed25519KeyPair::generate_pkcs8(&aws_lc_rs::rand::SystemRandom::new()).expect("key generation");
        let pair = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).expect("a key just generated");
        TestKey { kid: random_id(), pair }
    }

    /// The public JWK.
    pub fn jwk(&self) -> Value {
        json!({ "kty": "OKP", "crv": "Ed25519", "x": b64(self.pair.public_key().as_ref()), "kid": self.kid, "alg": "EdDSA", "use": "sig" })
    }

    /// Signs `claims` under exactly `header` (so tests can also make wrong headers).
    pub fn sign_with_header(&self, header: &Value, claims: &impl Serialize) -> String {
        let mut out = b64(header.to_string().as_bytes());
        out.push('.');
        out.push_str(&b64(&serde_json::to_vec(claims).expect("claims serialize")));
        let signature = self.pair.sign(out.as_bytes());
        out.push('.');
        out.push_str(&b64(signature.as_ref()));
        out
    }

    /// Signs `claims` with `typ`, this key's `kid` and `alg: EdDSA`.
    pub fn sign(&self, typ: &str, claims: &impl Serialize) -> String {
        self.sign_with_header(&json!({ "alg": "EdDSA", "typ": typ, "kid": self.kid }), claims)
    }
}

/// A JWK Set held in memory, as a [`KeySource`]; change it to simulate a rotation. Counts fetches.
#[derive(Clone, Default)]
pub struct StaticKeys {
    jwks: Arc<RwLock<Value>>,
    fetches: Arc<std::sync::atomic::AtomicU64>,
}

impl StaticKeys {
    /// A source answering `jwks`.
    pub fn new(jwks: Value) -> Self {
        Self {
            jwks: Arc::new(RwLock::new(jwks)),
            fetches: Default::default(),
        }
    }

    /// Answers `jwks` from now on.
    pub fn set(&self, jwks: Value) {
        *self.jwks.write().unwrap_or_else(|p| p.into_inner()) = jwks;
    }

    /// How many times the guard fetched.
    pub fn fetches(&self) -> u64 {
        self.fetches.load(std::sync::atomic::Ordering::SeqCst)
    }
}

#[async_trait]
impl KeySource for StaticKeys {
    async fn fetch(&self) -> Result<Fetched, SourceError> {
        self.fetches.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Ok(Fetched {
            jwks: self.jwks.read().unwrap_or_else(|p| p.into_inner()).clone(),
            max_age: Some(300),
        })
    }
}

/// A local stand-in for Portico: one key, tokens shaped as Portico's.
pub struct TestIssuer {
    /// The issuer URL tokens name.
    pub issuer: String,
    /// The signing key.
    pub key: TestKey,
    /// The key source its guards read (publishing `key`).
    pub keys: StaticKeys,
}

impl TestIssuer {
    /// An issuer named `issuer` with a fresh key.
    pub fn new(issuer: &str) -> Self {
        let key = TestKey::generate();
        let keys = StaticKeys::new(json!({ "keys": [key.jwk()] }));
        TestIssuer {
            issuer: issuer.to_owned(),
            key,
            keys,
        }
    }

    /// Claims as Portico mints them for a user signed in with a password: ten minutes' life,
    /// client `test-client`, scope `openid`, a fresh `jti` and `sid`, no tenant, no roles.
    pub fn claims(&self, sub: &str, audience: &str) -> AccessClaims {
        let now = crate::SystemClock.now_secs();
        AccessClaims {
            iss: self.issuer.clone(),
            sub: sub.to_owned(),
            aud: audience.to_owned(),
            client_id: "test-client".into(),
            scope: "openid".into(),
            iat: now,
            exp: now + 600,
            nbf: None,
            jti: random_id(),
            sid: Some(random_id()),
            auth_time: Some(now),
            acr: Some("urn:portico:acr:pwd".into()),
            amr: Some(vec!["pwd".into()]),
            org_id: None,
            org_name: None,
            all_tenants: None,
            roles: Vec::new(),
            permissions: Vec::new(),
            act: None,
            cnf: None,
        }
    }

    /// An access token (`typ: at+jwt`) carrying `claims`.
    pub fn sign(&self, claims: &AccessClaims) -> String {
        self.key.sign(ACCESS_TOKEN_TYP, claims)
    }

    /// Logout-token claims for `client_id` ending session `sid` of `sub`, as Portico sends them.
    pub fn logout_claims(&self, client_id: &str, sid: Option<&str>, sub: Option<&str>) -> LogoutClaims {
        let now = crate::SystemClock.now_secs();
        LogoutClaims {
            iss: self.issuer.clone(),
            sub: sub.map(str::to_owned),
            aud: client_id.to_owned(),
            iat: now,
            exp: now + 120,
            jti: random_id(),
            sid: sid.map(str::to_owned),
            events: json!({ BACKCHANNEL_LOGOUT_EVENT: {} }),
            nonce: None,
        }
    }

    /// A logout token (`typ: logout+jwt`) carrying `claims`.
    pub fn sign_logout(&self, claims: &LogoutClaims) -> String {
        self.key.sign(LOGOUT_TOKEN_TYP, claims)
    }

    /// A builder for a guard trusting this issuer's key source (EdDSA only).
    pub fn builder(&self, audience: &str) -> GuardBuilder {
        Guard::builder(&self.issuer, audience)
            .key_source(self.keys.clone())
            .algorithms(&[crate::Algorithm::EdDSA])
    }

    /// A guard for `audience` trusting this issuer.
    pub async fn guard(&self, audience: &str) -> Guard {
        self.builder(audience).connect().await.expect("a guard over a local key")
    }
}
