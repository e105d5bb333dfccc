//! `POST /oauth2/handoff` (DESIGN.md): product A's backend hands its user over to product B.
//!
//! A's backend authenticates as one of A's confidential clients and presents the user's live
//! access token for A; Portico checks that A may hand off to B (`handoff_to`) and that the user
//! holds an active grant in B for the tenant, and answers a code that is opaque, single use, valid
//! `handoff_ttl` (120 s), and redeemable only by a confidential client of B at the token endpoint
//! (`token_exchange` with `subject_token_type=urn:portico:token-type:handoff`). A small opaque
//! `context` travels with the code instead of in a URL. Nothing long-lived crosses products
//! (invariant 6): B never sees A's tokens.
//!
//! Errors follow RFC 8693 §2.2.2, which this endpoint mirrors: a subject token that is invalid or
//! unacceptable by policy is `invalid_request`; a target the client may not reach is `invalid_target`.

use crate::client_auth::{ClientCredentials, authenticate_client};
use crate::error::{ErrorCode, OAuthError, oauth};
use crate::gate;
use crate::provider::Provider;
use crate::random;
use crate::snapshot::Snapshot;
use crate::token::issue::AuthInfo;
use crate::verify::own_user_token;
use portico_model::{Product, TenantId, UserId};
use portico_store::AuditEvent;
use serde::{Deserialize, Serialize};

/// The largest `context` a code carries.
pub const MAX_CONTEXT: usize = 1024;
/// The token type of a hand-off code at the token endpoint.
pub const TOKEN_TYPE: &str = "urn:portico:token-type:handoff";

#[derive(Clone, Debug, Default)]
pub struct HandoffRequest {
    pub subject_token: Option<String>,
    /// The `DPoP` header: a DPoP-bound subject token needs a proof of its key (RFC 9449).
    pub dpop: crate::dpop::Presented,
    pub resource: Vec<String>,
    pub organization: Option<String>,
    pub context: Option<String>,
    pub ip: Option<String>,
}

#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct HandoffResponse {
    pub handoff_code: String,
    pub expires_in: i64,
    /// The target product's registered hand-off page, when it has one: the front end sends the
    /// user there with the code (`?handoff_code=…`), and nothing else.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub handoff_uri: Option<String>,
}

/// What a hand-off code stands for, stored under its hash.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct HandoffData {
    pub user_id: UserId,
    pub source_client: String,
    pub source_product: String,
    pub tenant: Option<TenantId>,
    pub scope: String,
    pub auth: AuthInfo,
    /// The product session of the source token: B's session joins the same SSO session.
    pub source_sid: Option<String>,
    /// The token family of the source token: when it is revoked (sign-out, a revoked grant),
    /// the code is worth nothing either.
    #[serde(default)]
    pub source_family: Option<portico_model::FamilyId>,
    pub context: Option<String>,
    /// The source session began on its tenant's own domain: the code is for that tenant only, and
    /// the session it starts stays there too.
    #[serde(default)]
    pub tenant_pinned: bool,
}

