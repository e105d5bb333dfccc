//! `portico apply -f suite.toml`: the declarative suite file (DESIGN.md, "The suite file").
//! The whole file is parsed and checked before anything is written; errors name the line and
//! field. Each definition's own rules live in the model ([`portico_model::spec`]); this module
//! adds the rules between definitions (duplicates, references) and the lines. [`apply`] then
//! changes the store in one transaction, only where the file differs from it.

mod apply;

use portico_model::spec::{self, ClientSpec, FieldError, GrantSpec, ProductSpec, TenantSpec, UserSpec};
use portico_model::*;
use serde::Deserialize;
use std::collections::HashSet;
use std::ops::Range;
use toml::Spanned;

pub use portico_model::spec::{RESERVED_ID_PREFIXES, parse_duration};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SuiteFile {
    #[serde(default)]
    product: Vec<Spanned<ProductSpec>>,
    #[serde(default)]
    client: Vec<Spanned<ClientSpec>>,
    #[serde(default)]
    tenant: Vec<Spanned<TenantSpec>>,
    #[serde(default)]
    user: Vec<Spanned<UserSpec>>,
    #[serde(default)]
    grant: Vec<Spanned<GrantSpec>>,
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
    grants: Vec<SuiteGrant>,
}

/// A grant as the file states it, before tenants and users have ids.
struct SuiteGrant {
    target: GrantTarget,
    product: String,
    tenant: Option<String>,
    roles: Vec<String>,
    expires: Option<i64>,
}

/// Who a grant names, before users have ids.
#[derive(Clone)]
pub enum GrantTarget {
    /// By lowercase email.
    User(String),
    Client(String),
}

/// Parses an RFC 3339 instant ("2027-01-31T00:00:00Z") into Unix seconds.
pub fn parse_instant(s: &str) -> Option<i64> {
    time::OffsetDateTime::parse(s.trim(), &time::format_description::well_known::Rfc3339)
        .ok()
        .map(|t| t.unix_timestamp())
}

/// Resolves `env:NAME` secrets.
fn resolve_secret(value: &str) -> Result<String, String> {
    match value.strip_prefix("env:") {
        Some(name) => std::env::var(name).map_err(|_| format!("environment variable {name} is not set")),
        None => Ok(value.to_owned()),
    }
}

/// The file being parsed: its name and text, to name the line of an error.
struct Source<'a> {
    file: &'a str,
    text: &'a str,
}

impl Source<'_> {
    fn line_of(&self, offset: usize) -> usize {
        self.text[..offset.min(self.text.len())].matches('\n').count() + 1
    }

    fn error(&self, span: Range<usize>, message: String) -> SuiteError {
        SuiteError {
            file: self.file.to_owned(),
            line: self.line_of(span.start),
            message,
        }
    }

    /// A rule broken by the definition at `span`, which is `what` (`product "crm"`).
    fn field(&self, span: Range<usize>, what: &str, e: FieldError) -> SuiteError {
        self.error(span, format!("{what}: {e}"))
    }
}

impl Suite {
    /// Checks what needs the deployment's mail: a product whose first factors need a mailed
    /// link needs a Portico that sends mail, or its users without a factor could never set one up.
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

    /// Checks what needs the deployment's issuer: no product may take the audience of the built-in
    /// `portico-admin` (`<issuer>/api`), or its tokens would be admin tokens.
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
        let src = Source { file, text };
        let doc: SuiteFile = toml::from_str(text).map_err(|e| SuiteError {
            file: file.to_owned(),
            line: e.span().map(|s| src.line_of(s.start)).unwrap_or(0),
            message: e.message().to_owned(),
        })?;
        let products = products(&src, &doc.product)?;
        // The built-in admin product can be referred to like any other (its audience is the issuer's).
        let builtin = admin::product("");
        let product = |slug: &str| products.iter().find(|p| p.slug.as_str() == slug).or((slug == admin::SLUG).then_some(&builtin));
        let clients = clients(&src, &doc.client, &|slug| product(slug).is_some())?;
        // A client whose URIs follow tenant domains serves a product that has tenants.
        for (sp, (c, _)) in doc.client.iter().zip(&clients) {
            let t = &c.domain_templates;
            let login_template = c.initiate_login_uri.as_ref().is_some_and(|u| u.contains(domains::TENANT_DOMAIN));
            if (!t.is_empty() || login_template) && !product(c.product.as_str()).is_some_and(|p| p.tenant_aware) {
                let field = match (t.redirect_uris.is_empty(), t.post_logout_redirect_uris.is_empty(), t.web_origins.is_empty()) {
                    (false, _, _) => "redirect_uris",
                    (true, false, _) => "post_logout_redirect_uris",
                    (true, true, false) => "web_origins",
                    (true, true, true) => "initiate_login_uri",
                };
                return Err(src.field(
                    sp.span(),
                    &format!("client {:?}", c.id.as_str()),
                    FieldError::new(field, "{tenant_domain} needs a product with tenant_aware = true"),
                ));
            }
        }
        let tenants = tenants(&src, &doc.tenant)?;
        let users = users(&src, &doc.user)?;
        let known = Known {
            product: &product,
            user: &|u| users.iter().any(|(e, _, _)| e.eq_ignore_ascii_case(u)) || known_users.contains(&u.to_lowercase()),
            client: &|c| clients.iter().any(|(cl, _)| cl.id.as_str() == c),
            tenant: &|t| tenants.iter().any(|(s, _, _)| s == t),
        };
        let grants = grants(&src, &doc.grant, &known)?;
        Ok(Self {
            product_lines: doc.product.iter().map(|sp| (sp.get_ref().slug.clone(), src.line_of(sp.span().start))).collect(),
            file: file.to_owned(),
            products,
            clients,
            tenants,
            users,
            grants,
        })
    }
}

