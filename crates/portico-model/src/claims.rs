//! The access-token claims (RFC 9068 §2.2), one definition for minting and verifying: the type
//! lives in `portico-claims`, which `portico-guard` shares.

pub use portico_claims::{AccessClaims, Actor};
