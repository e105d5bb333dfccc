//! Portico's storage: capabilities shaped by the protocol (`consume_code`, `rotate_refresh_batch`,
//! `revoke_family`, …), each one atomic, on SQLite (default) or PostgreSQL.
//!
//! Both back ends run the same SQL (sqlx's SQLite driver takes `$1` placeholders); the
//! [`on_pool!`] and [`on_read!`] macros expand one body per back end so it is written once and
//! type-checked twice.
//!
//! SQLite allows one writer at a time. Rather than let connections race for its write lock (a loser
//! sleeps in SQLite's busy handler, which caps throughput and stretches p99), every write and every
//! transaction goes through one writer connection, where callers queue in order; plain reads use a
//! pool of readers, which WAL mode lets run beside the writer.

mod audit;
mod config;
mod consents;
mod grant_cache;
mod grants;
mod group;
mod handoff;
mod keys;
mod mfa;
mod outbox;
mod passkeys;
mod pending;
mod sessions;
mod sweep;
mod throttle;
mod tokens;
mod tx;
pub mod users;

pub use audit::{AuditCheck, AuditEvent, AuditRecord, Keying, chain_hash};
pub use config::{ConfigChange, ConfigDocs};
pub use handoff::HandoffRedemption;
pub use keys::KeyRow;
pub use mfa::TotpCredential;
pub use outbox::{LogoutFilter, LogoutNotice};
pub use passkeys::PasskeyRow;
pub use sessions::{NewSsoSession, ProductSessionInfo, ProductSessionStart, SessionInfo, SsoSession};
pub use tokens::{CodeConsumption, Family, RefreshContext, RefreshPeek, RefreshRotation, Rotation};
pub use tx::{Committed, Tx};

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{PgPool, SqlitePool};
use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

/// A store error. Constraint violations the caller can act on get their own variant.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("already exists: {0}")]
    Conflict(String),
    #[error("not found: {0}")]
    NotFound(String),
    #[error("store unavailable: {0}")]
    Unavailable(String),
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    #[error("database error: {0}")]
    Db(#[from] sqlx::Error),
    #[error(
        "the key-encryption key is not this deployment's (the store was set up under another key; \
         give every process the same key_encryption_key)"
    )]
    WrongKey,
    #[error("migration error: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// The store: SQLite or PostgreSQL, and the key its audit chain is keyed with. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Store {
    backend: Backend,
    /// Set once after opening ([`Store::use_keys`]); every clone shares it.
    audit_key: std::sync::Arc<std::sync::OnceLock<audit::ChainKey>>,
    /// Woken by a commit that queued back-channel logout notices ([`Tx::commit`]).
    logout_due: std::sync::Arc<tokio::sync::Notify>,
    /// Client grants held in memory (`grant_cache`); every clone shares them.
    client_grants: std::sync::Arc<grant_cache::ClientGrants>,
}

#[derive(Clone, Debug)]
pub(crate) enum Backend {
    Sqlite(SqlitePools),
    Postgres(PgPool),
}

/// SQLite's single writer connection and its readers.
#[derive(Clone, Debug)]
pub struct SqlitePools {
    write: SqlitePool,
    read: SqlitePool,
}

/// Runs `$body` with `$pool` bound to the concrete pool of either back end: for writes and
/// transactions (SQLite's writer connection).
macro_rules! on_pool {
    ($store:expr, $pool:ident => $body:expr) => {
        match &$store.backend {
            $crate::Backend::Sqlite(pools) => {
                let $pool = &pools.write;
                $body
            }
            $crate::Backend::Postgres($pool) => $body,
        }
    };
}

/// As [`on_pool!`], for a single read-only statement (SQLite's reader pool).
macro_rules! on_read {
    ($store:expr, $pool:ident => $body:expr) => {
        match &$store.backend {
            $crate::Backend::Sqlite(pools) => {
                let $pool = &pools.read;
                $body
            }
            $crate::Backend::Postgres($pool) => $body,
        }
    };
}
pub(crate) use {on_pool, on_read};

/// Whether a multi-row statement (its text grows with its rows: the audit records, the spends and
/// successors of refresh rotations) stays in the connection's statement cache. Statements of a
/// row or two — every request alone on a quiet server — do, and are parsed once; larger ones are
/// prepared for their batch alone. Their shapes are many: kept, they filled each connection's
/// cache (and, on PostgreSQL, each server backend's prepared statements) with statements of up to
/// 512 rows, tens of megabytes across a pool.
pub(crate) fn keep_prepared(rows: usize) -> bool {
    rows <= 2
}

