//! The policy gate: the one function that decides whether a user token may exist.
//!
//! Every path that mints a user's token — authorization (the code), code redemption, refresh,
//! hand-off creation (for the target product) and redemption, every token exchange — gathers the
//! facts below and calls [`admit`]. A rule added here holds on every path at once; a rule checked
//! on one path and missing on another is the bug class this function exists to prevent.

use crate::concepts::{Client, Grant, Product, Tenant, User};
use crate::ids::TenantId;
use crate::policy::require_active_grant;

/// The `amr` values (RFC 8176) that count as a second factor: a one-time code (`otp`), a
/// hardware-bound key such as a passkey (`hwk`), or a method that is multi-factor by itself (`mfa`).
pub const SECOND_FACTORS: [&str; 3] = ["otp", "hwk", "mfa"];

/// Whether a sign-in with these `amr` values passed a second factor.
pub fn is_multi_factor(amr: &[String]) -> bool {
    amr.iter().any(|a| SECOND_FACTORS.contains(&a.as_str()))
}

/// Whether every space-separated value of `wanted` is one of `given`'s.
pub fn scope_covers(given: &str, wanted: &str) -> bool {
    wanted.split(' ').filter(|w| !w.is_empty()).all(|w| crate::Scope::has(given, w))
}

/// Everything the gate decides on, as the path read it.
#[derive(Clone, Copy, Debug)]
pub struct MintFacts<'a> {
    /// The user as the store has them now (`None`: no such user).
    pub user: Option<&'a User>,
    /// The user's grants for `product` (any status).
    pub grants: &'a [Grant],
    pub product: &'a Product,
    /// The tenant the token will name.
    pub tenant: Option<&'a TenantId>,
    /// The tenants registered now.
    pub tenants: &'a [Tenant],
    /// The client the token is for; `None` only where it is not known yet (a hand-off code is
    /// made before its target's client redeems it — the gate runs again then).
    pub client: Option<&'a Client>,
    /// Whether the session the token comes from is still live: the SSO session, the product
    /// session and token family of a code or refresh token, the subject token's family.
    pub session_live: bool,
    /// When and how the user signed in (the session's, the code's, the subject token's).
    pub auth_time: i64,
    pub amr: &'a [String],
    /// This request's `acr` preference is met only by a second factor the session lacks: step up.
    pub acr_mfa_requested: bool,
    /// The scope the token will carry, and what the user consented to for (client, product).
    pub scope: &'a str,
    pub consented: Option<&'a str>,
    pub now: i64,
}

/// Why the gate said no. Each path answers it as its protocol says.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("the user is not active")]
    UserInactive,
    #[error("the session has ended")]
    SessionEnded,
    #[error("the tenant no longer exists")]
    UnknownTenant,
    #[error("no active grant for this product and tenant")]
    NoGrant,
    #[error("the product asks for a fresh sign-in")]
    FreshSignInRequired,
    #[error("the product requires a second factor")]
    SecondFactorRequired,
    #[error("the user has not consented to this client for this product")]
    ConsentRequired,
}

impl Refusal {
    /// What the refusal says to the client (an RFC 6749 `error_description`).
    pub fn description(self) -> &'static str {
        match self {
            Refusal::UserInactive => "the user is not active",
            Refusal::SessionEnded => "the user's session has ended",
            Refusal::UnknownTenant => "the organization does not exist",
            Refusal::NoGrant => "the user has no active grant for this product and organization",
            Refusal::FreshSignInRequired => "the product requires a fresh sign-in",
            Refusal::SecondFactorRequired => "the product requires a second factor the sign-in did not pass",
            Refusal::ConsentRequired => "the user has not consented to this client for this product",
        }
    }

    /// A stable name for audit events and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Refusal::UserInactive => "user_inactive",
            Refusal::SessionEnded => "session_ended",
            Refusal::UnknownTenant => "unknown_tenant",
            Refusal::NoGrant => "no_grant",
            Refusal::FreshSignInRequired => "fresh_sign_in_required",
            Refusal::SecondFactorRequired => "second_factor_required",
            Refusal::ConsentRequired => "consent_required",
        }
    }
}

