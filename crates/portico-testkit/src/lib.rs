//! Dev-only: start a real Portico server on a loopback port with a suite file, on SQLite or on a
//! fresh PostgreSQL database (from `PORTICO_TEST_DATABASE_URL`), and drop it all afterwards.

use portico_server::config::Config;
use portico_server::suite::Suite;
use std::collections::{HashMap, HashSet};
use std::path::PathBuf;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

pub struct TestServer {
    pub base: String,
    pub running: portico_server::Running,
    pub config: Config,
    /// The loopback SMTP server Portico's mail goes to (`smtp_url`).
    pub mail: portico_server::mailsink::MailSink,
    /// A second handle on the listening socket: the port stays Portico's across [`TestServer::restart`],
    /// so no outgoing connection of another test can take it while the server is down.
    socket: std::net::TcpListener,
    dir: PathBuf,
    pg: Option<(String, String)>,
}

/// A tokio listener on the same socket as `socket`.
fn listener_on(socket: &std::net::TcpListener) -> tokio::net::TcpListener {
    tokio::net::TcpListener::from_std(socket.try_clone().expect("clone the listening socket")).expect("listener")
}

/// The PostgreSQL server URL for tests. Under `CI=true` its absence fails the test; elsewhere the
/// test says loudly that it was skipped.
pub fn postgres_url() -> Option<String> {
    match std::env::var("PORTICO_TEST_DATABASE_URL") {
        Ok(u) if !u.is_empty() => Some(u),
        _ if std::env::var("CI").as_deref() == Ok("true") => panic!("CI=true but PORTICO_TEST_DATABASE_URL is not set: PostgreSQL tests cannot be skipped"),
        _ => {
            eprintln!("SKIPPED: PostgreSQL test (set PORTICO_TEST_DATABASE_URL to run it)");
            None
        }
    }
}

async fn fresh_postgres(admin_url: &str) -> anyhow::Result<(String, String)> {
    use sqlx::Connection;
    let name = format!("portico_test_{}", uuid::Uuid::new_v4().simple());
    let mut conn = sqlx::PgConnection::connect(admin_url).await?;
    sqlx::query(&format!("CREATE DATABASE {name}")).execute(&mut conn).await?;
    conn.close().await?;
    let mut url = url::Url::parse(admin_url)?;
    url.set_path(&format!("/{name}"));
    Ok((url.to_string(), name))
}

impl TestServer {
    /// Starts a server with `suite` applied. `None` when the backend is PostgreSQL and it is not
    /// configured outside CI.
    pub async fn start(backend: Backend, suite: &str) -> Option<Self> {
        Self::start_with(backend, suite, |_| {}).await
    }

    /// As [`TestServer::start`], with `configure` adjusting the configuration first (its `listen`
    /// names the bound port); `base` follows the issuer it leaves.
    pub async fn start_with(backend: Backend, suite: &str, configure: impl FnOnce(&mut Config)) -> Option<Self> {
        let pg = match backend {
            Backend::Sqlite => None,
            Backend::Postgres => {
                let admin = postgres_url()?;
                Some((admin.clone(), fresh_postgres(&admin).await.expect("create a test database")))
            }
        };
        let dir = std::env::temp_dir().join(format!("portico-test-{}", uuid::Uuid::new_v4().simple()));
        let socket = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        socket.set_nonblocking(true).expect("non-blocking");
        let listener = listener_on(&socket);
        let addr = listener.local_addr().expect("addr");
        let base = format!("http://127.0.0.1:{}", addr.port());
        let mail = portico_server::mailsink::MailSink::start("127.0.0.1:0").await.expect("mail sink");
        let mut config = Config {
            listen: addr.to_string(),
            issuer: base,
            data_dir: dir.clone(),
            database_url: pg.as_ref().map(|(_, (url, _))| url.clone()),
            smtp_url: Some(mail.url()),
            ..Config::default()
        };
        configure(&mut config);
        config.validate().expect("valid test configuration");
        let base = config.issuer.clone();
        let (store, kek) = portico_server::open_store(&config, portico_server::NewKey::Allowed).await.expect("open store");
        let parsed = Suite::parse("test suite", suite, &HashSet::new()).expect("valid suite");
        parsed.check_for_issuer(&config.issuer).expect("valid suite for this issuer");
        parsed.apply(&store, &kek, "test", now()).await.expect("apply");
        let running = portico_server::start(&config, store, kek, listener, None).await.expect("start");
        Some(Self {
            base,
            running,
            config,
            mail,
            socket,
            dir,
            pg: pg.map(|(admin, (_, name))| (admin, name)),
        })
    }

    pub fn store(&self) -> &portico_store::Store {
        &self.running.provider.store
    }

    /// Stops the server and starts it again on the same port, data directory or database: what
    /// survives a restart of Portico.
    pub async fn restart(self) -> Self {
        let Self {
            base,
            running,
            config,
            mail,
            socket,
            dir,
            pg,
        } = self;
        let store = running.provider.store.clone();
        running.stop().await;
        store.close().await;
        let listener = listener_on(&socket);
        let (store, kek) = portico_server::open_store(&config, portico_server::NewKey::Allowed).await.expect("open store");
        let running = portico_server::start(&config, store, kek, listener, None).await.expect("start");
        Self {
            base,
            running,
            config,
            mail,
            socket,
            dir,
            pg,
        }
    }

