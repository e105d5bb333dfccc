//! Signing keys: Ed25519 (EdDSA, the default), ES256 and RS256 for relying parties that need them.
//!
//! A key's life follows from its `activate_at` and its successor's: it is published from creation,
//! signs from `activate_at` until its successor activates, and stays published until the last
//! token it signed has expired (`retention` after the successor's activation). `portico keys
//! rotate` inserts a successor that activates later, so verifiers see it in the JWKS before any
//! token carries it.

use crate::kek::{Kek, KekError};
use crate::random::{self, b64url};
use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rsa::{KeySize, PublicKeyComponents};
use aws_lc_rs::signature::{self, ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair, KeyPair, RsaKeyPair};
use jsonwebtoken::DecodingKey;
use portico_model::SigningAlg;
use portico_store::KeyRow;
use serde::Serialize;
use serde_json::json;
use std::sync::Arc;

enum Signer {
    Ed(Ed25519KeyPair),
    Ec(EcdsaKeyPair),
    Rsa(RsaKeyPair),
}

/// One key with its public JWK and verification key.
pub struct ManagedKey {
    pub kid: String,
    pub alg: SigningAlg,
    pub activate_at: i64,
    pub jwk: serde_json::Value,
    signer: Signer,
    decoding: DecodingKey,
}

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error(transparent)]
    Kek(#[from] KekError),
    #[error("stored key {0} is malformed")]
    Malformed(String),
    #[error("no key signs {0} yet")]
    NoSigningKey(&'static str),
}

/// All keys, as loaded from the store and decrypted.
#[derive(Default)]
pub struct KeyRing {
    keys: Vec<ManagedKey>,
    /// The JWK Set last served, serialized, with the keys it published: the set changes only when
    /// a key activates or retires (or the ring reloads, which starts a new ring), so serving it
    /// is a comparison and a copy, not a JSON document built and written per request.
    served: std::sync::Mutex<Option<(Vec<usize>, Arc<[u8]>)>>,
}

/// Publishes a new signing key of `alg` that signs from `activate_at` (published at once, so
/// relying parties fetch it before it signs), audited as `by`'s rotation. The one door for a
/// rotation, from the command line or elsewhere.
pub async fn publish(
    store: &portico_store::Store,
    kek: &Kek,
    alg: SigningAlg,
    activate_at: i64,
    by: &str,
    now: i64,
) -> Result<KeyRow, portico_store::StoreError> {
    let row = generate(alg, kek, now, activate_at);
    let event = portico_store::AuditEvent::new(now, "key.rotated", by).data(json!({"kid": row.kid, "alg": row.alg, "activate_at": row.activate_at}));
    let mut tx = store.write().await?;
    tx.insert_key(&row).await?;
    tx.audit(event);
    tx.commit().await?;
    Ok(row)
}

/// A freshly generated key, ready to store.
pub fn generate(alg: SigningAlg, kek: &Kek, now: i64, activate_at: i64) -> KeyRow {
    let rng = aws_lc_rs::rand::SystemRandom::new();
    let pkcs8: Vec<u8> = match alg {
        SigningAlg::EdDSA => Ed25519KeyPair::generate_pkcs8(&rng).expect("keygen").as_ref().to_vec(),
        SigningAlg::ES256 => EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
            .expect("keygen")
            .as_ref()
            .to_vec(),
        SigningAlg::RS256 => {
            let kp = RsaKeyPair::generate(KeySize::Rsa2048).expect("keygen");
            AsDer::<aws_lc_rs::encoding::Pkcs8V1Der>::as_der(&kp).expect("der").as_ref().to_vec()
        }
    };
    let kid = random::id("");
    let (signer, _) = parse(alg, &pkcs8).expect("a key we just made parses");
    KeyRow {
        private_enc: kek.seal_signing_key(&kid, &pkcs8),
        public_jwk: public_jwk(&kid, alg, &signer).to_string(),
        kid,
        alg: alg.as_str().to_owned(),
        created_at: now,
        activate_at,
    }
}

fn parse(alg: SigningAlg, pkcs8: &[u8]) -> Option<(Signer, DecodingKey)> {
    Some(match alg {
        SigningAlg::EdDSA => {
            let kp = Ed25519KeyPair::from_pkcs8(pkcs8).ok()?;
            let x = b64url(kp.public_key().as_ref());
            (Signer::Ed(kp), DecodingKey::from_ed_components(&x).ok()?)
        }
        SigningAlg::ES256 => {
            let kp = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8).ok()?;
            let point = kp.public_key().as_ref();
            let (x, y) = (b64url(&point[1..33]), b64url(&point[33..65]));
            (Signer::Ec(kp), DecodingKey::from_ec_components(&x, &y).ok()?)
        }
        SigningAlg::RS256 => {
            let kp = RsaKeyPair::from_pkcs8(pkcs8).ok()?;
            let c = PublicKeyComponents::<Vec<u8>>::from(kp.public_key());
            let d = DecodingKey::from_rsa_components(&b64url(&c.n), &b64url(&c.e)).ok()?;
            (Signer::Rsa(kp), d)
        }
    })
}