fn products(src: &Source<'_>, defs: &[Spanned<ProductSpec>]) -> Result<Vec<Product>, SuiteError> {
    let mut products = Vec::new();
    let (mut seen, mut audiences) = (HashSet::new(), HashSet::new());
    for sp in defs {
        let (d, span) = (sp.get_ref(), sp.span());
        let what = format!("product {:?}", d.slug);
        let fail = |e: FieldError| src.field(span.clone(), &what, e);
        let p = d.check().map_err(fail)?;
        if !seen.insert(d.slug.clone()) {
            return Err(fail(FieldError::new("slug", "duplicate product")));
        }
        if !audiences.insert(d.audience.clone()) {
            return Err(fail(FieldError::new("audience", "another product has the same audience")));
        }
        products.push(p);
    }
    let known = |slug: &str| products.iter().any(|p| p.slug.as_str() == slug);
    for (sp, p) in defs.iter().zip(&products) {
        spec::check_targets(p, known).map_err(|e| src.field(sp.span(), &format!("product {:?}", p.slug.as_str()), e))?;
    }
    Ok(products)
}

fn clients(src: &Source<'_>, defs: &[Spanned<ClientSpec>], product_known: &dyn Fn(&str) -> bool) -> Result<Vec<(Client, Option<Secret>)>, SuiteError> {
    let mut clients = Vec::new();
    let mut seen = HashSet::new();
    for sp in defs {
        let (d, span) = (sp.get_ref(), sp.span());
        let what = format!("client {:?}", d.id);
        let fail = |e: FieldError| src.field(span.clone(), &what, e);
        if !seen.insert(d.id.clone()) {
            return Err(fail(FieldError::new("id", "duplicate client")));
        }
        let (client, secret) = d.check(resolve_secret, product_known).map_err(fail)?;
        usable_keys(&client).map_err(fail)?;
        // Another product sends its users to *the* hand-off page of this one; the launcher to
        // *the* page that starts its sign-in.
        let pages: [(&'static str, fn(&Client) -> bool); 2] = [
            ("handoff_uri", |c| c.handoff_uri.is_some()),
            ("initiate_login_uri", |c| c.initiate_login_uri.is_some()),
        ];
        for (field, page) in pages {
            if let Some((other, _)) = clients
                .iter()
                .find(|(c, _): &&(Client, Option<Secret>)| page(&client) && c.product == client.product && page(c))
            {
                return Err(fail(FieldError::new(
                    field,
                    format!(
                        "client {:?} already registers product {:?}'s page: one page per product",
                        other.id.as_str(),
                        client.product.as_str()
                    ),
                )));
            }
        }
        clients.push((client, secret));
    }
    Ok(clients)
}

/// A registered JWK Set must hold a key Portico can verify assertions with: the rules the
/// assertions are checked by (`portico-jose`), so a set that parses here verifies there.
fn usable_keys(client: &Client) -> Result<(), FieldError> {
    let Some(portico_model::ClientKeys::Jwks(set)) = &client.keys else {
        return Ok(());
    };
    let (keys, skipped) = portico_jose::jwks::KeySet::parse(set, &portico_jose::jwks::SUPPORTED);
    match (keys.keys.is_empty(), skipped) {
        (true, _) => Err(FieldError::new(
            "jwks",
            "holds no key that verifies signatures (an OKP Ed25519, EC P-256/P-384 or RSA public key, use \"sig\", a kid of its own)",
        )),
        (false, 0) => Ok(()),
        (false, n) => Err(FieldError::new(
            "jwks",
            format!("{n} of its keys cannot verify signatures (type, use, alg or a shared kid)"),
        )),
    }
}

fn tenants(src: &Source<'_>, defs: &[Spanned<TenantSpec>]) -> Result<Vec<(String, String, Vec<String>)>, SuiteError> {
    let mut tenants = Vec::new();
    let mut seen = HashSet::new();
    for sp in defs {
        let d = sp.get_ref();
        let fail = |e: FieldError| src.field(sp.span(), &format!("tenant {:?}", d.slug), e);
        d.check().map_err(fail)?;
        if !seen.insert(d.slug.clone()) {
            return Err(fail(FieldError::new("slug", "duplicate tenant")));
        }
        // A domain names one tenant: a request from it yields that tenant's tokens only.
        if let Some((other, _, _)) = tenants
            .iter()
            .find(|(_, _, domains): &&(String, String, Vec<String>)| domains.iter().any(|x| d.domains.contains(x)))
        {
            return Err(fail(FieldError::new(
                "domains",
                format!("a domain of tenant {other:?} too: a domain names one tenant"),
            )));
        }
        tenants.push((d.slug.clone(), d.name.clone(), d.domains.clone()));
    }
    Ok(tenants)
}

fn users(src: &Source<'_>, defs: &[Spanned<UserSpec>]) -> Result<Vec<(String, String, Option<Secret>)>, SuiteError> {
    let mut users = Vec::new();
    let mut seen = HashSet::new();
    for sp in defs {
        let d = sp.get_ref();
        let fail = |e: FieldError| src.field(sp.span(), &format!("user {:?}", d.email), e);
        d.check().map_err(fail)?;
        if !seen.insert(d.email.to_lowercase()) {
            return Err(fail(FieldError::new("email", "duplicate user")));
        }
        let password = d
            .password
            .as_deref()
            .map(resolve_secret)
            .transpose()
            .map_err(|m| fail(FieldError::new("password", m)))?;
        // The suite file is the operator's: its passwords skip the sign-up policy by name (an
        // operator may seed accounts for tests and demos) and keep the floor such passwords keep.
        if let Some(p) = &password {
            portico_protocol::admin::bypass_floor(p).map_err(|m| fail(FieldError::new("password", m)))?;
        }
        users.push((d.email.clone(), d.name.clone().unwrap_or_default(), password.map(Secret::new)));
    }
    Ok(users)
}

/// What a grant may refer to: the file's products (and the built-in one), users (the file's and
/// the store's), clients and tenants.
struct Known<'a> {
    product: &'a dyn Fn(&str) -> Option<&'a Product>,
    user: &'a dyn Fn(&str) -> bool,
    client: &'a dyn Fn(&str) -> bool,
    tenant: &'a dyn Fn(&str) -> bool,
}

