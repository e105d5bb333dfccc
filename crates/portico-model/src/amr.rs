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
/// Ordered: a session at a level meets every level below it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
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
    pub fn parse(value: &str) -> Option<Self> {
        [Acr::Pwd, Acr::Mfa].into_iter().find(|a| a.as_str() == value)
    }
}

/// The authentication context a request asked for (OIDC Core §3.1.2.1 `acr_values`, §5.5.1.1 the
/// `acr` member of `claims`): acceptable values in order of preference, and whether they are
/// essential. Values Portico does not know are dropped: no sign-in can meet them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AcrRequest {
    pub values: Vec<Acr>,
    /// Requested as an Essential Claim: "the Authorization Server MUST return an acr Claim Value
    /// that matches one of the requested values" (§5.5.1.1), or the sign-in has failed.
    pub essential: bool,
    /// Values were asked for, and Portico knows none of them.
    pub none_known: bool,
}

/// What a request's `acr` preference means for a session at `level`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AcrOutcome {
    /// Met: the strongest listed value the session meets, which the `acr` claim names (a session
    /// that passed a second factor meets the password level too; its claim still says the most it
    /// did of what was asked). With nothing asked, the session's own level.
    Met(Acr),
    /// No listed value is met, but a second factor would meet one: step up.
    StepUp,
    /// Voluntary and not met (no interaction is possible, or no value is known): go on, the `acr`
    /// claim names the session's own level. "It is not an error condition" (§5.5.1).
    Unmet(Acr),
    /// Essential, not met, and a second factor would meet it, but the user cannot be asked
    /// (`prompt=none`).
    NeedsInteraction,
    /// Essential and no value can be met: the sign-in fails.
    Fails,
}

impl AcrRequest {
    /// `acr_values` (space-separated), `essential` when the `claims` parameter made them so.
    pub fn new<'a>(values: impl IntoIterator<Item = &'a str>, essential: bool) -> Self {
        let asked: Vec<&str> = values.into_iter().filter(|v| !v.is_empty()).collect();
        let values: Vec<Acr> = asked.iter().filter_map(|v| Acr::parse(v)).collect();
        Self {
            none_known: !asked.is_empty() && values.is_empty(),
            values,
            essential,
        }
    }

    /// Satisfies the request with what the session did, when any listed value is met; steps up
    /// only when none is met and a second factor would meet one (`interactive`: the user can be
    /// asked). The order of preference never makes a session that meets a value step up.
    pub fn outcome(&self, level: Acr, interactive: bool) -> AcrOutcome {
        if self.values.is_empty() {
            return match self.none_known && self.essential {
                true => AcrOutcome::Fails,
                false => AcrOutcome::Met(level),
            };
        }
        if let Some(met) = self.values.iter().filter(|v| level >= **v).max() {
            return AcrOutcome::Met(*met);
        }
        match (interactive, self.essential) {
            (true, _) => AcrOutcome::StepUp,
            (false, true) => AcrOutcome::NeedsInteraction,
            (false, false) => AcrOutcome::Unmet(level),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn asked(values: &str, essential: bool) -> AcrRequest {
        AcrRequest::new(values.split(' '), essential)
    }
    const PWD: &str = "urn:portico:acr:pwd";
    const MFA: &str = "urn:portico:acr:mfa";

    #[test]
    fn acr_values_are_a_preference_any_met_value_satisfies_it() {
        for listed in [format!("{PWD} {MFA}"), format!("{MFA} {PWD}")] {
            let both = asked(&listed, false);
            // A password session meets pwd: no step-up, and the claim says pwd.
            assert_eq!(both.outcome(Acr::Pwd, true), AcrOutcome::Met(Acr::Pwd), "{listed}");
            // An MFA session meets both; the claim names the most it did.
            assert_eq!(both.outcome(Acr::Mfa, true), AcrOutcome::Met(Acr::Mfa), "{listed}");
        }
        // Asked for the password level only, an MFA session's claim says what was asked.
        assert_eq!(asked(PWD, false).outcome(Acr::Mfa, true), AcrOutcome::Met(Acr::Pwd));
    }

    #[test]
    fn only_an_unmet_list_steps_up_and_only_an_essential_one_fails() {
        let mfa = asked(MFA, false);
        assert_eq!(mfa.outcome(Acr::Pwd, true), AcrOutcome::StepUp);
        assert_eq!(mfa.outcome(Acr::Pwd, false), AcrOutcome::Unmet(Acr::Pwd));
        assert_eq!(mfa.outcome(Acr::Mfa, false), AcrOutcome::Met(Acr::Mfa));
        let essential = asked(MFA, true);
        assert_eq!(essential.outcome(Acr::Pwd, true), AcrOutcome::StepUp);
        assert_eq!(essential.outcome(Acr::Pwd, false), AcrOutcome::NeedsInteraction);
        // Unknown values are dropped; a voluntary request of them only is no request.
        assert_eq!(asked("urn:other:gold", false).outcome(Acr::Pwd, true), AcrOutcome::Met(Acr::Pwd));
        assert_eq!(asked("urn:other:gold", true).outcome(Acr::Mfa, true), AcrOutcome::Fails);
        assert_eq!(asked(&format!("urn:other:gold {MFA}"), false).outcome(Acr::Pwd, true), AcrOutcome::StepUp);
        assert_eq!(asked("", true).outcome(Acr::Pwd, false), AcrOutcome::Met(Acr::Pwd));
    }

    #[test]
    fn a_second_factor_reaches_the_mfa_level() {
        assert_eq!(Acr::of(&Amr::names(&[Amr::Pwd])), Acr::Pwd);
        for second in [Amr::Otp, Amr::Hwk, Amr::Mfa] {
            assert_eq!(Acr::of(&Amr::names(&[Amr::Pwd, second])), Acr::Mfa, "{second:?}");
        }
    }
}
