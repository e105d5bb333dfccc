//! A client's definition and its rules.

use super::{FieldError, RESERVED_ID_PREFIXES};
use crate::{ApplicationType, AuthMethod, Client, ClientId, ClientKind, GrantType, ProductSlug, RedirectUri, Secret, SigningAlg};
use serde::Deserialize;

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientSpec {
    pub id: String,
    pub product: String,
    pub name: Option<String>,
    pub kind: ClientKind,
    /// The secret, or `env:NAME`: [`ClientSpec::check`] resolves it with the caller's resolver.
    pub secret: Option<String>,
    pub auth_method: Option<AuthMethod>,
    #[serde(default)]
    pub redirect_uris: Vec<String>,
    #[serde(default)]
    pub post_logout_redirect_uris: Vec<String>,
    #[serde(default)]
    pub web_origins: Vec<String>,
    pub grant_types: Option<Vec<String>>,
    #[serde(default)]
    pub resources: Vec<String>,
    pub backchannel_logout_uri: Option<String>,
    #[serde(default)]
    pub first_party: bool,
    pub signing_alg: Option<String>,
    /// `web` (the default) or `native` (RFC 8252).
    #[serde(default)]
    pub application_type: ApplicationType,
    /// RFC 9126 §6: authorization requests only through `/oauth2/par`.
    #[serde(default)]
    pub require_pushed_authorization_requests: bool,
    /// For `private_key_jwt`: the client's JWK Set, or the URL it publishes it at (one of them).
    pub jwks: Option<serde_json::Value>,
    pub jwks_uri: Option<String>,
    /// RFC 9449 §5.2: every access token it gets is DPoP-bound.
    #[serde(default)]
    pub dpop_bound_access_tokens: bool,
    /// The page that receives a hand-off code for this product (exactly as registered).
    pub handoff_uri: Option<String>,
    /// OIDC Core §4: the product's page that starts a sign-in (the launcher links to it).
    pub initiate_login_uri: Option<String>,
}

/// The shortest secret a confidential client may have.
pub const MIN_SECRET_CHARS: usize = 32;

impl ClientSpec {
    /// The client and its secret, when the definition meets every rule of its own. `resolve`
    /// turns a confidential client's [`ClientSpec::secret`] into the secret (`env:NAME`, say), and
    /// `product_known` says whether a product exists.
    pub fn check(
        &self,
        resolve: impl Fn(&str) -> Result<String, String>,
        product_known: impl Fn(&str) -> bool,
    ) -> Result<(Client, Option<Secret>), FieldError> {
        self.check_id()?;
        if !product_known(&self.product) {
            return Err(FieldError::new("product", format!("unknown product {:?}", self.product)));
        }
        let auth_method = self.auth_method()?;
        let secret = self.check_secret(resolve, auth_method)?;
        let keys = self.check_keys(auth_method)?;
        let grant_types = self.grant_types()?;
        if let Some(bad) = self.resources.iter().find(|r| !product_known(r)) {
            return Err(FieldError::new("resources", format!("unknown product {bad:?}")));
        }
        let signing_alg = match &self.signing_alg {
            None => SigningAlg::EdDSA,
            Some(a) => SigningAlg::parse(a).ok_or_else(|| FieldError::new("signing_alg", format!("{a:?} is not EdDSA, ES256 or RS256")))?,
        };
        self.check_logout_uri()?;
        self.check_handoff_uri()?;
        self.check_initiate_login_uri()?;
        let (web_origins, origin_templates) = split_templates(&self.web_origins);
        check_web_origins(&web_origins)?;
        let (redirects, redirect_templates) = split_templates(&self.redirect_uris);
        let (post_logout, post_logout_templates) = split_templates(&self.post_logout_redirect_uris);
        let redirect_uris = uris("redirect_uris", &redirects)?;
        let post_logout_redirect_uris = uris("post_logout_redirect_uris", &post_logout)?;
        let domain_templates = crate::domains::DomainTemplates {
            redirect_uris: templates("redirect_uris", redirect_templates, |e| uris("redirect_uris", &[e]).map(|_| ()))?,
            post_logout_redirect_uris: templates("post_logout_redirect_uris", post_logout_templates, |e| {
                uris("post_logout_redirect_uris", &[e]).map(|_| ())
            })?,
            web_origins: templates("web_origins", origin_templates, |e| check_web_origins(&[e]))?,
        };
        self.check_application_type()?;
        let client = Client {
            id: ClientId::new(&self.id),
            product: ProductSlug::new(&self.product),
            kind: self.kind,
            name: self.name.clone().unwrap_or_else(|| self.id.clone()),
            auth_method,
            redirect_uris,
            post_logout_redirect_uris,
            web_origins,
            grant_types,
            resources: self.resources.iter().map(ProductSlug::new).collect(),
            backchannel_logout_uri: self.backchannel_logout_uri.clone(),
            first_party: self.first_party,
            signing_alg,
            application_type: self.application_type,
            require_pushed_authorization_requests: self.require_pushed_authorization_requests,
            keys,
            dpop_bound_access_tokens: self.dpop_bound_access_tokens,
            handoff_uri: self.handoff_uri.clone(),
            domain_templates,
            initiate_login_uri: self.initiate_login_uri.clone(),
        };
        Ok((client, secret))
    }

