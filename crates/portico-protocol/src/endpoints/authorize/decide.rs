//! Deciding a validated request for the browser's session: login, the tenant, the policy gate,
//! consent, a second factor — or a code.

use super::code::issue_code;
use super::{AuthRequest, AuthorizeOutcome, Origin, Progress, Step, Waiting, error_response};
use crate::error::{OAuthError, oauth};
use crate::gate;
use crate::provider::Provider;
use crate::snapshot::Snapshot;
use crate::token::issue::AuthInfo;
use portico_model::{AcrOutcome, Client, Grant, Grantee, Product, Refusal, Tenant};
use portico_store::{AuditEvent, SsoSession};

/// Decides a validated request for the browser's SSO session (if any): the request-level rules
/// (`prompt`, `max_age`, the tenant to enter), then the policy gate every minting path shares
/// ([`crate::gate`]), then a code.
pub async fn decide(p: &Provider, req: AuthRequest, session: Option<&SsoSession>, from: &Origin, now: i64) -> Result<AuthorizeOutcome, OAuthError> {
    // Progress counts only in the session that earned it.
    let progress = req.progress_in(session).cloned().unwrap_or_default();
    let d = Deciding { p, req, progress, from, now };
    let config = p.config();
    let product = config.product_by_audience(&d.req.audience).cloned();
    let session = match session.filter(|s| !d.needs_login(s, product.as_ref())) {
        Some(s) => s,
        None if d.req.has_prompt("none") => return d.fail(oauth!(LoginRequired, "the user is not signed in")),
        None => return Ok(AuthorizeOutcome::ShowLogin(d.waiting(Step::Login, None, None))),
    };
    let Some(client) = config.client(&d.req.client_id).map(|e| e.client.clone()) else {
        return d.fail(oauth!(AccessDenied, "the client is no longer registered"));
    };
    let Some(product) = product else {
        return d.fail(oauth!(InvalidTarget, "the product is no longer registered"));
    };
    let user = p.store.user_by_id(&session.user_id).await?;
    let grants = p.store.grants_for(&Grantee::User(session.user_id.clone()), &product.slug).await?;
    let tenant = match d.tenant(&config, &product, &grants) {
        Ok(t) => t,
        Err(Stop::Refused(reason)) => return d.refused(session, &product, reason),
        Err(Stop::Choose(_)) if d.req.has_prompt("none") => return d.fail(oauth!(InteractionRequired, "the user must choose an organization")),
        Err(Stop::Choose(enterable)) => {
            return Ok(AuthorizeOutcome::ShowTenantPicker(
                d.waiting(Step::TenantPicker, Some(session), None),
                enterable,
            ));
        }
    };
    let mint = Minting {
        session,
        client: &client,
        product: &product,
        tenant: tenant.as_ref(),
    };
    let step_up = match d.req.acr_outcome(session) {
        AcrOutcome::Met(_) | AcrOutcome::Unmet(_) => false,
        AcrOutcome::StepUp => true,
        AcrOutcome::NeedsInteraction => return d.fail(oauth!(InteractionRequired, "the requested authentication context needs a second factor")),
        AcrOutcome::Fails => return d.fail(oauth!(AccessDenied, "none of the requested authentication context values can be met")),
    };
    let (auth, scope) = (d.auth(session), d.req.scope_string());
    let refusal = gate::admit_with(p, &mint.facts(&auth, &scope, step_up), user, &grants, now).await?.err();
    d.after_gate(mint, refusal).await
}

/// A request being decided.
struct Deciding<'a> {
    p: &'a Provider,
    req: AuthRequest,
    progress: Progress,
    from: &'a Origin,
    now: i64,
}

/// Why deciding stopped before the gate.
enum Stop {
    /// Audited as `authorize.refused` with this reason, answered `access_denied`.
    Refused(&'static str),
    /// The user may enter several tenants and named none: the picker.
    Choose(Vec<Tenant>),
}

/// What a code would be minted for.
struct Minting<'a> {
    session: &'a SsoSession,
    client: &'a Client,
    product: &'a Product,
    tenant: Option<&'a Tenant>,
}

impl Minting<'_> {
    fn facts<'b>(&'b self, auth: &'b AuthInfo, scope: &'b str, acr_mfa_requested: bool) -> gate::Mint<'b> {
        gate::Mint {
            user: &self.session.user_id,
            product: self.product,
            tenant: self.tenant.map(|t| &t.id),
            client: Some(self.client),
            // `session` is the browser's live SSO session: the caller looked it up by its cookie.
            session_live: true,
            auth,
            acr_mfa_requested,
            scope,
        }
    }
}

