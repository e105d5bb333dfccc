//! Password hashing with argon2id (OWASP parameters: m=19 MiB, t=2, p=1), run on the blocking
//! pool so a wave of logins never stalls the async workers. Unknown emails are checked against a
//! dummy hash so both answers take the same time.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use std::sync::OnceLock;

fn argon() -> Argon2<'static> {
    Argon2::new(Algorithm::Argon2id, Version::V0x13, Params::new(19_456, 2, 1, None).expect("valid params"))
}

pub fn hash(password: &str) -> String {
    let salt = SaltString::encode_b64(&crate::random::bytes::<16>()).expect("salt");
    argon().hash_password(password.as_bytes(), &salt).expect("argon2 hashes").to_string()
}

fn dummy() -> &'static str {
    static DUMMY: OnceLock<String> = OnceLock::new();
    DUMMY.get_or_init(|| hash("portico dummy password for unknown users"))
}

/// Verifies `password` against `stored` (or against a dummy hash when there is none) off the
/// async workers. Returns false for the dummy.
pub async fn verify(password: String, stored: Option<String>) -> bool {
    tokio::task::spawn_blocking(move || {
        let real = stored.is_some();
        let text = stored.unwrap_or_else(|| dummy().to_owned());
        let ok = PasswordHash::new(&text).is_ok_and(|h| argon().verify_password(password.as_bytes(), &h).is_ok());
        ok && real
    })
    .await
    .unwrap_or(false)
}

pub async fn hash_async(password: String) -> String {
    tokio::task::spawn_blocking(move || hash(&password)).await.expect("hashing task")
}
