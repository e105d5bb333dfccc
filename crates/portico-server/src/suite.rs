//! `portico apply -f suite.toml`: the declarative suite file (DESIGN.md, "The suite file").
//! The whole file is parsed and checked before anything is written; errors name the line and
//! field; the store then changes in one transaction, and only where the file differs from it.

use portico_model::*;
use portico_protocol::kek::Kek;
use portico_protocol::{password, random};
use portico_store::{AuditEvent, ConfigChange, Store};
use serde::Deserialize;
use std::collections::{BTreeMap, HashMap, HashSet};
use toml::Spanned;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SuiteFile {
    #[serde(default)]
    product: Vec<Spanned<ProductDef>>,
    #[serde(default)]
    client: Vec<Spanned<ClientDef>>,
    #[serde(default)]
    tenant: Vec<Spanned<TenantDef>>,
    #[serde(default)]
    user: Vec<Spanned<UserDef>>,
    #[serde(default)]
    grant: Vec<Spanned<GrantDef>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ProductDef {
    slug: String,
    name: String,
    audience: String,
    access_token_ttl: Option<String>,
    mfa: Option<MfaPolicy>,
    mfa_enrolment: Option<portico_model::MfaEnrolment>,
    #[serde(default)]
    single_session: bool,
    #[serde(default)]
    tenant_aware: bool,
    #[serde(default)]
    signup: bool,
    #[serde(default)]
    handoff_to: Vec<String>,
    #[serde(default)]
    exchange_to: Vec<String>,
    #[serde(default)]
    roles: BTreeMap<String, Vec<String>>,
    session_idle: Option<String>,
    session_absolute: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ClientDef {
    id: String,
    product: String,
    name: Option<String>,
    kind: ClientKind,
    secret: Option<String>,
    auth_method: Option<AuthMethod>,
    #[serde(default)]
    redirect_uris: Vec<String>,
    #[serde(default)]
    post_logout_redirect_uris: Vec<String>,
    #[serde(default)]
    web_origins: Vec<String>,
    grant_types: Option<Vec<String>>,
    #[serde(default)]
    resources: Vec<String>,
    backchannel_logout_uri: Option<String>,
    #[serde(default)]
    first_party: bool,
    signing_alg: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TenantDef {
    slug: String,
    name: String,
    #[serde(default)]
    domains: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UserDef {
    email: String,
    name: Option<String>,
    password: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct GrantDef {
    user: Option<String>,
    client: Option<String>,
    product: String,
    tenant: Option<String>,
    #[serde(default)]
    roles: Vec<String>,
    /// RFC 3339 instant after which the grant covers nothing.
    expires: Option<String>,
}

/// A suite file error: where and what.
#[derive(Debug)]
pub struct SuiteError {
    pub file: String,
    pub line: usize,
    pub message: String,
}

impl std::fmt::Display for SuiteError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}: {}", self.file, self.line, self.message)
    }
}
impl std::error::Error for SuiteError {}

/// A validated suite, ready to apply.
pub struct Suite {
    products: Vec<Product>,
    /// The line each product is defined on, for errors found once the issuer is known.
    product_lines: Vec<(String, usize)>,
    file: String,
    clients: Vec<(Client, Option<Secret>)>,
    tenants: Vec<(String, String, Vec<String>)>,
    users: Vec<(String, String, Option<Secret>)>,
    grants: Vec<(Grantee, GrantTarget, String, Option<String>, Vec<String>, Option<i64>)>,
}

/// Who a grant names, before tenants and users have ids.
#[derive(Clone)]
pub enum GrantTarget {
    User(String),
    Client(String),
}

/// Parses an RFC 3339 instant ("2027-01-31T00:00:00Z") into Unix seconds.
pub fn parse_instant(s: &str) -> Option<i64> {
    time::OffsetDateTime::parse(s.trim(), &time::format_description::well_known::Rfc3339)
        .ok()
        .map(|t| t.unix_timestamp())
}

/// Parses "10m", "90s", "1h", "2d" into seconds.
pub fn parse_duration(s: &str) -> Option<i64> {
    let s = s.trim();
    let (num, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit())?);
    let n: i64 = num.parse().ok()?;
    let mult = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return None,
    };
    n.checked_mul(mult).filter(|v| *v > 0)
}

