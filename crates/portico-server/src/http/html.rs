//! Hosted pages: rendering templates (askama escapes every value), the layout for the few
//! bodies made of fixed text, and the headers every page carries.

use axum::http::{HeaderValue, header};
use axum::response::{Html, IntoResponse, Response};

pub const CSS: &str = r#"
*{box-sizing:border-box}body{font:16px/1.5 system-ui,sans-serif;margin:0;background:#f4f5f7;color:#1d2330}
main{max-width:26rem;margin:4rem auto;background:#fff;padding:2rem;border-radius:12px;box-shadow:0 2px 12px #0001}
main.wide{max-width:60rem}h1{font-size:1.4rem;margin:0 0 1rem}label{display:block;margin:.8rem 0 .2rem;font-weight:600}
input[type=email],input[type=password],input[type=text]{width:100%;padding:.6rem;border:1px solid #c5cad3;border-radius:8px;font-size:1rem}
button{margin-top:1.2rem;width:100%;padding:.7rem;border:0;border-radius:8px;background:#2d5bd7;color:#fff;font-size:1rem;cursor:pointer}
button.secondary{background:#e7e9ee;color:#1d2330}.error{background:#fde8e8;color:#8a1c1c;padding:.6rem;border-radius:8px}
.muted{color:#5b6475;font-size:.9rem}pre{white-space:pre-wrap;word-break:break-all;background:#f4f5f7;padding:.8rem;border-radius:8px;font-size:.8rem}
table{border-collapse:collapse;width:100%}td,th{text-align:left;padding:.3rem .5rem;border-bottom:1px solid #eee;vertical-align:top}
a.button{display:inline-block;padding:.5rem .9rem;background:#2d5bd7;color:#fff;border-radius:8px;text-decoration:none;margin:.2rem 0}
ul.choices{list-style:none;margin:0;padding:0}ul.choices button{margin-top:.6rem;background:#fff;color:#1d2330;border:1px solid #c5cad3;text-align:left}
ul.choices button:hover,ul.choices button:focus{border-color:#2d5bd7;outline:2px solid #2d5bd7}ul.choices .muted{float:right}
button.small{width:auto;margin:0;padding:.3rem .7rem;font-size:.9rem;white-space:nowrap}h2{font-size:1.1rem;margin:1.5rem 0 .5rem}
input.short{max-width:12rem;display:block}ul.codes{columns:2;font-size:1.1rem;padding-left:1.2rem}input.short+button.small{margin-top:.5rem}
.strength{margin-top:.4rem}.strength meter{width:100%;height:.6rem}.notice{background:#e7f6ec;color:#1d5c33;padding:.6rem;border-radius:8px}
.links{display:flex;justify-content:space-between;gap:1rem;margin-top:1rem}
.badge{background:#e6f0ff;color:#2d5bd7;padding:.1rem .4rem;border-radius:6px;font-size:.8rem;white-space:nowrap}
"#;

/// A piece of HTML a template made (every value in it escaped there): what templates embed
/// unescaped (`|safe`), with the web message page's script-escaped JSON (`oauth::ScriptJson`) the
/// one other. Nothing else can make one, so no page can embed a string that skipped a template.
#[derive(Default)]
pub struct Fragment(String);

impl Fragment {
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl std::fmt::Display for Fragment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// A template's HTML, to embed in another page.
pub fn fragment(t: &impl askama::Template) -> Fragment {
    Fragment(render(t))
}

/// A full page around a body made by a template. `wide` for the developer pages.
pub fn page(title: &str, body: &Fragment, wide: bool) -> String {
    render(&Page { title, body, wide })
}

#[derive(askama::Template)]
#[template(path = "page.html")]
struct Page<'a> {
    title: &'a str,
    body: &'a Fragment,
    wide: bool,
}

/// A template's HTML. Rendering fails only on a template error (a value's `Display` failing),
/// which the templates' own test would show.
pub fn render(t: &impl askama::Template) -> String {
    t.render().unwrap_or_else(|e| {
        tracing::error!(error = %e, "a page did not render");
        String::from("<!doctype html><title>Error · Portico</title><p>This page could not be shown.</p>")
    })
}

/// Security headers for hosted pages: a strict CSP, no framing, no referrer, no caching.
pub fn secure(resp: Response, script_nonce: Option<&str>) -> Response {
    secure_framed_by(resp, script_nonce, None)
}

/// As [`secure`], but the page may be framed by `ancestor` (one exact origin) when given: only the
/// `web_message` authorization response, for its client's registered origin.
pub fn secure_framed_by(resp: Response, script_nonce: Option<&str>, ancestor: Option<&str>) -> Response {
    let script = script_nonce.map(|n| format!(" script-src 'nonce-{n}';")).unwrap_or_default();
    with_headers(resp, &script, ancestor)
}

/// The headers of every hosted page; `script` is the CSP's script (and connect) directives, if any.
fn with_headers(mut resp: Response, script: &str, ancestor: Option<&str>) -> Response {
    let frame = ancestor.unwrap_or("'none'");
    let csp = format!("default-src 'none'; style-src 'self'; img-src 'self' data:;{script} base-uri 'none'; form-action 'self'; frame-ancestors {frame}");
    let h = resp.headers_mut();
    h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_str(&csp).expect("ascii"));
    if ancestor.is_none() {
        h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    }
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

/// The CSP source that lets a form lead to `uri`: its origin (scheme, host, port); its scheme alone
/// for a private-use scheme (a native app's `com.example.app:/callback`) or an IPv6 literal host,
/// which CSP's host syntax cannot name. Never `javascript:`, `data:` and their kind; None for
/// anything that is not an absolute URL.
pub fn form_target(uri: &str) -> Option<String> {
    let url = url::Url::parse(uri).ok()?;
    match url.scheme() {
        "javascript" | "data" | "blob" | "filesystem" | "about" | "file" | "vbscript" => None,
        scheme @ ("http" | "https") if matches!(url.host(), Some(url::Host::Ipv6(_))) => Some(format!("{scheme}:")),
        "http" | "https" => {
            let origin = url.origin();
            origin.is_tuple().then(|| origin.ascii_serialization())
        }
        // RFC 3986 scheme characters only, so nothing can end the directive.
        scheme => Some(format!("{scheme}:")),
    }
}

/// Lets the page's forms lead to `uri` as well as to Portico. Chromium applies `form-action` to
/// the redirects that follow a form's POST too, so each page of a pending authorization request
/// names the client's redirect URI, and the sign-out confirmation its post-logout redirect URI;
/// every other page's forms reach Portico alone.
pub fn forms_may_reach(mut resp: Response, uri: Option<&str>) -> Response {
    let Some(source) = uri.and_then(form_target) else {
        return resp;
    };
    let h = resp.headers_mut();
    if let Some(csp) = h.get(header::CONTENT_SECURITY_POLICY).and_then(|v| v.to_str().ok()) {
        let csp = csp.replacen("form-action 'self'", &format!("form-action 'self' {source}"), 1);
        if let Ok(v) = HeaderValue::from_str(&csp) {
            h.insert(header::CONTENT_SECURITY_POLICY, v);
        }
    }
    resp
}

/// One of Portico's own scripts (`/static/…`), cacheable for an hour.
pub fn script(body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        body,
    )
        .into_response()
}

/// A page that runs Portico's own scripts (`/static/…`) and lets them call back to Portico: the
/// passkey pages. Everything else stays as strict as [`secure`].
pub fn scripted(resp: Response) -> Response {
    with_headers(resp, " script-src 'self'; connect-src 'self';", None)
}

pub fn html(status: axum::http::StatusCode, title: &str, body: &Fragment) -> Response {
    secure((status, Html(page(title, body, false))).into_response(), None)
}

/// A page from its template, with the hosted pages' headers.
pub fn view(status: axum::http::StatusCode, page: &impl askama::Template) -> Response {
    secure((status, Html(render(page))).into_response(), None)
}

/// The error page for requests that cannot be sent back to the client.
pub fn error_page(status: axum::http::StatusCode, message: &str) -> Response {
    view(
        status,
        &ErrorPage {
            title: "Something went wrong",
            wide: false,
            heading: "This sign-in request cannot be completed",
            message,
        },
    )
}

#[derive(askama::Template)]
#[template(path = "error.html")]
struct ErrorPage<'a> {
    title: &'a str,
    wide: bool,
    heading: &'a str,
    message: &'a str,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_form_may_reach_the_origin_of_a_redirect_uri_and_nothing_more() {
        assert_eq!(
            form_target("https://app.acme.test:8443/cb?x=1;y").as_deref(),
            Some("https://app.acme.test:8443")
        );
        assert_eq!(form_target("https://app.acme.test/a b").as_deref(), Some("https://app.acme.test"));
        assert_eq!(form_target("http://127.0.0.1:9/callback").as_deref(), Some("http://127.0.0.1:9"));
        assert_eq!(form_target("com.example.app:/oauth2redirect").as_deref(), Some("com.example.app:"));
        assert_eq!(form_target("myapp://callback").as_deref(), Some("myapp:"));
        assert_eq!(form_target("http://[::1]:8080/cb").as_deref(), Some("http:"));
        assert_eq!(form_target("/relative"), None);
        assert_eq!(form_target("javascript:alert(1)"), None);
        assert_eq!(form_target("data:text/html,x"), None);
        assert_eq!(form_target("not a url; script-src *"), None);
        let page = secure(axum::http::StatusCode::OK.into_response(), None);
        let csp = |r: &Response| r.headers()[header::CONTENT_SECURITY_POLICY].to_str().unwrap().to_owned();
        assert!(csp(&page).contains("form-action 'self';"));
        let page = forms_may_reach(page, Some("https://app.acme.test:8443/cb"));
        assert!(csp(&page).contains("form-action 'self' https://app.acme.test:8443;"), "{}", csp(&page));
        assert!(csp(&forms_may_reach(page, None)).contains("form-action 'self' https://app.acme.test:8443;"));
    }
}

/// A page that says something: a heading and paragraphs of text, emphasis and links, every part
/// escaped by its template (`message.html`). The pages that only tell the user what happened.
#[derive(askama::Template)]
#[template(path = "message.html")]
pub struct Message {
    title: String,
    wide: bool,
    heading: String,
    paras: Vec<Para>,
}

/// One paragraph of a [`Message`]: its class (`error`, `muted`, or none) and its parts.
pub struct Para {
    class: &'static str,
    alert: bool,
    parts: Vec<Part>,
}

/// A piece of a paragraph.
pub enum Part {
    Text(String),
    Strong(String),
    /// A link: its local href and its label.
    Link(String, String),
    /// A link shown as a button.
    Button(String, String),
}

impl Message {
    pub fn new(title: &str, heading: &str) -> Self {
        Self {
            title: title.to_owned(),
            wide: false,
            heading: heading.to_owned(),
            paras: Vec::new(),
        }
    }

    /// A plain paragraph.
    pub fn text(self, parts: Vec<Part>) -> Self {
        self.para("", false, parts)
    }

    /// A paragraph in muted type.
    pub fn muted(self, parts: Vec<Part>) -> Self {
        self.para("muted", false, parts)
    }

    /// What went wrong, announced to screen readers.
    pub fn alert(self, message: &str) -> Self {
        self.para("error", true, vec![Part::Text(message.to_owned())])
    }

    /// A paragraph holding one link.
    pub fn link(self, href: &str, label: &str) -> Self {
        self.text(vec![Part::Link(href.to_owned(), label.to_owned())])
    }

    /// A paragraph holding one link shown as a button.
    pub fn button(self, href: &str, label: &str) -> Self {
        self.text(vec![Part::Button(href.to_owned(), label.to_owned())])
    }

    fn para(mut self, class: &'static str, alert: bool, parts: Vec<Part>) -> Self {
        self.paras.push(Para { class, alert, parts });
        self
    }

    /// The page, with the hosted pages' headers.
    pub fn page(&self, status: axum::http::StatusCode) -> Response {
        view(status, self)
    }
}

/// Plain text, for a [`Part`].
pub fn t(s: impl Into<String>) -> Part {
    Part::Text(s.into())
}

/// Emphasised text, for a [`Part`].
pub fn strong(s: impl Into<String>) -> Part {
    Part::Strong(s.into())
}

/// A link, for a [`Part`].
pub fn a(href: impl Into<String>, label: impl Into<String>) -> Part {
    Part::Link(href.into(), label.into())
}
