//! The local-delivery hop: LMTP in (from Maddy's pipelines), LMTP out (to Maddy's storage
//! listener), recipient by recipient, so every reply is Maddy's own.
//!
//! The hop opens its downstream connection at `MAIL`, forwards each `RCPT` (an unknown
//! user is refused right there, with storage's `5.1.1`), strips the path and check
//! header fields before `DATA` (upstream's `lmtp_header_checks`, research/chatmail.md §6:
//! `Received`, `DKIM-Signature`, `Authentication-Results`), and reports each recipient
//! whose copy storage confirmed to the [`DeliveryHook`].

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::UnixStream;

use chatmail_appliance::mail_rules::{self, Reply};

use super::hook::{Delivered, DeliveryHook};
use crate::metrics::Metrics;
use crate::smtp::client::{Client, ClientError, Dialect};
use crate::smtp::server::{Handler, Transaction};

/// Storage answers within this time (a local SQLite write).
const STORE_TIMEOUT: Duration = Duration::from_secs(120);

/// Delivers to Maddy's storage listener. Cheap to clone.
#[derive(Clone)]
pub struct LocalDelivery {
    inner: Arc<Inner>,
}

struct Inner {
    store_socket: PathBuf,
    hostname: String,
    hook: Arc<dyn DeliveryHook>,
    metrics: Metrics,
}

impl LocalDelivery {
    pub fn new(
        store_socket: PathBuf,
        hostname: &str,
        hook: Arc<dyn DeliveryHook>,
        metrics: Metrics,
    ) -> LocalDelivery {
        LocalDelivery {
            inner: Arc::new(Inner {
                store_socket,
                hostname: hostname.to_string(),
                hook,
                metrics,
            }),
        }
    }

    /// Delivers `message` to `rcpts` in one go: one reply per recipient, in order.
    pub async fn deliver(&self, from: &str, rcpts: &[String], message: Vec<u8>) -> Vec<Reply> {
        let mut tx = self.begin();
        if let Err(reply) = tx.mail(from).await {
            return vec![reply; rcpts.len()];
        }
        let mut replies: Vec<Option<Reply>> = Vec::with_capacity(rcpts.len());
        for rcpt in rcpts {
            replies.push(tx.rcpt(rcpt).await.err());
        }
        let mut data_replies = if replies.iter().any(Option::is_none) {
            tx.data(message).await.into_iter()
        } else {
            tx.abort().await;
            Vec::new().into_iter()
        };
        replies
            .into_iter()
            .map(|r| {
                r.unwrap_or_else(|| {
                    data_replies
                        .next()
                        .unwrap_or_else(|| Reply::new(451, "451 4.3.0 Local error".into()))
                })
            })
            .collect()
    }
}

impl Handler for LocalDelivery {
    type Tx = StoreTransaction;

    fn begin(&self) -> StoreTransaction {
        StoreTransaction {
            inner: self.inner.clone(),
            client: None,
            from: String::new(),
            accepted: Vec::new(),
        }
    }
}

/// One transaction forwarded to storage.
pub struct StoreTransaction {
    inner: Arc<Inner>,
    client: Option<Client<UnixStream>>,
    from: String,
    accepted: Vec<String>,
}

fn unavailable(e: impl std::fmt::Display) -> Reply {
    tracing::warn!("local storage: {e}");
    Reply::new(451, "451 4.3.0 Local storage unavailable".into())
}

impl StoreTransaction {
    async fn connect(&self) -> Result<Client<UnixStream>, Reply> {
        let stream = UnixStream::connect(&self.inner.store_socket)
            .await
            .map_err(unavailable)?;
        let mut client = Client::new(stream, STORE_TIMEOUT);
        let greeting = client.read_reply().await.map_err(unavailable)?;
        if !greeting.is_success() {
            return Err(greeting);
        }
        match client
            .hello(Dialect::Lmtp, &self.inner.hostname)
            .await
            .map_err(unavailable)?
        {
            Ok(_) => Ok(client),
            Err(reply) => Err(reply),
        }
    }

    async fn abort(&mut self) {
        if let Some(mut c) = self.client.take() {
            c.quit().await;
        }
    }
}

fn lost(e: ClientError) -> Reply {
    unavailable(e)
}

impl Transaction for StoreTransaction {
    async fn mail(&mut self, from: &str) -> Result<(), Reply> {
        let mut client = self.connect().await?;
        let reply = client
            .command(&format!("MAIL FROM:<{from}>"))
            .await
            .map_err(lost)?;
        if !reply.is_success() {
            client.quit().await;
            return Err(reply);
        }
        self.from = from.to_string();
        self.client = Some(client);
        Ok(())
    }

    async fn rcpt(&mut self, to: &str) -> Result<(), Reply> {
        let Some(client) = self.client.as_mut() else {
            return Err(Reply::new(503, "503 5.5.1 MAIL first".into()));
        };
        let reply = client
            .command(&format!("RCPT TO:<{to}>"))
            .await
            .map_err(lost)?;
        if reply.is_success() {
            self.accepted.push(to.to_string());
            Ok(())
        } else {
            Err(reply)
        }
    }

    async fn data(&mut self, message: Vec<u8>) -> Vec<Reply> {
        let count = self.accepted.len();
        let Some(mut client) = self.client.take() else {
            return vec![Reply::new(503, "503 5.5.1 MAIL first".into()); count];
        };
        let stripped = mail_rules::strip_for_local_delivery(&message);
        let replies = async {
            let go = client.command("DATA").await?;
            if go.code != 354 {
                return Ok(vec![go; count]);
            }
            client.send_data(&stripped, Dialect::Lmtp, count).await
        }
        .await
        .unwrap_or_else(|e| vec![lost(e); count]);
        client.quit().await;
        for (rcpt, reply) in self.accepted.iter().zip(&replies) {
            let result = match reply.code {
                200..=299 => {
                    self.inner.hook.delivered(&Delivered {
                        recipient: rcpt,
                        sender: &self.from,
                    });
                    "ok"
                }
                400..=499 => "temporary",
                _ => "permanent",
            };
            self.inner.metrics.count_delivery("local", result);
        }
        replies
    }
}

/// Serves the hop on `socket` (Maddy's `target.lmtp` for local recipients).
pub async fn serve(
    socket: PathBuf,
    max_message_size: usize,
    delivery: LocalDelivery,
    shutdown: tokio_util::sync::CancellationToken,
) -> anyhow::Result<()> {
    crate::smtp::server::serve(
        &socket,
        "chatmail local delivery",
        max_message_size,
        Arc::new(delivery),
        shutdown,
    )
    .await
}
