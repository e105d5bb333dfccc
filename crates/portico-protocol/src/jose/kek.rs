//! The key-encryption key (KEK) and the keys derived from it, one per purpose (HKDF-SHA256,
//! RFC 5869): private signing keys and TOTP secrets are sealed with AES-256-GCM under keys of
//! their own (a TOTP secret bound to its user as associated data, so a writer to the database
//! cannot move one account's authenticator to another), client secrets and recovery codes are
//! stored as HMAC-SHA256 under keys of their own. No key serves two purposes.
//!
//! Values stored before per-purpose keys ("v1": sealed under the KEK itself, client secrets and
//! recovery codes under one derived MAC key) still open and verify; everything written now is
//! "v2", marked by that prefix.
//!
//! Client secrets that Portico accepts carry at least 256 bits of randomness or 32 characters,
//! so a fast keyed hash is the right way to store them; passwords use argon2id instead.

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use aws_lc_rs::{hkdf, hmac};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use std::path::Path;

pub struct Kek {
    signing_keys: LessSafeKey,
    totp: LessSafeKey,
    client_secrets: hmac::Key,
    recovery_codes: hmac::Key,
    audit_chain: [u8; 32],
    /// A value every holder of the same KEK computes alike, stored once per deployment: a process
    /// started with another key is refused before it seals or hashes anything.
    check: String,
    handle_mac: hmac::Key,
    dpop_nonces: hmac::Key,
    refresh_successors: hmac::Key,
    /// v1: the KEK itself as the AEAD key (private keys, TOTP secrets), and the one MAC key that
    /// hashed client secrets and recovery codes alike. Read only.
    v1_aead: LessSafeKey,
    v1_secret_mac: hmac::Key,
}

/// The prefix of everything sealed or hashed under a per-purpose key.
const V2: &str = "v2:";

/// HKDF's output length: 32 bytes.
struct Len32;
impl hkdf::KeyType for Len32 {
    fn len(&self) -> usize {
        32
    }
}

/// The key for `purpose`: HKDF-SHA256 of the KEK, a fixed salt, the purpose as info.
fn derive(prk: &hkdf::Prk, purpose: &str) -> [u8; 32] {
    let mut out = [0u8; 32];
    prk.expand(&[purpose.as_bytes()], Len32)
        .and_then(|okm| okm.fill(&mut out))
        .expect("32 bytes is a valid HKDF-SHA256 length");
    out
}

fn aead_key(raw: &[u8; 32]) -> LessSafeKey {
    LessSafeKey::new(UnboundKey::new(&AES_256_GCM, raw).expect("32-byte key"))
}

impl std::fmt::Debug for Kek {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Kek([redacted])")
    }
}

#[derive(Debug, thiserror::Error)]
pub enum KekError {
    #[error("key_encryption_key must be 32 bytes in base64")]
    BadKey,
    #[error("cannot read or write the key file {path}: {source}")]
    Io { path: String, source: std::io::Error },
    #[error("a stored private key does not decrypt under this key-encryption key")]
    Decrypt,
}

