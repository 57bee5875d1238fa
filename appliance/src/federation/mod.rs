//! Delivery to other relays: Maddy's queue hands every message for another domain to this
//! LMTP hop (`target.lmtp` behind `target.queue`), which delivers it by HTTPS `/mxdeliv`
//! first and by SMTP (port 25, STARTTLS, verified) as fallback, and answers per recipient;
//! Maddy's queue keeps the message and retries on 4xx, and bounces on 5xx.
//!
//! Per destination domain, upstream's transport behaviour (research/chatmail.md §1.3):
//! MX hosts in preference order ([`route::hosts`]; null MX `556`, unknown domain `512`,
//! DNS trouble `421`); for each host HTTPS unless the host is in the "mxdeliv
//! unsupported" cache, then SMTP; an SMTP success puts the host into that cache for 30
//! minutes, an SMTP connection failure takes it out and moves on to the next host; an
//! SMTP refusal is the answer (no other host is tried). When every host failed:
//! `421 Failed to connect to any mail server; last attempt to <host>: <error>`. Domains
//! are delivered in parallel, at most [`MAX_DESTINATIONS`] at a time (`421 Transport
//! busy` beyond that).

pub mod https;
pub mod route;
pub mod smtp_out;
pub mod tls;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chatmail_appliance::mail_rules::{address, Reply};
use hickory_resolver::TokioResolver;
use tokio::sync::Semaphore;

use crate::metrics::Metrics;
use crate::smtp::server::{Handler, Transaction};
use route::TlsPolicy;

/// How long a host that took SMTP after HTTPS failed is not asked over HTTPS again.
pub const UNSUPPORTED_FOR: Duration = Duration::from_secs(30 * 60);

/// Upstream's limit of destination workers.
pub const MAX_DESTINATIONS: usize = 500;

/// Settings of outbound delivery.
pub struct Settings {
    /// Our mail domain (EHLO name).
    pub mail_domain: String,
    /// The port of other relays' HTTPS (443; tests use others).
    pub https_port: u16,
    /// The port of other relays' SMTP (25; tests use others).
    pub smtp_port: u16,
    /// Whether HTTPS delivery is tried at all.
    pub https_enabled: bool,
}

/// The outbound transport. Cheap to clone.
#[derive(Clone)]
pub struct Transport {
    inner: Arc<Inner>,
}

struct Inner {
    settings: Settings,
    resolver: TokioResolver,
    tls: tls::ClientTls,
    unsupported: Mutex<HashMap<String, Instant>>,
    workers: Semaphore,
    metrics: Metrics,
}

impl Transport {
    pub fn new(
        settings: Settings,
        resolver: TokioResolver,
        tls: tls::ClientTls,
        metrics: Metrics,
    ) -> Transport {
        Transport {
            inner: Arc::new(Inner {
                settings,
                resolver,
                tls,
                unsupported: Mutex::new(HashMap::new()),
                workers: Semaphore::new(MAX_DESTINATIONS),
                metrics,
            }),
        }
    }

    /// Delivers `message` to `rcpts`: one reply per recipient, in order.
    pub async fn deliver(&self, from: &str, rcpts: &[String], message: Arc<Vec<u8>>) -> Vec<Reply> {
        // Group by domain, keeping each recipient's position.
        let mut groups: Vec<(String, Vec<usize>)> = Vec::new();
        for (i, rcpt) in rcpts.iter().enumerate() {
            let domain = address::domain_of(rcpt).to_ascii_lowercase();
            match groups.iter_mut().find(|(d, _)| *d == domain) {
                Some((_, idx)) => idx.push(i),
                None => groups.push((domain, vec![i])),
            }
        }
        let mut replies = vec![Reply::new(451, "451 4.3.0 Local error".into()); rcpts.len()];
        let tasks = groups.into_iter().map(|(domain, idx)| {
            let this = self.clone();
            let group: Vec<String> = idx.iter().map(|&i| rcpts[i].clone()).collect();
            let message = message.clone();
            let from = from.to_string();
            async move {
                let Ok(_permit) = this.inner.workers.try_acquire() else {
                    let busy = Reply::new(421, "421 Transport busy".into());
                    return (idx, vec![busy; group.len()]);
                };
                let answers = this.destination(&domain, &from, &group, &message).await;
                (idx, answers)
            }
        });
        for (idx, answers) in futures_join_all(tasks).await {
            for (i, reply) in idx.into_iter().zip(answers) {
                replies[i] = reply;
            }
        }
        replies
    }

    fn is_unsupported(&self, host: &str) -> bool {
        let map = self
            .inner
            .unsupported
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        map.get(host).is_some_and(|until| *until > Instant::now())
    }

    fn set_unsupported(&self, host: &str, unsupported: bool) {
        let mut map = self
            .inner
            .unsupported
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if unsupported {
            map.retain(|_, until| *until > Instant::now());
            map.insert(host.to_string(), Instant::now() + UNSUPPORTED_FOR);
        } else {
            map.remove(host);
        }
    }

