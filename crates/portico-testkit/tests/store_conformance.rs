//! The store's conformance suite: every capability the protocol relies on, called directly, on
//! SQLite and on PostgreSQL alike. Each case states the promise the protocol builds on.

use crate::*;
use portico_model::{FamilyId, Grant, GrantScope, GrantStatus, Grantee, ProductSlug, UserId, UserStatus};
use portico_store::{AuditEvent, CodeConsumption, Family, NewSsoSession, RefreshRotation, Rotation, Store, chain_hash};

fn family(id: &str, user: &UserId) -> Family {
    Family {
        id: FamilyId::new(id),
        subject: user.clone(),
        client_id: portico_model::ClientId::new("crm-web"),
        product: ProductSlug::new("crm"),
        tenant: None,
        sid: None,
        created_at: portico_testkit::now(),
        revoked_at: None,
        origin: None,
        pinned: false,
    }
}

async fn ada(store: &Store) -> UserId {
    store.user_by_email("ada@example.test").await.expect("read").expect("ada").0.id
}

/// A password session of `user` for an hour (two at most), its cookie hashing to `token_hash`.
fn sso_session(id: &str, token_hash: &str, user: &UserId, now: i64) -> NewSsoSession {
    NewSsoSession {
        id: id.into(),
        token_hash: token_hash.into(),
        user_id: user.clone(),
        auth_time: now,
        amr: vec!["pwd".into()],
        acr: "urn:portico:acr:pwd".into(),
        idle_expires_at: now + 3600,
        expires_at: now + 7200,
        user_agent: "test".into(),
        ip: "127.0.0.1".into(),
    }
}

fn rotation(old: &str, family: &str, new: &str) -> Rotation {
    let now = portico_testkit::now();
    Rotation {
        old_hash: old.into(),
        family_id: FamilyId::new(family),
        new_hash: new.into(),
        new_data: "{}".into(),
        now,
        new_expires_at: now + 3600,
    }
}

async fn a_code_is_consumed_exactly_once(s: &TestServer) {
    let store = s.store();
    let user = ada(store).await;
    let now = portico_testkit::now();
    store
        .issue_code("code-1", &family("fam-c1", &user), "{\"x\":1}", now + 60)
        .await
        .expect("issue");
    match committed!(store, t => t.consume_code("code-1", now)).await.expect("consume") {
        CodeConsumption::Consumed { family, data, expires_at } => {
            assert_eq!((family.as_str(), data.as_str(), expires_at), ("fam-c1", "{\"x\":1}", now + 60));
        }
        other => panic!("first presentation: {other:?}"),
    }
    assert_eq!(
        committed!(store, t => t.consume_code("code-1", now)).await.expect("consume"),
        CodeConsumption::AlreadyConsumed {
            family: FamilyId::new("fam-c1")
        }
    );
    assert_eq!(
        committed!(store, t => t.consume_code("no-such-code", now)).await.expect("consume"),
        CodeConsumption::NotFound
    );

    // Eight concurrent presentations of one fresh code: exactly one wins.
    store.issue_code("code-2", &family("fam-c2", &user), "{}", now + 60).await.expect("issue");
    let tries = (0..8).map(|_| {
        let store = store.clone();
        tokio::spawn(async move { committed!(store, t => t.consume_code("code-2", now)).await.expect("consume") })
    });
    let outcomes = futures_join(tries).await;
    let won = outcomes.iter().filter(|o| matches!(o, CodeConsumption::Consumed { .. })).count();
    assert_eq!(won, 1, "{outcomes:?}");
}
both_stores!(a_code_is_consumed_exactly_once);

async fn futures_join<T: Send + 'static>(tasks: impl Iterator<Item = tokio::task::JoinHandle<T>>) -> Vec<T> {
    let mut out = Vec::new();
    for t in tasks.collect::<Vec<_>>() {
        out.push(t.await.expect("task"));
    }
    out
}

async fn a_refresh_token_rotates_exactly_once(s: &TestServer) {
    let store = s.store();
    let user = ada(store).await;
    let now = portico_testkit::now();
    store.insert_family(&family("fam-r", &user)).await.expect("family");
    store.insert_refresh("rt-0", "fam-r", "{}", now, now + 3600).await.expect("insert");

    // The same token twice in one batch, and an unknown one: only the first presentation rotates.
    let batch = [
        rotation("rt-0", "fam-r", "rt-1a"),
        rotation("rt-0", "fam-r", "rt-1b"),
        rotation("rt-unknown", "fam-r", "rt-x"),
    ];
    let events = [AuditEvent::new(now, "test.rotated", "conformance")];
    let mut tx = store.write().await.expect("write");
    let out = tx.rotate_refresh_batch(&batch).await.expect("rotate");
    for e in events {
        tx.audit(e);
    }
    tx.commit().await.expect("commit");
    assert_eq!(out, [RefreshRotation::Rotated, RefreshRotation::Reused, RefreshRotation::Reused]);
    // Only the winner's successor exists; the spent token is marked rotated.
    assert!(store.refresh_context("rt-1a").await.expect("read").is_some());
    assert!(store.refresh_context("rt-1b").await.expect("read").is_none());
    assert!(store.refresh_context("rt-x").await.expect("read").is_none());
    let spent = store.refresh_context("rt-0").await.expect("read").expect("row");
    assert!(spent.token.rotated_at.is_some());
    // A later batch presenting the spent token again is reuse.
    let again = committed!(store, t => t.rotate_refresh_batch(&[rotation("rt-0", "fam-r", "rt-2")]))
        .await
        .expect("rotate");
    assert_eq!(again, [RefreshRotation::Reused]);
    // The audit events of the batch were committed with it.
    let records = store.audit_records(0, 10_000).await.expect("audit");
    assert!(records.iter().any(|r| r.event.kind == "test.rotated"));
}
both_stores!(a_refresh_token_rotates_exactly_once);

