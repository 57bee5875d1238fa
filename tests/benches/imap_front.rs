//! What the IMAP front costs a client: a bulk FETCH of 1,000 messages through the front
//! (TLS ended by the front, Maddy behind it on loopback) against the same FETCH from Maddy's
//! own TLS listener (a second relay with `--imap-front=false`), measured in the same run.
//! Goal (issue "Appliance II"): at most 10% overhead.
//!
//! `cargo bench -p chatmail-tests --bench imap_front` (needs Maddy, as the appliance tests:
//! `appliance/scripts/install-test-deps.sh`, and a built appliance:
//! `cargo build -p chatmail-appliance`). The driver's own speed hardly matters, so
//! `cargo build -p chatmail-tests --bench imap_front` and running the binary it prints
//! saves a release build of the test crate. `--messages N --rounds N --size BYTES` change
//! the workload. Debug builds of the appliance are what the tests use; a release build
//! (`CHATMAIL_APPLIANCE_BIN=target/release/chatmail-appliance`) shows the front's own cost
//! better.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use chatmail_tests::appliance::{Appliance, RunningAppliance};
use chatmail_tests::tls_client::{connect_tls, Trust};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};

const DOMAIN: &str = "bench.example";
const PASSWORD: &str = "bench-password-1";

type Stream = BufReader<tokio_rustls::client::TlsStream<tokio::net::TcpStream>>;

struct Options {
    messages: usize,
    rounds: usize,
    size: usize,
}

fn options() -> Options {
    let mut o = Options {
        messages: 1000,
        rounds: 5,
        size: 8 * 1024,
    };
    let args: Vec<String> = std::env::args().collect();
    for pair in args.windows(2) {
        let value = || pair[1].parse().expect("a number");
        match pair[0].as_str() {
            "--messages" => o.messages = value(),
            "--rounds" => o.rounds = value(),
            "--size" => o.size = value(),
            _ => {}
        }
    }
    o
}

/// Reads one response line; a line announcing a literal `{n}` comes back with the literal.
/// Returns the bytes read.
async fn read_response(stream: &mut Stream, line: &mut Vec<u8>) -> usize {
    line.clear();
    let n = stream.read_until(b'\n', line).await.expect("read");
    assert!(n > 0, "the server closed the connection");
    let mut total = n;
    if let Some(len) = literal_len(line) {
        let mut literal = vec![0u8; len];
        stream.read_exact(&mut literal).await.expect("literal");
        total += len;
        // The rest of the line after the literal.
        let mut rest = Vec::new();
        total += stream.read_until(b'\n', &mut rest).await.expect("read");
        line.extend_from_slice(&rest);
    }
    total
}

fn literal_len(line: &[u8]) -> Option<usize> {
    let text = std::str::from_utf8(line).ok()?.trim_end();
    let open = text.rfind('{')?;
    text.strip_suffix('}')?[open + 1..].parse().ok()
}

/// Sends `command` with `tag` and reads until its tagged response; returns the bytes read.
async fn command(stream: &mut Stream, tag: &str, command: &str) -> usize {
    stream
        .get_mut()
        .write_all(format!("{tag} {command}\r\n").as_bytes())
        .await
        .unwrap();
    stream.get_mut().flush().await.unwrap();
    let mut line = Vec::new();
    let mut total = 0;
    loop {
        total += read_response(stream, &mut line).await;
        if line.starts_with(format!("{tag} ").as_bytes()) {
            assert!(
                line.starts_with(format!("{tag} OK").as_bytes()),
                "{}",
                String::from_utf8_lossy(&line)
            );
            return total;
        }
    }
}

async fn login(app: &RunningAppliance, user: &str) -> Stream {
    let addr: SocketAddr = ([127, 0, 0, 1], app.ports.imaps).into();
    let tls = connect_tls(addr, DOMAIN, &Trust::Anything, &[])
        .await
        .expect("IMAPS");
    let mut stream = BufReader::new(tls);
    let mut greeting = Vec::new();
    read_response(&mut stream, &mut greeting).await;
    command(&mut stream, "l", &format!("LOGIN {user} {PASSWORD}")).await;
    stream
}

