//! Portico's server: HTTP (axum), hosted pages, configuration, the suite file and the CLI.

pub mod app;
pub mod backchannel;
pub mod cli;
pub mod config;
pub mod http;
pub mod mail;
pub mod mailsink;
pub mod serve;
pub mod suite;

use app::AppState;
use config::Config;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use portico_protocol::Provider;
use portico_protocol::kek::Kek;
use portico_protocol::writer::Writer;
use portico_store::{Keying, Store};
use std::sync::{Arc, OnceLock};
use tokio::net::TcpListener;

/// The process-wide Prometheus recorder (installed once).
pub fn metrics_handle() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            // Latencies as histograms with fixed buckets (aggregable across nodes).
            let recorder = PrometheusBuilder::new()
                .set_buckets(&[0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5])
                .expect("buckets")
                // Requests per group commit (runtime/writer.rs), up to its batch limit.
                .set_buckets_for_metric(
                    Matcher::Full("portico_group_commit_size".into()),
                    &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0],
                )
                .expect("buckets")
                .build_recorder();
            let handle = recorder.handle();
            let _ = metrics::set_global_recorder(recorder);
            handle
        })
        .clone()
}

/// The key-encryption key from configuration, or `data_dir/kek`.
pub fn load_kek(cfg: &Config, new: NewKey) -> anyhow::Result<Kek> {
    if let Some(k) = &cfg.key_encryption_key {
        return Ok(Kek::from_base64(k)?);
    }
    let file = cfg.data_dir.join("kek");
    // On SQLite the key lives beside the store it seals: whichever process opens the store first
    // makes both. On PostgreSQL the store is shared and a key made here would be this machine's
    // alone: only a server makes one (the store's key check then refuses any other).
    let must_exist = match new {
        NewKey::Allowed => false,
        NewKey::Refused => cfg.is_postgres(),
        NewKey::Never => true,
    };
    if must_exist && !file.exists() {
        let on = if cfg.is_postgres() { "the store is on PostgreSQL and " } else { "" };
        anyhow::bail!(
            "no key-encryption key: {on}{} does not exist; set key_encryption_key (or PORTICO_KEY_ENCRYPTION_KEY) to the deployment's key",
            file.display()
        );
    }
    Ok(Kek::load_or_create(&cfg.data_dir)?)
}

/// Whether a process may make the key-encryption key when none is configured or on disk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NewKey {
    /// `portico serve` and `dev`: the first server of a deployment makes it.
    Allowed,
    /// Every other command: on PostgreSQL it must use the deployment's key.
    Refused,
    /// A command that only reads (`audit verify`): it makes no key anywhere, and records nothing.
    Never,
}

/// Creates `dir` (and its parents) readable by its owner only.
pub fn private_dir(dir: &std::path::Path) -> std::io::Result<()> {
    let mut b = std::fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut b, 0o700);
    b.create(dir)
}

/// Creates `file` empty, readable and writable by its owner only, unless it exists.
fn private_file(file: &std::path::Path) -> std::io::Result<()> {
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(false);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    opts.open(file).map(drop)
}

/// Warns when a file that holds secrets (the key-encryption key, the SQLite store) can be read
/// by other users of the machine.
fn warn_if_readable_by_others(file: &std::path::Path) {
    #[cfg(unix)]
    if let Ok(meta) = std::fs::metadata(file) {
        use std::os::unix::fs::PermissionsExt;
        if meta.permissions().mode() & 0o077 != 0 {
            tracing::warn!(
                file = %file.display(),
                mode = format!("{:o}", meta.permissions().mode() & 0o777),
                "readable by other users of this machine: chmod 600 it (and 700 its directory)"
            );
        }
    }
}

