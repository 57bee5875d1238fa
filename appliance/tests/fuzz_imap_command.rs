//! Fuzzing the IMAP front's command framer and parser as part of `cargo test`: random
//! mutations of pipelined command streams (literals `{n}` and `{n+}`, quoted strings,
//! lists, IDLE's DONE, overlong lines), fed in random pieces, for a fixed time. Checks: no
//! panic; the frames are exactly what a naive reference framer over the whole input
//! makes (so a literal is never misframed, however the bytes arrive); every byte is
//! accounted for; bounds hold; the command tokenizer and the response helpers never
//! panic on what the framer hands them.
//!
//! * `CHATMAIL_FUZZ_SECONDS` — time (default 20).
//! * `CHATMAIL_FUZZ_SEED` — the seed (default: from the clock). The seed is printed, and a
//!   failing input saved under the target directory and named in the failure.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use chatmail_appliance::imap_parser::{
    literal_at_end, make_non_sync, parse_command, response_start, CapabilityEdit, CommandFramer,
    Frame, Limits, Part,
};
use rand::{rngs::StdRng, Rng, SeedableRng};

const LIMITS: Limits = Limits {
    max_line: 512,
    max_literal: 4096,
};

fn settings() -> (Duration, u64) {
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
        Err(_) => SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(1, |d| d.as_secs()),
    };
    (Duration::from_secs_f64(seconds), seed)
}

fn seeds() -> Vec<Vec<u8>> {
    [
        &b"a1 LOGIN \"alice@chat.example\" \"pass\\\"word\"\r\na2 CAPABILITY\r\n"[..],
        b"a APPEND INBOX (\\Seen) {11}\r\nhello\r\nworld\r\nb NOOP\r\n",
        b"a APPEND INBOX {5+}\r\nhello\r\nb SELECT INBOX\r\n",
        b"x SETMETADATA \"INBOX\" (/private/devicetoken {12}\r\nopenpgp:abcd)\r\n",
        b"g GETMETADATA \"\" (/shared/comment /shared/admin /shared/vendor/deltachat/turn)\r\n",
        b"i IDLE\r\nDONE\r\nn NOOP\r\n",
        b"a AUTHENTICATE PLAIN\r\nAGFsaWNlAHB3\r\nq GETQUOTAROOT INBOX\r\n",
        b"l LOGIN {5}\r\nalice {4+}\r\npass\r\nz COMPRESS DEFLATE\r\n",
        b"f UID FETCH 1:* (UID RFC822.SIZE BODY.PEEK[HEADER.FIELDS (MESSAGE-ID DATE)])\r\n",
        b"h APPEND INBOX {99999}\r\nh2 APPEND INBOX {99999+}\r\nxxxxx",
        b"* BAD\r\n+ x\r\n\r\n{0}\r\n{}\r\n{+}\r\n",
    ]
    .iter()
    .map(|s| s.to_vec())
    .collect()
}

const SPECIALS: &[&[u8]] = &[
    b"{0}\r\n",
    b"{1}\r\n",
    b"{7+}\r\n",
    b"{4096}\r\n",
    b"{4097}\r\n",
    b"{99999999999999999999}\r\n",
    b"\r\n",
    b"\n",
    b"\"",
    b"\\",
    b"(",
    b")",
    b"{",
    b"}",
    b"+",
    b" ",
    b"NIL",
    b"DONE\r\n",
];

fn mutate(rng: &mut StdRng, seeds: &[Vec<u8>]) -> Vec<u8> {
    let mut input = seeds[rng.gen_range(0..seeds.len())].clone();
    for _ in 0..rng.gen_range(1..6) {
        let at = rng.gen_range(0..=input.len());
        match rng.gen_range(0..7) {
            0 if !input.is_empty() => {
                let i = rng.gen_range(0..input.len());
                input[i] ^= 1 << rng.gen_range(0..8);
            }
            1 => {
                let s = SPECIALS[rng.gen_range(0..SPECIALS.len())];
                input.splice(at..at, s.iter().copied());
            }
            2 if !input.is_empty() => {
                let end = rng.gen_range(at..=input.len());
                input.drain(at..end);
            }
            3 => input.truncate(at),
            4 => {
                let other = &seeds[rng.gen_range(0..seeds.len())];
                input.splice(at..at, other.iter().copied());
            }
            5 => {
                let n = rng.gen_range(0..1200);
                let b = if rng.gen() { b'x' } else { rng.gen() };
                input.splice(at..at, std::iter::repeat_n(b, n));
            }
            _ => {
                let n = rng.gen_range(0..32);
                let random: Vec<u8> = (0..n).map(|_| rng.gen()).collect();
                input.splice(at..at, random);
            }
        }
    }
    input
}

