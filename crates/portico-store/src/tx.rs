//! A transaction of either back end, as one type: [`Store::write`] opens it (on SQLite, on the
//! one writer connection), statements run on it through [`on_tx!`] (the same SQL written once,
//! compiled against both back ends' types), [`Tx::audit`] buffers the acts to record, and [`Tx::commit`] appends them
//! to the hash-chained audit log in the same transaction, then commits. Dropped without a commit,
//! nothing it did stays.
//!
//! What changes several rows, or must be audited with its act, is a method on [`Tx`]. A single
//! unaudited statement (a pending state, the throttle, a session's last use, a refresh token
//! insert) stays a [`Store`] method: one statement is its own transaction. On SQLite a `Tx` holds
//! the one writer connection, so a task with an open `Tx` must not call such a `Store` method (it
//! would wait for the connection it holds).

use crate::{AuditEvent, Backend, Result, Store};

/// An open write transaction: dropped without [`Tx::commit`], it is rolled back.
#[must_use = "a transaction does nothing until it is committed"]
pub struct Tx<'s> {
    pub(crate) store: &'s Store,
    pub(crate) inner: Inner,
    pub(crate) audit: Vec<AuditEvent>,
    /// Back-channel logout notices this transaction queued.
    pub(crate) logouts: usize,
    /// Whether it changed a client grant (or applied configuration): its commit then forgets
    /// the client grants held in memory.
    pub(crate) client_grants_changed: bool,
}

/// What a committed transaction did beyond its own rows.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Committed {
    /// Back-channel logout notices queued (the delivery worker has been woken for them).
    pub logouts_queued: usize,
}

pub(crate) enum Inner {
    Sqlite(sqlx::Transaction<'static, sqlx::Sqlite>),
    Postgres(sqlx::Transaction<'static, sqlx::Postgres>),
}

/// Runs `$body` with `$t` bound to the `sqlx::Transaction` of either back end (a statement runs
/// on `&mut **$t`).
macro_rules! on_tx {
    ($tx:expr, $t:ident => $body:expr) => {
        match &mut $tx.inner {
            $crate::tx::Inner::Sqlite($t) => $body,
            $crate::tx::Inner::Postgres($t) => $body,
        }
    };
}
pub(crate) use on_tx;

impl Store {
    /// Opens a write transaction.
    pub async fn write(&self) -> Result<Tx<'_>> {
        let inner = match &self.backend {
            Backend::Sqlite(pools) => Inner::Sqlite(pools.write.begin().await?),
            Backend::Postgres(pool) => Inner::Postgres(pool.begin().await?),
        };
        Ok(Tx {
            store: self,
            inner,
            audit: Vec::new(),
            logouts: 0,
            client_grants_changed: false,
        })
    }
}

impl Tx<'_> {
    /// Records `event` when the transaction commits (and only then).
    pub fn audit(&mut self, event: AuditEvent) {
        self.audit.push(event);
    }

    /// Appends the buffered audit events to the chain and commits, both or neither; then, when it
    /// queued logout notices, wakes this process's delivery worker (the one place that does).
    pub async fn commit(mut self) -> Result<Committed> {
        self.append_audit().await?;
        let done = Committed { logouts_queued: self.logouts };
        // Forgets the client grants held in memory once the commit is over, not before (a read
        // between the two would be held as current): also when it failed or this future was
        // dropped while it ran, for the commit may have landed all the same.
        let _forget = self.client_grants_changed.then_some(ForgetClientGrants(self.store));
        match self.inner {
            Inner::Sqlite(t) => t.commit().await?,
            Inner::Postgres(t) => t.commit().await?,
        }
        if done.logouts_queued > 0 {
            self.store.logout_due.notify_one();
        }
        Ok(done)
    }
}

/// Forgets the client grants held in memory when dropped ([`Tx::commit`]).
struct ForgetClientGrants<'s>(&'s Store);

impl Drop for ForgetClientGrants<'_> {
    fn drop(&mut self) {
        self.0.forget_client_grants();
    }
}
