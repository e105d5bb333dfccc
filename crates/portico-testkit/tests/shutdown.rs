//! Graceful shutdown: a stop lets the request in flight finish before the server goes away.

use crate::*;
use base64::Engine;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_in_flight_finishes_after_stop() {
    let s = TestServer::start(Backend::Sqlite, SUITE).await.expect("server");
    let addr = s.running.addr;
    let body = "grant_type=client_credentials&resource=https%3A%2F%2Freports.example.test";
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("reports-web:{REPORTS_SECRET}"));
    let head = format!(
        "POST /oauth2/token HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Basic {auth}\r\n\
         Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    // The request's head and half its body are in; the server is waiting for the rest.
    let mut sock = tokio::net::TcpStream::connect(addr).await.expect("connect");
    sock.write_all(head.as_bytes()).await.expect("write head");
    sock.write_all(&body.as_bytes()[..10]).await.expect("write part");
    sock.flush().await.expect("flush");
    tokio::time::sleep(std::time::Duration::from_millis(200)).await; // let the server read the head

    // SIGTERM's path: stop accepting, let in-flight requests finish.
    let stopping = tokio::spawn(s.stop());
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    assert!(!stopping.is_finished(), "the server must wait for the request in flight");
    sock.write_all(&body.as_bytes()[10..]).await.expect("write rest");
    let mut answer = String::new();
    sock.read_to_string(&mut answer).await.expect("read");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.contains("\"access_token\""), "{answer}");
    tokio::time::timeout(std::time::Duration::from_secs(10), stopping)
        .await
        .expect("stop finishes once the request is done")
        .expect("stop");
    // And it no longer accepts connections.
    assert!(tokio::net::TcpStream::connect(addr).await.is_err());
}
