#!/usr/bin/env python3
"""Builds the mail-rules corpus (tests/corpus/messages/ and verdicts.json).

Two kinds of messages:

* captured: real Delta Chat 2.65 messages from tests/corpus/captured/ (made by
  tests/deltachat/capture_corpus.py against the appliance): the storage-only header
  fields Maddy adds (Delivered-To, Return-Path) are dropped and duplicates removed;
* derived: hand-shaped messages for every rule, most of them mutations of a captured
  encrypted message (so the shape stays real): Secure-Join requests, an Autocrypt Setup
  Message, bounces, plain text, forged From, broken MIME, wrong OpenPGP packets.

Every message gets the envelope it is sent with and its expected verdict in both
directions: "accept:<kind>" or the SMTP reply code. Incoming verdicts are those of the
structure rule; the DKIM rule (554 5.7.1) is applied on top by the tests, which sign.
The oversize message (over 30 MiB) is not stored: verdicts.json describes it and the
tests build it.

Run from anywhere: python3 tests/corpus/make_corpus.py
"""

import base64
import hashlib
import json
import os
import re

HERE = os.path.dirname(os.path.abspath(__file__))
CAPTURED = os.path.join(HERE, "captured")
OUT = os.path.join(HERE, "messages")

ALICE = "alice@chat.example"
BOB = "bob@other.example"


def crlf(text):
    return text.replace("\r\n", "\n").replace("\n", "\r\n").encode()


def strip_storage_fields(raw):
    head, sep, body = raw.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    keep = [l for l in lines if not re.match(rb"(?i)^(delivered-to|return-path):", l)]
    return b"\r\n".join(keep) + sep + body


def first_packet_tag(raw):
    m = re.search(rb"-----BEGIN PGP MESSAGE-----\r\n\r\n(.*?)\r\n-----END", raw, re.S)
    data = m.group(1)
    data = data[: data.rfind(b"=")] if b"=" in data.split(b"\r\n")[-1] else data
    packets = base64.b64decode(data.replace(b"\r\n", b"") + b"==")
    return packets[0] & 0x3F


def set_from(raw, addr):
    return re.sub(rb"(?im)^From: [^\r\n]*", b"From: <" + addr.encode() + b">", raw, count=1)


def armored(packets, version_header=False, crc=True):
    b64 = base64.b64encode(packets).decode()
    lines = [b64[i : i + 64] for i in range(0, len(b64), 64)]
    head = "Version: Foo 1.0\r\n" if version_header else ""
    tail = "=njUN\r\n" if crc else ""
    return (
        "-----BEGIN PGP MESSAGE-----\r\n" + head + "\r\n" + "\r\n".join(lines) + "\r\n" + tail
        + "-----END PGP MESSAGE-----\r\n"
    )


def packet(tag, body):
    n = len(body)
    if n < 192:
        length = bytes([n])
    elif n < 8384:
        n2 = n - 192
        length = bytes([(n2 >> 8) + 192, n2 & 0xFF])
    else:
        length = b"\xff" + n.to_bytes(4, "big")
    return bytes([0xC0 | tag]) + length + body


PKESK = packet(1, bytes([6, 0, 18]) + bytes(range(80)))
SKESK = packet(3, bytes([4, 9, 3, 8]) + bytes(range(40)))
SEIPD = packet(18, bytes([1]) + bytes((i * 7) % 256 for i in range(600)))


def pgp_mime(payload, sender=ALICE, part0="Version: 1", ct1="application/octet-stream",
             extra_part=None, top="multipart/encrypted", boundary='"XyZ"', headers=""):
    parts = [
        "Content-Type: application/pgp-encrypted\r\nContent-Description: PGP/MIME version "
        "identification\r\n\r\n" + part0 + "\r\n",
        "Content-Type: " + ct1 + "; name=\"encrypted.asc\"\r\nContent-Description: OpenPGP "
        "encrypted message\r\nContent-Disposition: inline; filename=\"encrypted.asc\";\r\n\r\n"
        + payload,
    ]
    if extra_part:
        parts.append(extra_part)
    b = "XyZ"
    body = "".join("\r\n--" + b + "\r\n" + p for p in parts) + "\r\n--" + b + "--\r\n"
    return crlf(
        f"From: <{sender}>\r\nTo: \"hidden-recipients\": ;\r\nSubject: [...]\r\n"
        f"Date: Sun, 29 Nov 2026 10:00:00 +0000\r\nMessage-ID: <{hashlib.sha1(payload.encode()).hexdigest()}@chat.example>\r\n"
        f"MIME-Version: 1.0\r\n{headers}Content-Type: {top}; protocol=\"application/pgp-encrypted\";\r\n"
        f" boundary={boundary}\r\n" + body
    )


