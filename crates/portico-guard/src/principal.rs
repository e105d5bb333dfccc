//! Who is calling: the verified access token as typed fields, and the checks a route makes on it.

use crate::refusal::Refusal;
use portico_claims::AccessClaims;
use std::sync::Arc;

/// The caller, from a verified access token for this product.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Principal {
    /// The user's id (the same at every product of the suite), or the client's id for a service.
    pub sub: String,
    /// The client the token was issued to.
    pub client_id: String,
    /// The one tenant the token is for (its stable opaque id, `org_id` — not the rotating `th_…`
    /// handle Portico puts in its own URLs), if the product has tenants.
    pub tenant: Option<String>,
    /// The tenant's display name.
    pub tenant_name: Option<String>,
    /// True when the tenant was entered through an all-tenants grant (an operator).
    pub all_tenants: bool,
    /// Roles at this product (and tenant).
    pub roles: Vec<String>,
    /// Permissions those roles carry.
    pub permissions: Vec<String>,
    /// Granted scopes.
    pub scopes: Vec<String>,
    /// The product session, for a user's token.
    pub sid: Option<String>,
    /// The authentication context class met.
    pub acr: Option<String>,
    /// The authentication methods used.
    pub amr: Vec<String>,
    /// When the user authenticated.
    pub auth_time: Option<i64>,
    /// When the token expires.
    pub expires_at: i64,
    claims: Arc<AccessClaims>,
}

impl Principal {
    pub(crate) fn of(claims: AccessClaims) -> Self {
        Principal {
            sub: claims.sub.clone(),
            client_id: claims.client_id.clone(),
            tenant: claims.org_id.clone(),
            tenant_name: claims.org_name.clone(),
            all_tenants: claims.all_tenants == Some(true),
            roles: claims.roles.clone(),
            permissions: claims.permissions.clone(),
            scopes: claims.scope.split(' ').filter(|s| !s.is_empty()).map(str::to_owned).collect(),
            sid: claims.sid.clone(),
            acr: claims.acr.clone(),
            amr: claims.amr.clone().unwrap_or_default(),
            auth_time: claims.auth_time,
            expires_at: claims.exp,
            claims: Arc::new(claims),
        }
    }

    /// Every verified claim, as the token carried them (for `request.jwt.claims`).
    pub fn claims(&self) -> &AccessClaims {
        &self.claims
    }

    /// Whether the token carries `permission`.
    pub fn has_permission(&self, permission: &str) -> bool {
        self.permissions.iter().any(|p| p == permission)
    }

    /// Refuses (403) unless the token carries `permission`.
    pub fn require_permission(&self, permission: &str) -> Result<&Self, Refusal> {
        if self.has_permission(permission) {
            Ok(self)
        } else {
            Err(Refusal::forbidden(format!("permission {permission}")))
        }
    }

    /// Refuses (403, naming the scope in the challenge) unless `scope` was granted.
    pub fn require_scope(&self, scope: &str) -> Result<&Self, Refusal> {
        if self.scopes.iter().any(|s| s == scope) {
            Ok(self)
        } else {
            Err(Refusal::Forbidden {
                missing: format!("scope {scope}"),
                scope: Some(scope.to_owned()),
            })
        }
    }

    /// Refuses (403) unless the session met one of `acceptable` (e.g. `urn:portico:acr:mfa`).
    pub fn require_acr(&self, acceptable: &[&str]) -> Result<&Self, Refusal> {
        match &self.acr {
            Some(acr) if acceptable.contains(&acr.as_str()) => Ok(self),
            _ => Err(Refusal::forbidden(format!("acr {}", acceptable.join(" ")))),
        }
    }

    /// Refuses (403) unless the token is for the tenant `org_id` (the token's stable tenant id):
    /// the gate for a route that carries a tenant (`/tenants/{tenant}/…`). A token without a
    /// tenant passes no tenant gate.
    pub fn require_tenant(&self, org_id: &str) -> Result<&Self, Refusal> {
        match &self.tenant {
            Some(t) if t == org_id => Ok(self),
            _ => Err(Refusal::forbidden("tenant")),
        }
    }
}
