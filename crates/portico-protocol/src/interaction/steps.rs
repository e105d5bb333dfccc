//! The authorization request's steps: start it, decide it again after each step, show and answer
//! the consent page and the tenant picker.

use super::request::{self, Loaded};
use super::{Cookie, Cx, Failed, Interaction, Place, Refusal, Then, failed};
use crate::ErrorCode;
use crate::authorize::{self, AuthRequest, AuthorizeError, AuthorizeOutcome, Step};
use crate::tenants::PickerEntry;
use portico_model::TenantId;
use portico_store::AuditEvent;

/// Seconds within which a restarted request coming back without any cookie means a browser that
/// keeps none (each restart would send it to another restart).
const RESTART_LOOP: i64 = 10;

/// `/oauth2/authorize`: validates the request, binds it to this browser and decides it.
pub async fn authorize(cx: &Cx<'_>, params: &[(String, String)]) -> Interaction {
    // A `request_uri` stands for the request its client pushed (RFC 9126 §4).
    let (params, pushed) = match crate::par::resolve(cx.p, params, cx.now).await {
        Ok(Ok(resolved)) => resolved,
        Ok(Err(AuthorizeError::Page(msg))) => return Interaction::refuse(Refusal::BadRequest(msg)),
        Ok(Err(AuthorizeError::Redirect(resp, _))) => return Then::Respond(*resp).into(),
        Err(e) => return failed(Failed::Authorization, e),
    };
    match authorize::validate(cx.p, &params, pushed, cx.now) {
        Err(AuthorizeError::Page(msg)) => Interaction::refuse(Refusal::BadRequest(msg)),
        Err(AuthorizeError::Redirect(resp, _)) => Then::Respond(*resp).into(),
        Ok(mut req) => {
            req.browser = cx.browser.binding.clone();
            bound(cx, proceed(cx, req).await)
        }
    }
}

/// The answer of a step that bound the browser: with its binding cookie when that is new.
fn bound<V>(cx: &Cx<'_>, answer: Interaction<V>) -> Interaction<V> {
    if cx.browser.binding_is_new { answer.with(Cookie::Binding) } else { answer }
}

/// `/oauth2/authorize/resume`: after login, the second factor, consent or the tenant picker.
pub async fn resume(cx: &Cx<'_>, id: &str) -> Interaction {
    let req = match page_request(cx, id).await {
        Ok(req) => req,
        Err(answer) => return answer,
    };
    // Taken before it is decided: of two resumes sent at once only one goes on (one code, one
    // family); a request that still waits after it is stored again.
    match request::take(&cx.p.store, &req, cx.now).await {
        Ok(true) => {
            let kept = req.clone();
            let answer = proceed(cx, req).await;
            // A failure answers nothing: the request waits again, for a reload.
            if matches!(answer.then, Then::Refuse(Refusal::Unavailable(_))) && request::save(&cx.p.store, &cx.p.settings, &kept).await.is_err() {
                tracing::warn!("a resumed request that failed could not be kept");
            }
            answer
        }
        Ok(false) => Interaction::refuse(Refusal::Expired),
        Err(e) => failed(Failed::Authorization, e),
    }
}

async fn load(cx: &Cx<'_>, id: &str) -> Result<Loaded, Interaction> {
    request::load(&cx.p.store, cx.browser.bound.as_deref(), id, cx.now)
        .await
        .map_err(|e| failed(Failed::Authorization, e))
}

/// The request a page (GET) shows. One started in another browser starts over here, as if this
/// browser had just sent it to `/oauth2/authorize`: nothing anyone did for it elsewhere carries.
pub async fn page_request(cx: &Cx<'_>, id: &str) -> Result<AuthRequest, Interaction> {
    match load(cx, id).await? {
        Loaded::Found(req) => Ok(req),
        Loaded::Gone => Err(Interaction::refuse(Refusal::Expired)),
        // Restarted moments ago and back without any cookie: this browser keeps none. Say so
        // rather than restart it again and again. (A link to a restarted request opened later
        // in yet another browser starts over as usual.)
        Loaded::OtherBrowser(req) if req.restarted && !cx.browser.sent_cookies && cx.now - req.created_at < RESTART_LOOP => {
            Err(Interaction::refuse(Refusal::NeedsCookies))
        }
        // A pushed request was good once, in the browser its request_uri reached first; a
        // device's approval starts only where its code was typed (and counted).
        Loaded::OtherBrowser(req) if req.pushed || req.device.is_some() => Err(Interaction::refuse(Refusal::OtherBrowser)),
        Loaded::OtherBrowser(req) => {
            let fresh = req.restarted(cx.browser.binding.clone(), cx.now);
            Err(bound(cx, proceed(cx, fresh).await))
        }
    }
}

