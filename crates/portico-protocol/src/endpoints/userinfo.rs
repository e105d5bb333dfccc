//! The UserInfo endpoint (OpenID Connect Core §5.3): the claims the access token's scope allows.

use crate::error::{OAuthError, oauth};
use crate::provider::Provider;
use crate::verify::{decode_access_token, is_live};
use portico_model::Scope;
use serde_json::{Value, json};

/// How the access token came (RFC 6750 §2, RFC 9449 §7.1).
#[derive(Clone, Debug, Default)]
pub struct Presented {
    pub token: Option<String>,
    /// The scheme, the proof, the method and URL (for a DPoP-bound token).
    pub at: crate::dpop::AtResource,
    /// The `Origin` of a cross-origin request: its token's client must have registered it.
    pub origin: Option<String>,
}

impl Presented {
    /// `token` as a bearer token in a GET.
    pub fn bearer(token: &str) -> Self {
        Self {
            token: Some(token.to_owned()),
            ..Self::default()
        }
    }
}

pub async fn userinfo(p: &Provider, presented: &Presented, now: i64) -> Result<Value, OAuthError> {
    let token = presented.token.as_deref().ok_or_else(|| OAuthError {
        no_credentials: true,
        ..oauth!(InvalidToken, "an access token is required")
    })?;
    let c = decode_access_token(p, token, now).ok_or_else(|| OAuthError {
        dpop_challenge: presented.at.dpop_scheme,
        ..oauth!(InvalidToken, "the access token is invalid or expired")
    })?;
    // Before the proof's `jti` is recorded: a refused origin changes nothing.
    crate::cors::check_client(p, Some(&c.client_id), presented.origin.as_deref())?;
    crate::dpop::bound_request(p, &presented.at, token, c.cnf.as_ref(), now).await?;
    // A refusal after this point challenges as the token came: DPoP for a bound one.
    let invalid = || OAuthError {
        dpop_challenge: c.cnf.is_some(),
        ..oauth!(InvalidToken, "the access token is invalid or expired")
    };
    let subject = portico_model::Subject::of_claim(&c.sub);
    let Some(user_id) = subject.user().filter(|_| Scope::has(&c.scope, "openid")) else {
        return Err(invalid());
    };
    if !is_live(p, &c, now).await? {
        return Err(invalid());
    }
    let user = p.store.user_by_id(user_id).await?.ok_or_else(invalid)?;
    let mut out = json!({"sub": user.id.as_str()});
    if Scope::has(&c.scope, "profile") {
        out["name"] = json!(user.name);
    }
    if Scope::has(&c.scope, "email") {
        out["email"] = json!(user.email);
        out["email_verified"] = json!(user.email_verified);
    }
    Ok(out)
}
