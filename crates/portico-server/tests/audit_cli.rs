//! `portico audit verify`, the command: exit status 0 and the record count on an intact log;
//! exit status 1 naming the first broken record when a row was altered or removed.

use std::path::Path;
use std::process::Command;

fn portico(data_dir: &Path, args: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_portico"))
        .args(args)
        .args(["--data-dir", data_dir.to_str().unwrap()])
        .env_remove("PORTICO_DATABASE_URL")
        .output()
        .expect("run portico");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text)
}

fn sql(data_dir: &Path, statement: &str) {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        use sqlx::Connection;
        let url = format!("sqlite://{}", data_dir.join("portico.db").display());
        let mut c = sqlx::SqliteConnection::connect(&url).await.unwrap();
        sqlx::query(statement).execute(&mut c).await.unwrap();
    });
}

#[test]
fn audit_verify_proves_the_log_and_finds_tampering() {
    let dir = std::env::temp_dir().join(format!("portico-audit-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let suite = dir.join("suite.toml");
    std::fs::write(
        &suite,
        "[[product]]\nslug = \"crm\"\nname = \"CRM\"\naudience = \"https://crm.example.test\"\n\n\
         [[user]]\nemail = \"ada@example.test\"\npassword = \"correct horse battery staple\"\n\n\
         [[user]]\nemail = \"bob@example.test\"\npassword = \"bob's long enough password\"\n",
    )
    .unwrap();
    let (ok, out) = portico(&dir, &["apply", "--file", suite.to_str().unwrap()]);
    assert!(ok, "{out}");
    let (ok, out) = portico(&dir, &["audit", "verify"]);
    assert!(ok && out.starts_with("audit log intact: "), "{out}");
    let records: i64 = out.split_whitespace().nth(3).unwrap().parse().unwrap();
    assert!(records >= 3, "one per product and user applied: {out}");
    assert!(out.contains("keyed from its first record"), "{out}");
    // The head it printed, kept outside: checked later, it holds; a wrong or a future one does not.
    let head = out.split("head ").nth(1).and_then(|x| x.lines().next()).unwrap().trim().to_owned();
    let (seq, hash) = head.split_once(':').unwrap();
    let (ok, out) = portico(&dir, &["audit", "verify", "--head", &head]);
    assert!(ok && out.contains(&format!("record {seq} is as it was")), "{out}");
    let forged = format!("{seq}:{}", hash.replace('a', "b").replace('1', "2"));
    let (ok, out) = portico(&dir, &["audit", "verify", "--head", &forged]);
    assert!(!ok && out.contains("rewritten"), "{out}");
    let later = format!("{}:{hash}", records + 5);
    let (ok, out) = portico(&dir, &["audit", "verify", "--head", &later]);
    assert!(!ok && out.contains("cut off"), "{out}");
    let (ok, out) = portico(&dir, &["audit", "verify", "--head", "nonsense"]);
    assert!(!ok && out.contains("--head"), "{out}");
    // Verifying wrote nothing.
    let (_, again) = portico(&dir, &["audit", "verify"]);
    assert!(again.contains(&format!("head {head}")), "{again}");

    // The key file swapped for another: every command is refused, and says why.
    let kek = std::fs::read(dir.join("kek")).unwrap();
    std::fs::write(dir.join("kek"), "CQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQk=").unwrap();
    let (ok, out) = portico(&dir, &["audit", "verify"]);
    assert!(!ok && out.contains("not this deployment's"), "{out}");
    std::fs::write(dir.join("kek"), kek).unwrap();
    // Nor does it make a key where there is none.
    let empty = dir.join("empty");
    let (ok, out) = portico(&empty, &["audit", "verify"]);
    assert!(!ok && out.contains("no key-encryption key"), "{out}");
    assert!(!empty.join("kek").exists());

    sql(&dir, "UPDATE audit_events SET actor = 'someone else' WHERE seq = 2");
    let (ok, out) = portico(&dir, &["audit", "verify"]);
    assert!(!ok && out.contains("audit log broken at record 2"), "{out}");

    sql(&dir, "DELETE FROM audit_events WHERE seq = 2");
    let (ok, out) = portico(&dir, &["audit", "verify"]);
    assert!(!ok && out.contains("record 2 is missing"), "{out}");
    std::fs::remove_dir_all(&dir).ok();
}