impl Kek {
    pub fn from_bytes(raw: &[u8; 32]) -> Self {
        let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, b"portico key-encryption key v2").extract(raw);
        let mac = |purpose: &str| hmac::Key::new(hmac::HMAC_SHA256, &derive(&prk, purpose));
        let v1 = hmac::Key::new(hmac::HMAC_SHA256, raw);
        let v1_mac_key = hmac::sign(&v1, b"portico client-secret hashing v1");
        // Tenant handles keep their derivation: links in flight stay valid across the upgrade.
        let handle_key = hmac::sign(&v1, b"portico tenant handles v1");
        Self {
            signing_keys: aead_key(&derive(&prk, "signing-key sealing")),
            totp: aead_key(&derive(&prk, "totp-secret sealing")),
            client_secrets: mac("client-secret hashing"),
            recovery_codes: mac("recovery-code hashing"),
            dpop_nonces: mac("dpop nonces"),
            refresh_successors: mac("refresh-token successors"),
            audit_chain: derive(&prk, "audit-chain keying"),
            check: crate::random::hex(&derive(&prk, "key check value")),
            handle_mac: hmac::Key::new(hmac::HMAC_SHA256, handle_key.as_ref()),
            v1_aead: aead_key(raw),
            v1_secret_mac: hmac::Key::new(hmac::HMAC_SHA256, v1_mac_key.as_ref()),
        }
    }

    pub fn from_base64(text: &str) -> Result<Self, KekError> {
        let raw = STANDARD.decode(text.trim()).map_err(|_| KekError::BadKey)?;
        let raw: [u8; 32] = raw.try_into().map_err(|_| KekError::BadKey)?;
        Ok(Self::from_bytes(&raw))
    }

    /// Loads `data_dir/kek`, or creates it (mode 0600) with 32 random bytes.
    pub fn load_or_create(data_dir: &Path) -> Result<Self, KekError> {
        let path = data_dir.join("kek");
        let io = |source| KekError::Io {
            path: path.display().to_string(),
            source,
        };
        match std::fs::read_to_string(&path) {
            Ok(text) => Self::from_base64(&text),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let mut dir = std::fs::DirBuilder::new();
                dir.recursive(true);
                #[cfg(unix)]
                std::os::unix::fs::DirBuilderExt::mode(&mut dir, 0o700);
                dir.create(data_dir).map_err(io)?;
                let raw = crate::random::bytes::<32>();
                let mut opts = std::fs::OpenOptions::new();
                opts.write(true).create_new(true);
                #[cfg(unix)]
                std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
                use std::io::Write;
                let mut f = opts.open(&path).map_err(io)?;
                f.write_all(STANDARD.encode(raw).as_bytes()).map_err(io)?;
                f.sync_all().map_err(io)?;
                Ok(Self::from_bytes(&raw))
            }
            Err(e) => Err(io(e)),
        }
    }

    /// Seals a private signing key, bound to its key id.
    pub fn seal_signing_key(&self, kid: &str, plain: &[u8]) -> String {
        format!("{V2}{}", seal(&self.signing_keys, kid, plain))
    }

    pub fn open_signing_key(&self, kid: &str, sealed: &str) -> Result<Vec<u8>, KekError> {
        match sealed.strip_prefix(V2) {
            Some(v2) => open(&self.signing_keys, kid, v2),
            None => open(&self.v1_aead, kid, sealed),
        }
    }

    /// Seals a user's TOTP secret, bound to that user: it opens for no other account.
    pub fn seal_totp(&self, user: &str, plain: &[u8]) -> String {
        format!("{V2}{}", seal(&self.totp, &format!("totp:{user}"), plain))
    }

    /// Whether a sealed or hashed value predates per-purpose keys.
    pub fn is_v1(stored: &str) -> bool {
        !stored.starts_with(V2)
    }

    pub fn open_totp(&self, user: &str, sealed: &str) -> Result<Vec<u8>, KekError> {
        match sealed.strip_prefix(V2) {
            Some(v2) => open(&self.totp, &format!("totp:{user}"), v2),
            None => open(&self.v1_aead, "totp", sealed),
        }
    }

    /// The stored form of a client secret.
    pub fn hash_client_secret(&self, secret: &str) -> String {
        format!("{V2}{}", crate::random::hex(hmac::sign(&self.client_secrets, secret.as_bytes()).as_ref()))
    }

    /// Checks a presented client secret against its stored hash, in constant time.
    pub fn verify_client_secret(&self, presented: &str, stored: &str) -> bool {
        let (key, hex) = match stored.strip_prefix(V2) {
            Some(hex) => (&self.client_secrets, hex),
            None => (&self.v1_secret_mac, stored),
        };
        let Some(stored) = unhex(hex) else { return false };
        hmac::verify(key, presented.as_bytes(), &stored).is_ok()
    }

    /// The stored form of a recovery code (normalized by the caller).
    pub fn hash_recovery_code(&self, code: &str) -> String {
        format!("{V2}{}", crate::random::hex(hmac::sign(&self.recovery_codes, code.as_bytes()).as_ref()))
    }

    /// What a recovery code made before per-purpose keys was stored as, to find and spend it.
    pub fn v1_recovery_code_hash(&self, code: &str) -> String {
        crate::random::hex(hmac::sign(&self.v1_secret_mac, code.as_bytes()).as_ref())
    }

    /// The key of the audit log's hash chain (the store keys each record's hash with it).
    pub fn audit_chain_key(&self) -> &[u8; 32] {
        &self.audit_chain
    }

    /// The key-check value the store records for the deployment (derived one-way from the KEK;
    /// it reveals nothing of it).
    pub fn check_value(&self) -> &str {
        &self.check
    }

    /// HMAC-SHA256 under the key for DPoP nonces (RFC 9449 §8): every node computes the same, so
    /// a nonce one node gave is good at every other.
    pub fn dpop_nonce_tag(&self, data: &[u8]) -> hmac::Tag {
        hmac::sign(&self.dpop_nonces, data)
    }

    /// The successor of a refresh token under a product's reuse grace: HMAC-SHA256 of the token
    /// under a key of its own, base64url (as long as a random token). Only a holder of the KEK
    /// computes it, so the successor need not be stored to be answered again; every node computes
    /// the same.
    pub fn refresh_successor(&self, parent: &str) -> String {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(hmac::sign(&self.refresh_successors, parent.as_bytes()).as_ref())
    }

    /// HMAC-SHA256 under the key for tenant handles (every node sharing the KEK derives the same).
    pub fn handle_tag(&self, data: &[u8]) -> hmac::Tag {
        hmac::sign(&self.handle_mac, data)
    }
}