fn grants(src: &Source<'_>, defs: &[Spanned<GrantSpec>], known: &Known<'_>) -> Result<Vec<SuiteGrant>, SuiteError> {
    let mut grants = Vec::new();
    let mut seen = HashSet::new();
    for sp in defs {
        let d = sp.get_ref();
        let what = format!("grant for product {:?}", d.product);
        let fail = |e: FieldError| src.field(sp.span(), &what, e);
        let plain = |m: &str| src.error(sp.span(), format!("{what}: {m}"));
        let target = match (&d.user, &d.client) {
            (Some(u), None) if (known.user)(u) => GrantTarget::User(u.to_lowercase()),
            (Some(u), None) => return Err(fail(FieldError::new("user", format!("unknown user {u:?}")))),
            (None, Some(c)) if (known.client)(c) => GrantTarget::Client(c.clone()),
            (None, Some(c)) => return Err(fail(FieldError::new("client", format!("unknown client {c:?}")))),
            _ => return Err(plain("name exactly one of user or client")),
        };
        let Some(p) = (known.product)(&d.product) else {
            return Err(fail(FieldError::new("product", format!("unknown product {:?}", d.product))));
        };
        d.check(p, known.tenant).map_err(fail)?;
        let key = (format!("{:?}", d.user.as_ref().or(d.client.as_ref())), d.product.clone(), d.tenant.clone());
        if !seen.insert(key) {
            return Err(plain("duplicate grant for the same user, product and tenant"));
        }
        let expires = match &d.expires {
            None => None,
            Some(x) => Some(parse_instant(x).ok_or_else(|| {
                fail(FieldError::new(
                    "expires",
                    format!("{x:?} is not an RFC 3339 time like \"2027-01-31T00:00:00Z\""),
                ))
            })?),
        };
        grants.push(SuiteGrant {
            target,
            product: d.product.clone(),
            tenant: d.tenant.clone(),
            roles: d.roles.clone(),
            expires,
        });
    }
    Ok(grants)
}