    fn check_id(&self) -> Result<(), FieldError> {
        let id = &self.id;
        if id.is_empty() || id.contains(':') || id.contains(char::is_whitespace) {
            return Err(FieldError::new("id", "must be non-empty, without ':' or spaces"));
        }
        // A client's token names the client as its subject: an id shaped like a user's (or any
        // other of Portico's ids) could pass for one.
        if let Some(prefix) = RESERVED_ID_PREFIXES.iter().find(|p| id.starts_with(*p)) {
            return Err(FieldError::new(
                "id",
                format!("{prefix:?} begins Portico's own ids (users, tenants, sessions); choose another id"),
            ));
        }
        Ok(())
    }

    fn check_secret(&self, resolve: impl Fn(&str) -> Result<String, String>, method: AuthMethod) -> Result<Option<Secret>, FieldError> {
        if method == AuthMethod::PrivateKeyJwt {
            return match self.secret {
                Some(_) => Err(FieldError::new("secret", "a private_key_jwt client authenticates with its keys, not a secret")),
                None => Ok(None),
            };
        }
        match (self.kind, &self.secret) {
            (ClientKind::Public, Some(_)) => Err(FieldError::new("secret", "a public client has no secret")),
            (ClientKind::Public, None) => Ok(None),
            (ClientKind::Confidential, None) => Err(FieldError::new("secret", "a confidential client needs a secret (literal or env:NAME)")),
            (ClientKind::Confidential, Some(s)) => {
                let s = resolve(s).map_err(|m| FieldError::new("secret", m))?;
                if s.chars().count() < MIN_SECRET_CHARS {
                    return Err(FieldError::new("secret", "must be at least 32 characters"));
                }
                Ok(Some(Secret::new(s)))
            }
        }
    }

    fn auth_method(&self) -> Result<AuthMethod, FieldError> {
        match (self.kind, self.auth_method) {
            (ClientKind::Public, None | Some(AuthMethod::None)) => Ok(AuthMethod::None),
            (ClientKind::Public, Some(_)) => Err(FieldError::new("auth_method", "a public client uses \"none\"")),
            (ClientKind::Confidential, None) => Ok(AuthMethod::ClientSecretBasic),
            (ClientKind::Confidential, Some(AuthMethod::None)) => Err(FieldError::new("auth_method", "a confidential client must authenticate")),
            (ClientKind::Confidential, Some(m)) => Ok(m),
        }
    }

