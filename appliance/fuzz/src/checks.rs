//! The checks the fuzz targets run, shared by the libFuzzer targets (`fuzz_targets/`), the
//! stable-Rust runner (`src/bin/stable_fuzz.rs`) and the test suite's fuzz test
//! (`appliance/tests/fuzz_mail_rules.rs`, which includes this file as a module, so it only
//! uses crates the appliance has too).
//!
//! Each check feeds one input to the code the relay runs and panics if (a) that code
//! panics, or (b) it accepts something an independent oracle, written separately here,
//! calls malformed: an accepted "encrypted" message must be one that a full MIME parser
//! (mail-parser) sees as `multipart/encrypted`, an accepted OpenPGP payload must walk as
//! session-key packets followed by exactly one SEIPD packet, and a decoded milter
//! command must be well-formed by the protocol's rules.

use chatmail_appliance::mail_rules::{self, mime::Entity, openpgp, Kind, Limits};
use chatmail_appliance::milter_protocol::{decode, Command, Framer, MAX_PACKET};
use mail_parser::MimeHeaders;

const LIMITS: Limits = Limits {
    max_message_size: 31_457_280,
    send_per_minute: 60,
    send_burst: 10,
};

/// The oracle for OpenPGP data: new-format packets only, PKESK/SKESK then one SEIPD that
/// ends the data. Written as a plain length walk, independently of `openpgp.rs`.
pub fn packets_oracle(data: &[u8]) -> bool {
    let mut pos = 0usize;
    let mut tags = Vec::new();
    while pos < data.len() {
        let header = data[pos];
        if header < 0xC0 {
            return false;
        }
        tags.push(header & 0x3F);
        pos += 1;
        // Partial chunks, then a final length.
        let body_len;
        loop {
            let Some(&first) = data.get(pos) else {
                return false;
            };
            match first {
                0..=191 => {
                    body_len = first as usize;
                    pos += 1;
                    break;
                }
                192..=223 => {
                    let Some(&second) = data.get(pos + 1) else {
                        return false;
                    };
                    body_len = ((first as usize - 192) << 8) + second as usize + 192;
                    pos += 2;
                    break;
                }
                224..=254 => {
                    pos = pos
                        .saturating_add(1)
                        .saturating_add(1usize << (first & 0x1F));
                }
                255 => {
                    let Some(b) = data.get(pos + 1..pos + 5) else {
                        return false;
                    };
                    body_len = u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize;
                    pos += 5;
                    break;
                }
            }
        }
        pos = pos.saturating_add(body_len);
    }
    if pos != data.len() {
        return false;
    }
    match tags.split_last() {
        Some((&18, before)) => before.iter().all(|&t| t == 1 || t == 3),
        _ => false,
    }
}

fn mime_type_by_mail_parser(data: &[u8]) -> Option<String> {
    let message = mail_parser::MessageParser::default().parse(data)?;
    let ct = message.content_type()?;
    Some(format!(
        "{}/{}",
        ct.ctype().to_ascii_lowercase(),
        ct.subtype().unwrap_or("").to_ascii_lowercase()
    ))
}

