//! Ended sessions, as the guard remembers them after a back-channel logout: a session (`sid`)
//! ended, or every session of a user (`sub`) ended at a moment. Access tokens of an ended session,
//! or of that user issued at or before the moment, are refused for the rest of their lifetime.
//! Marks live in memory ([`MemoryMarks`], one replica) or in a PostgreSQL table ([`PgMarks`],
//! every replica of the product sees every mark at once). Each mark is kept for the guard's
//! `mark_lifetime` and then forgotten; the memory store is bounded and refuses (so the issuer
//! retries) rather than forget a mark early.

use async_trait::async_trait;
use std::collections::HashMap;
use std::sync::Mutex;

/// Why a mark could not be read or written. The guard refuses the token (fails closed).
#[derive(Debug, thiserror::Error)]
pub enum MarkError {
    /// The in-memory store is full of live marks.
    #[error("the session-mark store is full ({0} live marks)")]
    Full(usize),
    /// The database failed.
    #[error("session marks in PostgreSQL: {0}")]
    Database(#[from] sqlx::Error),
}

/// Where ended sessions are recorded.
#[async_trait]
pub trait SessionMarks: Send + Sync + 'static {
    /// Records that session `sid` ended at `now`; keep the mark until `until`.
    async fn end_session(&self, sid: &str, now: i64, until: i64) -> Result<(), MarkError>;
    /// Records that every session of `sub` ended at `at`; keep the mark until `until`.
    async fn end_subject(&self, sub: &str, at: i64, until: i64) -> Result<(), MarkError>;
    /// Whether a token of session `sid` (if any), about `sub`, issued at `iat`, belongs to an
    /// ended session at `now`.
    async fn ended(&self, sid: Option<&str>, sub: &str, iat: i64, now: i64) -> Result<bool, MarkError>;
}

/// Marks in this process's memory: the default, for a product that runs one replica.
#[derive(Debug)]
pub struct MemoryMarks {
    capacity: usize,
    marks: Mutex<Marks>,
}

#[derive(Debug, Default)]
struct Marks {
    /// sid → kept until
    sessions: HashMap<String, i64>,
    /// sub → (ended at, kept until)
    subjects: HashMap<String, (i64, i64)>,
    /// When expired marks are next dropped (at most once a minute, on a write).
    next_sweep: i64,
}

impl Marks {
    fn len(&self) -> usize {
        self.sessions.len() + self.subjects.len()
    }

    fn sweep(&mut self, now: i64) {
        self.sessions.retain(|_, until| *until > now);
        self.subjects.retain(|_, (_, until)| *until > now);
    }
}

impl Default for MemoryMarks {
    fn default() -> Self {
        Self::with_capacity(1_000_000)
    }
}

impl MemoryMarks {
    /// A store holding at most `capacity` live marks.
    pub fn with_capacity(capacity: usize) -> Self {
        Self {
            capacity,
            marks: Mutex::new(Marks::default()),
        }
    }

    fn write(&self, now: i64, f: impl FnOnce(&mut Marks)) -> Result<(), MarkError> {
        let mut marks = self.marks.lock().unwrap_or_else(|p| p.into_inner());
        if now >= marks.next_sweep {
            marks.sweep(now);
            marks.next_sweep = now.saturating_add(60);
        }
        if marks.len() >= self.capacity {
            marks.sweep(now);
            if marks.len() >= self.capacity {
                return Err(MarkError::Full(marks.len()));
            }
        }
        f(&mut marks);
        Ok(())
    }
}

#[async_trait]
impl SessionMarks for MemoryMarks {
    async fn end_session(&self, sid: &str, now: i64, until: i64) -> Result<(), MarkError> {
        self.write(now, |m| {
            let kept = m.sessions.entry(sid.to_owned()).or_insert(until);
            *kept = (*kept).max(until);
        })
    }

    async fn end_subject(&self, sub: &str, at: i64, until: i64) -> Result<(), MarkError> {
        self.write(at, |m| {
            let kept = m.subjects.entry(sub.to_owned()).or_insert((at, until));
            *kept = (kept.0.max(at), kept.1.max(until));
        })
    }

    async fn ended(&self, sid: Option<&str>, sub: &str, iat: i64, now: i64) -> Result<bool, MarkError> {
        let marks = self.marks.lock().unwrap_or_else(|p| p.into_inner());
        let session = sid.and_then(|s| marks.sessions.get(s)).is_some_and(|until| *until > now);
        let subject = marks.subjects.get(sub).is_some_and(|(at, until)| iat <= *at && *until > now);
        Ok(session || subject)
    }
}

