//! The example suite's promises, through tokens obtained with the real flows against a real
//! Portico, each product on its own fresh PostgreSQL database with row-level security: tokens
//! reach only their product and tenant — also with the products' own checks turned off —,
//! revocation and sign-out reach the product's API within a second, the Ops → Reports hand-off
//! lands once with the right tenant and context, and a service client reads one tenant only.

use portico_example_suite::Checks;
use portico_example_suite::launch::{self, Databases, Listeners, Products, Seed};
use portico_testkit::{Backend, Browser, TestServer, query_param};
use serde_json::{Value, json};
use std::time::Duration;

const PASSWORD: &str = "correct horse battery staple";
const OPS_BOT_SECRET: &str = "ops-bot-secret-0123456789abcdef0123456789";
/// An admin-API client, so the tests can revoke a grant as an operator would.
const ADMIN_BOT: &str = r#"
[[client]]
id = "ops-bot"
product = "portico-admin"
kind = "confidential"
secret = "ops-bot-secret-0123456789abcdef0123456789"
grant_types = ["client_credentials"]

[[grant]]
client = "ops-bot"
product = "portico-admin"
roles = ["admin"]
"#;

struct World {
    s: TestServer,
    dbs: Databases,
    products: Option<Products>,
    /// CRM, Pipelines, Reports, Ops.
    urls: [String; 4],
    seed: Seed,
    http: reqwest::Client,
}

impl World {
    async fn start(checks: Checks) -> Option<World> {
        let admin_url = portico_testkit::postgres_url()?;
        let listeners = Listeners::bind("127.0.0.1", [0; 4]).await.unwrap();
        let urls = listeners.urls();
        let s = TestServer::start(Backend::Sqlite, &format!("{}{ADMIN_BOT}", listeners.suite())).await.unwrap();
        let config = s.running.provider.config();
        let seed = Seed {
            acme: config.tenant_by_ref("acme").unwrap().id.as_str().to_owned(),
            globex: config.tenant_by_ref("globex").unwrap().id.as_str().to_owned(),
        };
        let dbs = Databases {
            admin_url,
            prefix: format!("exs_{}", &uuid::Uuid::new_v4().simple().to_string()[..12]),
        };
        let products = launch::start(&s.base, &dbs, listeners, checks, &seed).await.unwrap();
        let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
        Some(World {
            s,
            dbs,
            products: Some(products),
            urls,
            seed,
            http,
        })
    }

    async fn stop(mut self) {
        self.products.take();
        self.s.stop().await;
        self.dbs.remove().await.unwrap();
    }

    fn url(&self, product: &str, path: &str) -> String {
        let i = ["crm", "pipelines", "reports", "ops"].iter().position(|p| *p == product).unwrap();
        format!("{}{path}", self.urls[i])
    }

