//! `grant_type=urn:ietf:params:oauth:grant-type:token-exchange` (RFC 8693), in two forms:
//!
//! - **Hand-off redemption**: `subject_token` is a hand-off code
//!   (`subject_token_type=urn:portico:token-type:handoff`). Only a confidential client of the
//!   code's target product may redeem it, once, within its lifetime, while the user still holds the
//!   grant; it yields that product's own access, refresh and ID tokens and the code's `context`.
//! - **On behalf of a user**: `subject_token` is a user's access token for the calling client's
//!   own product (`…:token-type:access_token`). Allowed only where that product's `exchange_to`
//!   names the target; the result is for the target product only, the same tenant, the roles the
//!   user holds there (narrowed further by `scope` when it names roles), and its `act` claim names
//!   the calling client (§4.1). No refresh or ID token.
//!
//! §2.2.2: "If the request itself is not valid or if either the subject_token or actor_token are
//! invalid for any reason, or are unacceptable based on policy, … the error parameter MUST be the
//! invalid_request error code." A target the client may not reach is `invalid_target`.

use super::issue::{self, UserTokens};
use super::{TokenRequest, TokenResponse};
use crate::error::{ErrorCode, OAuthError, oauth};
use crate::gate;
use crate::handoff::{self, HandoffData};
use crate::provider::Provider;
use crate::random;
use crate::verify::own_user_token;
use portico_model::{Actor, Client, FamilyId, Grant, Sid, TenantId, UserId};
use portico_store::{AuditEvent, Family, ProductSessionStart};

pub const ACCESS_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:access_token";

pub async fn grant(p: &Provider, client: &Client, req: TokenRequest, now: i64) -> Result<TokenResponse, OAuthError> {
    if client.is_public() {
        return Err(oauth!(UnauthorizedClient, "public clients may not use token exchange"));
    }
    if req.actor_token.is_some() {
        return Err(oauth!(InvalidRequest, "actor_token is not supported: the authenticated client is the actor"));
    }
    if req.requested_token_type.as_deref().is_some_and(|t| t != ACCESS_TOKEN_TYPE) {
        return Err(oauth!(InvalidRequest, "only access tokens can be requested"));
    }
    let subject = req
        .subject_token
        .clone()
        .filter(|t| !t.is_empty())
        .ok_or_else(|| oauth!(InvalidRequest, "subject_token is required"))?;
    match req.subject_token_type.as_deref() {
        Some(handoff::TOKEN_TYPE) => redeem_handoff(p, client, &subject, req, now).await,
        Some(ACCESS_TOKEN_TYPE) => on_behalf(p, client, &subject, req, now).await,
        Some(_) => Err(oauth!(InvalidRequest, "unsupported subject_token_type")),
        None => Err(oauth!(InvalidRequest, "subject_token_type is required")),
    }
}

const BAD_CODE: &str = "the hand-off code is invalid, expired, already used or not for this client";

/// Who redeems: the client, from where, when; each refusal is audited as `handoff.refused`.
struct Redeemer<'a> {
    p: &'a Provider,
    client: &'a Client,
    ip: Option<&'a str>,
    now: i64,
}