impl Deciding<'_> {
    /// The error answer at the client's redirect URI.
    fn fail(&self, e: OAuthError) -> Result<AuthorizeOutcome, OAuthError> {
        let r = &self.req;
        Ok(AuthorizeOutcome::Respond(error_response(
            self.p,
            &r.redirect_uri,
            r.response_mode,
            r.web_origin.as_deref(),
            r.state.as_deref(),
            &e,
        )))
    }

    /// `access_denied`, audited with `reason`.
    fn refused(&self, session: &SsoSession, product: &Product, reason: &str) -> Result<AuthorizeOutcome, OAuthError> {
        self.p.writer.record(
            AuditEvent::new(self.now, "authorize.refused", session.user_id.as_str())
                .product(product.slug.as_str())
                .ip(self.from.ip.clone())
                .data(serde_json::json!({"client_id": self.req.client_id, "reason": reason})),
        );
        self.fail(oauth!(AccessDenied, "the user has no access to this product or organization"))
    }

    /// The request, marked as waiting at `step` for `session`.
    fn waiting(self, step: Step, session: Option<&SsoSession>, tenant: Option<String>) -> AuthRequest {
        let mut req = self.req;
        req.waiting = Some(Waiting {
            step,
            session: session.map(|s| s.id.clone()),
            tenant,
        });
        req
    }

    /// Whether this session must sign in (again) first: `prompt=login` or `select_account`,
    /// `max_age`, or the product's own session lifetime, which acts as a `max_age` it always sends;
    /// none of them once the user signed in for this request.
    fn needs_login(&self, s: &SsoSession, product: Option<&Product>) -> bool {
        let (req, now) = (&self.req, self.now);
        let asked = req.has_prompt("login") || req.has_prompt("select_account");
        let too_old = req.max_age.is_some_and(|m| now - s.auth_time > m) || product.is_some_and(|x| x.needs_fresh_login(s.auth_time, now));
        (asked || too_old) && !self.progress.login_done
    }

    fn auth(&self, session: &SsoSession) -> AuthInfo {
        AuthInfo {
            auth_time: session.auth_time,
            amr: session.amr.clone(),
            acr: session.acr.clone(),
        }
    }

    /// The tenant the code is for: the one named (by the request or at the picker) if the user
    /// may enter it, the only one they may enter, or the picker.
    fn tenant(&self, config: &Snapshot, product: &Product, grants: &[Grant]) -> Result<Option<Tenant>, Stop> {
        if !product.tenant_aware {
            return Ok(None);
        }
        let enterable: Vec<Tenant> = portico_model::enterable_tenants(grants, product, &config.tenants, self.now)
            .into_iter()
            .cloned()
            .collect();
        match self.req.organization.as_ref().or(self.progress.organization.as_ref()) {
            // An unknown tenant and one the user may not enter get the same answer.
            // The tenant's id, slug or a live handle; an expired handle names nothing.
            Some(reference) => crate::tenants::find(self.p, config, reference, self.now)
                .filter(|t| enterable.iter().any(|e| e.id == t.id))
                .map(|t| Some(t.clone()))
                .ok_or(Stop::Refused("no_grant")),
            None if enterable.len() == 1 => Ok(enterable.into_iter().next()),
            None if enterable.is_empty() => Err(Stop::Refused("no_grant")),
            None => Err(Stop::Choose(enterable)),
        }
    }

    /// What the gate's answer means for the browser: a code, a step to show, or an error.
    async fn after_gate(self, m: Minting<'_>, refusal: Option<Refusal>) -> Result<AuthorizeOutcome, OAuthError> {
        let prompt_none = self.req.has_prompt("none");
        let tenant_id = m.tenant.map(|t| t.id.as_str().to_owned());
        // `prompt=consent`: ask again even when a consent on record covers the scope. A native
        // app whose redirect any app on the device could receive is asked every time, first-party
        // or not (RFC 8252 §8.6).
        // A device's approval always asks too: the user must see what they let in (RFC 8628 §5.4).
        let asked = (!m.client.first_party && self.req.has_prompt("consent"))
            || !m.client.redirect_proves_identity(&self.req.redirect_uri)
            || self.req.device.is_some();
        let reconsent = asked && !self.progress.consent_done;
        match refusal {
            None if reconsent => {}
            None => {
                // A device's approval holds the device first: a second browser approving the
                // same code is told it is taken before anything is made for it.
                if let Some(user_code) = &self.req.device
                    && !crate::device::reserve(self.p, user_code, &self.req.id, self.now).await?
                {
                    return self.fail(oauth!(InvalidRequest, "the device is being signed in elsewhere, or no longer waits"));
                }
                return match issue_code(self.p, &self.req, m.session, m.product, m.tenant, self.from, self.now).await? {
                    Some(resp) => Ok(AuthorizeOutcome::Respond(resp)),
                    // Signed out since the session was read: as if it had never been there.
                    None if prompt_none => self.fail(oauth!(LoginRequired, "the user is not signed in")),
                    None => Ok(AuthorizeOutcome::ShowLogin(self.waiting(Step::Login, None, None))),
                };
            }
            Some(Refusal::FreshSignInRequired) if prompt_none => return self.fail(oauth!(LoginRequired, "the product requires a fresh sign-in")),
            Some(Refusal::FreshSignInRequired) => return Ok(AuthorizeOutcome::ShowLogin(self.waiting(Step::Login, None, None))),
            Some(Refusal::SecondFactorRequired) if prompt_none => return self.fail(oauth!(InteractionRequired, "this product requires a second factor")),
            Some(Refusal::SecondFactorRequired) => {
                return Ok(AuthorizeOutcome::ShowSecondFactor(self.waiting(Step::SecondFactor, Some(m.session), tenant_id)));
            }
            Some(Refusal::ConsentRequired) => {}
            Some(r) => return self.refused(m.session, m.product, r.as_str()),
        }
        if prompt_none {
            return self.fail(oauth!(ConsentRequired, "the user has not consented to this client for this product"));
        }
        let name = m.product.name.clone();
        Ok(AuthorizeOutcome::ShowConsent(self.waiting(Step::Consent, Some(m.session), tenant_id), name))
    }
}
