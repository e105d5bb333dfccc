//! `grant_type=refresh_token` (RFC 6749 §6) with rotation (RFC 9700 §4.14.2): every use returns a
//! new refresh token; presenting a rotated one revokes its whole family.
//!
//! A product may set a reuse grace (`refresh_reuse_grace`, off by default) for clients that cannot
//! serialize their refreshes (tabs without Web Locks): within that many seconds of a rotation,
//! the token's immediate parent answers with the current successor (the same refresh token, a new
//! access token) instead of revoking the family. Anything older, or the parent once its successor
//! has rotated in turn, still revokes. The successor is computed from its parent under a key of
//! the KEK's ([`crate::kek::Kek::refresh_successor`]), so it is never stored in the clear.
//!
//! **Switching tenant.** With `organization` naming another tenant of a tenant-aware product, the
//! grant answers tokens for that tenant, through the same gate, without a redirect: a new family
//! in the same product session, with a refresh token of its own. The presented token is not spent
//! (its tenant's tokens stay good, so a client keys its cache by tenant); naming no organization,
//! or the family's own, refreshes the family's tenant as always. The new family joins the
//! presented one's tree (`origin`): revoking any family of a tree — reuse of a rotated token,
//! revocation — revokes all of it, so a stolen token cannot escape reuse detection by switching;
//! and a tree holds one live family per tenant (switching again replaces it).

use super::issue::{self, RefreshData, UserTokens};
use super::{TokenRequest, TokenResponse};
use crate::error::{ErrorCode, OAuthError, oauth};
use crate::gate;
use crate::provider::Provider;
use crate::random;
use portico_model::Client;
use portico_store::{AuditEvent, Family, RefreshPeek, RefreshRotation, Rotation};

const INVALID: &str = "the refresh token is invalid, expired or revoked";

