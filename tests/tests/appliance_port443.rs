//! Port 443 as Delta Chat and browsers use it: the multiplexer sends ALPN `imap` to IMAPS,
//! `smtp` to submission and everything else to the web server, over IPv4 and IPv6, with
//! TLS passed through (the relay's own certificate answers). Hostile clients (garbage,
//! a ClientHello that never ends, an oversized record) are dropped while other
//! connections carry on. Two Delta Chat clients configured with port 443 for both IMAP
//! and SMTP (so they offer ALPN `imap` and `smtp`) exchange messages through it.
//!
//! Needs Maddy and the Delta Chat RPC server/client: `appliance/scripts/install-test-deps.sh`
//! installs them.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use chatmail_tests::appliance::{Appliance, RunningAppliance};
use chatmail_tests::deltachat;
use chatmail_tests::tls_client::{self, Trust};
use rustls::pki_types::{pem::PemObject, CertificateDer};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

const DOMAIN: &str = "chat.relay.test";
const STATUS_PATH: &str = "/.well-known/chatmail-relay/status.json";
/// The multiplexer's preread timeout in this test (the relay's default is 10 s).
const PREREAD_SECS: u64 = 2;
/// Guards against hangs; no assertion depends on timing.
const GUARD: Duration = Duration::from_secs(20);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn port_443_routes_by_alpn_and_drops_hostile_clients() {
    chatmail_tests::tls_ready();
    let mut setup =
        Appliance::new(DOMAIN).arg(format!("--https-preread-timeout-secs={PREREAD_SECS}"));
    let app = setup.start().await;
    let relay_cert =
        CertificateDer::pem_file_iter(setup.perm_dir().join("chatmail/tls/fullchain.pem"))
            .expect("the relay's certificate")
            .next()
            .expect("a certificate")
            .expect("PEM");
    let (email, password) = app.new_account_ok().await;

    for ip in [
        IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(Ipv6Addr::LOCALHOST),
    ] {
        let port443 = SocketAddr::new(ip, app.ports.https);

        // ALPN imap: Maddy's IMAPS answers with the relay's certificate, and a login works.
        let tls = tls_client::connect_tls(port443, DOMAIN, &Trust::Anything, &[b"imap"])
            .await
            .unwrap_or_else(|e| panic!("TLS with ALPN imap on {port443}: {e}"));
        assert_eq!(
            leaf(&tls),
            relay_cert,
            "{port443}: not the relay's certificate"
        );
        let mut imap = BufReader::new(tls);
        let greeting = line(&mut imap).await;
        assert!(greeting.starts_with("* OK"), "{port443} imap: {greeting}");
        // The generated password may hold `"` and `\`: quoted with escapes, or Maddy
        // answers only untagged BADs and the login never completes.
        let login = format!(
            "a1 LOGIN {} {}\r\n",
            tls_client::imap_quote(&email),
            tls_client::imap_quote(&password)
        );
        imap.get_mut().write_all(login.as_bytes()).await.unwrap();
        imap.get_mut().flush().await.unwrap();
        let reply = tagged(&mut imap, "a1 ").await;
        assert!(reply.starts_with("a1 OK"), "{port443} imap login: {reply}");

        // ALPN smtp: submission's banner; both mail protocols offered: submission, as
        // upstream's map decides.
        for alpn in [&[&b"smtp"[..]][..], &[b"imap", b"smtp"]] {
            let tls = tls_client::connect_tls(port443, DOMAIN, &Trust::Anything, alpn)
                .await
                .unwrap_or_else(|e| panic!("TLS with ALPN {alpn:?} on {port443}: {e}"));
            assert_eq!(leaf(&tls), relay_cert);
            let banner = line(&mut BufReader::new(tls)).await;
            assert!(banner.starts_with("220 "), "{port443} {alpn:?}: {banner}");
        }

        // http/1.1 and no ALPN at all: the web server's status document.
        for alpn in [&[&b"http/1.1"[..]][..], &[]] {
            let response = tls_client::https_with_alpn(
                port443,
                DOMAIN,
                &Trust::Anything,
                alpn,
                "GET",
                STATUS_PATH,
            )
            .await;
            assert_eq!(response.status, 200, "{port443} {alpn:?}");
            assert_eq!(response.json()["mail_domain"], DOMAIN, "{port443} {alpn:?}");
        }
    }

    hostile_clients_are_dropped(&app).await;
    app.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delta_chat_clients_exchange_messages_through_port_443() {
    deltachat::venv();
    let mut setup = Appliance::new(DOMAIN);
    let app = setup.start().await;
    let mut accounts = Vec::new();
    for _ in 0..2 {
        let (email, password) = app.new_account_ok().await;
        accounts.push(serde_json::json!({ "addr": email, "password": password }));
    }
    let work = tempfile::tempdir().unwrap();
    // Not 993/465, so the core offers ALPN imap and smtp on implicit TLS.
    let spec = serde_json::json!({
        "accounts_dir": work.path().join("accounts"),
        "imap": { "host": "127.0.0.1", "port": app.ports.https },
        "smtp": { "host": "127.0.0.1", "port": app.ports.https },
        "accounts": accounts,
    });
    let result = deltachat::run_driver("exchange.py", spec, Duration::from_secs(300)).await;
    let received = result["received"].as_array().expect("received list");
    assert_eq!(received.len(), 2, "{result}\n{}", app.log());
    for message in received {
        assert_eq!(message["encrypted"], true, "{result}");
    }
    app.stop();
}

async fn hostile_clients_are_dropped(app: &RunningAppliance) {
    let port443 = SocketAddr::from(([127, 0, 0, 1], app.ports.https));
    let hello = client_hello();

    // Each of these is open while a normal client is served.
    let silent = TcpStream::connect(port443).await.unwrap();
    let mut truncated = TcpStream::connect(port443).await.unwrap();
    truncated
        .write_all(&hello[..hello.len() / 2])
        .await
        .unwrap();
    let trickle = tokio::spawn(async move {
        // One byte every 300 ms: never complete within the preread timeout.
        let mut stream = TcpStream::connect(port443).await.unwrap();
        for byte in hello {
            if stream.write_all(&[byte]).await.is_err() {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        false
    });
    let response = tls_client::https(port443, DOMAIN, &Trust::Anything, "GET", STATUS_PATH).await;
    assert_eq!(response.status, 200, "served next to the hostile clients");

    for (what, stream) in [("silent", silent), ("truncated ClientHello", truncated)] {
        assert_closed(what, stream).await;
    }
    let dropped = tokio::time::timeout(GUARD, trickle)
        .await
        .expect("the trickling client was not dropped")
        .unwrap();
    assert!(
        dropped,
        "a ClientHello sent one byte at a time was let through"
    );

    // Garbage and plain HTTP never reach a server that answers them; a record longer than
    // TLS allows is refused.
    for (what, bytes) in [
        ("garbage", &b"\x00\xff garbage \r\n\r\n"[..]),
        (
            "plain HTTP",
            b"GET / HTTP/1.1\r\nHost: chat.relay.test\r\n\r\n",
        ),
        ("oversized record", &[22, 3, 1, 0xff, 0xff, 1, 0, 0xff]),
    ] {
        let mut stream = TcpStream::connect(port443).await.unwrap();
        stream.write_all(bytes).await.unwrap();
        let reply = assert_closed(what, stream).await;
        assert!(!reply.starts_with(b"HTTP/"), "{what}: {reply:?}");
    }

    let response = tls_client::https(port443, DOMAIN, &Trust::Anything, "GET", STATUS_PATH).await;
    assert_eq!(response.status, 200, "served after the hostile clients");
}

/// Waits until the server closes `stream`; returns what it sent before.
async fn assert_closed(what: &str, mut stream: TcpStream) -> Vec<u8> {
    let mut received = Vec::new();
    match tokio::time::timeout(GUARD, stream.read_to_end(&mut received)).await {
        Ok(_) => received,
        Err(_) => panic!("{what}: the connection was not closed"),
    }
}

/// A real ClientHello from rustls, offering ALPN imap.
fn client_hello() -> Vec<u8> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(rustls::RootCertStore::empty())
        .with_no_client_auth();
    config.alpn_protocols = vec![b"imap".to_vec()];
    let mut client =
        rustls::ClientConnection::new(Arc::new(config), DOMAIN.try_into().unwrap()).unwrap();
    let mut bytes = Vec::new();
    client.write_tls(&mut bytes).unwrap();
    bytes
}

fn leaf(tls: &tokio_rustls::client::TlsStream<TcpStream>) -> CertificateDer<'static> {
    tls.get_ref().1.peer_certificates().expect("certificates")[0]
        .clone()
        .into_owned()
}

async fn line<S: tokio::io::AsyncRead + Unpin>(reader: &mut BufReader<S>) -> String {
    let mut line = String::new();
    tokio::time::timeout(GUARD, reader.read_line(&mut line))
        .await
        .expect("a line in time")
        .expect("read");
    line.trim_end().to_string()
}

async fn tagged<S: tokio::io::AsyncRead + Unpin>(reader: &mut BufReader<S>, tag: &str) -> String {
    loop {
        let line = line(reader).await;
        if line.is_empty() || line.starts_with(tag) {
            return line;
        }
    }
}
