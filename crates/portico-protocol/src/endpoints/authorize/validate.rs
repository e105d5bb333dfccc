//! Validating an authorization request: the client and redirect URI first (an error before they
//! are trusted is a page, never a redirect), then every parameter, each bounded.

use super::{AuthRequest, AuthorizeError, ResponseMode, SCOPES, error_response};
use crate::error::{OAuthError, oauth};
use crate::params::Params;
use crate::provider::Provider;
use crate::random;
use crate::snapshot::Snapshot;
use portico_model::{Client, TenantId};

/// The longest value Portico keeps of each parameter it stores with a pending request (bytes);
/// a longer one is `invalid_request`. Nothing from outside is stored without a bound.
pub const MAX_PARAM: [(&str, usize); 16] = [
    ("client_id", 128),
    ("redirect_uri", 2048),
    ("response_type", 32),
    ("response_mode", 32),
    ("scope", 512),
    ("state", MAX_STATE),
    ("nonce", 512),
    ("code_challenge", 128),
    ("prompt", 64),
    ("max_age", 20),
    ("login_hint", 320),
    ("acr_values", 256),
    ("resource", 2048),
    ("organization", 128),
    ("claims", 2048),
    ("dpop_jkt", 64),
];
const MAX_STATE: usize = 1024;
/// Any other parameter (ignored, never stored), and all of them together.
pub const MAX_OTHER_PARAM: usize = 4096;
pub const MAX_PARAMS_TOTAL: usize = 16 * 1024;
pub const MAX_PARAMS: usize = 64;

/// The longest value of parameter `name` Portico keeps ([`MAX_PARAM`], else [`MAX_OTHER_PARAM`]).
pub(crate) fn limit_of(name: &str) -> usize {
    MAX_PARAM.iter().find(|(n, _)| *n == name).map_or(MAX_OTHER_PARAM, |(_, l)| *l)
}

/// The parameter that breaks a length limit, if any.
fn oversized(params: &[(String, String)]) -> Option<String> {
    let total: usize = params.iter().map(|(k, v)| k.len() + v.len()).sum();
    if params.len() > MAX_PARAMS || total > MAX_PARAMS_TOTAL {
        return Some("the request as a whole".into());
    }
    params
        .iter()
        .find(|(k, v)| k.len() > 64 || v.len() > limit_of(k))
        .map(|(k, _)| k.chars().take(64).collect())
}

