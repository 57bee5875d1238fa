//! A fuzz loop on stable Rust, without libFuzzer: seeds (the message corpus in
//! `tests/corpus/messages/`, the armored payloads cut out of it, and well-formed milter
//! sessions built from it), random mutations of them (bit flips, special bytes,
//! insertions, deletions, truncation, splices with another seed, repeated chunks,
//! big-endian lengths, case changes, pure random bytes), and one check run on each input
//! for a fixed time.
//!
//! Used by the stable runner (`src/bin/stable_fuzz.rs`) and by the test suite
//! (`appliance/tests/fuzz_mail_rules.rs`, which includes this file as a module). The
//! inputs depend only on the seed, so a failure is reproduced by running again with the
//! seed it reports, for at least as long.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;
use std::time::{Duration, Instant};

use rand::{rngs::StdRng, Rng, SeedableRng};

/// The corpus messages (sorted, so the seed order is stable), then the armored payloads
/// cut out of them, as seeds for the inner checks.
pub fn corpus_seeds(messages_dir: &Path) -> Vec<Vec<u8>> {
    let mut seeds: Vec<Vec<u8>> = std::fs::read_dir(messages_dir)
        .unwrap_or_else(|e| panic!("{}: {e}", messages_dir.display()))
        .filter_map(|e| std::fs::read(e.ok()?.path()).ok())
        .collect();
    seeds.sort();
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

/// Whole milter sessions as Maddy sends them (option negotiation, macros, connect, HELO,
/// envelope, header fields, body chunks, end of message), one per message for the first
/// eight messages, plus the rarer commands.
pub fn milter_seeds(messages: &[Vec<u8>]) -> Vec<Vec<u8>> {
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

/// One to four random changes to `input`.
pub fn mutate(rng: &mut StdRng, seeds: &[Vec<u8>], input: &mut Vec<u8>) {
    let rounds = 1 + rng.gen_range(0..4);
    for _ in 0..rounds {
        let len = input.len();
        match rng.gen_range(0..10) {
            0 if len > 0 => {
                let i = rng.gen_range(0..len);
                input[i] ^= 1 << rng.gen_range(0..8);
            }
            1 if len > 0 => {
                const SPECIAL: [u8; 10] =
                    [0, 0xFF, b'\r', b'\n', b'=', b'-', b':', b'"', 0xC0, 0xD2];
                let i = rng.gen_range(0..len);
                input[i] = SPECIAL[rng.gen_range(0..SPECIAL.len())];
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
                let values = [0u32, 1, 0xFFFF_FFFF, 1 << 20, 1 << 24, rng.gen()];
                let v = values[rng.gen_range(0..values.len())];
                input.splice(i..i, v.to_be_bytes());
            }
            8 => {
                let n = rng.gen_range(0..512);
                *input = (0..n).map(|_| rng.gen()).collect();
            }
            _ => {
                // An ASCII case change somewhere (header names, MIME types).
                if len > 0 {
                    let i = rng.gen_range(0..len);
                    input[i] = input[i].to_ascii_uppercase();
                }
            }
        }
    }
}

/// What one run did.
#[derive(Debug)]
pub struct Report {
    pub target: String,
    pub seed: u64,
    /// Inputs checked, the unmutated seeds included.
    pub inputs: u64,
    pub elapsed: Duration,
    /// The first failure: the panic message and the input.
    pub failure: Option<(String, Vec<u8>)>,
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let secs = self.elapsed.as_secs_f64().max(1e-9);
        write!(
            f,
            "{}: seed {}, {} inputs in {:.1} s ({:.0}/s)",
            self.target,
            self.seed,
            self.inputs,
            secs,
            self.inputs as f64 / secs
        )?;
        match &self.failure {
            None => write!(f, ", no panic, no accept of malformed input"),
            Some((message, input)) => {
                write!(
                    f,
                    ", FAILED on input {} ({} bytes): {message}",
                    self.inputs,
                    input.len()
                )
            }
        }
    }
}

/// The run's length and seed for the test suite: `CHATMAIL_FUZZ_SECONDS` (default 20) and
/// `CHATMAIL_FUZZ_SEED` (default: from the clock).
pub fn settings_from_env() -> (Duration, u64) {
    let seconds: f64 = match std::env::var("CHATMAIL_FUZZ_SECONDS") {
        Ok(v) => v
            .parse()
            .unwrap_or_else(|_| panic!("CHATMAIL_FUZZ_SECONDS={v:?} is not a number")),
        Err(_) => 20.0,
    };
    let seed = match std::env::var("CHATMAIL_FUZZ_SEED") {
        Ok(v) => v
            .parse()
            .unwrap_or_else(|_| panic!("CHATMAIL_FUZZ_SEED={v:?} is not a number")),
        Err(_) => std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_secs()),
    };
    (Duration::from_secs_f64(seconds), seed)
}

/// Runs `check` on every seed, then on mutated seeds until `duration` has passed, and
/// stops at the first panic. Panics inside `check` are caught; the panic hook still
/// prints them, so a caller that wants quiet output sets its own.
pub fn run(
    target: &str,
    check: fn(&[u8]),
    seeds: &[Vec<u8>],
    duration: Duration,
    seed: u64,
) -> Report {
    assert!(!seeds.is_empty(), "{target}: no seeds");
    let mut rng = StdRng::seed_from_u64(seed);
    let started = Instant::now();
    let mut inputs = 0u64;
    let mut queue: Vec<Vec<u8>> = seeds.to_vec();
    queue.reverse();
    let mut failure = None;
    loop {
        let input = match queue.pop() {
            Some(i) => i,
            None => {
                if started.elapsed() >= duration {
                    break;
                }
                let mut i = seeds[rng.gen_range(0..seeds.len())].clone();
                mutate(&mut rng, seeds, &mut i);
                i
            }
        };
        inputs += 1;
        if let Err(panic) = catch_unwind(AssertUnwindSafe(|| check(&input))) {
            let message = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            failure = Some((message, input));
            break;
        }
    }
    Report {
        target: target.to_string(),
        seed,
        inputs,
        elapsed: started.elapsed(),
        failure,
    }
}