impl Redeemer<'_> {
    fn refusal(&self, reason: &str, user: Option<&UserId>) -> AuditEvent {
        let actor = user.map_or_else(|| format!("client:{}", self.client.id), |u| u.as_str().to_owned());
        AuditEvent::new(self.now, "handoff.refused", actor)
            .product(self.client.product.as_str())
            .ip(self.ip.map(str::to_owned))
            .data(serde_json::json!({"client_id": self.client.id.as_str(), "reason": reason}))
    }

    /// Refuses the redemption, its audit committed before the answer leaves.
    async fn refuse(&self, mut tx: portico_store::Tx<'_>, reason: &str, user: Option<&UserId>) -> OAuthError {
        tx.audit(self.refusal(reason, user));
        match tx.commit().await {
            Ok(_) => oauth!(InvalidRequest, BAD_CODE).detail(reason.to_owned()),
            Err(e) => OAuthError::from(e),
        }
    }

    /// Spends the code on first presentation, whoever presents it (a code is never good twice);
    /// its data when it is this client's product's and in time. The spending and a refusal's audit
    /// commit together.
    async fn spend(&self, code: &str) -> Result<HandoffData, OAuthError> {
        let mut tx = self.p.store.write().await?;
        let Some(found) = tx.consume_handoff(&random::hash(code), self.now).await? else {
            return Err(self.refuse(tx, "unknown or already redeemed", None).await);
        };
        let data: HandoffData = match serde_json::from_str(&found.data) {
            Ok(data) => data,
            Err(e) => {
                tx.commit().await?;
                return Err(OAuthError::server(e));
            }
        };
        if found.target != self.client.product.as_str() {
            return Err(self.refuse(tx, "redeemed by a client of another product", Some(&data.user_id)).await);
        }
        if self.now >= found.expires_at {
            return Err(self.refuse(tx, "expired", Some(&data.user_id)).await);
        }
        tx.commit().await?;
        Ok(data)
    }

    /// What the code came from, and whether it still lives: the SSO session A's token came from
    /// (B's session joins it) and the source token's family — signing out or a revoked grant ends
    /// what came from them.
    async fn source(&self, data: &HandoffData) -> Result<(Option<String>, bool), OAuthError> {
        let sso = match &data.source_sid {
            None => None,
            Some(source) => Some(self.p.store.sso_of_live_sid(source).await?),
        };
        let family_live = match &data.source_family {
            None => true,
            Some(f) => issue::family_live(self.p, f).await?,
        };
        Ok((sso.clone().flatten(), !matches!(sso, Some(None)) && family_live))
    }

    /// What redeeming sets up, in one transaction: B's product session, joined to the SSO session
    /// A's token came from (so signing out reaches B too; it is the redeeming backend's, at its
    /// address, with no browser of its own), and the family B's tokens belong to, audited
    /// (`handoff.redeemed`).
    async fn settle(&self, data: &HandoffData, product: &portico_model::Product, sso: Option<&str>) -> Result<Family, OAuthError> {
        let config = self.p.config();
        let notify = |c: &str| config.notifies_logout(c);
        let mut tx = self.p.store.write().await?;
        let sid = match sso {
            Some(sso_id) => {
                let start = ProductSessionStart {
                    sso_id,
                    client_id: self.client.id.as_str(),
                    product: product.slug.as_str(),
                    new_sid: &Sid::new(random::id("sid_")),
                    ip: self.ip.unwrap_or(""),
                    user_agent: "",
                    single: product.single_session,
                    now: self.now,
                };
                // A's session ended since the code was made (or while it was being spent).
                let started = tx.product_session(&start, &notify).await?;
                match started {
                    Some(sid) => Some(sid),
                    None => return Err(self.refuse(tx, "the session ended", Some(&data.user_id)).await),
                }
            }
            None => None,
        };
        let family = Family {
            id: FamilyId::new(random::id("fam_")),
            subject: data.user_id.clone(),
            client_id: self.client.id.clone(),
            product: product.slug.clone(),
            tenant: data.tenant.clone(),
            sid,
            created_at: self.now,
            revoked_at: None,
            origin: None,
            // Handed off from a session pinned to its tenant: this one is too.
            pinned: data.tenant_pinned,
        };
        tx.insert_family(&family).await?;
        tx.audit(
            AuditEvent::new(self.now, "handoff.redeemed", data.user_id.as_str())
                .product(product.slug.as_str())
                .tenant(data.tenant.as_ref().map(|t| t.as_str()))
                .ip(self.ip.map(str::to_owned))
                .data(serde_json::json!({"client_id": self.client.id.as_str(), "from": data.source_product, "family": family.id})),
        );
        tx.commit().await?;
        Ok(family)
    }
}