def securejoin(step, body_text, sender=ALICE, ct="text/plain"):
    return crlf(
        f"From: <{sender}>\r\nTo: <{BOB}>\r\nSubject: Message from Alice\r\n"
        "Date: Sun, 29 Nov 2026 10:00:00 +0000\r\nMessage-ID: <sj-" + step + "@chat.example>\r\n"
        "Chat-Version: 1.0\r\n"
        f"Secure-Join: {step}\r\nSecure-Join-Invitenumber: 9AkDqs3ZbXn2fGhQ\r\n"
        "Autocrypt: addr=alice@chat.example; prefer-encrypt=mutual; keydata=xjMEZ0Fm\r\n"
        " 4RYJKwYBBAHaRw8BAQdA\r\n"
        "MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"sj1\"\r\n\r\n"
        f"--sj1\r\nContent-Type: {ct}; charset=\"utf-8\"\r\n\r\n{body_text}\r\n\r\n--sj1--\r\n"
    )


def autocrypt_setup(sender=ALICE):
    payload = armored(SKESK + SEIPD)
    return crlf(
        f"From: <{sender}>\r\nTo: <{sender}>\r\nSubject: Autocrypt Setup Message\r\n"
        "Date: Sun, 29 Nov 2026 10:00:00 +0000\r\nMessage-ID: <asm@chat.example>\r\n"
        "Autocrypt-Setup-Message: v1\r\nMIME-Version: 1.0\r\n"
        "Content-Type: multipart/mixed; boundary=\"asm\"\r\n\r\n"
        "--asm\r\nContent-Type: text/plain\r\n\r\nThis is the Autocrypt Setup Message.\r\n"
        "--asm\r\nContent-Type: application/autocrypt-setup\r\nContent-Disposition: attachment; "
        "filename=\"autocrypt-setup-message.html\"\r\n\r\n<html><body><pre>\r\n"
        + payload.replace("-----BEGIN PGP MESSAGE-----\r\n",
                          "-----BEGIN PGP MESSAGE-----\r\nPassphrase-Format: numeric9x4\r\n")
        + "</pre></body></html>\r\n--asm--\r\n"
    )


def plain(sender=ALICE, subject="Hello", extra=""):
    return crlf(
        f"From: <{sender}>\r\nTo: <{BOB}>\r\nSubject: {subject}\r\n"
        "Date: Sun, 29 Nov 2026 10:00:00 +0000\r\nMessage-ID: <plain@chat.example>\r\n"
        f"{extra}MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
        "Hi Bob, this is not encrypted.\r\n"
    )


def bounce(auto_submitted=True, top="multipart/report", sender="MAILER-DAEMON@other.example"):
    auto = "Auto-Submitted: auto-replied\r\n" if auto_submitted else ""
    return crlf(
        f"From: Mail Delivery Subsystem <{sender}>\r\nTo: <{ALICE}>\r\n"
        "Subject: Undelivered Mail Returned to Sender\r\nDate: Sun, 29 Nov 2026 10:00:00 +0000\r\n"
        f"Message-ID: <dsn@other.example>\r\n{auto}MIME-Version: 1.0\r\n"
        f"Content-Type: {top}; report-type=delivery-status; boundary=\"dsn\"\r\n\r\n"
        "--dsn\r\nContent-Type: text/plain\r\n\r\nYour message could not be delivered.\r\n"
        "--dsn\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.other.example\r\n\r\n"
        "Final-Recipient: rfc822; nobody@other.example\r\nAction: failed\r\nStatus: 5.1.1\r\n\r\n"
        "--dsn\r\nContent-Type: text/rfc822-headers\r\n\r\nFrom: <alice@chat.example>\r\nSubject: [...]\r\n\r\n"
        "--dsn--\r\n"
    )