    /// RFC 7523 §2.2 and OIDC Core §9: a `private_key_jwt` client registers its public keys,
    /// `jwks` or `jwks_uri`, one of them. A registered set holds public keys only, each with a
    /// `kid` (an assertion names the key it is signed with); a private member means a private key
    /// was pasted where a public one belongs, and is refused rather than skipped. Whether the
    /// keys are usable (their types, algorithms) the caller checks with `portico-jose`.
    fn check_keys(&self, method: AuthMethod) -> Result<Option<crate::ClientKeys>, FieldError> {
        let private_key_jwt = method == AuthMethod::PrivateKeyJwt;
        match (&self.jwks, &self.jwks_uri) {
            (None, None) if private_key_jwt => Err(FieldError::new("jwks", "a private_key_jwt client needs jwks or jwks_uri")),
            (None, None) => Ok(None),
            (Some(_), Some(_)) => Err(FieldError::new("jwks_uri", "give jwks or jwks_uri, not both")),
            (Some(_), _) | (_, Some(_)) if !private_key_jwt => Err(FieldError::new(
                if self.jwks.is_some() { "jwks" } else { "jwks_uri" },
                "only a client with auth_method = \"private_key_jwt\" has keys",
            )),
            (Some(set), None) => {
                let keys = set.get("keys").and_then(|k| k.as_array()).filter(|k| !k.is_empty());
                let Some(keys) = keys else {
                    return Err(FieldError::new("jwks", "must be a JWK Set: { keys = [ { kty = …, kid = …, … } ] }"));
                };
                for (i, key) in keys.iter().enumerate() {
                    if key.get("kid").and_then(|k| k.as_str()).is_none_or(str::is_empty) {
                        return Err(FieldError::new("jwks", format!("key {} has no kid", i + 1)));
                    }
                    if let Some(m) = ["d", "p", "q", "dp", "dq", "qi", "k"].iter().find(|m| key.get(**m).is_some()) {
                        return Err(FieldError::new(
                            "jwks",
                            format!("key {} holds the private member {m:?}: register the public key only", i + 1),
                        ));
                    }
                }
                Ok(Some(crate::ClientKeys::Jwks(set.clone())))
            }
            (None, Some(uri)) => {
                let ok = url::Url::parse(uri).is_ok_and(|u| {
                    let loopback = matches!(u.host_str(), Some("127.0.0.1" | "[::1]" | "localhost"));
                    u.fragment().is_none() && (u.scheme() == "https" || (u.scheme() == "http" && loopback))
                });
                if !ok {
                    return Err(FieldError::new("jwks_uri", "must be an https URL (http only on loopback, for development)"));
                }
                Ok(Some(crate::ClientKeys::JwksUri(uri.clone())))
            }
        }
    }

    fn grant_types(&self) -> Result<Vec<GrantType>, FieldError> {
        let grant_types = match &self.grant_types {
            None => vec![GrantType::AuthorizationCode, GrantType::RefreshToken],
            Some(list) => list
                .iter()
                .map(|g| GrantType::parse(g).ok_or_else(|| FieldError::new("grant_types", format!("unknown grant type {g:?}"))))
                .collect::<Result<_, _>>()?,
        };
        let public = self.kind == ClientKind::Public;
        if public && grant_types.contains(&GrantType::ClientCredentials) {
            return Err(FieldError::new("grant_types", "a public client cannot use client_credentials"));
        }
        if public && grant_types.contains(&GrantType::TokenExchange) {
            return Err(FieldError::new("grant_types", "a public client cannot use token exchange"));
        }
        if grant_types.contains(&GrantType::AuthorizationCode) && self.redirect_uris.is_empty() {
            return Err(FieldError::new("redirect_uris", "the authorization_code grant needs at least one"));
        }
        Ok(grant_types)
    }

