//! Fetching a JSON document (an issuer's discovery, a JWK Set) over HTTPS (loopback HTTP for
//! development): short timeouts, no redirects, a size limit, and what `Cache-Control` allows.

pub use reqwest::Client;
use serde_json::Value;
use std::time::Duration;

/// The largest discovery document or JWK Set read.
pub const MAX_DOCUMENT: usize = 256 * 1024;

/// Why keys (or discovery) could not be fetched.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// The request failed (connection, timeout, TLS).
    #[error("request to {url} failed: {reason}")]
    Unreachable {
        /// The URL asked.
        url: String,
        /// What failed.
        reason: String,
    },
    /// The answer was not a 200.
    #[error("{url} answered HTTP {status}")]
    Status {
        /// The URL asked.
        url: String,
        /// The status answered.
        status: u16,
    },
    /// The answer was larger than [`MAX_DOCUMENT`].
    #[error("{url} answered more than {MAX_DOCUMENT} bytes")]
    TooLarge {
        /// The URL asked.
        url: String,
    },
    /// The answer was not the JSON object expected.
    #[error("{url} did not answer a JSON object: {reason}")]
    Invalid {
        /// The URL asked.
        url: String,
        /// What was wrong with the answer.
        reason: String,
    },
}

/// The HTTP client for keys and discovery: short timeouts, no redirects (an issuer's endpoints
/// answer directly), rustls.
pub fn client() -> reqwest::Client {
    // reqwest is built without a default crypto provider; install aws-lc-rs unless the
    // application already installed one.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(3))
        .timeout(Duration::from_secs(5))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("an HTTP client with rustls")
}

/// GETs `url` and reads at most [`MAX_DOCUMENT`] bytes of JSON object.
pub async fn get_json(client: &reqwest::Client, url: &str) -> Result<(Value, Option<u64>), SourceError> {
    let unreachable = |e: reqwest::Error| SourceError::Unreachable {
        url: url.to_owned(),
        reason: e.without_url().to_string(),
    };
    let mut response = client.get(url).header("accept", "application/json").send().await.map_err(unreachable)?;
    if response.status() != reqwest::StatusCode::OK {
        return Err(SourceError::Status {
            url: url.to_owned(),
            status: response.status().as_u16(),
        });
    }
    let max_age = response.headers().get("cache-control").and_then(|v| v.to_str().ok()).and_then(max_age);
    let body = read_capped(&mut response, url).await?;
    let invalid = |reason: String| SourceError::Invalid { url: url.to_owned(), reason };
    let value: Value = serde_json::from_slice(&body).map_err(|e| invalid(e.to_string()))?;
    if !value.is_object() {
        return Err(invalid("not an object".into()));
    }
    Ok((value, max_age))
}

/// Reads at most [`MAX_DOCUMENT`] bytes of `response`'s body.
pub async fn read_capped(response: &mut reqwest::Response, url: &str) -> Result<Vec<u8>, SourceError> {
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|e| SourceError::Unreachable {
        url: url.to_owned(),
        reason: e.without_url().to_string(),
    })? {
        if body.len() + chunk.len() > MAX_DOCUMENT {
            return Err(SourceError::TooLarge { url: url.to_owned() });
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// `max-age` of a `Cache-Control` header (RFC 9111 §5.2.2.1); `no-store`/`no-cache` read as 0.
pub fn max_age(header: &str) -> Option<u64> {
    let mut age = None;
    for directive in header.split(',').map(str::trim) {
        let lower = directive.to_ascii_lowercase();
        if lower == "no-store" || lower == "no-cache" {
            return Some(0);
        }
        if let Some(v) = lower.strip_prefix("max-age=") {
            age = v.trim_matches('"').parse().ok();
        }
    }
    age
}

#[cfg(test)]
mod tests {
    use super::max_age;

    #[test]
    fn max_age_reads_the_directive() {
        assert_eq!(max_age("public, max-age=300"), Some(300));
        assert_eq!(max_age("max-age=\"60\""), Some(60));
        assert_eq!(max_age("no-store"), Some(0));
        assert_eq!(max_age("public"), None);
        assert_eq!(max_age("max-age=abc"), None);
    }
}
