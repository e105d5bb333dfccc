//! Keys and JOSE: the signing key ring and JWKS ([`keys`]), the key-encryption key and what it
//! derives ([`kek`]), and verifying Portico's own access tokens ([`verify`]).

pub mod kek;
pub mod keys;
pub mod verify;