/// Resolves `env:NAME` secrets.
fn resolve_secret(value: &str) -> Result<String, String> {
    match value.strip_prefix("env:") {
        Some(name) => std::env::var(name).map_err(|_| format!("environment variable {name} is not set")),
        None => Ok(value.to_owned()),
    }
}

/// Prefixes of the ids Portico makes (users, tenants, tenant handles, sessions, families, links).
pub const RESERVED_ID_PREFIXES: [&str; 7] = ["usr_", "ten_", "th_", "sso_", "sid_", "fam_", "lgt_"];

impl Suite {
    /// Checks what needs the deployment's issuer: no product may take the audience of the built-in
    /// `portico-admin` (`<issuer>/api`), or its tokens would be admin tokens.
    /// A product whose first factors need a mailed link needs a Portico that sends mail: without
    /// `smtp_url` its users without a factor could never set one up.
    pub fn check_for_mail(&self, sends_mail: bool) -> Result<(), SuiteError> {
        let needs = self
            .products
            .iter()
            .zip(&self.product_lines)
            .find(|(p, _)| p.mfa_enrolment == portico_model::MfaEnrolment::EmailLink);
        match needs {
            Some((p, (_, line))) if !sends_mail => Err(SuiteError {
                file: self.file.clone(),
                line: *line,
                message: format!(
                    "product {:?}: field mfa_enrolment: \"email_link\" mails a link, and this Portico sends no mail (set smtp_url)",
                    p.slug.as_str()
                ),
            }),
            _ => Ok(()),
        }
    }

    pub fn check_for_issuer(&self, issuer: &str) -> Result<(), SuiteError> {
        let admin = admin::product(issuer).audience;
        match self.products.iter().zip(&self.product_lines).find(|(p, _)| p.audience == admin) {
            None => Ok(()),
            Some((p, (_, line))) => Err(SuiteError {
                file: self.file.clone(),
                line: *line,
                message: format!(
                    "product {:?}: field audience: {} is the audience of Portico's own admin API",
                    p.slug.as_str(),
                    admin.as_str()
                ),
            }),
        }
    }

