//! Tenant custom domains: a tenant's own host names (`domains` in the suite file), and a client's
//! URIs that follow them (`https://{tenant_domain}/callback`, `https://crm.{tenant_domain}`), so
//! one registration serves every customer's domain.
//!
//! Matching stays exact: a presented URI matches a template when it is the template with one of
//! a tenant's domains in place of `{tenant_domain}`, character for character, and it then names
//! that tenant.

use serde::{Deserialize, Serialize};

/// The placeholder a template puts where a tenant's domain goes.
pub const TENANT_DOMAIN: &str = "{tenant_domain}";

/// The longest host name DNS allows.
const MAX_DOMAIN: usize = 253;

/// A client's URIs that follow its tenants' domains (each holds [`TENANT_DOMAIN`] once, in the
/// host of an `https` URI).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DomainTemplates {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub redirect_uris: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub post_logout_redirect_uris: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub web_origins: Vec<String>,
}

impl DomainTemplates {
    pub fn is_empty(&self) -> bool {
        self.redirect_uris.is_empty() && self.post_logout_redirect_uris.is_empty() && self.web_origins.is_empty()
    }
}

/// A tenant domain as the suite file may name it: a lowercase DNS host name of at least two
/// labels (`acme.test`, `crm.acme.test`), without scheme, port, wildcard or trailing dot.
pub fn valid_domain(d: &str) -> bool {
    let label = |l: &str| {
        (1..=63).contains(&l.len()) && l.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-') && !l.starts_with('-') && !l.ends_with('-')
    };
    d.len() <= MAX_DOMAIN && d.split('.').count() >= 2 && d.split('.').all(label)
}

/// The domain `presented` puts in `template`'s place for it, when it is the template with a
/// well-formed host name there and nothing else changed.
pub fn domain_in<'a>(template: &str, presented: &'a str) -> Option<&'a str> {
    let (prefix, suffix) = template.split_once(TENANT_DOMAIN)?;
    let domain = presented.strip_prefix(prefix)?.strip_suffix(suffix)?;
    valid_domain(domain).then_some(domain)
}

/// `template` with `domain` in place of the placeholder.
pub fn expand(template: &str, domain: &str) -> String {
    template.replacen(TENANT_DOMAIN, domain, 1)
}

/// Why `template` cannot be a template, if it cannot: the placeholder once, in the host of an
/// `https` URI (after any fixed labels such as `crm.`, before an optional port). What the
/// template means for its field (a redirect URI, an origin) is checked on an expansion.
pub fn template_problem(template: &str) -> Option<&'static str> {
    if template.matches(TENANT_DOMAIN).count() != 1 {
        return Some("must hold {tenant_domain} exactly once");
    }
    let Some(rest) = template.strip_prefix("https://") else {
        return Some("must be an https URI: a tenant's own domain is served over TLS");
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let Some((labels, after)) = authority.split_once(TENANT_DOMAIN) else {
        return Some("must hold {tenant_domain} in the host");
    };
    let labels_ok = labels.is_empty() || (labels.ends_with('.') && valid_domain(&format!("{labels}test")));
    let port_ok = after.is_empty()
        || after
            .strip_prefix(':')
            .is_some_and(|p| !p.is_empty() && p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit()));
    if !labels_ok || !port_ok {
        return Some("may put only host labels (\"crm.\") before {tenant_domain} and a port after it");
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_presented_uri_names_a_domain_only_through_an_exact_match() {
        let t = "https://crm.{tenant_domain}/callback";
        assert_eq!(domain_in(t, "https://crm.acme.test/callback"), Some("acme.test"));
        for bad in [
            "https://crm.acme.test/callback/",
            "https://crm.acme.test/callbac",
            "http://crm.acme.test/callback",
            "https://crm.acme.test:443/callback",
            "https://crm.ACME.test/callback",
            "https://crm.acme/callback",
            "https://crm.evil.test/x/../callback",
            "https://crm.acme.test@evil.test/callback",
            "https://crm./callback",
        ] {
            assert_eq!(domain_in(t, bad), None, "{bad}");
        }
        assert_eq!(domain_in("https://{tenant_domain}:8443", "https://acme.test:8443"), Some("acme.test"));
        assert_eq!(expand(t, "acme.test"), "https://crm.acme.test/callback");
    }

    #[test]
    fn templates_put_the_domain_in_the_host_of_an_https_uri() {
        for good in [
            "https://{tenant_domain}/cb",
            "https://crm.{tenant_domain}/cb?x=1",
            "https://{tenant_domain}:8443",
            "https://a.b.{tenant_domain}",
        ] {
            assert_eq!(template_problem(good), None, "{good}");
        }
        for bad in [
            "http://{tenant_domain}/cb",
            "https://{tenant_domain}.{tenant_domain}/cb",
            "https://example.test/{tenant_domain}",
            "https://crm-{tenant_domain}/cb",
            "https://{tenant_domain}.evil.test/cb",
            "https://{tenant_domain}:/cb",
            "https://{tenant_domain}:80a/cb",
            "https://user@{tenant_domain}/cb",
            "com.example.app:/{tenant_domain}",
        ] {
            assert!(template_problem(bad).is_some(), "{bad}");
        }
    }

    #[test]
    fn domains_are_plain_lowercase_host_names() {
        for good in ["acme.test", "crm.acme.test", "x-1.example.co"] {
            assert!(valid_domain(good), "{good}");
        }
        for bad in [
            "acme",
            "Acme.test",
            "acme.test.",
            "*.acme.test",
            "acme.test:443",
            "-a.test",
            "a..test",
            "https://acme.test",
            "acme test.x",
        ] {
            assert!(!valid_domain(bad), "{bad}");
        }
    }
}