    /// Stops the server and removes its data directory or database.
    pub async fn stop(self) {
        let store = self.running.provider.store.clone();
        self.running.stop().await;
        store.close().await;
        let _ = std::fs::remove_dir_all(&self.dir);
        if let Some((admin, name)) = self.pg {
            use sqlx::Connection;
            if let Ok(mut conn) = sqlx::PgConnection::connect(&admin).await {
                let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).execute(&mut conn).await;
            }
        }
    }
}

pub fn now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_secs() as i64
}

/// A tiny browser: cookies by name, no automatic redirects, so tests see every hop.
pub struct Browser {
    pub http: openidconnect::reqwest::Client,
    pub cookies: HashMap<String, String>,
}

impl Default for Browser {
    fn default() -> Self {
        Self::new()
    }
}

impl Browser {
    pub fn new() -> Self {
        let http = openidconnect::reqwest::Client::builder()
            .redirect(openidconnect::reqwest::redirect::Policy::none())
            .build()
            .expect("client");
        Self { http, cookies: HashMap::new() }
    }

    fn cookie_header(&self) -> String {
        self.cookies.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("; ")
    }

    fn keep(&mut self, resp: &openidconnect::reqwest::Response) {
        for v in resp.headers().get_all("set-cookie") {
            let text = v.to_str().unwrap_or("");
            let kv = text.split(';').next().unwrap_or("");
            if let Some((k, val)) = kv.split_once('=') {
                self.cookies.insert(k.trim().to_owned(), val.to_owned());
            }
        }
    }

    pub async fn get(&mut self, url: &str) -> (u16, Option<String>, String) {
        let resp = self.http.get(url).header("cookie", self.cookie_header()).send().await.expect("GET");
        self.finish(resp).await
    }

    /// A GET that also returns the response headers.
    pub async fn get_with_headers(&mut self, url: &str) -> (u16, openidconnect::http::HeaderMap, String) {
        let resp = self.http.get(url).header("cookie", self.cookie_header()).send().await.expect("GET");
        self.keep(&resp);
        let (status, headers) = (resp.status().as_u16(), resp.headers().clone());
        (status, headers, resp.text().await.unwrap_or_default())
    }

    /// A form POST that also returns the response headers.
    pub async fn post_form_with_headers(&mut self, url: &str, form: &[(&str, &str)]) -> (u16, openidconnect::http::HeaderMap, String) {
        let resp = self
            .http
            .post(url)
            .header("cookie", self.cookie_header())
            .header("content-type", "application/x-www-form-urlencoded")
            .body(serde_urlencoded_pairs(form))
            .send()
            .await
            .expect("POST");
        self.keep(&resp);
        let (status, headers) = (resp.status().as_u16(), resp.headers().clone());
        (status, headers, resp.text().await.unwrap_or_default())
    }

    pub async fn post_form(&mut self, url: &str, form: &[(&str, &str)]) -> (u16, Option<String>, String) {
        let body = serde_urlencoded_pairs(form);
        let resp = self
            .http
            .post(url)
            .header("cookie", self.cookie_header())
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .await
            .expect("POST");
        self.finish(resp).await
    }

    async fn finish(&mut self, resp: openidconnect::reqwest::Response) -> (u16, Option<String>, String) {
        self.keep(&resp);
        let status = resp.status().as_u16();
        let location = resp.headers().get("location").and_then(|v| v.to_str().ok()).map(str::to_owned);
        (status, location, resp.text().await.unwrap_or_default())
    }

    /// Follows redirects within `base` until one leaves it (the authorization response) or a page
    /// is shown. Returns the final (status, location, body).
    pub async fn follow(&mut self, base: &str, mut url: String) -> (u16, Option<String>, String) {
        loop {
            let (status, loc, body) = self.get(&url).await;
            match loc {
                Some(l) if (300..400).contains(&status) => {
                    let next = if l.starts_with('/') { format!("{base}{l}") } else { l };
                    if !next.starts_with(base) {
                        return (status, Some(next), body);
                    }
                    url = next;
                }
                _ => return (status, loc, body),
            }
        }
    }

    /// Submits the hosted login form found in `page`.
    pub async fn login(&mut self, base: &str, page: &str, email: &str, password: &str) -> (u16, Option<String>, String) {
        let csrf = hidden(page, "csrf").expect("csrf field");
        let mut form = vec![("email", email), ("password", password), ("csrf", csrf.as_str())];
        let req = hidden(page, "req");
        if let Some(r) = &req {
            form.push(("req", r.as_str()));
        }
        let (status, loc, body) = self.post_form(&format!("{base}/login"), &form).await;
        match loc {
            Some(l) if status == 303 => self.follow(base, if l.starts_with('/') { format!("{base}{l}") } else { l }).await,
            _ => (status, loc, body),
        }
    }
}

fn serde_urlencoded_pairs(form: &[(&str, &str)]) -> String {
    url::form_urlencoded::Serializer::new(String::new()).extend_pairs(form).finish()
}

/// The value of a hidden input in an HTML page.
pub fn hidden(page: &str, name: &str) -> Option<String> {
    let marker = format!("name=\"{name}\" value=\"");
    let start = page.find(&marker)? + marker.len();
    let end = page[start..].find('"')? + start;
    // Named entities (pages by hand) or numeric ones (pages from templates).
    Some(page[start..end].replace("&amp;", "&").replace("&#38;", "&"))
}

/// A query parameter of a URL.
pub fn query_param(url: &str, name: &str) -> Option<String> {
    url::Url::parse(url).ok()?.query_pairs().find(|(k, _)| k == name).map(|(_, v)| v.into_owned())
}
