//! The `portico` command line.

use crate::config::{Config, LogFormat, Overrides};
use crate::http::demo::{Demo, DemoClient};
use crate::suite::{Suite, parse_duration};
use crate::{NewKey, http, open_store, start};
use clap::{Args, Parser, Subcommand};
use portico_model::*;
use portico_protocol::{admin, keys, password, random};
use portico_store::AuditEvent;
use std::collections::HashSet;
use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

#[derive(Parser)]
#[command(
    name = "portico",
    version,
    about = "Portico: one identity for a suite of products, each product and tenant sealed off"
)]
struct Cli {
    /// Configuration file (default: ./portico.toml when present)
    #[arg(long, short = 'c', global = true)]
    config: Option<PathBuf>,
    #[command(flatten)]
    flags: Flags,
    #[command(subcommand)]
    command: Command,
}

#[derive(Args)]
struct Flags {
    /// Address to listen on (default 127.0.0.1:8080)
    #[arg(long, global = true)]
    listen: Option<String>,
    /// Public issuer URL (default http://127.0.0.1:8080)
    #[arg(long, global = true)]
    issuer: Option<String>,
    /// Data directory (default ./portico-data)
    #[arg(long, global = true)]
    data_dir: Option<PathBuf>,
    /// postgres://… to use PostgreSQL instead of SQLite in the data directory
    #[arg(long, global = true)]
    database_url: Option<String>,
    /// text or json
    #[arg(long, global = true)]
    log_format: Option<String>,
    /// PEM certificate chain: serve HTTPS directly (with --tls-key)
    #[arg(long, global = true)]
    tls_cert: Option<PathBuf>,
    /// PEM private key for --tls-cert
    #[arg(long, global = true)]
    tls_key: Option<PathBuf>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server
    Serve,
    /// A fresh local instance with a demo suite, on http://localhost:8080
    Dev,
    /// A loopback SMTP server that keeps what it receives and prints a line per mail (for
    /// development and benchmarks: point `smtp_url` at it)
    MailSink {
        /// Where to listen (loopback)
        #[arg(long, default_value = "127.0.0.1:2525")]
        listen: String,
    },
    /// Make the store match a suite file (idempotent)
    Apply {
        /// The suite file
        #[arg(short = 'f', long = "file")]
        file: PathBuf,
    },
    /// Apply the store's migrations
    Migrate,
    /// Manage users
    #[command(subcommand)]
    User(UserCmd),
    /// Manage grants
    #[command(subcommand)]
    Grant(GrantCmd),
    /// Manage signing keys
    #[command(subcommand)]
    Keys(KeysCmd),
    /// Inspect the audit log
    #[command(subcommand)]
    Audit(AuditCmd),
}

#[derive(Subcommand)]
enum AuditCmd {
    /// Prove the audit log unbroken: every record chained to the one before and unchanged, none
    /// missing (exit status 1 and the first break otherwise)
    Verify {
        /// A head printed by an earlier run (SEQ:HASH), kept outside the database: the log must
        /// still hold that record, unchanged (neither cut off nor rewritten since)
        #[arg(long)]
        head: Option<String>,
    },
}

#[derive(Subcommand)]
enum UserCmd {
    /// Add a user
    Add {
        email: String,
        #[arg(long)]
        name: Option<String>,
        /// Read the password from standard input
        #[arg(long)]
        password_stdin: bool,
    },
    /// Disable a user: ends their sessions and revokes their tokens
    Disable { email: String },
    /// Enable a disabled user
    Enable { email: String },
    /// List users
    List,
}

#[derive(Subcommand)]
enum GrantCmd {
    /// Grant roles on a product (and tenant)
    Add(GrantArgs),
    /// Revoke a grant: its tokens stop working at once
    Revoke(GrantArgs),
    /// List grants
    List {
        #[arg(long)]
        user: Option<String>,
    },
}

#[derive(Args)]
struct GrantArgs {
    #[arg(long)]
    user: String,
    #[arg(long)]
    product: String,
    /// Tenant slug, or * for every tenant
    #[arg(long)]
    tenant: Option<String>,
    #[arg(long = "role")]
    roles: Vec<String>,
    /// When the grant stops covering anything (RFC 3339, e.g. 2027-01-31T00:00:00Z)
    #[arg(long)]
    expires: Option<String>,
}