/// The request a form (POST) moves on: only in the browser that started it; anything else
/// changes nothing.
pub async fn form_request(cx: &Cx<'_>, id: &str) -> Result<AuthRequest, Interaction> {
    match load(cx, id).await? {
        Loaded::Found(req) => Ok(req),
        Loaded::Gone => Err(Interaction::refuse(Refusal::Expired)),
        Loaded::OtherBrowser(_) => Err(Interaction::refuse(Refusal::OtherBrowser)),
    }
}

/// Decides the request for the browser's session; stores it where it waits for a step.
pub(super) async fn proceed(cx: &Cx<'_>, req: AuthRequest) -> Interaction {
    let (p, now) = (cx.p, cx.now);
    let session = cx.session().await;
    let id = req.id.clone();
    // A request not yet stored (just validated, or restarted): saving it is a new row anyone can
    // cause. Later saves of the same request (after each step) are not counted again.
    let first_save = req.waiting.is_none();
    let device = req.device.clone();
    let (req, step) = match authorize::decide(p, req, session.as_ref(), &cx.browser.from, now).await {
        Ok(AuthorizeOutcome::Respond(resp)) => {
            if let Err(e) = request::finish(&p.store, &id).await {
                tracing::warn!(error = %e, "an answered authorization request stays until it expires");
            }
            return answer(cx, device.as_deref(), &id, resp, false).await;
        }
        Ok(AuthorizeOutcome::ShowLogin(req)) => (req, Step::Login),
        Ok(AuthorizeOutcome::ShowConsent(req, _)) => (req, Step::Consent),
        Ok(AuthorizeOutcome::ShowTenantPicker(req, _)) => (req, Step::TenantPicker),
        Ok(AuthorizeOutcome::ShowSecondFactor(req)) => (req, Step::SecondFactor),
        Err(e) => return failed(Failed::Authorization, e.detail),
    };
    // Kept while the user signs in: a write anyone can cause, so bounded per address.
    if let Some(wait) = cx.browser.from.ip.as_deref().filter(|_| first_save).and_then(|ip| cx.admit.wait(ip)) {
        tracing::info!(retry_after = wait, "pending authorization requests over the per-address rate");
        let resp = authorize::deny(
            p,
            &req,
            ErrorCode::TemporarilyUnavailable,
            "too many sign-ins from this address: try again later",
        );
        return answer(cx, req.device.as_deref(), &req.id, resp, false).await;
    }
    if let Err(e) = request::save(&p.store, &p.settings, &req).await {
        return failed(Failed::Authorization, e);
    }
    Interaction::go(Place::Step(step, req.id))
}

/// The answer to a request: the authorization response, sent to the client — or, for a device's
/// approval (`device`: its user code), recorded on the device's authorization (the code it will
/// redeem by polling, or the denial) and a page that says so. An answer that is neither (a rate
/// limit) records nothing: the device goes on waiting.
async fn answer(cx: &Cx<'_>, device: Option<&str>, request: &str, resp: authorize::AuthResponse, denied_by_user: bool) -> Interaction {
    let Some(user_code) = device else {
        return Then::Respond(resp).into();
    };
    let param = |name: &str| resp.params.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
    let code = param("code");
    // Only the user's own answer is the device's: a refusal of this account (no grant, say) or a
    // rate limit leaves the device waiting, for this user to retry or another to approve.
    if code.is_none() && !denied_by_user {
        let error = param("error");
        return Interaction::refuse(match error.as_deref() {
            Some(e) if e == ErrorCode::TemporarilyUnavailable.as_str() => Refusal::BadRequest("Too many sign-ins from this address. Try again in a minute."),
            // Taken by another browser's approval, or answered or expired meanwhile.
            Some(e) if e == ErrorCode::InvalidRequest.as_str() => Refusal::Expired,
            _ => Refusal::BadRequest("This account cannot sign that device in to this application. Sign in with another account, or ask for access."),
        });
    }
    let approved = code.is_some();
    match crate::device::record_answer(cx.p, user_code, request, code.as_deref(), cx.now).await {
        Ok(true) => Interaction::go(Place::DeviceDone(approved)),
        Ok(false) => Interaction::refuse(Refusal::Expired),
        Err(e) => failed(Failed::Authorization, e),
    }
}

