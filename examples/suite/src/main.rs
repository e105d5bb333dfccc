//! `cargo run -p portico-example-suite`: one command starts the whole example suite — a Portico
//! (SQLite, in `./example-suite-data`) with the suite's file applied, the products' databases on
//! the local PostgreSQL, and the four products — and prints their URLs and demo users.

use portico_example_suite::Checks;
use portico_example_suite::launch::{self, Databases, Listeners, Seed};
use portico_server::config::Config;
use std::collections::HashSet;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".into()))
        .init();
    let admin_url = std::env::var("EXAMPLE_SUITE_DATABASE_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
    let checks = Checks {
        enforce: std::env::var("EXAMPLE_SUITE_APP_CHECKS").as_deref() != Ok("off"),
    };
    let listeners = Listeners::bind("127.0.0.1", [7101, 7102, 7103, 7104]).await?;
    let portico = tokio::net::TcpListener::bind("127.0.0.1:7100").await?;
    let config = Config {
        listen: "127.0.0.1:7100".into(),
        issuer: "http://127.0.0.1:7100".into(),
        data_dir: "example-suite-data".into(),
        ..Config::default()
    };
    config.validate()?;
    let (store, kek) = portico_server::open_store(&config, portico_server::NewKey::Allowed).await?;
    let suite = portico_server::suite::Suite::parse("examples/suite/suite.toml", &listeners.suite(), &HashSet::new())?;
    suite.check_for_issuer(&config.issuer)?;
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_secs() as i64;
    suite.apply(&store, &kek, "example-suite", now).await?;
    let running = portico_server::start(&config, store, kek, portico, None).await?;
    let snapshot = running.provider.config();
    let tenant = |slug: &str| {
        snapshot
            .tenant_by_ref(slug)
            .map(|t| t.id.as_str().to_owned())
            .ok_or_else(|| anyhow::anyhow!("tenant {slug}"))
    };
    let seed = Seed {
        acme: tenant("acme")?,
        globex: tenant("globex")?,
    };
    let urls = listeners.urls();
    let dbs = Databases {
        admin_url,
        prefix: "example_suite".into(),
    };
    let _products = launch::start(&config.issuer, &dbs, listeners, checks, &seed).await?;
    println!("Portico    {}", config.issuer);
    for (name, url) in ["CRM", "Pipelines", "Reports", "Ops"].iter().zip(urls) {
        println!("{name:<10} {url}");
    }
    println!("Users (password \"correct horse battery staple\"): ada@acme.example.test, vic@acme.example.test, gus@globex.example.test, olga@ops.example.test");
    println!("Row-level security alone (the products' own checks off): EXAMPLE_SUITE_APP_CHECKS=off. Ctrl-C stops.");
    tokio::signal::ctrl_c().await?;
    running.stop().await;
    Ok(())
}