fn public_jwk(kid: &str, alg: SigningAlg, signer: &Signer) -> serde_json::Value {
    match signer {
        Signer::Ed(kp) => json!({"kty": "OKP", "crv": "Ed25519", "x": b64url(kp.public_key().as_ref()), "kid": kid, "alg": alg.as_str(), "use": "sig"}),
        Signer::Ec(kp) => {
            let p = kp.public_key().as_ref();
            json!({"kty": "EC", "crv": "P-256", "x": b64url(&p[1..33]), "y": b64url(&p[33..65]), "kid": kid, "alg": alg.as_str(), "use": "sig"})
        }
        Signer::Rsa(kp) => {
            let c = PublicKeyComponents::<Vec<u8>>::from(kp.public_key());
            json!({"kty": "RSA", "n": b64url(&c.n), "e": b64url(&c.e), "kid": kid, "alg": alg.as_str(), "use": "sig"})
        }
    }
}

impl KeyRing {
    /// Decrypts and parses every stored key.
    pub fn load(rows: &[KeyRow], kek: &Kek) -> Result<Self, KeyError> {
        let mut keys = Vec::with_capacity(rows.len());
        for row in rows {
            let alg = SigningAlg::parse(&row.alg).ok_or_else(|| KeyError::Malformed(row.kid.clone()))?;
            let pkcs8 = kek.open_signing_key(&row.kid, &row.private_enc)?;
            let (signer, decoding) = parse(alg, &pkcs8).ok_or_else(|| KeyError::Malformed(row.kid.clone()))?;
            let jwk = serde_json::from_str(&row.public_jwk).map_err(|_| KeyError::Malformed(row.kid.clone()))?;
            keys.push(ManagedKey {
                kid: row.kid.clone(),
                alg,
                activate_at: row.activate_at,
                jwk,
                signer,
                decoding,
            });
        }
        keys.sort_by_key(|k| k.activate_at);
        Ok(Self {
            keys,
            served: Default::default(),
        })
    }

    /// The algorithms that have no key at all yet.
    pub fn missing_algs(&self) -> Vec<SigningAlg> {
        SigningAlg::ALL.into_iter().filter(|a| !self.keys.iter().any(|k| k.alg == *a)).collect()
    }

    /// The key that signs `alg` at `now`: the latest one activated.
    pub fn signing_key(&self, alg: SigningAlg, now: i64) -> Option<&ManagedKey> {
        self.keys.iter().filter(|k| k.alg == alg && k.activate_at <= now).max_by_key(|k| k.activate_at)
    }

    /// Whether `key` is published at `now`: not yet active, signing, or superseded less than
    /// `retention` seconds ago.
    fn is_published(&self, key: &ManagedKey, now: i64, retention: i64) -> bool {
        let successor = self
            .keys
            .iter()
            .filter(|k| k.alg == key.alg && k.activate_at > key.activate_at && k.activate_at <= now)
            .map(|k| k.activate_at)
            .min();
        successor.is_none_or(|s| now < s + retention)
    }

    /// [`KeyRing::jwks`], serialized, reused while the same keys are published.
    pub fn jwks_bytes(&self, now: i64, retention: i64) -> Arc<[u8]> {
        let published = (0..self.keys.len()).filter(|&i| self.is_published(&self.keys[i], now, retention));
        let mut served = self.served.lock().unwrap_or_else(|p| p.into_inner());
        match &*served {
            // Compared without collecting: a hit allocates nothing.
            Some((keys, bytes)) if keys.iter().copied().eq(published.clone()) => bytes.clone(),
            _ => {
                let bytes: Arc<[u8]> = serde_json::to_vec(&self.jwks(now, retention)).expect("a JWK Set serializes").into();
                *served = Some((published.collect(), bytes.clone()));
                bytes
            }
        }
    }

    /// The JWK Set (RFC 7517) of every published key.
    pub fn jwks(&self, now: i64, retention: i64) -> serde_json::Value {
        let keys: Vec<&serde_json::Value> = self.keys.iter().filter(|k| self.is_published(k, now, retention)).map(|k| &k.jwk).collect();
        json!({ "keys": keys })
    }