/// A user code typed at `/device`: the device's authorization it names, approved through the
/// same steps as a sign-in for an application (sign-in, second factor, tenant, consent), in this
/// browser. A code that names nothing waiting is [`Refusal::BadDeviceCode`], looked up only when
/// it has the form of one.
pub async fn enter_device_code(cx: &Cx<'_>, typed: &str) -> Interaction {
    let Some(code) = crate::device::normalize_user_code(typed) else {
        return Interaction::refuse(Refusal::BadDeviceCode);
    };
    match crate::device::waiting(cx.p, &code, cx.now).await {
        Ok(Some(grant)) => {
            let req = crate::device::approval_request(&grant, &code, cx.browser.binding.clone(), cx.now);
            bound(cx, proceed(cx, req).await)
        }
        Ok(None) => Interaction::refuse(Refusal::BadDeviceCode),
        Err(e) => failed(Failed::Authorization, e),
    }
}

/// The request a step's page or form names, waiting at `step` for the browser's session; otherwise
/// the answer: decided anew for a page, refused for a form (nothing changes).
async fn waiting_at(cx: &Cx<'_>, id: &str, step: Step, form: bool) -> Result<(AuthRequest, portico_store::SsoSession), Interaction> {
    let req = if form { form_request(cx, id).await? } else { page_request(cx, id).await? };
    match cx.session().await {
        Some(session) if req.waits_for(step, &session) => Ok((req, session)),
        // Signed out meanwhile, or another session: the request is decided again, by resume,
        // which takes it first (so two pages at once make one answer).
        None => Err(Interaction::go(Place::Resume(req.id))),
        Some(_) if form => Err(Interaction::refuse(Refusal::NotWaiting)),
        Some(_) => Err(Interaction::go(Place::Resume(req.id))),
    }
}

/// What the consent page shows.
#[derive(Debug)]
pub struct ConsentView {
    pub req: AuthRequest,
    /// The client's name (its id when it has none).
    pub client: String,
    pub product: String,
    pub tenant: Option<String>,
    /// For a device's approval: the user code, as the device shows it.
    pub device: Option<String>,
    /// For a device's approval: the account it signs the device in to (a shared browser may be
    /// signed in as someone else).
    pub account: Option<String>,
}

/// The consent page, shown only to the session the request waits for; anyone else gets the
/// request decided anew.
pub async fn consent_page(cx: &Cx<'_>, id: &str) -> Interaction<ConsentView> {
    let (req, session) = match waiting_at(cx, id, Step::Consent, false).await {
        Ok(x) => x,
        Err(answer) => return answer.into_any(),
    };
    let account = match &req.device {
        Some(_) => match cx.p.store.user_by_id(&session.user_id).await {
            Ok(user) => user.map(|u| u.email),
            Err(e) => return failed(Failed::Consent, e),
        },
        None => None,
    };
    let config = cx.p.config();
    let client = config.client(&req.client_id).map(|e| e.client.name.clone()).filter(|n| !n.is_empty());
    let product = config.product_by_audience(&req.audience).map(|p| p.name.clone()).unwrap_or_default();
    let tenant = req
        .waiting
        .as_ref()
        .and_then(|w| w.tenant.as_deref())
        .and_then(|t| config.tenant(&TenantId::new(t)))
        .map(|t| t.name.clone());
    Interaction::show(ConsentView {
        client: client.unwrap_or_else(|| req.client_id.clone()),
        product,
        tenant,
        device: req.device.as_deref().map(crate::device::display_user_code),
        account,
        req,
    })
}

