//! Verifying the audit chain: every record linked to the one before and hashing to what it says,
//! keyed from where the mark says keying began, the head naming the last.

use super::{AuditRecord, ChainKey, KEYED, chain_hash, ct_eq, keyed_mark, record_hash};
use crate::{Result, Store, on_read};

/// What `verify_audit` found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AuditCheck {
    /// Every record links to the one before and hashes to what it says; the head names the last.
    /// `keyed_from` is the first keyed record (those before it date from before the key).
    Intact { records: i64, head: String, keyed_from: Option<i64> },
    /// The first place the chain breaks, and how.
    Broken { seq: i64, reason: String },
}

/// Where the chain breaks: the record, and how.
type Break = (i64, String);

/// What a walk of the chain judges each record by.
struct Judge<'a> {
    key: Option<&'a ChainKey>,
    /// The `audit_keyed_from` mark as stored.
    mark: Option<String>,
    /// The first keyed record the mark names.
    keyed_from: Option<i64>,
}

impl Judge<'_> {
    /// Whether the mark matches the log at its boundary: its number, and the hash before it.
    fn mark_holds(&self, from: i64, prev: &str) -> bool {
        match (self.key, &self.mark) {
            (Some(k), Some(m)) => ct_eq(&keyed_mark(k, from, prev), m),
            _ => false,
        }
    }

    /// Judges record `r`, expected to be number `seq`, after the hash `prev`.
    fn record(&self, r: &AuditRecord, seq: i64, prev: &str) -> std::result::Result<(), Break> {
        if r.seq != seq {
            return Err((seq, format!("record {seq} is missing (the next is {})", r.seq)));
        }
        if r.prev_hash != prev {
            return Err((r.seq, "its link to the record before does not match".into()));
        }
        if self.keyed_from == Some(r.seq) && !self.mark_holds(r.seq, prev) {
            return Err((
                r.seq,
                "the mark of where keying began does not match the log (it, or a record before it, was changed)".into(),
            ));
        }
        let should_be_keyed = self.keyed_from.is_some_and(|from| r.seq >= from);
        let expected = match (r.hash.starts_with(KEYED), should_be_keyed) {
            (false, true) => {
                let from = self.keyed_from.unwrap_or(1);
                return Err((
                    r.seq,
                    format!("it is not keyed, though the chain is keyed from record {from} (it was written or rewritten without the key)"),
                ));
            }
            (true, false) => {
                return Err((
                    r.seq,
                    "it is keyed, but nothing marks keying as begun before it (the mark was removed or moved)".into(),
                ));
            }
            (true, true) => record_hash(self.key, r.seq, &r.event, &r.prev_hash),
            (false, false) => chain_hash(r.seq, &r.event, &r.prev_hash),
        };
        if !ct_eq(&expected, &r.hash) {
            return Err((r.seq, "its content does not match its hash (the record was changed)".into()));
        }
        Ok(())
    }
}

impl Store {
    /// The chain head: the last record's sequence number and hash.
    pub async fn audit_head(&self) -> Result<(i64, String)> {
        Ok(on_read!(self, pool => sqlx::query_as("SELECT seq, hash FROM audit_head WHERE id = 1").fetch_one(pool).await)?)
    }

    /// Walks the chain up to the head read first (records appended meanwhile are not judged).
    pub async fn verify_audit(&self) -> Result<AuditCheck> {
        let (head_seq, head_hash) = self.audit_head().await?;
        let judge = match self.judge().await? {
            Ok(j) => j,
            Err((seq, reason)) => return Ok(AuditCheck::Broken { seq, reason }),
        };
        match self.walk(&judge, head_seq, &head_hash).await? {
            Ok(()) => Ok(AuditCheck::Intact {
                records: head_seq,
                head: head_hash,
                keyed_from: judge.keyed_from,
            }),
            Err((seq, reason)) => Ok(AuditCheck::Broken { seq, reason }),
        }
    }

    /// The mark of where keying began, checked against the key and the check value.
    async fn judge(&self) -> Result<std::result::Result<Judge<'_>, Break>> {
        let mark: Option<String> =
            on_read!(self, pool => sqlx::query_scalar("SELECT value FROM meta WHERE key = 'audit_keyed_from'").fetch_optional(pool).await)?;
        let key = self.audit_key.get();
        let keyed_from = match &mark {
            // The check value and the mark are written together: one without the other was removed.
            None if self.has_kek_check().await? => {
                let why = "the mark of where keying began was removed (the store was keyed: its check value is there)";
                return Ok(Err((1, why.into())));
            }
            None => None,
            Some(m) => {
                let Some(from) = m.split_once(':').and_then(|(n, _)| n.parse::<i64>().ok()).filter(|n| *n >= 1) else {
                    return Ok(Err((1, "the mark of where keying began is unreadable".into())));
                };
                if key.is_none() {
                    let why = format!("the chain is keyed from record {from}: verify it with the deployment's key-encryption key");
                    return Ok(Err((from, why)));
                }
                Some(from)
            }
        };
        Ok(Ok(Judge { key, mark, keyed_from }))
    }

    /// Judges every record up to the head, in batches, then the head itself.
    async fn walk(&self, judge: &Judge<'_>, head_seq: i64, head_hash: &str) -> Result<std::result::Result<(), Break>> {
        let (mut expected_seq, mut prev) = (1i64, String::new());
        while expected_seq <= head_seq {
            let batch = self.audit_records(expected_seq - 1, 1000).await?;
            // Nothing more up to the head (records removed, the head raised): the head check
            // below names it. Without this, a gap past the last record read would be read again
            // and again.
            if batch.first().is_none_or(|r| r.seq > head_seq) {
                break;
            }
            for r in batch.into_iter().take_while(|r| r.seq <= head_seq) {
                if let Err(b) = judge.record(&r, expected_seq, &prev) {
                    return Ok(Err(b));
                }
                prev = r.hash;
                expected_seq += 1;
            }
        }
        if expected_seq - 1 != head_seq || prev != head_hash {
            return Ok(Err((
                expected_seq,
                format!("the head names record {head_seq}, the log ends at {}", expected_seq - 1),
            )));
        }
        // Keying began after the last record judged: the mark must name the record after it.
        if let Some(from) = judge.keyed_from.filter(|from| *from > head_seq)
            && !judge.mark_holds(head_seq + 1, head_hash)
        {
            return Ok(Err((from, "the mark of where keying began does not match the log (it was moved)".into())));
        }
        Ok(Ok(()))
    }
}
