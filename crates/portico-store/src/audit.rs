//! The audit log: append-only and hash-chained. Each record's hash covers its content and the
//! previous record's hash, so a changed or removed row breaks the chain.

use crate::{Result, Store, on_pool, on_read};
use aws_lc_rs::digest;
use serde::Serialize;

/// A security-relevant act, before it is appended.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct AuditEvent {
    pub at: i64,
    /// What happened: `login.succeeded`, `token.issued`, `grant.revoked`, …
    pub kind: String,
    /// Who did it: a user id, `client:<id>`, `cli`, `apply`, `system`.
    pub actor: String,
    pub product: Option<String>,
    pub tenant: Option<String>,
    pub ip: Option<String>,
    /// Details as JSON; never a secret.
    pub data: serde_json::Value,
}

impl AuditEvent {
    pub fn new(at: i64, kind: &str, actor: impl Into<String>) -> Self {
        Self {
            at,
            kind: kind.to_owned(),
            actor: actor.into(),
            product: None,
            tenant: None,
            ip: None,
            data: serde_json::Value::Null,
        }
    }
    pub fn product(mut self, product: impl Into<String>) -> Self {
        self.product = Some(product.into());
        self
    }
    pub fn tenant(mut self, tenant: Option<impl Into<String>>) -> Self {
        self.tenant = tenant.map(Into::into);
        self
    }
    pub fn ip(mut self, ip: Option<String>) -> Self {
        self.ip = ip;
        self
    }
    pub fn data(mut self, data: serde_json::Value) -> Self {
        self.data = data;
        self
    }
}

/// An appended record, as read back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditRecord {
    pub seq: i64,
    pub event: AuditEvent,
    pub prev_hash: String,
    pub hash: String,
}

/// The chain hash of one record: SHA-256 over the previous hash and the record's fields.
pub fn chain_hash(seq: i64, event: &AuditEvent, prev_hash: &str) -> String {
    let content = serde_json::json!([
        seq,
        prev_hash,
        event.at,
        event.kind,
        event.actor,
        event.product,
        event.tenant,
        event.ip,
        event.data.to_string()
    ]);
    let d = digest::digest(&digest::SHA256, content.to_string().as_bytes());
    d.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

/// Appends `events` inside an open transaction of either back end. Claims the chain head with an
/// `UPDATE … RETURNING` first, so concurrent writers (two nodes, the CLI) serialize on it.
macro_rules! append_in {
    ($tx:expr, $events:expr) => {{
        let events: &[$crate::audit::AuditEvent] = $events;
        if !events.is_empty() {
            let (last_seq, mut prev): (i64, String) = sqlx::query_as("UPDATE audit_head SET seq = seq + $1 WHERE id = 1 RETURNING seq - $1, hash")
                .bind(events.len() as i64)
                .fetch_one(&mut **$tx)
                .await?;
            let mut rows = Vec::with_capacity(events.len());
            for (i, e) in events.iter().enumerate() {
                let seq = last_seq + 1 + i as i64;
                let hash = $crate::audit::chain_hash(seq, e, &prev);
                rows.push((seq, e, std::mem::replace(&mut prev, hash.clone()), hash));
            }
            // One multi-row INSERT per chunk (well under both back ends' bind-parameter limits).
            for chunk in rows.chunks(512) {
                let mut q = sqlx::QueryBuilder::new("INSERT INTO audit_events (seq, at, kind, actor, product, tenant, ip, data, prev_hash, hash) ");
                q.push_values(chunk, |mut b, (seq, e, prev_hash, hash)| {
                    b.push_bind(*seq)
                        .push_bind(e.at)
                        .push_bind(e.kind.clone())
                        .push_bind(e.actor.clone())
                        .push_bind(e.product.clone())
                        .push_bind(e.tenant.clone())
                        .push_bind(e.ip.clone())
                        .push_bind(e.data.to_string())
                        .push_bind(prev_hash.clone())
                        .push_bind(hash.clone());
                });
                q.build().execute(&mut **$tx).await?;
            }
            sqlx::query("UPDATE audit_head SET hash = $1 WHERE id = 1")
                .bind(&prev)
                .execute(&mut **$tx)
                .await?;
        }
    }};
}
pub(crate) use append_in;

type Row = (i64, i64, String, String, Option<String>, Option<String>, Option<String>, String, String, String);

impl Store {
    /// Appends events in their own transaction (group commit: callers batch them).
    pub async fn append_audit(&self, events: &[AuditEvent]) -> Result<()> {
        on_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            append_in!(&mut tx, events);
            tx.commit().await?;
        });
        Ok(())
    }

    /// Records in order, from `after_seq` (exclusive), at most `limit`.
    pub async fn audit_records(&self, after_seq: i64, limit: i64) -> Result<Vec<AuditRecord>> {
        let rows: Vec<Row> = on_read!(self, pool => sqlx::query_as(
            "SELECT seq, at, kind, actor, product, tenant, ip, data, prev_hash, hash FROM audit_events
             WHERE seq > $1 ORDER BY seq LIMIT $2").bind(after_seq).bind(limit).fetch_all(pool).await)?;
        Ok(rows
            .into_iter()
            .map(|(seq, at, kind, actor, product, tenant, ip, data, prev_hash, hash)| AuditRecord {
                seq,
                event: AuditEvent {
                    at,
                    kind,
                    actor,
                    product,
                    tenant,
                    ip,
                    data: serde_json::from_str(&data).unwrap_or(serde_json::Value::String(data)),
                },
                prev_hash,
                hash,
            })
            .collect())
    }
}

/// What `verify_audit` found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AuditCheck {
    /// Every record links to the one before and hashes to what it says; the head names the last.
    Intact { records: i64, head: String },
    /// The first place the chain breaks, and how.
    Broken { seq: i64, reason: String },
}

