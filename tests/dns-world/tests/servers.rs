//! The real servers come up, serve their zones, survive a restart with their data, and
//! are gone when the handle drops.

use chatmail_dns_world::knot::{Knot, KnotOptions, KNOT_IP};
use chatmail_dns_world::pdns::{minimal_zone, PowerDns, PDNS_IP};

fn tcp_open(addr: std::net::SocketAddr) -> bool {
    std::net::TcpStream::connect_timeout(&addr, std::time::Duration::from_secs(1)).is_ok()
}

#[tokio::test]
async fn powerdns_serves_zones_and_its_api() {
    let mut pdns = PowerDns::start().await;
    assert!(pdns.is_running());
    assert_eq!(pdns.dns_addr().ip(), std::net::IpAddr::V4(PDNS_IP));
    pdns.create_zone("example.org");
    pdns.load_zone(
        "example.net",
        &format!(
            "{}www 300 IN A 192.0.2.7\n",
            minimal_zone("example.net", PDNS_IP)
        ),
    );
    assert_eq!(pdns.zones(), ["example.org", "example.net"]);
    // The API answers with the key (a raw HTTP/1.0 request keeps this crate free of an
    // HTTP client).
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let api = pdns.api_url();
    let host = api.trim_start_matches("http://");
    let mut s = tokio::net::TcpStream::connect(host).await.unwrap();
    s.write_all(
        format!(
            "GET /api/v1/servers/localhost/zones HTTP/1.0\r\nHost: {host}\r\nX-API-Key: {}\r\n\r\n",
            pdns.api_key()
        )
        .as_bytes(),
    )
    .await
    .unwrap();
    let mut body = String::new();
    s.read_to_string(&mut body).await.unwrap();
    assert!(
        body.starts_with("HTTP/1.1 200") || body.starts_with("HTTP/1.0 200"),
        "{body}"
    );
    assert!(body.contains("\"example.net.\""), "{body}");

    let addr = pdns.dns_addr();
    pdns.stop();
    assert!(!pdns.is_running());
    assert!(!tcp_open(addr));
    pdns.restart().await;
    assert!(tcp_open(addr));
    drop(pdns);
    assert!(!tcp_open(addr), "the server is gone after drop");
}

#[tokio::test]
async fn knot_serves_zones_and_restarts() {
    let zone = minimal_zone("example.org", KNOT_IP);
    let mut knot = Knot::start_with(&[("example.org", &zone)], KnotOptions::default()).await;
    assert!(knot.is_running());
    let status = knot.control(&["zone-status", "example.org"]);
    assert!(status.contains("example.org"), "{status}");
    let addr = knot.dns_addr();
    knot.stop();
    assert!(!tcp_open(addr));
    knot.restart().await;
    assert!(tcp_open(addr));
    drop(knot);
    assert!(!tcp_open(addr), "the server is gone after drop");
}