    /// Back-Channel Logout 1.0 §2.2: an absolute URI without a fragment; Portico POSTs to it, so
    /// http(s) only.
    fn check_logout_uri(&self) -> Result<(), FieldError> {
        let Some(u) = &self.backchannel_logout_uri else { return Ok(()) };
        let ok = url::Url::parse(u).is_ok_and(|url| matches!(url.scheme(), "https" | "http") && url.fragment().is_none() && url.has_host());
        if ok {
            Ok(())
        } else {
            Err(FieldError::new("backchannel_logout_uri", "must be an absolute http(s) URI without a fragment"))
        }
    }

    /// A hand-off page is an `https` URL (`http` only on a loopback address, for development)
    /// without a fragment, of a confidential client: the code it receives is redeemed by the
    /// product's backend, as that client. The user's browser is sent there, so it is a redirect
    /// like any other and follows the same rules.
    fn check_handoff_uri(&self) -> Result<(), FieldError> {
        let Some(u) = &self.handoff_uri else { return Ok(()) };
        if self.kind != ClientKind::Confidential {
            return Err(FieldError::new(
                "handoff_uri",
                "only a confidential client redeems hand-off codes: register the page with the product's backend client",
            ));
        }
        let url = RedirectUri::parse(u).and_then(|r| url::Url::parse(r.as_str()).map_err(|e| e.to_string()));
        let url = url.map_err(|m| FieldError::new("handoff_uri", format!("{u:?} {m}")))?;
        https_or_loopback("handoff_uri", u, &url)
    }

    /// OIDC Core §4 (and Dynamic Client Registration §2): an `https` URI (`http` only on a
    /// loopback address, for development), a `{tenant_domain}` template or a plain one.
    fn check_initiate_login_uri(&self) -> Result<(), FieldError> {
        const FIELD: &str = "initiate_login_uri";
        let Some(u) = &self.initiate_login_uri else { return Ok(()) };
        let plain = if u.contains(crate::domains::TENANT_DOMAIN) {
            if let Some(why) = crate::domains::template_problem(u) {
                return Err(FieldError::new(FIELD, format!("{u:?} {why}")));
            }
            crate::domains::expand(u, "tenant.example")
        } else {
            u.clone()
        };
        let url = url::Url::parse(&plain).map_err(|e| FieldError::new(FIELD, format!("{u:?} is not an absolute URI: {e}")))?;
        if url.fragment().is_some() {
            return Err(FieldError::new(FIELD, format!("{u:?} must not contain a fragment")));
        }
        https_or_loopback(FIELD, u, &url)
    }

    /// The redirect URIs (each already parsed) an application of its type can receive a
    /// response at. A web
    /// application's are `http(s)`. A native app (RFC 8252 §7) is a public client (§8.5: a secret
    /// shipped in an app is no secret; PKCE is required of every public client) and its redirects
    /// are one of:
    /// - a loopback IP redirect, `http://127.0.0.1/…` or `http://[::1]/…`, best without a port:
    ///   any port is accepted at request time (§7.3);
    /// - a private-use URI scheme named after a domain the app's owner controls, in reverse order
    ///   (`com.example.app:/oauth2redirect`, §7.1);
    /// - a claimed `https` URL (§7.2).
    ///
    /// `localhost` is refused (§8.3: "NOT RECOMMENDED"): it is a name, which may resolve to another
    /// interface or be overridden, and a listener on it may not be the app's. `http` to any other
    /// host is refused too: the response carries a code in the clear.
    fn check_application_type(&self) -> Result<(), FieldError> {
        let native = self.application_type == ApplicationType::Native;
        if native && self.kind == ClientKind::Confidential {
            return Err(FieldError::new(
                "kind",
                "a native app cannot keep a secret (RFC 8252 §8.5): register it as kind = \"public\"",
            ));
        }
        for field in ["redirect_uris", "post_logout_redirect_uris"] {
            let list = if field == "redirect_uris" {
                &self.redirect_uris
            } else {
                &self.post_logout_redirect_uris
            };
            for u in list {
                let why = if native { native_redirect_problem(u) } else { web_redirect_problem(u) };
                if let Some(why) = why {
                    return Err(FieldError::new(field, format!("{u:?} {why}")));
                }
            }
        }
        Ok(())
    }
}