#[derive(Subcommand)]
enum KeysCmd {
    /// Publish a new signing key now; it signs after --activate-in (default 1h)
    Rotate {
        #[arg(long, default_value = "EdDSA")]
        alg: String,
        #[arg(long, default_value = "1h")]
        activate_in: String,
    },
    /// List keys
    List,
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let log_format = match cli.flags.log_format.as_deref() {
        None => None,
        Some("text") => Some(LogFormat::Text),
        Some("json") => Some(LogFormat::Json),
        Some(other) => {
            eprintln!("error: --log-format must be text or json, not {other:?}");
            return ExitCode::from(2);
        }
    };
    let flags = Overrides {
        listen: cli.flags.listen.clone(),
        issuer: cli.flags.issuer.clone(),
        data_dir: cli.flags.data_dir.clone(),
        database_url: cli.flags.database_url.clone(),
        log_format,
        tls_cert: cli.flags.tls_cert.clone(),
        tls_key: cli.flags.tls_key.clone(),
    };
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    match rt.block_on(run(cli.config, flags, cli.command)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn init_logs(format: LogFormat) {
    let _ = tracing::subscriber::set_global_default(log_subscriber(format, std::io::stdout));
}

/// Portico's log subscriber: `PORTICO_LOG` filter (default `info,sqlx=warn`), text or JSON lines
/// (JSON carries the request span, so every line of a request names its `request_id`).
pub fn log_subscriber<W>(format: LogFormat, writer: W) -> Box<dyn tracing::Subscriber + Send + Sync>
where
    W: for<'w> tracing_subscriber::fmt::MakeWriter<'w> + Send + Sync + 'static,
{
    let filter = tracing_subscriber::EnvFilter::try_from_env("PORTICO_LOG").unwrap_or_else(|_| "info,sqlx=warn".into());
    let b = tracing_subscriber::fmt().with_env_filter(filter).with_writer(writer);
    match format {
        LogFormat::Json => Box::new(b.json().finish()),
        LogFormat::Text => Box::new(b.finish()),
    }
}

async fn run(file: Option<PathBuf>, flags: Overrides, command: Command) -> anyhow::Result<()> {
    let now = http::now();
    match command {
        Command::Dev => return dev(file, flags).await,
        Command::MailSink { listen } => return mail_sink(&listen).await,
        _ => {}
    }
    let cfg = Config::load(file.as_deref(), &flags)?;
    match command {
        Command::Serve => {
            init_logs(cfg.log_format);
            let (store, kek) = open_store(&cfg, NewKey::Allowed).await?;
            let listener = tokio::net::TcpListener::bind(&cfg.listen).await?;
            let running = start(&cfg, store, kek, listener, None).await?;
            tracing::info!(addr = %running.addr, issuer = %cfg.issuer, "portico listening");
            shutdown_signal().await;
            tracing::info!("shutting down; letting in-flight requests finish");
            running.stop().await;
        }
        Command::Dev | Command::MailSink { .. } => unreachable!("handled above"),
        Command::Migrate => {
            // Needs no key: a deployment may migrate its database before any server made one.
            let store = crate::open_migrated(&cfg).await?;
            println!("migrated the {} store", store.backend());
        }
        Command::Apply { file } => {
            let text = std::fs::read_to_string(&file).map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
            let (store, kek) = open_store(&cfg, NewKey::Refused).await?;
            let known: HashSet<String> = store.list_users().await?.into_iter().map(|u| u.email.to_lowercase()).collect();
            let suite = Suite::parse(&file.display().to_string(), &text, &known)?;
            suite.check_for_issuer(&cfg.issuer)?;
            suite.check_for_mail(cfg.smtp_url.is_some())?;
            let report = suite.apply(&store, &kek, "apply", now).await?;
            if report.is_empty() {
                println!("no changes");
            }
            for line in report {
                println!("{line}");
            }
        }
        Command::User(cmd) => user(&cfg, cmd, now).await?,
        Command::Audit(AuditCmd::Verify { head: saved }) => {
            // Reads only: records no key, mark or check value, and makes no key file.
            let (store, _) = open_store(&cfg, NewKey::Never).await?;
            let saved = match saved.as_deref().map(|h| h.split_once(':').map(|(n, hash)| (n.parse::<i64>(), hash))) {
                None => None,
                Some(Some((Ok(n), hash))) if n >= 1 && !hash.is_empty() => Some((n, hash.to_owned())),
                Some(_) => anyhow::bail!("--head: {:?} is not a head like 42:h2:…, as audit verify prints it", saved.unwrap_or_default()),
            };
            match store.verify_audit().await? {
                portico_store::AuditCheck::Intact { records, head, keyed_from } => {
                    if let Some((n, hash)) = &saved {
                        let record = store.audit_records(n - 1, 1).await?.into_iter().next().filter(|r| r.seq == *n);
                        match record {
                            None => anyhow::bail!("audit log cut off: it ends at record {records}, before the saved head {n}"),
                            Some(r) if r.hash != *hash => anyhow::bail!("audit log rewritten: record {n} is not what it was when its head was saved"),
                            Some(_) => {}
                        }
                    }
                    println!("audit log intact: {records} records, head {records}:{head}");
                    match keyed_from {
                        Some(1) => println!("keyed from its first record"),
                        Some(n) => println!("keyed from record {n}; records 1 to {} predate the key (plain SHA-256)", n - 1),
                        None => {}
                    }
                    match saved {
                        Some((n, _)) => println!("record {n} is as it was when its head was saved"),
                        None => println!(
                            "keep the head where the database's writers cannot reach it, and check it with --head: only it shows a log cut short or rewritten whole"
                        ),
                    }
                }
                portico_store::AuditCheck::Broken { seq, reason } => anyhow::bail!("audit log broken at record {seq}: {reason}"),
            }
        }
        Command::Grant(cmd) => grant(&cfg, cmd, now).await?,
        Command::Keys(cmd) => {
            let (store, kek) = open_store(&cfg, NewKey::Refused).await?;
            match cmd {
                KeysCmd::Rotate { alg, activate_in } => {
                    let alg = SigningAlg::parse(&alg).ok_or_else(|| anyhow::anyhow!("--alg must be EdDSA, ES256 or RS256"))?;
                    let delay = if activate_in == "0" || activate_in == "0s" {
                        0
                    } else {
                        parse_duration(&activate_in).ok_or_else(|| anyhow::anyhow!("--activate-in: not a duration like 1h"))?
                    };
                    let row = keys::generate(alg, &kek, now, now + delay);
                    let event =
                        AuditEvent::new(now, "key.rotated", "cli").data(serde_json::json!({"kid": row.kid, "alg": row.alg, "activate_at": row.activate_at}));
                    store.insert_key(&row, &[event]).await?;
                    println!("published key {} ({}); it signs from {} (in {delay} s)", row.kid, row.alg, row.activate_at);
                }
                KeysCmd::List => {
                    for k in store.list_keys().await? {
                        println!("{}\t{}\tactivates {}", k.kid, k.alg, k.activate_at);
                    }
                }
            }
        }
    }
    Ok(())
}

async fn user(cfg: &Config, cmd: UserCmd, now: i64) -> anyhow::Result<()> {
    let (store, _) = open_store(cfg, NewKey::Refused).await?;
    match cmd {
        UserCmd::Add { email, name, password_stdin } => {
            anyhow::ensure!(email.contains('@'), "{email:?} is not an email address");
            let hash = if password_stdin {
                let mut pw = String::new();
                std::io::stdin().read_to_string(&mut pw)?;
                let pw = pw.trim_end_matches(['\n', '\r']).to_owned();
                anyhow::ensure!(pw.chars().count() >= 8, "the password must be at least 8 characters");
                Some(password::hash_async(pw).await)
            } else {
                None
            };
            let u = User {
                id: UserId::new(random::id("usr_")),
                email: email.clone(),
                email_verified: false,
                name: name.unwrap_or_default(),
                status: UserStatus::Active,
                created_at: now,
            };
            let event = AuditEvent::new(now, "user.created", "cli").data(serde_json::json!({"user": u.id.as_str()}));
            store.insert_user(&u, hash.as_deref(), &[], &[event]).await.map_err(|e| match e {
                portico_store::StoreError::Conflict(_) => anyhow::anyhow!("a user with email {email} already exists"),
                e => e.into(),
            })?;
            println!("added user {email} ({})", u.id);
        }
        UserCmd::Disable { email } => set_status(cfg, &store, &email, UserStatus::Disabled, now).await?,
        UserCmd::Enable { email } => set_status(cfg, &store, &email, UserStatus::Active, now).await?,
        UserCmd::List => {
            for u in store.list_users().await? {
                println!("{}\t{}\t{}\t{}", u.id, u.email, u.status.as_str(), u.name);
            }
        }
    }
    Ok(())
}

/// The configuration as the server sees it, for the admin functions the CLI shares with the API.
async fn snapshot(cfg: &Config, store: &portico_store::Store) -> anyhow::Result<portico_protocol::snapshot::Snapshot> {
    Ok(portico_protocol::snapshot::Snapshot::build(store.load_config().await?, &cfg.issuer))
}

/// Disables or enables a user; a running server delivers the back-channel logout notices a
/// disable queues (its outbox worker polls every second).
async fn set_status(cfg: &Config, store: &portico_store::Store, email: &str, status: UserStatus, now: i64) -> anyhow::Result<()> {
    let config = snapshot(cfg, store).await?;
    let (_, changed) = admin::set_user_status(store, &config, email, status, &admin::Caller::cli(), now).await?;
    let word = if status == UserStatus::Disabled { "disabled" } else { "enabled" };
    println!("{} {email}", if changed { word } else { "already" });
    Ok(())
}

async fn grant(cfg: &Config, cmd: GrantCmd, now: i64) -> anyhow::Result<()> {
    let (store, _) = open_store(cfg, NewKey::Refused).await?;
    let config = snapshot(cfg, &store).await?;
    let by = admin::Caller::cli();
    let key = |a: &GrantArgs| admin::GrantKey {
        user: Some(a.user.clone()),
        client: None,
        product: a.product.clone(),
        tenant: a.tenant.clone(),
    };
    match cmd {
        GrantCmd::Add(a) => {
            let expires_at = match &a.expires {
                None => None,
                Some(x) => {
                    Some(crate::suite::parse_instant(x).ok_or_else(|| anyhow::anyhow!("--expires {x:?} is not an RFC 3339 time like 2027-01-31T00:00:00Z"))?)
                }
            };
            let k = key(&a);
            let new = admin::NewGrant {
                user: k.user,
                client: None,
                product: k.product,
                tenant: k.tenant,
                roles: a.roles.clone(),
                expires_at,
            };
            admin::add_grant(&store, &config, &new, &by, now).await?;
            println!("granted {} on {} to {}", a.roles.join(","), a.product, a.user);
        }
        GrantCmd::Revoke(a) => {
            admin::revoke_grant(&store, &config, &key(&a), &by, now).await?;
            println!("revoked the grant on {} from {}", a.product, a.user);
        }
        GrantCmd::List { user } => {
            let users = store.list_users().await?;
            let email = |g: &Grant| match &g.grantee {
                Grantee::User(id) => users.iter().find(|u| &u.id == id).map(|u| u.email.clone()).unwrap_or_else(|| id.to_string()),
                Grantee::Client(c) => format!("client:{c}"),
            };
            for g in store.list_grants().await? {
                if user.as_ref().is_some_and(|u| !email(&g).eq_ignore_ascii_case(u)) {
                    continue;
                }
                let tenant = match &g.scope {
                    GrantScope::NoTenant => "-".to_owned(),
                    GrantScope::AllTenants => "*".to_owned(),
                    GrantScope::One(id) => config.tenant(id).map_or_else(|| id.to_string(), |t| t.slug.clone()),
                };
                println!("{}\t{}\t{}\t{}\t{}", email(&g), g.product, tenant, g.roles.join(","), g.status.as_str());
            }
        }
    }
    Ok(())
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("signal handler");
        tokio::select! {
            _ = term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = tokio::signal::ctrl_c().await;
}

/// The demo suite of `portico dev`.
pub fn demo_suite(issuer: &str, crm_secret: &str, reports_secret: &str, payments_secret: &str) -> String {
    include_str!("demo_suite.toml")
        .replace("${CRM_CALLBACK}", &http::demo::callback_uri(issuer, "crm-web"))
        .replace("${REPORTS_CALLBACK}", &http::demo::callback_uri(issuer, "reports-web"))
        .replace("${PAYMENTS_CALLBACK}", &http::demo::callback_uri(issuer, "payments-web"))
        .replace("${CRM_SECRET}", crm_secret)
        .replace("${REPORTS_SECRET}", reports_secret)
        .replace("${PAYMENTS_SECRET}", payments_secret)
}

async fn mail_sink(listen: &str) -> anyhow::Result<()> {
    let ip: std::net::SocketAddr = listen.parse().map_err(|e| anyhow::anyhow!("--listen {listen:?}: {e}"))?;
    anyhow::ensure!(ip.ip().is_loopback(), "--listen {listen}: the sink relays nothing and listens on loopback only");
    let sink = crate::mailsink::MailSink::start(listen).await?;
    println!("mail sink: {}", sink.url());
    let mut seen = 0usize;
    let mut tick = tokio::time::interval(std::time::Duration::from_millis(200));
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown_signal() => return Ok(()),
        }
        let total = sink.received();
        for m in sink.mails().iter().take(total - seen).rev() {
            println!("{} to {}: {}", http::account::when(m.at), m.to.join(", "), m.subject);
        }
        seen = total;
    }
}

async fn dev(file: Option<PathBuf>, mut flags: Overrides) -> anyhow::Result<()> {
    let dir = std::env::temp_dir().join(format!("portico-dev-{}", random::id("")));
    flags.data_dir.get_or_insert(dir.clone());
    // The demo's issuer is `localhost`, not 127.0.0.1: browsers allow passkeys only for a domain name.
    if flags.issuer.is_none() && file.is_none() {
        let port = flags.listen.as_deref().and_then(|l| l.rsplit_once(':')).map_or("8080", |(_, p)| p).to_owned();
        flags.issuer = Some(format!("http://localhost:{port}"));
    }
    let mut cfg = Config::load(file.as_deref(), &flags)?;
    init_logs(cfg.log_format);
    // Mail goes to a local SMTP sink shown at /dev/mail, unless the configuration names a server.
    let sink = match cfg.smtp_url {
        Some(_) => None,
        None => {
            let sink = crate::mailsink::MailSink::start("127.0.0.1:0").await?;
            cfg.smtp_url = Some(sink.url());
            Some(sink)
        }
    };
    let (store, kek) = open_store(&cfg, NewKey::Allowed).await?;
    let (crm_secret, reports_secret, payments_secret) = (random::token(), random::token(), random::token());
    let text = demo_suite(&cfg.issuer, &crm_secret, &reports_secret, &payments_secret);
    Suite::parse("demo suite", &text, &HashSet::new())?
        .apply(&store, &kek, "dev", http::now())
        .await?;
    let demo = Demo {
        clients: vec![
            DemoClient {
                client_id: "crm-web".into(),
                secret: Secret::new(crm_secret),
                product: "CRM".into(),
            },
            DemoClient {
                client_id: "reports-web".into(),
                secret: Secret::new(reports_secret),
                product: "Reports".into(),
            },
            DemoClient {
                client_id: "payments-web".into(),
                secret: Secret::new(payments_secret),
                product: "Payments".into(),
            },
        ],
        users: vec![
            (
                "ada@example.test".into(),
                "correct horse battery staple".into(),
                "CRM editor in Acme Bank; Reports analyst; Payments approver (two-step verification)".into(),
            ),
            (
                "grace@example.test".into(),
                "debugging the harvard mark ii".into(),
                "CRM viewer in Globex Savings; no Reports".into(),
            ),
            (
                "margaret@example.test".into(),
                "apollo guidance computer".into(),
                "CRM editor in Acme Bank and viewer in Globex Savings: picks one".into(),
            ),
        ],
        mail: sink,
    };
    let listener = tokio::net::TcpListener::bind(&cfg.listen).await?;
    println!("Portico dev: {} (data in {})", cfg.issuer, cfg.data_dir.display());
    println!(
        "Open {}/ and sign in to a demo product (Reports takes sign-ups; mail sent shows at {}/dev/mail). Demo users:",
        cfg.issuer, cfg.issuer
    );
    for (email, pw, access) in &demo.users {
        println!("  {email}  password: {pw:?}  ({access})");
    }
    let running = start(&cfg, store, kek, listener, Some(Arc::new(demo))).await?;
    shutdown_signal().await;
    running.stop().await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::Cli;
    use clap::CommandFactory;

    fn walk(cmd: &mut clap::Command, path: &str) {
        let help = cmd.render_help().to_string();
        assert!(help.contains("Usage:"), "{path} --help has no usage");
        for sub in cmd.get_subcommands_mut() {
            let name = format!("{path} {}", sub.get_name());
            assert!(sub.get_about().is_some(), "`{name}` says nothing in --help");
            walk(sub, &name);
        }
    }

    #[test]
    fn every_command_has_help() {
        Cli::command().debug_assert();
        walk(&mut Cli::command(), "portico");
    }
}
