//! The IMAP front: terminates TLS on 993 (and STARTTLS on 143) with the relay's
//! certificate and proxies to Maddy's plaintext IMAP listener on loopback, adding what
//! Delta Chat needs and Maddy lacks (research/maddy-gochatmail.md B.5): METADATA for push
//! device tokens and the server entries, QUOTA, ID, COMPRESS=DEFLATE, and the XCHATMAIL
//! and XDELTAPUSH capabilities. Everything else passes through unchanged.
//!
//! [`parser`] frames the wire format, [`session`] runs one connection, [`local`] answers
//! the commands the front implements, [`metadata`] knows
//! the entries, [`compress`] the deflate streams, [`starttls`] port 143 before TLS,
//! [`usage`] the storage usage QUOTA reports.

pub mod compress;
pub mod local;
pub mod metadata;
pub use chatmail_appliance::imap_parser as parser;
pub mod session;
pub mod starttls;
pub mod usage;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::push::tokens::TokenStore;
use parser::{CapabilityEdit, Limits};

/// Most connections served at once; more wait in the listen queue.
const MAX_SESSIONS: usize = 10_000;

/// How long a client may stay silent.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    /// The TLS handshake.
    pub handshake: Duration,
    /// Between commands before login.
    pub not_authenticated: Duration,
    /// Between commands after login (RFC 9051: at least 30 minutes; IDLE re-issues
    /// sooner).
    pub authenticated: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            handshake: Duration::from_secs(30),
            not_authenticated: Duration::from_secs(60),
            authenticated: Duration::from_secs(31 * 60),
        }
    }
}

/// Everything the sessions share.
pub struct Front {
    /// Maddy's plaintext IMAP listener on loopback.
    pub upstream: SocketAddr,
    /// The relay's certificate (the ACME manager swaps it in the resolver).
    pub tls: tokio_rustls::TlsAcceptor,
    /// The push device tokens.
    pub tokens: TokenStore,
    /// Server METADATA entries.
    pub server_entries: metadata::ServerEntries,
    /// The mailbox quota, in KiB.
    pub quota_limit_kib: u64,
    /// Storage usage for QUOTA (unknown without it: reported as 0).
    pub usage: Option<Arc<usage::Usage>>,
    /// Line and literal bounds.
    pub limits: Limits,
    /// Silence limits.
    pub timeouts: Timeouts,
    /// Called with the account after each successful IMAP login (last-login records).
    pub on_login: Arc<dyn Fn(String) + Send + Sync>,
    /// Counts sessions that turn on compression.
    pub compressed_sessions: prometheus_client::metrics::counter::Counter,
    edits: [CapabilityEdit; 2],
}

impl Front {
    /// The shared part of every session.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        upstream: SocketAddr,
        tls: Arc<rustls::ServerConfig>,
        tokens: TokenStore,
        server_entries: metadata::ServerEntries,
        quota_limit_kib: u64,
        usage: Option<Arc<usage::Usage>>,
        limits: Limits,
        timeouts: Timeouts,
        on_login: Arc<dyn Fn(String) + Send + Sync>,
    ) -> Front {
        Front {
            upstream,
            tls: tokio_rustls::TlsAcceptor::from(tls),
            tokens,
            server_entries,
            quota_limit_kib,
            usage,
            limits,
            timeouts,
            on_login,
            compressed_sessions: Default::default(),
            edits: [
                session::capability_edit(false),
                session::capability_edit(true),
            ],
        }
    }

    /// Counts the sessions that turn on compression in `counter` (a metric).
    pub fn counting_compression(
        mut self,
        counter: prometheus_client::metrics::counter::Counter,
    ) -> Front {
        self.compressed_sessions = counter;
        self
    }

    /// The capability edit, before or after COMPRESS.
    pub fn edit(&self, compressing: bool) -> &CapabilityEdit {
        &self.edits[usize::from(compressing)]
    }

    /// The QUOTA response of `account` for the one root `""`: usage (0 while unknown)
    /// against the limit, in KiB.
    pub async fn quota_line(&self, account: &str) -> String {
        let used = match &self.usage {
            Some(usage) => usage.bytes(account).await.unwrap_or(0),
            None => 0,
        };
        format!(
            "* QUOTA \"\" (STORAGE {} {})\r\n",
            used.div_ceil(1024),
            self.quota_limit_kib
        )
    }
}

/// A rustls server configuration for IMAP: the relay's certificate, no ALPN (the port-443
/// multiplexer hands over connections that offered `imap`; none is needed in return).
pub fn tls_config(resolver: Arc<crate::tls::CertResolver>) -> Arc<rustls::ServerConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Arc::new(
        rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("ring supports the default protocol versions")
            .with_no_client_auth()
            .with_cert_resolver(resolver),
    )
}

/// Serves `implicit` (993) and `starttls` (143) until `token` is cancelled.
pub async fn serve(
    front: Arc<Front>,
    implicit: Option<SocketAddr>,
    starttls: Option<SocketAddr>,
    token: CancellationToken,
) -> anyhow::Result<()> {
    let mut listeners = Vec::new();
    for (addr, mode) in [
        (implicit, session::Mode::ImplicitTls),
        (starttls, session::Mode::StartTls),
    ] {
        if let Some(addr) = addr {
            let bound = chatmail_appliance::listen::bind(addr.ip(), addr.port(), "IMAP front")
                .await
                .map_err(|e| anyhow::anyhow!("IMAP front on {addr}: {e}"))?;
            for listener in bound {
                let addr = listener.local_addr()?;
                tracing::info!(%addr, ?mode, upstream = %front.upstream, "IMAP front listening");
                listeners.push((listener, mode));
            }
        }
    }
    let sessions = Arc::new(Semaphore::new(MAX_SESSIONS));
    let mut accepting = tokio::task::JoinSet::new();
    for (listener, mode) in listeners {
        let front = front.clone();
        let sessions = sessions.clone();
        let token = token.clone();
        accepting.spawn(async move {
            let tracker = tokio_util::task::TaskTracker::new();
            loop {
                let permit = tokio::select! {
                    _ = token.cancelled() => break,
                    permit = sessions.clone().acquire_owned() => permit.expect("never closed"),
                };
                let (tcp, peer) = tokio::select! {
                    _ = token.cancelled() => break,
                    accepted = listener.accept() => match accepted {
                        Ok(a) => a,
                        Err(e) => {
                            tracing::warn!("IMAP front: accept: {e}");
                            tokio::time::sleep(Duration::from_millis(100)).await;
                            continue;
                        }
                    },
                };
                let front = front.clone();
                let token = token.clone();
                let span = tracing::debug_span!("imap", %peer);
                tracker.spawn(
                    async move {
                        tracing::debug!(?mode, "IMAP session starts");
                        tokio::select! {
                            _ = token.cancelled() => {}
                            result = session::run(tcp, mode, front) => {
                                match result {
                                    Ok(()) => tracing::debug!("IMAP session ended"),
                                    Err(e) => tracing::debug!("IMAP session ended: {e}"),
                                }
                            }
                        }
                        drop(permit);
                    }
                    .instrument(span),
                );
            }
            tracker.close();
            tracker.wait().await;
        });
    }
    while accepting.join_next().await.is_some() {}
    Ok(())
}
