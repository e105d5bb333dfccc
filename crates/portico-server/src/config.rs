//! Configuration: `portico.toml`, overridden by `PORTICO_*` environment variables, overridden by
//! flags (DESIGN.md, "Running it").

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub listen: String,
    pub issuer: String,
    pub data_dir: PathBuf,
    pub database_url: Option<String>,
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    pub log_format: LogFormat,
    /// Base64 of 32 bytes; when absent, `data_dir/kek` is used (and created, mode 0600).
    pub key_encryption_key: Option<String>,
    /// How often the tenant handles Portico puts in URLs and pages rotate ("30m"); a handle still
    /// resolves for one more period.
    pub tenant_handle_rotation: String,
    /// How long a back-channel logout notice to a product that does not answer is retried ("24h").
    pub backchannel_logout_window: String,
    /// How long an SSO session lives without use ("8h"); each use extends it.
    pub session_idle: String,
    /// How long an SSO session lives at most after sign-in ("7d").
    pub session_absolute: String,
    /// Failed sign-ins per account (the email as typed) before each next attempt waits 1, 2, 4 … 60 s.
    pub login_account_delay_after: i64,
    /// Failed sign-ins per account that lock it for `login_lock`.
    pub login_account_lock_after: i64,
    /// The same two limits per client IP.
    pub login_ip_delay_after: i64,
    pub login_ip_lock_after: i64,
    /// How long a lock lasts, and how long failures are remembered ("15m").
    pub login_lock: String,
    /// Token endpoint requests per second allowed to one client (0: no limit); bursts of up to
    /// twice as many pass.
    pub token_requests_per_client: u32,
    /// The shortest new password accepted, in characters (8–64; NIST SP 800-63B-4 asks 15 of a
    /// password that is the only factor).
    pub password_min_length: usize,
    /// A file of further passwords to refuse, one a line (compared case-insensitively), beside
    /// the list Portico ships.
    pub password_blocklist: Option<PathBuf>,
    /// Where mail goes out: `smtps://host:465` (TLS), `smtp://host:587?tls=required` (STARTTLS),
    /// `smtp://host:port` (plain: a relay on loopback only); credentials as `user:password@host`.
    /// Without it there is no sign-up, password reset or email verification.
    pub smtp_url: Option<String>,
    /// The sender of Portico's mail (default `Portico <no-reply@` the issuer's host `>`).
    pub mail_from: Option<String>,
    /// Requests that send mail (reset, sign-up, verification) allowed per client IP per minute
    /// (0: no limit).
    pub mail_requests_per_minute: u32,
    /// Writes that need no authentication (authorization requests kept while the user signs in,
    /// passkey sign-in ceremonies) allowed per client IP per minute (0: no limit).
    pub pending_requests_per_minute: u32,
    /// Reverse proxies (CIDRs or addresses) whose `Forwarded` / `X-Forwarded-For` are believed;
    /// none by default, so the socket's peer is the client.
    pub trusted_proxies: Vec<String>,
    /// The header the trusted proxies write: `x-forwarded-for` (default) or `forwarded`.
    pub forwarded_header: String,
    /// How long a request's headers, and then its body, may take to arrive ("10s").
    pub read_timeout: String,
    /// Connections open at once; more wait to be accepted.
    pub max_connections: usize,
    /// Connections one client address (an IPv6 /64) may hold at once; more are closed unserved.
    /// Trusted proxies are not limited.
    pub max_connections_per_address: usize,
    /// How long a password reset link works ("30m").
    pub reset_link_lifetime: String,
    /// How long a sign-up or email verification link works ("24h").
    pub verify_link_lifetime: String,
    /// RFC 9449 §8: DPoP proofs must carry a nonce Portico gave (`DPoP-Nonce`).
    pub dpop_require_nonce: bool,
}

