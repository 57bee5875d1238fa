//! The rules on the message corpus (`tests/corpus/`, made by `tests/corpus/make_corpus.py`):
//! real Delta Chat messages and hand-shaped ones, each with its expected verdict in both
//! directions. Incoming mail that passes the structure rule is then DKIM-checked three
//! ways: signed by its `From:` domain (accepted), unsigned (`554 … No DKIM signature
//! found`), and signed by another domain (`554 … No valid DKIM signature found`).

use std::path::PathBuf;

use mail_auth::common::crypto::Ed25519Key;
use mail_auth::common::headers::HeaderWriter;
use mail_auth::dkim::DkimSigner;

use super::*;

struct Case {
    name: String,
    message: Vec<u8>,
    mail_from: String,
    rcpts: Vec<String>,
    outgoing: Verdict,
    incoming: Verdict,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Verdict {
    Accept(String),
    Refuse(u16),
}

impl Verdict {
    fn parse(v: &serde_json::Value) -> Verdict {
        match v {
            serde_json::Value::Number(n) => Verdict::Refuse(n.as_u64().unwrap() as u16),
            serde_json::Value::String(s) => {
                Verdict::Accept(s.strip_prefix("accept:").expect("accept:<kind>").into())
            }
            other => panic!("bad verdict {other}"),
        }
    }

    fn of(result: &Result<Kind, Reply>) -> Verdict {
        match result {
            Ok(kind) => Verdict::Accept(kind.label().into()),
            Err(reply) => Verdict::Refuse(reply.code),
        }
    }
}

pub(super) fn corpus_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/corpus")
}

/// A valid PGP/MIME message of exactly `size` bytes (for the size limit).
pub(super) fn oversize(from: &str, size: usize) -> Vec<u8> {
    let head = format!(
        "From: <{from}>\r\nTo: <bob@other.example>\r\nSubject: [...]\r\nMIME-Version: 1.0\r\n\
         Content-Type: multipart/encrypted; protocol=\"application/pgp-encrypted\"; boundary=\"B\"\r\n\r\n\
         --B\r\nContent-Type: application/pgp-encrypted\r\n\r\nVersion: 1\r\n\r\n\
         --B\r\nContent-Type: application/octet-stream\r\n\r\n-----BEGIN PGP MESSAGE-----\r\n\r\n"
    );
    let tail = "\r\n-----END PGP MESSAGE-----\r\n\r\n--B--\r\n";
    let mut m = head.into_bytes();
    // Filler lines of base64 'A's; their content does not matter for the size check.
    while m.len() + tail.len() < size {
        let n = (size - tail.len() - m.len()).min(78);
        m.extend(std::iter::repeat_n(b'A', n.saturating_sub(2)));
        m.extend_from_slice(&b"\r\n"[..n.min(2)]);
    }
    m.extend_from_slice(tail.as_bytes());
    m.truncate(size.max(m.len().min(size)));
    m
}

/// One corpus entry: name, message, envelope sender, recipients, verdict entry.
pub(super) type Entry = (String, Vec<u8>, String, Vec<String>, serde_json::Value);

