//! JOSE that the issuer and `portico-guard` share, so both read keys by one set of rules: a JWK
//! Set from a client (`private_key_jwt`, RFC 7523) or from the issuer (a product verifying access
//! tokens).

pub mod dpop;
pub mod fetch;
pub mod jwks;