static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

impl Store {
    /// Opens the store: PostgreSQL when `database_url` starts with `postgres`, otherwise the SQLite
    /// file `portico.db` in `data_dir` (created, WAL mode). Does not migrate.
    pub async fn open(database_url: Option<&str>, data_dir: &Path) -> Result<Self> {
        match database_url {
            Some(url) if url.starts_with("postgres:") || url.starts_with("postgresql:") => {
                let opts = PgConnectOptions::from_str(url)?;
                let pool = PgPoolOptions::new()
                    .max_connections(16)
                    .min_connections(1)
                    .acquire_timeout(Duration::from_secs(5))
                    .connect_with(opts)
                    .await?;
                Ok(Store::new(Backend::Postgres(pool)))
            }
            Some(url) if url.starts_with("sqlite:") => Self::open_sqlite(SqliteConnectOptions::from_str(url)?).await,
            Some(other) => Err(StoreError::Db(sqlx::Error::Configuration(
                format!(
                    "database_url must start with postgres:// or sqlite: (got scheme of {:?})",
                    other.split(':').next().unwrap_or("")
                )
                .into(),
            ))),
            None => {
                let path = data_dir.join("portico.db");
                Self::open_sqlite(SqliteConnectOptions::new().filename(path)).await
            }
        }
    }

    async fn open_sqlite(opts: SqliteConnectOptions) -> Result<Self> {
        let opts = opts
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(10))
            .foreign_keys(true)
            // 2 MiB of page cache per connection (five of them): the hot pages are the indexes'
            // upper levels and the last-written leaves; the rest is one read from the kernel's
            // own cache away, which costs less than holding it in each connection's (8 MiB each
            // grew the process by up to 40 MiB under load).
            .pragma("cache_size", "-2048")
            // statement journals of multi-row writes stay in memory instead of temp files
            .pragma("temp_store", "memory");
        let write = SqlitePoolOptions::new()
            .max_connections(1)
            .min_connections(1)
            .test_before_acquire(false)
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(opts.clone())
            .await?;
        let read = SqlitePoolOptions::new()
            .max_connections(4)
            .min_connections(1)
            .test_before_acquire(false)
            .connect_with(opts.read_only(true))
            .await?;
        Ok(Store::new(Backend::Sqlite(SqlitePools { write, read })))
    }

    fn new(backend: Backend) -> Self {
        Self {
            backend,
            audit_key: Default::default(),
            logout_due: Default::default(),
            client_grants: Default::default(),
        }
    }

    /// Notified when this process commits logout notices: the delivery worker waits on it (and
    /// polls, for notices other processes queue).
    pub fn logout_due(&self) -> &tokio::sync::Notify {
        &self.logout_due
    }

    /// Applies the embedded migrations (idempotent).
    pub async fn migrate(&self) -> Result<()> {
        match &self.backend {
            Backend::Sqlite(pools) => SQLITE_MIGRATIONS.run(&pools.write).await?,
            Backend::Postgres(pool) => POSTGRES_MIGRATIONS.run(pool).await?,
        }
        Ok(())
    }

    /// `SELECT 1`: the store answers.
    pub async fn ping(&self) -> Result<()> {
        on_read!(self, pool => sqlx::query("SELECT 1").execute(pool).await.map(|_| ()))?;
        Ok(())
    }

    pub fn backend(&self) -> &'static str {
        match &self.backend {
            Backend::Sqlite(_) => "sqlite",
            Backend::Postgres(_) => "postgres",
        }
    }

    pub async fn close(&self) {
        match &self.backend {
            Backend::Sqlite(pools) => {
                pools.read.close().await;
                pools.write.close().await;
            }
            Backend::Postgres(pool) => pool.close().await,
        }
    }
}

/// Maps a unique-constraint violation to `Conflict`.
pub(crate) fn conflict(err: sqlx::Error, what: &str) -> StoreError {
    match &err {
        sqlx::Error::Database(db) if db.is_unique_violation() => StoreError::Conflict(what.to_owned()),
        _ => StoreError::Db(err),
    }
}

pub(crate) fn json<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_string(value).expect("plain data serializes")
}

pub(crate) fn from_json<T: serde::de::DeserializeOwned>(text: &str, what: &str) -> Result<T> {
    serde_json::from_str(text).map_err(|e| StoreError::Corrupt(format!("{what}: {e}")))
}
