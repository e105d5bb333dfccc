//! Calls this product's backend makes to Portico as its confidential client
//! (`client_secret_basic`, RFC 6749 §2.3.1): redeeming a hand-off code (Portico's
//! `/oauth2/handoff`, redeemed by RFC 8693 token exchange with
//! `subject_token_type=urn:portico:token-type:handoff`), and introspection (RFC 7662) for routes
//! that must see a revocation before the access token expires.

use crate::{Guard, Principal, Reason, Refusal};
use base64::Engine;
use serde::Deserialize;
use std::collections::HashMap;
use std::sync::Mutex;

/// The token type of a Portico hand-off code.
pub const HANDOFF_TOKEN_TYPE: &str = "urn:portico:token-type:handoff";
/// How long an introspection answer is reused (seconds, and never past the token's `exp`).
pub const INTROSPECTION_CACHE: i64 = 30;
const INTROSPECTION_CAPACITY: usize = 10_000;

/// A confidential client's id and secret. `Debug` never shows the secret.
#[derive(Clone)]
pub struct ClientCredentials {
    pub(crate) id: String,
    /// The `Authorization` header value, made once (it carries the secret).
    authorization: String,
}

impl std::fmt::Debug for ClientCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientCredentials")
            .field("id", &self.id)
            .field("secret", &"[redacted]")
            .finish()
    }
}

impl ClientCredentials {
    /// `id` and `secret` as registered in the suite file.
    pub fn new(id: &str, secret: &str) -> Self {
        // RFC 6749 §2.3.1: both form-encoded, then Basic.
        let enc = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
        let pair = format!("{}:{}", enc(id), enc(secret));
        let authorization = format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(pair));
        Self {
            id: id.to_owned(),
            authorization,
        }
    }
}

/// Why a hand-off could not be redeemed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HandoffError {
    /// The guard has no client credentials, or discovery named no token endpoint.
    #[error("hand-off redemption needs client_credentials and the issuer's token_endpoint")]
    NotConfigured,
    /// Portico refused the code (used, expired, for another product…): RFC 6749 §5.2 `error`.
    #[error("the issuer refused the hand-off code: {0}")]
    Refused(String),
    /// Portico could not be reached, or answered something unreadable.
    #[error("redeeming the hand-off code failed: {0}")]
    Unavailable(String),
    /// The access token Portico answered did not verify for this product.
    #[error("the token answered for the hand-off did not verify: {0:?}")]
    Token(Reason),
}

/// A new hand-off code and the page of the target product it is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HandoffLink {
    /// Single use, short-lived.
    pub code: String,
    /// Seconds the code is good for.
    pub expires_in: i64,
    /// The target's hand-off page with `?handoff_code=…`: open it in the user's browser.
    pub url: Option<String>,
}

/// A redeemed hand-off: this product's own tokens for the user, and the context the other
/// product sent (opaque to Portico, at most 1 KiB).
#[derive(Debug)]
pub struct Handoff {
    /// The user, as this product's access token says.
    pub principal: Principal,
    /// This product's access token.
    pub access_token: String,
    /// Its lifetime in seconds.
    pub expires_in: i64,
    /// A refresh token, when the client may have one.
    pub refresh_token: Option<String>,
    /// An ID token, when `openid` was among the scopes.
    pub id_token: Option<String>,
    /// The deep-link context the other product attached.
    pub context: Option<String>,
}

#[derive(Deserialize)]
struct ExchangeAnswer {
    access_token: String,
    #[serde(default)]
    expires_in: i64,
    refresh_token: Option<String>,
    id_token: Option<String>,
    context: Option<String>,
}

#[derive(Deserialize)]
struct ErrorAnswer {
    error: String,
}

#[derive(Default)]
pub(crate) struct IntrospectionCache {
    answers: Mutex<HashMap<[u8; 32], (bool, i64)>>,
}

fn sha256(token: &str) -> [u8; 32] {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, token.as_bytes());
    let mut out = [0u8; 32];
    out.copy_from_slice(digest.as_ref());
    out
}

/// RFC 6749 §5.2's `error`, or the status when the answer has none.
fn refused(status: u16, body: &[u8]) -> HandoffError {
    HandoffError::Refused(
        serde_json::from_slice::<ErrorAnswer>(body)
            .map(|e| e.error)
            .unwrap_or_else(|_| format!("HTTP {status}")),
    )
}