/// The group commit (the writer's path: two trips on SQLite) keeps the same promises: one
/// presentation of a token rotates, the batch's events are chained; and a batch that fails
/// part-way leaves nothing — the token unspent, the audit head where it was — and the next batch
/// commits.
async fn a_group_commit_is_all_or_nothing(s: &TestServer) {
    let store = s.store();
    s.running.provider.writer.flush().await;
    let user = ada(store).await;
    let now = portico_testkit::now();
    store.insert_family(&family("fam-g", &user)).await.expect("family");
    store.insert_refresh("rt-g0", "fam-g", "{}", now, now + 3600).await.expect("insert");
    store.insert_refresh("rt-taken", "fam-g", "{}", now, now + 3600).await.expect("insert");
    let event = |kind: &str| AuditEvent::new(now, kind, "conformance");

    // The successor's hash is already stored: the second trip's INSERT fails.
    let head = store.audit_head().await.expect("head");
    let failed = store.commit_group(&[rotation("rt-g0", "fam-g", "rt-taken")], &[event("test.lost")]).await;
    assert!(failed.is_err(), "a conflicting successor fails the batch");
    assert!(
        store.refresh_context("rt-g0").await.expect("read").expect("row").token.rotated_at.is_none(),
        "not spent"
    );
    assert_eq!(store.audit_head().await.expect("head"), head, "nothing appended");

    let out = store
        .commit_group(
            &[rotation("rt-g0", "fam-g", "rt-g1"), rotation("rt-g0", "fam-g", "rt-g1b")],
            &[event("test.group")],
        )
        .await
        .expect("the next batch commits");
    assert_eq!(out, [RefreshRotation::Rotated, RefreshRotation::Reused]);
    assert!(store.refresh_context("rt-g1").await.expect("read").is_some());
    assert!(store.refresh_context("rt-g1b").await.expect("read").is_none());
    assert!(store.commit_group(&[], &[event("test.events-only")]).await.expect("events only").is_empty());
    assert_eq!(
        store.commit_group(&[rotation("rt-g1", "fam-g", "rt-g2")], &[]).await.expect("rotations only"),
        [RefreshRotation::Rotated]
    );
    let records = store.audit_records(0, 10_000).await.expect("audit");
    assert!(!records.iter().any(|r| r.event.kind == "test.lost"));
    assert!(records.iter().any(|r| r.event.kind == "test.group") && records.iter().any(|r| r.event.kind == "test.events-only"));
    assert!(matches!(store.verify_audit().await.unwrap(), portico_store::AuditCheck::Intact { .. }));
}
both_stores!(a_group_commit_is_all_or_nothing);

async fn refresh_context_carries_user_and_grants(s: &TestServer) {
    let store = s.store();
    let user = ada(store).await;
    let now = portico_testkit::now();
    store.insert_family(&family("fam-ctx", &user)).await.expect("family");
    store
        .insert_refresh("rt-ctx", "fam-ctx", "{\"scope\":\"openid\"}", now, now + 60)
        .await
        .expect("insert");
    // Grants that must not come along: ada's for another product, and bob's for this one.
    let bob = store.user_by_email("bob@example.test").await.expect("read").expect("bob").0.id;
    for (grantee, product) in [(user.clone(), "reports"), (bob, "crm")] {
        let g = Grant {
            grantee: Grantee::User(grantee),
            product: ProductSlug::new(product),
            scope: GrantScope::NoTenant,
            roles: vec!["analyst".into()],
            status: GrantStatus::Active,
            granted_by: "test".into(),
            granted_at: now,
            expires_at: None,
        };
        let mut tx = store.write().await.unwrap();
        tx.put_grant(&g).await.expect("grant");
        tx.commit().await.unwrap();
    }
    let ctx = store.refresh_context("rt-ctx").await.expect("read").expect("row");
    assert_eq!(ctx.token.family.id.as_str(), "fam-ctx");
    assert_eq!(ctx.token.family.client_id.as_str(), "crm-web");
    assert_eq!(ctx.token.data, "{\"scope\":\"openid\"}");
    assert_eq!(ctx.token.expires_at, now + 60);
    assert_eq!(ctx.user.expect("user").id, user);
    // Only the family user's grants for the family's product (ada holds crm:editor in the suite).
    assert_eq!(ctx.grants.len(), 1);
    assert_eq!(ctx.grants[0].product.as_str(), "crm");
    assert_eq!(ctx.grants[0].roles, ["editor"]);
}
both_stores!(refresh_context_carries_user_and_grants);

async fn revoking_a_family_kills_its_tokens(s: &TestServer) {
    let store = s.store();
    let user = ada(store).await;
    let now = portico_testkit::now();
    store.insert_family(&family("fam-v", &user)).await.expect("family");
    assert!(store.access_token_live("jti-1", Some("fam-v")).await.expect("live"));
    assert!(
        committed!(store, t => t.revoke_family(&FamilyId::new("fam-v"), "test", now))
            .await
            .expect("revoke")
    );
    assert!(
        !committed!(store, t => t.revoke_family(&FamilyId::new("fam-v"), "test", now))
            .await
            .expect("revoke"),
        "a second revoke changes nothing"
    );
    assert!(!store.access_token_live("jti-1", Some("fam-v")).await.expect("live"));
    // A single revoked access token, outside any family.
    assert!(store.access_token_live("jti-2", None).await.expect("live"));
    committed!(store, t => t.revoke_jti("jti-2", now + 600)).await.expect("revoke jti");
    assert!(!store.access_token_live("jti-2", None).await.expect("live"));
}
both_stores!(revoking_a_family_kills_its_tokens);

