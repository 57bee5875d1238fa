//! Chatmail's mail rules, in one place: what may leave the relay, what may enter it.
//!
//! Upstream's filter (research/chatmail.md §1.3) decides, and this module decides the same
//! way, with the same SMTP codes and texts:
//!
//! * **Outgoing** (submission): the envelope sender must be one address; at most `rate`
//!   messages per minute per sender with bursts of `burst` (`450 4.7.1: Too much mail
//!   from …`); the `From:` address must equal the envelope sender (`500 Invalid FROM …`);
//!   the message must be PGP/MIME-encrypted with only session-key packets and one SEIPD
//!   packet, or a Secure-Join `vc-request`/`vg-request`; anything else is `523 Encryption Needed: Invalid Unencrypted Mail`.
//! * **Incoming** (port 25 and `/mxdeliv`): at most the size limit (`552`); encrypted or
//!   Secure-Join messages, or delivery reports from `mailer-daemon@`; everything else is
//!   `523`. What passes must carry a DKIM signature of its `From:` domain
//!   ([`dkim::DkimVerifier`]).
//!
//! The inbound milter, the outbound milter and `/mxdeliv` call only this module; it does
//! no I/O except the DNS lookups of DKIM keys, so it is tested on the message corpus
//! (`tests/corpus/`) without sockets, fuzzed, and benchmarked (`benches/encryption_check.rs`).
//!
//! Decision where upstream is unknown: the self-sent Autocrypt Setup Message exception of
//! older filtermail versions (research/chatmail.md §1.3 and open question 1; filtermail
//! 0.2's `outbound.rs` still has it, beside the passthrough lists) is off:
//! * the issue names Secure-Join `vc-request`/`vg-request` as the only unencrypted mail
//!   that passes;
//! * filtermail PR #157 (2026-05) removed every option that let unencrypted mail out;
//! * Delta Chat no longer sends the message at all (chatmail/core PR #7993 removed sending
//!   and receiving it; the apps dropped the dialog, e.g. deltachat-ios #2881), so no client
//!   of this relay needs the exception.
//!
//! The corpus case `autocrypt-setup-self.eml` is refused with 523 (outgoing; through the
//! running relay too, `tests/tests/appliance_milter.rs`). See
//! [`ALLOW_SELF_SENT_AUTOCRYPT_SETUP`].

pub mod address;
pub mod dkim;
pub mod mime;
pub mod openpgp;
pub mod rate;

use std::borrow::Cow;
use std::time::Instant;

use mime::Entity;

/// Whether a self-addressed Autocrypt Setup Message may leave unencrypted (off; see above).
pub const ALLOW_SELF_SENT_AUTOCRYPT_SETUP: bool = false;

/// An SMTP reply: the code and the whole line as upstream writes it (code included).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub code: u16,
    pub line: Cow<'static, str>,
}

impl Reply {
    /// A reply with `code` and the whole `line` (code included).
    pub fn new(code: u16, line: String) -> Reply {
        Reply {
            code,
            line: Cow::Owned(line),
        }
    }

    /// Whether the reply means success (2xx).
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.code)
    }

    fn fixed(code: u16, line: &'static str) -> Reply {
        Reply {
            code,
            line: Cow::Borrowed(line),
        }
    }

    fn owned(code: u16, line: String) -> Reply {
        Reply {
            code,
            line: Cow::Owned(line),
        }
    }

    /// The text after the code.
    pub fn text(&self) -> &str {
        self.line.get(4..).unwrap_or("")
    }

    /// Unencrypted mail.
    pub fn encryption_needed() -> Reply {
        Reply::fixed(523, "523 Encryption Needed: Invalid Unencrypted Mail")
    }

    /// Larger than the size limit.
    pub fn too_big() -> Reply {
        Reply::fixed(552, "552 Message exceeds maximum size")
    }

    pub fn no_dkim() -> Reply {
        Reply::fixed(554, "554 5.7.1 No DKIM signature found")
    }

    pub fn invalid_dkim() -> Reply {
        Reply::fixed(554, "554 5.7.1 No valid DKIM signature found")
    }

    pub fn headers_unparsable() -> Reply {
        Reply::fixed(500, "500 Failed to parse message headers")
    }

    fn unparsable(e: &mime::ParseError) -> Reply {
        Reply::owned(500, format!("500 Failed to parse message: {e}"))
    }

    fn invalid_from_header(value: &str) -> Reply {
        Reply::owned(500, format!("500 Invalid FROM header: {value}"))
    }

    fn invalid_sender(addr: &str) -> Reply {
        Reply::owned(500, format!("500 Invalid from address <{addr}>"))
    }

    fn forged_from(from: &str, mail_from: &str) -> Reply {
        Reply::owned(500, format!("500 Invalid FROM <{from}> for <{mail_from}>"))
    }

    fn rate_limited(addr: &str, wait: std::time::Duration) -> Reply {
        Reply::owned(
            450,
            format!(
                "450 4.7.1: Too much mail from <{addr}>, rate-limited for {:.1} s",
                wait.as_secs_f64()
            ),
        )
    }
}

