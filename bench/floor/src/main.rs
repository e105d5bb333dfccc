//! The floors `bench/run` measures Portico against, on the same machine in the same session:
//!
//! - `floor sign PORT`: `POST /oauth2/token` answered with a fresh EdDSA JWT (one Ed25519
//!   signature over Portico-sized claims) and nothing else — no client authentication, no store,
//!   no audit: what a client_credentials answer cannot cost less than.
//! - `floor static PORT DISCOVERY_FILE JWKS_FILE`: `GET /.well-known/openid-configuration` and
//!   `GET /oauth2/jwks` answered with the bytes of those files: the HTTP floor.

use aws_lc_rs::signature::Ed25519KeyPair;
use axum::Router;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let usage = "usage: floor sign PORT | floor static PORT DISCOVERY_FILE JWKS_FILE";
    let port: u16 = args.get(2).and_then(|p| p.parse().ok()).expect(usage);
    let app = match args.get(1).map(String::as_str) {
        Some("sign") => sign(),
        Some("static") => statics(args.get(3).expect(usage), args.get(4).expect(usage)),
        _ => panic!("{usage}"),
    };
    // The peer's run.sh checks that its introspection token is active before it starts; the
    // floors answer that check and are never measured on it.
    let app = app.route(
        "/floor/introspect",
        post(|| async { ([(header::CONTENT_TYPE, "application/json")], r#"{"active":true}"#) }),
    );
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await.expect("bind 127.0.0.1");
        axum::serve(listener, app).await.expect("serve");
    });
}

fn sign() -> Router {
    let pkcs8 = Ed25519KeyPair::generate_pkcs8(&aws_lc_rs::rand::SystemRandom::new()).expect("key");
    let key = Arc::new(Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).expect("key"));
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"EdDSA","typ":"at+jwt","kid":"floor"}"#);
    let counter = Arc::new(AtomicU64::new(0));
    Router::new().route(
        "/oauth2/token",
        post(move || {
            let (key, header, counter) = (key.clone(), header.clone(), counter.clone());
            async move {
                let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
                let jti = counter.fetch_add(1, Ordering::Relaxed);
                let claims = format!(
                    r#"{{"iss":"http://127.0.0.1","sub":"bench-client","aud":"https://api.example.test","client_id":"bench-client","scope":"api:read","iat":{now},"exp":{},"jti":"floor-{jti:016x}","roles":["reader"],"permissions":["api:read"]}}"#,
                    now + 600
                );
                let mut jwt = format!("{header}.{}", URL_SAFE_NO_PAD.encode(claims));
                let signature = key.sign(jwt.as_bytes());
                jwt.push('.');
                jwt.push_str(&URL_SAFE_NO_PAD.encode(signature.as_ref()));
                let body = format!(r#"{{"access_token":"{jwt}","token_type":"Bearer","expires_in":600,"scope":"api:read"}}"#);
                ([(header::CONTENT_TYPE, "application/json"), (header::CACHE_CONTROL, "no-store")], body).into_response()
            }
        }),
    )
}

fn statics(discovery: &str, jwks: &str) -> Router {
    let read = |p: &str| axum::body::Bytes::from(std::fs::read(p).unwrap_or_else(|e| panic!("{p}: {e}")));
    let (discovery, jwks) = (read(discovery), read(jwks));
    let answer = |bytes: axum::body::Bytes| {
        move || {
            let bytes = bytes.clone();
            async move {
                (
                    [(header::CONTENT_TYPE, "application/json"), (header::CACHE_CONTROL, "public, max-age=300")],
                    bytes,
                )
            }
        }
    };
    Router::new()
        .route("/.well-known/openid-configuration", get(answer(discovery)))
        .route("/oauth2/jwks", get(answer(jwks)))
}