async fn disabling_a_user_ends_sessions_and_families(s: &TestServer) {
    let store = s.store();
    let user = ada(store).await;
    let now = portico_testkit::now();
    let session = sso_session("sso-1", "cookie-hash", &user, now);
    committed!(store, t => t.create_sso_session(&session, now)).await.expect("session");
    store.insert_family(&family("fam-d", &user)).await.expect("family");
    assert!(store.live_sso_session("cookie-hash", now, now + 3600).await.expect("read").is_some());

    assert!(
        committed!(store, t => t.set_user_status(&user, UserStatus::Disabled, now, &|_| false))
            .await
            .expect("disable")
    );
    assert!(store.live_sso_session("cookie-hash", now, now + 3600).await.expect("read").is_none());
    assert!(!store.access_token_live("jti", Some("fam-d")).await.expect("live"));
    assert!(
        !store.user_by_id(&user).await.expect("read").expect("still there").is_active(),
        "disabled, not deleted"
    );
    // Enabling again does not bring the ended session back.
    assert!(
        committed!(store, t => t.set_user_status(&user, UserStatus::Active, now, &|_| false))
            .await
            .expect("enable")
    );
    assert!(store.live_sso_session("cookie-hash", now, now + 3600).await.expect("read").is_none());
}
both_stores!(disabling_a_user_ends_sessions_and_families);

async fn the_audit_log_is_one_unbroken_chain(s: &TestServer) {
    let store = s.store();
    let now = portico_testkit::now();
    let events: Vec<AuditEvent> = (0..700).map(|i| AuditEvent::new(now, "test.event", format!("actor-{i}"))).collect();
    // Two appends racing each other still make one chain.
    let (a, b) = tokio::join!(store.append_audit(&events[..350]), store.append_audit(&events[350..]));
    a.expect("append");
    b.expect("append");
    let records = store.audit_records(0, 100_000).await.expect("read");
    assert!(records.len() >= 700);
    for pair in records.windows(2) {
        assert_eq!(pair[1].seq, pair[0].seq + 1, "no gaps");
        assert_eq!(pair[1].prev_hash, pair[0].hash, "each record names its predecessor");
    }
    // Keyed under the KEK: what anyone could recompute (plain SHA-256) is not what is stored.
    for r in &records {
        assert!(r.hash.starts_with("h2:"), "record {} is keyed", r.seq);
        assert_ne!(r.hash, chain_hash(r.seq, &r.event, &r.prev_hash), "record {}", r.seq);
    }
    assert!(matches!(store.verify_audit().await.unwrap(), portico_store::AuditCheck::Intact { .. }));
}
both_stores!(the_audit_log_is_one_unbroken_chain);

async fn a_client_token_lives_exactly_while_its_grant_is_active_and_it_is_not_revoked(s: &TestServer) {
    let store = s.store();
    // SUITE grants reports-web the `service` role on reports, without expiry.
    let client = Grantee::Client(portico_model::ClientId::new("reports-web"));
    let reports = ProductSlug::new("reports");
    let now = portico_testkit::now();
    assert_eq!(
        store.client_token_grant("jti-1", &client, &reports, None, now).await.unwrap(),
        Some(vec!["service".to_owned()])
    );
    assert!(
        store
            .client_token_grant("jti-1", &client, &ProductSlug::new("crm"), None, now)
            .await
            .unwrap()
            .is_none(),
        "no grant on crm"
    );
    let until = now + 100;
    let expiring = Grant {
        grantee: client.clone(),
        product: reports.clone(),
        scope: GrantScope::NoTenant,
        roles: vec!["service".into()],
        status: GrantStatus::Active,
        granted_by: "test".into(),
        granted_at: now,
        expires_at: Some(until),
    };
    let mut tx = store.write().await.unwrap();
    tx.put_grant(&expiring).await.unwrap();
    tx.commit().await.unwrap();
    assert!(store.client_token_grant("jti-1", &client, &reports, None, until - 1).await.unwrap().is_some());
    assert!(
        store.client_token_grant("jti-1", &client, &reports, None, until).await.unwrap().is_none(),
        "expired at its instant"
    );
    committed!(store, t => t.revoke_jti("jti-2", now + 600)).await.unwrap();
    assert!(
        store.client_token_grant("jti-2", &client, &reports, None, now).await.unwrap().is_none(),
        "a revoked jti"
    );
    assert!(
        committed!(store, t => t.revoke_grant(&client, &reports, &GrantScope::NoTenant, "test", now, &|_| false))
            .await
            .unwrap()
    );
    assert!(
        store.client_token_grant("jti-1", &client, &reports, None, now).await.unwrap().is_none(),
        "a revoked grant"
    );
}
both_stores!(a_client_token_lives_exactly_while_its_grant_is_active_and_it_is_not_revoked);

/// Runs one SQL statement on the test server's database, behind the store's back: a tamperer.
pub async fn behind_the_back(s: &TestServer, sql: &str) {
    use sqlx::Connection;
    match &s.config.database_url {
        Some(url) => {
            let mut c = sqlx::PgConnection::connect(url).await.unwrap();
            sqlx::query(sql).execute(&mut c).await.unwrap();
        }
        None => {
            let path = s.config.data_dir.join("portico.db");
            let mut c = sqlx::SqliteConnection::connect(&format!("sqlite://{}", path.display())).await.unwrap();
            sqlx::query(sql).execute(&mut c).await.unwrap();
        }
    }
}

