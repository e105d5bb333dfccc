//! The device authorization grant (RFC 8628) for command-line tools, TVs and anything else
//! without a browser of its own: the device asks [`authorize_device`] for a device code and a
//! user code, shows the user code, and polls the token endpoint (`token::device_code`) while its
//! user, in any browser, enters the code at `/device`, signs in and approves.
//!
//! The approval runs through the same interaction as an authorization request — sign-in, second
//! factor, tenant choice, consent (always asked: RFC 8628 §5.4, the user must see which
//! application asks, and for which product and tenant), then the policy gate — and ends in an
//! authorization code issued to the device's record instead of a redirect. The device redeems it
//! by polling, once; the code never leaves Portico.

use crate::authorize::{AuthRequest, ResponseMode};
use crate::client_auth::{ClientCredentials, authenticate_client};
use crate::error::{OAuthError, oauth};
use crate::interaction::pending::{self, Kind};
use crate::params::Params;
use crate::provider::Provider;
use crate::random;
use portico_model::GrantType;
use portico_store::StoreError;
use serde::{Deserialize, Serialize};

/// How long a device code and its user code live (RFC 8628 §3.2 `expires_in`).
pub const DEVICE_TTL: i64 = 600;
/// How long a browser holds a device authorization while it makes its approval.
pub const APPROVING: i64 = 60;
/// How long a device authorization is kept after it expired, so a late poll hears
/// `expired_token` rather than `invalid_grant`.
pub const EXPIRED_KEPT: i64 = 600;
/// Seconds between polls (§3.2 `interval`); §3.5: `slow_down` adds 5.
pub const INTERVAL: i64 = 5;
/// The redirect URI of a code issued to a device's record: no browser is ever sent to it, and the
/// authorization code grant refuses a code issued for it.
pub const DEVICE_REDIRECT: &str = "urn:ietf:params:oauth:grant-type:device_code";
/// RFC 8628 §6.1: "BCDFGHJKLMNPQRSTVWXZ" — no vowels (no words), nothing that reads like another
/// character; eight of them is 20^8 ≈ 2^34.6 codes, typed as `WDJB-MJHT`.
const ALPHABET: &[u8; 20] = b"BCDFGHJKLMNPQRSTVWXZ";
const USER_CODE_LEN: usize = 8;

/// What the device asked for and where its user got to, kept under the user code.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct DeviceGrant {
    pub client_id: String,
    pub scope: Vec<String>,
    pub audience: String,
    pub organization: Option<String>,
    /// The hash of the device code: the record answers only its own device.
    pub device_code_hash: String,
    pub expires_at: i64,
    /// Seconds the device must wait between polls; grows with each `slow_down`.
    pub interval: i64,
    pub last_poll: Option<i64>,
    pub state: DeviceState,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum DeviceState {
    Pending,
    /// A browser's approval is being made (its request id): no other browser may approve it
    /// meanwhile, until `until` (an approval that never finished frees it again).
    Approving {
        request: String,
        until: i64,
    },
    /// Approved: the hash of the authorization code issued for it, redeemed by the next poll.
    Approved {
        code_hash: String,
    },
    Denied,
}

/// RFC 8628 §3.2.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct DeviceAuthorization {
    pub device_code: String,
    pub user_code: String,
    pub verification_uri: String,
    pub verification_uri_complete: String,
    pub expires_in: i64,
    pub interval: i64,
}

/// A fresh user code, eight characters of [`ALPHABET`] (rejection sampling: no character is
/// likelier than another).
fn new_user_code() -> String {
    let mut code = String::with_capacity(USER_CODE_LEN);
    while code.len() < USER_CODE_LEN {
        for b in random::bytes::<16>() {
            // 240 = 12 × 20: bytes above it would favour the first characters.
            if b < 240 && code.len() < USER_CODE_LEN {
                code.push(ALPHABET[usize::from(b % 20)] as char);
            }
        }
    }
    code
}

