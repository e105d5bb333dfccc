//! The audit log: append-only and hash-chained. Each record's hash covers its content and the
//! previous record's hash, so a changed or removed row breaks the chain.
//!
//! The chain is keyed ([`Store::use_keys`]): each hash is an HMAC under a key derived from the
//! KEK (`h2:` …), so someone who can write to the database but does not hold the KEK cannot
//! rewrite a record and recompute the chain after it. A log begun before the key existed keeps its
//! plain SHA-256 records; where keying began is recorded once, under the key (the `audit_keyed_from`
//! mark, which also covers the last unkeyed record's hash), so that boundary can be neither moved
//! nor removed, and the unkeyed part can no longer be rewritten either: the first keyed record
//! names its hash.

use crate::tx::{Tx, on_tx};
use crate::{Result, Store, StoreError, on_read};
use aws_lc_rs::{digest, hmac};
use serde::Serialize;
use sqlx::QueryBuilder;

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

/// The key of the audit chain.
#[derive(Clone)]
pub struct ChainKey(hmac::Key);

impl ChainKey {
    pub fn new(raw: &[u8; 32]) -> Self {
        Self(hmac::Key::new(hmac::HMAC_SHA256, raw))
    }
}

impl std::fmt::Debug for ChainKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ChainKey([redacted])")
    }
}

/// The prefix of a keyed chain hash.
const KEYED: &str = "h2:";

/// A record's hash as this store writes it: keyed when it has the key.
pub(crate) fn record_hash(key: Option<&ChainKey>, seq: i64, event: &AuditEvent, prev_hash: &str) -> String {
    record_hash_of(key, seq, event, &event.data.to_string(), prev_hash)
}

/// [`record_hash`] with the event's `data` already serialized (the append serializes it once, for
/// the hash and the row).
fn record_hash_of(key: Option<&ChainKey>, seq: i64, event: &AuditEvent, data: &str, prev_hash: &str) -> String {
    let content = chain_content(seq, event, data, prev_hash);
    match key {
        Some(k) => {
            let tag = hmac::sign(&k.0, content.as_bytes());
            let mut out = String::with_capacity(KEYED.len() + 64);
            out.push_str(KEYED);
            push_hex(&mut out, tag.as_ref());
            out
        }
        None => hex(digest::digest(&digest::SHA256, content.as_bytes()).as_ref()),
    }
}

/// The unkeyed chain hash of one record: SHA-256 over the previous hash and the record's fields
/// (what anyone can recompute; records before the chain key, and tests).
pub fn chain_hash(seq: i64, event: &AuditEvent, prev_hash: &str) -> String {
    record_hash_of(None, seq, event, &event.data.to_string(), prev_hash)
}

/// What a record's hash covers: the JSON array `[seq, prev_hash, at, kind, actor, product, tenant,
/// ip, data]`, `data` as a JSON string of its serialization. Stored chains were hashed over exactly
/// these bytes (written through `serde_json::Value` before), so the encoding must never change.
fn chain_content(seq: i64, event: &AuditEvent, data: &str, prev_hash: &str) -> String {
    let fields = (
        seq,
        prev_hash,
        event.at,
        &event.kind,
        &event.actor,
        &event.product,
        &event.tenant,
        &event.ip,
        data,
    );
    serde_json::to_string(&fields).expect("strings and numbers serialize")
}

impl Tx<'_> {
    /// Inserts a `meta` row that is not there yet.
    async fn set_meta(&mut self, key: &str, value: &str) -> Result<()> {
        on_tx!(self, t => sqlx::query("INSERT INTO meta (key, value) VALUES ($1, $2)").bind(key).bind(value).execute(&mut **t).await.map(|r| r.rows_affected()))?;
        Ok(())
    }

    /// Appends the buffered events to the chain, inside this transaction. Claims the chain head
    /// with an `UPDATE … RETURNING` first, so concurrent writers (two nodes, the CLI) serialize on it.
    pub(crate) async fn append_audit(&mut self) -> Result<()> {
        let events = std::mem::take(&mut self.audit);
        if events.is_empty() {
            return Ok(());
        }
        let key = self.store.audit_key.get();
        on_tx!(self, t => {
            let mut q = QueryBuilder::new("");
            push_claim_head(&mut q, events.len());
            let (last_seq, prev): (i64, String) = q.build_query_as().fetch_one(&mut **t).await?;
            let records = chain(key, last_seq, prev, &events);
            for chunk in records.chunks(RECORDS_PER_INSERT) {
                let mut q = QueryBuilder::new("");
                push_records(&mut q, chunk);
                q.build().persistent(crate::keep_prepared(chunk.len())).execute(&mut **t).await?;
            }
            let mut q = QueryBuilder::new("");
            push_set_head(&mut q, records.last().map_or("", |r| r.hash.as_str()));
            q.build().execute(&mut **t).await?;
        });
        Ok(())
    }
}

