//! The ClientHello parser of the port-443 multiplexer (`chatmail_appliance::client_hello`)
//! as a fuzz target, with real ClientHellos from rustls as seeds.
//!
//! Oracles: (a) rustls's own server-side ClientHello reader: whatever it accepts, the
//! multiplexer must read completely, with the same ALPN list and server name (otherwise a
//! client a real TLS server would serve is routed wrongly); (b) a prefix of an input is
//! never judged differently from the whole, except as incomplete (the multiplexer parses
//! what has arrived so far).
//!
//! Shared by the libFuzzer target, the stable runner and the test suite
//! (`appliance/tests/fuzz_client_hello.rs` includes this file as a module, so it only uses
//! crates the appliance has too).

use std::sync::Arc;

use chatmail_appliance::client_hello::{parse, Parsed, MAX_PREREAD};

/// The parser on one arbitrary input.
pub fn client_hello(data: &[u8]) {
    let whole = parse(data);
    if let Some((alpn, server_name)) = rustls_reading(data) {
        if data.len() <= MAX_PREREAD {
            let Ok(Parsed::Complete(hello)) = &whole else {
                panic!(
                    "rustls reads a ClientHello (ALPN {alpn:?}) that the parser calls {whole:?}"
                );
            };
            let ours: Vec<Vec<u8>> = hello.alpn().iter().map(|p| p.as_bytes().to_vec()).collect();
            assert_eq!(ours, alpn, "ALPN differs from rustls's reading");
            if let Some(name) = server_name {
                let ours = hello.server_name().map(|n| n.as_str().to_string());
                assert_eq!(
                    ours,
                    Some(name.to_ascii_lowercase()),
                    "SNI differs from rustls's"
                );
            }
        }
    }
    // Prefixes at a few places the input itself picks.
    let cuts = data
        .iter()
        .take(4)
        .map(|&b| usize::from(b) * 7 % (data.len() + 1));
    for cut in cuts.chain([data.len().saturating_sub(1), 5]) {
        let Some(prefix) = data.get(..cut) else {
            continue;
        };
        let part = parse(prefix);
        let consistent = match (&part, &whole) {
            (Ok(Parsed::Incomplete), _) => true,
            (a, b) => a == b,
        };
        assert!(
            consistent,
            "the first {cut} bytes give {part:?}, all give {whole:?}"
        );
    }
}

/// rustls's reading of `data` as the first bytes from a client: the ALPN list and server
/// name if it finds a whole, acceptable ClientHello.
#[allow(clippy::type_complexity)]
fn rustls_reading(data: &[u8]) -> Option<(Vec<Vec<u8>>, Option<String>)> {
    let mut acceptor = rustls::server::Acceptor::default();
    let mut rest = data;
    while !rest.is_empty() {
        match acceptor.read_tls(&mut rest) {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
    }
    let accepted = acceptor.accept().ok()??;
    let hello = accepted.client_hello();
    let alpn = hello
        .alpn()
        .map(|names| names.map(<[u8]>::to_vec).collect())
        .unwrap_or_default();
    Some((alpn, hello.server_name().map(str::to_string)))
}

/// Real ClientHellos: rustls clients offering the ALPN lists the relay sees (none, imap,
/// smtp, a browser's, ACME's), TLS 1.3 and 1.2 only, with SNI and without (an IP address),
/// in one record and fragmented into many.
pub fn seeds() -> Vec<Vec<u8>> {
    let mut seeds = Vec::new();
    for hello in real_client_hellos() {
        seeds.push(refragment(&hello.bytes, 7));
        seeds.push(refragment(&hello.bytes, 200));
        seeds.push(hello.bytes);
    }
    seeds
}

/// One ClientHello as a rustls client sends it, and what it offers.
pub struct RealHello {
    pub bytes: Vec<u8>,
    pub alpn: Vec<Vec<u8>>,
    pub server_name: Option<String>,
}

/// ClientHellos from rustls clients configured as in [`seeds`].
pub fn real_client_hellos() -> Vec<RealHello> {
    let alpn_lists: [&[&[u8]]; 6] = [
        &[],
        &[b"imap"],
        &[b"smtp"],
        &[b"h2", b"http/1.1"],
        &[b"acme-tls/1"],
        &[b"imap", b"smtp"],
    ];
    let mut hellos = Vec::new();
    for tls12_only in [false, true] {
        for alpn in alpn_lists {
            for server_name in ["Chat.Example.org", "192.0.2.1"] {
                let bytes = rustls_client_hello(tls12_only, alpn, server_name);
                hellos.push(RealHello {
                    bytes,
                    alpn: alpn.iter().map(|p| p.to_vec()).collect(),
                    // rustls sends no SNI for an IP address (RFC 6066 §3).
                    server_name: server_name
                        .parse::<std::net::IpAddr>()
                        .is_err()
                        .then(|| server_name.to_ascii_lowercase()),
                });
            }
        }
    }
    hellos
}

fn rustls_client_hello(tls12_only: bool, alpn: &[&[u8]], server_name: &str) -> Vec<u8> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider);
    let builder = if tls12_only {
        builder.with_protocol_versions(&[&rustls::version::TLS12])
    } else {
        builder.with_safe_default_protocol_versions()
    };
    let mut config = builder
        .expect("ring supports these versions")
        .with_root_certificates(rustls::RootCertStore::empty())
        .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    let name = rustls::pki_types::ServerName::try_from(server_name.to_string())
        .expect("a valid server name");
    let mut client =
        rustls::ClientConnection::new(Arc::new(config), name).expect("a client connection");
    let mut bytes = Vec::new();
    client.write_tls(&mut bytes).expect("writing to a Vec");
    bytes
}

/// The handshake messages in `records` (TLS records of any sizes) cut into records of at
/// most `size` bytes.
pub fn refragment(records: &[u8], size: usize) -> Vec<u8> {
    as_records(&handshake_of(records), size)
}

/// The payload of the TLS records in `records`, concatenated.
pub fn handshake_of(records: &[u8]) -> Vec<u8> {
    let mut handshake = Vec::new();
    let mut rest = records;
    while rest.len() >= 5 {
        let length = usize::from(u16::from_be_bytes([rest[3], rest[4]]));
        let end = (5 + length).min(rest.len());
        handshake.extend_from_slice(&rest[5..end]);
        rest = &rest[end..];
    }
    handshake
}

/// `handshake` in handshake records of at most `size` bytes each.
pub fn as_records(handshake: &[u8], size: usize) -> Vec<u8> {
    let mut out = Vec::new();
    for chunk in handshake.chunks(size.clamp(1, 1 << 14)) {
        out.extend_from_slice(&[22, 3, 1]);
        out.extend_from_slice(&(chunk.len() as u16).to_be_bytes());
        out.extend_from_slice(chunk);
    }
    out
}
