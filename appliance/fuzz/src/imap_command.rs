//! The IMAP front's command framer and parser (`chatmail_appliance::imap_parser`) as a
//! fuzz target, with pipelined command streams as seeds.
//!
//! Oracle: a naive reference framer over the whole input. However the bytes arrive (the
//! input is cut into pieces), the framer must make exactly its frames, so a literal is
//! never misframed; every byte is accounted for; bounds hold; the command tokenizer and
//! the response helpers never panic on what the framer hands them.
//!
//! Shared by the libFuzzer target, the stable runner and the test suite
//! (`appliance/tests/fuzz_imap_command.rs` includes this file as a module, so it only uses
//! crates the appliance has too).

use chatmail_appliance::imap_parser::{
    command_head, literal_at_end, make_non_sync, parse_command, response_start, CapabilityEdit,
    CommandFramer, Frame, Limits, Part,
};

const LIMITS: Limits = Limits {
    max_line: 512,
    max_literal: 4096,
};

/// The framer on one arbitrary input: its first byte says where to cut the rest.
pub fn imap_command(data: &[u8]) {
    let Some((&step, input)) = data.split_first() else {
        return;
    };
    let step = usize::from(step % 61) + 1;
    let cuts: Vec<usize> = (step..input.len()).step_by(step).collect();
    check(input, &cuts);
}

/// Well-formed and borderline command streams.
pub fn seeds() -> Vec<Vec<u8>> {
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

/// Bytes worth inserting into command streams.
pub const SPECIALS: &[&[u8]] = &[
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

/// The framer on `input` arriving in pieces cut at `cuts` (ascending).
pub fn check(input: &[u8], cuts: &[usize]) {
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
                let _ = command_head(line);
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
