//! Which passwords a user may choose, after NIST SP 800-63B §3.1.1.2: a minimum length, no
//! composition rules ("Verifiers and CSPs SHALL NOT impose other composition rules"), and a check
//! against "a blocklist that contains known commonly used, expected, or compromised passwords".
//!
//! The blocklist Portico ships is zxcvbn's: the 30,000 most frequent passwords of leaked password
//! corpora, with common words and names, matched also reversed, l33t-spelt and with the user's own
//! email and name as context. A password that is one of those passwords outright is refused as
//! common; one that zxcvbn still guesses in fewer than 10^10 tries (repeats, keyboard rows, dates,
//! a common password with a digit added) is refused as too easy to guess. Operators may add their
//! own list (`password_blocklist`, one password a line). The same estimate drives the meter shown
//! as the user types, so what the page says is what the server decides.

use std::collections::HashSet;
use std::sync::Arc;
use zxcvbn::feedback::Warning;

/// NIST SP 800-63B-4: "at least 15 characters" for a password that is the only factor.
pub const DEFAULT_MIN_LENGTH: usize = 15;
/// NIST: "SHOULD permit a maximum length of at least 64 characters"; the bound keeps hashing cheap.
pub const MAX_LENGTH: usize = 256;

/// The policy in force.
#[derive(Clone, Debug)]
pub struct PasswordPolicy {
    pub min_length: usize,
    /// The operator's own list, lower-cased.
    pub blocklist: Arc<HashSet<String>>,
}

impl Default for PasswordPolicy {
    fn default() -> Self {
        Self {
            min_length: DEFAULT_MIN_LENGTH,
            blocklist: Arc::default(),
        }
    }
}

/// Why a password was refused; `Display` is the sentence the user reads.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("Use at least {0} characters.")]
    TooShort(usize),
    #[error("Use at most {MAX_LENGTH} characters.")]
    TooLong,
    #[error("This password is one of the most common ones. Choose another.")]
    Common,
    #[error("This password would be easy to guess{0}. Add a few more uncommon words.")]
    Guessable(String),
}

/// How strong a password is, as the meter shows it.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Strength {
    /// zxcvbn's score, 0 (guessed in 10^3 tries) to 4 (more than 10^10).
    pub score: u8,
    /// Whether the policy accepts it.
    pub acceptable: bool,
    /// What is wrong or could be better, for the user.
    pub message: String,
}

/// The score a password needs: zxcvbn's 3 (at least 10^8 guesses), "safely unguessable" to an
/// online attacker and slow for an offline one against argon2id.
const MIN_SCORE: u8 = 3;

impl PasswordPolicy {
    /// Checks a new password. `context` holds what an attacker would try first: the user's email
    /// and name.
    pub fn check(&self, password: &str, context: &[&str]) -> Result<(), Refusal> {
        self.verdict(password, context).1
    }

    /// The meter's reading: the same verdict as [`check`](Self::check), with a hint.
    pub fn strength(&self, password: &str, context: &[&str]) -> Strength {
        match self.verdict(password, context) {
            (score, Ok(())) => Strength {
                score,
                acceptable: true,
                message: if score >= 4 { "Strong password." } else { "Good password." }.to_owned(),
            },
            (score, Err(refusal)) => Strength {
                score: score.min(MIN_SCORE - 1),
                acceptable: false,
                message: refusal.to_string(),
            },
        }
    }

    /// [`check`](Self::check) off the async workers: zxcvbn takes milliseconds on a long password.
    pub async fn check_async(&self, password: &str, context: &[&str]) -> Result<(), Refusal> {
        let (policy, password, context) = (self.clone(), password.to_owned(), owned(context));
        crate::password::cpu_bound(move || policy.check(&password, &borrowed(&context)))
            .await
            .unwrap_or(Err(Refusal::TooLong))
    }

    /// [`strength`](Self::strength) off the async workers.
    pub async fn strength_async(&self, password: &str, context: &[&str]) -> Option<Strength> {
        let (policy, password, context) = (self.clone(), password.to_owned(), owned(context));
        crate::password::cpu_bound(move || policy.strength(&password, &borrowed(&context))).await
    }

    /// zxcvbn's score (read once) and the verdict.
    fn verdict(&self, password: &str, context: &[&str]) -> (u8, Result<(), Refusal>) {
        let length = password.chars().count();
        if length > MAX_LENGTH {
            return (0, Err(Refusal::TooLong));
        }
        if password.is_empty() {
            return (0, Err(Refusal::TooShort(self.min_length)));
        }
        let entropy = weakest_reading(password, context);
        let score = entropy.score() as u8;
        if length < self.min_length {
            return (score, Err(Refusal::TooShort(self.min_length)));
        }
        if self.blocklist.contains(&password.to_lowercase()) || is_listed_password(&entropy) {
            return (score, Err(Refusal::Common));
        }
        if score < MIN_SCORE {
            let why = entropy
                .feedback()
                .and_then(|f| f.warning())
                .map(|w| format!(" ({})", w.to_string().trim_end_matches('.').to_lowercase()))
                .unwrap_or_default();
            return (score, Err(Refusal::Guessable(why)));
        }
        (score, Ok(()))
    }
}

fn owned(context: &[&str]) -> Vec<String> {
    context.iter().map(|c| (*c).to_owned()).collect()
}

fn borrowed(context: &[String]) -> Vec<&str> {
    context.iter().map(String::as_str).collect()
}

