//! Request parameters as sent (form or query, in order, duplicates kept), and the rule every
//! endpoint shares: RFC 6749 §3.1 and §3.2, "Request and response parameters MUST NOT be
//! included more than once" (`resource` excepted, RFC 8707 §2).

use crate::error::{ErrorCode, OAuthError};

/// The parameters of one request.
#[derive(Clone, Copy)]
pub struct Params<'a>(pub &'a [(String, String)]);

impl<'a> Params<'a> {
    /// The first non-empty value of `name` (an empty value is as if omitted).
    pub fn get(&self, name: &str) -> Option<String> {
        self.0.iter().find(|(n, v)| n == name && !v.is_empty()).map(|(_, v)| v.clone())
    }

    /// The first value of `name`, empty or not.
    pub fn raw(&self, name: &str) -> Option<&'a str> {
        self.0.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }

    /// Every value of `name` (for `resource`, which may repeat).
    pub fn all(&self, name: &str) -> Vec<String> {
        self.0.iter().filter(|(n, _)| n == name).map(|(_, v)| v.clone()).collect()
    }

    pub fn count(&self, name: &str) -> usize {
        self.0.iter().filter(|(n, _)| n == name).count()
    }

    /// The first parameter sent more than once, but `resource`. Linear: it runs before the
    /// client is authenticated, on as many parameters as a body holds.
    pub fn repeated(&self) -> Option<&'a str> {
        let mut seen = std::collections::HashSet::with_capacity(self.0.len());
        self.0.iter().map(|(k, _)| k.as_str()).find(|k| *k != "resource" && !seen.insert(*k))
    }

    /// `invalid_request` naming the first repeated parameter, if any.
    pub fn reject_repeated(&self) -> Result<(), OAuthError> {
        match self.repeated() {
            Some(k) => Err(OAuthError::new(ErrorCode::InvalidRequest, "a parameter is repeated").detail(k.to_owned())),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Params;

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn a_repeated_parameter_is_named_and_resource_may_repeat() {
        let p = pairs(&[("resource", "a"), ("scope", "x"), ("resource", "b"), ("code", "1"), ("scope", "y")]);
        assert_eq!(Params(&p).repeated(), Some("scope"));
        let p = pairs(&[("resource", "a"), ("resource", "b"), ("code", "")]);
        assert_eq!(Params(&p).repeated(), None);
        assert_eq!(Params(&p).get("code"), None, "an empty value is as if omitted");
        assert_eq!(Params(&p).all("resource"), ["a", "b"]);
    }
}