pub async fn grant(p: &Provider, client: &Client, req: TokenRequest, now: i64) -> Result<TokenResponse, OAuthError> {
    let presented = req
        .refresh_token
        .as_deref()
        .ok_or_else(|| oauth!(InvalidRequest, "refresh_token is required"))?;
    let old_hash = random::hash(presented);
    // One read: the token, its family, the user and the user's grants for the family's product.
    let Some(ctx) = p.store.refresh_context(&old_hash).await? else {
        return Err(oauth!(InvalidGrant, INVALID));
    };
    let family = &ctx.token.family;
    let by = By {
        p,
        client,
        ip: req.ip.as_deref(),
        now,
    };
    let config = p.config();
    // Reuse is judged first: a replayed token revokes its family whatever else the request says.
    let grace = config.product(&family.product).map_or(0, |x| x.refresh_reuse_grace);
    let (data, current) = live_token(&by, &ctx.token, grace).await?;
    let product = own_product(&config, family, &req.resource)?;
    // RFC 9449 §5: a bound refresh token needs a proof of its key; refused before it is spent.
    if data.jkt.is_some() && data.jkt != req.dpop_jkt {
        return Err(oauth!(InvalidDpopProof, "this refresh token is bound to a DPoP key: prove it").detail("refresh without the bound key's proof"));
    }
    let scope =
        portico_model::Scope::narrow(&data.scope, req.scope.as_deref()).ok_or_else(|| oauth!(InvalidScope, "the scope exceeds what was originally granted"))?;
    let switch = other_tenant(p, &config, product, family, req.organization.as_deref(), now)?;
    if switch.is_some() && !current {
        return Err(oauth!(InvalidGrant, INVALID).detail("a tenant switch with a rotated refresh token"));
    }
    // Signed in through one tenant's own domain: that tenant's tokens only.
    if switch.is_some() && family.pinned {
        return Err(oauth!(
            InvalidGrant,
            "this session began on an organization's own domain and stays in that organization"
        ));
    }
    let tenant = switch.as_ref().or(family.tenant.as_ref());
    // The gate, on the user and grants read with the token (its subject is the family's). The
    // product's own session lifetime stops refresh here too.
    let mint = gate::Mint {
        user: &family.subject,
        product,
        tenant,
        client: Some(client),
        // A sign-out ends the product session with its families; one made in a race with it
        // still stops here.
        session_live: family.revoked_at.is_none() && !ctx.session_ended,
        auth: &data.auth,
        acr_mfa_requested: false,
        scope: &data.scope,
    };
    let admitted = gate::admit_with(p, &mint, ctx.user.clone(), &ctx.grants, now).await?;
    let (user, grant) = admitted.map_err(|r| gate::refused(ErrorCode::InvalidGrant, r))?;
    if let Some(tenant) = &switch {
        return switched(&by, family, tenant, product, &user, &grant, &scope, &data, req.dpop_jkt.as_deref()).await;
    }
    let expires_at = product.refresh_expiry(p.settings.refresh_ttl, data.auth.auth_time, now);
    let new_rt = match current {
        true => rotate(&by, &ctx.token, (presented, &old_hash), &data, expires_at, grace).await?,
        false => successor_again(&by, family, presented).await?,
    };
    let t = UserTokens {
        client,
        product,
        tenant,
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
    let (access_token, id_token) = (issue::mint_user_access(p, &t, now)?, issue::mint_id_token(p, &t, now)?);
    by.issued(&t, !current);
    Ok(TokenResponse {
        refresh_token: Some(new_rt),
        id_token,
        ..TokenResponse::bearer(access_token, product.access_token_ttl, scope)
            .bound(req.dpop_jkt.as_deref())
            .with_tenant(p, tenant, now)
    })
}

/// The tenant `organization` names when it is not the family's own: a switch. An unknown tenant
/// is refused as one the user holds no grant in.
fn other_tenant(
    p: &Provider,
    config: &crate::snapshot::Snapshot,
    product: &portico_model::Product,
    family: &Family,
    organization: Option<&str>,
    now: i64,
) -> Result<Option<portico_model::TenantId>, OAuthError> {
    let Some(reference) = organization else { return Ok(None) };
    if !product.tenant_aware {
        return Err(oauth!(InvalidRequest, "this product has no organizations"));
    }
    let tenant = crate::tenants::find(p, config, reference, now).ok_or_else(|| gate::refused(ErrorCode::InvalidGrant, portico_model::Refusal::NoGrant))?;
    Ok((family.tenant.as_ref() != Some(&tenant.id)).then(|| tenant.id.clone()))
}

/// Tokens for another tenant of the family's product (the gate admitted the user there): a new
/// family of the same tree, in the same product session — signing out, a revoked grant or a
/// replaced session end it with the first — with its own refresh token, written in one
/// transaction and only while the presented family is live.
#[allow(clippy::too_many_arguments)]
async fn switched(
    by: &By<'_>,
    from: &Family,
    tenant: &portico_model::TenantId,
    product: &portico_model::Product,
    user: &portico_model::User,
    grant: &portico_model::Grant,
    scope: &str,
    data: &RefreshData,
    jkt: Option<&str>,
) -> Result<TokenResponse, OAuthError> {
    let (p, client, now) = (by.p, by.client, by.now);
    let family = Family {
        id: portico_model::FamilyId::new(random::id("fam_")),
        tenant: Some(tenant.clone()),
        created_at: now,
        revoked_at: None,
        origin: Some(from.root().clone()),
        ..from.clone()
    };
    let t = UserTokens {
        client,
        product,
        tenant: Some(tenant),
        user,
        grant,
        scope,
        sid: family.sid.as_ref(),
        family: &family.id,
        auth: &data.auth,
        nonce: None,
        act: None,
        jkt,
    };
    let (access_token, id_token) = (issue::mint_user_access(p, &t, now)?, issue::mint_id_token(p, &t, now)?);
    // Its refresh token carries what the presented one did (a public client's key binding too).
    let refresh_token = random::token();
    let record = RefreshData {
        // As a rotation does: the refresh token keeps what was granted; `scope` narrows this
        // access token only.
        scope: data.scope.clone(),
        auth: data.auth.clone(),
        jkt: jkt.filter(|_| client.is_public()).map(str::to_owned),
    };
    let expires_at = product.refresh_expiry(p.settings.refresh_ttl, data.auth.auth_time, now);
    let record = serde_json::to_string(&record).expect("serializes");
    let mut tx = p.store.write().await?;
    if !tx
        .insert_switched_family(&family, &from.id, &random::hash(&refresh_token), &record, expires_at)
        .await?
    {
        return Err(oauth!(InvalidGrant, INVALID).detail("the family was revoked during the switch"));
    }
    tx.audit(
        AuditEvent::new(now, "token.issued", user.id.as_str())
            .product(product.slug.as_str())
            .tenant(Some(tenant.as_str()))
            .ip(by.ip.map(str::to_owned))
            .data(serde_json::json!({"grant_type": "refresh_token", "client_id": client.id.as_str(), "family": family.id, "switched_from": from.id})),
    );
    tx.commit().await?;
    Ok(TokenResponse {
        refresh_token: Some(refresh_token),
        id_token,
        ..TokenResponse::bearer(access_token, product.access_token_ttl, scope.to_owned())
            .bound(jkt)
            .with_tenant(p, Some(tenant), now)
    })
}

/// The family's product, which `resource` may only name again: a refresh token is bound to it.
fn own_product<'a>(config: &'a crate::snapshot::Snapshot, family: &Family, resource: &[String]) -> Result<&'a portico_model::Product, OAuthError> {
    let product = config.product(&family.product).ok_or_else(|| oauth!(InvalidGrant, INVALID))?;
    if resource.first().is_some_and(|r| r != product.audience.as_str()) {
        return Err(oauth!(InvalidTarget, "a refresh token only yields tokens for its own product"));
    }
    Ok(product)
}