    /// Parses and validates the whole file. `known_users` are emails already in the store.
    pub fn parse(file: &str, text: &str, known_users: &HashSet<String>) -> Result<Self, SuiteError> {
        let line_of = |offset: usize| text[..offset.min(text.len())].matches('\n').count() + 1;
        let err = |span: std::ops::Range<usize>, message: String| SuiteError {
            file: file.to_owned(),
            line: line_of(span.start),
            message,
        };
        let doc: SuiteFile = toml::from_str(text).map_err(|e| SuiteError {
            file: file.to_owned(),
            line: e.span().map(|s| line_of(s.start)).unwrap_or(0),
            message: e.message().to_owned(),
        })?;

        let mut products = Vec::new();
        let mut seen = HashSet::new();
        let mut audiences = HashSet::new();
        for sp in &doc.product {
            let (d, span) = (sp.get_ref(), sp.span());
            let e = |m: String| err(span.clone(), format!("product {:?}: {m}", d.slug));
            if !valid_slug(&d.slug) {
                return Err(e("field slug: use lowercase letters, digits and '-'".into()));
            }
            if !seen.insert(d.slug.clone()) {
                return Err(e("field slug: duplicate product".into()));
            }
            if d.slug == admin::SLUG {
                return Err(e(
                    "field slug: \"portico-admin\" is Portico's built-in product; grant its roles and register its clients, but do not define it".into(),
                ));
            }
            let aud = url::Url::parse(&d.audience).map_err(|_| e("field audience: must be an absolute URI".into()))?;
            if aud.fragment().is_some() || d.audience == "*" {
                return Err(e("field audience: must be an absolute URI without fragment".into()));
            }
            if !audiences.insert(d.audience.clone()) {
                return Err(e("field audience: another product has the same audience".into()));
            }
            let ttl = match &d.access_token_ttl {
                None => 600,
                Some(t) => parse_duration(t)
                    .filter(|s| *s <= 86_400)
                    .ok_or_else(|| e(format!("field access_token_ttl: {t:?} is not a duration like \"10m\" (at most 1d)")))?,
            };
            let session_limit = |field: &str, value: &Option<String>| match value {
                None => Ok(None),
                Some(t) => parse_duration(t)
                    .map(Some)
                    .ok_or_else(|| e(format!("field {field}: {t:?} is not a duration like \"15m\" or \"12h\""))),
            };
            let session_idle = session_limit("session_idle", &d.session_idle)?;
            let session_absolute = session_limit("session_absolute", &d.session_absolute)?;
            if d.signup && d.tenant_aware {
                return Err(e(
                    "field signup: a product with tenants cannot take sign-ups (a tenant admits its own members); set tenant_aware = false or signup = false"
                        .into(),
                ));
            }
            for (role, perms) in &d.roles {
                if role.is_empty() || perms.iter().any(|p| p.is_empty() || p.contains(' ')) {
                    return Err(e(format!("field roles: role {role:?} has an empty or spaced permission")));
                }
            }
            products.push(Product {
                slug: ProductSlug::new(&d.slug),
                name: d.name.clone(),
                audience: Audience::new(&d.audience),
                access_token_ttl: ttl,
                mfa: d.mfa.unwrap_or_default(),
                mfa_enrolment: d.mfa_enrolment.unwrap_or_default(),
                single_session: d.single_session,
                tenant_aware: d.tenant_aware,
                signup: d.signup,
                handoff_to: d.handoff_to.iter().map(ProductSlug::new).collect(),
                exchange_to: d.exchange_to.iter().map(ProductSlug::new).collect(),
                roles: d.roles.clone(),
                session_idle,
                session_absolute,
            });
        }
        // The built-in admin product can be referred to like any other (its audience is the issuer's).
        let builtin = admin::product("");
        let product = |slug: &str| products.iter().find(|p| p.slug.as_str() == slug).or((slug == admin::SLUG).then_some(&builtin));
        for (sp, p) in doc.product.iter().zip(&products) {
            for (field, list) in [("handoff_to", &p.handoff_to), ("exchange_to", &p.exchange_to)] {
                if let Some(bad) = list.iter().find(|h| product(h.as_str()).is_none() || h.as_str() == admin::SLUG) {
                    return Err(err(
                        sp.span(),
                        format!("product {:?}: field {field}: unknown product {:?}", p.slug.as_str(), bad.as_str()),
                    ));
                }
            }
        }

        let mut clients = Vec::new();
        let mut seen = HashSet::new();
        for sp in &doc.client {
            let (d, span) = (sp.get_ref(), sp.span());
            let e = |m: String| err(span.clone(), format!("client {:?}: {m}", d.id));
            if d.id.is_empty() || d.id.contains(':') || d.id.contains(char::is_whitespace) {
                return Err(e("field id: must be non-empty, without ':' or spaces".into()));
            }
            // A client's token names the client as its subject: an id shaped like a user's (or
            // any other of Portico's ids) could pass for one.
            if let Some(prefix) = RESERVED_ID_PREFIXES.iter().find(|p| d.id.starts_with(*p)) {
                return Err(e(format!(
                    "field id: {prefix:?} begins Portico's own ids (users, tenants, sessions); choose another id"
                )));
            }
            if !seen.insert(d.id.clone()) {
                return Err(e("field id: duplicate client".into()));
            }
            if product(&d.product).is_none() {
                return Err(e(format!("field product: unknown product {:?}", d.product)));
            }
            let secret = match (&d.kind, &d.secret) {
                (ClientKind::Public, Some(_)) => return Err(e("field secret: a public client has no secret".into())),
                (ClientKind::Public, None) => None,
                (ClientKind::Confidential, None) => return Err(e("field secret: a confidential client needs a secret (literal or env:NAME)".into())),
                (ClientKind::Confidential, Some(s)) => {
                    let s = resolve_secret(s).map_err(|m| e(format!("field secret: {m}")))?;
                    if s.chars().count() < 32 {
                        return Err(e("field secret: must be at least 32 characters".into()));
                    }
                    Some(Secret::new(s))
                }
            };
            let auth_method = match (d.kind, d.auth_method) {
                (ClientKind::Public, None | Some(AuthMethod::None)) => AuthMethod::None,
                (ClientKind::Public, Some(_)) => return Err(e("field auth_method: a public client uses \"none\"".into())),
                (ClientKind::Confidential, None) => AuthMethod::ClientSecretBasic,
                (ClientKind::Confidential, Some(AuthMethod::None)) => return Err(e("field auth_method: a confidential client must authenticate".into())),
                (ClientKind::Confidential, Some(m)) => m,
            };
            let uris = |field: &str, list: &[String]| -> Result<Vec<RedirectUri>, SuiteError> {
                list.iter()
                    .map(|u| RedirectUri::parse(u).map_err(|m| e(format!("field {field}: {u:?} {m}"))))
                    .collect()
            };
            let grant_types = match &d.grant_types {
                None => vec![GrantType::AuthorizationCode, GrantType::RefreshToken],
                Some(list) => list
                    .iter()
                    .map(|g| match GrantType::parse(g) {
                        Some(t) => Ok(t),
                        None => Err(e(format!("field grant_types: unknown grant type {g:?}"))),
                    })
                    .collect::<Result<_, _>>()?,
            };
            if d.kind == ClientKind::Public && grant_types.contains(&GrantType::ClientCredentials) {
                return Err(e("field grant_types: a public client cannot use client_credentials".into()));
            }
            if d.kind == ClientKind::Public && grant_types.contains(&GrantType::TokenExchange) {
                return Err(e("field grant_types: a public client cannot use token exchange".into()));
            }
            if grant_types.contains(&GrantType::AuthorizationCode) && d.redirect_uris.is_empty() {
                return Err(e("field redirect_uris: the authorization_code grant needs at least one".into()));
            }
            if let Some(bad) = d.resources.iter().find(|r| product(r).is_none()) {
                return Err(e(format!("field resources: unknown product {bad:?}")));
            }
            let signing_alg = match &d.signing_alg {
                None => SigningAlg::EdDSA,
                Some(a) => SigningAlg::parse(a).ok_or_else(|| e(format!("field signing_alg: {a:?} is not EdDSA, ES256 or RS256")))?,
            };
            // Back-Channel Logout 1.0 §2.2: an absolute URI without a fragment; Portico POSTs to it,
            // so http(s) only.
            if let Some(u) = &d.backchannel_logout_uri {
                let ok = url::Url::parse(u).is_ok_and(|url| matches!(url.scheme(), "https" | "http") && url.fragment().is_none() && url.has_host());
                if !ok {
                    return Err(e("field backchannel_logout_uri: must be an absolute http(s) URI without a fragment".into()));
                }
            }
            // An origin exactly as browsers serialize it (`https://app.example.test`, a port when
            // not the default, no path or trailing slash): web messages go to it verbatim.
            if let Some(bad) = d
                .web_origins
                .iter()
                .find(|o| url::Url::parse(o).map_or(true, |u| !matches!(u.scheme(), "https" | "http") || u.origin().ascii_serialization() != **o))
            {
                return Err(e(format!("field web_origins: {bad:?} is not an origin like \"https://app.example.test\"")));
            }
            clients.push((
                Client {
                    id: ClientId::new(&d.id),
                    product: ProductSlug::new(&d.product),
                    kind: d.kind,
                    name: d.name.clone().unwrap_or_else(|| d.id.clone()),
                    auth_method,
                    redirect_uris: uris("redirect_uris", &d.redirect_uris)?,
                    post_logout_redirect_uris: uris("post_logout_redirect_uris", &d.post_logout_redirect_uris)?,
                    web_origins: d.web_origins.clone(),
                    grant_types,
                    resources: d.resources.iter().map(ProductSlug::new).collect(),
                    backchannel_logout_uri: d.backchannel_logout_uri.clone(),
                    first_party: d.first_party,
                    signing_alg,
                },
                secret,
            ));
        }

        let mut tenants = Vec::new();
        let mut seen = HashSet::new();
        for sp in &doc.tenant {
            let (d, span) = (sp.get_ref(), sp.span());
            if !valid_slug(&d.slug) {
                return Err(err(span, format!("tenant {:?}: field slug: use lowercase letters, digits and '-'", d.slug)));
            }
            if !seen.insert(d.slug.clone()) {
                return Err(err(span, format!("tenant {:?}: field slug: duplicate tenant", d.slug)));
            }
            tenants.push((d.slug.clone(), d.name.clone(), d.domains.clone()));
        }

        let mut users = Vec::new();
        let mut seen = HashSet::new();
        for sp in &doc.user {
            let (d, span) = (sp.get_ref(), sp.span());
            if !d.email.contains('@') {
                return Err(err(span, format!("user {:?}: field email: not an email address", d.email)));
            }
            if !seen.insert(d.email.to_lowercase()) {
                return Err(err(span, format!("user {:?}: field email: duplicate user", d.email)));
            }
            let password = d
                .password
                .as_deref()
                .map(resolve_secret)
                .transpose()
                .map_err(|m| err(sp.span(), format!("user {:?}: field password: {m}", d.email)))?;
            users.push((d.email.clone(), d.name.clone().unwrap_or_default(), password.map(Secret::new)));
        }

        let mut grants = Vec::new();
        let mut seen = HashSet::new();
        for sp in &doc.grant {
            let (d, span) = (sp.get_ref(), sp.span());
            let e = |m: String| err(span.clone(), format!("grant for product {:?}: {m}", d.product));
            let target = match (&d.user, &d.client) {
                (Some(u), None) => {
                    if !users.iter().any(|(e, _, _)| e.eq_ignore_ascii_case(u)) && !known_users.contains(&u.to_lowercase()) {
                        return Err(e(format!("field user: unknown user {u:?}")));
                    }
                    GrantTarget::User(u.to_lowercase())
                }
                (None, Some(c)) => {
                    if !clients.iter().any(|(cl, _)| cl.id.as_str() == c) {
                        return Err(e(format!("field client: unknown client {c:?}")));
                    }
                    GrantTarget::Client(c.clone())
                }
                _ => return Err(e("name exactly one of user or client".into())),
            };
            let Some(p) = product(&d.product) else {
                return Err(e(format!("field product: unknown product {:?}", d.product)));
            };
            match (&d.tenant, p.tenant_aware) {
                (None, true) => return Err(e("field tenant: this product is tenant-aware; name a tenant or \"*\"".into())),
                (Some(_), false) => return Err(e("field tenant: this product has no tenants".into())),
                (Some(t), true) if t != "*" && !tenants.iter().any(|(s, _, _)| s == t) => return Err(e(format!("field tenant: unknown tenant {t:?}"))),
                _ => {}
            }
            if let Some(bad) = d.roles.iter().find(|r| !p.roles.contains_key(*r)) {
                return Err(e(format!("field roles: product {:?} has no role {bad:?}", d.product)));
            }
            let key = (format!("{:?}", d.user.as_ref().or(d.client.as_ref())), d.product.clone(), d.tenant.clone());
            if !seen.insert(key) {
                return Err(e("duplicate grant for the same user, product and tenant".into()));
            }
            let grantee = match &target {
                GrantTarget::User(_) => Grantee::User(UserId::new("")),
                GrantTarget::Client(c) => Grantee::Client(ClientId::new(c)),
            };
            let expires = match &d.expires {
                None => None,
                Some(x) => Some(parse_instant(x).ok_or_else(|| e(format!("field expires: {x:?} is not an RFC 3339 time like \"2027-01-31T00:00:00Z\"")))?),
            };
            grants.push((grantee, target, d.product.clone(), d.tenant.clone(), d.roles.clone(), expires));
        }
        Ok(Self {
            product_lines: doc.product.iter().map(|sp| (sp.get_ref().slug.clone(), line_of(sp.span().start))).collect(),
            file: file.to_owned(),
            products,
            clients,
            tenants,
            users,
            grants,
        })
    }

