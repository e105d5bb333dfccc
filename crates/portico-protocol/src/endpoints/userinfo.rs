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
    /// `Authorization: DPoP …` rather than `Bearer`.
    pub dpop_scheme: bool,
    /// The `DPoP` proof header.
    pub proof: crate::dpop::Presented,
    /// The request's method (`GET`, `POST`), which the proof must name.
    pub method: &'static str,
}

impl Presented {
    /// `token` as a bearer token in a GET.
    pub fn bearer(token: &str) -> Self {
        Self {
            token: Some(token.to_owned()),
            method: "GET",
            ..Self::default()
        }
    }
}

pub async fn userinfo(p: &Provider, presented: &Presented, now: i64) -> Result<Value, OAuthError> {
    let challenge = |e: OAuthError| OAuthError {
        dpop_challenge: e.dpop_challenge || presented.dpop_scheme,
        ..e
    };
    let token = presented.token.as_deref().ok_or_else(|| OAuthError {
        no_credentials: true,
        ..oauth!(InvalidToken, "an access token is required")
    })?;
    let c = decode_access_token(p, token, now).ok_or_else(|| challenge(oauth!(InvalidToken, "the access token is invalid or expired")))?;
    bound(p, presented, token, c.cnf.as_ref(), now).await.map_err(challenge)?;
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

/// RFC 9449 §7: a bound token only with the `DPoP` scheme and a proof of its key (for this
/// request, with `ath` its hash); an unbound one only as `Bearer`.
async fn bound(p: &Provider, presented: &Presented, token: &str, cnf: Option<&portico_claims::Confirmation>, now: i64) -> Result<(), OAuthError> {
    let refused = |why: &str| OAuthError {
        dpop_challenge: true,
        ..oauth!(
            InvalidToken,
            "the access token is DPoP-bound: present it with the DPoP scheme and a proof of its key"
        )
        .detail(why.to_owned())
    };
    match (cnf, presented.dpop_scheme) {
        (None, false) => Ok(()),
        (None, true) => Err(oauth!(InvalidToken, "the access token is not DPoP-bound").detail("an unbound token with the DPoP scheme")),
        (Some(_), false) => Err(refused("a bound token as a bearer token")),
        (Some(cnf), true) => {
            let htu = format!("{}/oauth2/userinfo", p.issuer);
            let proof = crate::dpop::verify(p, &presented.proof, presented.method, &htu, Some(token), now)
                .await?
                .ok_or_else(|| refused("no DPoP proof"))?;
            if proof.jkt != cnf.jkt {
                return Err(refused("a proof of another key"));
            }
            Ok(())
        }
    }
}
