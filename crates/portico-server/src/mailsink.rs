//! A loopback SMTP server that keeps what it receives: where `portico dev` and the tests send
//! Portico's mail. It speaks SMTP over TCP (the `mailin` crate runs the protocol's state machine;
//! this module does the IO), so the mail goes out through the same SMTP client as in production.
//! Nothing is relayed; messages live in memory, the newest 200.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;
use tokio::sync::Notify;

const KEPT: usize = 200;
/// A mail larger than this is refused (Portico's are a few kilobytes).
const MAX_MESSAGE: usize = 1 << 20;

/// One received mail, decoded.
#[derive(Clone, Debug)]
pub struct Received {
    pub at: i64,
    pub from: String,
    pub to: Vec<String>,
    pub subject: String,
    pub text: String,
}

#[derive(Default)]
struct Shared {
    mails: Mutex<Vec<Received>>,
    /// How many arrived in all (the list keeps the newest only).
    total: std::sync::atomic::AtomicUsize,
    arrived: Notify,
}

/// A running sink.
#[derive(Clone)]
pub struct MailSink {
    addr: SocketAddr,
    shared: Arc<Shared>,
}

impl MailSink {
    /// Listens on `addr` (loopback; port 0 picks one).
    pub async fn start(addr: &str) -> std::io::Result<Self> {
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared::default());
        let keep = shared.clone();
        tokio::spawn(async move {
            while let Ok((stream, peer)) = listener.accept().await {
                let shared = keep.clone();
                tokio::spawn(async move {
                    if let Err(e) = session(stream, peer, shared).await {
                        tracing::debug!(error = %e, "mail sink connection ended");
                    }
                });
            }
        });
        Ok(Self { addr, shared })
    }

    /// The `smtp_url` that reaches this sink (plain SMTP: it is loopback only).
    pub fn url(&self) -> String {
        format!("smtp://{}", self.addr)
    }

    /// What arrived, newest first.
    pub fn mails(&self) -> Vec<Received> {
        let mails = self.shared.mails.lock().expect("sink lock");
        mails.iter().rev().cloned().collect()
    }

    /// How many mails arrived since the start.
    pub fn received(&self) -> usize {
        self.shared.total.load(std::sync::atomic::Ordering::Acquire)
    }

    /// Waits (up to `timeout`) until `count` mails to `to` have arrived; returns them oldest first.
    pub async fn wait_for(&self, to: &str, count: usize, timeout: std::time::Duration) -> Vec<Received> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let arrived = self.shared.arrived.notified();
            let mut found: Vec<Received> = self.mails().into_iter().filter(|m| m.to.iter().any(|t| t.eq_ignore_ascii_case(to))).collect();
            if found.len() >= count || tokio::time::Instant::now() >= deadline {
                found.reverse();
                return found;
            }
            let _ = tokio::time::timeout_at(deadline, arrived).await;
        }
    }
}

struct Collect {
    shared: Arc<Shared>,
    from: String,
    to: Vec<String>,
    data: Vec<u8>,
}

impl mailin::Handler for Collect {
    fn data_start(&mut self, _domain: &str, from: &str, _is8bit: bool, to: &[String]) -> mailin::Response {
        self.from = from.to_owned();
        self.to = to.to_vec();
        self.data.clear();
        mailin::response::OK
    }

    fn data(&mut self, buf: &[u8]) -> std::io::Result<()> {
        if self.data.len() + buf.len() > MAX_MESSAGE {
            return Err(std::io::Error::other("message too large"));
        }
        self.data.extend_from_slice(buf);
        Ok(())
    }

    fn data_end(&mut self) -> mailin::Response {
        let parsed = mail_parser::MessageParser::default().parse(&self.data);
        let (subject, text) = parsed.as_ref().map_or_else(Default::default, |m| {
            (
                m.subject().unwrap_or_default().to_owned(),
                m.body_text(0).map(|t| t.into_owned()).unwrap_or_default(),
            )
        });
        let mail = Received {
            at: portico_protocol::clock::Clock::default().now(),
            from: std::mem::take(&mut self.from),
            to: std::mem::take(&mut self.to),
            subject,
            text,
        };
        {
            let mut mails = self.shared.mails.lock().expect("sink lock");
            mails.push(mail);
            let excess = mails.len().saturating_sub(KEPT);
            mails.drain(..excess);
            self.shared.total.fetch_add(1, std::sync::atomic::Ordering::AcqRel);
        }
        self.shared.arrived.notify_waiters();
        mailin::response::OK
    }
}

async fn session(stream: tokio::net::TcpStream, peer: SocketAddr, shared: Arc<Shared>) -> std::io::Result<()> {
    let (read, mut write) = stream.into_split();
    let mut read = BufReader::new(read);
    let handler = Collect {
        shared,
        from: String::new(),
        to: Vec::new(),
        data: Vec::new(),
    };
    let mut smtp = mailin::SessionBuilder::new("portico-mail-sink").build(peer.ip(), handler);
    write.write_all(&smtp.greeting().buffer()?).await?;
    let mut line = Vec::new();
    loop {
        line.clear();
        if read.read_until(b'\n', &mut line).await? == 0 || line.len() > MAX_MESSAGE {
            return Ok(());
        }
        let response = smtp.process(&line);
        match response.action {
            mailin::Action::NoReply => {}
            mailin::Action::Close => {
                write.write_all(&response.buffer()?).await?;
                return Ok(());
            }
            _ => write.write_all(&response.buffer()?).await?,
        }
    }
}
