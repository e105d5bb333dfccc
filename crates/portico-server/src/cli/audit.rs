//! `portico audit verify [--head SEQ:HASH]`.

use crate::config::Config;
use crate::{NewKey, open_store};

/// Proves the audit log unbroken, and (`head`) that it still holds a head saved outside the database.
pub(super) async fn verify(cfg: &Config, head: Option<&str>) -> anyhow::Result<()> {
    // Reads only: records no key, mark or check value, and makes no key file.
    let (store, _) = open_store(cfg, NewKey::Never).await?;
    let saved = saved_head(head)?;
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
            Ok(())
        }
        portico_store::AuditCheck::Broken { seq, reason } => anyhow::bail!("audit log broken at record {seq}: {reason}"),
    }
}

/// `--head SEQ:HASH`, as `audit verify` prints it.
fn saved_head(head: Option<&str>) -> anyhow::Result<Option<(i64, String)>> {
    match head.map(|h| h.split_once(':').map(|(n, hash)| (n.parse::<i64>(), hash))) {
        None => Ok(None),
        Some(Some((Ok(n), hash))) if n >= 1 && !hash.is_empty() => Ok(Some((n, hash.to_owned()))),
        Some(_) => anyhow::bail!("--head: {:?} is not a head like 42:h2:…, as audit verify prints it", head.unwrap_or_default()),
    }
}