/// Opens and migrates the configured store and gives it the deployment's keys (a key-encryption
/// key other than the one the store was set up under is refused here). The SQLite file is made
/// 0600 in a 0700 directory (SQLite gives its `-wal` and `-shm` files the same mode).
pub async fn open_store(cfg: &Config, new: NewKey) -> anyhow::Result<(Store, Kek)> {
    let store = open_migrated(cfg).await?;
    // Every process that writes or verifies the audit chain holds its key.
    let kek = load_kek(cfg, new)?;
    // A store used before its key was checked (an upgrade): the key must open what the store
    // holds before it is recorded as the deployment's, or a process with a wrong key (a laptop's)
    // would claim the store and every right node would be refused.
    if !store.has_kek_check().await?
        && let Some(row) = store.list_keys().await?.first()
        && kek.open_signing_key(&row.kid, &row.private_enc).is_err()
    {
        anyhow::bail!("{}", portico_store::StoreError::WrongKey);
    }
    let keying = if new == NewKey::Never { Keying::ReadOnly } else { Keying::Record };
    store
        .use_keys(
            kek.check_value(),
            kek.audit_chain_key(),
            keying,
            portico_protocol::clock::Clock::default().now(),
        )
        .await?;
    Ok((store, kek))
}

/// Opens and migrates the configured store, without keys (`portico migrate`).
pub async fn open_migrated(cfg: &Config) -> anyhow::Result<Store> {
    if cfg.database_url.is_none() {
        private_dir(&cfg.data_dir)?;
        private_file(&cfg.data_dir.join("portico.db"))?;
    }
    let store = Store::open(cfg.database_url.as_deref(), &cfg.data_dir).await?;
    store.migrate().await?;
    Ok(store)
}

/// A running server.
pub struct Running {
    pub addr: std::net::SocketAddr,
    pub provider: Arc<Provider>,
    /// The routes with every layer, as served: for in-process requests (tests' `oneshot`).
    pub router: Served,
    shutdown: tokio::sync::watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
    logout_worker: tokio::task::JoinHandle<()>,
}

impl Running {
    /// Stops accepting, lets in-flight requests finish, flushes the audit log.
    pub async fn stop(self) {
        let _ = self.shutdown.send(true);
        let _ = self.task.await;
        let _ = self.logout_worker.await;
        self.provider.writer.flush().await;
    }
}

/// Seconds between sweeps of expired rows.
const SWEEP_EVERY: u64 = 60;
/// User codes one address may try at `/device` per minute (RFC 8628 §5.1): a live code is one of
/// 20^8, so guessing one takes far longer than codes live.
pub const DEVICE_CODES_PER_MINUTE: u32 = 10;

/// How long in-flight requests may take to finish after a stop.
const GRACE: std::time::Duration = std::time::Duration::from_secs(30);

/// rustls on aws-lc-rs (the crypto Portico already signs with), from PEM files.
async fn tls_config(cert: &std::path::Path, key: &std::path::Path) -> anyhow::Result<axum_server::tls_rustls::RustlsConfig> {
    axum_server::tls_rustls::RustlsConfig::from_pem_file(cert, key)
        .await
        .map_err(|e| anyhow::anyhow!("tls_cert {} / tls_key {}: {e}", cert.display(), key.display()))
}