/// AES-256-GCM with a random nonce, `context` as associated data; base64 of nonce ‖ ciphertext.
fn seal(key: &LessSafeKey, context: &str, plain: &[u8]) -> String {
    let nonce_bytes = crate::random::bytes::<NONCE_LEN>();
    let mut buf = plain.to_vec();
    key.seal_in_place_append_tag(Nonce::assume_unique_for_key(nonce_bytes), Aad::from(context.as_bytes()), &mut buf)
        .expect("AES-GCM seals");
    let mut out = nonce_bytes.to_vec();
    out.extend_from_slice(&buf);
    STANDARD.encode(out)
}

fn open(key: &LessSafeKey, context: &str, sealed: &str) -> Result<Vec<u8>, KekError> {
    let raw = STANDARD.decode(sealed).map_err(|_| KekError::Decrypt)?;
    if raw.len() < NONCE_LEN {
        return Err(KekError::Decrypt);
    }
    let (nonce, rest) = raw.split_at(NONCE_LEN);
    let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| KekError::Decrypt)?;
    let mut buf = rest.to_vec();
    let plain = key
        .open_in_place(nonce, Aad::from(context.as_bytes()), &mut buf)
        .map_err(|_| KekError::Decrypt)?;
    Ok(plain.to_vec())
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    (0..s.len())
        .step_by(2)
        .map(|i| s.get(i..i + 2).and_then(|b| u8::from_str_radix(b, 16).ok()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_purpose_has_its_own_key_and_a_totp_secret_opens_for_its_user_only() {
        let kek = Kek::from_bytes(&[7; 32]);
        let key = kek.seal_signing_key("kid-1", b"pkcs8");
        assert_eq!(kek.open_signing_key("kid-1", &key).unwrap(), b"pkcs8");
        assert!(kek.open_signing_key("kid-2", &key).is_err(), "bound to its key id");
        let totp = kek.seal_totp("usr_a", b"secret");
        assert_eq!(kek.open_totp("usr_a", &totp).unwrap(), b"secret");
        assert!(kek.open_totp("usr_b", &totp).is_err(), "moved to another account, it opens no more");
        // A value sealed for one purpose does not open as another.
        let as_totp = key.replace(V2, "");
        assert!(open(&kek.totp, "kid-1", &as_totp).is_err());
        assert!(open(&kek.signing_keys, "totp:usr_a", &totp.replace(V2, "")).is_err());
        // One input, two purposes, two different stored forms.
        assert_ne!(kek.hash_client_secret("x".repeat(32).as_str()), kek.hash_recovery_code("x".repeat(32).as_str()));
        assert!(kek.verify_client_secret("s3cret", &kek.hash_client_secret("s3cret")));
        assert!(!kek.verify_client_secret("s3cret", &kek.hash_recovery_code("s3cret").replace(V2, "")));
        assert!(!Kek::from_bytes(&[8; 32]).verify_client_secret("s3cret", &kek.hash_client_secret("s3cret")));
    }

    #[test]
    fn values_stored_before_per_purpose_keys_still_open_and_verify() {
        let raw = [9u8; 32];
        let kek = Kek::from_bytes(&raw);
        // As v1 wrote them: the KEK itself sealing, one derived MAC key hashing.
        let v1_key = seal(&aead_key(&raw), "kid-1", b"pkcs8");
        let v1_totp = seal(&aead_key(&raw), "totp", b"secret");
        assert_eq!(kek.open_signing_key("kid-1", &v1_key).unwrap(), b"pkcs8");
        assert_eq!(kek.open_totp("usr_any", &v1_totp).unwrap(), b"secret");
        let v1_hash = crate::random::hex(hmac::sign(&kek.v1_secret_mac, b"s3cret").as_ref());
        assert!(kek.verify_client_secret("s3cret", &v1_hash));
        assert_eq!(kek.v1_recovery_code_hash("s3cret"), v1_hash);
    }
}
