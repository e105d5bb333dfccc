//! The `portico` command line: `serve`, `dev`, `apply`, `migrate`, and the operator's
//! commands (users, grants, keys, the audit log). Each operator command goes through the same
//! protocol functions the admin API uses, which audit.

mod admin;
mod audit;
mod dev;
mod span_fields;

use crate::config::{Config, LogFormat, Overrides};
use crate::suite::Suite;
use crate::{NewKey, open_store, start};
use clap::{Args, Parser, Subcommand};
use std::collections::HashSet;
use std::path::PathBuf;
use std::process::ExitCode;

pub use dev::demo_suite;

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
pub(crate) enum AuditCmd {
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
pub(crate) enum UserCmd {
    /// Add a user
    Add {
        email: String,
        #[arg(long)]
        name: Option<String>,
        /// Read the password from standard input
        #[arg(long)]
        password_stdin: bool,
        /// Accept a password the deployment's policy refuses (recorded in the audit event)
        #[arg(long, requires = "password_stdin")]
        skip_password_policy: bool,
    },
    /// Disable a user: ends their sessions and revokes their tokens
    Disable { email: String },
    /// Enable a disabled user
    Enable { email: String },
    /// List users
    List,
}

#[derive(Subcommand)]
pub(crate) enum GrantCmd {
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
pub(crate) struct GrantArgs {
    #[arg(long)]
    pub(crate) user: String,
    #[arg(long)]
    pub(crate) product: String,
    /// Tenant slug, or * for every tenant
    #[arg(long)]
    pub(crate) tenant: Option<String>,
    #[arg(long = "role")]
    pub(crate) roles: Vec<String>,
    /// When the grant stops covering anything (RFC 3339, e.g. 2027-01-31T00:00:00Z)
    #[arg(long)]
    pub(crate) expires: Option<String>,
}

#[derive(Subcommand)]
pub(crate) enum KeysCmd {
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
        LogFormat::Json => Box::new(b.json().fmt_fields(span_fields::JsonSpanFields).finish()),
        LogFormat::Text => Box::new(b.finish()),
    }
}

async fn run(file: Option<PathBuf>, flags: Overrides, command: Command) -> anyhow::Result<()> {
    let now = portico_protocol::clock::Clock::default().now();
    match command {
        Command::Dev => return dev::dev(file, flags).await,
        Command::MailSink { listen } => return dev::mail_sink(&listen).await,
        _ => {}
    }
    let cfg = Config::load(file.as_deref(), &flags)?;
    match command {
        Command::Serve => serve(&cfg).await?,
        Command::Dev | Command::MailSink { .. } => unreachable!("handled above"),
        Command::Migrate => {
            // Needs no key: a deployment may migrate its database before any server made one.
            let store = crate::open_migrated(&cfg).await?;
            println!("migrated the {} store", store.backend());
        }
        Command::Apply { file } => apply(&cfg, &file, now).await?,
        Command::User(cmd) => admin::user(&cfg, cmd, now).await?,
        Command::Audit(AuditCmd::Verify { head }) => audit::verify(&cfg, head.as_deref()).await?,
        Command::Grant(cmd) => admin::grant(&cfg, cmd, now).await?,
        Command::Keys(cmd) => admin::keys(&cfg, cmd, now).await?,
    }
    Ok(())
}

async fn serve(cfg: &Config) -> anyhow::Result<()> {
    init_logs(cfg.log_format);
    let (store, kek) = open_store(cfg, NewKey::Allowed).await?;
    let listener = tokio::net::TcpListener::bind(&cfg.listen).await?;
    let running = start(cfg, store, kek, listener, None).await?;
    tracing::info!(addr = %running.addr, issuer = %cfg.issuer, "portico listening");
    shutdown_signal().await;
    tracing::info!("shutting down; letting in-flight requests finish");
    running.stop().await;
    Ok(())
}

/// `portico apply -f FILE`: the whole file checked first, then the store changed in one transaction.
async fn apply(cfg: &Config, file: &std::path::Path, now: i64) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(file).map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
    let (store, kek) = open_store(cfg, NewKey::Refused).await?;
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
