//! Is an ASCII-armored payload an encrypted OpenPGP message, and nothing else?
//!
//! Upstream's checks, step by step (research/chatmail.md §1.3, `check_armored_payload` and
//! `check_openpgp_payload`): the armor must start with the `BEGIN PGP MESSAGE` line, end
//! with the `END` line, carry no armor header in outgoing mail (incoming mail may have one
//! `Version:` line), and its base64 (everything before the last `=`, i.e. without the
//! CRC24) must decode; the packets must be new-format, zero or more PKESK (tag 1) or SKESK
//! (tag 3) packets followed by exactly one SEIPD (tag 18) packet that ends where the data
//! ends. Partial body lengths are followed. A truncated header fails the check.

use base64::Engine as _;

const BEGIN: &[u8] = b"-----BEGIN PGP MESSAGE-----\r\n";
const END: &[u8] = b"-----END PGP MESSAGE-----";
const VERSION_HEADER: &[u8] = b"Version: ";

/// Packet tags.
const TAG_PKESK: u8 = 1;
const TAG_SKESK: u8 = 3;
const TAG_SEIPD: u8 = 18;

/// Whether `payload` (the decoded body of the second MIME part) is an armored OpenPGP
/// message that passes the packet check. `outgoing` forbids armor headers.
pub fn check_armored_payload(payload: &[u8], outgoing: bool) -> bool {
    let Some(mut rest) = payload.strip_prefix(BEGIN) else {
        return false;
    };
    while let Some(r) = rest.strip_suffix(b"\r\n") {
        rest = r;
    }
    let Some(mut rest) = rest.strip_suffix(END) else {
        return false;
    };
    if rest.starts_with(VERSION_HEADER) {
        if outgoing {
            return false;
        }
        if let Some(i) = memchr::memmem::find(rest, b"\r\n") {
            rest = &rest[i + 2..];
        }
    }
    while let Some(r) = rest.strip_prefix(b"\r\n") {
        rest = r;
    }
    // Everything from the last '=' on is the CRC24 line (or padding; upstream cuts it too).
    if let Some(i) = memchr::memrchr(b'=', rest) {
        rest = &rest[..i];
    }
    let mut compact = Vec::with_capacity(rest.len());
    let mut from = 0;
    while let Some(i) = memchr::memchr2(b'\r', b'\n', &rest[from..]) {
        compact.extend_from_slice(&rest[from..from + i]);
        from += i + 1;
    }
    compact.extend_from_slice(&rest[from..]);
    match base64::engine::general_purpose::STANDARD.decode(&compact) {
        Ok(bytes) => check_packets(&bytes),
        Err(_) => false,
    }
}

/// The packet walk over the binary OpenPGP data.
pub fn check_packets(data: &[u8]) -> bool {
    let byte = |i: usize| data.get(i).copied();
    let mut i: usize = 0;
    while i < data.len() {
        let Some(header) = byte(i) else { return false };
        if header & 0xC0 != 0xC0 {
            return false; // only the new packet format
        }
        let tag = header & 0x3F;
        i += 1;
        // Partial body lengths: skip each chunk.
        loop {
            let Some(b) = byte(i) else { return false };
            if !(224..255).contains(&b) {
                break;
            }
            let chunk = 1usize << (b & 0x1F);
            i = match i.checked_add(1 + chunk) {
                Some(n) => n,
                None => return false,
            };
        }
        let Some(b0) = byte(i) else { return false };
        let body_len = if b0 < 192 {
            i += 1;
            usize::from(b0)
        } else if b0 < 224 {
            let Some(b1) = byte(i + 1) else { return false };
            i += 2;
            ((usize::from(b0) - 192) << 8) + usize::from(b1) + 192
        } else {
            // 255: five-octet length (224..255 were handled above).
            let mut len = 0usize;
            for k in 1..=4 {
                let Some(b) = byte(i + k) else { return false };
                len = (len << 8) | usize::from(b);
            }
            i += 5;
            len
        };
        i = match i.checked_add(body_len) {
            Some(n) => n,
            None => return false,
        };
        if i == data.len() {
            return tag == TAG_SEIPD;
        }
        if tag != TAG_PKESK && tag != TAG_SKESK {
            return false;
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    fn armor(bytes: &[u8]) -> Vec<u8> {
        let b64 = base64::engine::general_purpose::STANDARD.encode(bytes);
        let mut out = BEGIN.to_vec();
        out.extend_from_slice(b"\r\n");
        for chunk in b64.as_bytes().chunks(76) {
            out.extend_from_slice(chunk);
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b"=AAAA\r\n");
        out.extend_from_slice(END);
        out.extend_from_slice(b"\r\n");
        out
    }

    fn packet(tag: u8, len: usize) -> Vec<u8> {
        let mut p = vec![0xC0 | tag];
        if len < 192 {
            p.push(len as u8);
        } else if len < 8384 {
            let l = len - 192;
            p.push((l >> 8) as u8 + 192);
            p.push(l as u8);
        } else {
            p.push(255);
            p.extend_from_slice(&(len as u32).to_be_bytes());
        }
        p.extend(std::iter::repeat_n(0x55, len));
        p
    }

    #[test]
    fn session_keys_then_seipd() {
        let mut data = packet(TAG_PKESK, 12);
        data.extend(packet(TAG_SKESK, 300));
        data.extend(packet(TAG_SEIPD, 9000));
        assert!(check_packets(&data));
        assert!(check_armored_payload(&armor(&data), true));
    }

    #[test]
    fn wrong_packets() {
        assert!(!check_packets(&[]));
        assert!(!check_packets(&packet(11, 20))); // literal data
        let mut data = packet(11, 3);
        data.extend(packet(TAG_SEIPD, 3));
        assert!(!check_packets(&data));
        let mut data = packet(TAG_SEIPD, 3);
        data.extend(packet(TAG_PKESK, 3));
        assert!(!check_packets(&data));
        // Old packet format.
        assert!(!check_packets(&[0x84, 0x01, 0x00]));
        // Truncated: declared longer than present.
        let mut data = packet(TAG_SEIPD, 10);
        data.pop();
        assert!(!check_packets(&data));
        // Truncated header.
        assert!(!check_packets(&[0xC0 | TAG_SEIPD]));
        assert!(!check_packets(&[0xC0 | TAG_SEIPD, 200]));
    }

    #[test]
    fn partial_body_lengths() {
        // SEIPD with a 2-byte partial chunk (0xE1), then a final 1-octet length of 3.
        let data = [0xC0 | TAG_SEIPD, 0xE1, 0xAA, 0xBB, 0x03, 1, 2, 3];
        assert!(check_packets(&data));
    }

    #[test]
    fn armor_rules() {
        let mut data = packet(TAG_PKESK, 5);
        data.extend(packet(TAG_SEIPD, 40));
        let good = armor(&data);
        let mut with_version = BEGIN.to_vec();
        with_version.extend_from_slice(b"Version: X 1.0\r\n");
        with_version.extend_from_slice(&good[BEGIN.len()..]);
        assert!(!check_armored_payload(&with_version, true));
        assert!(check_armored_payload(&with_version, false));
        assert!(!check_armored_payload(&good[1..], true));
        let lf_only: Vec<u8> = good.iter().copied().filter(|&b| b != b'\r').collect();
        assert!(!check_armored_payload(&lf_only, true));
        let mut garbage = good.clone();
        let pos = BEGIN.len() + 5;
        garbage[pos] = b'*';
        assert!(!check_armored_payload(&garbage, true));
    }
}