#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:8080".into(),
            issuer: "http://127.0.0.1:8080".into(),
            data_dir: PathBuf::from("./portico-data"),
            database_url: None,
            tls_cert: None,
            tls_key: None,
            log_format: LogFormat::Text,
            key_encryption_key: None,
            tenant_handle_rotation: "30m".into(),
            backchannel_logout_window: "24h".into(),
            session_idle: "8h".into(),
            session_absolute: "7d".into(),
            login_account_delay_after: 5,
            login_account_lock_after: 10,
            login_ip_delay_after: 20,
            login_ip_lock_after: 100,
            login_lock: "15m".into(),
            token_requests_per_client: 1000,
            password_min_length: portico_protocol::password_policy::DEFAULT_MIN_LENGTH,
            password_blocklist: None,
            smtp_url: None,
            mail_from: None,
            mail_requests_per_minute: 10,
            pending_requests_per_minute: 300,
            trusted_proxies: Vec::new(),
            forwarded_header: "x-forwarded-for".into(),
            read_timeout: "10s".into(),
            max_connections: 4096,
            max_connections_per_address: 256,
            reset_link_lifetime: "30m".into(),
            verify_link_lifetime: "24h".into(),
            dpop_require_nonce: false,
        }
    }
}

/// Flags that override the file and environment.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Overrides {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub listen: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub issuer: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_dir: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub database_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log_format: Option<LogFormat>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_cert: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_key: Option<PathBuf>,
}

impl Config {
    /// Whether the store is PostgreSQL (shared by nodes) rather than a SQLite file.
    pub fn is_postgres(&self) -> bool {
        self.database_url
            .as_deref()
            .is_some_and(|u| u.starts_with("postgres://") || u.starts_with("postgresql://"))
    }

    /// `read_timeout` in seconds, when it is a duration between 1 s and 5 min.
    pub fn read_timeout_secs(&self) -> Option<u64> {
        crate::suite::parse_duration(&self.read_timeout)
            .filter(|s| (1..=300).contains(s))
            .map(|s| s as u64)
    }

    /// Reads `file` (default `portico.toml` if it exists), then `PORTICO_*`, then `flags`.
    pub fn load(file: Option<&Path>, flags: &Overrides) -> anyhow::Result<Self> {
        let mut fig = Figment::from(Serialized::defaults(Config::default()));
        match file {
            Some(f) => {
                anyhow::ensure!(f.exists(), "configuration file {} does not exist", f.display());
                fig = fig.merge(Toml::file(f));
            }
            None => fig = fig.merge(Toml::file("portico.toml")),
        }
        let cfg: Config = fig
            // `PORTICO_LOG` is the log filter, read by the log subscriber before the configuration.
            .merge(Env::prefixed("PORTICO_").ignore(&["test_database_url", "log"]))
            .merge(Serialized::defaults(flags))
            .extract()
            .map_err(|e| anyhow::anyhow!("configuration: {e}"))?;
        cfg.validate()?;
        Ok(cfg)
    }

    pub fn validate(&self) -> anyhow::Result<()> {
        self.validate_serving()?;
        self.validate_lifetimes()?;
        self.validate_sign_in()?;
        self.validate_mail()
    }

