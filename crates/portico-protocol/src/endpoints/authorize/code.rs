//! Issuing the authorization code: the product session it belongs to, the code's record and
//! family, and the response that carries it.

use super::{AuthRequest, AuthResponse, Origin};
use crate::error::OAuthError;
use crate::provider::Provider;
use crate::random;
use portico_model::{ClientId, FamilyId, Product, Sid, Tenant, UserId};
use portico_store::{AuditEvent, Family, ProductSessionStart, SsoSession};
use serde::{Deserialize, Serialize};

/// What an authorization code stands for, stored under the code's hash.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CodeData {
    pub client_id: String,
    pub redirect_uri: String,
    pub user_id: UserId,
    pub audience: String,
    pub tenant: Option<String>,
    pub scope: String,
    pub nonce: Option<String>,
    pub code_challenge: Option<String>,
    pub auth_time: i64,
    pub amr: Vec<String>,
    pub acr: String,
    pub sid: Sid,
    /// RFC 9449 §10: the DPoP key the code may be redeemed with only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dpop_jkt: Option<String>,
}

/// Starts (or continues) the product session of the code and issues the code; the response
/// carries it with `state` and `iss` (RFC 9207). `None` when the session ended since it was read
/// (a logout in another tab): nothing is issued.
pub(super) async fn issue_code(
    p: &Provider,
    req: &AuthRequest,
    session: &SsoSession,
    product: &Product,
    tenant: Option<&Tenant>,
    from: &Origin,
    now: i64,
) -> Result<Option<AuthResponse>, OAuthError> {
    // The product session, the code and its audit event commit together.
    let mut tx = p.store.write().await?;
    // A device signs in to a session of its own: signing out of the browser that approved it
    // does not sign the television out, and the account page lists it to end (as does signing
    // out everywhere).
    let sso_id = match &req.device {
        Some(_) => device_session(p, &mut tx, req, session, from, now).await?,
        None => session.id.clone(),
    };
    let Some(sid) = product_session(p, &mut tx, req, &sso_id, product, from, now).await? else {
        return Ok(None);
    };
    let code = random::token();
    let tenant_id = tenant.map(|t| t.id.as_str().to_owned());
    let data = CodeData {
        client_id: req.client_id.clone(),
        redirect_uri: req.redirect_uri.clone(),
        user_id: session.user_id.clone(),
        audience: product.audience.as_str().to_owned(),
        tenant: tenant_id.clone(),
        scope: req.scope_string(),
        nonce: req.nonce.clone(),
        code_challenge: req.code_challenge.clone(),
        auth_time: session.auth_time,
        amr: session.amr.clone(),
        acr: req.acr_claim(session).to_owned(),
        sid: sid.clone(),
        dpop_jkt: req.dpop_jkt.clone(),
    };
    let family = Family {
        id: FamilyId::new(random::id("fam_")),
        subject: session.user_id.clone(),
        client_id: ClientId::new(&req.client_id),
        product: product.slug.clone(),
        tenant: tenant.map(|t| t.id.clone()),
        sid: Some(sid.clone()),
        created_at: now,
        revoked_at: None,
        origin: None,
        // Begun on a tenant's own domain: the tree stays in that tenant.
        pinned: req.tenant_pinned,
    };
    let record = serde_json::to_string(&data).expect("serializes");
    // A device's code waits in its record for the device's next poll, which may come as late as
    // the device authorization lasts; it never leaves Portico.
    let ttl = if req.device.is_some() {
        crate::device::DEVICE_TTL
    } else {
        p.settings.code_ttl
    };
    tx.issue_code(&random::hash(&code), &family, &record, now + ttl).await?;
    tx.audit(
        AuditEvent::new(now, "authorize.code_issued", session.user_id.as_str())
            .product(product.slug.as_str())
            .tenant(tenant.map(|t| t.id.as_str()))
            .ip(from.ip.clone())
            .data(serde_json::json!({"client_id": req.client_id, "sid": sid.as_str()})),
    );
    tx.commit().await?;
    Ok(Some(code_response(p, req, code)))
}

/// A session for a device the user approved (RFC 8628): the approving session's sign-in (its
/// time and factors) carried over, no cookie anyone holds, named after the application.
async fn device_session(
    p: &Provider,
    tx: &mut portico_store::Tx<'_>,
    req: &AuthRequest,
    session: &SsoSession,
    from: &Origin,
    now: i64,
) -> Result<String, OAuthError> {
    let name = p
        .config()
        .client(&req.client_id)
        .map(|e| e.client.name.clone())
        .unwrap_or_else(|| req.client_id.clone());
    let new = portico_store::NewSsoSession {
        id: random::id("sso_"),
        // No cookie is ever made for it: the hash of a value nobody keeps.
        token_hash: random::hash(&random::token()),
        user_id: session.user_id.clone(),
        auth_time: session.auth_time,
        amr: session.amr.clone(),
        acr: session.acr.clone(),
        idle_expires_at: now + p.settings.session_idle,
        expires_at: now + p.settings.session_absolute,
        user_agent: format!("Device: {name}").chars().take(256).collect(),
        ip: from.ip.clone().unwrap_or_default(),
    };
    tx.create_sso_session(&new, now).await?;
    tx.audit(
        AuditEvent::new(now, "session.started", session.user_id.as_str())
            .ip(from.ip.clone())
            .data(serde_json::json!({"session": new.id, "device": req.client_id, "approved_in": session.id})),
    );
    Ok(new.id)
}

/// The product session the code belongs to: this client's in SSO session `sso_id`, or a new one
/// (which, for a single-session product, ends the user's others and queues their logouts).
async fn product_session(
    p: &Provider,
    tx: &mut portico_store::Tx<'_>,
    req: &AuthRequest,
    sso_id: &str,
    product: &Product,
    from: &Origin,
    now: i64,
) -> Result<Option<Sid>, OAuthError> {
    let config = p.config();
    let notify = |c: &str| config.notifies_logout(c);
    let start = ProductSessionStart {
        sso_id,
        client_id: &req.client_id,
        product: product.slug.as_str(),
        new_sid: &Sid::new(random::id("sid_")),
        ip: from.ip.as_deref().unwrap_or(""),
        user_agent: &from.user_agent,
        single: product.single_session,
        now,
    };
    Ok(tx.product_session(&start, &notify).await?)
}

fn code_response(p: &Provider, req: &AuthRequest, code: String) -> AuthResponse {
    let mut params = vec![("code".to_owned(), code)];
    if let Some(s) = &req.state {
        params.push(("state".into(), s.clone()));
    }
    params.push(("iss".into(), p.issuer.clone()));
    AuthResponse {
        redirect_uri: req.redirect_uri.clone(),
        mode: req.response_mode,
        params,
        web_origin: req.web_origin.clone(),
    }
}