/// What kind of acceptable message it is (for logs and metrics).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// PGP/MIME with valid packets.
    Encrypted,
    /// A Secure-Join `vc-request` or `vg-request`.
    SecureJoin,
    /// A self-addressed Autocrypt Setup Message.
    AutocryptSetup,
    /// A delivery report from a mailer daemon (incoming only).
    MailerDaemon,
}

impl Kind {
    pub fn label(self) -> &'static str {
        match self {
            Kind::Encrypted => "encrypted",
            Kind::SecureJoin => "securejoin",
            Kind::AutocryptSetup => "autocrypt_setup",
            Kind::MailerDaemon => "mailer_daemon",
        }
    }
}

/// The limits the rules apply (from the relay configuration).
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_message_size: usize,
    pub send_per_minute: u32,
    pub send_burst: u32,
}

impl Limits {
    pub fn from_config(config: &chatmail_shared::RelayConfig) -> Limits {
        let l = &config.limits;
        Limits {
            max_message_size: usize::try_from(l.max_message_size_bytes).unwrap_or(usize::MAX),
            send_per_minute: l.max_user_send_per_minute,
            send_burst: l.max_user_send_burst_size,
        }
    }
}

/// The outgoing rules with their state (the rate limiter).
pub struct Outgoing {
    limiter: rate::RateLimiter,
}

impl Outgoing {
    pub fn new(limits: &Limits) -> Outgoing {
        Outgoing {
            limiter: rate::RateLimiter::new(limits.send_per_minute, limits.send_burst),
        }
    }

    /// At `MAIL FROM`: the sender address and the send rate. Counts the message.
    pub fn check_sender(&self, mail_from: &str, now: Instant) -> Result<(), Reply> {
        if mail_from.split('@').count() != 2 {
            return Err(Reply::invalid_sender(mail_from));
        }
        self.limiter
            .check(mail_from, now)
            .map_err(|r| Reply::rate_limited(mail_from, r.retry_at.saturating_duration_since(now)))
    }

    /// At the end of `DATA`: the message itself.
    pub fn check_message(
        &self,
        mail_from: &str,
        rcpts: &[String],
        message: &[u8],
    ) -> Result<Kind, Reply> {
        check_outgoing_message(mail_from, rcpts, message)
    }
}

/// The outgoing message rule (no state): `From:` equals the envelope sender, and the
/// message is encrypted, a Secure-Join request, or a self-sent Autocrypt Setup Message.
pub fn check_outgoing_message(
    mail_from: &str,
    rcpts: &[String],
    message: &[u8],
) -> Result<Kind, Reply> {
    let entity = Entity::parse(message).map_err(|e| Reply::unparsable(&e))?;
    let from_value = entity.value("From").unwrap_or_default();
    let from = address::first_address(&from_value)
        .ok_or_else(|| Reply::invalid_from_header(&from_value))?;
    if !from.eq_ignore_ascii_case(mail_from) {
        return Err(Reply::forged_from(&from, mail_from));
    }
    if let Some(kind) = encrypted_or_securejoin(&entity, true) {
        return Ok(kind);
    }
    if ALLOW_SELF_SENT_AUTOCRYPT_SETUP
        && rcpts.len() == 1
        && rcpts[0].eq_ignore_ascii_case(mail_from)
        && entity.value("Subject").as_deref() == Some("Autocrypt Setup Message")
        && entity.content_type().mime_type == "multipart/mixed"
    {
        return Ok(Kind::AutocryptSetup);
    }
    Err(Reply::encryption_needed())
}

/// The incoming structure rule: size, then encrypted / Secure-Join / mailer-daemon report.
/// Returns the kind and the `From:` domain whose DKIM signature is required next
/// ([`dkim::DkimVerifier::verify_origin`]).
pub fn check_incoming_message(message: &[u8], limits: &Limits) -> Result<(Kind, String), Reply> {
    if message.len() > limits.max_message_size {
        return Err(Reply::too_big());
    }
    let entity = Entity::parse(message).map_err(|e| Reply::unparsable(&e))?;
    let from_value = entity.value("From").unwrap_or_default();
    let from = address::first_address(&from_value)
        .ok_or_else(|| Reply::invalid_from_header(&from_value))?;
    let domain = address::domain_of(&from).to_string();
    if let Some(kind) = encrypted_or_securejoin(&entity, false) {
        return Ok((kind, domain));
    }
    let auto_submitted = entity.value("Auto-Submitted").unwrap_or_default();
    if !auto_submitted.is_empty()
        && from.starts_with("mailer-daemon@")
        && entity.content_type().mime_type == "multipart/report"
    {
        return Ok((Kind::MailerDaemon, domain));
    }
    Err(Reply::encryption_needed())
}