async fn audit_verification_finds_a_changed_or_removed_record(s: &TestServer) {
    use portico_store::AuditCheck;
    let store = s.store();
    let now = portico_testkit::now();
    let events: Vec<AuditEvent> = (0..30).map(|i| AuditEvent::new(now, "test.event", format!("actor-{i}"))).collect();
    store.append_audit(&events).await.unwrap();
    s.running.provider.writer.flush().await;
    let (head, _) = store.audit_head().await.unwrap();
    let intact = || async { matches!(store.verify_audit().await.unwrap(), AuditCheck::Intact { records, .. } if records == head) };
    assert!(intact().await);
    let broken = || async {
        match store.verify_audit().await.unwrap() {
            AuditCheck::Broken { seq, reason } => (seq, reason),
            AuditCheck::Intact { .. } => panic!("the tampering went unnoticed"),
        }
    };
    // One of the thirty test events just appended (no product, tenant or address).
    let middle = store.audit_records(head - 16, 1).await.unwrap().remove(0);
    assert_eq!(middle.event.kind, "test.event");
    let q = |v: &str| format!("'{}'", v.replace('\'', "''"));
    let restore = format!(
        "INSERT INTO audit_events (seq, at, kind, actor, product, tenant, ip, data, prev_hash, hash) VALUES ({}, {}, {}, {}, NULL, NULL, NULL, {}, {}, {})",
        middle.seq,
        middle.event.at,
        q(&middle.event.kind),
        q(&middle.event.actor),
        q(&middle.event.data.to_string()),
        q(&middle.prev_hash),
        q(&middle.hash)
    );

    // One field of one record changed: that record is named.
    behind_the_back(s, &format!("UPDATE audit_events SET actor = 'someone else' WHERE seq = {}", middle.seq)).await;
    let (seq, reason) = broken().await;
    assert_eq!((seq, reason.contains("changed")), (middle.seq, true), "{reason}");
    // Changed and rehashed by someone who writes to the database but has no key: the record is
    // named (its hash is not keyed, after keyed ones) — and so would every record after it be,
    // however the rest of the chain was recomputed.
    let mut forged_event = middle.event.clone();
    forged_event.actor = "someone else".into();
    let forged = chain_hash(middle.seq, &forged_event, &middle.prev_hash);
    behind_the_back(s, &format!("UPDATE audit_events SET hash = {} WHERE seq = {}", q(&forged), middle.seq)).await;
    let (seq, reason) = broken().await;
    assert_eq!((seq, reason.contains("not keyed")), (middle.seq, true), "{reason}");
    // Rehashed with a key of one's own (HMAC, but not the deployment's): the content check fails.
    let wrong = format!("h2:{}", &chain_hash(middle.seq, &forged_event, "another key")[..64]);
    behind_the_back(s, &format!("UPDATE audit_events SET hash = {} WHERE seq = {}", q(&wrong), middle.seq)).await;
    let (seq, reason) = broken().await;
    assert_eq!((seq, reason.contains("changed")), (middle.seq, true), "{reason}");
    // Put back as it was: intact again (the check is of content, not of history).
    behind_the_back(s, &format!("DELETE FROM audit_events WHERE seq = {}", middle.seq)).await;
    let (seq, reason) = broken().await;
    assert_eq!((seq, reason.contains("missing")), (middle.seq, true), "a removed record: {reason}");
    behind_the_back(s, &restore).await;
    assert!(intact().await, "restored");
    // The last record removed: the head names a record that is not there.
    behind_the_back(s, &format!("DELETE FROM audit_events WHERE seq = {head}")).await;
    let (seq, reason) = broken().await;
    assert_eq!((seq, reason.contains("head")), (head, true), "{reason}");
}
both_stores!(audit_verification_finds_a_changed_or_removed_record);

async fn audit_verification_ends_on_a_gap_past_a_lowered_head(s: &TestServer) {
    use portico_store::AuditCheck;
    let store = s.store();
    let now = portico_testkit::now();
    let events: Vec<AuditEvent> = (0..12).map(|i| AuditEvent::new(now, "test.event", format!("actor-{i}"))).collect();
    store.append_audit(&events).await.unwrap();
    s.running.provider.writer.flush().await;
    let (head, _) = store.audit_head().await.unwrap();
    // Records removed from the middle up to past a lowered head: nothing left between the last
    // record kept and the head, one record beyond it.
    behind_the_back(s, &format!("DELETE FROM audit_events WHERE seq > {} AND seq < {head}", head - 6)).await;
    behind_the_back(s, &format!("UPDATE audit_head SET seq = {} WHERE id = 1", head - 2)).await;
    let check = tokio::time::timeout(std::time::Duration::from_secs(10), store.verify_audit())
        .await
        .expect("the check ended")
        .unwrap();
    assert!(matches!(check, AuditCheck::Broken { .. }), "{check:?}");
}
both_stores!(audit_verification_ends_on_a_gap_past_a_lowered_head);