impl IntrospectionCache {
    fn get(&self, key: &[u8; 32], now: i64) -> Option<bool> {
        let answers = self.answers.lock().unwrap_or_else(|p| p.into_inner());
        answers.get(key).and_then(|(active, until)| (*until > now).then_some(*active))
    }

    fn put(&self, key: [u8; 32], active: bool, until: i64, now: i64) {
        let mut answers = self.answers.lock().unwrap_or_else(|p| p.into_inner());
        if answers.len() >= INTROSPECTION_CAPACITY {
            answers.retain(|_, (_, u)| *u > now);
        }
        // Still full of live answers: make room (any one; it is only a cache) rather than stop
        // caching and sweep again on every miss.
        if answers.len() >= INTROSPECTION_CAPACITY {
            let victim = answers.keys().next().copied();
            victim.map(|k| answers.remove(&k));
        }
        answers.insert(key, (active, until));
    }
}

impl Guard {
    async fn post_form(&self, endpoint: Option<&String>, form: &[(&str, &str)]) -> Result<(u16, Vec<u8>), HandoffError> {
        let (Some(endpoint), Some(client)) = (endpoint, self.inner.client.as_ref()) else {
            return Err(HandoffError::NotConfigured);
        };
        // Built before the request: the serializer is not `Send`, so it must not live across `.await`.
        let body = url::form_urlencoded::Serializer::new(String::new()).extend_pairs(form).finish();
        let response = self
            .inner
            .http
            .post(endpoint)
            .header("authorization", &client.authorization)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .await
            .map_err(|e| HandoffError::Unavailable(e.without_url().to_string()))?;
        let status = response.status().as_u16();
        let mut response = response;
        let body = crate::source::read_capped(&mut response, endpoint)
            .await
            .map_err(|e| HandoffError::Unavailable(e.to_string()))?;
        Ok((status, body))
    }

    /// Obtains a hand-off code (Portico's `/oauth2/handoff`) that moves the caller of this product
    /// to the product `resource` (its audience), for `organization` (default: the token's tenant)
    /// with an opaque `context` (at most 1 KiB, e.g. a deep link), as this product's client.
    /// `subject_token` is the caller's access token for this product. Returns the single-use code
    /// and its lifetime in seconds; hand the code to the other product's front end, never a token.
    pub async fn create_handoff(
        &self,
        subject_token: &str,
        resource: &str,
        organization: Option<&str>,
        context: Option<&str>,
    ) -> Result<(String, i64), HandoffError> {
        let link = self.handoff_link(subject_token, resource, organization, context).await?;
        Ok((link.code, link.expires_in))
    }

    /// As [`Guard::create_handoff`], with where to send the user: the target product's registered
    /// hand-off page with the code as its one parameter (`None` when the product registered no
    /// page). This is what a browser SDK's `openProduct` navigates its new tab to.
    pub async fn handoff_link(
        &self,
        subject_token: &str,
        resource: &str,
        organization: Option<&str>,
        context: Option<&str>,
    ) -> Result<HandoffLink, HandoffError> {
        let mut form = vec![("subject_token", subject_token), ("resource", resource)];
        form.extend(organization.map(|o| ("organization", o)));
        form.extend(context.map(|c| ("context", c)));
        let (status, body) = self.post_form(self.inner.endpoints.handoff.as_ref(), &form).await?;
        if status != 200 {
            return Err(refused(status, &body));
        }
        let answer: serde_json::Value = serde_json::from_slice(&body).map_err(|e| HandoffError::Unavailable(e.to_string()))?;
        let (Some(code), Some(expires_in)) = (
            answer.get("handoff_code").and_then(serde_json::Value::as_str),
            answer.get("expires_in").and_then(serde_json::Value::as_i64),
        ) else {
            return Err(HandoffError::Unavailable("the answer lacks handoff_code".into()));
        };
        let url = match answer.get("handoff_uri").and_then(serde_json::Value::as_str) {
            None => None,
            Some(page) => {
                let mut url = url::Url::parse(page).map_err(|_| HandoffError::Unavailable("the answer's handoff_uri is not a URL".into()))?;
                url.query_pairs_mut().append_pair("handoff_code", code);
                Some(url.to_string())
            }
        };
        Ok(HandoffLink {
            code: code.to_owned(),
            expires_in,
            url,
        })
    }