/// A user code as people type it — any case, with or without the dash or spaces — in its stored
/// form, or `None` when it cannot be one (no lookup is made for it).
pub fn normalize_user_code(typed: &str) -> Option<String> {
    let code: String = typed.chars().filter(|c| !matches!(c, '-' | ' ')).map(|c| c.to_ascii_uppercase()).collect();
    (code.len() == USER_CODE_LEN && code.bytes().all(|b| ALPHABET.contains(&b))).then_some(code)
}

/// The user code as shown: `WDJB-MJHT`.
pub fn display_user_code(code: &str) -> String {
    format!("{}-{}", &code[..4], &code[4..])
}

/// `POST /oauth2/device_authorization` (RFC 8628 §3.1): the client authenticates as at the token
/// endpoint (a public client names itself); `scope`, `resource` and `organization` as at the
/// authorization endpoint.
pub async fn authorize_device(p: &Provider, creds: &ClientCredentials, form: &[(String, String)], now: i64) -> Result<DeviceAuthorization, OAuthError> {
    let client = authenticate_client(p, creds, now).await?.client;
    if !client.allows(GrantType::DeviceCode) {
        return Err(oauth!(UnauthorizedClient, "this client may not use the device authorization grant"));
    }
    let q = Params(form);
    // The authorization endpoint's limits, for the parameters it shares.
    if ["scope", "organization", "resource"]
        .iter()
        .any(|k| q.all(k).iter().any(|v| v.len() > crate::authorize::limit_of(k)))
    {
        return Err(oauth!(InvalidRequest, "a parameter is longer than Portico accepts"));
    }
    let scope = crate::authorize::words(q.get("scope"));
    if scope.iter().any(|s| !crate::authorize::SCOPES.contains(&s.as_str())) {
        return Err(oauth!(InvalidScope, "unknown scope"));
    }
    let resources: Vec<String> = q.all("resource").into_iter().filter(|v| !v.is_empty()).collect();
    if resources.len() > 1 {
        return Err(oauth!(InvalidTarget, "a token is for exactly one resource"));
    }
    let config = p.config();
    let product = config
        .resolve_audience(&client, resources.first().map(String::as_str))
        .map_err(|_| oauth!(InvalidTarget, "the resource is not a product this client may ask tokens for"))?;
    let device_code = random::token();
    let grant = DeviceGrant {
        client_id: client.id.as_str().to_owned(),
        scope,
        audience: product.audience.as_str().to_owned(),
        organization: q.get("organization").filter(|o| !o.is_empty()),
        device_code_hash: random::hash(&device_code),
        expires_at: now + DEVICE_TTL,
        interval: INTERVAL,
        last_poll: None,
        state: DeviceState::Pending,
    };
    // A user code names one live authorization: one already taken is drawn again.
    // Eight draws all taken would mean ~2^34 codes live: the store is not what it seems.
    let mut user_code = None;
    for _ in 0..8 {
        let code = new_user_code();
        if pending::put_once(&p.store, Kind::DeviceGrant, &code, &grant, now + DEVICE_TTL + EXPIRED_KEPT, now, &p.settings).await? {
            user_code = Some(code);
            break;
        }
    }
    let user_code = user_code.ok_or_else(|| OAuthError::server("eight user codes drawn were all taken"))?;
    pending::put(&p.store, &p.settings, Kind::DeviceCode, &device_code, &user_code, now).await?;
    let shown = display_user_code(&user_code);
    Ok(DeviceAuthorization {
        device_code,
        verification_uri: format!("{}/device", p.issuer),
        verification_uri_complete: format!("{}/device?user_code={shown}", p.issuer),
        user_code: shown,
        expires_in: DEVICE_TTL,
        interval: INTERVAL,
    })
}