/// Appends `count` messages of about `size` bytes to the account's INBOX.
async fn fill(app: &RunningAppliance, user: &str, count: usize, size: usize) {
    let mut stream = login(app, user).await;
    let body: String = (0..size / 76)
        .map(|i| format!("{:075}\r\n", i * 7919))
        .collect();
    for i in 0..count {
        let message = format!(
            "From: {user}\r\nTo: {user}\r\nSubject: [...]\r\nMessage-ID: <{i}@{DOMAIN}>\r\n\
             Content-Type: text/plain\r\n\r\n{body}"
        );
        let tag = format!("a{i}");
        stream
            .get_mut()
            .write_all(format!("{tag} APPEND INBOX {{{}}}\r\n", message.len()).as_bytes())
            .await
            .unwrap();
        stream.get_mut().flush().await.unwrap();
        let mut line = Vec::new();
        read_response(&mut stream, &mut line).await;
        assert!(line.starts_with(b"+"), "{}", String::from_utf8_lossy(&line));
        stream
            .get_mut()
            .write_all(format!("{message}\r\n").as_bytes())
            .await
            .unwrap();
        stream.get_mut().flush().await.unwrap();
        loop {
            read_response(&mut stream, &mut line).await;
            if line.starts_with(format!("{tag} ").as_bytes()) {
                assert!(line.starts_with(format!("{tag} OK").as_bytes()));
                break;
            }
        }
    }
}

/// One bulk FETCH of the whole INBOX on a fresh session: (time, bytes).
async fn fetch_all(app: &RunningAppliance, user: &str) -> (Duration, usize) {
    let mut stream = login(app, user).await;
    command(&mut stream, "s", "SELECT INBOX").await;
    let started = Instant::now();
    let bytes = command(&mut stream, "f", "FETCH 1:* (UID BODY.PEEK[])").await;
    let took = started.elapsed();
    let _ = command(&mut stream, "o", "LOGOUT").await;
    (took, bytes)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    chatmail_tests::tls_ready();
    let o = options();
    let names = "[limits]\nusername_min_length = 3\n";
    let mut with_front = Appliance::new(DOMAIN).config(names).imap_front(true);
    let mut without_front = Appliance::new(DOMAIN).config(names).imap_front(false);
    let (front, direct) = tokio::join!(with_front.start(), without_front.start());
    let user = format!("bench@{DOMAIN}");
    for app in [&front, &direct] {
        fill(app, &user, o.messages, o.size).await;
    }
    println!(
        "bulk FETCH of {} messages of about {} KiB, best of {} rounds:",
        o.messages,
        o.size / 1024,
        o.rounds
    );
    let (mut best_front, mut best_direct) = (Duration::MAX, Duration::MAX);
    let mut bytes = 0;
    for _ in 0..o.rounds {
        // Alternating, so that background load falls on both alike.
        let (t, b) = fetch_all(&direct, &user).await;
        best_direct = best_direct.min(t);
        let (t, b2) = fetch_all(&front, &user).await;
        best_front = best_front.min(t);
        assert!(b.abs_diff(b2) < b / 100, "both relays served the same mail");
        bytes = b;
    }
    let rate = |t: Duration| bytes as f64 / t.as_secs_f64() / 1e6;
    println!(
        "  Maddy's own TLS (front off): {:8.1} ms  {:7.1} MB/s",
        best_direct.as_secs_f64() * 1e3,
        rate(best_direct)
    );
    println!(
        "  through the IMAP front:      {:8.1} ms  {:7.1} MB/s",
        best_front.as_secs_f64() * 1e3,
        rate(best_front)
    );
    let overhead = best_front.as_secs_f64() / best_direct.as_secs_f64() - 1.0;
    println!(
        "  overhead of the front: {:+.1}% (goal: at most +10%)",
        overhead * 100.0
    );
}
