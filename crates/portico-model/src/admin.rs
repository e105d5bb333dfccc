//! `portico-admin`: Portico's own built-in product. Its audience is `<issuer>/api`; access tokens
//! for it authenticate the admin API (`/api/v1/…`). A suite file grants its roles to people or to
//! automation clients exactly as it grants any product's, and may register clients for it; it
//! cannot redefine the product itself.

use crate::concepts::{MfaPolicy, Product};
use crate::ids::{Audience, ProductSlug};
use std::collections::BTreeMap;

/// The built-in product's slug.
pub const SLUG: &str = "portico-admin";

/// Permissions the admin API checks.
pub const READ_GRANTS: &str = "grants:read";
pub const WRITE_GRANTS: &str = "grants:write";
pub const READ_USERS: &str = "users:read";
pub const DISABLE_USERS: &str = "users:disable";

/// The built-in product for a deployment with this issuer.
pub fn product(issuer: &str) -> Product {
    let mut roles = BTreeMap::new();
    roles.insert(
        "admin".to_owned(),
        vec![READ_GRANTS.to_owned(), WRITE_GRANTS.to_owned(), READ_USERS.to_owned(), DISABLE_USERS.to_owned()],
    );
    roles.insert(
        "grant-manager".to_owned(),
        vec![READ_GRANTS.to_owned(), WRITE_GRANTS.to_owned(), READ_USERS.to_owned()],
    );
    roles.insert("viewer".to_owned(), vec![READ_GRANTS.to_owned(), READ_USERS.to_owned()]);
    Product {
        slug: ProductSlug::new(SLUG),
        name: "Portico administration".to_owned(),
        audience: Audience::new(format!("{issuer}/api")),
        access_token_ttl: 300,
        mfa: MfaPolicy::Optional,
        mfa_enrolment: Default::default(),
        single_session: false,
        tenant_aware: false,
        signup: false,
        handoff_to: vec![],
        exchange_to: vec![],
        session_idle: None,
        session_absolute: None,
        refresh_reuse_grace: 0,
        roles,
    }
}
