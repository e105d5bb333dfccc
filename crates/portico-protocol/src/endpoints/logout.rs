//! Ending sessions: OpenID Connect RP-Initiated Logout 1.0 at `/oauth2/logout`, and "sign out
//! everywhere". Ending an SSO session ends every product session in it, kills their token families
//! and queues a back-channel logout notice for each product that has a URI, in one transaction.

use crate::provider::Provider;
use crate::verify::decode_id_token_hint;
use portico_model::{Client, UserId};
use portico_store::{AuditEvent, SsoSession, StoreError};
use std::sync::Arc;

/// The parameters of a logout request (§2).
#[derive(Clone, Debug, Default)]
pub struct LogoutRequest {
    pub id_token_hint: Option<String>,
    pub client_id: Option<String>,
    pub post_logout_redirect_uri: Option<String>,
    pub state: Option<String>,
}

/// A logout request that passed validation.
#[derive(Clone, Debug)]
pub struct ValidLogout {
    /// The client that asked, named by `client_id` or the hint's audience.
    pub client: Option<Arc<Client>>,
    /// Where to send the browser afterwards: a registered post-logout redirect URI, with `state`.
    pub redirect: Option<String>,
    /// The user the `id_token_hint` names, and the product session (`sid`) it was issued in.
    pub hinted_user: Option<UserId>,
    pub hinted_sid: Option<String>,
    /// The request's own parameters, to carry through a confirmation.
    pub post_logout_redirect_uri: Option<String>,
    pub state: Option<String>,
}

/// Validates a logout request. An error is shown to the user, never sent to a redirect URI: the
/// URI is only trusted once it matched a registered one exactly (§3).
pub fn validate(p: &Provider, req: &LogoutRequest, now: i64) -> Result<ValidLogout, &'static str> {
    let hint = match req.id_token_hint.as_deref().filter(|h| !h.is_empty()) {
        Some(h) => Some(decode_id_token_hint(p, h, now).ok_or("The logout request carries an ID token that Portico did not issue.")?),
        None => None,
    };
    let config = p.config();
    let client_id = match (req.client_id.as_deref().filter(|c| !c.is_empty()), &hint) {
        (Some(c), Some(h)) if h.aud != c => return Err("The logout request names a client that its ID token was not issued to."),
        (Some(c), _) => Some(c.to_owned()),
        (None, Some(h)) => Some(h.aud.clone()),
        (None, None) => None,
    };
    let client = match &client_id {
        Some(c) => Some(
            config
                .client(c)
                .map(|e| e.client.clone())
                .ok_or("The logout request names an unknown client.")?,
        ),
        None => None,
    };
    let redirect = match (req.post_logout_redirect_uri.as_deref().filter(|u| !u.is_empty()), &client) {
        (None, _) => None,
        (Some(_), None) => return Err("A post_logout_redirect_uri needs client_id or id_token_hint to say whose it is."),
        (Some(uri), Some(c)) => {
            if !config.post_logout_redirect_of(c, uri) {
                return Err("The post_logout_redirect_uri is not registered for this client.");
            }
            let mut url = url::Url::parse(uri).map_err(|_| "The post_logout_redirect_uri is not a URL.")?;
            if let Some(state) = req.state.as_deref() {
                url.query_pairs_mut().append_pair("state", state);
            }
            Some(url.to_string())
        }
    };
    Ok(ValidLogout {
        client,
        redirect,
        hinted_sid: hint.as_ref().and_then(|h| h.sid.clone()),
        hinted_user: hint.map(|h| UserId::new(h.sub)),
        post_logout_redirect_uri: req.post_logout_redirect_uri.clone(),
        state: req.state.clone(),
    })
}

/// Whether the user must confirm: the request cannot prove it came from an application of this
/// very session (no `id_token_hint`, one for somebody else, or one issued in another session —
/// an old ID token from a log or another device). Logout CSRF must not sign people out silently.
pub async fn needs_confirmation(p: &Provider, v: &ValidLogout, session: &SsoSession) -> Result<bool, StoreError> {
    if v.hinted_user.as_ref() != Some(&session.user_id) {
        return Ok(true);
    }
    let Some(sid) = &v.hinted_sid else { return Ok(true) };
    Ok(p.store.sso_of_live_sid(sid).await?.as_deref() != Some(session.id.as_str()))
}

/// Ends one SSO session and everything in it (its commit wakes the back-channel worker). `by` is who asked
/// (the user, or an administrator); `how` says through what (`rp_logout`, `account`, `admin`).
pub async fn end_session(p: &Provider, session_id: &str, user: &UserId, by: &str, how: &str, ip: Option<String>, now: i64) -> Result<bool, StoreError> {
    let config = p.config();
    let notify = |c: &str| config.notifies_logout(c);
    let event = AuditEvent::new(now, "session.ended", by)
        .ip(ip)
        .data(serde_json::json!({"user": user.as_str(), "session": session_id, "via": how}));
    let mut tx = p.store.write().await?;
    let ended = tx.end_sso_session(session_id, user, now, &notify).await?;
    if ended {
        tx.audit(event);
    }
    tx.commit().await?;
    Ok(ended)
}

/// Ends every session of a user on every device ("sign out everywhere"). Returns how many ended.
pub async fn end_all_sessions(p: &Provider, user: &UserId, by: &str, how: &str, ip: Option<String>, now: i64) -> Result<usize, StoreError> {
    let config = p.config();
    let notify = |c: &str| config.notifies_logout(c);
    let event = AuditEvent::new(now, "session.ended_all", by)
        .ip(ip)
        .data(serde_json::json!({"user": user.as_str(), "via": how}));
    let mut tx = p.store.write().await?;
    let ended = tx.end_user_sessions(user, now, &notify).await?;
    if ended > 0 {
        tx.audit(event);
    }
    tx.commit().await?;
    Ok(ended)
}