/// zxcvbn reads this many characters at most: its matching grows faster than the length, and a
/// password whose first 64 characters are strong is strong.
const ESTIMATED: usize = 64;

/// zxcvbn's reading of the password, and of it without its spaces when that is weaker: words
/// strung with spaces are guessed as the words ("grace hopper grace hopper" is a repeated name).
fn weakest_reading(password: &str, context: &[&str]) -> zxcvbn::Entropy {
    let password: String = password.chars().take(ESTIMATED).collect();
    let password = password.as_str();
    let inputs = context_words(context);
    let inputs: Vec<&str> = inputs.iter().map(String::as_str).collect();
    let whole = zxcvbn::zxcvbn(password, &inputs);
    let joined: String = password.split_whitespace().collect();
    if joined.len() == password.len() || joined.is_empty() {
        return whole;
    }
    let squeezed = zxcvbn::zxcvbn(&joined, &inputs);
    if squeezed.guesses() < whole.guesses() { squeezed } else { whole }
}

/// The email, its local part and the name's words: guessed first by anyone who knows the user.
fn context_words(context: &[&str]) -> Vec<String> {
    let mut words = vec!["portico".to_owned()];
    for c in context.iter().filter(|c| !c.is_empty()) {
        words.push(c.to_lowercase());
        if let Some((local, _)) = c.split_once('@') {
            words.push(local.to_lowercase());
        }
        words.extend(c.split_whitespace().filter(|w| w.chars().count() >= 3).map(str::to_lowercase));
    }
    words
}

/// Whether zxcvbn found the whole password as one entry of its leaked-passwords list (plain,
/// reversed or l33t-spelt): its warnings name that list only.
fn is_listed_password(entropy: &zxcvbn::Entropy) -> bool {
    let whole = entropy.sequence().len() == 1;
    let listed = entropy.feedback().and_then(|f| f.warning()).is_some_and(|w| {
        matches!(
            w,
            Warning::ThisIsATop10Password | Warning::ThisIsATop100Password | Warning::ThisIsACommonPassword | Warning::ThisIsSimilarToACommonlyUsedPassword
        )
    });
    whole && listed
}

/// Reads an operator's blocklist: one password a line, blank lines and `#` comments skipped.
pub fn parse_blocklist(text: &str) -> HashSet<String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_lowercase)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(min: usize) -> PasswordPolicy {
        PasswordPolicy {
            min_length: min,
            blocklist: Arc::new(parse_blocklist("# ours\nAcmeBank2026!\n")),
        }
    }

    #[test]
    fn length_is_counted_in_characters_not_bytes() {
        let p = policy(15);
        assert_eq!(p.check("größenwahn über", &[]).map_err(|e| e.to_string()), Ok(()), "15 characters, 18 bytes");
        assert_eq!(p.check("größenwahn übe", &[]), Err(Refusal::TooShort(15)), "14 characters, 17 bytes");
        assert_eq!(p.check("short one here", &[]), Err(Refusal::TooShort(15)));
        assert_eq!(p.check(&"x".repeat(MAX_LENGTH + 1), &[]), Err(Refusal::TooLong));
    }

    #[test]
    fn common_and_breached_passwords_are_refused() {
        let p = policy(8);
        for common in ["password", "iloveyou", "qwertyuiop", "Password", "drowssap", "p@ssw0rd"] {
            assert_eq!(p.check(common, &[]), Err(Refusal::Common), "{common}");
        }
        assert_eq!(p.check("acmebank2026!", &[]), Err(Refusal::Common), "the operator's list, any case");
    }

    #[test]
    fn guessable_patterns_are_refused_without_composition_rules() {
        let p = policy(15);
        for weak in [
            "aaaaaaaaaaaaaaaa",
            "abcdefghijklmnop",
            "1234567890123456",
            "password12345678",
            "qwertyuiopasdfgh",
        ] {
            assert!(matches!(p.check(weak, &[]), Err(Refusal::Guessable(_)) | Err(Refusal::Common)), "{weak}");
        }
        // Only lower-case letters and spaces, no digit or symbol: long and uncommon is enough.
        assert_eq!(p.check("correct horse battery staple", &[]), Ok(()));
        for passphrase in [
            "tulip vortex marmalade",
            "lighthouse keeper oyster violin",
            "nanoseconds of wire on my desk",
            "lunar module descent engine",
        ] {
            assert_eq!(p.check(passphrase, &[]), Ok(()), "{passphrase}");
        }
    }

    #[test]
    fn the_users_own_email_and_name_count_against_the_password() {
        let p = policy(15);
        let pw = "grace.hopper@example.test";
        assert_eq!(p.check(pw, &[]), Ok(()), "fine for someone else");
        assert!(matches!(
            p.check(pw, &["grace.hopper@example.test", "Grace Hopper"]),
            Err(Refusal::Guessable(_))
        ));
        let spaced = "grace hopper grace hopper";
        assert!(
            matches!(p.check(spaced, &["grace@example.test", "Grace Hopper"]), Err(Refusal::Guessable(_))),
            "spaces hide nothing"
        );
    }

    #[test]
    fn the_meter_agrees_with_the_check() {
        let p = policy(15);
        let weak = p.strength("password", &[]);
        assert!(!weak.acceptable && weak.score < MIN_SCORE);
        assert_eq!(weak.message, "Use at least 15 characters.");
        let strong = p.strength("correct horse battery staple", &[]);
        assert!(strong.acceptable && strong.score >= MIN_SCORE, "{strong:?}");
        assert!(!p.strength("", &[]).acceptable);
    }
}
