//! The relay's web server: port 80 (ACME challenges, redirects) and HTTPS (pages, `/new`,
//! well-known files).
//!
//! One axum router per port. The HTTPS listener terminates TLS with the certificate the
//! [`crate::tls::CertResolver`] holds, so a renewed certificate is served from the next
//! connection on. On a configured relay it listens on loopback only; the port-443
//! multiplexer ([`chatmail_appliance::alpn_mux`]) passes it every connection that is not
//! IMAP or SMTP.

pub mod mxdeliv;
pub mod new_account;
pub mod pages;
pub mod redirects;
pub mod well_known;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::DefaultBodyLimit;
use axum::routing::{any, get};
use axum::Router;
use chatmail_shared::pages::Page;
use chatmail_shared::{DkimPublicKey, RelayConfig};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tower::Service as _;

use crate::acme::Challenges;
use crate::auth::Accounts;
use crate::health::Health;
use crate::paths::Paths;

/// Everything the handlers read. Cheap to clone.
#[derive(Clone)]
pub struct WebState {
    /// The relay configuration.
    pub config: Arc<RelayConfig>,
    /// File layout.
    pub paths: Paths,
    /// The account service (for `/new` and the status document).
    pub accounts: Accounts,
    /// Pending ACME challenges.
    pub challenges: Challenges,
    /// The DKIM public key.
    pub dkim_key: Arc<DkimPublicKey>,
    /// The running release (reported in the status document).
    pub release: chatmail_shared::update_manifest::ReleaseVersion,
    /// Component health.
    pub health: Health,
    /// The port HTTPS is reachable on (for redirects).
    pub https_port: u16,
    /// The pages, rendered.
    pub pages: Arc<pages::RenderedPages>,
    /// `POST /mxdeliv` (HTTPS delivery from other relays).
    pub mxdeliv: Arc<mxdeliv::Inbound>,
}

/// Requests larger than this are refused; nothing else here reads a body (`/mxdeliv`
/// reads its own, up to the message size limit).
const BODY_LIMIT: usize = 16 * 1024;

/// How long a client may take for the TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The HTTPS router.
pub fn https_router(state: WebState) -> Router {
    Router::new()
        .route(
            "/",
            get(|s: axum::extract::State<WebState>| async move { s.pages.response(Page::Home) }),
        )
        .route(
            "/index.html",
            get(|s: axum::extract::State<WebState>| async move { s.pages.response(Page::Home) }),
        )
        .route(
            "/info.html",
            get(|s: axum::extract::State<WebState>| async move { s.pages.response(Page::Info) }),
        )
        .route(
            "/privacy.html",
            get(|s: axum::extract::State<WebState>| async move { s.pages.response(Page::Privacy) }),
        )
        .route("/robots.txt", get(|| async { pages::robots() }))
        .route("/new", get(new_account::redirect).post(new_account::create))
        .route(
            "/cgi-bin/newemail.py",
            get(new_account::redirect).post(new_account::create),
        )
        .route(
            chatmail_shared::mta_sts::POLICY_PATH,
            get(well_known::mta_sts_policy),
        )
        .route(
            chatmail_shared::autoconfig::AUTOCONFIG_PATH,
            get(well_known::autoconfig_xml),
        )
        .route("/mail/config-v1.1.xml", get(well_known::autoconfig_xml))
        .route(well_known::STATUS_PATH, get(well_known::status))
        // Reads its own body up to the message size limit.
        .route("/mxdeliv", any(mxdeliv::handle))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            redirects::https_hosts,
        ))
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .with_state(state)
}

/// The port-80 router: ACME challenges, everything else to HTTPS.
pub fn http_router(state: WebState) -> Router {
    Router::new()
        .route(
            "/.well-known/acme-challenge/{token}",
            get(well_known::acme_challenge),
        )
        .fallback(any(redirects::to_https))
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .with_state(state)
}

/// Serves `router` over plain HTTP on `addr` until `shutdown`.
pub async fn serve_http(
    addr: SocketAddr,
    router: Router,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let listeners = chatmail_appliance::listen::bind(addr.ip(), addr.port(), "HTTP")
        .await
        .map_err(|e| anyhow::anyhow!("HTTP listener on {addr}: {e}"))?;
    // Ends both listeners' servers when one of them ends (the supervisor then starts the
    // pair again), without touching the caller's token.
    let stop = shutdown.child_token();
    let mut servers = tokio::task::JoinSet::new();
    for listener in listeners {
        tracing::info!(addr = %listener.local_addr()?, "HTTP listening");
        let serving = axum::serve(listener, router.clone())
            .with_graceful_shutdown(stop.clone().cancelled_owned());
        servers.spawn(async move { serving.await });
    }
    let mut outcome = Ok(());
    while let Some(result) = servers.join_next().await {
        stop.cancel();
        if let Err(e) = result
            .map_err(anyhow::Error::from)
            .and_then(|r| r.map_err(Into::into))
        {
            outcome = Err(e);
        }
    }
    outcome
}

/// Serves `router` over HTTPS on `addr` until `shutdown`.
pub async fn serve_https(
    addr: SocketAddr,
    router: Router,
    tls: Arc<rustls::ServerConfig>,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|e| anyhow::anyhow!("HTTPS listener on {addr}: {e}"))?;
    tracing::info!(%addr, "HTTPS listening");
    let acceptor = TlsAcceptor::from(tls);
    let connections = tokio_util::task::TaskTracker::new();
    loop {
        let (stream, peer) = tokio::select! {
            _ = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!("HTTPS accept: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            }
        };
        let acceptor = acceptor.clone();
        let router = router.clone();
        let shutdown = shutdown.clone();
        connections.spawn(async move {
            let tls = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                Ok(Ok(tls)) => tls,
                Ok(Err(e)) => {
                    tracing::debug!(%peer, "TLS handshake failed: {e}");
                    return;
                }
                Err(_) => return,
            };
            let service = hyper::service::service_fn(move |request| router.clone().call(request));
            let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
            let connection = builder.serve_connection_with_upgrades(TokioIo::new(tls), service);
            tokio::select! {
                _ = shutdown.cancelled() => {}
                result = connection => {
                    if let Err(e) = result {
                        tracing::debug!(%peer, "HTTPS connection: {e}");
                    }
                }
            }
        });
    }
    connections.close();
    let _ = tokio::time::timeout(Duration::from_secs(5), connections.wait()).await;
    Ok(())
}
