//! What an operator writes to define a product, a client, a tenant or a grant (the suite file's
//! sections; an admin API for clients would take the same), and the rules each must meet on its
//! own. Rules that relate one definition to another (duplicates, unknown products) are the
//! caller's, which knows the whole set.

mod client;
mod product;

pub use client::ClientSpec;
pub use product::{ProductSpec, check_targets};

use serde::Deserialize;

/// A definition that breaks a rule: which field, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldError {
    pub field: &'static str,
    pub message: String,
}

impl FieldError {
    pub fn new(field: &'static str, message: impl Into<String>) -> Self {
        Self {
            field,
            message: message.into(),
        }
    }
}

impl std::fmt::Display for FieldError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "field {}: {}", self.field, self.message)
    }
}

/// Prefixes of the ids Portico makes (users, tenants, tenant handles, sessions, families, links).
pub const RESERVED_ID_PREFIXES: [&str; 7] = [crate::USER_ID_PREFIX, "ten_", "th_", "sso_", "sid_", "fam_", "lgt_"];

/// Parses "10m", "90s", "1h", "2d" into seconds.
pub fn parse_duration(s: &str) -> Option<i64> {
    let s = s.trim();
    let (num, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit())?);
    let n: i64 = num.parse().ok()?;
    let mult = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return None,
    };
    n.checked_mul(mult).filter(|v| *v > 0)
}

/// A product's or tenant's slug: lowercase letters, digits and '-', at most 64.
pub fn valid_slug(s: &str) -> bool {
    !s.is_empty() && s.len() <= 64 && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// A tenant.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TenantSpec {
    pub slug: String,
    pub name: String,
    #[serde(default)]
    pub domains: Vec<String>,
}

impl TenantSpec {
    pub fn check(&self) -> Result<(), FieldError> {
        if !valid_slug(&self.slug) {
            return Err(FieldError::new("slug", "use lowercase letters, digits and '-'"));
        }
        if let Some(bad) = self.domains.iter().find(|d| !crate::domains::valid_domain(d)) {
            return Err(FieldError::new(
                "domains",
                format!("{bad:?} is not a host name like \"acme.example\" (lowercase, no scheme, port or wildcard)"),
            ));
        }
        Ok(())
    }
}

/// A user the operator defines; the password, when given, may be `env:NAME` (the caller resolves it).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserSpec {
    pub email: String,
    pub name: Option<String>,
    pub password: Option<String>,
}

impl UserSpec {
    pub fn check(&self) -> Result<(), FieldError> {
        if !self.email.contains('@') {
            return Err(FieldError::new("email", "not an email address"));
        }
        Ok(())
    }
}

/// A grant of a product's roles to a user (by email) or a client.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GrantSpec {
    pub user: Option<String>,
    pub client: Option<String>,
    pub product: String,
    pub tenant: Option<String>,
    #[serde(default)]
    pub roles: Vec<String>,
    /// RFC 3339 instant after which the grant covers nothing.
    pub expires: Option<String>,
}

impl GrantSpec {
    /// The rules of the grant against its product ([`grant_tenant`], [`grant_roles`]).
    pub fn check(&self, product: &crate::Product, tenant_known: impl Fn(&str) -> bool) -> Result<(), FieldError> {
        grant_tenant(product, self.tenant.as_deref(), tenant_known)?;
        grant_roles(product, &self.roles)
    }
}

/// A grant names a tenant exactly when its product has tenants: one that exists (`tenant_known`
/// says which do) or `*`. The one rule for the suite file and the admin API.
pub fn grant_tenant(product: &crate::Product, tenant: Option<&str>, tenant_known: impl Fn(&str) -> bool) -> Result<(), FieldError> {
    match (tenant, product.tenant_aware) {
        (None, true) => Err(FieldError::new(
            "tenant",
            format!("product {:?} is tenant-aware; name a tenant or \"*\"", product.slug.as_str()),
        )),
        (Some(_), false) => Err(FieldError::new("tenant", format!("product {:?} has no tenants", product.slug.as_str()))),
        (Some(t), true) if t != "*" && !tenant_known(t) => Err(FieldError::new("tenant", format!("unknown tenant {t:?}"))),
        _ => Ok(()),
    }
}

/// A grant gives only roles its product defines.
pub fn grant_roles(product: &crate::Product, roles: &[String]) -> Result<(), FieldError> {
    match roles.iter().find(|r| !product.roles.contains_key(*r)) {
        Some(bad) => Err(FieldError::new("roles", format!("product {:?} has no role {bad:?}", product.slug.as_str()))),
        None => Ok(()),
    }
}
