//! A scope (RFC 6749 §3.3): space-delimited, case-sensitive values whose order carries no meaning.
//! One parser, so every path that narrows, compares or merges scopes reads them alike.

use std::fmt;

/// A set of scope values, each once, in the order first given.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Scope(Vec<String>);

impl Scope {
    /// Splits on spaces; empty values (repeated spaces) are dropped, repeated values kept once.
    /// Linear in `text` (a token request's scope is as long as its body allows).
    pub fn parse(text: &str) -> Self {
        let mut seen = std::collections::HashSet::new();
        Self(text.split(' ').filter(|v| !v.is_empty() && seen.insert(*v)).map(str::to_owned).collect())
    }

    /// Whether the space-delimited `scope` holds `value` (without building a set).
    pub fn has(scope: &str, value: &str) -> bool {
        scope.split(' ').any(|v| v == value)
    }

    pub fn contains(&self, value: &str) -> bool {
        self.0.iter().any(|v| v == value)
    }

    /// What a request narrowing `granted` to `asked` gets (RFC 6749 §6, RFC 8693 §2.1):
    /// `granted` when nothing is asked, the asked scope normalized when it is within `granted`,
    /// `None` when it asks for more.
    pub fn narrow(granted: &str, asked: Option<&str>) -> Option<String> {
        let Some(asked) = asked else { return Some(granted.to_owned()) };
        let asked = Scope::parse(asked);
        asked.within(&Scope::parse(granted)).then(|| asked.to_string())
    }

    /// Whether every value of this scope is one of `granted`'s (RFC 6749 §6: a refresh "MUST NOT
    /// include any scope not originally granted"). Linear in this scope: `granted` holds a grant's
    /// few values.
    pub fn within(&self, granted: &Scope) -> bool {
        self.0.iter().all(|v| granted.contains(v))
    }

    /// This scope's values, then `other`'s not in it.
    pub fn union(&self, other: &Scope) -> Scope {
        let mut all = self.clone();
        for v in &other.0 {
            if !all.contains(v) {
                all.0.push(v.clone());
            }
        }
        all
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.join(" "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_scope_is_a_set_of_exact_values() {
        let s = Scope::parse("openid  profile openid ");
        assert_eq!(s.to_string(), "openid profile");
        assert!(s.contains("openid") && !s.contains("OpenID") && !s.contains("open"));
        assert!(Scope::parse("profile").within(&s) && Scope::parse("").within(&s));
        assert!(!Scope::parse("profile email").within(&s), "one value more is not within");
        assert!(!Scope::parse("openidprofile").within(&s));
        assert_eq!(s.union(&Scope::parse("email openid")).to_string(), "openid profile email");
        assert!(Scope::has("openid profile", "profile") && !Scope::has("openid profile", "prof"));
    }
}