    /// The issuer, TLS, proxies and connections.
    fn validate_serving(&self) -> anyhow::Result<()> {
        let url = url::Url::parse(&self.issuer).map_err(|e| anyhow::anyhow!("issuer {:?} is not a URL: {e}", self.issuer))?;
        let loopback = matches!(url.host_str(), Some("127.0.0.1") | Some("localhost") | Some("[::1]"));
        anyhow::ensure!(
            url.scheme() == "https" || (url.scheme() == "http" && loopback),
            "issuer must be https (http is allowed only on loopback): {}",
            self.issuer
        );
        anyhow::ensure!(url.query().is_none() && url.fragment().is_none(), "issuer must not have a query or fragment");
        anyhow::ensure!(!self.issuer.ends_with('/'), "issuer must not end with '/': {}", self.issuer);
        anyhow::ensure!(self.tls_cert.is_none() == self.tls_key.is_none(), "tls_cert and tls_key go together");
        anyhow::ensure!(
            self.tls_cert.is_none() || url.scheme() == "https",
            "tls_cert is set, so Portico serves https: the issuer must be https too (got {})",
            self.issuer
        );
        crate::http::proxy::TrustedProxies::parse(&self.trusted_proxies, &self.forwarded_header).map_err(|e| anyhow::anyhow!(e))?;
        anyhow::ensure!(
            self.read_timeout_secs().is_some(),
            "read_timeout: {:?} is not a duration between 1s and 5m (like \"10s\")",
            self.read_timeout
        );
        anyhow::ensure!((1..=1_000_000).contains(&self.max_connections), "max_connections must be between 1 and 1000000");
        anyhow::ensure!(self.max_connections_per_address >= 1, "max_connections_per_address must be at least 1");
        Ok(())
    }

    /// Tenant handles, back-channel logout, sessions and mailed links.
    fn validate_lifetimes(&self) -> anyhow::Result<()> {
        anyhow::ensure!(
            self.tenant_handle_period().is_some(),
            "tenant_handle_rotation: {:?} is not a duration between 1m and 1d (like \"30m\")",
            self.tenant_handle_rotation
        );
        anyhow::ensure!(
            self.logout_window().is_some(),
            "backchannel_logout_window: {:?} is not a duration between 1s and 30d (like \"24h\")",
            self.backchannel_logout_window
        );
        let (idle, absolute) = self.session_lifetimes();
        anyhow::ensure!(
            idle.is_some() && absolute.is_some(),
            "session_idle {:?} / session_absolute {:?}: durations between 1m and 90d (like \"8h\", \"7d\")",
            self.session_idle,
            self.session_absolute
        );
        anyhow::ensure!(
            idle <= absolute,
            "session_idle ({}) must not be longer than session_absolute ({})",
            self.session_idle,
            self.session_absolute
        );
        let (reset, verify) = self.link_lifetimes();
        anyhow::ensure!(
            reset.is_some(),
            "reset_link_lifetime: {:?} is not a duration between 1m and 1d (like \"30m\")",
            self.reset_link_lifetime
        );
        anyhow::ensure!(
            verify.is_some(),
            "verify_link_lifetime: {:?} is not a duration between 1m and 7d (like \"24h\")",
            self.verify_link_lifetime
        );
        Ok(())
    }

    /// The sign-in throttle and the password policy.
    fn validate_sign_in(&self) -> anyhow::Result<()> {
        anyhow::ensure!(
            self.login_lock().is_some(),
            "login_lock: {:?} is not a duration between 1s and 1d (like \"15m\")",
            self.login_lock
        );
        for (name, delay, lock) in [
            ("login_account", self.login_account_delay_after, self.login_account_lock_after),
            ("login_ip", self.login_ip_delay_after, self.login_ip_lock_after),
        ] {
            anyhow::ensure!(
                delay >= 1 && lock > delay,
                "{name}_delay_after ({delay}) must be at least 1 and below {name}_lock_after ({lock})"
            );
        }
        anyhow::ensure!(
            (8..=64).contains(&self.password_min_length),
            "password_min_length ({}) must be between 8 and 64",
            self.password_min_length
        );
        if let Some(path) = &self.password_blocklist {
            // Read (once) when the settings are made; here only whether it can be.
            std::fs::File::open(path).map_err(|e| anyhow::anyhow!("password_blocklist {}: {e}", path.display()))?;
        }
        Ok(())
    }

    fn validate_mail(&self) -> anyhow::Result<()> {
        if let Some(smtp) = &self.smtp_url {
            crate::mail::Mailer::check_url(smtp)?;
        }
        self.mail_from()
            .parse::<lettre::message::Mailbox>()
            .map_err(|e| anyhow::anyhow!("mail_from {:?} is not a mailbox: {e}", self.mail_from()))?;
        Ok(())
    }