/// An origin exactly as browsers serialize it (`https://app.example.test`, a port when not the
/// default, no path or trailing slash): web messages go to it verbatim.
fn check_web_origins(origins: &[String]) -> Result<(), FieldError> {
    let bad = origins
        .iter()
        .find(|o| url::Url::parse(o).map_or(true, |u| !matches!(u.scheme(), "https" | "http") || u.origin().ascii_serialization() != **o));
    match bad {
        Some(bad) => Err(FieldError::new(
            "web_origins",
            format!("{bad:?} is not an origin like \"https://app.example.test\""),
        )),
        None => Ok(()),
    }
}

/// A page the browser is sent to that is not a redirect URI: `https`, or `http` on a loopback IP
/// address (development).
fn https_or_loopback(field: &'static str, u: &str, url: &url::Url) -> Result<(), FieldError> {
    if url.scheme() == "https" || (url.scheme() == "http" && is_loopback(url)) {
        Ok(())
    } else {
        Err(FieldError::new(field, format!("{u:?} must be https (http only on a loopback address)")))
    }
}

/// Whether the URL's host is a loopback IP address.
fn is_loopback(url: &url::Url) -> bool {
    match url.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        _ => false,
    }
}

/// The entries of a list that hold `{tenant_domain}` (templates) apart from the others.
fn split_templates(list: &[String]) -> (Vec<String>, Vec<String>) {
    let (templates, plain): (Vec<String>, Vec<String>) = list.iter().cloned().partition(|u| u.contains(crate::domains::TENANT_DOMAIN));
    (plain, templates)
}

/// Templates of `field`, each well formed and, expanded with a sample domain, what `check`
/// accepts of the field's plain entries.
fn templates(field: &'static str, list: Vec<String>, check: impl Fn(String) -> Result<(), FieldError>) -> Result<Vec<String>, FieldError> {
    for t in &list {
        if let Some(why) = crate::domains::template_problem(t) {
            return Err(FieldError::new(field, format!("{t:?} {why}")));
        }
        check(crate::domains::expand(t, "tenant.example"))?;
    }
    Ok(list)
}

fn uris(field: &'static str, list: &[String]) -> Result<Vec<RedirectUri>, FieldError> {
    list.iter()
        .map(|u| RedirectUri::parse(u).map_err(|m| FieldError::new(field, format!("{u:?} {m}"))))
        .collect()
}

/// Why a web application cannot use `uri` as a redirect, if it cannot.
fn web_redirect_problem(uri: &str) -> Option<&'static str> {
    let url = url::Url::parse(uri).ok()?;
    (!matches!(url.scheme(), "https" | "http"))
        .then_some("is a private-use URI scheme, which only a native app receives: set application_type = \"native\" (RFC 8252 §7.1)")
}

/// Why a native app cannot use `uri` as a redirect (RFC 8252 §7, §8.3), if it cannot.
fn native_redirect_problem(uri: &str) -> Option<&'static str> {
    let url = url::Url::parse(uri).ok()?;
    let localhost = url
        .host_str()
        .is_some_and(|h| h.eq_ignore_ascii_case("localhost") || h.to_ascii_lowercase().ends_with(".localhost"));
    match url.scheme() {
        _ if localhost => {
            Some("names localhost, which may resolve to another interface or be overridden: use http://127.0.0.1/… or http://[::1]/… (RFC 8252 §8.3)")
        }
        "http" if RedirectUri::parse(uri).is_ok_and(|r| r.is_loopback_ip()) => None,
        "http" => {
            Some("uses http to a host that is not the loopback interface: use https (a claimed URL), a loopback IP or a private-use scheme (RFC 8252 §7, §8.3)")
        }
        "https" => None,
        scheme if scheme.contains('.') => None,
        _ => Some("uses a private-use URI scheme that is not a reverse domain name the app's owner controls, like com.example.app (RFC 8252 §7.1)"),
    }
}
