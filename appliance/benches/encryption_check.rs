//! Benchmark of chatmail's encryption check over the message corpus (`tests/corpus/`),
//! against a naive baseline in the same run, plus the whole milter path for a 100 KB
//! message.
//!
//! * **rules**: `check_outgoing_message` and `check_incoming_message` (the structure and
//!   OpenPGP packet checks) on every corpus message, on one core;
//! * **baseline**: a full MIME parse of every message with mail-parser, decoding every
//!   part's body (what a straightforward filter built on a mail library does first);
//! * **milter path, 100 KB**: the milter packets of a 100 KB encrypted message as Maddy
//!   sends them (framing, decoding, reassembly) and the outgoing verdict; and the incoming
//!   verdict with DKIM verification of an RSA-2048 signature (key from a warm cache, as
//!   for a relay already seen). Socket I/O is not included.
//!
//! Figures are printed, never asserted. Run: `cargo bench -p chatmail-appliance --bench
//! encryption_check` (optionally `-- --seconds N`).

use std::hint::black_box;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use base64::Engine as _;
use chatmail_appliance::mail_rules::{self, dkim::DkimVerifier, Limits};
use chatmail_appliance::milter_protocol::{decode, Command, Framer};
use mail_parser::MimeHeaders;

const LIMITS: Limits = Limits {
    max_message_size: 31_457_280,
    send_per_minute: 60,
    send_burst: 10,
};

fn corpus() -> Vec<Vec<u8>> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/corpus/messages");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    files.iter().map(|p| std::fs::read(p).unwrap()).collect()
}

/// Runs `f` over and over for about `time`; returns iterations per second.
fn rate(time: Duration, mut f: impl FnMut()) -> (f64, u64) {
    // Warm-up.
    let warm = Instant::now();
    while warm.elapsed() < time / 10 {
        f();
    }
    let started = Instant::now();
    let mut n = 0u64;
    while started.elapsed() < time {
        f();
        n += 1;
    }
    (n as f64 / started.elapsed().as_secs_f64(), n)
}

/// A valid PGP/MIME message of about `size` bytes: one PKESK and one SEIPD packet.
fn encrypted_message(from: &str, size: usize) -> Vec<u8> {
    let seipd_len = size * 3 / 4 - 600;
    let mut packets = vec![0xC1, 94];
    packets.extend((0..94u32).map(|i| i as u8));
    packets.push(0xD2);
    packets.push(0xFF);
    packets.extend((seipd_len as u32).to_be_bytes());
    packets.extend((0..seipd_len).map(|i| (i * 31 % 251) as u8));
    let b64 = base64::engine::general_purpose::STANDARD.encode(&packets);
    let mut armored = String::from("-----BEGIN PGP MESSAGE-----\r\n\r\n");
    for line in b64.as_bytes().chunks(64) {
        armored.push_str(std::str::from_utf8(line).unwrap());
        armored.push_str("\r\n");
    }
    armored.push_str("=AbCd\r\n-----END PGP MESSAGE-----\r\n");
    format!(
        "From: <{from}>\r\nTo: <bob@other.example>\r\nSubject: [...]\r\n\
         Date: Sun, 29 Nov 2026 10:00:00 +0000\r\nMessage-ID: <bench@chat.example>\r\nMIME-Version: 1.0\r\n\
         Content-Type: multipart/encrypted; protocol=\"application/pgp-encrypted\";\r\n boundary=\"B\"\r\n\r\n\
         --B\r\nContent-Type: application/pgp-encrypted\r\n\r\nVersion: 1\r\n\r\n\
         --B\r\nContent-Type: application/octet-stream; name=\"encrypted.asc\"\r\n\r\n{armored}\r\n--B--\r\n"
    )
    .into_bytes()
}

fn packet(code: u8, data: &[u8]) -> Vec<u8> {
    let mut p = ((data.len() + 1) as u32).to_be_bytes().to_vec();
    p.push(code);
    p.extend_from_slice(data);
    p
}

/// The milter packets Maddy sends for `message` (after negotiation): MAIL, RCPT, one
/// HEADER per field, EOH, BODY chunks of 64 KiB, EOM.
fn milter_stream(message: &[u8]) -> Vec<u8> {
    let mut s = Vec::new();
    s.extend(packet(b'M', b"<alice@chat.example>\0"));
    s.extend(packet(b'R', b"<bob@other.example>\0"));
    let split = message.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    let (head, body) = (&message[..split + 2], &message[split + 4..]);
    let text = std::str::from_utf8(head).unwrap();
    let mut fields: Vec<String> = Vec::new();
    for line in text.split_inclusive("\r\n") {
        if line.starts_with(' ') || line.starts_with('\t') {
            fields.last_mut().unwrap().push_str(line);
        } else {
            fields.push(line.to_string());
        }
    }
    for f in fields {
        let f = f.trim_end_matches("\r\n");
        let (name, value) = f.split_once(':').unwrap();
        let mut h = name.as_bytes().to_vec();
        h.push(0);
        h.extend_from_slice(value.trim_start().as_bytes());
        h.push(0);
        s.extend(packet(b'L', &h));
    }
    s.extend(packet(b'N', b""));
    for chunk in body.chunks(65535) {
        s.extend(packet(b'B', chunk));
    }
    s.extend(packet(b'E', b""));
    s
}

