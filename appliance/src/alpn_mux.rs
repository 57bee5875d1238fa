//! Port 443 for three services, as upstream's nginx `ssl_preread` does it
//! (research/chatmail.md §5): Delta Chat reaches IMAP and SMTP through 443 when other
//! ports are blocked, telling them apart by the ALPN protocol it offers.
//!
//! Each connection's first bytes are read until the ClientHello is complete
//! ([`crate::client_hello`]), then a connection to the chosen backend gets those same
//! bytes and everything after them, both ways: TLS is never terminated here, the backend
//! does that with the relay's certificate. The backends therefore see the multiplexer's
//! loopback address as the client's (upstream has the same limitation; it sends no PROXY
//! protocol header either).
//!
//! Like upstream, bytes that are not a well-formed ClientHello go to the web server (whose
//! TLS handshake then fails), while a client that stays silent, sends too slowly or sends
//! more than [`MAX_PREREAD`] bytes without finishing its hello is dropped.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::client_hello::{self, ClientHello, HelloError, Parsed, MAX_PREREAD};

/// How long a client may take to send its whole ClientHello (upstream: 30 s, nginx's
/// `preread_timeout`; a ClientHello is one or two TCP segments, so less is plenty).
pub const PREREAD_TIMEOUT: Duration = Duration::from_secs(10);

/// Each direction's copy buffer, as nginx's `proxy_buffer_size` (16k): twice tokio's
/// default, which leaves bulk transfers behind nginx's (appliance/benches/alpn_mux.rs),
/// while a relay's many idle IMAP connections keep costing little memory.
const COPY_BUFFER: usize = 16 * 1024;

/// How long connecting to a loopback backend may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Where a connection goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// IMAP with implicit TLS (ALPN `imap`).
    Imap,
    /// SMTP submission with implicit TLS (ALPN `smtp`).
    Submission,
    /// The web server: every other ALPN, none, or no ClientHello at all.
    Web,
}

impl Route {
    /// The route for a ClientHello. A client offering both mail protocols goes to
    /// submission, the order of upstream's `map` (its first matching pattern wins).
    pub fn for_hello(hello: &ClientHello) -> Route {
        if hello.offers(b"smtp") {
            Route::Submission
        } else if hello.offers(b"imap") {
            Route::Imap
        } else {
            Route::Web
        }
    }

    /// The route for bytes that are no acceptable ClientHello, or `None` to drop the
    /// connection. Upstream hands what its parser declines to the default (web) server,
    /// but never waits beyond its preread buffer.
    pub fn for_error(error: &HelloError) -> Option<Route> {
        match error {
            HelloError::RecordTooLong(_) | HelloError::HelloTooLong(_) => None,
            HelloError::PrereadFull => None,
            HelloError::NotHandshake(_)
            | HelloError::NotTlsVersion(..)
            | HelloError::NotClientHello(_)
            | HelloError::Malformed(_) => Some(Route::Web),
        }
    }
}

/// The servers behind the multiplexer.
#[derive(Debug, Clone)]
pub struct Backends {
    /// The IMAPS listener; `None` while there is none (ALPN `imap` is then refused).
    pub imap: Option<SocketAddr>,
    /// Submission with implicit TLS.
    pub submission: SocketAddr,
    /// The web server's HTTPS listener.
    pub web: SocketAddr,
}

impl Backends {
    fn address(&self, route: Route) -> Option<SocketAddr> {
        match route {
            Route::Imap => self.imap,
            Route::Submission => Some(self.submission),
            Route::Web => Some(self.web),
        }
    }
}

/// The address to reach a service that listens on `bind`: loopback of the same family
/// when it listens on every address.
pub fn local_address(bind: IpAddr, port: u16) -> SocketAddr {
    let ip = match bind {
        IpAddr::V4(a) if a.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(a) if a.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        other => other,
    };
    SocketAddr::new(ip, port)
}

