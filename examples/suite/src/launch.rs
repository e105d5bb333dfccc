//! Starting the suite: its suite file for a Portico, each product's database, and the products
//! themselves on loopback listeners. The one command (`main.rs`) and the tests share it.

use crate::{App, Checks, crm, db, ops, pipelines, reports};
use portico_guard::Guard;
use portico_guard::marks::PgMarks;
use tokio::net::TcpListener;

/// The suite file, with the products' base URLs put in.
pub const SUITE: &str = include_str!("../suite.toml");
pub const CRM: &str = "https://crm.example.test";
pub const PIPELINES: &str = "https://pipelines.example.test";
pub const REPORTS: &str = "https://reports.example.test";
pub const OPS: &str = "https://ops.example.test";
pub const REPORTS_SECRET: &str = "reports-web-secret-0123456789abcdef012345";
pub const OPS_SECRET: &str = "ops-web-secret-0123456789abcdef0123456789";

/// One listener per product, bound before Portico learns their URLs.
pub struct Listeners {
    pub crm: TcpListener,
    pub pipelines: TcpListener,
    pub reports: TcpListener,
    pub ops: TcpListener,
}

impl Listeners {
    /// Binds the four products on `host` at `ports` (0: any free port).
    pub async fn bind(host: &str, ports: [u16; 4]) -> std::io::Result<Self> {
        let bind = |p: u16| TcpListener::bind((host.to_owned(), p));
        Ok(Listeners {
            crm: bind(ports[0]).await?,
            pipelines: bind(ports[1]).await?,
            reports: bind(ports[2]).await?,
            ops: bind(ports[3]).await?,
        })
    }

    fn url(l: &TcpListener) -> String {
        format!("http://{}", l.local_addr().expect("a bound listener"))
    }

    /// Base URLs: CRM, Pipelines, Reports, Ops.
    pub fn urls(&self) -> [String; 4] {
        [Self::url(&self.crm), Self::url(&self.pipelines), Self::url(&self.reports), Self::url(&self.ops)]
    }

    /// The suite file for these listeners.
    pub fn suite(&self) -> String {
        let [c, p, r, o] = self.urls();
        SUITE
            .replace("{crm}", &c)
            .replace("{pipelines}", &p)
            .replace("{reports}", &r)
            .replace("{ops}", &o)
    }
}

/// Where the products' databases live, and what they are called.
pub struct Databases {
    /// A PostgreSQL URL of a role that may create databases and roles.
    pub admin_url: String,
    /// Prefix of the database names (`<prefix>_crm`, …).
    pub prefix: String,
}

impl Databases {
    pub fn name(&self, product: &str) -> String {
        format!("{}_{product}", self.prefix)
    }

    /// Drops every product database and role.
    pub async fn remove(&self) -> anyhow::Result<()> {
        for product in ["crm", "pipelines", "reports"] {
            db::remove(&self.admin_url, &self.name(product)).await?;
        }
        Ok(())
    }
}

/// The running products' tasks.
pub struct Products {
    pub tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for Products {
    fn drop(&mut self) {
        self.tasks.iter().for_each(|t| t.abort());
    }
}

fn serve(listener: TcpListener, app: axum::Router) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!(error = %e, "a product stopped");
        }
    })
}

/// A product's state: its guard (marks of ended sessions in its own database) and its pool.
async fn product(issuer: &str, audience: &str, client: &str, secret: Option<&str>, pool: sqlx::PgPool, checks: Checks) -> anyhow::Result<App> {
    let mut builder = Guard::builder(issuer, audience).logout_client(client).session_marks(PgMarks::new(pool.clone()));
    if let Some(secret) = secret {
        builder = builder.client_credentials(client, secret);
    }
    Ok(App {
        guard: builder.connect().await?,
        pool,
        checks,
    })
}

/// Creates the databases (with `seed` rows, as the owner) and serves the four products against
/// the Portico at `issuer`.
pub async fn start(issuer: &str, dbs: &Databases, listeners: Listeners, checks: Checks, seed: &Seed) -> anyhow::Result<Products> {
    let crm_pool = db::prepare(&dbs.admin_url, &dbs.name("crm"), &format!("{}{}", crm::SCHEMA, seed.crm())).await?;
    let pipelines_pool = db::prepare(&dbs.admin_url, &dbs.name("pipelines"), &format!("{}{}", pipelines::SCHEMA, seed.pipelines())).await?;
    let reports_pool = db::prepare(&dbs.admin_url, &dbs.name("reports"), &format!("{}{}", reports::SCHEMA, seed.reports())).await?;
    let crm = product(issuer, CRM, "crm-web", None, crm_pool, checks).await?;
    let pipelines = product(issuer, PIPELINES, "pipelines-web", None, pipelines_pool, checks).await?;
    let reports = product(issuer, REPORTS, "reports-web", Some(REPORTS_SECRET), reports_pool, checks).await?;
    let ops_guard = Guard::builder(issuer, OPS)
        .logout_client("ops-web")
        .client_credentials("ops-web", OPS_SECRET)
        .connect()
        .await?;
    let ops = ops::Ops {
        guard: ops_guard,
        reports: REPORTS.to_owned(),
    };
    Ok(Products {
        tasks: vec![
            serve(listeners.crm, crm::router(crm)),
            serve(listeners.pipelines, pipelines::router(pipelines)),
            serve(listeners.reports, reports::router(reports)),
            serve(listeners.ops, ops::router(ops)),
        ],
    })
}

/// Demo rows for two tenants, named by their opaque ids (`org_id`).
pub struct Seed {
    pub acme: String,
    pub globex: String,
}

impl Seed {
    fn rows(&self, table: &str, column: &str, values: &[(&str, &str)]) -> String {
        values
            .iter()
            .map(|(tenant, v)| {
                let org = if *tenant == "acme" { &self.acme } else { &self.globex };
                format!(
                    "INSERT INTO {table} (org_id, {column}) SELECT '{org}', '{v}' WHERE NOT EXISTS (SELECT 1 FROM {table} WHERE org_id = '{org}' AND {column} = '{v}');\n"
                )
            })
            .collect()
    }

    fn crm(&self) -> String {
        self.rows(
            "contacts",
            "name",
            &[("acme", "Acme: Alice Archer"), ("acme", "Acme: Arno Bauer"), ("globex", "Globex: Gina Grey")],
        )
    }

    fn pipelines(&self) -> String {
        self.rows("pipelines", "name", &[("acme", "Acme: nightly build"), ("globex", "Globex: release")])
    }

    fn reports(&self) -> String {
        self.rows(
            "reports",
            "title",
            &[
                ("acme", "Acme: Q3 liquidity"),
                ("acme", "Acme: Q4 liquidity"),
                ("globex", "Globex: annual review"),
            ],
        )
    }
}
