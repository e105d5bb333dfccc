//! The `portico` command itself. `audit verify`: exit status 0 and the record count on an intact
//! log; exit status 1 naming the first broken record when a row was altered or removed.
//! `user add`: the password policy of sign-up holds unless the operator skips it by name.

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

fn portico_with_stdin(data_dir: &Path, args: &[&str], stdin: &str) -> (bool, String) {
    use std::io::Write;
    let mut child = Command::new(env!("CARGO_BIN_EXE_portico"))
        .args(args)
        .args(["--data-dir", data_dir.to_str().unwrap()])
        .env_remove("PORTICO_DATABASE_URL")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run portico");
    child.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text)
}

fn query(data_dir: &Path, statement: &str) -> Vec<String> {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        use sqlx::Connection;
        let url = format!("sqlite://{}", data_dir.join("portico.db").display());
        let mut c = sqlx::SqliteConnection::connect(&url).await.unwrap();
        let rows: Vec<(String,)> = sqlx::query_as(statement).fetch_all(&mut c).await.unwrap();
        rows.into_iter().map(|r| r.0).collect()
    })
}

#[test]
fn user_add_holds_the_password_policy_unless_the_operator_skips_it_by_name() {
    let dir = std::env::temp_dir().join(format!("portico-user-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (ok, out) = portico(&dir, &["migrate"]);
    assert!(ok, "{out}");
    // A password sign-up would refuse: refused here too, naming the field, and nothing is stored.
    let (ok, out) = portico_with_stdin(&dir, &["user", "add", "ada@example.test", "--password-stdin"], "password1\n");
    assert!(!ok && out.contains("password"), "{out}");
    let (_, list) = portico(&dir, &["user", "list"]);
    assert!(!list.contains("ada@example.test"), "{list}");
    // The same password with the bypass named: stored, and the audit event says so.
    let args = ["user", "add", "ada@example.test", "--password-stdin", "--skip-password-policy"];
    let (ok, out) = portico_with_stdin(&dir, &args, "password1\n");
    assert!(ok, "{out}");
    // Even then, not below the floor: an empty or short password is refused.
    for weak in ["\n", "short\n"] {
        let args = ["user", "add", "bob@example.test", "--password-stdin", "--skip-password-policy"];
        let (ok, out) = portico_with_stdin(&dir, &args, weak);
        assert!(!ok && out.contains("at least 8 characters"), "{weak:?}: {out}");
    }
    let events = query(&dir, "SELECT data FROM audit_events WHERE kind = 'user.created'");
    assert_eq!(events.len(), 1, "{events:?}");
    assert!(events[0].contains("\"password_policy_bypassed\":true"), "{events:?}");
    // A strong one passes the policy; an email already taken is refused by name.
    let strong = "a long and uncommon passphrase for grace";
    let (ok, out) = portico_with_stdin(&dir, &["user", "add", "grace@example.test", "--password-stdin"], strong);
    assert!(ok, "{out}");
    let (ok, out) = portico_with_stdin(&dir, &["user", "add", "grace@example.test", "--password-stdin"], strong);
    assert!(!ok && out.contains("already exists"), "{out}");
    let (ok, out) = portico(&dir, &["user", "add", "not-an-email"]);
    assert!(!ok && out.contains("email"), "{out}");
    std::fs::remove_dir_all(&dir).ok();
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

/// `PORTICO_LOG` sets the log filter (what the CLI's help says); the configuration, which refuses
/// unknown `PORTICO_*` variables, must not refuse it. A misspelt variable is still refused.
#[test]
fn portico_log_sets_the_filter_and_a_misspelt_variable_is_still_refused() {
    let dir = std::env::temp_dir().join(format!("portico-log-env-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let run = |var: &str| {
        let out = Command::new(env!("CARGO_BIN_EXE_portico"))
            .args(["migrate", "--data-dir", dir.to_str().unwrap()])
            .env_remove("PORTICO_DATABASE_URL")
            .env(var, "warn,portico=debug")
            .output()
            .expect("run portico");
        (out.status.success(), String::from_utf8_lossy(&out.stderr).into_owned())
    };
    let (ok, err) = run("PORTICO_LOG");
    assert!(ok, "PORTICO_LOG is accepted: {err}");
    let (ok, err) = run("PORTICO_LOGG");
    assert!(!ok && err.contains("logg"), "an unknown variable is refused, by name: {err}");
    std::fs::remove_dir_all(&dir).ok();
}