/// Records per multi-row `INSERT` (ten values each: well under both back ends' bind-parameter
/// limits).
pub(crate) const RECORDS_PER_INSERT: usize = 512;

/// `UPDATE audit_head … RETURNING`: claims the next `n` sequence numbers and answers the one before
/// them and the head's hash. Concurrent writers serialize on this row.
pub(crate) fn push_claim_head<'a, DB: sqlx::Database>(q: &mut QueryBuilder<'a, DB>, n: usize)
where
    i64: sqlx::Encode<'a, DB> + sqlx::Type<DB>,
{
    let n = n as i64;
    q.push("UPDATE audit_head SET seq = seq + ").push_bind(n);
    q.push(" WHERE id = 1 RETURNING seq - ").push_bind(n).push(", hash");
}

/// An event as the record it becomes: numbered, its data serialized once, chained to the one before.
pub(crate) struct Chained<'e> {
    seq: i64,
    event: &'e AuditEvent,
    data: String,
    prev_hash: String,
    pub(crate) hash: String,
}

/// `events` as the records that follow the head (`last_seq`, `prev`), in order.
pub(crate) fn chain<'e>(key: Option<&ChainKey>, last_seq: i64, mut prev: String, events: &'e [AuditEvent]) -> Vec<Chained<'e>> {
    let mut records = Vec::with_capacity(events.len());
    for (i, event) in events.iter().enumerate() {
        let seq = last_seq + 1 + i as i64;
        let data = event.data.to_string();
        let hash = record_hash_of(key, seq, event, &data, &prev);
        let prev_hash = std::mem::replace(&mut prev, hash.clone());
        records.push(Chained {
            seq,
            event,
            data,
            prev_hash,
            hash,
        });
    }
    records
}

/// One multi-row `INSERT` of `records` (at most [`RECORDS_PER_INSERT`]).
pub(crate) fn push_records<'a, DB: sqlx::Database>(q: &mut QueryBuilder<'a, DB>, records: &'a [Chained<'_>])
where
    i64: sqlx::Encode<'a, DB> + sqlx::Type<DB>,
    &'a str: sqlx::Encode<'a, DB> + sqlx::Type<DB>,
    Option<&'a str>: sqlx::Encode<'a, DB> + sqlx::Type<DB>,
{
    q.push("INSERT INTO audit_events (seq, at, kind, actor, product, tenant, ip, data, prev_hash, hash) ");
    q.push_values(records, |mut b, r| {
        let e = r.event;
        b.push_bind(r.seq)
            .push_bind(e.at)
            .push_bind(e.kind.as_str())
            .push_bind(e.actor.as_str())
            .push_bind(e.product.as_deref())
            .push_bind(e.tenant.as_deref())
            .push_bind(e.ip.as_deref())
            .push_bind(r.data.as_str())
            .push_bind(r.prev_hash.as_str())
            .push_bind(r.hash.as_str());
    });
}

/// `UPDATE audit_head SET hash`: the last appended record's hash becomes the head's.
pub(crate) fn push_set_head<'a, DB: sqlx::Database>(q: &mut QueryBuilder<'a, DB>, hash: &'a str)
where
    &'a str: sqlx::Encode<'a, DB> + sqlx::Type<DB>,
{
    q.push("UPDATE audit_head SET hash = ").push_bind(hash).push(" WHERE id = 1");
}

type Row = (i64, i64, String, String, Option<String>, Option<String>, Option<String>, String, String, String);

/// Whether [`Store::use_keys`] may record keys and mark the chain, or only check them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Keying {
    Record,
    ReadOnly,
}

/// The mark of where keying began: the first keyed record's number and the hash before it.
fn keyed_mark(key: &ChainKey, from_seq: i64, prev_hash: &str) -> String {
    let tag = hmac::sign(&key.0, format!("portico audit keyed from {from_seq} after {prev_hash}").as_bytes());
    format!("{from_seq}:{}", hex(tag.as_ref()))
}