/// Starts serving on `listener` with `store`; returns once it accepts connections.
pub async fn start(cfg: &Config, store: Store, kek: Kek, listener: TcpListener, demo: Option<Arc<http::demo::Demo>>) -> anyhow::Result<Running> {
    // Several crates may enable rustls providers; Portico names its own (for serving TLS and for
    // back-channel logout requests) once per process.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    warn_about_permissions(cfg);
    anyhow::ensure!(store.is_keyed(), "the store was opened without its keys: open it with open_store");
    // The recorder first: the writer and the request layer take their metric handles from it.
    metrics_handle();
    let writer = Writer::spawn(store.clone());
    let provider = Arc::new(
        Provider::start(
            store,
            cfg.issuer.clone(),
            cfg.settings()?,
            kek,
            writer,
            portico_protocol::clock::Clock::default().now(),
        )
        .await?,
    );
    if cfg.smtp_url.is_none() && provider.config().products().any(|p| p.mfa_enrolment == portico_model::MfaEnrolment::EmailLink) {
        tracing::error!("a product says mfa_enrolment = \"email_link\" and smtp_url is not set: its users cannot set up a first factor");
    }
    let state = app_state(cfg, provider.clone(), demo)?;
    let read_timeout = std::time::Duration::from_secs(cfg.read_timeout_secs().unwrap_or(10));
    let limits = serve::ConnectionLimits {
        header_read_timeout: read_timeout,
        max_connections: cfg.max_connections,
        max_connections_per_address: cfg.max_connections_per_address,
    };
    let trusted = state.trusted_proxies.clone();
    let (tx, rx) = tokio::sync::watch::channel(false);
    spawn_upkeep(&state, rx.clone());
    let router = router(state, cfg.tls_cert.is_some(), read_timeout);
    let addr = listener.local_addr()?;
    let logout_worker = backchannel::spawn(provider.clone(), rx.clone());
    // Portico's own accept loop for plain HTTP and TLS alike: the same connection limits on both.
    let acceptor = match (&cfg.tls_cert, &cfg.tls_key) {
        (Some(cert), Some(key)) => Some(axum_server::tls_rustls::RustlsAcceptor::new(tls_config(cert, key).await?).handshake_timeout(read_timeout)),
        _ => None,
    };
    let task = tokio::spawn(serve::serve(listener, router.clone(), limits, acceptor, trusted, rx, GRACE));
    Ok(Running {
        addr,
        provider,
        router,
        shutdown: tx,
        task,
        logout_worker,
    })
}

/// Warns when the key file or the SQLite store can be read by other users of the machine.
fn warn_about_permissions(cfg: &Config) {
    if cfg.key_encryption_key.is_none() {
        warn_if_readable_by_others(&cfg.data_dir.join("kek"));
    }
    if cfg.database_url.is_none() {
        warn_if_readable_by_others(&cfg.data_dir.join("portico.db"));
    }
}

/// What every handler shares: the provider, the mailer, the limits, the trusted proxies.
fn app_state(cfg: &Config, provider: Arc<Provider>, demo: Option<Arc<http::demo::Demo>>) -> anyhow::Result<AppState> {
    let mailer = match &cfg.smtp_url {
        Some(url) => Some(mail::Mailer::spawn(provider.clone(), url, &cfg.mail_from())?),
        None => None,
    };
    let per_minute = |n| Arc::new(http::limits::AddressLimits::per_minute(n));
    let trusted = http::proxy::TrustedProxies::parse(&cfg.trusted_proxies, &cfg.forwarded_header).map_err(|e| anyhow::anyhow!(e))?;
    Ok(AppState::new(app::AppInner {
        provider,
        metrics: metrics_handle(),
        secure_cookies: cfg.https(),
        demo,
        client_limits: Arc::new(http::limits::ClientLimits::new(cfg.token_requests_per_client)),
        mailer,
        mail_limits: per_minute(cfg.mail_requests_per_minute),
        strength_limits: per_minute(http::password::STRENGTH_PER_MINUTE),
        pending_limits: per_minute(cfg.pending_requests_per_minute),
        ceremony_limits: per_minute(cfg.pending_requests_per_minute),
        device_limits: per_minute(DEVICE_CODES_PER_MINUTE),
        trusted_proxies: Arc::new(trusted),
    }))
}

/// The router as served: one box around the routes and the layers every request passes, in
/// order from the outside: HSTS when Portico serves TLS itself, the client's address behind
/// trusted proxies, the body timeout and limit, the request id, the request's log span.
pub type Served = tower::util::BoxCloneSyncService<axum::extract::Request, axum::response::Response, std::convert::Infallible>;

