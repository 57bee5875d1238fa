//! A stable-Rust fuzz runner for the targets in `src/lib.rs`, for machines without
//! nightly/cargo-fuzz: it takes seeds (the message corpus in `tests/corpus/messages/`
//! and well-formed milter sessions), mutates them at random (bit flips, byte changes,
//! insertions, deletions, truncation, splices with another seed, repeated chunks, pure
//! random bytes) and runs every target for a fixed time. A panic (a crash, or a broken
//! invariant: an accept of malformed input) is reported with the input saved to
//! `target/fuzz-crashes/`, and the runner exits non-zero.
//!
//!     cargo run --release --no-default-features --bin stable-fuzz -- --seconds 60 [--seed N]

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use rand::{rngs::StdRng, Rng, SeedableRng};

type Target = fn(&[u8]);

fn corpus_seeds() -> Vec<Vec<u8>> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/corpus/messages");
    let mut seeds: Vec<Vec<u8>> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(|e| std::fs::read(e.ok()?.path()).ok())
        .collect();
    seeds.sort();
    // The armored payloads alone, and their packets, as seeds for the inner checks.
    let mut extra = Vec::new();
    for s in &seeds {
        if let Some(i) = find(s, b"-----BEGIN PGP MESSAGE-----") {
            extra.push(s[i..].to_vec());
        }
    }
    seeds.extend(extra);
    seeds
}

fn packet(code: u8, data: &[u8]) -> Vec<u8> {
    let mut p = ((data.len() + 1) as u32).to_be_bytes().to_vec();
    p.push(code);
    p.extend_from_slice(data);
    p
}

fn milter_seeds(messages: &[Vec<u8>]) -> Vec<Vec<u8>> {
    let mut seeds = Vec::new();
    for m in messages.iter().take(8) {
        let mut s = Vec::new();
        let mut opt = 6u32.to_be_bytes().to_vec();
        opt.extend(0x1FFu32.to_be_bytes());
        opt.extend(0x1FFFFFu32.to_be_bytes());
        s.extend(packet(b'O', &opt));
        s.extend(packet(b'D', b"Mi\0queue-id\0ABC\0"));
        s.extend(packet(b'C', b"mx.example\x004\x00\x19127.0.0.1\0"));
        s.extend(packet(b'H', b"mx.example\0"));
        s.extend(packet(b'M', b"<alice@chat.example>\0SIZE=100\0"));
        s.extend(packet(b'R', b"<bob@other.example>\0"));
        s.extend(packet(b'T', b""));
        let (head, body) = match find(m, b"\r\n\r\n") {
            Some(i) => (&m[..i], &m[i + 4..]),
            None => (&m[..], &m[m.len()..]),
        };
        for line in head.split(|&b| b == b'\n').take(20) {
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            if let Some(c) = line.iter().position(|&b| b == b':') {
                let mut h = line[..c].to_vec();
                h.push(0);
                h.extend_from_slice(line[c + 1..].trim_ascii_start());
                h.push(0);
                s.extend(packet(b'L', &h));
            }
        }
        s.extend(packet(b'N', b""));
        for chunk in body.chunks(65535) {
            s.extend(packet(b'B', chunk));
        }
        s.extend(packet(b'E', b""));
        s.extend(packet(b'A', b""));
        s.extend(packet(b'U', b"XUNKNOWN\0"));
        s.extend(packet(b'K', b""));
        s.extend(packet(b'Q', b""));
        seeds.push(s);
    }
    seeds
}

fn find(h: &[u8], n: &[u8]) -> Option<usize> {
    h.windows(n.len()).position(|w| w == n)
}