/// The whole incoming rule: structure, then origin.
pub async fn check_incoming(
    message: &[u8],
    limits: &Limits,
    dkim: &dkim::DkimVerifier,
) -> Result<Kind, Reply> {
    let (kind, domain) = check_incoming_message(message, limits)?;
    dkim.verify_origin(message, &domain).await?;
    Ok(kind)
}

fn encrypted_or_securejoin(entity: &Entity<'_>, outgoing: bool) -> Option<Kind> {
    if is_encrypted(entity, outgoing) {
        Some(Kind::Encrypted)
    } else if is_securejoin(entity) {
        Some(Kind::SecureJoin)
    } else {
        None
    }
}

/// Whether a part is itself a multipart with parts.
fn has_subparts(entity: &Entity<'_>) -> bool {
    mime::parts(entity, 1).is_some()
}

/// PGP/MIME (RFC 3156) with upstream's exact structure: `multipart/encrypted` with two
/// non-multipart parts, the first `application/pgp-encrypted` saying `Version: 1`, the
/// second `application/octet-stream` holding an armored message that passes
/// [`openpgp::check_armored_payload`].
///
/// Exactly two: upstream's loop over the parts also passes a message with the version
/// part alone, which carries no encrypted payload at all; RFC 3156 (section 4) requires
/// both parts, Delta Chat always sends both, and the fuzz oracle counts it as malformed.
pub fn is_encrypted(entity: &Entity<'_>, outgoing: bool) -> bool {
    if entity.content_type().mime_type != "multipart/encrypted" {
        return false;
    }
    let Some(parts) = mime::parts(entity, 3) else {
        return false;
    };
    if parts.len() != 2 {
        return false;
    }
    for (index, raw) in parts.iter().enumerate() {
        let Ok(part) = Entity::parse(raw) else {
            return false;
        };
        if has_subparts(&part) {
            return false;
        }
        let ct = part.content_type();
        let Some(body) = part.decoded_body() else {
            return false;
        };
        let ok = match index {
            0 => {
                ct.mime_type == "application/pgp-encrypted"
                    && trim_ascii(&body) == b"Version: 1".as_slice()
            }
            _ => {
                ct.mime_type == "application/octet-stream"
                    && openpgp::check_armored_payload(&body, outgoing)
            }
        };
        if !ok {
            return false;
        }
    }
    true
}

/// A Secure-Join request: header `Secure-Join: vc-request|vg-request` and a multipart with
/// exactly one non-multipart `text/plain` part saying `Secure-Join: vc-request` (or `vg-`),
/// case-insensitively.
pub fn is_securejoin(entity: &Entity<'_>) -> bool {
    let header = entity.value("Secure-Join").unwrap_or_default();
    if header != "vc-request" && header != "vg-request" {
        return false;
    }
    let Some(parts) = mime::parts(entity, 2) else {
        return false;
    };
    if parts.len() != 1 {
        return false;
    }
    let Ok(part) = Entity::parse(parts[0]) else {
        return false;
    };
    if has_subparts(&part) || part.content_type().mime_type != "text/plain" {
        return false;
    }
    let Some(body) = part.decoded_body() else {
        return false;
    };
    let text = String::from_utf8_lossy(trim_ascii(&body)).to_lowercase();
    text == "secure-join: vc-request" || text == "secure-join: vg-request"
}

fn trim_ascii(b: &[u8]) -> &[u8] {
    b.trim_ascii()
}

/// Header fields upstream removes before a message is stored (Postfix's
/// `lmtp_header_checks`, research/chatmail.md §6): traces of the path and of checks done
/// elsewhere. Returns the message without them (the body is untouched).
pub fn strip_for_local_delivery(message: &[u8]) -> Cow<'_, [u8]> {
    const DROP: [&str; 3] = ["Received", "DKIM-Signature", "Authentication-Results"];
    let Ok(entity) = Entity::parse(message) else {
        return Cow::Borrowed(message);
    };
    if !entity.fields.iter().any(|f| {
        DROP.iter()
            .any(|d| f.name.eq_ignore_ascii_case(d.as_bytes()))
    }) {
        return Cow::Borrowed(message);
    }
    // Every field runs from its name (a field never starts with a blank) to the next
    // field's name, or to the end of the header section.
    let head_len = mime::split_head(message).0.len();
    let base = message.as_ptr() as usize;
    let starts: Vec<usize> = entity
        .fields
        .iter()
        .map(|f| f.name.as_ptr() as usize - base)
        .collect();
    let mut out = Vec::with_capacity(message.len());
    for (i, field) in entity.fields.iter().enumerate() {
        let end = starts.get(i + 1).copied().unwrap_or(head_len);
        if !DROP
            .iter()
            .any(|d| field.name.eq_ignore_ascii_case(d.as_bytes()))
        {
            out.extend_from_slice(&message[starts[i]..end]);
        }
    }
    out.extend_from_slice(&message[head_len..]);
    Cow::Owned(out)
}

#[cfg(test)]
mod corpus_tests;
#[cfg(test)]
mod tests;