async fn a_log_begun_before_the_key_is_keyed_from_a_mark_that_can_be_neither_moved_nor_removed(s: &TestServer) {
    use portico_store::AuditCheck;
    let now = portico_testkit::now();
    let events = |n: usize| (0..n).map(|i| AuditEvent::new(now, "test.event", format!("actor-{i}"))).collect::<Vec<_>>();
    let keyless = Store::open(s.config.database_url.as_deref(), &s.config.data_dir).await.unwrap();
    // A log as an older Portico left it: three plain records, no mark.
    s.running.provider.writer.flush().await;
    behind_the_back(s, "DELETE FROM audit_events").await;
    behind_the_back(s, "UPDATE audit_head SET seq = 0, hash = '' WHERE id = 1").await;
    behind_the_back(s, "DELETE FROM meta WHERE key IN ('audit_keyed_from', 'kek_check')").await;
    keyless.append_audit(&events(3)).await.unwrap();
    // An operator's laptop with another key is the first to open it: refused, and nothing recorded
    // (the store's signing keys do not open under that key).
    let mut other = s.config.clone();
    other.key_encryption_key = Some(base64::Engine::encode(&base64::engine::general_purpose::STANDARD, [9u8; 32]));
    let err = portico_server::open_store(&other, portico_server::NewKey::Refused)
        .await
        .expect_err("another key refused");
    assert!(err.to_string().contains("not this deployment's"), "{err}");
    assert!(!keyless.has_kek_check().await.unwrap(), "nothing recorded under the wrong key");
    // The upgrade: the first process with the key marks where keying begins.
    let (keyed, _) = portico_server::open_store(&s.config, portico_server::NewKey::Refused).await.unwrap();
    keyed.append_audit(&events(2)).await.unwrap();
    let check = || async { keyed.verify_audit().await.unwrap() };
    let broken = || async {
        match keyed.verify_audit().await.unwrap() {
            AuditCheck::Broken { seq, reason } => (seq, reason),
            AuditCheck::Intact { .. } => panic!("the tampering went unnoticed"),
        }
    };
    assert!(
        matches!(
            check().await,
            AuditCheck::Intact {
                records: 6,
                keyed_from: Some(4),
                ..
            }
        ),
        "{:?}",
        check().await
    );
    let records = keyed.audit_records(0, 10).await.unwrap();
    assert_eq!(records[3].event.kind, "audit.keyed");
    assert!(records[..3].iter().all(|r| !r.hash.starts_with("h2:")) && records[3..].iter().all(|r| r.hash.starts_with("h2:")));
    let q = |v: &str| format!("'{}'", v.replace('\'', "''"));
    let set = |seq: i64, col: &str, v: &str| format!("UPDATE audit_events SET {col} = {} WHERE seq = {seq}", q(v));

    // The unkeyed part rewritten and its chain recomputed, the first keyed record's link too.
    let mut forged = records[1].event.clone();
    forged.actor = "someone else".into();
    let h2 = chain_hash(2, &forged, &records[1].prev_hash);
    let h3 = chain_hash(3, &records[2].event, &h2);
    for sql in [
        set(2, "actor", "someone else"),
        set(2, "hash", &h2),
        set(3, "prev_hash", &h2),
        set(3, "hash", &h3),
        set(4, "prev_hash", &h3),
    ] {
        behind_the_back(s, &sql).await;
    }
    let (seq, reason) = broken().await;
    assert_eq!((seq, reason.contains("mark")), (4, true), "{reason}");
    for sql in [
        set(2, "actor", &records[1].event.actor),
        set(2, "hash", &records[1].hash),
        set(3, "prev_hash", &records[2].prev_hash),
        set(3, "hash", &records[2].hash),
        set(4, "prev_hash", &records[3].prev_hash),
    ] {
        behind_the_back(s, &sql).await;
    }
    assert!(matches!(check().await, AuditCheck::Intact { .. }), "restored");

    // The mark removed, or moved (its tag kept): named.
    let mark: String = {
        use sqlx::Connection;
        let sql = "SELECT value FROM meta WHERE key = 'audit_keyed_from'";
        match &s.config.database_url {
            Some(url) => sqlx::query_scalar(sql)
                .fetch_one(&mut sqlx::PgConnection::connect(url).await.unwrap())
                .await
                .unwrap(),
            None => {
                let url = format!("sqlite://{}", s.config.data_dir.join("portico.db").display());
                sqlx::query_scalar(sql)
                    .fetch_one(&mut sqlx::SqliteConnection::connect(&url).await.unwrap())
                    .await
                    .unwrap()
            }
        }
    };
    behind_the_back(s, "DELETE FROM meta WHERE key = 'audit_keyed_from'").await;
    let (seq, reason) = broken().await;
    assert_eq!((seq, reason.contains("was removed")), (1, true), "{reason}");
    // Opened again, the store is not marked anew (that would hide the removal).
    let (again, _) = portico_server::open_store(&s.config, portico_server::NewKey::Refused).await.unwrap();
    assert_eq!(again.audit_head().await.unwrap(), keyed.audit_head().await.unwrap(), "nothing appended");
    again.close().await;
    let (seq, _) = broken().await;
    assert_eq!(seq, 1);
    // With the check value gone too, a record keyed after an unmarked start is named.
    behind_the_back(s, "DELETE FROM meta WHERE key = 'kek_check'").await;
    let (seq, reason) = broken().await;
    assert_eq!((seq, reason.contains("nothing marks")), (4, true), "{reason}");
    let (_, tag) = mark.split_once(':').unwrap();
    for (moved, at) in [(2, 2), (5, 4), (9, 4)] {
        behind_the_back(s, "DELETE FROM meta WHERE key = 'audit_keyed_from'").await;
        behind_the_back(
            s,
            &format!("INSERT INTO meta (key, value) VALUES ('audit_keyed_from', {})", q(&format!("{moved}:{tag}"))),
        )
        .await;
        let (seq, reason) = broken().await;
        assert_eq!(seq, at, "mark moved to {moved}: {reason}");
    }
    behind_the_back(s, "DELETE FROM meta WHERE key = 'audit_keyed_from'").await;
    behind_the_back(s, &format!("INSERT INTO meta (key, value) VALUES ('audit_keyed_from', {})", q(&mark))).await;
    assert!(matches!(check().await, AuditCheck::Intact { .. }), "restored");

    // A process without the key (an older node, someone with the database) appends after the
    // keyed records: named.
    keyless.append_audit(&events(1)).await.unwrap();
    let (seq, reason) = broken().await;
    assert_eq!((seq, reason.contains("not keyed")), (7, true), "{reason}");

    // A process with another key-encryption key is refused before it writes anything.
    let (head, _) = keyed.audit_head().await.unwrap();
    let err = portico_server::open_store(&other, portico_server::NewKey::Allowed)
        .await
        .expect_err("another key refused");
    assert!(err.to_string().contains("not this deployment's"), "{err}");
    assert_eq!(keyed.audit_head().await.unwrap().0, head, "nothing appended");
    // On PostgreSQL, a command other than a server makes no key of its own.
    if s.config.database_url.is_some() {
        let mut laptop = s.config.clone();
        laptop.data_dir = std::env::temp_dir().join(format!("portico-laptop-{}", uuid::Uuid::new_v4().simple()));
        let err = portico_server::open_store(&laptop, portico_server::NewKey::Refused).await.expect_err("no key");
        assert!(err.to_string().contains("key_encryption_key"), "{err}");
        assert!(!laptop.data_dir.join("kek").exists());
    }
    keyless.close().await;
    keyed.close().await;
}
both_stores!(a_log_begun_before_the_key_is_keyed_from_a_mark_that_can_be_neither_moved_nor_removed);

