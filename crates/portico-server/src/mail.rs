//! Portico's outgoing mail: a queue of account jobs (password reset, sign-up, email verification)
//! worked off the request path, and the SMTP client (`lettre`) that sends what they write.
//!
//! A page that starts a job answers before the job runs, and the job alone looks the email up:
//! whether the address has an account changes neither the answer nor its timing (no enumeration).
//! The queue is in memory and bounded: a job lost to a crash or a full queue is a mail the user
//! asks for again.

use lettre::message::Mailbox;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use portico_model::User;
use portico_protocol::Provider;
use portico_protocol::mail::Mail;
use portico_protocol::signup::SignupRequest;
use std::sync::Arc;
use tokio::sync::{Semaphore, mpsc};

/// Jobs waiting at most; more are dropped (and logged).
const QUEUE: usize = 1024;
/// Mails in flight at once.
const IN_FLIGHT: usize = 8;

/// Work for the mail worker.
#[derive(Debug)]
pub enum Job {
    /// Someone asked to reset the password of this email.
    Reset { email: String, ip: Option<String> },
    /// Someone signed up.
    Signup { request: SignupRequest, ip: Option<String> },
    /// A signed-in user asked to verify their email.
    Verify { user: User, ip: Option<String> },
    /// A signed-in user asked for the link that lets them set up their first second factor.
    Enrolment { user: User, next: String, ip: Option<String> },
}

/// The handle pages use to queue jobs.
pub struct Mailer {
    jobs: mpsc::Sender<Job>,
}

impl Mailer {
    /// Whether `url` is an SMTP URL Portico can send through.
    pub fn check_url(url: &str) -> anyhow::Result<()> {
        AsyncSmtpTransport::<Tokio1Executor>::from_url(url).map_err(|e| anyhow::anyhow!("smtp_url: {e}"))?;
        Ok(())
    }

    /// Starts the worker sending through `smtp_url` as `from`.
    pub fn spawn(provider: Arc<Provider>, smtp_url: &str, from: &str) -> anyhow::Result<Arc<Mailer>> {
        let transport = AsyncSmtpTransport::<Tokio1Executor>::from_url(smtp_url)
            .map_err(|e| anyhow::anyhow!("smtp_url: {e}"))?
            .timeout(Some(std::time::Duration::from_secs(10)))
            .build();
        let from: Mailbox = from.parse().map_err(|e| anyhow::anyhow!("mail_from {from:?}: {e}"))?;
        let (tx, mut rx) = mpsc::channel(QUEUE);
        let slots = Arc::new(Semaphore::new(IN_FLIGHT));
        tokio::spawn(async move {
            while let Some(job) = rx.recv().await {
                let Ok(slot) = slots.clone().acquire_owned().await else { break };
                let (provider, transport, from) = (provider.clone(), transport.clone(), from.clone());
                tokio::spawn(async move {
                    run(&provider, &transport, &from, job).await;
                    drop(slot);
                });
            }
        });
        Ok(Arc::new(Mailer { jobs: tx }))
    }

    /// Queues a job; never waits.
    pub fn submit(&self, job: Job) {
        if let Err(e) = self.jobs.try_send(job) {
            tracing::warn!(error = %e, "mail queue full: a job was dropped");
            metrics::counter!("portico_mail_total", "result" => "dropped").increment(1);
        }
    }
}

async fn run(p: &Provider, transport: &AsyncSmtpTransport<Tokio1Executor>, from: &Mailbox, job: Job) {
    let now = p.clock.now();
    let mail = match job {
        Job::Reset { email, ip } => portico_protocol::reset::request(p, &email, ip, now).await,
        Job::Signup { request, ip } => portico_protocol::signup::request(p, &request, ip, now).await.map(Some),
        Job::Verify { user, ip } => portico_protocol::signup::verification_mail(p, &user, ip, now).await,
        Job::Enrolment { user, next, ip } => portico_protocol::enrolment::link_mail(p, &user, Some(&next), ip, now).await.map(Some),
    };
    let mail = match mail {
        Ok(Some(m)) => m,
        Ok(None) => return,
        Err(e) => {
            tracing::error!(error = %e, "mail job failed");
            return;
        }
    };
    let result = match message(from, &mail) {
        Ok(m) => transport.send(m).await.map(|_| ()).map_err(|e| e.to_string()),
        Err(e) => Err(e),
    };
    // The recipient is personal data and the body holds a link: neither is logged.
    match result {
        Ok(()) => metrics::counter!("portico_mail_total", "result" => "sent").increment(1),
        Err(e) => {
            tracing::warn!(error = %e, subject = %mail.subject, "mail not sent");
            metrics::counter!("portico_mail_total", "result" => "failed").increment(1);
        }
    }
}

fn message(from: &Mailbox, mail: &Mail) -> Result<Message, String> {
    let to: Mailbox = mail.to.parse().map_err(|e| format!("recipient: {e}"))?;
    Message::builder()
        .from(from.clone())
        .to(to)
        .subject(&mail.subject)
        .header(lettre::message::header::ContentType::TEXT_PLAIN)
        .body(mail.text.clone())
        .map_err(|e| e.to_string())
}