    /// Calls a product's API with a bearer token: (status, JSON or null).
    async fn api(&self, method: &str, product: &str, path: &str, token: &str, body: Option<Value>) -> (u16, Value) {
        let mut req = self.http.request(method.parse().unwrap(), self.url(product, path)).bearer_auth(token);
        if let Some(b) = body {
            req = req.header("content-type", "application/json").body(b.to_string());
        }
        let res = req.send().await.unwrap();
        let status = res.status().as_u16();
        let text = res.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// Reports' front end posting a hand-off code to its backend: (status, JSON or null).
    async fn land(&self, code: &str) -> (u16, Value) {
        let res = self
            .http
            .post(self.url("reports", "/handoff"))
            .header("content-type", "application/json")
            .body(json!({"handoff_code": code}).to_string())
            .send()
            .await
            .unwrap();
        let status = res.status().as_u16();
        (status, serde_json::from_str(&res.text().await.unwrap()).unwrap_or(Value::Null))
    }

    async fn post_basic(&self, path: &str, client: &str, secret: &str, form: &[(&str, &str)]) -> (u16, Value) {
        let res = self
            .http
            .post(format!("{}{path}", self.s.base))
            .basic_auth(client, Some(secret))
            .form(form)
            .send()
            .await
            .unwrap();
        let status = res.status().as_u16();
        (status, serde_json::from_str(&res.text().await.unwrap()).unwrap_or(Value::Null))
    }

    /// Signs `email` in to `product`'s web client for `tenant` with the authorization code flow
    /// (PKCE), in `browser`; returns the token response.
    async fn sign_in(&self, browser: &mut Browser, product: &str, email: &str, tenant: &str) -> Value {
        use base64::Engine;
        let (client, secret) = web_client(product);
        let verifier = uuid::Uuid::new_v4().simple().to_string().repeat(2);
        let challenge =
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, verifier.as_bytes()).as_ref());
        let redirect = self.url(product, "/callback");
        let query = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs([
                ("response_type", "code"),
                ("client_id", client),
                ("redirect_uri", redirect.as_str()),
                ("scope", "openid"),
                ("state", "st"),
                ("code_challenge", challenge.as_str()),
                ("code_challenge_method", "S256"),
                ("organization", tenant),
            ])
            .finish();
        let (mut status, mut loc, page) = browser.follow(&self.s.base, format!("{}/oauth2/authorize?{query}", self.s.base)).await;
        if status == 200 && page.contains("name=\"password\"") {
            (status, loc, _) = browser.login(&self.s.base, &page, email, PASSWORD).await;
        }
        assert!((300..400).contains(&status), "no redirect back to {product}");
        let code = query_param(loc.as_deref().unwrap(), "code").expect("a code");
        let (status, t) = self
            .post_basic(
                "/oauth2/token",
                client,
                secret,
                &[
                    ("grant_type", "authorization_code"),
                    ("code", &code),
                    ("redirect_uri", &redirect),
                    ("code_verifier", &verifier),
                ],
            )
            .await;
        assert_eq!(status, 200, "{t}");
        t
    }

    async fn token(&self, product: &str, email: &str, tenant: &str) -> String {
        at(&self.sign_in(&mut Browser::new(), product, email, tenant).await)
    }

    /// Rows of `path` (a list) as (org_id, id) pairs.
    async fn rows(&self, product: &str, path: &str, token: &str) -> Vec<(String, i64)> {
        let (status, v) = self.api("GET", product, path, token, None).await;
        assert_eq!(status, 200, "{v}");
        v.as_array()
            .unwrap()
            .iter()
            .map(|r| (r["org_id"].as_str().unwrap().to_owned(), r["id"].as_i64().unwrap()))
            .collect()
    }
}

fn at(t: &Value) -> String {
    t["access_token"].as_str().unwrap_or_else(|| panic!("no access token in {t}")).to_owned()
}

fn web_client(product: &str) -> (&'static str, &'static str) {
    match product {
        "crm" => ("crm-web", "crm-web-secret-0123456789abcdef0123456789"),
        "pipelines" => ("pipelines-web", "pipelines-web-secret-0123456789abcdef0123"),
        "reports" => ("reports-web", launch::REPORTS_SECRET),
        _ => ("ops-web", launch::OPS_SECRET),
    }
}