pub(super) fn load() -> (usize, Vec<Entry>) {
    let dir = corpus_dir();
    let verdicts: serde_json::Value = serde_json::from_slice(
        &std::fs::read(dir.join("verdicts.json")).expect("tests/corpus/verdicts.json"),
    )
    .unwrap();
    let max = verdicts["max_message_size"].as_u64().unwrap() as usize;
    let mut out = Vec::new();
    for entry in verdicts["messages"].as_array().unwrap() {
        let mail_from = entry["mail_from"].as_str().unwrap().to_string();
        let (name, message) = match entry["file"].as_str() {
            Some(file) => (
                file.to_string(),
                std::fs::read(dir.join("messages").join(file)).expect(file),
            ),
            None => {
                assert_eq!(entry["generate"], "oversize");
                ("<oversize>".to_string(), oversize(&mail_from, max + 1))
            }
        };
        let rcpts = entry["rcpts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r.as_str().unwrap().to_string())
            .collect();
        out.push((name, message, mail_from, rcpts, entry.clone()));
    }
    (max, out)
}

fn cases() -> (Limits, Vec<Case>) {
    let (max, raw) = load();
    let limits = Limits {
        max_message_size: max,
        send_per_minute: 60,
        send_burst: 10,
    };
    let cases = raw
        .into_iter()
        .map(|(name, message, mail_from, rcpts, entry)| Case {
            name,
            message,
            mail_from,
            rcpts,
            outgoing: Verdict::parse(&entry["outgoing"]),
            incoming: Verdict::parse(&entry["incoming"]),
        })
        .collect();
    (limits, cases)
}

/// The outgoing milter's verdict: Maddy's size limit first (it refuses larger messages
/// with 552 before the milter sees the end), then the message rule.
fn outgoing(case: &Case, limits: &Limits) -> Result<Kind, Reply> {
    if case.message.len() > limits.max_message_size {
        return Err(Reply::too_big());
    }
    check_outgoing_message(&case.mail_from, &case.rcpts, &case.message)
}

#[test]
fn corpus_verdicts_in_both_directions() {
    let (limits, cases) = cases();
    assert!(cases.len() >= 50, "the corpus is missing");
    let captured = cases
        .iter()
        .filter(|c| c.name.starts_with("dc-encrypted"))
        .count();
    assert!(captured >= 5, "too few captured Delta Chat messages");
    let mut wrong = Vec::new();
    for case in &cases {
        let out = outgoing(case, &limits);
        if Verdict::of(&out) != case.outgoing {
            wrong.push(format!(
                "{} outgoing: expected {:?}, got {:?}",
                case.name, case.outgoing, out
            ));
        }
        let inc = check_incoming_message(&case.message, &limits).map(|(k, _)| k);
        if Verdict::of(&inc) != case.incoming {
            wrong.push(format!(
                "{} incoming: expected {:?}, got {:?}",
                case.name, case.incoming, inc
            ));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn corpus_texts_are_upstreams() {
    let (limits, cases) = cases();
    for case in &cases {
        let texts = [
            outgoing(case, &limits).err(),
            check_incoming_message(&case.message, &limits).err(),
        ];
        for reply in texts.into_iter().flatten() {
            let ok = match reply.code {
                523 => reply.line == "523 Encryption Needed: Invalid Unencrypted Mail",
                552 => reply.line == "552 Message exceeds maximum size",
                500 => {
                    reply.line.starts_with("500 Invalid FROM <")
                        || reply.line.starts_with("500 Invalid FROM header: ")
                        || reply.line.starts_with("500 Failed to parse message: ")
                }
                _ => false,
            };
            assert!(ok, "{}: unexpected reply {:?}", case.name, reply.line);
        }
    }
}

/// Signs `message` for `domain` (selector `sel`) with the key in `key_der`, as the sending relay would.
fn sign(key_der: &[u8], domain: &str, message: &[u8]) -> Vec<u8> {
    let key = Ed25519Key::from_pkcs8_der(key_der).unwrap();
    let signature = DkimSigner::from_key(key)
        .domain(domain)
        .selector("sel")
        .headers([
            "From",
            "To",
            "Subject",
            "Date",
            "Message-ID",
            "Content-Type",
        ])
        .sign(message)
        .expect("DKIM signing");
    let mut out = signature.to_header().into_bytes();
    out.extend_from_slice(message);
    out
}

fn ed25519() -> (Vec<u8>, String) {
    use base64::Engine as _;
    let der = Ed25519Key::generate_pkcs8().unwrap();
    let key = Ed25519Key::from_pkcs8_der(&der).unwrap();
    let txt = format!(
        "v=DKIM1; k=ed25519; p={}",
        base64::engine::general_purpose::STANDARD.encode(key.public_key())
    );
    (der, txt)
}

#[tokio::test]
async fn corpus_dkim_alignment() {
    let (limits, cases) = cases();
    let (good_key, good_txt) = ed25519();
    let (other_key, other_txt) = ed25519();
    let mut keys: Vec<(String, String)> =
        vec![("sel._domainkey.attacker.example".into(), other_txt.clone())];
    let accepted: Vec<&Case> = cases
        .iter()
        .filter(|c| matches!(c.incoming, Verdict::Accept(_)))
        .collect();
    assert!(accepted.len() >= 10);
    for case in &accepted {
        let (_, domain) = check_incoming_message(&case.message, &limits).unwrap();
        keys.push((format!("sel._domainkey.{domain}"), good_txt.clone()));
    }
    let verifier =
        dkim::DkimVerifier::with_keys(keys.iter().map(|(n, t)| (n.as_str(), t.as_str())));
    for case in accepted {
        let (_, domain) = check_incoming_message(&case.message, &limits).unwrap();
        // Signed by the From: domain: accepted, with the kind of the structure rule.
        let signed = sign(&good_key, &domain, &case.message);
        let result = check_incoming(&signed, &limits, &verifier).await;
        assert_eq!(Verdict::of(&result), case.incoming, "{} signed", case.name);
        // Unsigned.
        let result = check_incoming(&case.message, &limits, &verifier).await;
        assert_eq!(
            result.unwrap_err().line,
            "554 5.7.1 No DKIM signature found",
            "{}",
            case.name
        );
        // Signed, but by another domain (a valid signature, not aligned).
        let foreign = sign(&other_key, "attacker.example", &case.message);
        let result = check_incoming(&foreign, &limits, &verifier).await;
        assert_eq!(
            result.unwrap_err().line,
            "554 5.7.1 No valid DKIM signature found",
            "{}",
            case.name
        );
        // Signed by the right domain, then altered in transit (a signed header field).
        let mut tampered = signed.clone();
        let at = memchr::memmem::find(&tampered, b"Message-ID: <").expect("a Message-ID") + 13;
        tampered[at] = if tampered[at] == b'x' { b'y' } else { b'x' };
        let result = check_incoming(&tampered, &limits, &verifier).await;
        assert!(
            result.is_err_and(|r| r.code == 554),
            "{}: a changed header must fail DKIM",
            case.name
        );
    }
}
