//! Domain names that the relay puts into DNS records, URLs, certificates and e-mail addresses.
//!
//! A relay's whole identity hangs off its mail domain, so a wrong spelling must be caught
//! when the config is written, not when a DNS record or certificate fails days later. The
//! types here can only hold names that are already normalized (IDNA A-labels, lowercase,
//! no trailing dot) and that fit DNS's length rules, so the rest of the crate never checks
//! again.

use std::fmt;
use std::net::IpAddr;

use idna::uts46::{AsciiDenyList, DnsLength, Hyphens, Uts46};

/// Longest DNS name in presentation form without the trailing dot (RFC 1035 §2.3.4:
/// 255 octets on the wire).
pub const MAX_NAME_LEN: usize = 253;

/// Longest label (RFC 1035 §2.3.4).
pub const MAX_LABEL_LEN: usize = 63;

/// The longest prefix the DNS plan puts in front of the mail domain: `opendkim._domainkey.`
/// (see [`crate::dns_plan`]).
const LONGEST_PLAN_PREFIX: usize = "opendkim._domainkey.".len();

/// Longest mail domain, chosen so that every name in the DNS plan still fits in
/// [`MAX_NAME_LEN`].
pub const MAX_MAIL_DOMAIN_LEN: usize = MAX_NAME_LEN - LONGEST_PLAN_PREFIX;

/// Why a string is not an acceptable domain name. The messages complete the sentence
/// "the domain …".
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DomainError {
    /// Nothing was given.
    #[error("must not be empty")]
    Empty,
    /// Spaces, tabs, newlines or other control characters.
    #[error("must not contain spaces or control characters")]
    Whitespace,
    /// An IPv4 or IPv6 address (bracketed or not) instead of a name.
    #[error("must be a domain name, not an IP address")]
    IpLiteral,
    /// `_` is legal in some DNS names but never in a host name.
    #[error("must not contain underscores (`_`): it is not allowed in host names")]
    Underscore,
    /// Two dots in a row, a leading dot, or more than one trailing dot.
    #[error("must not contain an empty label (a leading dot or two dots in a row)")]
    EmptyLabel,
    /// A label longer than [`MAX_LABEL_LEN`] bytes after IDNA conversion.
    #[error("has a label of {len} bytes (`{label}`); DNS allows at most 63")]
    LabelTooLong {
        /// The start of the offending label (ASCII form, shortened).
        label: String,
        /// Its length in bytes.
        len: usize,
    },
    /// The whole name is too long once converted to ASCII.
    #[error("is {len} bytes long in its ASCII form; at most {max} are allowed{why}")]
    NameTooLong {
        /// Length of the ASCII form.
        len: usize,
        /// The limit that applies.
        max: usize,
        /// Why that limit applies (empty, or a clause starting with a comma).
        why: &'static str,
    },
    /// A name such as `localhost` or `org`.
    #[error("needs at least two labels, such as `example.org`")]
    SingleLabel,
    /// Top-level labels are never all digits; such names look like IP addresses.
    #[error("must not end in an all-digit label (that looks like an IP address)")]
    NumericTld,
    /// Rejected by IDNA (UTS #46) processing: disallowed characters, misplaced
    /// hyphens, broken punycode, mixed-direction text and the like.
    #[error(
        "is not a valid domain name: use letters, digits and hyphens (international letters are fine), and no hyphen at the start or end of a label"
    )]
    Invalid,
}

/// A syntactically valid DNS host name: IDNA A-label form, lowercase, without the trailing
/// dot, at most 253 bytes, at least two labels, no label over 63 bytes, letters/digits/
/// hyphens only.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DomainName(String);

impl DomainName {
    /// Normalizes and validates `input`: maps it through IDNA (so `Bücher.Example` becomes
    /// `xn--bcher-kva.example`), lowercases it and strips one trailing dot.
    pub fn parse(input: &str) -> Result<Self, DomainError> {
        parse_host(input, MAX_NAME_LEN, "").map(DomainName)
    }

    /// The ASCII (A-label) form, e.g. `xn--bcher-kva.example`.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The absolute form with a trailing dot, as zone files want it.
    pub fn fqdn(&self) -> String {
        format!("{}.", self.0)
    }

    /// The form to show people, with international labels decoded (e.g. `bücher.example`).
    pub fn to_unicode(&self) -> String {
        let (unicode, result) = idna::domain_to_unicode(&self.0);
        match result {
            Ok(()) => unicode,
            Err(_) => self.0.clone(),
        }
    }

