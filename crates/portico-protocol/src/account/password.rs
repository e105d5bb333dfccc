//! Password hashing with argon2id (OWASP parameters: m=19 MiB, t=2, p=1), run on the blocking
//! pool so a wave of logins never stalls the async workers. Unknown emails are checked against a
//! dummy hash so both answers take the same time.
//!
//! Off the async workers is not enough on a small machine: a storm of logins would start one
//! hash per request on the blocking pool and the CPU would go to hashing, with token and JWKS
//! requests queued behind it. So at most one hash per core but one runs at a time (at least one);
//! the rest wait their turn, and the remaining core serves everything else.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use std::sync::OnceLock;
use tokio::sync::Semaphore;

/// Hashes (and strength estimates) allowed to run at once: all cores but one, at least one.
fn hashing_slots() -> &'static Semaphore {
    static SLOTS: OnceLock<Semaphore> = OnceLock::new();
    SLOTS.get_or_init(|| {
        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        Semaphore::new(cores.saturating_sub(1).max(1))
    })
}

/// Runs `work` (an argon2 computation, a strength estimate) on the blocking pool once a slot is
/// free.
pub(crate) async fn cpu_bound<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> Option<T> {
    let _slot = hashing_slots().acquire().await.ok()?;
    tokio::task::spawn_blocking(work).await.ok()
}

/// OWASP's argon2id parameters: 19 MiB, 2 passes, 1 lane.
const M_COST: u32 = 19_456;
const T_COST: u32 = 2;
const P_COST: u32 = 1;

fn argon() -> Argon2<'static> {
    Argon2::new(
        Algorithm::Argon2id,
        Version::V0x13,
        Params::new(M_COST, T_COST, P_COST, None).expect("valid params"),
    )
}

/// Whether a stored hash was made otherwise than Portico hashes now (another algorithm, version or
/// cost): it is replaced at the next successful sign-in.
pub fn needs_rehash(stored: &str) -> bool {
    let Ok(h) = PasswordHash::new(stored) else { return true };
    let current = h.algorithm.as_str() == Algorithm::Argon2id.as_ref()
        && h.version == Some(Version::V0x13 as u32)
        && Params::try_from(&h).is_ok_and(|p| (p.m_cost(), p.t_cost(), p.p_cost()) == (M_COST, T_COST, P_COST));
    !current
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
    cpu_bound(move || {
        let real = stored.is_some();
        let text = stored.unwrap_or_else(|| dummy().to_owned());
        let ok = PasswordHash::new(&text).is_ok_and(|h| argon().verify_password(password.as_bytes(), &h).is_ok());
        ok && real
    })
    .await
    .unwrap_or(false)
}

pub async fn hash_async(password: String) -> String {
    cpu_bound(move || hash(&password)).await.expect("hashing task")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(alg: Algorithm, m: u32, t: u32) -> String {
        let salt = SaltString::encode_b64(&[7u8; 16]).expect("salt");
        Argon2::new(alg, Version::V0x13, Params::new(m, t, 1, None).unwrap())
            .hash_password(b"pw", &salt)
            .unwrap()
            .to_string()
    }

    #[test]
    fn only_todays_parameters_are_kept() {
        assert!(!needs_rehash(&hash("pw")));
        assert!(needs_rehash(&with(Algorithm::Argon2id, 4096, 3)), "weaker memory cost");
        assert!(needs_rehash(&with(Algorithm::Argon2id, M_COST, 1)), "fewer passes");
        assert!(needs_rehash(&with(Algorithm::Argon2i, M_COST, T_COST)), "another variant");
        assert!(needs_rehash("not a PHC string"));
    }
}