/// Who presents the token: the client, from where, when.
struct By<'a> {
    p: &'a Provider,
    client: &'a Client,
    ip: Option<&'a str>,
    now: i64,
}

impl By<'_> {
    /// `again`: the answer repeats a successor under the product's reuse grace.
    fn issued(&self, t: &UserTokens<'_>, again: bool) {
        let mut data = serde_json::json!({"grant_type": "refresh_token", "client_id": self.client.id.as_str(), "family": t.family});
        if again {
            data["reuse_grace"] = serde_json::json!(true);
        }
        self.p.writer.record(
            AuditEvent::new(self.now, "token.issued", t.user.id.as_str())
                .product(t.product.slug.as_str())
                .tenant(t.tenant.map(|t| t.as_str()))
                .ip(self.ip.map(str::to_owned))
                .data(data),
        );
    }
}

/// The presented token's record, when it may be used: this client's, never rotated (a rotated
/// one presented again revokes its family), its family live, not expired. With it, whether it is
/// the current token (`false`: rotated within the product's reuse `grace`, its successor still
/// to be checked).
async fn live_token(by: &By<'_>, found: &RefreshPeek, grace: i64) -> Result<(RefreshData, bool), OAuthError> {
    let (family, client, now) = (&found.family, by.client, by.now);
    // RFC 6749 §6: "validate the refresh token … and ensure that the refresh token was issued to the authenticated client".
    if family.client_id != client.id {
        return Err(oauth!(InvalidGrant, INVALID).detail("refresh token of another client"));
    }
    let current = match found.rotated_at {
        None => true,
        Some(at) if grace > 0 && now - at <= grace && family.revoked_at.is_none() => false,
        Some(_) => {
            // Audited even when the family is revoked already: a replay is worth knowing of.
            reused(by, family).await?;
            return Err(oauth!(InvalidGrant, INVALID).detail("rotated refresh token presented again"));
        }
    };
    if family.revoked_at.is_some() {
        return Err(oauth!(InvalidGrant, INVALID));
    }
    if current && now >= found.expires_at {
        return Err(oauth!(InvalidGrant, INVALID));
    }
    Ok((serde_json::from_str(&found.data).map_err(OAuthError::server)?, current))
}

/// Under the reuse grace, a rotated token presented again: its successor, when that is still the
/// family's current token; otherwise the family is revoked as for any reuse.
async fn successor_again(by: &By<'_>, family: &Family, presented: &str) -> Result<String, OAuthError> {
    let successor = by.p.kek.refresh_successor(presented);
    match by.p.store.peek_refresh(&random::hash(&successor)).await? {
        Some(s) if s.family.id == family.id && s.rotated_at.is_none() && s.family.revoked_at.is_none() && by.now < s.expires_at => Ok(successor),
        _ => {
            reused(by, family).await?;
            Err(oauth!(InvalidGrant, INVALID).detail("reuse of a token older than the current one's parent"))
        }
    }
}

/// A spent token presented again: its whole family is revoked (RFC 9700 §4.14.2), audited.
async fn reused(by: &By<'_>, family: &Family) -> Result<(), OAuthError> {
    let event = AuditEvent::new(by.now, "token.refresh_reused", format!("client:{}", by.client.id))
        .product(family.product.as_str())
        .ip(by.ip.map(str::to_owned))
        .data(serde_json::json!({"family": family.id}));
    let mut tx = by.p.store.write().await?;
    tx.revoke_family(&family.id, "refresh_reused", by.now).await?;
    tx.audit(event);
    tx.commit().await?;
    Ok(())
}

/// Spends the presented token for a new one in its family, through the group-commit writer; of
/// two concurrent rotations of one token the second is reuse (under a reuse `grace`, it gets the
/// first one's successor). Returns the new token.
async fn rotate(
    by: &By<'_>,
    found: &RefreshPeek,
    (presented, old_hash): (&str, &str),
    data: &RefreshData,
    new_expires_at: i64,
    grace: i64,
) -> Result<String, OAuthError> {
    let (p, now) = (by.p, by.now);
    // Under a grace the successor must be computable again from its parent.
    let new_rt = if grace > 0 { p.kek.refresh_successor(presented) } else { random::token() };
    let rotation = p
        .writer
        .rotate_refresh(Rotation {
            old_hash: old_hash.to_owned(),
            family_id: found.family.id.clone(),
            new_hash: random::hash(&new_rt),
            // The new token carries what the old one did: the same scope and sign-in.
            new_data: serde_json::to_string(data).expect("serializes"),
            now,
            new_expires_at,
        })
        .await?;
    if rotation == RefreshRotation::Reused {
        if grace > 0 {
            return successor_again(by, &found.family, presented).await;
        }
        reused(by, &found.family).await?;
        return Err(oauth!(InvalidGrant, INVALID).detail("concurrent reuse"));
    }
    Ok(new_rt)
}
