//! One group commit: a batch of refresh-token rotations and audit events in one transaction, the
//! hot path's writes (the protocol's writer gathers them).
//!
//! On SQLite every statement is a round trip to sqlx's worker thread for the writer connection,
//! and under load each one waits for a CPU: a batch written statement by statement (begin, spend,
//! successors, claim the audit head, records, head, commit) paid seven of them. Here the batch
//! takes two: the first opens the transaction, spends the tokens and claims the head (what the
//! rest depends on), the second stores successors and records, moves the head and commits. Both
//! are one multi-statement query on the connection; the statements are the ones the
//! statement-by-statement path (PostgreSQL's) runs, built by the same functions.

use crate::audit::{RECORDS_PER_INSERT, chain, push_claim_head, push_records, push_set_head};
use crate::tokens::{ROTATIONS_PER_STATEMENT, fresh, outcomes, push_spend, push_successors};
use crate::{AuditEvent, Backend, RefreshRotation, Result, Rotation, Store, StoreError};
use sqlx::pool::PoolConnection;
use sqlx::{QueryBuilder, Row, Sqlite, SqlitePool};

impl Store {
    /// Commits `rotations` and `events` together: each rotation spends its token at most once (of
    /// two presentations of one token, in one batch or two, exactly one gets `Rotated`) and stores
    /// its successor; the events are appended to the audit chain. All of it or none. Outcomes are
    /// in the order given.
    pub async fn commit_group(&self, rotations: &[Rotation], events: &[AuditEvent]) -> Result<Vec<RefreshRotation>> {
        match &self.backend {
            Backend::Sqlite(pools) => self.commit_group_sqlite(&pools.write, rotations, events).await,
            Backend::Postgres(_) => {
                let mut tx = self.write().await?;
                let outcomes = tx.rotate_refresh_batch(rotations).await?;
                for e in events {
                    tx.audit(e.clone());
                }
                tx.commit().await?;
                Ok(outcomes)
            }
        }
    }

    async fn commit_group_sqlite(&self, pool: &SqlitePool, rotations: &[Rotation], events: &[AuditEvent]) -> Result<Vec<RefreshRotation>> {
        if rotations.is_empty() && events.is_empty() {
            return Ok(Vec::new());
        }
        let mut held = Held(Some(pool.acquire().await?));
        // First trip: the write lock, the spends, the chain head.
        let mut q = QueryBuilder::<Sqlite>::new("BEGIN IMMEDIATE");
        for chunk in rotations.chunks(ROTATIONS_PER_STATEMENT) {
            q.push("; ");
            push_spend(&mut q, chunk);
        }
        if !events.is_empty() {
            q.push("; ");
            push_claim_head(&mut q, events.len());
        }
        // Each trip's text depends on its rows (the first trip's on the rotations only: the head
        // is claimed by one statement for any number of events). A quiet server's few shapes
        // stay prepared (`keep_prepared`), sparing each lone request the parse; a larger batch's
        // are prepared for it alone, the parse shared by its requests.
        let rows = q
            .build()
            .persistent(crate::keep_prepared(rotations.len()))
            .fetch_all(&mut **held.conn())
            .await?;
        let (mut spent, mut head) = (std::collections::HashSet::new(), None);
        for row in rows {
            // The spends answer one column (the hash), the head two (the number before, the hash).
            match row.len() {
                1 => drop(spent.insert(row.try_get::<String, _>(0)?)),
                2 => head = Some((row.try_get::<i64, _>(0)?, row.try_get::<String, _>(1)?)),
                n => return Err(StoreError::Corrupt(format!("a group commit read a row of {n} columns"))),
            }
        }
        let outcomes = outcomes(rotations, spent);
        let fresh = fresh(rotations, &outcomes);
        let records = match head {
            Some((last_seq, prev)) => chain(self.audit_key.get(), last_seq, prev, events),
            None if events.is_empty() => Vec::new(),
            None => return Err(StoreError::Corrupt("the audit log has no head row".into())),
        };
        // Second trip: successors, records, the head, the commit.
        let mut q = QueryBuilder::<Sqlite>::new("");
        for chunk in fresh.chunks(ROTATIONS_PER_STATEMENT) {
            push_successors(&mut q, chunk);
            q.push("; ");
        }
        for chunk in records.chunks(RECORDS_PER_INSERT) {
            push_records(&mut q, chunk);
            q.push("; ");
        }
        if let Some(last) = records.last() {
            push_set_head(&mut q, &last.hash);
            q.push("; ");
        }
        q.push("COMMIT");
        let keep = crate::keep_prepared(fresh.len()) && crate::keep_prepared(records.len());
        q.build().persistent(keep).execute(&mut **held.conn()).await?;
        held.release();
        Ok(outcomes)
    }
}

/// The writer connection while a group commit has it. Dropped before [`Held::release`] (a
/// statement failed, or the future was dropped between trips) it leaves the pool and closes,
/// and closing rolls back what it began: sqlx does not know of a transaction begun in a
/// statement, so it could not be handed back to the pool inside one.
struct Held(Option<PoolConnection<Sqlite>>);

impl Held {
    fn conn(&mut self) -> &mut PoolConnection<Sqlite> {
        self.0.as_mut().expect("held until released")
    }

    /// The transaction is over (committed): back to the pool.
    fn release(mut self) {
        drop(self.0.take());
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        if let Some(conn) = self.0.take() {
            tracing::warn!("a group commit failed: closing the writer connection, which rolls it back");
            drop(conn.detach());
        }
    }
}