    /// All recipients of one domain.
    async fn destination(
        &self,
        domain: &str,
        from: &str,
        rcpts: &[String],
        message: &[u8],
    ) -> Vec<Reply> {
        let s = &self.inner.settings;
        let hosts = match route::hosts(&self.inner.resolver, domain).await {
            Ok(hosts) => hosts,
            Err(reply) => {
                tracing::info!(domain, reply = %reply.line, "no route");
                self.count("none", &reply, rcpts.len());
                return vec![reply; rcpts.len()];
            }
        };
        let policy = route::tls_policy(domain);
        let mut last_error = String::from("no mail server");
        let mut last_host = domain.to_string();
        for host in &hosts {
            let ips = match route::addresses(&self.inner.resolver, host).await {
                Ok(ips) => ips,
                Err(e) => {
                    last_error = e;
                    last_host = host.name.clone();
                    continue;
                }
            };
            let ip = ips[0];
            if s.https_enabled && policy != TlsPolicy::Plain && !self.is_unsupported(&host.name) {
                let tls = match policy {
                    TlsPolicy::Verify => self.inner.tls.https_verified.clone(),
                    _ => self.inner.tls.https_any.clone(),
                };
                match https::post(
                    tls,
                    &host.name,
                    ip,
                    s.https_port,
                    from,
                    rcpts,
                    message.to_vec(),
                )
                .await
                {
                    Ok(answer) if (200..300).contains(&answer.status) => {
                        tracing::info!(domain, host = host.name, "delivered over HTTPS");
                        let ok = Reply::new(250, "250 OK (HTTPS)".into());
                        self.count("https", &ok, rcpts.len());
                        return vec![ok; rcpts.len()];
                    }
                    Ok(answer) => tracing::info!(
                        domain,
                        host = host.name,
                        status = answer.status,
                        answer = answer.text,
                        "HTTPS delivery refused; trying SMTP"
                    ),
                    Err(e) => tracing::info!(
                        domain,
                        host = host.name,
                        "HTTPS delivery failed ({e}); trying SMTP"
                    ),
                }
            }
            let tls = match policy {
                TlsPolicy::Verify => Some(self.inner.tls.smtp_verified.clone()),
                TlsPolicy::AcceptInvalid => Some(self.inner.tls.smtp_any.clone()),
                TlsPolicy::Plain => None,
            };
            match smtp_out::deliver(
                tls,
                &s.mail_domain,
                &host.name,
                ip,
                s.smtp_port,
                from,
                rcpts,
                message,
            )
            .await
            {
                smtp_out::Outcome::Answered(replies) => {
                    let replies: Vec<Reply> = replies
                        .into_iter()
                        .map(|r| {
                            if r.is_success() {
                                Reply::new(250, "250 OK (SMTP)".into())
                            } else {
                                r
                            }
                        })
                        .collect();
                    if replies.iter().any(Reply::is_success) {
                        self.set_unsupported(&host.name, true);
                        tracing::info!(domain, host = host.name, "delivered over SMTP");
                    } else {
                        tracing::info!(domain, host = host.name, reply = %replies[0].line, "refused over SMTP");
                    }
                    for r in &replies {
                        self.count("smtp", r, 1);
                    }
                    return replies;
                }
                smtp_out::Outcome::Failed(e) => {
                    tracing::info!(domain, host = host.name, "SMTP delivery failed: {e}");
                    self.set_unsupported(&host.name, false);
                    last_error = e;
                    last_host = host.name.clone();
                }
            }
        }
        let reply = Reply::new(
            421,
            format!(
                "421 Failed to connect to any mail server; last attempt to {last_host}: {last_error}"
            ),
        );
        self.count("none", &reply, rcpts.len());
        vec![reply; rcpts.len()]
    }

    fn count(&self, via: &'static str, reply: &Reply, n: usize) {
        let result = match reply.code {
            200..=299 => "ok",
            400..=499 => "temporary",
            _ => "permanent",
        };
        for _ in 0..n {
            self.inner.metrics.count_delivery(via, result);
        }
    }
}

/// Runs futures concurrently and collects their outputs in order.
async fn futures_join_all<F>(tasks: impl IntoIterator<Item = F>) -> Vec<F::Output>
where
    F: std::future::Future + Send + 'static,
    F::Output: Send + 'static,
{
    let handles: Vec<_> = tasks.into_iter().map(tokio::spawn).collect();
    let mut out = Vec::with_capacity(handles.len());
    for h in handles {
        match h.await {
            Ok(v) => out.push(v),
            Err(e) => std::panic::resume_unwind(e.into_panic()),
        }
    }
    out
}

impl Handler for Transport {
    type Tx = Outbound;

    fn begin(&self) -> Outbound {
        Outbound {
            transport: self.clone(),
            from: String::new(),
            rcpts: Vec::new(),
        }
    }
}

/// One message from Maddy's queue.
pub struct Outbound {
    transport: Transport,
    from: String,
    rcpts: Vec<String>,
}

impl Transaction for Outbound {
    async fn mail(&mut self, from: &str) -> Result<(), Reply> {
        self.from = from.to_string();
        Ok(())
    }

    async fn rcpt(&mut self, to: &str) -> Result<(), Reply> {
        if address::domain_of(to).is_empty() {
            return Err(Reply::new(
                501,
                format!("501 5.1.3 Invalid recipient <{to}>"),
            ));
        }
        self.rcpts.push(to.to_string());
        Ok(())
    }

    async fn data(&mut self, message: Vec<u8>) -> Vec<Reply> {
        self.transport
            .deliver(&self.from, &self.rcpts, Arc::new(message))
            .await
    }
}

/// Builds the resolver for MX and address lookups.
pub fn resolver(dns: chatmail_appliance::mail_rules::dkim::Dns) -> anyhow::Result<TokioResolver> {
    let (config, opts) = chatmail_appliance::mail_rules::dkim::resolver_config(dns)?;
    Ok(TokioResolver::builder_with_config(
        config,
        hickory_resolver::net::runtime::TokioRuntimeProvider::default(),
    )
    .with_options(opts)
    .build()?)
}

/// Serves the hop on `socket` (Maddy's `target.lmtp` behind the remote queue).
pub async fn serve(
    socket: PathBuf,
    max_message_size: usize,
    transport: Transport,
    shutdown: tokio_util::sync::CancellationToken,
) -> anyhow::Result<()> {
    crate::smtp::server::serve(
        &socket,
        "chatmail transport",
        max_message_size,
        Arc::new(transport),
        shutdown,
    )
    .await
}