async fn redeem_handoff(p: &Provider, client: &Client, code: &str, req: TokenRequest, now: i64) -> Result<TokenResponse, OAuthError> {
    let by = Redeemer {
        p,
        client,
        ip: req.ip.as_deref(),
        now,
    };
    let data = by.spend(code).await?;
    let config = p.config();
    let product = config.product(&client.product).ok_or_else(|| oauth!(InvalidRequest, BAD_CODE))?;
    let (sso, source_live) = by.source(&data).await?;
    // The scope B's tokens will carry (RFC 8693 §2.1: narrowed, never widened) is what consent
    // must cover.
    let scope =
        portico_model::Scope::narrow(&data.scope, req.scope.as_deref()).ok_or_else(|| oauth!(InvalidScope, "the scope exceeds what the user granted"))?;
    // The gate again, for the redeeming client: the grant may have been revoked since the code was
    // made, the product's policy tightened, its session lifetime passed.
    let mint = gate::Mint {
        user: &data.user_id,
        product,
        tenant: data.tenant.as_ref(),
        client: Some(client),
        session_live: source_live,
        auth: &data.auth,
        acr_mfa_requested: false,
        scope: &scope,
    };
    let (user, grant) = match gate::admit(p, &mint, now).await? {
        Ok(admitted) => admitted,
        Err(r) => return Err(by.refuse(p.store.write().await?, r.as_str(), Some(&data.user_id)).await),
    };
    let family = by.settle(&data, product, sso.as_deref()).await?;
    let t = UserTokens {
        client,
        product,
        tenant: data.tenant.as_ref(),
        user: &user,
        grant: &grant,
        scope: &scope,
        sid: family.sid.as_ref(),
        family: &family.id,
        auth: &data.auth,
        nonce: None,
        act: None,
        jkt: req.dpop_jkt.as_deref(),
    };
    let resp = issue::user_token_response(p, &t, "token_exchange", req.ip.clone(), now).await?;
    Ok(TokenResponse {
        issued_token_type: Some(ACCESS_TOKEN_TYPE),
        context: data.context,
        ..resp
    })
}

async fn on_behalf(p: &Provider, client: &Client, subject: &str, req: TokenRequest, now: i64) -> Result<TokenResponse, OAuthError> {
    let config = p.config();
    let source = config
        .product(&client.product)
        .ok_or_else(|| oauth!(InvalidClient, "client authentication failed"))?;
    // A backend exchanges its own user's token: one made for its own product, for a user.
    let claims = own_user_token(p, Some(subject), source, req.dpop_jkt.as_deref(), now).await?;
    // A user's access token always names its family; the exchanged token lives and dies with it.
    let bad_subject = || oauth!(InvalidRequest, "the subject_token is invalid, expired or not for this client's product");
    let family = FamilyId::new(issue::family_of_jti(&claims.jti).ok_or_else(bad_subject)?);
    let target = exchange_target(&config, source, &req)?;
    let tenant = same_tenant(target, &claims)?;
    let user_id = UserId::new(&claims.sub);
    let auth = issue::AuthInfo::of(&claims);
    // The gate, for the target product: its grant, its second-factor policy and session lifetime
    // against how the user signed in for the subject token; consent if this client is third-party.
    let mint = gate::Mint {
        user: &user_id,
        product: target,
        tenant: tenant.as_ref(),
        client: Some(client),
        // `own_user_token` checked the subject token live at the source (its family, its user).
        session_live: true,
        auth: &auth,
        acr_mfa_requested: false,
        scope: &claims.scope,
    };
    let exchange = Exchange::new(p, client, target, tenant.as_ref(), req.ip.as_deref(), now);
    let (user, grant) = gate::admit(p, &mint, now).await?.map_err(|r| exchange.refused(&user_id, r))?;
    let (narrowed, scope) = narrow_roles(grant, req.scope.as_deref())?;
    let sid = claims.sid.as_deref().map(Sid::new);
    let t = UserTokens {
        client,
        product: target,
        tenant: tenant.as_ref(),
        user: &user,
        grant: &narrowed,
        scope: &scope,
        sid: sid.as_ref(),
        family: &family,
        auth: &auth,
        nonce: None,
        // §4.1: the calling client acts for the user (after whoever acted before it).
        act: Some(Actor {
            sub: client.id.as_str().to_owned(),
            act: claims.act.map(Box::new),
        }),
        jkt: req.dpop_jkt.as_deref(),
    };
    let access_token = issue::mint_user_access(p, &t, now)?;
    exchange.audit("token.exchanged", &user.id, serde_json::json!({"from": source.slug.as_str(), "family": family}));
    Ok(TokenResponse {
        issued_token_type: Some(ACCESS_TOKEN_TYPE),
        ..TokenResponse::bearer(access_token, target.access_token_ttl, scope)
            .bound(req.dpop_jkt.as_deref())
            .with_tenant(p, tenant.as_ref(), now)
    })
}