fn mutate(rng: &mut StdRng, seeds: &[Vec<u8>], input: &mut Vec<u8>) {
    let rounds = 1 + rng.gen_range(0..4);
    for _ in 0..rounds {
        let len = input.len();
        match rng.gen_range(0..10) {
            0 if len > 0 => {
                let i = rng.gen_range(0..len);
                input[i] ^= 1 << rng.gen_range(0..8);
            }
            1 if len > 0 => {
                let i = rng.gen_range(0..len);
                input[i] = *[0u8, 0xFF, b'\r', b'\n', b'=', b'-', b':', b'"', 0xC0, 0xD2]
                    .get(rng.gen_range(0..10))
                    .unwrap();
            }
            2 => {
                let i = rng.gen_range(0..=len);
                let n = rng.gen_range(1..16);
                let bytes: Vec<u8> = (0..n).map(|_| rng.gen()).collect();
                input.splice(i..i, bytes);
            }
            3 if len > 0 => {
                let i = rng.gen_range(0..len);
                let n = rng.gen_range(1..=(len - i).min(64));
                input.drain(i..i + n);
            }
            4 if len > 0 => input.truncate(rng.gen_range(0..len)),
            5 => {
                let other = &seeds[rng.gen_range(0..seeds.len())];
                if !other.is_empty() {
                    let a = rng.gen_range(0..other.len());
                    let b = rng.gen_range(a..=other.len().min(a + 4096));
                    let i = rng.gen_range(0..=len);
                    input.splice(i..i, other[a..b].iter().copied());
                }
            }
            6 if len > 1 => {
                let a = rng.gen_range(0..len);
                let b = rng.gen_range(a..=len.min(a + 256));
                let chunk = input[a..b].to_vec();
                let i = rng.gen_range(0..=len);
                input.splice(i..i, chunk);
            }
            7 => {
                // A 4-byte big-endian length somewhere (milter framing, 5-octet lengths).
                let i = rng.gen_range(0..=len);
                let v: u32 = *[0u32, 1, 0xFFFF_FFFF, 1 << 20, 1 << 24, rng.gen()]
                    .get(rng.gen_range(0..6))
                    .unwrap();
                input.splice(i..i, v.to_be_bytes());
            }
            8 => {
                let n = rng.gen_range(0..512);
                *input = (0..n).map(|_| rng.gen()).collect();
            }
            _ => {
                // Swap an ASCII case somewhere (headers and MIME types).
                if len > 0 {
                    let i = rng.gen_range(0..len);
                    input[i] = input[i].to_ascii_uppercase();
                }
            }
        }
    }
}

fn run(name: &str, target: Target, seeds: &[Vec<u8>], seconds: f64, seed: u64) -> bool {
    let mut rng = StdRng::seed_from_u64(seed);
    let started = Instant::now();
    let limit = Duration::from_secs_f64(seconds);
    let mut execs = 0u64;
    // The seeds themselves first, unmutated.
    let mut queue: Vec<Vec<u8>> = seeds.to_vec();
    loop {
        let input = match queue.pop() {
            Some(i) => i,
            None => {
                if started.elapsed() >= limit {
                    break;
                }
                let mut i = seeds[rng.gen_range(0..seeds.len())].clone();
                mutate(&mut rng, seeds, &mut i);
                i
            }
        };
        execs += 1;
        if let Err(panic) = catch_unwind(AssertUnwindSafe(|| target(&input))) {
            let msg = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/fuzz-crashes");
            let _ = std::fs::create_dir_all(&dir);
            let path = dir.join(format!("{name}-{seed}-{execs}"));
            let _ = std::fs::write(&path, &input);
            eprintln!(
                "{name}: FAILED after {execs} inputs: {msg}\n  input saved to {}",
                path.display()
            );
            return false;
        }
    }
    let secs = started.elapsed().as_secs_f64();
    println!(
        "{name}: {execs} inputs in {secs:.1} s ({:.0}/s), {} seeds, no panic, no accept of malformed input",
        execs as f64 / secs,
        seeds.len()
    );
    true
}

fn main() {
    let mut seconds = 30.0;
    let mut seed = 1u64;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--seconds" => {
                seconds = args
                    .next()
                    .and_then(|v| v.parse().ok())
                    .expect("--seconds N")
            }
            "--seed" => seed = args.next().and_then(|v| v.parse().ok()).expect("--seed N"),
            other => panic!("unknown argument {other}"),
        }
    }
    // Keep panics quiet: failures are reported once, with the input saved.
    std::panic::set_hook(Box::new(|_| {}));
    let messages = corpus_seeds();
    let milter = milter_seeds(&messages);
    let ok = run(
        "mime_openpgp",
        chatmail_appliance_fuzz::mime_openpgp,
        &messages,
        seconds,
        seed,
    ) & run(
        "milter_decoder",
        chatmail_appliance_fuzz::milter_decoder,
        &milter,
        seconds,
        seed,
    );
    std::process::exit(if ok { 0 } else { 1 });
}