/// Decides whether a token of `product` (and tenant) may be minted for the user now; the grant
/// whose roles it will carry, or the first rule it breaks, in this order: an active user, a live
/// session, a tenant that exists, an active grant (invariant 3), the product's session lifetime,
/// its second-factor policy (or the request's), and — for a client that is not first-party — the
/// user's consent to that client for that product, covering the scope.
pub fn admit<'g>(f: &MintFacts<'g>) -> Result<&'g Grant, Refusal> {
    if !f.user.is_some_and(User::is_active) {
        return Err(Refusal::UserInactive);
    }
    if !f.session_live {
        return Err(Refusal::SessionEnded);
    }
    if f.tenant.is_some_and(|t| !f.tenants.iter().any(|x| &x.id == t)) {
        return Err(Refusal::UnknownTenant);
    }
    let grant = require_active_grant(f.grants, f.product, f.tenant, f.now).map_err(|_| Refusal::NoGrant)?;
    if f.product.needs_fresh_login(f.auth_time, f.now) {
        return Err(Refusal::FreshSignInRequired);
    }
    let wants_mfa = f.product.mfa == crate::concepts::MfaPolicy::Required || f.acr_mfa_requested;
    if wants_mfa && !is_multi_factor(f.amr) {
        return Err(Refusal::SecondFactorRequired);
    }
    if f.client.is_some_and(|c| !c.first_party) && !f.consented.is_some_and(|c| scope_covers(c, f.scope)) {
        return Err(Refusal::ConsentRequired);
    }
    Ok(grant)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::concepts::*;
    use crate::ids::*;

    use crate::policy::tests::product as product_of;

    fn product() -> Product {
        product_of("crm", true)
    }

    fn client(first_party: bool) -> Client {
        Client {
            first_party,
            ..crate::policy::tests::client("crm", &[])
        }
    }

    /// The facts of one mint, owned, so a test can change any of them.
    struct Setup {
        user: Option<User>,
        grants: Vec<Grant>,
        product: Product,
        tenant: Option<TenantId>,
        tenants: Vec<Tenant>,
        client: Option<Client>,
        session_live: bool,
        amr: Vec<String>,
        acr_mfa_requested: bool,
        scope: String,
        consented: Option<String>,
    }

    /// Ada, active, signed in with a password 100 s ago, with a grant in Acme, asking a
    /// first-party client of CRM for `openid` — and `change` applied.
    fn with(change: impl FnOnce(&mut Setup)) -> Result<(), Refusal> {
        let acme = TenantId::new("ten_a");
        let user = User {
            id: UserId::new("usr_1"),
            email: "a@example.test".into(),
            email_verified: true,
            name: String::new(),
            status: UserStatus::Active,
            created_at: 0,
        };
        let mut s = Setup {
            grants: vec![Grant {
                grantee: Grantee::User(user.id.clone()),
                product: ProductSlug::new("crm"),
                scope: GrantScope::One(acme.clone()),
                roles: vec![],
                status: GrantStatus::Active,
                granted_by: "test".into(),
                granted_at: 0,
                expires_at: None,
            }],
            user: Some(user),
            product: product(),
            tenants: vec![Tenant {
                id: acme.clone(),
                slug: "acme".into(),
                name: "Acme".into(),
                domains: vec![],
            }],
            tenant: Some(acme),
            client: Some(client(true)),
            session_live: true,
            amr: vec!["pwd".into()],
            acr_mfa_requested: false,
            scope: "openid".into(),
            consented: None,
        };
        change(&mut s);
        let f = MintFacts {
            user: s.user.as_ref(),
            grants: &s.grants,
            product: &s.product,
            tenant: s.tenant.as_ref(),
            tenants: &s.tenants,
            client: s.client.as_ref(),
            session_live: s.session_live,
            auth_time: 100,
            amr: &s.amr,
            acr_mfa_requested: s.acr_mfa_requested,
            scope: &s.scope,
            consented: s.consented.as_deref(),
            now: 200,
        };
        admit(&f).map(|_| ())
    }

    #[test]
    fn admits_an_active_user_with_a_grant_and_refuses_each_broken_rule() {
        assert_eq!(with(|_| {}), Ok(()));
        assert_eq!(with(|s| s.user = None), Err(Refusal::UserInactive));
        assert_eq!(with(|s| s.user.as_mut().unwrap().status = UserStatus::Disabled), Err(Refusal::UserInactive));
        assert_eq!(with(|s| s.session_live = false), Err(Refusal::SessionEnded));
        assert_eq!(with(|s| s.tenants.clear()), Err(Refusal::UnknownTenant));
        assert_eq!(with(|s| s.grants.clear()), Err(Refusal::NoGrant));
        assert_eq!(with(|s| s.grants[0].status = GrantStatus::Revoked), Err(Refusal::NoGrant));
        assert_eq!(with(|s| s.tenant = None), Err(Refusal::NoGrant));
        // A product's absolute session lifetime: 100 s after the sign-in is too late for 100 s.
        assert_eq!(with(|s| s.product.session_absolute = Some(100)), Err(Refusal::FreshSignInRequired));
        assert_eq!(with(|s| s.product.session_absolute = Some(101)), Ok(()));
        assert_eq!(with(|s| s.product.mfa = MfaPolicy::Required), Err(Refusal::SecondFactorRequired));
        assert_eq!(with(|s| s.acr_mfa_requested = true), Err(Refusal::SecondFactorRequired));
        for factor in SECOND_FACTORS {
            let passed = with(|s| {
                s.product.mfa = MfaPolicy::Required;
                s.amr.push(factor.into());
            });
            assert_eq!(passed, Ok(()), "{factor}");
        }
        // A third-party client needs the user's consent, covering the whole scope.
        assert_eq!(with(|s| s.client = Some(client(false))), Err(Refusal::ConsentRequired));
        let partial = with(|s| {
            s.client = Some(client(false));
            s.scope = "openid email".into();
            s.consented = Some("email profile".into());
        });
        assert_eq!(partial, Err(Refusal::ConsentRequired));
        let covered = with(|s| {
            s.client = Some(client(false));
            s.scope = "openid email".into();
            s.consented = Some("email openid profile".into());
        });
        assert_eq!(covered, Ok(()));
        // Not known yet (a hand-off code being made): consent waits for the redeeming client.
        assert_eq!(with(|s| s.client = None), Ok(()));
    }
}
