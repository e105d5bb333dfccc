//! portico-guard's tests, one binary: each rule attacked from outside, against tokens shaped as
//! Portico's (the testing module's local key), a real JWKS server on loopback, and a real
//! PostgreSQL for the row-level-security helpers and the shared session marks.

mod cache;
mod gates;
mod logout;
mod rls;
mod support;
mod verify;
