//! How a session signed in: the RFC 8176 `amr` values Portico records, and the `acr` they reach.
//! The protocol decides them; sessions and tokens carry their names.

/// An authentication method (RFC 8176 §2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Amr {
    /// A password.
    Pwd,
    /// A one-time code: from an authenticator app, or a recovery code.
    Otp,
    /// A hardware-bound key: a passkey.
    Hwk,
    /// A method that is multi-factor by itself: a passkey with user verification, alone.
    Mfa,
}

impl Amr {
    pub fn as_str(self) -> &'static str {
        match self {
            Amr::Pwd => "pwd",
            Amr::Otp => "otp",
            Amr::Hwk => "hwk",
            Amr::Mfa => "mfa",
        }
    }

    /// The names of `methods`, as sessions and tokens carry them.
    pub fn names(methods: &[Amr]) -> Vec<String> {
        methods.iter().map(|m| m.as_str().to_owned()).collect()
    }
}

/// The level a session reached (OIDC Core `acr`): a password alone, or a second factor too.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Acr {
    Pwd,
    Mfa,
}

impl Acr {
    pub fn as_str(self) -> &'static str {
        match self {
            Acr::Pwd => "urn:portico:acr:pwd",
            Acr::Mfa => "urn:portico:acr:mfa",
        }
    }

    /// The level a session with these `amr` values reached.
    pub fn of(amr: &[String]) -> Self {
        if crate::gate::is_multi_factor(amr) { Acr::Mfa } else { Acr::Pwd }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_factor_reaches_the_mfa_level() {
        assert_eq!(Acr::of(&Amr::names(&[Amr::Pwd])), Acr::Pwd);
        for second in [Amr::Otp, Amr::Hwk, Amr::Mfa] {
            assert_eq!(Acr::of(&Amr::names(&[Amr::Pwd, second])), Acr::Mfa, "{second:?}");
        }
    }
}