/// The product `resource` or `audience` names (the same one if both), when the calling product's
/// `exchange_to` lists it.
fn exchange_target<'a>(
    config: &'a crate::snapshot::Snapshot,
    source: &portico_model::Product,
    req: &TokenRequest,
) -> Result<&'a portico_model::Product, OAuthError> {
    let named = match (req.resource.first(), req.audience.as_deref()) {
        (Some(r), Some(a)) if r != a => return Err(oauth!(InvalidTarget, "resource and audience name different products")),
        (Some(r), _) => r.as_str(),
        (None, Some(a)) => a,
        (None, None) => return Err(oauth!(InvalidTarget, "name the product to call with resource or audience")),
    };
    config
        .product_by_audience(named)
        .filter(|t| source.exchange_to.contains(&t.slug))
        .ok_or_else(|| oauth!(InvalidTarget, "this product may not call the requested resource on a user's behalf"))
}

/// The same tenant as the subject token: a tenant-aware target needs one.
fn same_tenant(target: &portico_model::Product, claims: &portico_model::AccessClaims) -> Result<Option<TenantId>, OAuthError> {
    match (target.tenant_aware, &claims.org_id) {
        (true, Some(org)) => Ok(Some(TenantId::new(org))),
        (true, None) => Err(oauth!(InvalidTarget, "the target product needs a tenant and the subject token names none")),
        (false, _) => Ok(None),
    }
}

/// `scope` may name roles of the target: the token carries only those the user also holds (all
/// of them when it names none). Returns the narrowed grant and the scope granted.
fn narrow_roles(grant: Grant, scope: Option<&str>) -> Result<(Grant, String), OAuthError> {
    let asked: Vec<&str> = scope.unwrap_or("").split(' ').filter(|s| !s.is_empty()).collect();
    if asked.iter().any(|r| !grant.roles.iter().any(|g| g == r)) {
        return Err(oauth!(InvalidScope, "the scope names a role the user does not hold in the target product"));
    }
    let roles = match asked.is_empty() {
        true => grant.roles.clone(),
        false => grant.roles.iter().filter(|r| asked.contains(&r.as_str())).cloned().collect(),
    };
    Ok((Grant { roles, ..grant }, asked.join(" ")))
}

/// An exchange on a user's behalf, for the audit of its outcome.
struct Exchange<'a> {
    p: &'a Provider,
    client: &'a Client,
    target: &'a portico_model::Product,
    tenant: Option<&'a TenantId>,
    ip: Option<&'a str>,
    now: i64,
}

impl<'a> Exchange<'a> {
    fn new(p: &'a Provider, client: &'a Client, target: &'a portico_model::Product, tenant: Option<&'a TenantId>, ip: Option<&'a str>, now: i64) -> Self {
        Self {
            p,
            client,
            target,
            tenant,
            ip,
            now,
        }
    }

    fn audit(&self, kind: &str, user: &UserId, mut data: serde_json::Value) {
        data["client_id"] = self.client.id.as_str().into();
        self.p.writer.record(
            AuditEvent::new(self.now, kind, user.as_str())
                .product(self.target.slug.as_str())
                .tenant(self.tenant.map(|t| t.as_str()))
                .ip(self.ip.map(str::to_owned))
                .data(data),
        );
    }

    /// The gate refused: audited, and `invalid_request` (RFC 8693 §2.2.2).
    fn refused(&self, user: &UserId, r: portico_model::Refusal) -> OAuthError {
        self.audit("token.exchange_refused", user, serde_json::json!({"reason": r.as_str()}));
        gate::refused(ErrorCode::InvalidRequest, r)
    }
}