/// Marks in a PostgreSQL table, shared by every replica of the product. Create the table with
/// [`PgMarks::install`] (or apply [`PgMarks::MIGRATION`] with your migrations).
#[derive(Clone, Debug)]
pub struct PgMarks {
    pool: sqlx::PgPool,
}

impl PgMarks {
    /// The table (in the `portico` schema), idempotent.
    pub const MIGRATION: &'static str = include_str!("../sql/session_marks.sql");

    /// Marks kept in `pool`'s database.
    pub fn new(pool: sqlx::PgPool) -> Self {
        Self { pool }
    }

    /// Creates the table if it does not exist.
    pub async fn install(&self) -> Result<(), MarkError> {
        sqlx::raw_sql(Self::MIGRATION).execute(&self.pool).await?;
        Ok(())
    }

    /// Deletes marks kept past `now`. Every new mark sweeps first, so the table holds only live
    /// marks plus those that expired since the last logout; call this to clear those too.
    pub async fn sweep(&self, now: i64) -> Result<u64, MarkError> {
        Ok(sqlx::query("DELETE FROM portico.session_marks WHERE kept_until <= $1")
            .bind(now)
            .execute(&self.pool)
            .await?
            .rows_affected())
    }

    async fn mark(&self, kind: &str, value: &str, at: i64, until: i64) -> Result<(), MarkError> {
        // Bounded by lifetime without the product's help: expired marks go as new ones arrive.
        self.sweep(at).await?;
        sqlx::query(
            "INSERT INTO portico.session_marks (kind, value, ended_at, kept_until) VALUES ($1, $2, $3, $4)
             ON CONFLICT (kind, value) DO UPDATE SET ended_at = GREATEST(portico.session_marks.ended_at, EXCLUDED.ended_at),
                 kept_until = GREATEST(portico.session_marks.kept_until, EXCLUDED.kept_until)",
        )
        .bind(kind)
        .bind(value)
        .bind(at)
        .bind(until)
        .execute(&self.pool)
        .await?;
        Ok(())
    }
}

#[async_trait]
impl SessionMarks for PgMarks {
    async fn end_session(&self, sid: &str, now: i64, until: i64) -> Result<(), MarkError> {
        self.mark("sid", sid, now, until).await
    }

    async fn end_subject(&self, sub: &str, at: i64, until: i64) -> Result<(), MarkError> {
        self.mark("sub", sub, at, until).await
    }

    async fn ended(&self, sid: Option<&str>, sub: &str, iat: i64, now: i64) -> Result<bool, MarkError> {
        let (ended,): (bool,) = sqlx::query_as(
            "SELECT EXISTS (SELECT 1 FROM portico.session_marks
                 WHERE kept_until > $4 AND ((kind = 'sid' AND value = $1) OR (kind = 'sub' AND value = $2 AND $3 <= ended_at)))",
        )
        .bind(sid)
        .bind(sub)
        .bind(iat)
        .bind(now)
        .fetch_one(&self.pool)
        .await?;
        Ok(ended)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_subject_mark_ends_only_tokens_issued_at_or_before_it() {
        let m = MemoryMarks::default();
        m.end_subject("usr_a", 100, 1000).await.unwrap();
        assert!(m.ended(None, "usr_a", 99, 150).await.unwrap());
        assert!(m.ended(Some("s1"), "usr_a", 100, 150).await.unwrap());
        assert!(!m.ended(None, "usr_a", 101, 150).await.unwrap(), "a token issued after the logout stays valid");
        assert!(!m.ended(None, "usr_b", 99, 150).await.unwrap());
        assert!(!m.ended(None, "usr_a", 99, 1000).await.unwrap(), "the mark is forgotten once kept long enough");
    }

    #[tokio::test]
    async fn a_full_store_refuses_rather_than_forgets() {
        let m = MemoryMarks::with_capacity(2);
        m.end_session("s1", 5, 1000).await.unwrap();
        m.end_session("s2", 5, 1000).await.unwrap();
        assert!(matches!(m.end_session("s3", 5, 1000).await, Err(MarkError::Full(2))));
        assert!(m.ended(Some("s1"), "u", 0, 10).await.unwrap());
    }
}
