//! Group commit for the hot path's writes. Endpoints hand audit events and refresh-token rotations
//! to one writer task, which commits whatever has gathered in one transaction and then answers each
//! rotation. Under load many requests share one commit; an idle server commits each at once.
//!
//! A rotation is answered only after its transaction committed: a refresh token is never handed
//! out before the store knows it (the refresh grant's write is durable). Audit events are
//! fire-and-forget for the caller; `flush` waits for them.

use portico_store::{AuditEvent, RefreshRotation, Rotation, Store, StoreError};
use tokio::sync::{mpsc, oneshot};

/// The most a single transaction takes, so one batch never holds the store for long.
const MAX_BATCH: usize = 512;

enum Msg {
    Event(AuditEvent),
    Rotate(Rotation, oneshot::Sender<Result<RefreshRotation, String>>),
    Flush(oneshot::Sender<()>),
}

#[derive(Clone)]
pub struct Writer {
    tx: mpsc::UnboundedSender<Msg>,
}

impl Writer {
    /// Starts the writer task on the current runtime.
    pub fn spawn(store: Store) -> Self {
        let (tx, mut rx) = mpsc::unbounded_channel::<Msg>();
        // How many requests share a commit and how long it holds the store: where a rotating
        // refresh waits, in the operator's own figures (from the recorder installed before).
        let batch_size = metrics::histogram!("portico_group_commit_size");
        let commit_seconds = metrics::histogram!("portico_group_commit_duration_seconds");
        tokio::spawn(async move {
            let (mut events, mut rotations, mut replies, mut waiters) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
            while let Some(first) = rx.recv().await {
                let mut next = Some(first);
                while let Some(msg) = next.take().or_else(|| rx.try_recv().ok()) {
                    match msg {
                        Msg::Event(e) => events.push(e),
                        Msg::Rotate(r, reply) => {
                            rotations.push(r);
                            replies.push(reply);
                        }
                        Msg::Flush(w) => waiters.push(w),
                    }
                    if events.len() + rotations.len() >= MAX_BATCH {
                        break;
                    }
                }
                if !events.is_empty() || !rotations.is_empty() {
                    batch_size.record((events.len() + rotations.len()) as f64);
                    let started = std::time::Instant::now();
                    let committed = store.commit_group(&rotations, &events).await;
                    commit_seconds.record(started.elapsed().as_secs_f64());
                    match committed {
                        Ok(results) => {
                            for (reply, outcome) in replies.drain(..).zip(results) {
                                let _ = reply.send(Ok(outcome));
                            }
                        }
                        Err(e) => {
                            tracing::error!(error = %e, events = events.len(), rotations = rotations.len(), "group commit failed");
                            for reply in replies.drain(..) {
                                let _ = reply.send(Err(e.to_string()));
                            }
                        }
                    }
                    events.clear();
                    rotations.clear();
                }
                for w in waiters.drain(..) {
                    let _ = w.send(());
                }
            }
        });
        Self { tx }
    }

    /// Queues an audit event for the next commit.
    pub fn record(&self, event: AuditEvent) {
        if self.tx.send(Msg::Event(event)).is_err() {
            tracing::error!("audit writer stopped; event lost");
        }
    }

    /// Rotates a refresh token in the next commit and returns once it is committed.
    pub async fn rotate_refresh(&self, rotation: Rotation) -> Result<RefreshRotation, StoreError> {
        let stopped = || StoreError::Unavailable("the writer task stopped".into());
        let (reply, answer) = oneshot::channel();
        self.tx.send(Msg::Rotate(rotation, reply)).map_err(|_| stopped())?;
        answer
            .await
            .map_err(|_| stopped())?
            .map_err(|e| StoreError::Unavailable(format!("group commit failed: {e}")))
    }

    /// Waits until everything queued so far is committed.
    pub async fn flush(&self) {
        let (tx, rx) = oneshot::channel();
        if self.tx.send(Msg::Flush(tx)).is_ok() {
            let _ = rx.await;
        }
    }
}