    /// `tenant_handle_rotation` in seconds.
    pub fn tenant_handle_period(&self) -> Option<i64> {
        crate::suite::parse_duration(&self.tenant_handle_rotation).filter(|s| (60..=86_400).contains(s))
    }

    /// `session_idle` and `session_absolute` in seconds.
    pub fn session_lifetimes(&self) -> (Option<i64>, Option<i64>) {
        let d = |s: &str| crate::suite::parse_duration(s).filter(|v| (60..=90 * 86_400).contains(v));
        (d(&self.session_idle), d(&self.session_absolute))
    }

    /// `backchannel_logout_window` in seconds.
    pub fn logout_window(&self) -> Option<i64> {
        crate::suite::parse_duration(&self.backchannel_logout_window).filter(|s| (1..=30 * 86_400).contains(s))
    }

    /// `reset_link_lifetime` (1m–1d) and `verify_link_lifetime` (1m–7d) in seconds.
    pub fn link_lifetimes(&self) -> (Option<i64>, Option<i64>) {
        let d = |v: &str, max: i64| crate::suite::parse_duration(v).filter(|s| (60..=max).contains(s));
        (d(&self.reset_link_lifetime, 86_400), d(&self.verify_link_lifetime, 7 * 86_400))
    }

    /// The password policy: `password_min_length` and the `password_blocklist` file.
    pub fn password_policy(&self) -> anyhow::Result<portico_protocol::password_policy::PasswordPolicy> {
        let blocklist = match &self.password_blocklist {
            Some(path) => std::fs::read_to_string(path)
                .map(|t| portico_protocol::password_policy::parse_blocklist(&t))
                .map_err(|e| anyhow::anyhow!("password_blocklist {}: {e}", path.display()))?,
            None => Default::default(),
        };
        Ok(portico_protocol::password_policy::PasswordPolicy {
            min_length: self.password_min_length,
            blocklist: std::sync::Arc::new(blocklist),
        })
    }

    /// The sender of Portico's mail.
    pub fn mail_from(&self) -> String {
        self.mail_from.clone().unwrap_or_else(|| {
            let host = url::Url::parse(&self.issuer).ok().and_then(|u| u.host_str().map(str::to_owned));
            format!("Portico <no-reply@{}>", host.unwrap_or_else(|| "localhost".into()))
        })
    }

    /// `login_lock` in seconds.
    pub fn login_lock(&self) -> Option<i64> {
        crate::suite::parse_duration(&self.login_lock).filter(|s| (1..=86_400).contains(s))
    }

    /// The protocol's settings this configuration tunes.
    pub fn settings(&self) -> anyhow::Result<portico_protocol::Settings> {
        Ok(portico_protocol::Settings {
            tenant_handle_period: self.tenant_handle_period().unwrap_or(1800),
            logout_window: self.logout_window().unwrap_or(86_400),
            session_idle: self.session_lifetimes().0.unwrap_or(8 * 3600),
            session_absolute: self.session_lifetimes().1.unwrap_or(7 * 86_400),
            throttle: portico_protocol::throttle::Limits {
                account_delay_after: self.login_account_delay_after,
                account_lock_after: self.login_account_lock_after,
                ip_delay_after: self.login_ip_delay_after,
                ip_lock_after: self.login_ip_lock_after,
                lock: self.login_lock().unwrap_or(900),
            },
            password: self.password_policy()?,
            reset_link_ttl: self.link_lifetimes().0.unwrap_or(1800),
            verify_link_ttl: self.link_lifetimes().1.unwrap_or(86_400),
            dpop_nonces: self.dpop_require_nonce,
            ..Default::default()
        })
    }

    pub fn https(&self) -> bool {
        self.issuer.starts_with("https://")
    }
}
