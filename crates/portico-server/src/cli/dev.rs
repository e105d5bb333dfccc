//! `portico dev` (a fresh local instance with the demo suite) and `portico mail-sink`.

use super::{init_logs, shutdown_signal};
use crate::config::{Config, Overrides};
use crate::http::demo::{Demo, DemoClient};
use crate::suite::Suite;
use crate::{NewKey, http, open_store, start};
use portico_model::Secret;
use portico_protocol::random;
use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::Arc;

/// The demo suite of `portico dev`.
pub fn demo_suite(issuer: &str, crm_secret: &str, reports_secret: &str, payments_secret: &str) -> String {
    include_str!("../demo_suite.toml")
        .replace("${CRM_CALLBACK}", &http::demo::callback_uri(issuer, "crm-web"))
        .replace("${REPORTS_CALLBACK}", &http::demo::callback_uri(issuer, "reports-web"))
        .replace("${PAYMENTS_CALLBACK}", &http::demo::callback_uri(issuer, "payments-web"))
        .replace("${CRM_SECRET}", crm_secret)
        .replace("${REPORTS_SECRET}", reports_secret)
        .replace("${PAYMENTS_SECRET}", payments_secret)
}

pub(super) async fn mail_sink(listen: &str) -> anyhow::Result<()> {
    let ip: std::net::SocketAddr = listen.parse().map_err(|e| anyhow::anyhow!("--listen {listen:?}: {e}"))?;
    anyhow::ensure!(ip.ip().is_loopback(), "--listen {listen}: the sink relays nothing and listens on loopback only");
    let sink = crate::mailsink::MailSink::start(listen).await?;
    println!("mail sink: {}", sink.url());
    let mut seen = 0usize;
    let mut tick = tokio::time::interval(std::time::Duration::from_millis(200));
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown_signal() => return Ok(()),
        }
        let total = sink.received();
        for m in sink.mails().iter().take(total - seen).rev() {
            println!("{} to {}: {}", http::account::when(m.at), m.to.join(", "), m.subject);
        }
        seen = total;
    }
}

pub(super) async fn dev(file: Option<PathBuf>, mut flags: Overrides) -> anyhow::Result<()> {
    let dir = std::env::temp_dir().join(format!("portico-dev-{}", random::id("")));
    flags.data_dir.get_or_insert(dir.clone());
    // The demo's issuer is `localhost`, not 127.0.0.1: browsers allow passkeys only for a domain name.
    if flags.issuer.is_none() && file.is_none() {
        let port = flags.listen.as_deref().and_then(|l| l.rsplit_once(':')).map_or("8080", |(_, p)| p).to_owned();
        flags.issuer = Some(format!("http://localhost:{port}"));
    }
    let mut cfg = Config::load(file.as_deref(), &flags)?;
    init_logs(cfg.log_format);
    // Mail goes to a local SMTP sink shown at /dev/mail, unless the configuration names a server.
    let sink = match cfg.smtp_url {
        Some(_) => None,
        None => {
            let sink = crate::mailsink::MailSink::start("127.0.0.1:0").await?;
            cfg.smtp_url = Some(sink.url());
            Some(sink)
        }
    };
    let (store, kek) = open_store(&cfg, NewKey::Allowed).await?;
    let (crm_secret, reports_secret, payments_secret) = (random::token(), random::token(), random::token());
    let text = demo_suite(&cfg.issuer, &crm_secret, &reports_secret, &payments_secret);
    Suite::parse("demo suite", &text, &HashSet::new())?
        .apply(&store, &kek, "dev", portico_protocol::clock::Clock::default().now())
        .await?;
    let demo = demo(crm_secret, reports_secret, payments_secret, sink);
    let listener = tokio::net::TcpListener::bind(&cfg.listen).await?;
    println!("Portico dev: {} (data in {})", cfg.issuer, cfg.data_dir.display());
    println!(
        "Open {}/ and sign in to a demo product (Reports takes sign-ups; mail sent shows at {}/dev/mail). Demo users:",
        cfg.issuer, cfg.issuer
    );
    for (email, pw, access) in &demo.users {
        println!("  {email}  password: {pw:?}  ({access})");
    }
    let running = start(&cfg, store, kek, listener, Some(Arc::new(demo))).await?;
    shutdown_signal().await;
    running.stop().await;
    Ok(())
}

/// The demo's clients (with the secrets just made) and users, shown on its home page.
fn demo(crm_secret: String, reports_secret: String, payments_secret: String, mail: Option<crate::mailsink::MailSink>) -> Demo {
    Demo {
        clients: vec![
            DemoClient {
                client_id: "crm-web".into(),
                secret: Secret::new(crm_secret),
                product: "CRM".into(),
            },
            DemoClient {
                client_id: "reports-web".into(),
                secret: Secret::new(reports_secret),
                product: "Reports".into(),
            },
            DemoClient {
                client_id: "payments-web".into(),
                secret: Secret::new(payments_secret),
                product: "Payments".into(),
            },
        ],
        users: vec![
            (
                "ada@example.test".into(),
                "correct horse battery staple".into(),
                "CRM editor in Acme Bank; Reports analyst; Payments approver (two-step verification)".into(),
            ),
            (
                "grace@example.test".into(),
                "debugging the harvard mark ii".into(),
                "CRM viewer in Globex Savings; no Reports".into(),
            ),
            (
                "margaret@example.test".into(),
                "apollo guidance computer".into(),
                "CRM editor in Acme Bank and viewer in Globex Savings: picks one".into(),
            ),
        ],
        mail,
    }
}
