//! Shared by the tests: a JWKS server on 127.0.0.1 that counts its answers, and fresh
//! PostgreSQL databases.

use axum::routing::get;
use serde_json::{Value, json};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

/// An issuer on loopback serving discovery and a JWK Set; it counts JWKS requests and can be
/// made to fail.
#[derive(Clone)]
pub struct JwksServer {
    pub issuer: String,
    pub jwks: Arc<RwLock<Value>>,
    pub algs: Arc<RwLock<Value>>,
    /// Discovery's `jwks_uri`, when not the server's own.
    pub jwks_uri: Arc<RwLock<Option<String>>>,
    pub hits: Arc<AtomicU64>,
    pub down: Arc<AtomicBool>,
}

impl JwksServer {
    pub async fn start(jwks: Value) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let issuer = format!("http://127.0.0.1:{}", listener.local_addr().unwrap().port());
        let s = JwksServer {
            issuer: issuer.clone(),
            jwks: Arc::new(RwLock::new(jwks)),
            algs: Arc::new(RwLock::new(json!(["EdDSA"]))),
            jwks_uri: Arc::default(),
            hits: Arc::default(),
            down: Arc::default(),
        };
        let (d, k) = (s.clone(), s.clone());
        let app = axum::Router::new()
            .route(
                "/.well-known/openid-configuration",
                get(move || {
                    let d = d.clone();
                    async move {
                        axum::Json(json!({
                            "issuer": d.issuer,
                            "jwks_uri": d.jwks_uri.read().unwrap().clone().unwrap_or_else(|| format!("{}/jwks", d.issuer)),
                            "id_token_signing_alg_values_supported": d.algs.read().unwrap().clone(),
                        }))
                    }
                }),
            )
            .route(
                "/jwks",
                get(move || {
                    let k = k.clone();
                    async move {
                        k.hits.fetch_add(1, Ordering::SeqCst);
                        // A little latency, so concurrent callers really overlap a fetch.
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        if k.down.load(Ordering::SeqCst) {
                            return axum::http::StatusCode::SERVICE_UNAVAILABLE.into_response();
                        }
                        ([("cache-control", "public, max-age=300")], axum::Json(k.jwks.read().unwrap().clone())).into_response()
                    }
                }),
            );
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        s
    }

    pub fn hits(&self) -> u64 {
        self.hits.load(Ordering::SeqCst)
    }
}

use axum::response::IntoResponse;

/// A fresh database on the test PostgreSQL server, dropped by [`Db::drop_now`]. `None` outside
/// CI when no server is configured (said loudly); under `CI=true` a missing server fails.
pub struct Db {
    pub admin: String,
    pub name: String,
    pub url: String,
}

impl Db {
    pub async fn fresh() -> Option<Db> {
        use sqlx::Connection;
        let admin = match std::env::var("PORTICO_TEST_DATABASE_URL") {
            Ok(u) if !u.is_empty() => u,
            _ if std::env::var("CI").as_deref() == Ok("true") => panic!("CI=true but PORTICO_TEST_DATABASE_URL is not set"),
            _ => {
                eprintln!("SKIPPED: PostgreSQL test (set PORTICO_TEST_DATABASE_URL to run it)");
                return None;
            }
        };
        let name = format!("guard_test_{}", uuid::Uuid::new_v4().simple());
        let mut conn = sqlx::PgConnection::connect(&admin).await.unwrap();
        sqlx::query(&format!("CREATE DATABASE {name}")).execute(&mut conn).await.unwrap();
        let mut url = url::Url::parse(&admin).unwrap();
        url.set_path(&format!("/{name}"));
        Some(Db {
            admin,
            name,
            url: url.to_string(),
        })
    }

    /// The database's URL, connecting as `user`.
    pub fn url_as(&self, user: &str) -> String {
        let mut url = url::Url::parse(&self.url).unwrap();
        url.set_username(user).unwrap();
        url.to_string()
    }

    pub async fn pool(&self) -> sqlx::PgPool {
        sqlx::postgres::PgPoolOptions::new().max_connections(4).connect(&self.url).await.unwrap()
    }

    pub async fn drop_now(self) {
        use sqlx::Connection;
        let mut conn = sqlx::PgConnection::connect(&self.admin).await.unwrap();
        sqlx::query(&format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name))
            .execute(&mut conn)
            .await
            .unwrap();
    }
}
