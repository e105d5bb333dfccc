//! `grant_type=urn:ietf:params:oauth:grant-type:device_code` (RFC 8628 §3.4, §3.5): the device
//! polls with its device code. Until its user answers, `authorization_pending`; polling faster
//! than the interval, `slow_down` ("the interval MUST be increased by 5 seconds for this and all
//! subsequent requests"); denied, `access_denied`; past its lifetime, `expired_token`. Approved,
//! the code issued for it is redeemed once, through the same gate as any code: the device code
//! is single use.

use super::authorization_code::redeem_for_device;
use super::{TokenRequest, TokenResponse};
use crate::device::{DeviceGrant, DeviceState};
use crate::error::{OAuthError, oauth};
use crate::interaction::pending::{self, Kind};
use crate::provider::Provider;
use portico_model::Client;

pub async fn grant(p: &Provider, client: &Client, req: TokenRequest, now: i64) -> Result<TokenResponse, OAuthError> {
    let device_code = req
        .device_code
        .as_deref()
        .filter(|c| !c.is_empty())
        .ok_or_else(|| oauth!(InvalidRequest, "device_code is required"))?;
    let unknown = || oauth!(InvalidGrant, "the device code is invalid or was used already");
    if device_code.len() > 128 {
        return Err(unknown());
    }
    let user_code: String = pending::get(&p.store, Kind::DeviceCode, device_code, now).await?.ok_or_else(unknown)?;
    let (grant, record) = pending::get_with_record::<DeviceGrant>(&p.store, Kind::DeviceGrant, &user_code, now)
        .await?
        .ok_or_else(unknown)?;
    let same_code = bool::from(subtle::ConstantTimeEq::ct_eq(
        grant.device_code_hash.as_bytes(),
        crate::random::hash(device_code).as_bytes(),
    ));
    if !same_code || grant.client_id != client.id.as_str() {
        return Err(unknown().detail("a device code of another client"));
    }
    if now >= grant.expires_at {
        forget(p, device_code, &user_code).await;
        return Err(oauth!(ExpiredToken, "the device code has expired: start again"));
    }
    match &grant.state {
        DeviceState::Pending | DeviceState::Approving { .. } => Err(poll(p, &user_code, &record, grant, now).await?),
        DeviceState::Denied => {
            forget(p, device_code, &user_code).await;
            Err(oauth!(AccessDenied, "the user denied the request"))
        }
        DeviceState::Approved { code_hash } => {
            // Taken once: of two polls at once, one redeems.
            if !pending::take_if_unchanged(&p.store, Kind::DeviceGrant, &user_code, &record, now).await? {
                return Err(unknown());
            }
            forget(p, device_code, &user_code).await;
            redeem_for_device(p, client, code_hash, req.dpop_jkt.as_deref(), req.ip, now).await
        }
    }
}

/// A poll while the user has not answered: `slow_down` when it came sooner than the interval
/// after the last (the interval then grows), `authorization_pending` otherwise. The poll is
/// recorded only if no other changed the record meanwhile; one that lost that race polled too
/// fast.
async fn poll(p: &Provider, user_code: &str, record: &str, grant: DeviceGrant, now: i64) -> Result<OAuthError, OAuthError> {
    let too_soon = grant.last_poll.is_some_and(|last| now - last < grant.interval);
    let interval = if too_soon { grant.interval + 5 } else { grant.interval };
    let polled = DeviceGrant {
        last_poll: Some(now),
        interval,
        ..grant
    };
    let recorded = pending::replace_if_unchanged(&p.store, Kind::DeviceGrant, user_code, record, &polled, now).await?;
    Ok(if too_soon || !recorded {
        oauth!(SlowDown, "polling too fast: wait longer between requests")
    } else {
        oauth!(AuthorizationPending, "the user has not answered yet")
    })
}

async fn forget(p: &Provider, device_code: &str, user_code: &str) {
    for (kind, handle) in [(Kind::DeviceCode, device_code), (Kind::DeviceGrant, user_code)] {
        if let Err(e) = pending::forget(&p.store, kind, handle).await {
            tracing::warn!(error = %e, "a spent device authorization stays until it expires");
        }
    }
}
