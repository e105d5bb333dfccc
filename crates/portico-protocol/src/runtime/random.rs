//! The one generator of tokens, codes and ids, and the hash under which bearer values are stored.

use aws_lc_rs::{digest, rand};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// `n` random bytes from the system CSPRNG.
pub fn bytes<const N: usize>() -> [u8; N] {
    let mut out = [0u8; N];
    rand::fill(&mut out).expect("the system random source works");
    out
}

/// An opaque bearer value (code, refresh token, session cookie): 256 random bits, base64url.
pub fn token() -> String {
    URL_SAFE_NO_PAD.encode(bytes::<32>())
}

/// An id with a type prefix (`usr_`, `ten_`, `sid_`): 128 random bits.
pub fn id(prefix: &str) -> String {
    let b = bytes::<16>();
    format!("{prefix}{}", URL_SAFE_NO_PAD.encode(b))
}

/// SHA-256 of a bearer value, hex: what the store keeps instead of the value.
pub fn hash(value: &str) -> String {
    hex(&sha256(value))
}

/// SHA-256 of a value, as bytes (a map key in memory; [`hash`] is its hex for the store).
pub fn sha256(value: &str) -> [u8; 32] {
    let mut out = [0u8; 32];
    out.copy_from_slice(digest::digest(&digest::SHA256, value.as_bytes()).as_ref());
    out
}

pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[(b >> 4) as usize] as char);
        s.push(DIGITS[(b & 15) as usize] as char);
    }
    s
}

pub fn b64url(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}