impl Store {
    /// The chain head: the last record's sequence number and hash.
    pub async fn audit_head(&self) -> Result<(i64, String)> {
        Ok(on_read!(self, pool => sqlx::query_as("SELECT seq, hash FROM audit_head WHERE id = 1").fetch_one(pool).await)?)
    }

    /// Walks the whole audit log: sequence numbers without gaps from 1, each record's `prev_hash`
    /// the hash of the one before, each hash recomputed from the record, and the head naming the
    /// last record. A changed row fails its hash; a removed row leaves a gap, or (the last one) a
    /// head that names a record that is not there.
    pub async fn verify_audit(&self) -> Result<AuditCheck> {
        // The head first: records appended while walking are past it and not judged.
        let (head_seq, head_hash) = self.audit_head().await?;
        let (mut expected_seq, mut prev) = (1i64, String::new());
        loop {
            let batch = self.audit_records(expected_seq - 1, 1000).await?;
            // Nothing more up to the head (records removed, the head raised): the head check
            // below names it. Without this, a gap past the last record read would be read again
            // and again.
            if batch.first().is_none_or(|r| r.seq > head_seq) {
                break;
            }
            for r in batch.into_iter().take_while(|r| r.seq <= head_seq) {
                if r.seq != expected_seq {
                    return Ok(AuditCheck::Broken {
                        seq: expected_seq,
                        reason: format!("record {expected_seq} is missing (the next is {})", r.seq),
                    });
                }
                if r.prev_hash != prev {
                    return Ok(AuditCheck::Broken {
                        seq: r.seq,
                        reason: "its link to the record before does not match".into(),
                    });
                }
                if chain_hash(r.seq, &r.event, &r.prev_hash) != r.hash {
                    return Ok(AuditCheck::Broken {
                        seq: r.seq,
                        reason: "its content does not match its hash (the record was changed)".into(),
                    });
                }
                prev = r.hash;
                expected_seq += 1;
            }
            if expected_seq > head_seq {
                break;
            }
        }
        if expected_seq - 1 != head_seq || prev != head_hash {
            return Ok(AuditCheck::Broken {
                seq: expected_seq,
                reason: format!("the head names record {head_seq}, the log ends at {}", expected_seq - 1),
            });
        }
        Ok(AuditCheck::Intact {
            records: head_seq,
            head: head_hash,
        })
    }
}
