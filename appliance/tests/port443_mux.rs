//! The port-443 multiplexer with real ClientHellos (from rustls clients offering the ALPN
//! lists the relay sees): the parser reads them however they are cut into TCP segments or
//! TLS records, and the multiplexer, on loopback in front of three recording backends,
//! routes each to the right one with every byte unchanged in both directions, over IPv4
//! and IPv6. Clients that stay silent, send too much or nothing TLS-like get what upstream
//! gives them. (The relay with real Maddy behind it: tests/tests/appliance_port443.rs.)

#[allow(dead_code)]
#[path = "../fuzz/src/client_hello.rs"]
mod real;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use chatmail_appliance::alpn_mux::{self, Backends, Route};
use chatmail_appliance::client_hello::{parse, ClientHello, HelloError, Parsed, MAX_PREREAD};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

fn complete(bytes: &[u8]) -> ClientHello {
    match parse(bytes) {
        Ok(Parsed::Complete(hello)) => hello,
        other => panic!("not a complete ClientHello: {other:?}"),
    }
}

fn assert_reads_as(hello: &ClientHello, real: &real::RealHello, how: &str) {
    let alpn: Vec<Vec<u8>> = hello.alpn().iter().map(|p| p.as_bytes().to_vec()).collect();
    assert_eq!(alpn, real.alpn, "{how}");
    assert_eq!(
        hello.server_name().map(|n| n.as_str().to_string()),
        real.server_name,
        "{how}"
    );
}

#[test]
fn real_client_hellos_are_read_however_they_are_split() {
    for real in real::real_client_hellos() {
        let bytes = &real.bytes;
        assert_reads_as(&complete(bytes), &real, "as sent");
        // TCP segments: every prefix is just "more, please".
        for end in 0..bytes.len() {
            assert_eq!(parse(&bytes[..end]), Ok(Parsed::Incomplete), "{end} bytes");
        }
        // Two TLS records, cut at every byte of the handshake message.
        let handshake = real::handshake_of(bytes);
        for cut in 1..handshake.len() {
            let two = [
                real::as_records(&handshake[..cut], cut),
                real::as_records(&handshake[cut..], handshake.len()),
            ]
            .concat();
            assert_reads_as(&complete(&two), &real, &format!("records cut at {cut}"));
        }
        // Many small records.
        for size in [1, 2, 3, 16, 100] {
            let records = real::refragment(bytes, size);
            if records.len() <= MAX_PREREAD {
                assert_reads_as(&complete(&records), &real, &format!("{size}-byte records"));
            } else {
                assert_eq!(parse(&records), Err(HelloError::PrereadFull));
            }
        }
    }
}

#[test]
fn routes_follow_upstream() {
    for real in real::real_client_hellos() {
        let offers = |p: &[u8]| real.alpn.iter().any(|a| a == p);
        let expected = if offers(b"smtp") {
            Route::Submission
        } else if offers(b"imap") {
            Route::Imap
        } else {
            Route::Web
        };
        assert_eq!(Route::for_hello(&complete(&real.bytes)), expected);
    }
    assert_eq!(
        Route::for_error(&HelloError::NotHandshake(b'G')),
        Some(Route::Web)
    );
    assert_eq!(Route::for_error(&HelloError::PrereadFull), None);
    assert_eq!(Route::for_error(&HelloError::RecordTooLong(1 << 15)), None);
}

/// A backend that, once the client side is shut, answers with its name and every byte it
/// received.
async fn recording_backend(name: &'static str) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (mut stream, _) = listener.accept().await.unwrap();
            tokio::spawn(async move {
                let mut received = Vec::new();
                if stream.read_to_end(&mut received).await.is_ok() {
                    let _ = stream.write_all(name.as_bytes()).await;
                    let _ = stream.write_all(&received).await;
                }
            });
        }
    });
    addr
}

struct Mux {
    port: u16,
    stop: CancellationToken,
}