/// The device authorization a user typed the code of, while it waits for approval.
pub async fn waiting(p: &Provider, user_code: &str, now: i64) -> Result<Option<DeviceGrant>, StoreError> {
    let grant: Option<DeviceGrant> = pending::get(&p.store, Kind::DeviceGrant, user_code, now).await?;
    Ok(grant.filter(|g| g.open_to(None, now)))
}

impl DeviceGrant {
    /// Whether an approval may be made (by the request `request`, if named) now: the
    /// authorization is live, and waiting — or held by that request, or by one that gave up.
    fn open_to(&self, request: Option<&str>, now: i64) -> bool {
        now < self.expires_at
            && match &self.state {
                DeviceState::Pending => true,
                DeviceState::Approving { request: holder, until } => *until <= now || request == Some(holder.as_str()),
                DeviceState::Approved { .. } | DeviceState::Denied => false,
            }
    }
}

/// Holds the device authorization for the approval `request` is about to make (its code is
/// issued next): of two browsers approving the same device, one goes on and the other is told it
/// is taken, before anything is made for it. `false` when it is no longer open to this request.
pub async fn reserve(p: &Provider, user_code: &str, request: &str, now: i64) -> Result<bool, StoreError> {
    for _ in 0..8 {
        let Some((grant, record)) = pending::get_with_record::<DeviceGrant>(&p.store, Kind::DeviceGrant, user_code, now).await? else {
            return Ok(false);
        };
        if !grant.open_to(Some(request), now) {
            return Ok(false);
        }
        let held = DeviceGrant {
            state: DeviceState::Approving {
                request: request.to_owned(),
                until: now + APPROVING,
            },
            ..grant
        };
        if pending::replace_if_unchanged(&p.store, Kind::DeviceGrant, user_code, &record, &held, now).await? {
            return Ok(true);
        }
    }
    Ok(false)
}

/// The authorization request the approval runs as, in the browser `binding` names: the device's
/// client, scope, product and tenant, consent always asked.
pub fn approval_request(grant: &DeviceGrant, user_code: &str, binding: String, now: i64) -> AuthRequest {
    AuthRequest {
        id: random::token(),
        client_id: grant.client_id.clone(),
        redirect_uri: DEVICE_REDIRECT.to_owned(),
        response_mode: ResponseMode::Query,
        state: None,
        nonce: None,
        scope: grant.scope.clone(),
        code_challenge: None,
        prompt: vec!["consent".into()],
        max_age: None,
        login_hint: None,
        acr_values: None,
        acr_essential: false,
        audience: grant.audience.clone(),
        organization: grant.organization.clone(),
        created_at: now,
        browser: binding,
        progress: None,
        waiting: None,
        restarted: false,
        web_origin: None,
        pushed: false,
        device: Some(user_code.to_owned()),
        dpop_jkt: None,
        tenant_pinned: false,
        stored: None,
    }
}

/// Records the user's answer for the device: approved with the code issued for it (kept as its
/// hash), or denied. `false` when the authorization is no longer waiting (it expired, or was
/// answered already). A poll that changed the record meanwhile (its bookkeeping) does not lose
/// the answer: it is recorded on the record as the poll left it.
pub async fn record_answer(p: &Provider, user_code: &str, request: &str, code: Option<&str>, now: i64) -> Result<bool, StoreError> {
    for _ in 0..8 {
        let Some((grant, record)) = pending::get_with_record::<DeviceGrant>(&p.store, Kind::DeviceGrant, user_code, now).await? else {
            return Ok(false);
        };
        if !grant.open_to(Some(request), now) {
            return Ok(false);
        }
        let state = match code {
            Some(code) => DeviceState::Approved { code_hash: random::hash(code) },
            None => DeviceState::Denied,
        };
        let answered = DeviceGrant { state, ..grant };
        if pending::replace_if_unchanged(&p.store, Kind::DeviceGrant, user_code, &record, &answered, now).await? {
            return Ok(true);
        }
    }
    Ok(false)
}
