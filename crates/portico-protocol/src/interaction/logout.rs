//! RP-Initiated Logout 1.0 as a step of the interaction: validate the request, find the browser's
//! session, and either end it at once (the request proves it came from an application of this very
//! session), ask the user first, or say there was nothing to end. Every way out clears the session
//! cookie and goes to the client's registered `post_logout_redirect_uri`, when it named one.

use super::{Cookie, Cx, Failed, Interaction, Refusal};
use crate::logout::{self, LogoutRequest, ValidLogout};

/// What the logout step shows.
#[derive(Debug)]
pub enum LogoutView {
    /// Ask before signing out: whose session it is, and the request to carry through the form.
    Confirm { email: String, logout: ValidLogout },
    /// Signed out, or nothing to sign out here: go to `logout.redirect`, or say so.
    Done { logout: ValidLogout },
}

/// One logout request; `confirmed` when it is the confirmation form, CSRF-checked by the caller.
pub async fn confirm_logout(cx: &Cx<'_>, req: &LogoutRequest, confirmed: bool) -> Interaction<LogoutView> {
    let v = match logout::validate(cx.p, req, cx.now) {
        Ok(v) => v,
        Err(message) => return Interaction::refuse(Refusal::BadLogout(message)),
    };
    let session = match cx.browser.session.as_deref() {
        Some(cookie) => match crate::login::session_from_cookie(cx.p, cookie, cx.now).await {
            Ok(s) => s,
            Err(e) => return super::failed(Failed::SignOut, e),
        },
        None => None,
    };
    // Nothing to end here (already signed out, or another browser): say so, or go back.
    let Some(session) = session else { return done(v) };
    if !confirmed {
        match logout::needs_confirmation(cx.p, &v, &session).await {
            Ok(false) => {}
            Ok(true) => {
                return match crate::login::user_of(cx.p, &session).await {
                    Ok(user) => Interaction::show(LogoutView::Confirm {
                        email: user.map(|u| u.email).unwrap_or_default(),
                        logout: v,
                    }),
                    Err(e) => super::failed(Failed::SignOut, e),
                };
            }
            Err(e) => return super::failed(Failed::SignOut, e),
        }
    }
    let via = if confirmed { "confirmed_logout" } else { "rp_logout" };
    let user = &session.user_id;
    if let Err(e) = logout::end_session(cx.p, &session.id, user, user.as_str(), via, cx.browser.from.ip.clone(), cx.now).await {
        return super::failed(Failed::SignOut, e);
    }
    done(v)
}

fn done(logout: ValidLogout) -> Interaction<LogoutView> {
    Interaction::show(LogoutView::Done { logout }).with(Cookie::ClearSession)
}
