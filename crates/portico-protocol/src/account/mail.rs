//! The mails Portico writes (password reset, sign-up confirmation, email verification) and the
//! single-use links in them. A link carries a 256-bit random token; the store keeps only its hash,
//! as a pending state of its kind, and takes it out once when it is used.

use crate::interaction::pending::{self, Kind};
use crate::provider::Provider;
use crate::random;
use portico_store::StoreError;

/// A plain-text mail to one address.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mail {
    pub to: String,
    pub subject: String,
    pub text: String,
}

/// What a link does, and the prefix its record is kept under.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LinkKind {
    /// Choose a new password.
    Reset,
    /// Finish a sign-up: the account is made when its email is confirmed.
    Signup,
    /// Confirm an existing account's email.
    Verify,
    /// Let the session that opens it set up the account's first second factor.
    Enrolment,
}

impl LinkKind {
    fn path(self) -> &'static str {
        match self {
            LinkKind::Reset => "/password/reset",
            LinkKind::Signup => "/signup/confirm",
            LinkKind::Verify => "/account/verify-email",
            LinkKind::Enrolment => "/account/factor-link",
        }
    }
}

/// Stores a new link's payload for its kind's lifetime; returns the URL to mail.
pub async fn new_link(p: &Provider, kind: LinkKind, payload: &serde_json::Value, now: i64) -> Result<String, StoreError> {
    let token = random::token();
    pending::put(&p.store, &p.settings, Kind::Link(kind), &token, payload, now).await?;
    Ok(format!("{}{}?token={token}", p.issuer, kind.path()))
}

/// A live link's payload, left in place (the page that shows the form reads it; mail scanners
/// that fetch links spend nothing).
pub async fn peek_link(p: &Provider, kind: LinkKind, token: &str, now: i64) -> Result<Option<serde_json::Value>, StoreError> {
    pending::get(&p.store, Kind::Link(kind), token, now).await
}

/// Takes a live link's payload out: a second use finds nothing.
pub async fn take_link(p: &Provider, kind: LinkKind, token: &str, now: i64) -> Result<Option<serde_json::Value>, StoreError> {
    pending::take(&p.store, Kind::Link(kind), token, now).await
}

/// How long a link of `kind` works.
pub fn link_ttl(p: &Provider, kind: LinkKind) -> i64 {
    Kind::Link(kind).ttl(&p.settings)
}

/// "30 minutes", "24 hours", "2 days": how long a link works, for the mail's reader.
pub fn lifetime(seconds: i64) -> String {
    let (n, unit) = match seconds {
        s if s % 86_400 == 0 => (s / 86_400, "day"),
        s if s % 3600 == 0 => (s / 3600, "hour"),
        s => ((s + 59) / 60, "minute"),
    };
    format!("{n} {unit}{}", if n == 1 { "" } else { "s" })
}

/// The issuer's host, as the mails name the site.
pub fn site(p: &Provider) -> String {
    p.issuer_host().unwrap_or_else(|| p.issuer.clone())
}

#[cfg(test)]
mod tests {
    #[test]
    fn lifetimes_read_as_people_say_them() {
        assert_eq!(super::lifetime(1800), "30 minutes");
        assert_eq!(super::lifetime(60), "1 minute");
        assert_eq!(super::lifetime(86_400), "1 day");
        assert_eq!(super::lifetime(7200), "2 hours");
        assert_eq!(super::lifetime(90), "2 minutes");
    }
}