/// The consent form's answer. Only the session the request waits for, at the consent step, may
/// give it, once: of two answers sent at once only one goes on (and makes a code).
pub async fn consent(cx: &Cx<'_>, id: &str, allow: bool) -> Interaction {
    let (mut req, session) = match waiting_at(cx, id, Step::Consent, true).await {
        Ok(x) => x,
        Err(answer) => return answer,
    };
    let p = cx.p;
    match request::take(&p.store, &req, cx.now).await {
        Ok(true) => {}
        Ok(false) => return Interaction::refuse(Refusal::Expired),
        Err(e) => return failed(Failed::Consent, e),
    }
    if !allow {
        let resp = authorize::deny(p, &req, ErrorCode::AccessDenied, "the user denied the request");
        return answer(cx, req.device.as_deref(), &req.id, resp, true).await;
    }
    let Some(product) = p.config().product_by_audience(&req.audience).map(|x| x.slug.clone()) else {
        return Interaction::refuse(Refusal::Expired);
    };
    let event = AuditEvent::new(cx.now, "consent.granted", session.user_id.as_str())
        .product(product.as_str())
        .data(serde_json::json!({"client_id": req.client_id, "scope": req.scope_string()}));
    if let Err(e) = record_consent(cx, &session, &req, product.as_str(), event).await {
        return failed(Failed::Consent, e);
    }
    req.advance(&session, |g| g.consent_done = true);
    proceed(cx, req).await
}

/// Records the consent and its audit event in one transaction.
async fn record_consent(
    cx: &Cx<'_>,
    session: &portico_store::SsoSession,
    req: &AuthRequest,
    product: &str,
    event: AuditEvent,
) -> Result<(), portico_store::StoreError> {
    let mut tx = cx.p.store.write().await?;
    tx.put_consent(&session.user_id, &req.client_id, product, &req.scope_string(), cx.now).await?;
    tx.audit(event);
    tx.commit().await?;
    Ok(())
}

/// What the tenant picker shows: buttons in a list, the last one used first.
#[derive(Debug)]
pub struct TenantView {
    pub req: AuthRequest,
    pub product: String,
    pub entries: Vec<PickerEntry>,
}

/// The tenant picker, shown only to the session the request waits for.
pub async fn tenant_page(cx: &Cx<'_>, id: &str) -> Interaction<TenantView> {
    let (req, session) = match waiting_at(cx, id, Step::TenantPicker, false).await {
        Ok(x) => x,
        Err(answer) => return answer.into_any(),
    };
    let config = cx.p.config();
    let Some(product) = config.product_by_audience(&req.audience) else {
        return Interaction::refuse(Refusal::Expired);
    };
    match crate::tenants::picker_entries(cx.p, &session.user_id, product, cx.now).await {
        Ok(entries) => Interaction::show(TenantView {
            product: product.name.clone(),
            entries,
            req,
        }),
        Err(e) => failed(Failed::Organizations, e),
    }
}

/// The picker's choice: only the session the request waits for, at the picker, chooses its
/// tenant; once.
pub async fn choose_tenant(cx: &Cx<'_>, id: &str, organization: Option<String>) -> Interaction {
    let (mut req, session) = match waiting_at(cx, id, Step::TenantPicker, true).await {
        Ok(x) => x,
        Err(answer) => return answer,
    };
    match request::take(&cx.p.store, &req, cx.now).await {
        Ok(true) => {}
        Ok(false) => return Interaction::refuse(Refusal::Expired),
        Err(e) => return failed(Failed::Authorization, e),
    }
    // Kept with the request: bounded like the `organization` parameter it stands for (a longer
    // one names no tenant, and the picker shows again).
    let limit = authorize::MAX_PARAM.iter().find(|(k, _)| *k == "organization").map_or(0, |(_, l)| *l);
    let choice = organization.filter(|o| !o.is_empty() && o.len() <= limit);
    req.advance(&session, |g| g.organization = choice);
    proceed(cx, req).await
}