/// The naive reference: the whole input at once, literal by literal.
fn reference(input: &[u8]) -> (Vec<Frame>, usize) {
    let mut frames = Vec::new();
    let mut pos = 0;
    loop {
        let rest = &input[pos..];
        let Some(nl) = rest.iter().position(|&b| b == b'\n') else {
            if rest.len() >= LIMITS.max_line {
                frames.push(Frame::LineTooLong {
                    prefix: rest[..64.min(rest.len())].to_vec(),
                });
                return (frames, input.len());
            }
            return (frames, pos);
        };
        if nl + 1 > LIMITS.max_line {
            frames.push(Frame::LineTooLong {
                prefix: rest[..64.min(rest.len())].to_vec(),
            });
            return (frames, input.len());
        }
        let line = rest[..=nl].to_vec();
        pos += nl + 1;
        match literal_at_end(&line) {
            Some(lit) if lit.len > LIMITS.max_literal => {
                frames.push(Frame::LiteralTooLarge { line, literal: lit });
                if !lit.sync {
                    return (frames, input.len());
                }
            }
            Some(lit) => {
                frames.push(Frame::Line {
                    line,
                    literal: Some(lit),
                });
                let n = (lit.len as usize).min(input.len() - pos);
                if n > 0 {
                    frames.push(Frame::LiteralData(input[pos..pos + n].to_vec()));
                }
                pos += n;
                if n < lit.len as usize {
                    return (frames, pos);
                }
            }
            None => frames.push(Frame::Line {
                line,
                literal: None,
            }),
        }
    }
}

/// Merges consecutive literal chunks (their split depends on how bytes arrived).
fn merged(frames: Vec<Frame>) -> Vec<Frame> {
    let mut out: Vec<Frame> = Vec::new();
    for f in frames {
        if let (Frame::LiteralData(next), Some(Frame::LiteralData(prev))) = (&f, out.last_mut()) {
            prev.extend_from_slice(next);
            continue;
        }
        out.push(f);
    }
    out
}

fn check(input: &[u8], cuts: &[usize]) {
    let (expected, consumed) = reference(input);
    let mut framer = CommandFramer::new(LIMITS);
    let mut frames = Vec::new();
    let mut last = 0;
    for &cut in cuts.iter().chain(std::iter::once(&input.len())) {
        framer.push(&input[last..cut]);
        last = cut;
        while let Some(f) = framer.next_frame() {
            frames.push(f);
        }
    }
    let frames = merged(frames);
    assert_eq!(frames, expected, "frames differ from the reference");
    // Every byte is accounted for.
    if !framer.is_poisoned() {
        let rest = framer.take_unframed();
        assert_eq!(consumed + rest.len(), input.len(), "bytes lost or invented");
        assert_eq!(&input[consumed..], &rest[..]);
    }
    // The tokenizer and helpers on what the framer produced.
    let mut parts = Vec::new();
    for f in &frames {
        match f {
            Frame::Line { line, literal } => {
                assert!(line.len() <= LIMITS.max_line && line.ends_with(b"\n"));
                let _ = response_start(line);
                let _ = CapabilityEdit {
                    hide: vec!["COMPRESS=".into()],
                    add: vec!["METADATA".into()],
                }
                .edit_line(line);
                let _ = chatmail_appliance::imap_parser::command_head(line);
                let rewritten = make_non_sync(line);
                assert_eq!(
                    literal_at_end(&rewritten).map(|l| l.len),
                    literal.map(|l| l.len)
                );
                parts.push(Part::of_line(line));
                if literal.is_none() {
                    let _ = parse_command(&parts);
                    parts.clear();
                } else {
                    parts.push(Part::Literal(Vec::new()));
                }
            }
            Frame::LiteralData(data) => {
                if let Some(Part::Literal(bytes)) = parts.last_mut() {
                    bytes.extend_from_slice(data);
                }
            }
            Frame::LiteralTooLarge { .. } | Frame::LineTooLong { .. } => parts.clear(),
        }
    }
}

#[test]
fn imap_command_framer() {
    let name = "imap_command";
    let (duration, seed) = settings();
    eprintln!(
        "{name}: seed {seed} for {duration:?} (to repeat: CHATMAIL_FUZZ_SEED={seed} \
         CHATMAIL_FUZZ_SECONDS={} cargo test -p chatmail-appliance --test fuzz_imap_command)",
        duration.as_secs_f64()
    );
    let seeds = seeds();
    let mut rng = StdRng::seed_from_u64(seed);
    let start = Instant::now();
    let mut inputs = 0u64;
    while start.elapsed() < duration || inputs < seeds.len() as u64 {
        let input = if (inputs as usize) < seeds.len() {
            seeds[inputs as usize].clone()
        } else {
            mutate(&mut rng, &seeds)
        };
        let mut cuts: Vec<usize> = (0..rng.gen_range(0..8))
            .map(|_| rng.gen_range(0..=input.len()))
            .collect();
        cuts.sort();
        inputs += 1;
        if let Err(e) = catch_unwind(AssertUnwindSafe(|| check(&input, &cuts))) {
            let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("fuzz-crashes");
            let _ = std::fs::create_dir_all(&dir);
            let path = dir.join(format!("{name}-{seed}-{inputs}"));
            let _ = std::fs::write(&path, &input);
            let message = e
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            panic!(
                "{name}: input {inputs} failed ({message}), cuts {cuts:?}; saved to {}",
                path.display()
            );
        }
    }
    eprintln!("{name}: {inputs} inputs in {:?}", start.elapsed());
    assert!(inputs > seeds.len() as u64);
}