pub async fn create(p: &Provider, creds: &ClientCredentials, req: HandoffRequest, now: i64) -> Result<HandoffResponse, OAuthError> {
    let entry = authenticate_client(p, creds, now).await?;
    let client = &entry.client;
    if client.is_public() {
        return Err(oauth!(UnauthorizedClient, "only a confidential client's backend may hand a user off"));
    }
    let config = p.config();
    let source = config
        .product(&client.product)
        .ok_or_else(|| oauth!(InvalidClient, "client authentication failed"))?;
    let proof = crate::dpop::verify(p, &req.dpop, "POST", &format!("{}/oauth2/handoff", p.issuer), None, now).await?;
    let claims = own_user_token(p, req.subject_token.as_deref(), source, proof.as_ref().map(|x| x.jkt.as_str()), now).await?;
    let target = handoff_target(&config, source, &req)?;
    let tenant = target_tenant(p, &config, target, &req, &claims, now)?;
    let source_family = crate::token::issue::family_of_jti(&claims.jti).map(portico_model::FamilyId::new);
    let pinned = match &source_family {
        Some(id) => p.store.family(id).await?.is_some_and(|f| f.pinned),
        None => false,
    };
    // A session pinned to its tenant hands off into that tenant only.
    if pinned && target.tenant_aware && tenant.as_ref().map(|t| t.as_str()) != claims.org_id.as_deref() {
        return Err(oauth!(
            InvalidRequest,
            "this session began on an organization's own domain and stays in that organization"
        ));
    }
    let user_id = UserId::new(&claims.sub);
    // The gate, for the target product, before any code exists: its grant (an unknown tenant is
    // refused too: a tenant-aware product's grants need one), its second-factor policy and session
    // lifetime against how the user signed in. The redeeming client is not known yet: the gate
    // runs again, for it, at redemption.
    let auth = AuthInfo::of(&claims);
    let mint = gate::Mint {
        user: &user_id,
        product: target,
        tenant: tenant.as_ref(),
        client: None,
        // `own_user_token` checked the subject token live at the source (its family, its user).
        session_live: true,
        auth: &auth,
        acr_mfa_requested: false,
        scope: &claims.scope,
    };
    if let Err(r) = gate::admit(p, &mint, now).await? {
        p.writer.record(
            AuditEvent::new(now, "handoff.refused", user_id.as_str())
                .product(target.slug.as_str())
                .tenant(tenant.as_ref().map(|t| t.as_str()))
                .ip(req.ip.clone())
                .data(serde_json::json!({"client_id": client.id.as_str(), "reason": r.as_str()})),
        );
        return Err(gate::refused(ErrorCode::InvalidRequest, r));
    }
    let data = HandoffData {
        user_id: user_id.clone(),
        source_client: client.id.as_str().to_owned(),
        source_product: source.slug.as_str().to_owned(),
        tenant: tenant.clone(),
        scope: claims.scope.clone(),
        auth,
        source_sid: claims.sid.clone(),
        source_family,
        context: req.context,
        tenant_pinned: pinned,
    };
    issue(p, &data, target, client, source, req.ip, now).await
}

/// The product the code is for: the one `resource` names, when the source product's `handoff_to`
/// lists it; and the request's `context` bounded.
fn handoff_target<'a>(config: &'a Snapshot, source: &Product, req: &HandoffRequest) -> Result<&'a Product, OAuthError> {
    if req.resource.len() != 1 {
        return Err(oauth!(InvalidTarget, "name exactly one resource: the product to hand off to"));
    }
    if req.context.as_ref().is_some_and(|c| c.len() > MAX_CONTEXT) {
        return Err(oauth!(InvalidRequest, "context is larger than 1 KiB"));
    }
    config
        .product_by_audience(&req.resource[0])
        .filter(|t| source.handoff_to.contains(&t.slug))
        .ok_or_else(|| oauth!(InvalidTarget, "this product may not hand users off to the requested resource"))
}

/// A tenant-aware target's tenant: the one the request names, else the subject token's. An
/// unknown one is `None`, which the gate refuses (a tenant-aware product's grants need one).
fn target_tenant(
    p: &Provider,
    config: &Snapshot,
    target: &Product,
    req: &HandoffRequest,
    claims: &portico_model::AccessClaims,
    now: i64,
) -> Result<Option<TenantId>, OAuthError> {
    if !target.tenant_aware {
        return Ok(None);
    }
    let reference = req
        .organization
        .as_deref()
        .or(claims.org_id.as_deref())
        .ok_or_else(|| oauth!(InvalidRequest, "organization is required for this target product"))?;
    Ok(crate::tenants::find(p, config, reference, now).map(|t| t.id.clone()))
}

/// Stores the code's record for its lifetime, audited; the answer carries the code.
async fn issue(
    p: &Provider,
    data: &HandoffData,
    target: &Product,
    client: &portico_model::Client,
    source: &Product,
    ip: Option<String>,
    now: i64,
) -> Result<HandoffResponse, OAuthError> {
    let user_id = &data.user_id;
    let tenant = &data.tenant;
    let code = random::token();
    let event = AuditEvent::new(now, "handoff.created", user_id.as_str())
        .product(target.slug.as_str())
        .tenant(tenant.as_ref().map(|t| t.as_str()))
        .ip(ip)
        .data(serde_json::json!({"client_id": client.id.as_str(), "from": source.slug.as_str()}));
    let record = serde_json::to_string(data).expect("serializes");
    let mut tx = p.store.write().await?;
    tx.issue_handoff(&random::hash(&code), target.slug.as_str(), &record, now, now + p.settings.handoff_ttl)
        .await?;
    tx.audit(event);
    tx.commit().await?;
    let config = p.config();
    let page = config.page_of(&target.slug, |c| c.handoff_uri.as_deref());
    Ok(HandoffResponse {
        handoff_code: code,
        expires_in: p.settings.handoff_ttl,
        handoff_uri: page,
    })
}