async fn a_pending_state_is_named_by_its_kind_and_taken_once(s: &TestServer) {
    use portico_protocol::interaction::pending::{self, Kind};
    use portico_protocol::mail::LinkKind;
    let p = s.running.provider.clone();
    let now = portico_testkit::now();
    let handle = portico_protocol::random::token();
    pending::put(&p.store, &p.settings, Kind::SecondFactor, &handle, &serde_json::json!({"user": "usr_x"}), now)
        .await
        .unwrap();
    // The same handle names nothing of another kind: a second-factor cookie is no mailed link,
    // no ceremony and no authorization request.
    for other in [Kind::Authorize, Kind::Ceremony, Kind::Link(LinkKind::Reset), Kind::FactorPermit] {
        let found: Option<serde_json::Value> = pending::get(&p.store, other, &handle, now).await.unwrap();
        assert!(found.is_none(), "{other:?}");
    }
    // The store keeps the hash of the handle, never the handle itself.
    assert!(s.store().pending(Kind::SecondFactor.name(), &handle, now).await.unwrap().is_none());
    // Fifty takers at once: one gets it.
    let tries = (0..50).map(|_| {
        let (p, handle) = (p.clone(), handle.clone());
        tokio::spawn(async move { pending::take::<serde_json::Value>(&p.store, Kind::SecondFactor, &handle, now).await.unwrap() })
    });
    let outcomes = futures_join(tries).await;
    assert_eq!(outcomes.iter().filter(|o| o.is_some()).count(), 1, "{outcomes:?}");
    // Dead once its kind's lifetime has passed.
    pending::put(&p.store, &p.settings, Kind::SecondFactor, &handle, &1, now).await.unwrap();
    let late = now + pending::SECOND_FACTOR_TTL;
    assert!(pending::get::<i64>(&p.store, Kind::SecondFactor, &handle, late).await.unwrap().is_none());
    assert_eq!(pending::get::<i64>(&p.store, Kind::SecondFactor, &handle, late - 1).await.unwrap(), Some(1));
    // Taken only as read: a step that decided on a record another step has since replaced takes
    // nothing, and the newer record stays.
    let (_, read) = pending::get_with_record::<i64>(&p.store, Kind::SecondFactor, &handle, now)
        .await
        .unwrap()
        .unwrap();
    pending::put(&p.store, &p.settings, Kind::SecondFactor, &handle, &2, now).await.unwrap();
    assert!(!pending::take_if_unchanged(&p.store, Kind::SecondFactor, &handle, &read, now).await.unwrap());
    let (value, current) = pending::get_with_record::<i64>(&p.store, Kind::SecondFactor, &handle, now)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(value, 2);
    assert!(pending::take_if_unchanged(&p.store, Kind::SecondFactor, &handle, &current, now).await.unwrap());
}
both_stores!(a_pending_state_is_named_by_its_kind_and_taken_once);

/// The chain hash covers exactly the bytes stored chains were hashed over when it was written
/// through `serde_json::Value` (`json!([seq, prev, at, kind, actor, product, tenant, ip,
/// data.to_string()])`): a cheaper encoding that drifted by one byte would make every existing
/// record fail verification.
#[test]
fn the_chain_hash_covers_the_bytes_existing_chains_were_hashed_over() {
    let mut event = AuditEvent::new(1_765_000_000, "token.issued", "client:cr\"m\u{2028}\n")
        .product("crm")
        .tenant(Some("t\u{e9}nant/\u{1f600}"))
        .data(serde_json::json!({"z": [1, 2.5, null], "a": "quote \" and \\ and \u{7}", "m": {"k": true}}));
    for ip in [None, Some("203.0.113.9".to_owned())] {
        event.ip = ip;
        for prev in ["", "h2:00ff", "0123456789abcdef"] {
            let seq = 41_i64;
            let old = serde_json::json!([
                seq,
                prev,
                event.at,
                event.kind,
                event.actor,
                event.product,
                event.tenant,
                event.ip,
                event.data.to_string()
            ])
            .to_string();
            let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, old.as_bytes());
            let expected: String = d.as_ref().iter().map(|b| format!("{b:02x}")).collect();
            assert_eq!(chain_hash(seq, &event, prev), expected, "ip {:?}, prev {prev:?}", event.ip);
        }
    }
}

