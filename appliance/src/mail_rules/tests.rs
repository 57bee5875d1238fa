//! Unit tests of the rules on hand-made messages; the corpus test
//! (`corpus_tests.rs`, on `tests/corpus/`) covers real messages.

use super::*;

fn limits() -> Limits {
    Limits {
        max_message_size: 31_457_280,
        send_per_minute: 60,
        send_burst: 10,
    }
}

/// A valid armored payload: one PKESK packet and one SEIPD packet, with a CRC line.
fn armored() -> String {
    use base64::Engine as _;
    let mut packets = vec![0xC1, 94];
    packets.extend([7u8; 94]);
    packets.extend([0xD2, 100]);
    packets.extend([9u8; 100]);
    let b64 = base64::engine::general_purpose::STANDARD.encode(&packets);
    let lines: Vec<&str> = b64
        .as_bytes()
        .chunks(76)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect();
    format!(
        "-----BEGIN PGP MESSAGE-----\r\n\r\n{}\r\n=AbCd\r\n-----END PGP MESSAGE-----\r\n",
        lines.join("\r\n")
    )
}

fn encrypted(from: &str) -> String {
    format!(
        "From: <{from}>\r\nTo: <bob@other.example>\r\nSubject: [...]\r\nMIME-Version: 1.0\r\n\
         Content-Type: multipart/encrypted; protocol=\"application/pgp-encrypted\";\r\n boundary=\"XYZ\"\r\n\r\n\
         --XYZ\r\nContent-Type: application/pgp-encrypted\r\nContent-Description: PGP/MIME version identification\r\n\r\nVersion: 1\r\n\r\n\
         --XYZ\r\nContent-Type: application/octet-stream; name=\"encrypted.asc\"\r\nContent-Description: OpenPGP encrypted message\r\n\
         Content-Disposition: inline; filename=\"encrypted.asc\";\r\n\r\n{}\r\n--XYZ--\r\n",
        armored()
    )
}

#[test]
fn the_sample_payload_is_valid() {
    assert!(openpgp::check_armored_payload(armored().as_bytes(), true));
}

#[test]
fn outgoing_encrypted_passes() {
    let msg = encrypted("alice@chat.example");
    let rcpts = vec!["bob@other.example".to_string()];
    assert_eq!(
        check_outgoing_message("alice@chat.example", &rcpts, msg.as_bytes()),
        Ok(Kind::Encrypted)
    );
}

#[test]
fn forged_from_is_500() {
    let msg = encrypted("mallory@chat.example");
    let err = check_outgoing_message("alice@chat.example", &[], msg.as_bytes()).unwrap_err();
    assert_eq!(err.code, 500);
    assert_eq!(
        err.line,
        "500 Invalid FROM <mallory@chat.example> for <alice@chat.example>"
    );
}

#[test]
fn plain_text_is_523_both_ways() {
    let msg = "From: alice@chat.example\r\nSubject: hi\r\n\r\nhello\r\n";
    let err = check_outgoing_message("alice@chat.example", &[], msg.as_bytes()).unwrap_err();
    assert_eq!(err, Reply::encryption_needed());
    let err = check_incoming_message(msg.as_bytes(), &limits()).unwrap_err();
    assert_eq!(err.line, "523 Encryption Needed: Invalid Unencrypted Mail");
}

#[test]
fn securejoin_request() {
    let msg = "From: alice@chat.example\r\nSecure-Join: vc-request\r\n\
               Content-Type: multipart/mixed; boundary=\"b\"\r\n\r\n\
               --b\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nSecure-Join: VC-Request\r\n--b--\r\n";
    assert_eq!(
        check_outgoing_message("alice@chat.example", &[], msg.as_bytes()),
        Ok(Kind::SecureJoin)
    );
    let other = msg.replace("vc-request\r\n", "vc-auth-required\r\n");
    assert!(check_outgoing_message("alice@chat.example", &[], other.as_bytes()).is_err());
    let two_parts = msg.replace("--b--", "--b\r\n\r\nmore\r\n--b--");
    assert!(check_outgoing_message("alice@chat.example", &[], two_parts.as_bytes()).is_err());
}

#[test]
fn mailer_daemon_only_incoming() {
    let msg = "From: MAILER-DAEMON@other.example\r\nAuto-Submitted: auto-replied\r\n\
               Content-Type: multipart/report; report-type=delivery-status; boundary=\"r\"\r\n\r\n\
               --r\r\n\r\nfailed\r\n--r--\r\n";
    assert_eq!(
        check_incoming_message(msg.as_bytes(), &limits()),
        Ok((Kind::MailerDaemon, "other.example".to_string()))
    );
    let no_auto = msg.replace("Auto-Submitted: auto-replied\r\n", "");
    assert!(check_incoming_message(no_auto.as_bytes(), &limits()).is_err());
    let err =
        check_outgoing_message("mailer-daemon@other.example", &[], msg.as_bytes()).unwrap_err();
    assert_eq!(err.code, 523);
}

#[test]
fn size_limit() {
    let mut l = limits();
    l.max_message_size = 10;
    assert_eq!(
        check_incoming_message(b"From: a@b\r\n\r\n0123456789", &l).unwrap_err(),
        Reply::too_big()
    );
}

#[test]
fn sender_rules() {
    let out = Outgoing::new(&limits());
    let now = Instant::now();
    assert_eq!(
        out.check_sender("a@b@c", now).unwrap_err().line,
        "500 Invalid from address <a@b@c>"
    );
    for _ in 0..10 {
        out.check_sender("a@b", now).unwrap();
    }
    let err = out.check_sender("a@b", now).unwrap_err();
    assert_eq!(err.code, 450);
    assert!(
        err.line.starts_with("450 4.7.1: Too much mail from <a@b>"),
        "{}",
        err.line
    );
}

#[test]
fn autocrypt_setup_message_is_refused_even_to_self() {
    let msg = "From: alice@chat.example\r\nSubject: Autocrypt Setup Message\r\nAutocrypt-Setup-Message: v1\r\n\
               Content-Type: multipart/mixed; boundary=\"a\"\r\n\r\n--a\r\n\r\nx\r\n--a--\r\n";
    let me = vec!["alice@chat.example".to_string()];
    assert_eq!(
        check_outgoing_message("alice@chat.example", &me, msg.as_bytes()),
        Err(Reply::encryption_needed())
    );
}

#[test]
fn stripping_for_local_delivery() {
    let msg = b"Received: from x\r\n\tby y\r\nSubject: s\r\nDKIM-Signature: v=1;\r\n b=abc\r\nTo: t\r\n\r\nbody\r\nReceived: not a header\r\n";
    let out = strip_for_local_delivery(msg);
    assert_eq!(
        &*out,
        b"Subject: s\r\nTo: t\r\n\r\nbody\r\nReceived: not a header\r\n"
    );
    let clean = b"Subject: s\r\n\r\nb";
    assert!(matches!(strip_for_local_delivery(clean), Cow::Borrowed(_)));
}
