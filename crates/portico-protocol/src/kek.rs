//! The key-encryption key: private signing keys are stored encrypted under it (AES-256-GCM),
//! and client secrets are stored as HMAC-SHA256 under a key derived from it.
//!
//! Client secrets that Portico accepts carry at least 256 bits of randomness or 32 characters,
//! so a fast keyed hash is the right way to store them; passwords use argon2id instead.

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use aws_lc_rs::hmac;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use std::path::Path;

pub struct Kek {
    aead: LessSafeKey,
    secret_mac: hmac::Key,
    handle_mac: hmac::Key,
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
        let aead = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, raw).expect("32-byte key"));
        let derive = hmac::Key::new(hmac::HMAC_SHA256, raw);
        let mac_key = hmac::sign(&derive, b"portico client-secret hashing v1");
        let handle_key = hmac::sign(&derive, b"portico tenant handles v1");
        Self {
            aead,
            secret_mac: hmac::Key::new(hmac::HMAC_SHA256, mac_key.as_ref()),
            handle_mac: hmac::Key::new(hmac::HMAC_SHA256, handle_key.as_ref()),
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

    /// Encrypts `plain`, binding it to `context` (the key id) as associated data.
    pub fn seal(&self, context: &str, plain: &[u8]) -> String {
        let nonce_bytes = crate::random::bytes::<NONCE_LEN>();
        let mut buf = plain.to_vec();
        self.aead
            .seal_in_place_append_tag(Nonce::assume_unique_for_key(nonce_bytes), Aad::from(context.as_bytes()), &mut buf)
            .expect("AES-GCM seals");
        let mut out = nonce_bytes.to_vec();
        out.extend_from_slice(&buf);
        STANDARD.encode(out)
    }

    pub fn open(&self, context: &str, sealed: &str) -> Result<Vec<u8>, KekError> {
        let raw = STANDARD.decode(sealed).map_err(|_| KekError::Decrypt)?;
        if raw.len() < NONCE_LEN {
            return Err(KekError::Decrypt);
        }
        let (nonce, rest) = raw.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| KekError::Decrypt)?;
        let mut buf = rest.to_vec();
        let plain = self
            .aead
            .open_in_place(nonce, Aad::from(context.as_bytes()), &mut buf)
            .map_err(|_| KekError::Decrypt)?;
        Ok(plain.to_vec())
    }

    /// The stored form of a client secret.
    pub fn hash_client_secret(&self, secret: &str) -> String {
        crate::random::hex(hmac::sign(&self.secret_mac, secret.as_bytes()).as_ref())
    }

    /// HMAC-SHA256 under the key for tenant handles (every node sharing the KEK derives the same).
    pub fn handle_tag(&self, data: &[u8]) -> hmac::Tag {
        hmac::sign(&self.handle_mac, data)
    }

    /// Checks a presented client secret against its stored hash, in constant time.
    pub fn verify_client_secret(&self, presented: &str, stored_hex: &str) -> bool {
        let Some(stored) = unhex(stored_hex) else { return false };
        hmac::verify(&self.secret_mac, presented.as_bytes(), &stored).is_ok()
    }
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    (0..s.len())
        .step_by(2)
        .map(|i| s.get(i..i + 2).and_then(|b| u8::from_str_radix(b, 16).ok()))
        .collect()
}