/// Migration 0011 moves the short-lived states out of `auth_requests`: a mailed link, a ceremony,
/// a waiting second factor and a factor permit made before the upgrade still work after it,
/// under their new kind and the same hash; a pending authorization request is dropped.
#[tokio::test]
async fn mailed_links_survive_the_move_to_the_pending_table() {
    use sqlx::Connection;
    let dir = std::env::temp_dir().join(format!("portico-0011-{}", uuid::Uuid::new_v4().simple()));
    let before = dir.join("migrations");
    std::fs::create_dir_all(&before).unwrap();
    let all = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../portico-store/migrations/sqlite");
    for entry in std::fs::read_dir(&all).unwrap() {
        let path = entry.unwrap().path();
        if path.file_name().unwrap().to_str().unwrap() < "0011" {
            std::fs::copy(&path, before.join(path.file_name().unwrap())).unwrap();
        }
    }
    let url = format!("sqlite://{}?mode=rwc", dir.join("portico.db").display());
    let mut c = sqlx::SqliteConnection::connect(&url).await.unwrap();
    sqlx::migrate::Migrator::new(before.as_path()).await.unwrap().run(&mut c).await.unwrap();
    let now = portico_testkit::now();
    let h = portico_protocol::random::hash;
    for (id, data) in [
        (format!("lnk_reset_{}", h("reset-token")), r#"{"user":"usr_a"}"#.to_owned()),
        (format!("lnk_verify_{}", h("verify-token")), r#"{"user":"usr_a"}"#.to_owned()),
        (format!("pk_{}", h("ceremony-token")), r#"{"kind":"x"}"#.to_owned()),
        (format!("lnk_signup_{}", h("signup-token")), r#"{"email":"b@x.test"}"#.to_owned()),
        (format!("lnk_enrol_{}", h("enrol-token")), r#"{"user":"usr_a"}"#.to_owned()),
        (format!("mfa_{}", h("mfa-cookie")), r#"{"user":"usr_a"}"#.to_owned()),
        (format!("enrol_ok_{}", h("sso_1")), "usr_a".to_owned()),
        ("a-raw-request-id".to_owned(), "{}".to_owned()),
    ] {
        sqlx::query("INSERT INTO auth_requests (id, data, expires_at) VALUES ($1, $2, $3)")
            .bind(id)
            .bind(data)
            .bind(now + 600)
            .execute(&mut c)
            .await
            .unwrap();
    }
    c.close().await.unwrap();
    let store = Store::open(None, &dir).await.unwrap();
    store.migrate().await.unwrap();
    let get = |kind: &'static str, handle: &'static str| {
        let store = store.clone();
        async move { store.pending(kind, &h(handle), now).await.unwrap() }
    };
    assert_eq!(get("link_reset", "reset-token").await.as_deref(), Some(r#"{"user":"usr_a"}"#));
    assert_eq!(get("link_verify", "verify-token").await.as_deref(), Some(r#"{"user":"usr_a"}"#));
    assert_eq!(get("ceremony", "ceremony-token").await.as_deref(), Some(r#"{"kind":"x"}"#));
    assert_eq!(get("link_signup", "signup-token").await.as_deref(), Some(r#"{"email":"b@x.test"}"#));
    assert_eq!(get("link_enrolment", "enrol-token").await.as_deref(), Some(r#"{"user":"usr_a"}"#));
    assert_eq!(get("second_factor", "mfa-cookie").await.as_deref(), Some(r#"{"user":"usr_a"}"#));
    assert_eq!(get("factor_permit", "sso_1").await.as_deref(), Some(r#""usr_a""#), "now a JSON string");
    assert!(get("authorize", "a-raw-request-id").await.is_none());
    std::fs::remove_dir_all(&dir).ok();
}

/// A write transaction records its writes and audit events when it commits, in order and
/// chained, and nothing of either when it is dropped uncommitted.
async fn a_transaction_records_its_audit_only_when_it_commits(s: &TestServer) {
    let store = s.store();
    s.running.provider.writer.flush().await;
    let (before, _) = store.audit_head().await.unwrap();
    let now = portico_testkit::now();
    let user = ada(store).await;
    let mut tx = store.write().await.unwrap();
    tx.put_consent(&user, "crm-web", "crm", "openid", now).await.unwrap();
    tx.audit(AuditEvent::new(now, "test.dropped", "test"));
    drop(tx);
    assert_eq!(store.audit_head().await.unwrap().0, before, "a dropped transaction records nothing");
    assert_eq!(store.consent(&user, "crm-web", "crm").await.unwrap(), None, "nor keeps its writes");
    let mut tx = store.write().await.unwrap();
    tx.audit(AuditEvent::new(now, "test.first", "test"));
    tx.audit(AuditEvent::new(now, "test.second", "test"));
    tx.commit().await.unwrap();
    let records = store.audit_records(before, 10).await.unwrap();
    let kinds: Vec<&str> = records.iter().map(|r| r.event.kind.as_str()).collect();
    assert_eq!(kinds, ["test.first", "test.second"]);
    assert!(matches!(store.verify_audit().await.unwrap(), portico_store::AuditCheck::Intact { .. }));
}
both_stores!(a_transaction_records_its_audit_only_when_it_commits);

/// Twenty first consents at once to one client for one product, each to another scope: none is
/// lost (the second of two first consents must not overwrite the first's scope).
async fn concurrent_first_consents_lose_no_scope(s: &TestServer) {
    let store = s.store().clone();
    let user = ada(&store).await;
    let now = portico_testkit::now();
    let start = std::sync::Arc::new(tokio::sync::Barrier::new(20));
    let tries = (0..20).map(|i| {
        let (store, user, start) = (store.clone(), user.clone(), start.clone());
        tokio::spawn(async move {
            start.wait().await;
            let mut tx = store.write().await.unwrap();
            tx.put_consent(&user, "crm-web", "crm", &format!("s{i}"), now).await.unwrap();
            tx.commit().await.unwrap();
        })
    });
    futures_join(tries).await;
    let scope = store.consent(&user, "crm-web", "crm").await.unwrap().unwrap();
    let mut got: Vec<&str> = scope.split(' ').collect();
    got.sort_unstable();
    let mut want: Vec<String> = (0..20).map(|i| format!("s{i}")).collect();
    want.sort_unstable();
    assert_eq!(got, want);
}
both_stores!(concurrent_first_consents_lose_no_scope);

/// A commit says how many back-channel notices it queued and wakes the delivery worker; a
/// transaction dropped before its commit ends no session and queues nothing.
async fn a_commit_reports_and_announces_the_logout_notices_it_queued(s: &TestServer) {
    // A second process's handle on the same store: no delivery worker waits on it.
    let (store, _) = portico_server::open_store(&s.config, portico_server::NewKey::Allowed).await.expect("open");
    let store = &store;
    let user = ada(store).await;
    let now = portico_testkit::now();
    let session = sso_session("sso-n", "cookie-n", &user, now);
    let mut tx = store.write().await.expect("write");
    tx.create_sso_session(&session, now).await.expect("session");
    for (client, sid) in [("crm-web", "sid-n1"), ("reports-web", "sid-n2")] {
        let start = portico_store::ProductSessionStart {
            sso_id: "sso-n",
            client_id: client,
            product: if client == "crm-web" { "crm" } else { "reports" },
            new_sid: &portico_model::Sid::new(sid.to_owned()),
            ip: "127.0.0.1",
            user_agent: "test",
            single: false,
            now,
        };
        tx.product_session(&start, &|_| true).await.expect("product session").expect("live");
    }
    let opened = tx.commit().await.expect("commit");
    assert_eq!(opened.logouts_queued, 0);

    // Ended and then dropped: nothing of it happened.
    let mut tx = store.write().await.expect("write");
    assert_eq!(tx.end_user_sessions(&user, now, &|_| true).await.expect("end"), 1);
    drop(tx);
    assert!(store.live_sso_session("cookie-n", now, now + 3600).await.expect("read").is_some());
    assert!(store.pending_logouts().await.expect("outbox").is_empty());

    // Ended and committed: one notice per product session whose client the filter accepts, and
    // the worker's wake-up is waiting for it (a commit that queues nothing wakes nobody).
    let woken = store.logout_due().notified();
    let mut woken = std::pin::pin!(woken);
    woken.as_mut().enable();
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    committed!(store, t => t.revoke_family(&FamilyId::new("no-such-family"), "test", now))
        .await
        .expect("commit");
    assert!(
        std::future::Future::poll(woken.as_mut(), &mut cx).is_pending(),
        "woken by a commit that queued nothing"
    );
    let mut tx = store.write().await.expect("write");
    assert_eq!(tx.end_user_sessions(&user, now, &|c: &str| c == "crm-web").await.expect("end"), 1);
    let done = tx.commit().await.expect("commit");
    assert_eq!(done.logouts_queued, 1);
    assert!(std::future::Future::poll(woken.as_mut(), &mut cx).is_ready(), "the commit woke the worker");
}
both_stores!(a_commit_reports_and_announces_the_logout_notices_it_queued);

/// Nothing starts in an SSO session that has ended: a sign-in answered in one tab while another
/// signs out (the session was read live, then ended before the code was issued) gets no product
/// session, so no family that the logout could not have revoked.
async fn no_product_session_starts_in_an_ended_sso_session(s: &TestServer) {
    let store = s.store();
    let user = ada(store).await;
    let now = portico_testkit::now();
    let mut tx = store.write().await.expect("write");
    tx.create_sso_session(&sso_session("sso-e", "cookie-e", &user, now), now)
        .await
        .expect("session");
    tx.commit().await.expect("commit");
    let start = portico_store::ProductSessionStart {
        sso_id: "sso-e",
        client_id: "crm-web",
        product: "crm",
        new_sid: &portico_model::Sid::new("sid-e".to_owned()),
        ip: "127.0.0.1",
        user_agent: "test",
        single: false,
        now,
    };
    committed!(store, t => t.end_user_sessions(&user, now, &|_| true)).await.expect("end");
    for single in [false, true] {
        let mut tx = store.write().await.expect("write");
        let started = tx
            .product_session(&portico_store::ProductSessionStart { single, ..start }, &|_| true)
            .await
            .expect("store");
        assert_eq!(started, None, "single_session = {single}");
    }
    assert!(!store.product_session_live("sid-e").await.expect("read"));
}
both_stores!(no_product_session_starts_in_an_ended_sso_session);