/// The MIME and OpenPGP rules on one arbitrary input.
pub fn mime_openpgp(data: &[u8]) {
    // The packet walk and the armor check on the raw bytes.
    if openpgp::check_packets(data) {
        assert!(
            packets_oracle(data),
            "check_packets accepted malformed packets"
        );
    }
    for outgoing in [true, false] {
        let _ = openpgp::check_armored_payload(data, outgoing);
    }
    // The whole rules in both directions.
    let out = mail_rules::check_outgoing_message("alice@chat.example", &[], data);
    let inc = mail_rules::check_incoming_message(data, &LIMITS).map(|(k, _)| k);
    for (direction, verdict) in [("outgoing", &out), ("incoming", &inc)] {
        match verdict {
            Ok(Kind::Encrypted) => {
                let top = mime_type_by_mail_parser(data);
                assert_eq!(
                    top.as_deref(),
                    Some("multipart/encrypted"),
                    "{direction}: accepted as encrypted, but a full MIME parser sees {top:?}"
                );
                assert!(
                    memchr_find(data, b"-----BEGIN PGP MESSAGE-----").is_some()
                        || memchr_find(data, b"Content-Transfer-Encoding").is_some(),
                    "{direction}: accepted as encrypted without an armored message"
                );
            }
            Ok(Kind::SecureJoin) => {
                let entity = Entity::parse(data).expect("accepted, so it parses");
                let header = entity.value("Secure-Join").unwrap_or_default();
                assert!(
                    header == "vc-request" || header == "vg-request",
                    "{direction}: Secure-Join accepted with header {header:?}"
                );
            }
            Ok(Kind::MailerDaemon) => {
                assert_eq!(
                    direction, "incoming",
                    "mailer-daemon reports accepted outgoing"
                );
                // mail-parser gives up on some broken Content-Type fields (raw 8-bit
                // bytes); where it reads one, it must be a report.
                let top = mime_type_by_mail_parser(data);
                assert!(
                    top.is_none() || top.as_deref() == Some("multipart/report"),
                    "a mailer-daemon message accepted that is not a report: {top:?}"
                );
            }
            Ok(Kind::AutocryptSetup) => panic!("{direction}: Autocrypt Setup Message accepted"),
            Err(reply) => assert!(
                !reply.is_success() && reply.code >= 400,
                "a refusal with a success code: {reply:?}"
            ),
        }
    }
    let _ = mail_rules::strip_for_local_delivery(data);
}

fn memchr_find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// The oracle for one decoded milter command: its data is well-formed.
fn command_oracle(code: u8, data: &[u8], command: &Command<'_>) {
    let nul_terminated = |d: &[u8]| d.last() == Some(&0);
    let ok = match command {
        Command::OptNeg { .. } => code == b'O' && data.len() >= 12,
        Command::Macro { pairs, .. } => {
            code == b'D'
                && !data.is_empty()
                && (data.len() == 1 || nul_terminated(data))
                && data[1..].iter().filter(|&&b| b == 0).count() == pairs.len() * 2
        }
        Command::Connect { .. } => code == b'C' && data.contains(&0),
        Command::Helo(s) => code == b'H' && data.contains(&0) && !s.contains(&0),
        Command::Mail(args) | Command::Rcpt(args) => {
            (code == b'M' || code == b'R') && !args.is_empty() && nul_terminated(data)
        }
        Command::Header { name, value } => {
            code == b'L'
                && nul_terminated(data)
                && data.iter().filter(|&&b| b == 0).count() == 2
                && !name.contains(&0)
                && !value.contains(&0)
        }
        Command::Body(b) => code == b'B' && b.len() == data.len(),
        Command::Data => code == b'T',
        Command::EndOfHeaders => code == b'N',
        Command::EndOfMessage => code == b'E',
        Command::Abort => code == b'A',
        Command::Quit => code == b'Q',
        Command::QuitNewConnection => code == b'K',
        Command::Unknown(_) => code == b'U' && data.contains(&0),
    };
    assert!(
        ok,
        "decoded a malformed packet {code:?} {data:?} as {command:?}"
    );
}

/// The milter decoder on an arbitrary byte stream, fed in uneven pieces.
pub fn milter_decoder(data: &[u8]) {
    let mut framer = Framer::default();
    let mut consumed = 0usize;
    // Feed in pieces whose sizes come from the data itself, as a socket would split it.
    let step = 1 + data.first().map_or(0, |&b| b as usize % 97);
    for piece in data.chunks(step) {
        framer.extend(piece);
        loop {
            match framer.next_packet() {
                Ok(Some((code, body))) => {
                    assert!(
                        body.len() < MAX_PACKET,
                        "a packet over the limit was returned"
                    );
                    consumed += 5 + body.len();
                    let body = body.to_vec();
                    if let Ok(command) = decode(code, &body) {
                        command_oracle(code, &body, &command);
                    }
                }
                Ok(None) => break,
                Err(_) => return, // the connection is closed: nothing is accepted
            }
        }
    }
    assert!(
        consumed <= data.len(),
        "the framer returned more than it was given"
    );
    assert_eq!(
        consumed + framer.pending(),
        data.len(),
        "bytes lost by the framer"
    );
}