impl Drop for Mux {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

async fn mux(with_imap: bool) -> Mux {
    let backends = Backends {
        imap: if with_imap {
            Some(recording_backend("imap:").await)
        } else {
            None
        },
        submission: recording_backend("smtp:").await,
        web: recording_backend("web:").await,
    };
    let listeners = chatmail_appliance::listen::bind(Ipv4Addr::LOCALHOST.into(), 0, "port 443")
        .await
        .unwrap();
    let port = listeners[0].local_addr().unwrap().port();
    let stop = CancellationToken::new();
    tokio::spawn(alpn_mux::serve(
        listeners,
        backends,
        Duration::from_millis(500),
        stop.clone(),
    ));
    Mux { port, stop }
}

/// Sends `pieces` with pauses between them (separate TCP segments), then shuts the
/// sending side and returns everything that comes back.
async fn exchange(addr: SocketAddr, pieces: &[&[u8]]) -> Vec<u8> {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.set_nodelay(true).unwrap();
    for piece in pieces {
        if stream.write_all(piece).await.is_err() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let _ = stream.shutdown().await;
    let mut reply = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut reply));
    let _ = read
        .await
        .expect("the multiplexer answered or closed in time");
    reply
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_reach_their_backend_unchanged_on_ipv4_and_ipv6() {
    let mux = mux(true).await;
    for ip in [
        IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(Ipv6Addr::LOCALHOST),
    ] {
        let addr = SocketAddr::new(ip, mux.port);
        for real in real::real_client_hellos() {
            let route = Route::for_hello(&complete(&real.bytes));
            let label: &[u8] = match route {
                Route::Imap => b"imap:",
                Route::Submission => b"smtp:",
                Route::Web => b"web:",
            };
            let fragmented = real::refragment(&real.bytes, 50);
            for hello in [&real.bytes, &fragmented] {
                // The hello in three segments, then application bytes.
                let (a, rest) = hello.split_at(3);
                let (b, c) = rest.split_at(rest.len() / 2);
                let reply = exchange(addr, &[a, b, c, b"after the hello"]).await;
                let expected = [label, hello, b"after the hello"].concat();
                assert!(
                    reply == expected,
                    "{addr} {:?}: wrong bytes back",
                    real.alpn
                );
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_and_odd_clients() {
    let mux = mux(false).await;
    let addr = SocketAddr::from(([127, 0, 0, 1], mux.port));
    let imap_hello = real::real_client_hellos()
        .into_iter()
        .find(|h| h.alpn == [b"imap".to_vec()])
        .unwrap()
        .bytes;

    // Not TLS: to the web server, as upstream does (its TLS handshake then fails).
    let garbage = b"GET / HTTP/1.1\r\n\r\n";
    assert_eq!(
        exchange(addr, &[garbage]).await,
        [&b"web:"[..], garbage].concat()
    );
    // No IMAP backend: an IMAP client is refused, not sent elsewhere.
    assert_eq!(exchange(addr, &[&imap_hello]).await, b"");
    // A record longer than TLS allows, and a hello that never ends: dropped.
    assert_eq!(exchange(addr, &[&[22, 3, 1, 0x40, 0x01]]).await, b"");
    // An 8 KiB hello in 1-byte records: the preread buffer fills first.
    let endless = real::as_records(&[&[1, 0, 0x20, 0][..], &[0; 3000]].concat(), 1);
    assert_eq!(exchange(addr, &[&endless]).await, b"");
    // Silent and slow clients: dropped after the preread timeout, while others pass.
    let mut silent = TcpStream::connect(addr).await.unwrap();
    let mut slow = TcpStream::connect(addr).await.unwrap();
    slow.write_all(&imap_hello[..10]).await.unwrap();
    let web = exchange(addr, &[&real::real_client_hellos()[0].bytes]).await;
    assert!(web.starts_with(b"web:"));
    for stream in [&mut silent, &mut slow] {
        let mut rest = Vec::new();
        let read = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut rest));
        assert!(read.await.is_ok(), "not dropped");
        assert!(rest.is_empty());
    }
}