    /// The verification key for `kid`, if it is published now.
    pub fn verifier(&self, kid: &str, now: i64, retention: i64) -> Option<(SigningAlg, &DecodingKey)> {
        self.keys
            .iter()
            .find(|k| k.kid == kid && self.is_published(k, now, retention))
            .map(|k| (k.alg, &k.decoding))
    }

    /// Signs `claims` as a compact JWS (RFC 7515 §7.1) with the active key for `alg`.
    pub fn sign<T: Serialize>(&self, alg: SigningAlg, typ: &str, claims: &T, now: i64) -> Result<String, KeyError> {
        let key = self.signing_key(alg, now).ok_or(KeyError::NoSigningKey(alg.as_str()))?;
        let header = json!({"alg": alg.as_str(), "typ": typ, "kid": key.kid});
        let mut out = b64url(header.to_string().as_bytes());
        out.push('.');
        out.push_str(&b64url(&serde_json::to_vec(claims).expect("claims serialize")));
        let sig = match &key.signer {
            Signer::Ed(kp) => kp.sign(out.as_bytes()).as_ref().to_vec(),
            Signer::Ec(kp) => kp.sign(&aws_lc_rs::rand::SystemRandom::new(), out.as_bytes()).expect("sign").as_ref().to_vec(),
            Signer::Rsa(kp) => {
                let mut sig = vec![0; kp.public_modulus_len()];
                kp.sign(&signature::RSA_PKCS1_SHA256, &aws_lc_rs::rand::SystemRandom::new(), out.as_bytes(), &mut sig)
                    .expect("sign");
                sig
            }
        };
        out.push('.');
        out.push_str(&b64url(&sig));
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The kids of the JWK Set as served (the cached bytes), checked against the document built
    /// afresh, so a stale cache fails every assertion on `kids`.
    fn kids(ring: &KeyRing, now: i64, retention: i64) -> Vec<String> {
        let served: serde_json::Value = serde_json::from_slice(&ring.jwks_bytes(now, retention)).expect("JSON");
        assert_eq!(served, ring.jwks(now, retention), "the served bytes are the current set");
        served["keys"]
            .as_array()
            .expect("keys")
            .iter()
            .map(|k| k["kid"].as_str().expect("kid").to_owned())
            .collect()
    }

    #[test]
    fn rotation_publishes_before_signing_and_retires_after_retention() {
        let kek = Kek::from_base64("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=").expect("kek");
        let (old, next) = (generate(SigningAlg::EdDSA, &kek, 0, 0), generate(SigningAlg::EdDSA, &kek, 50, 100));
        let ring = KeyRing::load(&[old.clone(), next.clone()], &kek).expect("load");
        let retention = 600;

        // Before the successor activates: the old key signs, both are published.
        let token = ring.sign(SigningAlg::EdDSA, "JWT", &json!({"sub": "x"}), 60).expect("sign");
        assert!(token.contains(&b64url(json!({"alg": "EdDSA", "typ": "JWT", "kid": old.kid}).to_string().as_bytes())));
        assert_eq!(kids(&ring, 60, retention), [old.kid.clone(), next.kid.clone()]);
        // From its activation the successor signs; the old key stays for the tokens it signed.
        assert_eq!(ring.signing_key(SigningAlg::EdDSA, 100).expect("key").kid, next.kid);
        assert_eq!(kids(&ring, 699, retention), [old.kid.clone(), next.kid.clone()]);
        assert!(ring.verifier(&old.kid, 699, retention).is_some());
        // Once everything it signed has expired, the old key is gone from JWKS and verification.
        assert_eq!(kids(&ring, 700, retention), vec![next.kid.clone()]);
        // While the same keys are published, the same bytes serve (no document per request).
        assert!(Arc::ptr_eq(&ring.jwks_bytes(701, retention), &ring.jwks_bytes(9_999, retention)));
        assert!(ring.verifier(&old.kid, 700, retention).is_none());
    }

    #[test]
    fn keys_stay_encrypted_under_the_kek() {
        let kek = Kek::from_base64("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=").expect("kek");
        let other = Kek::from_base64("AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=").expect("kek");
        let row = generate(SigningAlg::ES256, &kek, 0, 0);
        assert!(KeyRing::load(std::slice::from_ref(&row), &other).is_err(), "another KEK cannot open the key");
        assert!(KeyRing::load(&[row], &kek).is_ok());
    }
}