/// Waits (up to `limit`) until `check` holds; how long it took.
async fn within(limit: Duration, mut check: impl AsyncFnMut() -> bool) -> Option<Duration> {
    let start = tokio::time::Instant::now();
    while start.elapsed() < limit {
        if check().await {
            return Some(start.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    None
}

/// Everything a token must not reach, with the products' own checks on or off.
async fn isolation(checks: Checks) {
    let Some(w) = World::start(checks).await else { return };
    let (acme, globex) = (w.seed.acme.clone(), w.seed.globex.clone());
    let ada_crm = w.token("crm", "ada@acme.example.test", "acme").await;
    let gus_crm = w.token("crm", "gus@globex.example.test", "globex").await;
    let vic_crm = w.token("crm", "vic@acme.example.test", "acme").await;
    let ada_pipelines = w.token("pipelines", "ada@acme.example.test", "acme").await;

    // One audience: a CRM token is worth nothing at Pipelines or Reports.
    assert_eq!(w.api("GET", "pipelines", "/pipelines", &ada_crm, None).await.0, 401);
    assert_eq!(w.api("GET", "reports", "/reports", &ada_crm, None).await.0, 401);
    assert_eq!(w.api("GET", "crm", "/contacts", &ada_pipelines, None).await.0, 401);

    // One tenant: Acme reads none of Globex's rows, and the reverse.
    let acme_rows = w.rows("crm", "/contacts", &ada_crm).await;
    assert_eq!(acme_rows.len(), 2, "{acme_rows:?}");
    assert!(acme_rows.iter().all(|(org, _)| *org == acme));
    let globex_rows = w.rows("crm", "/contacts", &gus_crm).await;
    assert_eq!(globex_rows.iter().map(|(o, _)| o.as_str()).collect::<Vec<_>>(), [globex.as_str()]);
    // Ada, an admin in CRM, deletes nothing of Globex's.
    let (status, gone) = w.api("DELETE", "crm", &format!("/contacts/{}", globex_rows[0].1), &ada_crm, None).await;
    assert_eq!((status, gone), (200, json!(0)));
    assert_eq!(w.rows("crm", "/contacts", &gus_crm).await.len(), 1);

    // A viewer cannot write.
    let (status, _) = w.api("POST", "crm", "/contacts", &vic_crm, Some(json!({"name": "Eve"}))).await;
    assert_eq!(status, 403);
    assert_eq!(w.rows("crm", "/contacts", &ada_crm).await.len(), 2, "nothing was written");
    // Admin in CRM, viewer in Pipelines: admin things in CRM only.
    let (status, created) = w.api("POST", "crm", "/contacts", &ada_crm, Some(json!({"name": "Acme: new"}))).await;
    assert_eq!(status, 200, "{created}");
    assert_eq!(created["org_id"], acme.as_str());
    assert_eq!(
        w.api("POST", "pipelines", "/pipelines", &ada_pipelines, Some(json!({"name": "x"}))).await.0,
        403
    );
    let acme_pipeline = w.rows("pipelines", "/pipelines", &ada_pipelines).await[0].1;
    let (status, ran) = w
        .api("POST", "pipelines", &format!("/pipelines/{acme_pipeline}/run"), &ada_pipelines, None)
        .await;
    assert!(status == 403 || (status == 200 && ran == json!(0)), "a viewer ran a pipeline: {status} {ran}");
    let (_, list) = w.api("GET", "pipelines", "/pipelines", &ada_pipelines, None).await;
    assert_eq!(list[0]["runs"], 0);
    w.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_reach_only_their_product_and_tenant() {
    isolation(Checks { enforce: true }).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn row_level_security_alone_holds_with_the_products_checks_off() {
    isolation(Checks { enforce: false }).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoking_the_crm_grant_or_signing_out_ends_api_access_within_a_second() {
    let Some(w) = World::start(Checks { enforce: true }).await else { return };
    let mut browser = Browser::new();
    let crm = at(&w.sign_in(&mut browser, "crm", "ada@acme.example.test", "acme").await);
    let pipelines_tokens = w.sign_in(&mut browser, "pipelines", "ada@acme.example.test", "acme").await;
    let pipelines = at(&pipelines_tokens);
    let reports = at(&w.sign_in(&mut browser, "reports", "ada@acme.example.test", "acme").await);
    assert_eq!(w.api("GET", "crm", "/contacts", &crm, None).await.0, 200);

    let (_, bot) = w
        .post_basic("/oauth2/token", "ops-bot", OPS_BOT_SECRET, &[("grant_type", "client_credentials")])
        .await;
    let res = w
        .http
        .delete(format!("{}/api/v1/grants?user=ada@acme.example.test&product=crm&tenant=acme", w.s.base))
        .bearer_auth(at(&bot))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204);
    let took = within(Duration::from_secs(5), async || w.api("GET", "crm", "/contacts", &crm, None).await.0 == 401).await;
    let took = took.expect("CRM still serves the revoked grant's token");
    eprintln!("grant revoked → CRM API refuses after {took:?}");
    // The promise: within a second (delivery is pushed when the revocation commits; ~30 ms here).
    assert!(took < Duration::from_secs(1), "took {took:?}");
    assert_eq!(w.api("GET", "pipelines", "/pipelines", &pipelines, None).await.0, 200, "Pipelines access stays");

    // Signing out (RP-initiated logout) ends the SSO session: every product hears it.
    let hint = pipelines_tokens["id_token"].as_str().unwrap();
    let (status, _, _) = browser.get(&format!("{}/oauth2/logout?id_token_hint={hint}", w.s.base)).await;
    assert!(status == 200 || status == 303, "{status}");
    let took = within(Duration::from_secs(5), async || {
        w.api("GET", "pipelines", "/pipelines", &pipelines, None).await.0 == 401 && w.api("GET", "reports", "/reports", &reports, None).await.0 == 401
    })
    .await
    .expect("a product still serves a signed-out session's token");
    eprintln!("signed out → Pipelines and Reports APIs refuse after {took:?}");
    assert!(took < Duration::from_secs(1), "took {took:?}");
    w.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_moves_from_ops_to_reports_with_the_tenant_and_the_report() {
    let Some(w) = World::start(Checks { enforce: true }).await else { return };
    for (tenant, id) in [("acme", w.seed.acme.clone()), ("globex", w.seed.globex.clone())] {
        let ops = w.token("ops", "olga@ops.example.test", tenant).await;
        let (status, h) = w.api("POST", "ops", "/reporting", &ops, Some(json!({"report_id": 7}))).await;
        assert_eq!(status, 200, "{h}");
        let code = h["handoff_code"].as_str().unwrap();
        let (status, landed) = w.land(code).await;
        assert_eq!(status, 200);
        assert_eq!(landed["tenant"], id.as_str());
        assert_eq!(landed["permissions"], json!(["read:reports"]), "the operator's Reports permissions only");
        assert_eq!(
            serde_json::from_str::<Value>(landed["context"].as_str().unwrap()).unwrap(),
            json!({"report": 7})
        );
        let rows = w.rows("reports", "/reports", landed["access_token"].as_str().unwrap()).await;
        assert!(
            !rows.is_empty() && rows.iter().all(|(org, _)| *org == id),
            "an {tenant} hand-off shows only {tenant}: {rows:?}"
        );
        assert_eq!(w.land(code).await.0, 400, "a second redemption fails");
    }
    // A CRM token is not an Ops token: no hand-off from it.
    let crm = w.token("crm", "ada@acme.example.test", "acme").await;
    assert_eq!(w.api("POST", "ops", "/reporting", &crm, Some(json!({"report_id": 7}))).await.0, 401);
    w.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_client_reads_one_tenant_only() {
    let Some(world) = World::start(Checks { enforce: false }).await else { return };
    service_client(&world).await;
    world.stop().await;
}

async fn service_client(w: &World) {
    let bot = |org: &'static str| async move {
        w.post_basic(
            "/oauth2/token",
            "reports-bot",
            "reports-bot-secret-0123456789abcdef012345",
            &[("grant_type", "client_credentials"), ("organization", org)],
        )
        .await
    };
    let (status, t) = bot("acme").await;
    assert_eq!(status, 200, "{t}");
    let rows = w.rows("reports", "/reports", &at(&t)).await;
    assert_eq!(rows.len(), 2);
    assert!(
        rows.iter().all(|(org, _)| *org == w.seed.acme),
        "RLS alone keeps the service in its tenant: {rows:?}"
    );
    let (forbidden, unknown) = (bot("globex").await, bot("initech").await);
    assert_eq!(forbidden.0, 400);
    assert_eq!(forbidden, unknown, "an unknown and a forbidden tenant answer alike");
}

/// The lines of auth code each product writes (between `// auth: begin` and `// auth: end`):
/// verification, gates, RLS wiring, policies. The goal is under 40 per product.
#[test]
fn each_product_writes_under_forty_lines_of_auth_code() {
    for (product, source) in [
        ("crm", include_str!("../src/crm.rs")),
        ("pipelines", include_str!("../src/pipelines.rs")),
        ("reports", include_str!("../src/reports.rs")),
        ("ops", include_str!("../src/ops.rs")),
    ] {
        let mut counting = false;
        let mut lines = 0;
        for line in source.lines().map(str::trim) {
            match line {
                "// auth: begin" => counting = true,
                "// auth: end" => counting = false,
                l if counting && !l.is_empty() => lines += 1,
                _ => {}
            }
        }
        assert!(!counting, "{product}: an auth block is not closed");
        eprintln!("{product}: {lines} lines of auth code");
        assert!(lines > 0 && lines < 40, "{product}: {lines} lines of auth code");
    }
}