def main():
    os.makedirs(OUT, exist_ok=True)
    for f in os.listdir(OUT):
        os.remove(os.path.join(OUT, f))
    entries = []

    def add(name, raw, mail_from, rcpts, outgoing, incoming, note):
        with open(os.path.join(OUT, name), "wb") as f:
            f.write(raw)
        entries.append({"file": name, "mail_from": mail_from, "rcpts": rcpts,
                        "outgoing": outgoing, "incoming": incoming, "note": note})

    # Captured Delta Chat messages.
    seen = set()
    captured = []
    for f in sorted(os.listdir(CAPTURED)):
        if not f.endswith(".eml"):
            continue
        raw = strip_storage_fields(open(os.path.join(CAPTURED, f), "rb").read())
        digest = hashlib.sha256(raw).hexdigest()
        if digest in seen:
            continue
        seen.add(digest)
        captured.append(raw)
    counts = {}
    for raw in captured:
        tag = first_packet_tag(raw)
        kind = {1: "pkesk", 3: "skesk"}[tag]
        counts[kind] = counts.get(kind, 0) + 1
        name = f"dc-encrypted-{kind}-{counts[kind]:02d}.eml"
        sender = re.search(rb"(?im)^From: <([^>]+)>", raw).group(1).decode()
        note = ("Delta Chat 2.65, public-key encrypted" if kind == "pkesk" else
                "Delta Chat 2.65, Secure-Join step encrypted with a shared secret (SKESK)")
        add(name, raw, sender, [BOB], "accept:encrypted", "accept:encrypted", note)

    base = max((r for r in captured if first_packet_tag(r) == 1), key=len)
    base_sender = re.search(rb"(?im)^From: <([^>]+)>", base).group(1).decode()

    # Forged From: the captured message, sent with another envelope sender.
    add("forged-from-captured.eml", base, ALICE, [BOB], 500, "accept:encrypted",
        "From: is another address than the envelope sender (incoming mail only drops the sender)")
    add("forged-from-display.eml", set_from(base, "alice@chat.example.evil"), ALICE, [BOB], 500,
        "accept:encrypted", "From: domain differs from the envelope sender's")

    # Armor header: outgoing forbids it, incoming drops it.
    text = base.decode()
    with_version = text.replace("-----BEGIN PGP MESSAGE-----\r\n",
                                "-----BEGIN PGP MESSAGE-----\r\nVersion: Foo 1.0\r\n", 1)
    add("armor-version-header.eml", set_from(with_version.encode(), ALICE), ALICE, [BOB], 523,
        "accept:encrypted", "armor header Version: (allowed incoming only)")
    with_comment = text.replace("-----BEGIN PGP MESSAGE-----\r\n",
                                "-----BEGIN PGP MESSAGE-----\r\nComment: hello\r\n", 1)
    add("armor-comment-header.eml", set_from(with_comment.encode(), ALICE), ALICE, [BOB], 523, 523,
        "armor header Comment: breaks the base64 in both directions")

    # Synthetic but valid PGP/MIME.
    add("synthetic-pkesk-seipd.eml", pgp_mime(armored(PKESK + PKESK + SEIPD)), ALICE, [BOB],
        "accept:encrypted", "accept:encrypted", "two PKESK then SEIPD")
    add("synthetic-skesk-seipd.eml", pgp_mime(armored(SKESK + SEIPD)), ALICE, [BOB],
        "accept:encrypted", "accept:encrypted", "SKESK then SEIPD")
    partial = bytes([0xC0 | 18, 0xE9]) + bytes(512) + bytes([100]) + bytes(100)
    add("synthetic-partial-length.eml", pgp_mime(armored(PKESK + partial)), ALICE, [BOB],
        "accept:encrypted", "accept:encrypted", "SEIPD with a partial body length chunk")

    # Wrong OpenPGP packets.
    wrong = {
        "packets-seipd-first.eml": (SEIPD + PKESK, "SEIPD is not the last packet"),
        "packets-only-pkesk.eml": (PKESK, "no SEIPD packet"),
        "packets-literal-data.eml": (PKESK + packet(11, b"b\x00\x00\x00\x00\x00hello"),
                                     "literal data (tag 11) instead of SEIPD"),
        "packets-compressed.eml": (packet(8, b"\x01" + bytes(50)), "compressed data only (tag 8)"),
        "packets-aead.eml": (PKESK + packet(20, bytes(100)), "AEAD packet (tag 20), not SEIPD"),
        "packets-signature-first.eml": (packet(2, bytes(60)) + PKESK + SEIPD,
                                        "a signature packet before the session key"),
        "packets-old-format.eml": (bytes([0x84, len(PKESK) - 2]) + PKESK[2:] + SEIPD,
                                   "old-format packet header"),
        "packets-truncated.eml": ((PKESK + SEIPD)[:-10], "SEIPD shorter than its length"),
        "packets-trailing-bytes.eml": (PKESK + SEIPD + b"\x00\x01", "bytes after the SEIPD packet"),
        "packets-truncated-header.eml": (PKESK + bytes([0xD2, 0xFF, 0x00]),
                                         "five-octet length cut short"),
        "packets-empty.eml": (b"", "no packets at all"),
    }
    for name, (data, note) in wrong.items():
        add(name, pgp_mime(armored(data)), ALICE, [BOB], 523, 523, note)
    add("armor-bad-base64.eml",
        pgp_mime("-----BEGIN PGP MESSAGE-----\r\n\r\nwcBMA!!!notbase64***\r\n=AbCd\r\n-----END PGP MESSAGE-----\r\n"),
        ALICE, [BOB], 523, 523, "armor body is not base64")
    add("armor-missing-end.eml", pgp_mime(armored(PKESK + SEIPD).replace("-----END PGP MESSAGE-----\r\n", "")),
        ALICE, [BOB], 523, 523, "no END line")
    add("armor-signed-message.eml",
        pgp_mime(armored(PKESK + SEIPD).replace("PGP MESSAGE", "PGP SIGNATURE")),
        ALICE, [BOB], 523, 523, "a PGP SIGNATURE block, not a message")

    # Wrong MIME structure around valid packets.
    good = armored(PKESK + SEIPD)
    add("mime-version-2.eml", pgp_mime(good, part0="Version: 2"), ALICE, [BOB], 523, 523,
        "first part says Version: 2")
    add("mime-wrong-part-type.eml", pgp_mime(good, ct1="application/pgp-signature"), ALICE, [BOB],
        523, 523, "second part is not application/octet-stream")
    add("mime-three-parts.eml",
        pgp_mime(good, extra_part="Content-Type: text/plain\r\n\r\nsecret in clear text\r\n"),
        ALICE, [BOB], 523, 523, "a third, cleartext part")
    whole = pgp_mime(good)
    cut = whole.index(b"\r\n--XyZ\r\nContent-Type: application/octet-stream")
    add("mime-version-part-only.eml", whole[:cut] + b"\r\n--XyZ--\r\n", ALICE, [BOB], 523, 523,
        "only the version part, no encrypted payload: RFC 3156 wants exactly two parts "
        "(upstream's part loop would pass it; found by fuzzing)")
    add("mime-nested-multipart.eml",
        pgp_mime(good, extra_part=None, top="multipart/encrypted").replace(
            b"Content-Type: application/pgp-encrypted\r\n",
            b"Content-Type: multipart/mixed; boundary=\"in\"\r\n\r\n--in\r\nContent-Type: text/plain\r\n\r\nhi\r\n--in--\r\n", 1),
        ALICE, [BOB], 523, 523, "first part is itself multipart")
    add("mime-multipart-mixed.eml", pgp_mime(good, top="multipart/mixed"), ALICE, [BOB], 523, 523,
        "PGP parts inside multipart/mixed")
    add("mime-no-boundary.eml",
        pgp_mime(good).replace(b" boundary=\"XyZ\"\r\n", b" charset=utf-8\r\n"),
        ALICE, [BOB], 523, 523, "multipart/encrypted without a boundary")
    add("mime-wrong-boundary.eml", pgp_mime(good, boundary='"Other"'), ALICE, [BOB], 523, 523,
        "the boundary parameter matches no delimiter")
    add("mime-no-closing-delimiter.eml", pgp_mime(good).replace(b"\r\n--XyZ--\r\n", b"\r\n"),
        ALICE, [BOB], "accept:encrypted", "accept:encrypted",
        "the closing delimiter is missing; the parts are still complete (lenient, as mail parsers)")
    add("mime-header-without-colon.eml",
        pgp_mime(good).replace(b"Subject: [...]\r\n", b"Subject [...]\r\n"),
        ALICE, [BOB], 500, 500, "a header line without a colon: unparsable")
    add("mime-no-from.eml", pgp_mime(good).replace(b"From: <alice@chat.example>\r\n", b""),
        ALICE, [BOB], 500, 500, "no From: header")
    add("mime-garbage.eml", bytes(range(256)) * 4, ALICE, [BOB], 500, 500, "binary garbage")
    add("mime-empty.eml", b"", ALICE, [BOB], 500, 500, "an empty message")

    # Secure-Join requests (the unencrypted first steps).
    add("securejoin-vc-request.eml", securejoin("vc-request", "Secure-Join: vc-request"), ALICE, [BOB],
        "accept:securejoin", "accept:securejoin", "contact verification request")
    add("securejoin-vg-request.eml", securejoin("vg-request", "secure-join: VG-REQUEST"), ALICE, [BOB],
        "accept:securejoin", "accept:securejoin", "group join request, body in other case")
    add("securejoin-vc-auth-required.eml",
        securejoin("vc-auth-required", "Secure-Join: vc-auth-required"), ALICE, [BOB], 523, 523,
        "a later Secure-Join step must be encrypted")
    add("securejoin-body-mismatch.eml", securejoin("vc-request", "Please let me in"), ALICE, [BOB],
        523, 523, "Secure-Join header but another body")
    add("securejoin-html.eml", securejoin("vc-request", "Secure-Join: vc-request", ct="text/html"),
        ALICE, [BOB], 523, 523, "the part is not text/plain")
    sj_two = securejoin("vg-request", "Secure-Join: vg-request").replace(
        b"--sj1--\r\n", b"--sj1\r\nContent-Type: text/plain\r\n\r\nmore\r\n--sj1--\r\n")
    add("securejoin-two-parts.eml", sj_two, ALICE, [BOB], 523, 523, "a second part")
    add("securejoin-forged-from.eml", securejoin("vc-request", "Secure-Join: vc-request",
                                                 sender="carol@chat.example"),
        ALICE, [BOB], 500, "accept:securejoin", "valid request under another From:")

    # Autocrypt Setup Message: self-sent, unencrypted MIME around a symmetric payload.
    add("autocrypt-setup-self.eml", autocrypt_setup(), ALICE, [ALICE], 523, 523,
        "Autocrypt Setup Message: not PGP/MIME, refused: only Secure-Join requests pass "
        "unencrypted (the issue; filtermail #157 removed the passthroughs; Delta Chat no longer "
        "sends it, chatmail/core #7993)")

    # Plain text.
    add("plain-text.eml", plain(), ALICE, [BOB], 523, 523, "ordinary unencrypted mail")
    add("plain-text-encrypted-subject.eml", plain(subject="[...]", extra="Chat-Version: 1.0\r\n"),
        ALICE, [BOB], 523, 523, "looks like Delta Chat but is clear text")
    add("plain-forged-from.eml", plain(sender="boss@chat.example"), ALICE, [BOB], 500, 523,
        "clear text under another From:")

    # Bounces.
    add("bounce-mailer-daemon.eml", bounce(), "", [ALICE], 500, "accept:mailer_daemon",
        "delivery report from MAILER-DAEMON (null sender)")
    add("bounce-no-auto-submitted.eml", bounce(auto_submitted=False), "", [ALICE], 500, 523,
        "report without Auto-Submitted")
    add("bounce-not-report.eml", bounce(top="multipart/mixed"), "", [ALICE], 500, 523,
        "mailer-daemon but not multipart/report")
    add("bounce-other-sender.eml", bounce(sender="postmaster@other.example"), "", [ALICE], 500, 523,
        "report from postmaster, not mailer-daemon")

    entries.append({
        "file": None, "generate": "oversize", "mail_from": ALICE, "rcpts": [BOB],
        "outgoing": 552, "incoming": 552,
        "note": "a valid PGP/MIME message one byte over the 31457280-byte limit (built by the tests)",
    })
    with open(os.path.join(HERE, "verdicts.json"), "w") as f:
        json.dump({"max_message_size": 31457280, "messages": entries}, f, indent=1)
        f.write("\n")
    print(len(entries), "entries")


if __name__ == "__main__":
    main()
