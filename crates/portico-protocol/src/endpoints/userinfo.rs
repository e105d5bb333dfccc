//! The UserInfo endpoint (OpenID Connect Core §5.3): the claims the access token's scope allows.

use crate::error::{OAuthError, oauth};
use crate::provider::Provider;
use crate::verify::{decode_access_token, is_live};
use portico_model::Scope;
use serde_json::{Value, json};

pub async fn userinfo(p: &Provider, bearer: Option<&str>, now: i64) -> Result<Value, OAuthError> {
    let token = bearer.ok_or_else(|| OAuthError {
        no_credentials: true,
        ..oauth!(InvalidToken, "an access token is required")
    })?;
    let c = decode_access_token(p, token, now).ok_or_else(|| oauth!(InvalidToken, "the access token is invalid or expired"))?;
    let subject = portico_model::Subject::of_claim(&c.sub);
    let Some(user_id) = subject.user().filter(|_| Scope::has(&c.scope, "openid")) else {
        return Err(oauth!(InvalidToken, "the access token is invalid or expired"));
    };
    if !is_live(p, &c, now).await? {
        return Err(oauth!(InvalidToken, "the access token is invalid or expired"));
    }
    let user = p
        .store
        .user_by_id(user_id)
        .await?
        .ok_or_else(|| oauth!(InvalidToken, "the access token is invalid or expired"))?;
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
