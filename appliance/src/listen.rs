//! Where the relay listens: every public service on IPv4 and IPv6 alike (a relay whose
//! AAAA record is published must answer there, and Let's Encrypt validates over IPv6 when
//! it can), as two sockets so that IPv4 clients keep their own addresses.

use std::io;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};

use tokio::net::TcpListener;

/// Listeners on `bind` and, for the IPv4 wildcard or loopback address, on its IPv6
/// counterpart too. The IPv6 one is skipped with a warning where the host has no IPv6
/// (upstream's "unless IPv6 is disabled"). `service` names the listener in that warning.
pub async fn bind(bind: IpAddr, port: u16, service: &str) -> io::Result<Vec<TcpListener>> {
    let first = TcpListener::bind(SocketAddr::new(bind, port)).await?;
    // Port 0 (tests, benchmarks) picks one; the IPv6 listener takes the same.
    let port = first.local_addr()?.port();
    let mut listeners = vec![first];
    let counterpart = match bind {
        IpAddr::V4(a) if a.is_unspecified() => Some(Ipv6Addr::UNSPECIFIED),
        IpAddr::V4(a) if a.is_loopback() => Some(Ipv6Addr::LOCALHOST),
        _ => None,
    };
    if let Some(ip) = counterpart {
        let addr = SocketAddr::new(IpAddr::V6(ip), port);
        match bind_ipv6_only(addr) {
            Ok(listener) => listeners.push(listener),
            Err(e) => tracing::warn!(%addr, "{service} without IPv6: {e}"),
        }
    }
    Ok(listeners)
}

/// An IPv6 listener that leaves IPv4 to the other socket (Linux makes `[::]` dual-stack
/// by default, which would collide with the IPv4 listener on the same port).
fn bind_ipv6_only(addr: SocketAddr) -> io::Result<TcpListener> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::IPV6, Type::STREAM, Some(Protocol::TCP))?;
    socket.set_only_v6(true)?;
    socket.set_reuse_address(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(1024)?;
    TcpListener::from_std(socket.into())
}