    /// Makes the store match the file; returns one line per change.
    pub async fn apply(&self, store: &Store, kek: &Kek, actor: &str, now: i64) -> anyhow::Result<Vec<String>> {
        let current = store.load_config().await?;
        let mut changes = Vec::new();
        let mut report = Vec::new();
        let mut audit = Vec::new();
        let mut note = |what: String, kind: &str, audit: &mut Vec<AuditEvent>| {
            audit.push(AuditEvent::new(now, kind, actor).data(serde_json::json!({"change": what})));
            report.push(what);
        };
        for p in &self.products {
            match current.products.iter().find(|c| c.slug == p.slug) {
                Some(c) if c == p => {}
                found => {
                    note(
                        format!("{} product {}", if found.is_some() { "updated" } else { "created" }, p.slug),
                        "suite.product_changed",
                        &mut audit,
                    );
                    changes.push(ConfigChange::UpsertProduct(p.clone()));
                }
            }
        }
        for (c, secret) in &self.clients {
            let new_hash = secret.as_ref().map(|s| kek.hash_client_secret(s.expose()));
            // The same secret, whichever way it was stored (a hash from before per-purpose keys
            // too): unchanged, so re-applying a file reports nothing.
            let same_secret = |stored: &Option<String>| match (secret, stored) {
                (None, None) => true,
                (Some(s), Some(h)) => kek.verify_client_secret(s.expose(), h),
                _ => false,
            };
            match current.clients.iter().find(|(x, _)| x.id == c.id) {
                Some((x, h)) if x == c && same_secret(h) => {}
                found => {
                    note(
                        format!("{} client {}", if found.is_some() { "updated" } else { "created" }, c.id),
                        "suite.client_changed",
                        &mut audit,
                    );
                    changes.push(ConfigChange::UpsertClient(c.clone(), new_hash));
                }
            }
        }
        let mut tenant_ids: HashMap<String, String> = store.tenant_ids_by_slug().await?.into_iter().collect();
        for (slug, name, domains) in &self.tenants {
            let id = tenant_ids.entry(slug.clone()).or_insert_with(|| random::id("ten_")).clone();
            let t = Tenant {
                id: TenantId::new(id),
                slug: slug.clone(),
                name: name.clone(),
                domains: domains.clone(),
            };
            match current.tenants.iter().find(|x| x.slug == *slug) {
                Some(x) if *x == t => {}
                found => {
                    note(
                        format!("{} tenant {}", if found.is_some() { "updated" } else { "created" }, slug),
                        "suite.tenant_changed",
                        &mut audit,
                    );
                    changes.push(ConfigChange::UpsertTenant(t));
                }
            }
        }
        let mut user_ids: HashMap<String, UserId> = HashMap::new();
        for (email, name, password) in &self.users {
            match store.user_by_email(email).await? {
                Some((u, hash)) => {
                    let same_pw = match password {
                        None => true,
                        Some(pw) => password::verify(pw.expose().to_owned(), hash).await,
                    };
                    if u.name != *name || !same_pw {
                        let new_hash = match password {
                            Some(pw) if !same_pw => Some(password::hash_async(pw.expose().to_owned()).await),
                            _ => None,
                        };
                        note(format!("updated user {email}"), "suite.user_changed", &mut audit);
                        changes.push(ConfigChange::UpdateUser(u.id.clone(), name.clone(), new_hash));
                    }
                    user_ids.insert(email.to_lowercase(), u.id);
                }
                None => {
                    let u = User {
                        id: UserId::new(random::id("usr_")),
                        email: email.clone(),
                        email_verified: true,
                        name: name.clone(),
                        status: UserStatus::Active,
                        created_at: now,
                    };
                    let hash = match password {
                        Some(pw) => Some(password::hash_async(pw.expose().to_owned()).await),
                        None => None,
                    };
                    note(format!("created user {email}"), "suite.user_created", &mut audit);
                    user_ids.insert(email.to_lowercase(), u.id.clone());
                    changes.push(ConfigChange::CreateUser(u, hash));
                }
            }
        }
        for (grantee, target, product, tenant, roles, expires) in &self.grants {
            let grantee = match target {
                GrantTarget::User(email) => match user_ids.get(email) {
                    Some(id) => Grantee::User(id.clone()),
                    None => match store.user_by_email(email).await? {
                        Some((u, _)) => Grantee::User(u.id),
                        None => anyhow::bail!("user {email} vanished while applying"),
                    },
                },
                GrantTarget::Client(_) => grantee.clone(),
            };
            let scope = match tenant.as_deref() {
                None => GrantScope::NoTenant,
                Some("*") => GrantScope::AllTenants,
                Some(slug) => GrantScope::One(TenantId::new(tenant_ids.get(slug).expect("validated tenant").clone())),
            };
            let existing = store.grants_for(&grantee, &ProductSlug::new(product)).await?;
            let unchanged = existing
                .iter()
                .any(|g| g.scope == scope && g.status == GrantStatus::Active && g.roles == *roles && g.expires_at == *expires);
            if !unchanged {
                let who = match target {
                    GrantTarget::User(e) => e.clone(),
                    GrantTarget::Client(c) => format!("client {c}"),
                };
                note(
                    format!(
                        "granted {} on {product}{} to {who}",
                        roles.join(","),
                        tenant.as_deref().map(|t| format!(" (tenant {t})")).unwrap_or_default()
                    ),
                    "grant.added",
                    &mut audit,
                );
                changes.push(ConfigChange::PutGrant(Grant {
                    grantee,
                    product: ProductSlug::new(product),
                    scope,
                    roles: roles.clone(),
                    status: GrantStatus::Active,
                    granted_by: actor.to_owned(),
                    granted_at: now,
                    expires_at: *expires,
                }));
            }
        }
        if !changes.is_empty() {
            store.apply_config(&changes, &audit, now).await?;
        }
        Ok(report)
    }
}

fn valid_slug(s: &str) -> bool {
    !s.is_empty() && s.len() <= 64 && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}