/// Accepts on every listener and routes each connection until `shutdown`, which also
/// ends the connections in flight.
pub async fn serve(
    listeners: Vec<TcpListener>,
    backends: Backends,
    preread_timeout: Duration,
    shutdown: CancellationToken,
) -> io::Result<()> {
    let connections = TaskTracker::new();
    for listener in listeners {
        if let Ok(addr) = listener.local_addr() {
            tracing::info!(%addr, "port-443 multiplexer listening");
        }
        let backends = backends.clone();
        let shutdown = shutdown.clone();
        let tracker = connections.clone();
        connections.spawn(async move {
            loop {
                let (client, peer) = tokio::select! {
                    _ = shutdown.cancelled() => break,
                    accepted = listener.accept() => match accepted {
                        Ok(a) => a,
                        Err(e) => {
                            // Out of file descriptors, mostly: pause instead of spinning.
                            tracing::warn!("port-443 accept: {e}");
                            tokio::time::sleep(Duration::from_millis(100)).await;
                            continue;
                        }
                    }
                };
                let backends = backends.clone();
                let shutdown = shutdown.clone();
                tracker.spawn(async move {
                    tokio::select! {
                        _ = shutdown.cancelled() => {}
                        () = handle(client, peer, &backends, preread_timeout) => {}
                    }
                });
            }
        });
    }
    shutdown.cancelled().await;
    connections.close();
    connections.wait().await;
    Ok(())
}

async fn handle(
    mut client: TcpStream,
    peer: SocketAddr,
    backends: &Backends,
    preread_timeout: Duration,
) {
    let (route, prefix) = match tokio::time::timeout(preread_timeout, preread(&mut client)).await {
        Ok(Ok(Some(read))) => read,
        Ok(Ok(None)) => return,
        Ok(Err(e)) => {
            tracing::debug!(%peer, "port 443: {e}");
            return;
        }
        Err(_) => {
            tracing::debug!(%peer, "port 443: no ClientHello within {preread_timeout:?}");
            return;
        }
    };
    let Some(target) = backends.address(route) else {
        tracing::debug!(%peer, ?route, "port 443: no backend for this protocol");
        return;
    };
    let mut backend = match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(target)).await
    {
        Ok(Ok(stream)) => stream,
        Ok(Err(e)) => {
            tracing::warn!(%peer, ?route, %target, "port 443: backend unreachable: {e}");
            return;
        }
        Err(_) => {
            tracing::warn!(%peer, ?route, %target, "port 443: backend did not answer");
            return;
        }
    };
    // Both sides are interactive protocols; small writes must not wait for Nagle.
    let _ = client.set_nodelay(true);
    let _ = backend.set_nodelay(true);
    if let Err(e) = backend.write_all(&prefix).await {
        tracing::debug!(%peer, ?route, "port 443: forwarding the ClientHello: {e}");
        return;
    }
    drop(prefix);
    if let Err(e) = tokio::io::copy_bidirectional_with_sizes(
        &mut client,
        &mut backend,
        COPY_BUFFER,
        COPY_BUFFER,
    )
    .await
    {
        tracing::debug!(%peer, ?route, "port 443 connection: {e}");
    }
}

/// Reads until the bytes decide the route. `None`: drop the connection (the client closed
/// early or its hello is too large).
async fn preread(client: &mut TcpStream) -> io::Result<Option<(Route, Vec<u8>)>> {
    let mut buffer = vec![0; MAX_PREREAD];
    let mut filled = 0;
    loop {
        let read = client.read(&mut buffer[filled..]).await?;
        if read == 0 {
            return Ok(None);
        }
        filled += read;
        let route = match client_hello::parse(&buffer[..filled]) {
            Ok(Parsed::Incomplete) => continue,
            Ok(Parsed::Complete(hello)) => Some(Route::for_hello(&hello)),
            Err(e) => {
                tracing::debug!("port 443: {e}");
                Route::for_error(&e)
            }
        };
        buffer.truncate(filled);
        return Ok(route.map(|route| (route, buffer)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_address_prefers_loopback_for_wildcards() {
        assert_eq!(
            local_address(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 993),
            "127.0.0.1:993".parse().unwrap()
        );
        assert_eq!(
            local_address(IpAddr::V6(Ipv6Addr::UNSPECIFIED), 465),
            "[::1]:465".parse().unwrap()
        );
        assert_eq!(
            local_address("192.0.2.1".parse().unwrap(), 993),
            "192.0.2.1:993".parse().unwrap()
        );
    }
}
