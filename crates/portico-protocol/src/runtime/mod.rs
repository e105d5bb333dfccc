//! What every endpoint runs on: the [`provider`] (store, issuer, settings, caches), the
//! configuration [`snapshot`], the group-commit [`writer`], and [`random`] values.

pub mod client_keys;
pub mod clock;
pub mod provider;
pub mod random;
pub mod snapshot;
pub mod writer;