    /// Redeems a hand-off code another product obtained for this one: one token-exchange call
    /// as this product's client, then verifies the access token answered for this audience.
    pub async fn redeem_handoff(&self, code: &str) -> Result<Handoff, HandoffError> {
        let form = [
            ("grant_type", "urn:ietf:params:oauth:grant-type:token-exchange"),
            ("subject_token", code),
            ("subject_token_type", HANDOFF_TOKEN_TYPE),
        ];
        let (status, body) = self.post_form(self.inner.endpoints.token.as_ref(), &form).await?;
        if status != 200 {
            return Err(refused(status, &body));
        }
        let answer: ExchangeAnswer = serde_json::from_slice(&body).map_err(|e| HandoffError::Unavailable(e.to_string()))?;
        let principal = self.verify(&answer.access_token).await.map_err(|r| match r {
            Refusal::Unauthorized(reason) => HandoffError::Token(reason),
            _ => HandoffError::Token(Reason::Claims),
        })?;
        Ok(Handoff {
            principal,
            access_token: answer.access_token,
            expires_in: answer.expires_in,
            refresh_token: answer.refresh_token,
            id_token: answer.id_token,
            context: answer.context,
        })
    }

    /// Verifies `token` and then asks the issuer whether it is still active (RFC 7662), for
    /// routes where a revoked grant must stop access before the token expires. Answers are reused
    /// for at most [`INTROSPECTION_CACHE`] seconds (keyed by the token's SHA-256); when the issuer
    /// cannot be asked the request is refused (fails closed).
    pub async fn verify_introspected(&self, token: &str) -> Result<Principal, Refusal> {
        let principal = self.verify(token).await?;
        self.still_active(token, principal).await
    }

    /// As [`Guard::verify_introspected`], for a DPoP-bound token and its proof
    /// ([`Guard::verify_dpop`]).
    pub async fn verify_dpop_introspected(&self, token: &str, proof: &str, method: &str, path: &str) -> Result<Principal, Refusal> {
        let principal = self.verify_dpop(token, proof, method, path).await?;
        self.still_active(token, principal).await
    }

    /// Whether the issuer still holds a verified token active.
    async fn still_active(&self, token: &str, principal: Principal) -> Result<Principal, Refusal> {
        let now = self.now();
        let key = sha256(token);
        let active = match self.inner.introspection.get(&key, now) {
            Some(active) => active,
            None => {
                let active = self.introspect(token).await.map_err(|e| {
                    tracing::warn!(error = %e, "portico-guard: introspection failed; refusing");
                    Refusal::Unauthorized(Reason::Unavailable)
                })?;
                let until = (now + INTROSPECTION_CACHE).min(principal.expires_at);
                self.inner.introspection.put(key, active, until, now);
                active
            }
        };
        metrics::counter!("portico_guard_introspections_total", "active" => if active { "true" } else { "false" }).increment(1);
        if active {
            Ok(principal)
        } else {
            Err(Refusal::Unauthorized(Reason::Inactive))
        }
    }

    async fn introspect(&self, token: &str) -> Result<bool, HandoffError> {
        let form = [("token", token), ("token_type_hint", "access_token")];
        let (status, body) = self.post_form(self.inner.endpoints.introspection.as_ref(), &form).await?;
        if status != 200 {
            return Err(HandoffError::Unavailable(format!("introspection answered HTTP {status}")));
        }
        let answer: serde_json::Value = serde_json::from_slice(&body).map_err(|e| HandoffError::Unavailable(e.to_string()))?;
        // Active, and (RFC 7662 §4) for this product: the issuer's answer must agree with the token.
        let aud_ok = match answer.get("aud") {
            Some(serde_json::Value::String(a)) => a == self.audience(),
            Some(serde_json::Value::Array(a)) => a.len() == 1 && a[0] == self.audience(),
            _ => false,
        };
        Ok(answer.get("active") == Some(&serde_json::Value::Bool(true)) && aud_ok)
    }
}
