//! Portico's concepts (users, products, clients, tenants, grants) and the policy that decides who
//! may get which token, as plain types and pure functions. Nothing here knows HTTP or SQL.

pub mod admin;
pub mod amr;
pub mod claims;
pub mod concepts;
pub mod domains;
pub mod gate;
pub mod ids;
pub mod policy;
pub mod scope;
pub mod secret;
pub mod spec;

pub use amr::{Acr, AcrOutcome, AcrRequest, Amr};
pub use claims::{AccessClaims, Actor};
pub use concepts::*;
pub use gate::{MintFacts, Refusal, admit};
pub use ids::*;
pub use policy::*;
pub use scope::Scope;
pub use secret::Secret;