/// What the milter does with the stream: frame, decode, reassemble, decide (outgoing).
fn milter_outgoing(stream: &[u8]) -> bool {
    let mut framer = Framer::default();
    let mut message = Vec::with_capacity(stream.len());
    let mut rcpts = Vec::new();
    let mut verdict = false;
    // As read from a socket in 64 KiB pieces.
    for piece in stream.chunks(65536) {
        framer.extend(piece);
        while let Some((code, data)) = framer.next_packet().unwrap() {
            match decode(code, data).unwrap() {
                Command::Rcpt(args) => rcpts.push(String::from_utf8_lossy(args[0]).into_owned()),
                Command::Header { name, value } => {
                    message.extend_from_slice(name);
                    message.extend_from_slice(b": ");
                    message.extend_from_slice(value);
                    message.extend_from_slice(b"\r\n");
                }
                Command::EndOfHeaders => message.extend_from_slice(b"\r\n"),
                Command::Body(chunk) => message.extend_from_slice(chunk),
                Command::EndOfMessage => {
                    verdict =
                        mail_rules::check_outgoing_message("alice@chat.example", &rcpts, &message)
                            .is_ok();
                }
                _ => {}
            }
        }
    }
    verdict
}

fn dkim_signed(message: &[u8]) -> (Vec<u8>, String) {
    use mail_auth::common::crypto::{RsaKey, Sha256};
    use mail_auth::common::headers::HeaderWriter;
    use rsa::pkcs1::EncodeRsaPrivateKey;
    use rsa::pkcs8::EncodePublicKey;
    let private = rsa::RsaPrivateKey::new(&mut rand::thread_rng(), 2048).unwrap();
    let public = private
        .to_public_key()
        .to_public_key_der()
        .unwrap()
        .into_vec();
    let der = private.to_pkcs1_der().unwrap();
    let key = RsaKey::<Sha256>::from_key_der(rustls_pki_types::PrivateKeyDer::Pkcs1(
        der.as_bytes().to_vec().into(),
    ))
    .unwrap();
    let signature = mail_auth::dkim::DkimSigner::from_key(key)
        .domain("chat.example")
        .selector("opendkim")
        .headers(["From", "To", "Subject", "Date", "Message-ID"])
        .sign(message)
        .unwrap();
    let mut out = signature.to_header().into_bytes();
    out.extend_from_slice(message);
    let txt = format!(
        "v=DKIM1;k=rsa;p={}",
        base64::engine::general_purpose::STANDARD.encode(public)
    );
    (out, txt)
}

fn main() {
    let mut seconds = 3.0f64;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        if a == "--seconds" {
            seconds = args
                .next()
                .and_then(|v| v.parse().ok())
                .expect("--seconds N");
        }
    }
    let time = Duration::from_secs_f64(seconds);
    let messages = corpus();
    let bytes: usize = messages.iter().map(Vec::len).sum();
    println!(
        "corpus: {} messages, {:.1} KB in all, {:.1} KB on average",
        messages.len(),
        bytes as f64 / 1024.0,
        bytes as f64 / 1024.0 / messages.len() as f64
    );

    // The rules, outgoing and incoming, over the whole corpus.
    let rcpts = vec!["bob@other.example".to_string()];
    let (passes, _) = rate(time, || {
        for m in &messages {
            black_box(mail_rules::check_outgoing_message(
                "alice@chat.example",
                &rcpts,
                black_box(m),
            ))
            .ok();
            black_box(mail_rules::check_incoming_message(black_box(m), &LIMITS)).ok();
        }
    });
    let ours = passes * messages.len() as f64;
    println!(
        "encryption check (outgoing + incoming rules): {ours:.0} messages/s per core ({:.1} µs per message)",
        1e6 / ours
    );

    // The naive baseline: a full MIME parse of every message, every body decoded.
    let parser = mail_parser::MessageParser::default();
    let (passes, _) = rate(time, || {
        for m in &messages {
            if let Some(parsed) = parser.parse(black_box(m.as_slice())) {
                for part in parsed.parts.iter() {
                    black_box(part.contents());
                }
                black_box(parsed.content_type());
            }
        }
    });
    let naive = passes * messages.len() as f64;
    println!(
        "naive baseline (mail-parser full parse): {naive:.0} messages/s per core ({:.1} µs per message)",
        1e6 / naive
    );
    println!(
        "ratio: the encryption check is {:.2}x the naive baseline",
        ours / naive
    );

    // The whole milter path for a 100 KB message.
    let big = encrypted_message("alice@chat.example", 100 * 1024);
    assert!(mail_rules::check_outgoing_message("alice@chat.example", &rcpts, &big).is_ok());
    let stream = milter_stream(&big);
    assert!(milter_outgoing(&stream), "the 100 KB message must pass");
    let (per_s, _) = rate(time, || {
        black_box(milter_outgoing(black_box(&stream)));
    });
    println!(
        "milter path, outgoing, {} KB message: {:.3} ms per message (target: under 1 ms)",
        big.len() / 1024,
        1e3 / per_s
    );
    let (signed, txt) = dkim_signed(&big);
    let verifier = DkimVerifier::with_keys([("opendkim._domainkey.chat.example", txt.as_str())]);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime
        .block_on(mail_rules::check_incoming(&signed, &LIMITS, &verifier))
        .expect("the signed 100 KB message must pass incoming");
    let (per_s, _) = rate(time, || {
        black_box(
            runtime
                .block_on(mail_rules::check_incoming(
                    black_box(&signed),
                    &LIMITS,
                    &verifier,
                ))
                .ok(),
        );
    });
    println!(
        "milter path, incoming rules + DKIM (RSA-2048, cached key), {} KB message: {:.3} ms per message (target: under 1 ms)",
        signed.len() / 1024,
        1e3 / per_s
    );
}