/// Validates raw request parameters (query or form, in order, duplicates kept). `pushed`: they
/// come from a pushed authorization request (RFC 9126), authenticated when they were pushed.
pub fn validate(p: &Provider, params: &[(String, String)], pushed: bool, now: i64) -> Result<AuthRequest, AuthorizeError> {
    let q = Params(params);
    let (client, redirect_uri, pinned) = trusted_client(&p.config(), q)?;
    // An oversized state is not echoed back (the request is refused for it below).
    let state = q.get("state").filter(|v| v.len() <= MAX_STATE);
    let (mode, web_origin) = response_mode(p, q, &client, &redirect_uri, pinned.as_ref(), state.as_deref())?;
    let fail = |e: OAuthError| AuthorizeError::Redirect(Box::new(error_response(p, &redirect_uri, mode, web_origin.as_deref(), state.as_deref(), &e)), e);
    check_request(q, &client, pushed).map_err(fail)?;
    let scope = words(q.get("scope"));
    if scope.iter().any(|s| !SCOPES.contains(&s.as_str())) {
        return Err(fail(oauth!(InvalidScope, "unknown scope")));
    }
    let code_challenge = pkce(q, &client).map_err(fail)?;
    let (prompt, max_age) = prompt_and_max_age(q).map_err(fail)?;
    // RFC 8707: one product per token, so at most one resource.
    let resources: Vec<String> = q.all("resource").into_iter().filter(|v| !v.is_empty()).collect();
    if resources.len() > 1 {
        return Err(fail(oauth!(InvalidTarget, "a token is for exactly one resource")));
    }
    let config = p.config();
    let product = config
        .resolve_audience(&client, resources.first().map(|s| s.as_str()))
        .map_err(|_| fail(oauth!(InvalidTarget, "the resource is not a product this client may ask tokens for")))?;
    let (acr_values, acr_essential) = acr(q).map_err(fail)?;
    let organization = pinned_organization(p, &config, q, pinned.as_ref(), now).map_err(fail)?;
    // RFC 9449 §10: the code is bound to this key; a JWK SHA-256 thumbprint is 43 base64url chars.
    let dpop_jkt = q.get("dpop_jkt");
    if dpop_jkt
        .as_deref()
        .is_some_and(|j| j.len() != 43 || !j.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'))
    {
        return Err(fail(oauth!(InvalidRequest, "dpop_jkt is not a JWK SHA-256 thumbprint")));
    }
    // Essential, and no value Portico could ever meet: refused before anyone signs in.
    let asked = portico_model::AcrRequest::new(acr_values.as_deref().unwrap_or("").split(' '), acr_essential);
    if asked.essential && asked.none_known {
        return Err(fail(oauth!(AccessDenied, "none of the requested authentication context values can be met")));
    }
    Ok(AuthRequest {
        id: random::token(),
        client_id: client.id.as_str().to_owned(),
        redirect_uri,
        response_mode: mode,
        state,
        nonce: q.get("nonce"),
        scope,
        code_challenge,
        prompt,
        max_age,
        login_hint: q.get("login_hint"),
        acr_values,
        acr_essential,
        audience: product.audience.as_str().to_owned(),
        organization,
        created_at: now,
        browser: String::new(),
        progress: None,
        waiting: None,
        restarted: false,
        web_origin,
        pushed,
        device: None,
        dpop_jkt,
        tenant_pinned: pinned.is_some(),
        stored: None,
    })
}

/// The request's tenant when its redirect URI is one of a tenant's own domains: that tenant, which
/// `organization` may only name again. Otherwise `organization` as sent.
fn pinned_organization(p: &Provider, config: &Snapshot, q: Params<'_>, pinned: Option<&TenantId>, now: i64) -> Result<Option<String>, OAuthError> {
    let asked = q.get("organization");
    let Some(pinned) = pinned else { return Ok(asked) };
    if asked.is_some_and(|o| crate::tenants::find(p, config, &o, now).is_none_or(|t| &t.id != pinned)) {
        return Err(oauth!(
            InvalidRequest,
            "organization names another organization than the domain the request came from"
        ));
    }
    Ok(Some(pinned.as_str().to_owned()))
}

/// The client and its redirect URI, once both can be trusted: until then an error is a page,
/// never a redirect (RFC 6749 §4.1.2.1). With them, the tenant whose own domain the redirect URI
/// is on, when a `{tenant_domain}` template matched it.
fn trusted_client(config: &Snapshot, q: Params<'_>) -> Result<(std::sync::Arc<Client>, String, Option<TenantId>), AuthorizeError> {
    // RFC 6749 §3.1: "Request and response parameters MUST NOT be included more than once."
    if q.count("client_id") > 1 || q.count("redirect_uri") > 1 {
        return Err(AuthorizeError::Page("The request names its client or redirect URI more than once."));
    }
    // Too large to trust its redirect URI either: an error page.
    if oversized(q.0).is_some_and(|k| ["client_id", "redirect_uri", "the request as a whole"].contains(&k.as_str())) {
        return Err(AuthorizeError::Page("The request is too large."));
    }
    let Some(entry) = q.get("client_id").and_then(|id| config.client(&id).cloned()) else {
        return Err(AuthorizeError::Page("The application that sent you here is not registered."));
    };
    let Some(redirect_uri) = q.get("redirect_uri") else {
        return Err(AuthorizeError::Page("The request has no redirect_uri."));
    };
    let Some(pinned) = config.redirect_of(&entry.client, &redirect_uri).map(|t| t.map(|t| t.id.clone())) else {
        return Err(AuthorizeError::Page("The redirect URI is not registered for this application."));
    };
    Ok((entry.client, redirect_uri, pinned))
}

/// The response mode, and for `web_message` the origin the response is posted to: the redirect
/// URI's, and only when the client registered it (otherwise nobody gets one, and no code is made
/// for nobody).
fn response_mode(
    p: &Provider,
    q: Params<'_>,
    client: &Client,
    redirect_uri: &str,
    pinned: Option<&TenantId>,
    state: Option<&str>,
) -> Result<(ResponseMode, Option<String>), AuthorizeError> {
    let mode = match q.get("response_mode").as_deref() {
        None | Some("query") => ResponseMode::Query,
        Some("fragment") => ResponseMode::Fragment,
        Some("form_post") => ResponseMode::FormPost,
        Some("web_message") => ResponseMode::WebMessage,
        Some(_) => {
            let e = oauth!(InvalidRequest, "unsupported response_mode");
            let resp = error_response(p, redirect_uri, ResponseMode::Query, None, state, &e);
            return Err(AuthorizeError::Redirect(Box::new(resp), e));
        }
    };
    let web_origin = match mode {
        ResponseMode::WebMessage => Some(
            origin_of(redirect_uri)
                .filter(|o| match p.config().web_origin_of(client, o) {
                    Some(None) => true,
                    // A tenant's own origin, for the tenant the redirect URI names.
                    Some(Some(t)) => pinned == Some(&t.id),
                    None => false,
                })
                .ok_or(AuthorizeError::Page("This application's origin is not registered for web messages."))?,
        ),
        _ => None,
    };
    Ok((mode, web_origin))
}

/// The rules of the request as a whole: sizes, repeats, the response type, what Portico does not
/// support, and whether the client may use this grant.
fn check_request(q: Params<'_>, client: &Client, pushed: bool) -> Result<(), OAuthError> {
    if let Some(k) = oversized(q.0) {
        return Err(oauth!(InvalidRequest, "a parameter is longer than Portico accepts").detail(k));
    }
    q.reject_repeated()?;
    match q.get("response_type").as_deref() {
        None => return Err(oauth!(InvalidRequest, "response_type is required")),
        Some("code") => {}
        Some(_) => return Err(oauth!(UnsupportedResponseType, "only response_type=code is supported")),
    }
    if q.get("request").is_some() {
        return Err(oauth!(RequestNotSupported, "request objects are not supported"));
    }
    // A `request_uri` Portico issued was resolved before validation (RFC 9126 §4); any other is
    // a request object by reference (OIDC Core §6.2), which Portico does not fetch.
    if q.get("request_uri").is_some() {
        return Err(oauth!(
            RequestUriNotSupported,
            "only a request_uri from the pushed authorization request endpoint is supported"
        ));
    }
    // RFC 9126 §6, `require_pushed_authorization_requests`: for such a client, a pushed request
    // is the only way to start an authorization.
    if client.require_pushed_authorization_requests && !pushed {
        return Err(oauth!(InvalidRequest, "this client must push its authorization requests (RFC 9126)"));
    }
    if !client.allows(portico_model::GrantType::AuthorizationCode) {
        return Err(oauth!(UnauthorizedClient, "this client may not use the authorization code grant"));
    }
    Ok(())
}

/// A space-separated list, without empty words.
pub(crate) fn words(value: Option<String>) -> Vec<String> {
    value.unwrap_or_default().split(' ').filter(|s| !s.is_empty()).map(str::to_owned).collect()
}

/// RFC 7636 §4.3 and RFC 9700 §2.1.1: S256 only; required for public clients.
fn pkce(q: Params<'_>, client: &Client) -> Result<Option<String>, OAuthError> {
    let code_challenge = q.get("code_challenge");
    match (q.get("code_challenge_method").as_deref(), &code_challenge) {
        (Some("S256"), Some(_)) => {}
        (None, Some(_)) => return Err(oauth!(InvalidRequest, "code_challenge_method must be S256")),
        (Some(_), Some(_)) => return Err(oauth!(InvalidRequest, "only the S256 code_challenge_method is supported")),
        (Some(_), None) => return Err(oauth!(InvalidRequest, "code_challenge_method without code_challenge")),
        (None, None) if client.is_public() => return Err(oauth!(InvalidRequest, "PKCE (code_challenge with S256) is required for public clients")),
        (None, None) => {}
    }
    if let Some(c) = &code_challenge {
        // RFC 7636 §4.2: BASE64URL(SHA256(verifier)) is 43 characters.
        if c.len() != 43 || !c.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') {
            return Err(oauth!(InvalidRequest, "code_challenge is not an S256 challenge"));
        }
    }
    Ok(code_challenge)
}