    /// Whether `self` is `other` or a subdomain of it.
    pub fn is_within(&self, other: &DomainName) -> bool {
        self.0 == other.0
            || (self.0.len() > other.0.len()
                && self.0.ends_with(other.0.as_str())
                && self.0.as_bytes()[self.0.len() - other.0.len() - 1] == b'.')
    }
}

impl fmt::Display for DomainName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::str::FromStr for DomainName {
    type Err = DomainError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl serde::Serialize for DomainName {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> serde::Deserialize<'de> for DomainName {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Self::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// The relay's mail domain: a [`DomainName`] short enough that every name the DNS plan
/// derives from it (the longest is `opendkim._domainkey.<domain>`) still fits in DNS.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MailDomain(DomainName);

impl MailDomain {
    /// Normalizes and validates a mail domain; see [`DomainName::parse`]. Names longer than
    /// [`MAX_MAIL_DOMAIN_LEN`] bytes (ASCII form) are refused.
    pub fn parse(input: &str) -> Result<Self, DomainError> {
        parse_host(
            input,
            MAX_MAIL_DOMAIN_LEN,
            ", so that `opendkim._domainkey.<domain>` stays within DNS's 253",
        )
        .map(|s| MailDomain(DomainName(s)))
    }

    /// The ASCII (A-label) form, e.g. `chat.example.org`.
    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }

    /// The absolute form with a trailing dot.
    pub fn fqdn(&self) -> String {
        self.0.fqdn()
    }

    /// The form to show people, with international labels decoded.
    pub fn to_unicode(&self) -> String {
        self.0.to_unicode()
    }

    /// The same name as a general [`DomainName`].
    pub fn as_domain_name(&self) -> &DomainName {
        &self.0
    }
}

impl fmt::Display for MailDomain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl std::str::FromStr for MailDomain {
    type Err = DomainError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl serde::Serialize for MailDomain {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(s)
    }
}

impl<'de> serde::Deserialize<'de> for MailDomain {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Self::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// Shared parser: returns the normalized ASCII form or the first rule broken.
fn parse_host(input: &str, max_len: usize, why: &'static str) -> Result<String, DomainError> {
    if input.is_empty() {
        return Err(DomainError::Empty);
    }
    if input.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(DomainError::Whitespace);
    }
    // One trailing dot (the DNS root) is accepted and dropped; an empty label is not.
    let name = input.strip_suffix('.').unwrap_or(input);
    if name.is_empty() {
        return Err(DomainError::Empty);
    }
    if looks_like_ip_literal(name) {
        return Err(DomainError::IpLiteral);
    }
    if name.contains('_') {
        return Err(DomainError::Underscore);
    }
    if name.split('.').any(str::is_empty) {
        return Err(DomainError::EmptyLabel);
    }
    // UTS #46 mapping: lowercases, maps full-width dots, turns U-labels into punycode and
    // enforces host-name characters (STD3) and hyphen placement. Lengths are checked below
    // so the message can say which rule was broken.
    let ascii = Uts46::new()
        .to_ascii(
            name.as_bytes(),
            AsciiDenyList::STD3,
            Hyphens::CheckFirstLast,
            DnsLength::Ignore,
        )
        .map_err(|_| DomainError::Invalid)?
        .into_owned();
    // Mapping may have produced new dots (e.g. from U+3002) or underscores; re-check on the
    // final form, which must be plain LDH.
    if ascii.contains('_') {
        return Err(DomainError::Underscore);
    }
    if ascii.is_empty() || ascii.split('.').any(str::is_empty) {
        return Err(DomainError::EmptyLabel);
    }
    if !ascii
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
    {
        return Err(DomainError::Invalid);
    }
    if looks_like_ip_literal(&ascii) {
        return Err(DomainError::IpLiteral);
    }
    if let Some(label) = ascii.split('.').find(|l| l.len() > MAX_LABEL_LEN) {
        let shown: String = label.chars().take(20).collect();
        return Err(DomainError::LabelTooLong {
            label: format!("{shown}…"),
            len: label.len(),
        });
    }
    if ascii.len() > max_len {
        return Err(DomainError::NameTooLong {
            len: ascii.len(),
            max: max_len,
            why,
        });
    }
    let mut labels = ascii.rsplit('.');
    let tld = labels.next().unwrap_or_default();
    if labels.next().is_none() {
        return Err(DomainError::SingleLabel);
    }
    if tld.bytes().all(|b| b.is_ascii_digit()) {
        return Err(DomainError::NumericTld);
    }
    Ok(ascii)
}

/// `1.2.3.4`, `::1`, and anything in brackets (`[1.2.3.4]`, `[IPv6:…]`): brackets only ever
/// appear in address literals, so any bracketed input is treated as one.
fn looks_like_ip_literal(s: &str) -> bool {
    s.starts_with('[') || s.parse::<IpAddr>().is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalizes_case_trailing_dot_and_idn() {
        assert_eq!(
            MailDomain::parse("Chat.Example.ORG.").unwrap().as_str(),
            "chat.example.org"
        );
        let d = MailDomain::parse("Bücher.Example").unwrap();
        assert_eq!(d.as_str(), "xn--bcher-kva.example");
        assert_eq!(d.to_unicode(), "bücher.example");
        assert_eq!(d.fqdn(), "xn--bcher-kva.example.");
        // A-label input is accepted as is.
        assert_eq!(
            MailDomain::parse("xn--bcher-kva.example").unwrap(),
            MailDomain::parse("bücher.example").unwrap()
        );
        // Ideographic full stop maps to a dot.
        assert_eq!(
            MailDomain::parse("例え。テスト").unwrap().as_str(),
            "xn--r8jz45g.xn--zckzah"
        );
    }

    #[test]
    fn rejects_hostile_names() {
        use DomainError::*;
        let cases: &[(&str, DomainError)] = &[
            ("", Empty),
            (".", Empty),
            ("example.org..", EmptyLabel),
            (".example.org", EmptyLabel),
            ("a..example.org", EmptyLabel),
            (" example.org", Whitespace),
            ("exa mple.org", Whitespace),
            ("example.org\n", Whitespace),
            ("1.2.3.4", IpLiteral),
            ("[1.2.3.4]", IpLiteral),
            ("::1", IpLiteral),
            ("[::1]", IpLiteral),
            ("[IPv6:2001:db8::1]", IpLiteral),
            ("_chat.example.org", Underscore),
            ("mail_relay.example.org", Underscore),
            ("localhost", SingleLabel),
            ("org.", SingleLabel),
            ("example.123", NumericTld),
            ("-chat.example.org", Invalid),
            ("chat-.example.org", Invalid),
            ("chat.exa$mple.org", Invalid),
            ("chat/x.example.org", Invalid),
            ("<script>.example.org", Invalid),
            ("xn--zz.example.org", Invalid),
        ];
        for (input, want) in cases {
            assert_eq!(&MailDomain::parse(input).unwrap_err(), want, "{input:?}");
        }
    }

    #[test]
    fn length_limits() {
        let label63 = "a".repeat(63);
        assert!(MailDomain::parse(&format!("{label63}.example.org")).is_ok());
        let err = MailDomain::parse(&format!("{}.example.org", "a".repeat(64))).unwrap_err();
        assert!(
            matches!(err, DomainError::LabelTooLong { len: 64, .. }),
            "{err}"
        );
        assert!(err.to_string().contains("at most 63"));

        // 233 is the mail-domain limit; 253 the general one.
        let name = |len: usize| {
            let mut labels = Vec::new();
            let mut left = len;
            while left > 0 {
                let l = left.min(63);
                let l = if left - l == 1 { l - 2 } else { l };
                labels.push("b".repeat(l));
                left -= l;
                left = left.saturating_sub(1);
            }
            let s = labels.join(".");
            assert_eq!(s.len(), len);
            s
        };
        assert!(MailDomain::parse(&name(233)).is_ok());
        let err = MailDomain::parse(&name(234)).unwrap_err();
        assert!(matches!(
            err,
            DomainError::NameTooLong {
                len: 234,
                max: 233,
                ..
            }
        ));
        assert!(err.to_string().contains("opendkim._domainkey"), "{err}");
        assert!(DomainName::parse(&name(253)).is_ok());
        assert!(matches!(
            DomainName::parse(&name(254)).unwrap_err(),
            DomainError::NameTooLong {
                len: 254,
                max: 253,
                ..
            }
        ));
        // IDN expands when converted: the limit applies to the ASCII form.
        let idn = format!("{}.example", "ü".repeat(60));
        assert!(matches!(
            MailDomain::parse(&idn).unwrap_err(),
            DomainError::LabelTooLong { .. }
        ));
    }

    #[test]
    fn subdomain_relation() {
        let a = DomainName::parse("chat.example.org").unwrap();
        let b = DomainName::parse("example.org").unwrap();
        let c = DomainName::parse("xample.org").unwrap();
        assert!(a.is_within(&b));
        assert!(a.is_within(&a));
        assert!(!b.is_within(&a));
        assert!(!b.is_within(&c));
    }
}
