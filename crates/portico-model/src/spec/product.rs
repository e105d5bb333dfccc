//! A product's definition and its rules.

use super::{FieldError, parse_duration, valid_slug};
use crate::{Audience, MfaEnrolment, MfaPolicy, Product, ProductSlug, admin};
use serde::Deserialize;
use std::collections::BTreeMap;

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProductSpec {
    pub slug: String,
    pub name: String,
    pub audience: String,
    pub access_token_ttl: Option<String>,
    pub mfa: Option<MfaPolicy>,
    pub mfa_enrolment: Option<MfaEnrolment>,
    #[serde(default)]
    pub single_session: bool,
    #[serde(default)]
    pub tenant_aware: bool,
    #[serde(default)]
    pub signup: bool,
    #[serde(default)]
    pub handoff_to: Vec<String>,
    #[serde(default)]
    pub exchange_to: Vec<String>,
    #[serde(default)]
    pub roles: BTreeMap<String, Vec<String>>,
    pub session_idle: Option<String>,
    pub session_absolute: Option<String>,
    /// `"5s"`: see `Product::refresh_reuse_grace`.
    pub refresh_reuse_grace: Option<String>,
}

/// The longest access token lifetime a product may set.
const MAX_ACCESS_TOKEN_TTL: i64 = 86_400;

impl ProductSpec {
    /// The product, when the definition meets every rule of its own.
    pub fn check(&self) -> Result<Product, FieldError> {
        if !valid_slug(&self.slug) {
            return Err(FieldError::new("slug", "use lowercase letters, digits and '-'"));
        }
        if self.slug == admin::SLUG {
            return Err(FieldError::new(
                "slug",
                "\"portico-admin\" is Portico's built-in product; grant its roles and register its clients, but do not define it",
            ));
        }
        let aud = url::Url::parse(&self.audience).map_err(|_| FieldError::new("audience", "must be an absolute URI"))?;
        if aud.fragment().is_some() || self.audience == "*" {
            return Err(FieldError::new("audience", "must be an absolute URI without fragment"));
        }
        let ttl = match &self.access_token_ttl {
            None => 600,
            Some(t) => parse_duration(t)
                .filter(|s| *s <= MAX_ACCESS_TOKEN_TTL)
                .ok_or_else(|| FieldError::new("access_token_ttl", format!("{t:?} is not a duration like \"10m\" (at most 1d)")))?,
        };
        if self.signup && self.tenant_aware {
            return Err(FieldError::new(
                "signup",
                "a product with tenants cannot take sign-ups (a tenant admits its own members); set tenant_aware = false or signup = false",
            ));
        }
        if let Some(role) = self
            .roles
            .iter()
            .find(|(role, perms)| role.is_empty() || perms.iter().any(|p| p.is_empty() || p.contains(' ')))
            .map(|(role, _)| role)
        {
            return Err(FieldError::new("roles", format!("role {role:?} has an empty or spaced permission")));
        }
        Ok(Product {
            slug: ProductSlug::new(&self.slug),
            name: self.name.clone(),
            audience: Audience::new(&self.audience),
            access_token_ttl: ttl,
            mfa: self.mfa.unwrap_or_default(),
            mfa_enrolment: self.mfa_enrolment.unwrap_or_default(),
            single_session: self.single_session,
            tenant_aware: self.tenant_aware,
            signup: self.signup,
            handoff_to: self.handoff_to.iter().map(ProductSlug::new).collect(),
            exchange_to: self.exchange_to.iter().map(ProductSlug::new).collect(),
            roles: self.roles.clone(),
            session_idle: session_limit("session_idle", &self.session_idle)?,
            session_absolute: session_limit("session_absolute", &self.session_absolute)?,
            refresh_reuse_grace: match &self.refresh_reuse_grace {
                None => 0,
                Some(t) => parse_duration(t)
                    .filter(|s| *s <= Product::REFRESH_REUSE_GRACE_MAX)
                    .ok_or_else(|| FieldError::new("refresh_reuse_grace", format!("{t:?} is not a duration like \"5s\" (at most 60s)")))?,
            },
        })
    }
}

fn session_limit(field: &'static str, value: &Option<String>) -> Result<Option<i64>, FieldError> {
    match value {
        None => Ok(None),
        Some(t) => parse_duration(t)
            .map(Some)
            .ok_or_else(|| FieldError::new(field, format!("{t:?} is not a duration like \"15m\" or \"12h\""))),
    }
}

/// The products a product's `handoff_to` and `exchange_to` name must exist (`known`) and may not
/// be the built-in admin product.
pub fn check_targets(p: &Product, known: impl Fn(&str) -> bool) -> Result<(), FieldError> {
    for (field, list) in [("handoff_to", &p.handoff_to), ("exchange_to", &p.exchange_to)] {
        if let Some(bad) = list.iter().find(|h| !known(h.as_str()) || h.as_str() == admin::SLUG) {
            return Err(FieldError::new(field, format!("unknown product {:?}", bad.as_str())));
        }
    }
    Ok(())
}