fn prompt_and_max_age(q: Params<'_>) -> Result<(Vec<String>, Option<i64>), OAuthError> {
    let prompt = words(q.get("prompt"));
    if prompt.iter().any(|v| !["none", "login", "consent", "select_account"].contains(&v.as_str())) {
        return Err(oauth!(InvalidRequest, "unsupported prompt value"));
    }
    // OIDC Core §3.1.2.1: "If this parameter contains none with any other value, an error is returned."
    if prompt.len() > 1 && prompt.iter().any(|v| v == "none") {
        return Err(oauth!(InvalidRequest, "prompt=none cannot be combined with other values"));
    }
    let max_age = match q.get("max_age") {
        None => None,
        Some(v) => Some(
            v.parse::<i64>()
                .ok()
                .filter(|m| *m >= 0)
                .ok_or_else(|| oauth!(InvalidRequest, "max_age must be a non-negative integer"))?,
        ),
    };
    Ok((prompt, max_age))
}

/// The authentication context asked for: `acr_values` (voluntary, OIDC Core §3.1.2.1), or the
/// `acr` member of the `claims` parameter's `id_token` request (§5.5.1.1), which may make it
/// essential and name the values itself. Userinfo does not return `acr`, so its request for one is
/// a voluntary claim left out; no other member changes what Portico returns either: leaving a
/// voluntary claim out "is not an error condition" (§5.5.1).
fn acr(q: Params<'_>) -> Result<(Option<String>, bool), OAuthError> {
    let acr_values = q.get("acr_values");
    let Some(claims) = q.get("claims") else {
        return Ok((acr_values, false));
    };
    let bad = || oauth!(InvalidRequest, "claims must be a JSON object of id_token and userinfo requests");
    let claims: serde_json::Value = serde_json::from_str(&claims).map_err(|_| bad())?;
    let Some(claims) = claims.as_object() else { return Err(bad()) };
    let mut essential = false;
    let mut values: Option<Vec<String>> = None;
    // One member (`id_token`) sets these: which of the two comes first is not the question.
    for (member, request) in claims {
        if !["id_token", "userinfo"].contains(&member.as_str()) {
            continue;
        }
        let Some(request) = request.as_object() else { return Err(bad()) };
        if member != "id_token" {
            continue;
        }
        // `"acr": null` asks for it in the default manner.
        let Some(acr) = request.get("acr").filter(|a| !a.is_null()) else { continue };
        let Some(acr) = acr.as_object() else { return Err(bad()) };
        essential = acr.get("essential").and_then(|e| e.as_bool()).unwrap_or(false);
        let listed: Option<Vec<String>> = match (acr.get("value"), acr.get("values")) {
            (Some(v), None) => Some(vec![v.as_str().ok_or_else(bad)?.to_owned()]),
            (None, Some(vs)) => Some(
                vs.as_array()
                    .ok_or_else(bad)?
                    .iter()
                    .map(|v| v.as_str().map(str::to_owned).ok_or_else(bad))
                    .collect::<Result<_, _>>()?,
            ),
            (None, None) => None,
            (Some(_), Some(_)) => return Err(oauth!(InvalidRequest, "the acr claim request names both value and values")),
        };
        if listed.is_some() {
            values = listed;
        }
    }
    // Values named in `claims` are the request's; without them, `acr_values` lists them.
    Ok((values.map(|v| v.join(" ")).or(acr_values), essential))
}

/// The origin (scheme, host, port) of a URL, as browsers serialize it.
fn origin_of(url: &str) -> Option<String> {
    let u = url::Url::parse(url).ok()?;
    let o = u.origin();
    o.is_tuple().then(|| o.ascii_serialization())
}