/// The routes with the layers every request passes (see [`Served`]). They wrap the router once,
/// as one concrete stack boxed once: layers given to `Router::layer` are applied to every route,
/// each boxed in turn, and each request cloned and boxed them all again (a JWKS answer spent a
/// tenth of its instructions there).
fn router(state: AppState, tls: bool, read_timeout: std::time::Duration) -> Served {
    use tower::ServiceBuilder;
    use tower::util::option_layer;
    use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
    let x_request_id = axum::http::HeaderName::from_static("x-request-id");
    // Behind trusted proxies, the client's address replaces the peer's before any handler runs
    // (only then: without proxies the layer would cost every request for nothing).
    let trusted = state.trusted_proxies.clone();
    let proxies = trusted
        .is_configured()
        .then(|| axum::middleware::from_fn_with_state(trusted, http::proxy::resolve_client));
    // Served over TLS by Portico itself: browsers should never try plain HTTP again.
    let hsts = tls.then(|| {
        tower_http::set_header::SetResponseHeaderLayer::if_not_present(
            axum::http::header::STRICT_TRANSPORT_SECURITY,
            axum::http::HeaderValue::from_static("max-age=31536000"),
        )
    });
    let stack = ServiceBuilder::new()
        .layer(option_layer(hsts))
        .layer(option_layer(proxies))
        .map_response(axum::response::IntoResponse::into_response)
        // Every body is small (forms, JSON of the admin API, a passkey's answer): 64 KiB at most,
        // and it must arrive within the read timeout.
        .layer(tower_http::timeout::RequestBodyTimeoutLayer::new(read_timeout))
        .map_request(|req: axum::http::Request<_>| req.map(axum::body::Body::new))
        .layer(axum::extract::DefaultBodyLimit::max(64 * 1024))
        .layer(SetRequestIdLayer::new(x_request_id.clone(), MakeRequestUuid))
        .layer(tower_http::trace::TraceLayer::new_for_http().make_span_with(request_span))
        .layer(PropagateRequestIdLayer::new(x_request_id))
        .service(app::app(state));
    Served::new(stack)
}

/// A request's log span: its method, path and id. The path only: queries carry codes and state.
fn request_span(req: &axum::extract::Request) -> tracing::Span {
    let id = req.headers().get("x-request-id").and_then(|v| v.to_str().ok()).unwrap_or("");
    tracing::info_span!("request", method = req.method().as_str(), path = req.uri().path(), request_id = id)
}

/// Once a second until shutdown: configuration changed by another node or the CLI is reloaded,
/// the metrics recorder folds its raw histogram samples into buckets (without that upkeep,
/// memory grows with every request while nobody scrapes /metrics), the rate limiters forget idle
/// addresses, and every [`SWEEP_EVERY`] ticks what has expired is deleted (every node does it;
/// it is idempotent).
fn spawn_upkeep(state: &AppState, mut stop: tokio::sync::watch::Receiver<bool>) {
    let s = state.clone();
    let metrics = metrics_handle();
    tokio::spawn(async move {
        let mut ticks: u64 = 0;
        loop {
            tokio::select! {
                _ = tokio::time::sleep(std::time::Duration::from_secs(1)) => {}
                _ = stop.changed() => break,
            }
            metrics.run_upkeep();
            for limits in [&s.mail_limits, &s.strength_limits, &s.pending_limits, &s.ceremony_limits, &s.device_limits] {
                limits.sweep();
            }
            ticks += 1;
            let p = &s.provider;
            if ticks.is_multiple_of(SWEEP_EVERY) {
                let lock_ms = p.settings.throttle.lock * 1000;
                match p.store.sweep_expired(p.clock.now(), p.clock.now_ms(), lock_ms).await {
                    Ok(n) if n > 0 => tracing::debug!(deleted = n, "expired rows swept"),
                    Ok(_) => {}
                    Err(e) => tracing::warn!(error = %e, "sweeping expired rows failed"),
                }
            }
            if let Err(e) = p.reload_if_changed().await {
                tracing::warn!(error = %e, "configuration reload failed");
            }
        }
    });
}
