//! `tls_cert` / `tls_key`: Portico serves HTTPS itself, with a certificate made at test time.

use crate::*;
use openidconnect::reqwest;

/// Portico over HTTPS at `https://localhost:<port>` with a certificate made now (SQLite), `configure`
/// adjusting the rest; a client that trusts the certificate and follows no redirect; the directory
/// holding the certificate, to remove.
async fn https_server(configure: impl FnOnce(&mut portico_server::config::Config)) -> (TestServer, reqwest::Client, std::path::PathBuf) {
    let dir = std::env::temp_dir().join(format!("portico-tls-{}", portico_protocol::random::id("")));
    std::fs::create_dir_all(&dir).expect("dir");
    let made = rcgen::generate_simple_self_signed(vec!["localhost".into()]).expect("certificate");
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&cert, made.cert.pem()).expect("write cert");
    std::fs::write(&key, made.signing_key.serialize_pem()).expect("write key");
    let s = TestServer::start_with(Backend::Sqlite, SUITE, |c| {
        let port = c.listen.rsplit(':').next().expect("port").to_owned();
        c.issuer = format!("https://localhost:{port}");
        c.tls_cert = Some(cert.clone());
        c.tls_key = Some(key.clone());
        configure(c);
    })
    .await
    .expect("server");
    let http = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(made.cert.pem().as_bytes()).expect("pem"))
        .resolve("localhost", s.running.addr)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    (s, http, dir)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serves_https_and_sets_host_prefixed_secure_cookies() {
    let (s, http, dir) = https_server(|_| {}).await;

    // Discovery answers over TLS and names the https issuer; HSTS tells browsers to stay on TLS.
    let resp = http
        .get(format!("{}/.well-known/openid-configuration", s.base))
        .send()
        .await
        .expect("https GET");
    let hsts = resp.headers().get("strict-transport-security").map(|v| v.to_str().unwrap().to_owned());
    assert_eq!(hsts.as_deref(), Some("max-age=31536000"));
    let text = resp.text().await.expect("body");
    let doc: serde_json::Value = serde_json::from_str(&text).expect("json");
    assert_eq!(doc["issuer"], s.base.as_str());
    assert!(doc["token_endpoint"].as_str().expect("token endpoint").starts_with("https://localhost:"));

    // The hosted pages' cookies carry Secure and the __Host- prefix (so: Path=/, no Domain).
    let (_, challenge) = pkce();
    let authorize = format!(
        "{}/oauth2/authorize?response_type=code&client_id=crm-web&redirect_uri={}&scope=openid&code_challenge={challenge}&code_challenge_method=S256",
        s.base,
        url::form_urlencoded::byte_serialize(CALLBACK.as_bytes()).collect::<String>()
    );
    let mut url = authorize;
    let mut cookies = Vec::new();
    for _ in 0..3 {
        // A browser: it sends back the cookies it was given (the authorization's browser binding).
        let jar: Vec<&str> = cookies.iter().filter_map(|c: &String| c.split(';').next()).collect();
        let resp = http.get(&url).header("cookie", jar.join("; ")).send().await.expect("GET");
        cookies.extend(resp.headers().get_all("set-cookie").iter().map(|v| v.to_str().expect("ascii").to_owned()));
        match resp.headers().get("location") {
            Some(l) => url = format!("{}{}", s.base, l.to_str().expect("ascii")),
            None => break,
        }
    }
    let csrf = cookies.iter().find(|c| c.contains("portico_csrf=")).expect("a CSRF cookie on the login page");
    assert!(csrf.starts_with("__Host-portico_csrf="), "{csrf}");
    assert!(csrf.contains("Secure") && csrf.contains("HttpOnly") && csrf.contains("Path=/"), "{csrf}");
    assert!(!csrf.to_ascii_lowercase().contains("domain="), "{csrf}");

    // Plain HTTP on the TLS port gets no answer from the application.
    let plain = reqwest::Client::new().get(format!("http://{}/healthz", s.running.addr)).send().await;
    assert!(plain.is_err() || !plain.expect("response").status().is_success());

    s.stop().await;
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn tls_needs_an_https_issuer_and_both_files() {
    let mut c = portico_server::config::Config {
        tls_cert: Some("cert.pem".into()),
        ..Default::default()
    };
    assert!(c.validate().expect_err("key missing").to_string().contains("tls_cert and tls_key go together"));
    c.tls_key = Some("key.pem".into());
    assert!(c.validate().expect_err("http issuer").to_string().contains("issuer must be https"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_tls_too_a_client_that_never_finishes_its_handshake_holds_no_slot_for_long() {
    use tokio::io::AsyncReadExt;
    let (s, http, dir) = https_server(|c| {
        c.read_timeout = "1s".into();
        c.max_connections = 2;
    })
    .await;
    // Two connections that never say hello: every slot taken ...
    let mut silent = Vec::new();
    for _ in 0..2 {
        silent.push(tokio::net::TcpStream::connect(s.running.addr).await.unwrap());
    }
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    let quick = http
        .get(format!("{}/healthz", s.base))
        .timeout(std::time::Duration::from_millis(400))
        .send()
        .await;
    assert!(quick.is_err(), "a third connection was served beside two held ones");
    // ... until the handshake timeout closes them.
    for mut c in silent {
        let mut buf = [0u8; 64];
        let read = tokio::time::timeout(std::time::Duration::from_secs(5), c.read(&mut buf)).await;
        assert!(read.is_ok(), "a silent TLS connection was never closed");
    }
    let served = http.get(format!("{}/healthz", s.base)).send().await.expect("served");
    assert_eq!(served.status(), 200);
    s.stop().await;
    let _ = std::fs::remove_dir_all(dir);
}