fn hex(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 2);
    push_hex(&mut out, bytes);
    out
}

fn push_hex(out: &mut String, bytes: &[u8]) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for b in bytes {
        out.push(DIGITS[usize::from(b >> 4)] as char);
        out.push(DIGITS[usize::from(b & 0xf)] as char);
    }
}

fn ct_eq(a: &str, b: &str) -> bool {
    bool::from(subtle::ConstantTimeEq::ct_eq(a.as_bytes(), b.as_bytes()))
}

impl Store {
    /// Gives the store the deployment's keys, once, as it is opened: `kek_check` is the KEK's
    /// check value, `chain_key` the audit chain's key (both derived from the KEK).
    ///
    /// The first process with a key records its check value; a process with another key is
    /// refused ([`StoreError::WrongKey`]) before it writes anything. The first to key the audit
    /// chain marks where keying begins and appends an `audit.keyed` record, the first keyed one.
    /// Both are written in one transaction, so a store with a check value and no mark has had its
    /// mark removed: it is not marked again (verification names it). Serialised on the chain head,
    /// so two processes starting at once mark it once. With `Keying::ReadOnly` (`audit verify`)
    /// nothing is written: the key is checked against a recorded check value, if there is one.
    pub async fn use_keys(&self, kek_check: &str, chain_key: &[u8; 32], keying: Keying, now: i64) -> Result<()> {
        let key = ChainKey::new(chain_key);
        if keying == Keying::ReadOnly {
            let stored: Option<String> =
                on_read!(self, pool => sqlx::query_scalar("SELECT value FROM meta WHERE key = 'kek_check'").fetch_optional(pool).await)?;
            if stored.is_some_and(|stored| !ct_eq(&stored, kek_check)) {
                return Err(StoreError::WrongKey);
            }
            let _ = self.audit_key.set(key);
            return Ok(());
        }
        let mut tx = self.write().await?;
        let (head_seq, head_hash, stored, mark) = on_tx!(tx, t => {
            let (head_seq, head_hash): (i64, String) =
                sqlx::query_as("UPDATE audit_head SET seq = seq WHERE id = 1 RETURNING seq, hash").fetch_one(&mut **t).await?;
            let stored: Option<String> = sqlx::query_scalar("SELECT value FROM meta WHERE key = 'kek_check'").fetch_optional(&mut **t).await?;
            let mark: Option<String> = sqlx::query_scalar("SELECT value FROM meta WHERE key = 'audit_keyed_from'").fetch_optional(&mut **t).await?;
            (head_seq, head_hash, stored, mark)
        });
        let first = match stored {
            Some(stored) if !ct_eq(&stored, kek_check) => return Err(StoreError::WrongKey),
            Some(_) => false,
            None => {
                tx.set_meta("kek_check", kek_check).await?;
                true
            }
        };
        // Set only once the key is known to be the deployment's.
        let _ = self.audit_key.set(key.clone());
        if mark.is_none() && first {
            tx.set_meta("audit_keyed_from", &keyed_mark(&key, head_seq + 1, &head_hash)).await?;
            tx.audit(AuditEvent::new(now, "audit.keyed", "system").data(serde_json::json!({"unkeyed_records": head_seq})));
        } else if mark.is_none() {
            tracing::error!("the audit log's mark of where keying began was removed: run portico audit verify");
        }
        tx.commit().await?;
        Ok(())
    }

    /// Whether the store has its keys ([`Store::use_keys`]).
    pub fn is_keyed(&self) -> bool {
        self.audit_key.get().is_some()
    }

    /// Whether the store records a KEK check value (it has been opened with a key before).
    pub async fn has_kek_check(&self) -> Result<bool> {
        let stored: Option<String> = on_read!(self, pool => sqlx::query_scalar("SELECT value FROM meta WHERE key = 'kek_check'").fetch_optional(pool).await)?;
        Ok(stored.is_some())
    }

    /// Appends events in their own transaction (group commit: callers batch them).
    pub async fn append_audit(&self, events: &[AuditEvent]) -> Result<()> {
        let mut tx = self.write().await?;
        for e in events {
            tx.audit(e.clone());
        }
        tx.commit().await?;
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

mod verify;
pub use verify::AuditCheck;
